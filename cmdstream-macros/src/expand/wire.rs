//! How arguments and results meet the codec: the arguments as one tuple,
//! and each `Vec<u8>` (argument or unary result) wrapped so that it goes
//! through serde as one byte string. Both sides wrap alike; the bytes are
//! those of serde's plain `Vec<u8>` in every codec cmdstream ships.

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Method, Receiver};

/// The tuple of arguments to encode, from bindings named as the arguments
/// (owned values or references alike).
pub(crate) fn args_tuple(r: &Receiver, m: &Method) -> TokenStream {
    let krate = &r.krate;
    let fields = m.args.iter().map(|a| {
        let ident = &a.ident;
        if a.is_bytes() {
            quote!(#krate::__private::ByteSlice(&#ident))
        } else {
            quote!(#ident)
        }
    });
    quote!(&(#(#fields,)*))
}

/// Statements that decode the arguments tuple from `call` into bindings
/// named as the arguments, or reject the call.
pub(crate) fn decode_args(r: &Receiver, m: &Method) -> TokenStream {
    let krate = &r.krate;
    let idents: Vec<_> = m.args.iter().map(|a| &a.ident).collect();
    let types = m.args.iter().map(|a| {
        if a.is_bytes() {
            quote!(#krate::__private::ByteBuf)
        } else {
            let ty = &a.ty;
            quote!(#ty)
        }
    });
    let unwrap = m.args.iter().filter(|a| a.is_bytes()).map(|a| {
        let ident = &a.ident;
        quote!(let #ident = #ident.0;)
    });
    quote! {
        let (#(#idents,)*): (#(#types,)*) = match call.args() {
            #krate::__private::Result::Ok(args) => args,
            #krate::__private::Result::Err(error) => return call.reject_args(error),
        };
        #(#unwrap)*
    }
}

/// The value a unary or client-streaming command replies with, from the
/// expression `value` that computes it.
pub(crate) fn reply_value(r: &Receiver, m: &Method, value: TokenStream) -> TokenStream {
    let krate = &r.krate;
    if m.returns.is_bytes() {
        quote!(&#krate::__private::ByteSlice(&#value))
    } else {
        quote!(&#value)
    }
}

/// The client's unary or client-streaming call `call` (a method of
/// `cmdstream::Client` given its arguments), awaited, with its result as
/// the method returns it.
pub(crate) fn unary_result(r: &Receiver, m: &Method, call: TokenStream) -> TokenStream {
    let krate = &r.krate;
    if m.returns.is_bytes() {
        quote!(#call.await.map(|bytes: #krate::__private::ByteBuf| bytes.0))
    } else {
        quote!(#call.await)
    }
}
