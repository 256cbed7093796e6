//! The receiver trait itself, rewritten so every command's future is `Send`:
//! a non-`Send` value held across an `.await` in an implementation is then
//! reported at the user's own code.

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Receiver, Returns};

pub(crate) fn expand(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let (vis, ident, attrs) = (&r.vis, &r.ident, &r.attrs);
    let supertraits = r.supertraits.iter();
    let methods = r.methods.iter().map(|m| {
        let (attrs, name, inputs) = (&m.attrs, &m.ident, &m.inputs);
        let output = match &m.returns {
            Returns::Value(ty) => quote!(#ty),
            Returns::Stream { ty, .. } => quote!(#ty),
        };
        quote! {
            #(#attrs)*
            fn #name(&self, #(#inputs),*)
                -> impl #krate::__private::Future<Output = #output> + #krate::__private::Send;
        }
    });
    quote! {
        #(#attrs)*
        #vis trait #ident: #(#supertraits +)* #krate::__private::Send + #krate::__private::Sync + 'static {
            #(#methods)*
        }
    }
}
