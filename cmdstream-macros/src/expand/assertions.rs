//! Hidden assertions that every type crossing the wire can: the compiler
//! reports a missing `Serialize`/`Deserialize`/`Send` at the user's own type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::Receiver;

pub(crate) fn expand(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let mut types = Vec::new();
    for m in &r.methods {
        types.extend(m.args.iter().map(|a| &a.ty));
        types.extend(m.stream_arg.as_ref().map(|s| &s.item));
        types.push(m.returns.item());
    }
    let checks = types.into_iter().map(|ty| {
        quote_spanned! {ty.span()=>
            #krate::__private::assert_wire_type::<#ty>();
        }
    });
    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn __cmdstream_assert_wire_types() {
                #(#checks)*
            }
        };
    }
}
