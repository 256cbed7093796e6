//! How arguments and results meet the codec: the arguments as one tuple,
//! each `Vec<u8>` (argument or unary result) wrapped so that it goes
//! through serde as one byte string, and every other type through a small
//! wrapper, local to where it is used, whose serde impls resolve to the
//! type's own (see `cmdstream::__private`'s `Wire`). The wrappers keep a
//! type that cannot cross the wire to the one error the hidden assertions
//! report at the user's type: nothing else in the generated code requires
//! the type's serde impls. On the wire they are invisible: each serializes
//! exactly as the type it wraps.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};
use syn::Type;

use crate::model::{Method, Receiver};

/// A wrapper's name, unlikely to meet a user's.
fn name(role: &str, index: usize) -> Ident {
    format_ident!("__Cmdstream{}{}", role, index)
}

/// `struct #name<'a>(&'a #ty)`, serialized as the `#ty` it borrows.
fn ser_ref(r: &Receiver, name: &Ident, ty: &Type) -> TokenStream {
    let krate = &r.krate;
    let p = quote!(#krate::__private);
    quote! {
        #[allow(non_camel_case_types)]
        struct #name<'__a>(&'__a #ty);
        impl #p::serde::Serialize for #name<'_> {
            #[inline]
            fn serialize<__S: #p::serde::Serializer>(&self, s: __S) -> #p::Result<__S::Ok, __S::Error> {
                #[allow(unused_imports)]
                use #p::{NoSerde as _, ViaSerde as _};
                (&#p::Wire(self.0)).__cmdstream_serialize(s)
            }
        }
    }
}

/// `struct #name(#ty)`, serialized as the `#ty` it owns.
fn ser_owned(r: &Receiver, name: &Ident, ty: &Type) -> TokenStream {
    let krate = &r.krate;
    let p = quote!(#krate::__private);
    quote! {
        #[allow(non_camel_case_types)]
        struct #name(#ty);
        impl #p::serde::Serialize for #name {
            #[inline]
            fn serialize<__S: #p::serde::Serializer>(&self, s: __S) -> #p::Result<__S::Ok, __S::Error> {
                #[allow(unused_imports)]
                use #p::{NoSerde as _, ViaSerde as _};
                (&#p::Wire(&self.0)).__cmdstream_serialize(s)
            }
        }
    }
}

/// `struct #name(#ty)`, deserialized as a `#ty`.
fn de_owned(r: &Receiver, name: &Ident, ty: &Type) -> TokenStream {
    let krate = &r.krate;
    let p = quote!(#krate::__private);
    quote! {
        #[allow(non_camel_case_types)]
        struct #name(#ty);
        impl<'__de> #p::serde::Deserialize<'__de> for #name {
            #[inline]
            fn deserialize<__D: #p::serde::Deserializer<'__de>>(d: __D) -> #p::Result<Self, __D::Error> {
                #[allow(unused_imports)]
                use #p::{NoSerdeDe as _, ViaSerdeDe as _};
                #p::Result::map((&#p::WireDe::<#ty>::new()).__cmdstream_deserialize(d), #name)
            }
        }
    }
}

