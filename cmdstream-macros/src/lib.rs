//! Procedural macros for `cmdstream`. Use them through the `cmdstream`
//! crate: `#[cmdstream::receiver]`.
//!
//! The macro reads a trait (`parse`) into a model (`model`), checks rules
//! that span several methods (`check`), and generates one item per
//! generator (`expand`). Every error is collected and reported at once, at
//! the culprit's span; on error the trait is still emitted, so the rest of
//! the program keeps type-checking.
//!
//! Set `CMDSTREAM_MACROS_DEBUG=1` while building to print each expansion.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemTrait, TraitItem};

mod attr;
mod check;
mod ctxt;
mod expand;
mod model;
mod parse;

/// Turns a trait into a cmdstream service: its commands as values, the
/// server's dispatch and a typed client.
///
/// ```ignore
/// #[cmdstream::receiver]
/// pub trait Calc {
///     /// Adds two numbers.
///     async fn add(&self, a: i64, b: i64) -> i64;                                  // unary
///     async fn div(&self, a: i64, b: i64) -> Result<i64, DivError>;                // typed app error
///     #[command(id = 7, timeout = "5s")]
///     async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;      // server streaming
///     async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64;         // client streaming
///     async fn echo(&self, lines: impl Stream<Item = String> + Send)
///         -> impl Stream<Item = String> + Send;                                    // bidirectional
///     async fn whoami(&self, ctx: &cmdstream::CallContext) -> String;             // sees the call's context
/// }
/// ```
///
/// # The rules
///
/// - Every method is an `async fn` taking `&self`; no generics, no default
///   bodies. Implementations may hold only `Send` values across `.await`:
///   the compiler says so at the implementation's own line.
/// - Arguments and results are owned `serde` types (`Serialize +
///   DeserializeOwned + Send + 'static`). A `Result<T, E>` result travels as
///   a value, so `E` reaches the caller typed.
/// - An argument or a unary result written `Vec<u8>` travels as one byte
///   string, copied at once instead of byte by byte through serde; the
///   bytes are the same as a plain `Vec<u8>`'s in bincode, JSON and
///   postcard (with a codec of your own that tells the two apart, both
///   sides must come from this macro). Only that spelling is recognised:
///   an alias, or a `Vec<u8>` inside another type, goes through serde as
///   usual.
/// - A stream is written `impl Stream<Item = T> + Send`: as an argument it
///   makes the command client-streaming, as the result server-streaming,
///   both: bidirectional. At most one stream argument per method.
/// - An argument of type `&CallContext` is not sent: the server fills it
///   with the caller's address, deadline, trace context and metadata.
///
/// # Options
///
/// - `#[command(id = N)]`: the command's wire id. Without it the id is a
///   hash of the wire name — never the declaration order.
/// - `#[command(name = "...")]`: the wire name, to rename a method without
///   breaking peers.
/// - `#[command(timeout = "250ms" | "5s" | "2m" | "1h")]`: the default
///   timeout of calls that set none.
/// - `#[command(idempotent)]`: running it twice does no harm, so a
///   reconnecting client may send a call again that a lost connection may
///   have delivered (`cmdstream::Reconnect`).
/// - `#[cmdstream::receiver(derive(Debug, Clone))]`: derives added to the
///   command enum; `crate = "path"`: where the `cmdstream` crate is, when
///   it is renamed.
///
/// # What it generates, for a trait `Calc`
///
/// - the trait itself, whose methods return `Send` futures;
/// - `CalcCommand`: a serde enum with one variant per command whose
///   arguments are plain values, with `name()` and `id()`;
/// - `CalcReply<C>`: what sending a `CalcCommand` returns;
/// - `CalcServer<T: Calc>`: the `cmdstream::Dispatch` to serve with
///   `cmdstream::Server::new(CalcServer::new(receiver))`;
/// - `CalcClient<C>`: `connect(addr)`, `connect_with(builder, addr)`,
///   `from_client(client)`, `with_options(options)`, `send(&command)` and
///   one method per trait method, awaited for a
///   `Result<_, cmdstream::Error>` (streams as `cmdstream::ResultStream`).
///   A unary method returns its call's future (`impl Future + Send`, which
///   owns the arguments and sends nothing until polled); the others are
///   `async fn`s.
///
/// Errors in the trait are all reported at once, each at its culprit.
#[proc_macro_attribute]
pub fn receiver(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<ItemTrait>(input) {
        Ok(item) => item,
        Err(e) => {
            let mut e = e;
            e.combine(syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[cmdstream::receiver] goes on a trait",
            ));
            return e.to_compile_error().into();
        }
    };
    let mut cx = ctxt::Ctxt::default();
    let options = attr::receiver_options(&mut cx, args.into());
    let model = parse::receiver(&mut cx, &item, options);
    check::receiver(&mut cx, &model);
    let output = match cx.check() {
        Ok(()) => expand::receiver(&model),
        Err(errors) => {
            let item = without_command_attrs(item);
            quote!(#item #errors)
        }
    };
    if std::env::var_os("CMDSTREAM_MACROS_DEBUG").is_some_and(|v| v == "1") {
        eprintln!(
            "// #[cmdstream::receiver] on `{}` expands to:\n{output}",
            model.ident
        );
    }
    output.into()
}

/// The trait as written, minus our `#[command]` attributes, which would
/// otherwise be reported as unknown.
fn without_command_attrs(mut item: ItemTrait) -> ItemTrait {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.attrs.retain(|a| !attr::is_command_attr(a));
        }
    }
    item
}
