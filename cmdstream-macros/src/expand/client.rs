//! `{Trait}Client`: one async method per receiver method, with the same
//! names, argument types and docs, over a `cmdstream::Client`.

use proc_macro2::TokenStream;
use quote::quote;

use super::info::static_name;
use super::wire;
use crate::model::{Kind, Method, Receiver, Returns};

pub(crate) fn expand(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let vis = &r.vis;
    let trait_ident = &r.ident;
    let client = r.named("Client");
    let command = r.named("Command");
    let reply = r.named("Reply");
    let info = static_name(r);
    let methods = r
        .methods
        .iter()
        .enumerate()
        .map(|(index, m)| method(r, index, m));
    // Sending a command by reference encodes its fields in place: `&T`
    // serializes exactly as `T`, so nothing is cloned.
    let sends = r
        .methods
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind.is_value())
        .map(|(index, m)| {
            let variant = m.variant();
            let fields: Vec<_> = m.args.iter().map(|a| &a.ident).collect();
            let (defs, tuple) = wire::args_tuple(r, m, false);
            let (ret, call) = match m.kind {
                Kind::ServerStream => (
                    TokenStream::new(),
                    quote!(self.inner.server_stream(&#info.commands[#index], #tuple)?),
                ),
                _ => {
                    let (ret, call) = wire::unary_result(
                        r,
                        m,
                        quote!(self.inner.unary(&#info.commands[#index], #tuple)),
                    );
                    (ret, quote!(#call?))
                }
            };
            quote! {
                #command::#variant { #(#fields),* } => {
                    #defs
                    #ret
                    #krate::__private::Result::Ok(#reply::#variant(#call))
                }
            }
        });
    let doc = format!(
        "A client of the [`{trait_ident}`] service: one method per command. Cheap to clone; every clone shares one connection."
    );
    quote! {
        #[doc = #doc]
        #vis struct #client<C = #krate::codec::DefaultCodec> {
            inner: #krate::Client<C>,
        }

        impl<C: #krate::Codec> #krate::__private::Clone for #client<C> {
            fn clone(&self) -> Self {
                #client { inner: #krate::__private::Clone::clone(&self.inner) }
            }
        }

        impl<C> #krate::__private::fmt::Debug for #client<C> {
            fn fmt(&self, f: &mut #krate::__private::fmt::Formatter<'_>) -> #krate::__private::fmt::Result {
                #krate::__private::fmt::Debug::fmt(&self.inner, f)
            }
        }

        impl<C: #krate::Codec> #krate::__private::From<#krate::Client<C>> for #client<C> {
            fn from(inner: #krate::Client<C>) -> Self {
                #client { inner }
            }
        }

        impl #client {
            /// The service description client and server compare when they connect.
            pub const INFO: &'static #krate::ServiceInfo = &#info;

            /// Connects with the default settings: TCP to a `"host:port"` or an address, a Unix socket to a path.
            ///
            /// # Errors
            ///
            /// See [`ClientBuilder::connect`](cmdstream::ClientBuilder::connect).
            pub async fn connect(
                addr: impl #krate::IntoEndpoint,
            ) -> #krate::__private::Result<Self, #krate::Error> {
                #krate::__private::Result::Ok(#client { inner: #krate::Client::connect(addr, &#info).await? })
            }
        }

        impl<C: #krate::Codec> #client<C> {
            /// Connects with the builder's settings (transport, TLS, codec, limits,
            /// timeouts) to a `"host:port"`, an address, an `Endpoint` or a path.
            ///
            /// # Errors
            ///
            /// See [`ClientBuilder::connect`](cmdstream::ClientBuilder::connect).
            pub async fn connect_with(
                builder: #krate::ClientBuilder<C>,
                addr: impl #krate::IntoEndpoint,
            ) -> #krate::__private::Result<Self, #krate::Error> {
                #krate::__private::Result::Ok(#client { inner: builder.connect(addr, &#info).await? })
            }

            /// Wraps a runtime client connected to this service (over any transport).
            pub fn from_client(inner: #krate::Client<C>) -> Self {
                #client { inner }
            }

            /// The runtime client underneath.
            pub fn client(&self) -> &#krate::Client<C> {
                &self.inner
            }

            /// A handle on the same connection whose calls use `options`
            /// (timeout, trace context, metadata).
            pub fn with_options(&self, options: #krate::CallOptions) -> Self {
                #client { inner: self.inner.with_options(options) }
            }

            /// Sends a command built earlier as a value; the command is only
            /// read, so it can be kept, logged or sent again.
            ///
            /// # Errors
            ///
            /// As the command's own method.
            pub async fn send(&self, command: &#command) -> #krate::__private::Result<#reply<C>, #krate::Error> {
                match command {
                    #(#sends)*
                }
            }

            #(#methods)*
        }

        impl<C: #krate::Codec> #krate::SendCommand for #client<C> {
            type Command = #command;
            type Reply = #reply<C>;

            fn send_command(
                &self,
                command: #command,
            ) -> impl #krate::__private::Future<Output = #krate::__private::Result<#reply<C>, #krate::Error>>
                   + #krate::__private::Send
                   + 'static {
                let client = #krate::__private::Clone::clone(self);
                async move { client.send(&command).await }
            }
        }
    }
}

