//! `{Trait}Command`: every command whose arguments are plain values, as a
//! serializable value; and `{Trait}Reply`, what sending one returns.

use proc_macro2::TokenStream;
use quote::quote;

use super::wire;
use crate::model::{Receiver, Returns};

pub(crate) fn expand(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let vis = &r.vis;
    let command = r.named("Command");
    let reply = r.named("Reply");
    let serde_path = format!(
        "{}::__private::serde",
        quote!(#krate).to_string().replace(' ', "")
    );
    let values: Vec<_> = r.methods.iter().filter(|m| m.kind.is_value()).collect();
    let derives = &r.derives;

    // Fields go through functions of their own, so that a type without
    // serde impls is reported once, by the assertions, and not again by
    // these derives (see `wire.rs`).
    let mut field_fns = Vec::new();
    let variants: Vec<_> = values
        .iter()
        .map(|m| {
            let variant = m.variant();
            let fields = m.args.iter().enumerate().map(|(i, a)| {
                let (ident, ty) = (&a.ident, &a.ty);
                let doc = format!("The `{ident}` argument.");
                if a.is_bytes() {
                    return quote!(#[doc = #doc] #ident: #ty);
                }
                let (ser, de) = wire::field_fns(r, m, i);
                field_fns.push(wire::field_fn_defs(r, &ser, &de, ty));
                let (ser, de) = (ser.to_string(), de.to_string());
                quote!(#[doc = #doc] #[serde(serialize_with = #ser, deserialize_with = #de)] #ident: #ty)
            });
            let fields: Vec<_> = fields.collect();
            let doc = format!("A call of [`{}::{}`].", r.ident, m.ident);
            quote!(#[doc = #doc] #variant { #(#fields),* })
        })
        .collect();
    let reply_variants = values.iter().map(|m| {
        let variant = m.variant();
        let doc = format!("The result of [`{}::{}`].", r.ident, m.ident);
        match &m.returns {
            Returns::Value(ty) => quote!(#[doc = #doc] #variant(#ty)),
            Returns::Stream { item, .. } => {
                quote!(#[doc = #doc] #variant(#krate::ResultStream<#item, C>))
            }
        }
    });
    let names = values.iter().map(|m| {
        let variant = m.variant();
        let wire = &m.wire_name;
        quote!(#command::#variant { .. } => #wire)
    });
    let ids = values.iter().map(|m| {
        let variant = m.variant();
        let id = m.id;
        quote!(#command::#variant { .. } => #id)
    });
    let command_doc = format!(
        "A command of [`{0}`] as a value: build it, store it, log it, queue it, and send it later with [`{0}Client::send`].",
        r.ident
    );
    let reply_doc = format!("What [`{}Client::send`] returns for each command.", r.ident);
    quote! {
        #(#field_fns)*

        #[doc = #command_doc]
        #[derive(#krate::__private::serde::Serialize, #krate::__private::serde::Deserialize #(, #derives)*)]
        #[serde(crate = #serde_path)]
        #vis enum #command {
            #(#variants,)*
        }

        impl #command {
            /// The command's wire name.
            pub fn name(&self) -> &'static str {
                match *self { #(#names,)* }
            }

            /// The command's id on the wire.
            pub fn id(&self) -> u32 {
                match *self { #(#ids,)* }
            }
        }

        #[doc = #reply_doc]
        // Built by `SendCommand` even where nothing reads it.
        #[allow(dead_code)]
        #vis enum #reply<C = #krate::codec::DefaultCodec> {
            #(#reply_variants,)*
            #[doc(hidden)]
            __Codec(#krate::__private::PhantomData<C>, #krate::__private::Never),
        }
    }
}
