//! `{Trait}Server`: runs each command on a receiver, through
//! `cmdstream::Dispatch`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::info::static_name;
use super::wire;
use crate::model::{Kind, Method, Receiver};

pub(crate) fn expand(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let vis = &r.vis;
    let trait_ident = &r.ident;
    let server = r.named("Server");
    let info = static_name(r);
    let arms = r.methods.iter().map(|m| arm(r, m));
    let unary = dispatch_unary(r);
    let doc = format!(
        "Serves any [`{trait_ident}`]: hand it to [`Server::new`]({}::Server::new).",
        quote!(#krate).to_string().replace(' ', "")
    );
    quote! {
        #[doc = #doc]
        #vis struct #server<T> {
            receiver: T,
        }

        impl<T: #trait_ident> #server<T> {
            /// Wraps the receiver that runs the commands.
            pub fn new(receiver: T) -> Self {
                #server { receiver }
            }

            /// The receiver.
            pub fn receiver(&self) -> &T {
                &self.receiver
            }
        }

        impl<T: #trait_ident> #krate::Dispatch for #server<T> {
            const INFO: &'static #krate::ServiceInfo = &#info;

            // An `async` block, not an `async fn`: the block works on the
            // values it captured where they lie, while an `async fn` moves
            // its arguments into locals and keeps room for both copies,
            // a `Call` more in every command's future.
            fn dispatch<C: #krate::Codec>(
                self: #krate::__private::Arc<Self>,
                mut __cmdstream_call: #krate::Call<C>,
            ) -> impl #krate::__private::Future<Output = ()> + #krate::__private::Send {
                async move {
                    let __cmdstream_receiver = &self.receiver;
                    match __cmdstream_call.command().id {
                        #(#arms)*
                        other => __cmdstream_call.fail(#krate::ErrorCode::UnknownCommand, other),
                    }
                }
            }

            #unary
        }
    }
}

fn arm(r: &Receiver, m: &Method) -> TokenStream {
    let krate = &r.krate;
    let trait_ident = &r.ident;
    let name = &m.ident;
    let id = m.id;
    let call = format_ident!("__cmdstream_call");
    let decode = wire::decode_args(r, m, &call, quote!(__cmdstream_call.reject_args(error)));
    let stream = m.stream_arg.as_ref().map(|s| {
        let ident = &s.ident;
        let items = wire::arg_items(r, &s.item);
        quote!(let #ident = #items;)
    });
    let ctx_ident = format_ident!("__cmdstream_context");
    let context = m
        .context
        .as_ref()
        .map(|_| quote!(let #ctx_ident = __cmdstream_call.context().clone();));

    // Arguments in the order the method declares them.
    let mut ordered: Vec<TokenStream> = Vec::new();
    let mut wire = m.args.iter();
    let total = m.inputs.len();
    for pos in 0..total {
        if m.context.as_ref().is_some_and(|(_, p, _)| *p == pos) {
            ordered.push(quote!(&#ctx_ident));
        } else if m.stream_arg.is_some() && m.stream_pos == pos {
            let ident = &m.stream_arg.as_ref().map(|s| &s.ident);
            ordered.push(quote!(#ident));
        } else if let Some(a) = wire.next() {
            let ident = &a.ident;
            ordered.push(quote!(#ident));
        }
    }
    let run = quote!(<T as #trait_ident>::#name(__cmdstream_receiver, #(#ordered),*).await);
    let answer = match m.kind {
        Kind::Unary | Kind::ClientStream => {
            let (def, value) = wire::reply_value(r, m, run);
            quote!({
                #def
                __cmdstream_call.reply(#value)
            })
        }
        // Boxed: the stream pump is large, and kept inline it would make
        // every command's task (unary ones too) that much bigger.
        Kind::ServerStream | Kind::Bidi => {
            let results = wire::result_items(r, m, run);
            quote!(#krate::__private::Box::pin(__cmdstream_call.reply_stream(#results)).await)
        }
    };
    quote! {
        #id => {
            #decode
            #stream
            #context
            #answer
        }
    }
}

/// `Dispatch::dispatch_unary` for the unary commands whose receiver takes
/// no context: their arguments decoded into one enum, and one future (a
/// single type, so that the server keeps its box from call to call) that
/// runs the receiver and yields the result in another. Nothing when the
/// trait has no such command.
fn dispatch_unary(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let p = quote!(#krate::__private);
    let trait_ident = &r.ident;
    let methods: Vec<&Method> = r
        .methods
        .iter()
        .filter(|m| m.kind == Kind::Unary && m.context.is_none())
        .collect();
    if methods.is_empty() {
        return TokenStream::new();
    }
    let source = format_ident!("__cmdstream_unary");
    let names: Vec<_> = methods.iter().map(|m| &m.ident).collect();
    let arg_idents: Vec<Vec<_>> = methods
        .iter()
        .map(|m| m.args.iter().map(|a| &a.ident).collect())
        .collect();
    let arg_types = methods.iter().map(|m| {
        let types = m.args.iter().map(|a| &a.ty);
        quote!((#(#types,)*))
    });
    let result_types = methods.iter().map(|m| m.returns.item());
    let decodes = methods.iter().zip(&arg_idents).map(|(m, idents)| {
        let id = m.id;
        let name = &m.ident;
        let decode = wire::decode_args(
            r,
            m,
            &source,
            quote!(#p::Result::Ok(__cmdstream_unary.reject_args(error))),
        );
        quote! {
            #id => {
                #decode
                __CmdstreamArgs::#name((#(#idents,)*))
            }
        }
    });
    let serialize = methods.iter().map(|m| {
        let name = &m.ident;
        let (def, value) = wire::reply_value(r, m, quote!(*__cmdstream_value));
        quote! {
            __CmdstreamResult::#name(__cmdstream_value) => {
                #def
                #p::serde::Serialize::serialize(#value, __s)
            }
        }
    });
    quote! {
        fn dispatch_unary<'__a, C: #krate::Codec>(
            self: &#p::Arc<Self>,
            __cmdstream_unary: #p::Unary<'__a, C>,
        ) -> #p::Result<#p::Ran, #p::Unary<'__a, C>> {
            #[allow(non_camel_case_types)]
            enum __CmdstreamArgs {
                #(#names(#arg_types),)*
            }
            #[allow(non_camel_case_types)]
            enum __CmdstreamResult {
                #(#names(#result_types),)*
            }
            impl #p::serde::Serialize for __CmdstreamResult {
                #[inline]
                fn serialize<__S: #p::serde::Serializer>(&self, __s: __S) -> #p::Result<__S::Ok, __S::Error> {
                    match self {
                        #(#serialize)*
                    }
                }
            }
            let __cmdstream_args = match __cmdstream_unary.command().id {
                #(#decodes)*
                _ => return #p::Result::Err(__cmdstream_unary),
            };
            let __cmdstream_server = <#p::Arc<Self> as #p::Clone>::clone(self);
            #p::Result::Ok(__cmdstream_unary.run(move || async move {
                let __cmdstream_receiver = &__cmdstream_server.receiver;
                match __cmdstream_args {
                    #(__CmdstreamArgs::#names((#(#arg_idents,)*)) => __CmdstreamResult::#names(
                        <T as #trait_ident>::#names(__cmdstream_receiver, #(#arg_idents),*).await
                    ),)*
                }
            }))
        }
    }
}