fn method(r: &Receiver, index: usize, m: &Method) -> TokenStream {
    let krate = &r.krate;
    let info = static_name(r);
    let (attrs, name) = (&m.attrs, &m.ident);
    let args = m.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        quote!(#ident: #ty)
    });
    let stream_param = m.stream_arg.as_ref().map(|s| {
        let (ident, item) = (&s.ident, &s.item);
        quote!(#ident: impl #krate::Stream<Item = #item> + #krate::__private::Send + 'static)
    });
    let params = args.chain(stream_param);
    let command = quote!(&#info.commands[#index]);
    // A unary call's future owns its arguments; the others borrow them.
    let (defs, tuple) = wire::args_tuple(r, m, matches!(m.kind, Kind::Unary));
    let item = m.returns.item();
    let result = quote!(#krate::__private::Result);
    let error = quote!(#krate::Error);
    let sent = m
        .stream_arg
        .as_ref()
        .map(|s| wire::sent_items(r, &s.item, &s.ident));
    let (sent_def, sent) = sent.unzip();
    match (m.kind, &m.returns) {
        (Kind::Unary, _) => {
            // Not an `async fn`: the call's own future, returned as it is,
            // owns the arguments; an `async fn` here would wrap it in one
            // more state machine, polled and copied on every call.
            let (ret, map) = wire::unary_result_map(r, m);
            let future = quote!(#krate::__private::Future<Output = #result<#item, #error>>);
            quote! {
                #(#attrs)*
                pub fn #name(&self, #(#params),*) -> impl #future + #krate::__private::Send + '_ {
                    #defs
                    #ret
                    self.inner.__unary_owned(#command, #tuple, #map)
                }
            }
        }
        (Kind::ClientStream, _) => {
            let (ret, call) = wire::unary_result(
                r,
                m,
                quote!(self.inner.client_stream(#command, #tuple, #sent)),
            );
            quote! {
                #(#attrs)*
                pub async fn #name(&self, #(#params),*) -> #result<#item, #error> {
                    #defs
                    #sent_def
                    #ret
                    #call
                }
            }
        }
        (Kind::ServerStream, Returns::Stream { .. }) => quote! {
            #(#attrs)*
            pub async fn #name(&self, #(#params),*) -> #result<#krate::ResultStream<#item, C>, #error> {
                #defs
                self.inner.server_stream(#command, #tuple)
            }
        },
        (Kind::Bidi, _) | (Kind::ServerStream, _) => quote! {
            #(#attrs)*
            pub async fn #name(&self, #(#params),*) -> #result<#krate::ResultStream<#item, C>, #error> {
                #defs
                #sent_def
                self.inner.bidi(#command, #tuple, #sent)
            }
        },
    }
}