/// Client side: the wrapper definitions, and the tuple of arguments to
/// encode from bindings named as the arguments (owned values or
/// references alike). `owned`: the tuple owns the arguments (moved into a
/// unary call's future, which then needs no state of its own around it);
/// otherwise it borrows them.
pub(crate) fn args_tuple(r: &Receiver, m: &Method, owned: bool) -> (TokenStream, TokenStream) {
    let krate = &r.krate;
    let mut defs = Vec::new();
    let fields: Vec<TokenStream> = m
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ident = &a.ident;
            match (a.is_bytes(), owned) {
                (true, true) => quote!(#krate::__private::ByteBuf(#ident)),
                (true, false) => quote!(#krate::__private::ByteSlice(&#ident)),
                (false, _) => {
                    let wrapper = name("Arg", i);
                    if owned {
                        defs.push(ser_owned(r, &wrapper, &a.ty));
                        quote!(#wrapper(#ident))
                    } else {
                        defs.push(ser_ref(r, &wrapper, &a.ty));
                        quote!(#wrapper(&#ident))
                    }
                }
            }
        })
        .collect();
    let tuple = quote!((#(#fields,)*));
    let tuple = if owned { tuple } else { quote!(&#tuple) };
    (quote!(#(#defs)*), tuple)
}

/// The decoded type of a unary result and the function from it to the
/// method's item: the wrapper's definition, and the function.
pub(crate) fn unary_result_map(r: &Receiver, m: &Method) -> (TokenStream, TokenStream) {
    let krate = &r.krate;
    if m.returns.is_bytes() {
        return (
            TokenStream::new(),
            quote!(|bytes: #krate::__private::ByteBuf| bytes.0),
        );
    }
    let wrapper = name("Ret", 1);
    let def = de_owned(r, &wrapper, m.returns.item());
    (def, quote!(|value: #wrapper| value.0))
}

/// Server side: statements that decode the arguments tuple from `source`
/// (a `Call` or a `Unary`) into bindings named as the arguments, or return
/// `reject`, an expression of the decode `error`.
pub(crate) fn decode_args(
    r: &Receiver,
    m: &Method,
    source: &Ident,
    reject: TokenStream,
) -> TokenStream {
    let krate = &r.krate;
    let mut defs = Vec::new();
    let idents: Vec<_> = m.args.iter().map(|a| &a.ident).collect();
    let types: Vec<TokenStream> = m
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if a.is_bytes() {
                quote!(#krate::__private::ByteBuf)
            } else {
                let wrapper = name("Arg", i);
                defs.push(de_owned(r, &wrapper, &a.ty));
                quote!(#wrapper)
            }
        })
        .collect();
    quote! {
        #(#defs)*
        let (#(#idents,)*): (#(#types,)*) = match #source.args() {
            #krate::__private::Result::Ok(args) => args,
            #krate::__private::Result::Err(error) => return #reject,
        };
        #(let #idents = #idents.0;)*
    }
}

/// Server side: the wrapper definition and the value a unary or
/// client-streaming command replies with, from the expression `value`
/// that computes it.
pub(crate) fn reply_value(
    r: &Receiver,
    m: &Method,
    value: TokenStream,
) -> (TokenStream, TokenStream) {
    let krate = &r.krate;
    if m.returns.is_bytes() {
        return (
            TokenStream::new(),
            quote!(&#krate::__private::ByteSlice(&#value)),
        );
    }
    let wrapper = name("Ret", 0);
    let def = ser_ref(r, &wrapper, m.returns.item());
    (def, quote!(&#wrapper(&#value)))
}

/// Server side: the stream of results `stream`, its items wrapped for the
/// wire.
pub(crate) fn result_items(r: &Receiver, m: &Method, stream: TokenStream) -> TokenStream {
    let krate = &r.krate;
    let wrapper = name("Item", 0);
    let def = ser_owned(r, &wrapper, m.returns.item());
    quote! {{
        #def
        #krate::__private::MapItems::new(#stream, #wrapper)
    }}
}

/// Server side: the client's stream of arguments, decoded through a
/// wrapper and unwrapped, as the receiver takes it.
pub(crate) fn arg_items(r: &Receiver, item: &Type) -> TokenStream {
    let krate = &r.krate;
    let wrapper = name("Item", 1);
    let def = de_owned(r, &wrapper, item);
    quote! {{
        #def
        #krate::__private::MapItems::new(__cmdstream_call.arg_stream::<#wrapper>(), |item: #wrapper| item.0)
    }}
}

/// Client side: the caller's stream of arguments `stream`, its items
/// wrapped for the wire.
pub(crate) fn sent_items(r: &Receiver, item: &Type, stream: &Ident) -> (TokenStream, TokenStream) {
    let krate = &r.krate;
    let wrapper = name("Item", 2);
    let def = ser_owned(r, &wrapper, item);
    (
        def,
        quote!(#krate::__private::MapItems::new(#stream, #wrapper)),
    )
}

/// Client side: the wrapper definition and the unary or client-streaming
/// call `call` (a method of `cmdstream::Client` given its arguments),
/// awaited, with its result as the method returns it.
pub(crate) fn unary_result(
    r: &Receiver,
    m: &Method,
    call: TokenStream,
) -> (TokenStream, TokenStream) {
    let (def, map) = unary_result_map(r, m);
    (def, quote!(#call.await.map(#map)))
}

/// The names of the functions through which the command enum's derives
/// serialize and deserialize argument `index` of method `m`.
pub(crate) fn field_fns(r: &Receiver, m: &Method, index: usize) -> (Ident, Ident) {
    let base = format!("__cmdstream_{}_{}_{}", r.ident, m.ident, index);
    (
        Ident::new(&format!("{base}_ser"), Span::call_site()),
        Ident::new(&format!("{base}_de"), Span::call_site()),
    )
}

/// The two functions of [`field_fns`] for a field of type `ty`.
pub(crate) fn field_fn_defs(r: &Receiver, ser: &Ident, de: &Ident, ty: &Type) -> TokenStream {
    let krate = &r.krate;
    let p = quote!(#krate::__private);
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #ser<__S: #p::serde::Serializer>(value: &#ty, s: __S) -> #p::Result<__S::Ok, __S::Error> {
            #[allow(unused_imports)]
            use #p::{NoSerde as _, ViaSerde as _};
            (&#p::Wire(value)).__cmdstream_serialize(s)
        }
        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #de<'__de, __D: #p::serde::Deserializer<'__de>>(d: __D) -> #p::Result<#ty, __D::Error> {
            #[allow(unused_imports)]
            use #p::{NoSerdeDe as _, ViaSerdeDe as _};
            (&#p::WireDe::<#ty>::new()).__cmdstream_deserialize(d)
        }
    }
}
