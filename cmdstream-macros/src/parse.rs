//! Reads a receiver trait into the model, recording every unsupported shape
//! with a span on the culprit and a message saying what to do.

use quote::ToTokens;

use syn::{
    FnArg, GenericArgument, ItemTrait, Pat, PathArguments, ReturnType, TraitItem, TraitItemFn,
    Type, TypeParamBound,
};

use crate::attr::{self, ReceiverOptions};
use crate::ctxt::Ctxt;
use crate::model::{Arg, Kind, Method, Receiver, Returns, StreamArg};

pub(crate) fn receiver(cx: &mut Ctxt, item: &ItemTrait, options: ReceiverOptions) -> Receiver {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error(&item.generics, "a receiver trait cannot be generic: its commands are sent over the network and need concrete types");
    }
    if let Some(unsafety) = &item.unsafety {
        cx.error(unsafety, "a receiver trait cannot be `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        cx.error(auto, "a receiver trait cannot be an auto trait");
    }
    let mut methods = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(f) => {
                if let Some(m) = method(cx, f) {
                    methods.push(m);
                }
            }
            other => cx.error(
                other,
                "a receiver trait holds only `async fn` methods; move constants and types out of it",
            ),
        }
    }
    Receiver {
        vis: item.vis.clone(),
        ident: item.ident.clone(),
        attrs: item.attrs.clone(),
        supertraits: item.supertraits.clone(),
        krate: options.krate,
        derives: options.derives,
        methods,
    }
}

fn method(cx: &mut Ctxt, f: &TraitItemFn) -> Option<Method> {
    let sig = &f.sig;
    let opts = attr::command_options(cx, &f.attrs);
    let mut ok = true;
    let mut fail = |cx: &mut Ctxt, tokens: &dyn ToTokens, msg: &str| {
        cx.error(tokens.to_token_stream(), msg);
        ok = false;
    };

    if let Some(t) = &sig.constness {
        fail(cx, t, "a receiver method cannot be `const`");
    }
    if let Some(t) = &sig.unsafety {
        fail(cx, t, "a receiver method cannot be `unsafe`");
    }
    if let Some(t) = &sig.abi {
        fail(cx, t, "a receiver method cannot have an `extern` ABI");
    }
    if let Some(t) = &sig.variadic {
        fail(cx, t, "a receiver method cannot be variadic");
    }
    if sig.asyncness.is_none() {
        fail(
            cx,
            &sig.fn_token,
            "receiver methods must be `async fn`: each command runs as a future on the server",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        fail(
            cx,
            &sig.generics,
            "a receiver method cannot be generic: its arguments and result are sent over the network and need concrete types",
        );
    }
    if let Some(body) = &f.default {
        fail(
            cx,
            body,
            "a receiver method cannot have a default body; implement it in the `impl` block",
        );
    }

    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) if r.mutability.is_some() => fail(
            cx,
            r,
            "receiver methods take `&self`, not `&mut self`: one receiver serves every connection at once; keep mutable state behind a Mutex or atomics",
        ),
        Some(FnArg::Receiver(r)) => fail(
            cx,
            r,
            "receiver methods take `&self`: one receiver value is shared by every call, so it cannot be taken by value",
        ),
        _ => fail(
            cx,
            &sig.ident,
            "receiver methods take `&self` as their first argument",
        ),
    }

    let mut args = Vec::new();
    let mut context = None;
    let mut stream_arg: Option<StreamArg> = None;
    let mut stream_pos = 0;
    for (pos, input) in sig.inputs.iter().skip(1).enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        let Pat::Ident(pi) = &*pt.pat else {
            fail(
                cx,
                &pt.pat,
                "write a plain name for each argument, not a pattern",
            );
            continue;
        };
        if pi.by_ref.is_some() || pi.subpat.is_some() {
            fail(
                cx,
                &pt.pat,
                "write a plain name for each argument, not a pattern",
            );
            continue;
        }
        let ident = pi.ident.clone();
        if is_context(&pt.ty) {
            if context.is_some() {
                fail(cx, &pt.ty, "a method takes at most one `&CallContext`");
            }
            context = Some((ident, pos, (*pt.ty).clone()));
            continue;
        }
        if let Some(item) = stream_item(&pt.ty) {
            if !has_send(&pt.ty) {
                fail(cx, &pt.ty, "add `+ Send` to the stream argument: the command runs on a multi-threaded server");
            }
            if stream_arg.is_some() {
                fail(
                    cx,
                    &pt.ty,
                    "a method takes at most one stream argument; combine the items into one type",
                );
                continue;
            }
            stream_pos = pos;
            stream_arg = Some(StreamArg { ident, item });
            continue;
        }
        match &*pt.ty {
            Type::Reference(r) => fail(
                cx,
                r,
                "arguments travel over the network and must be owned types (`String`, not `&str`; `Vec<T>`, not `&[T]`)",
            ),
            Type::ImplTrait(t) => fail(
                cx,
                t,
                "the only `impl Trait` argument a receiver method takes is `impl Stream<Item = T> + Send`",
            ),
            _ => {}
        }
        args.push(Arg {
            ident,
            ty: (*pt.ty).clone(),
        });
    }

    let returns = match &sig.output {
        ReturnType::Default => Returns::Value(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => match stream_item(ty) {
            Some(item) => {
                if !has_send(ty) {
                    fail(cx, ty, "add `+ Send` to the returned stream: results are sent from a multi-threaded server");
                }
                Returns::Stream {
                    ty: (**ty).clone(),
                    item,
                }
            }
            None => {
                if let Type::ImplTrait(t) = &**ty {
                    fail(
                        cx,
                        t,
                        "the only `impl Trait` a receiver method returns is `impl Stream<Item = T> + Send`",
                    );
                }
                if let Type::Reference(r) = &**ty {
                    fail(
                        cx,
                        r,
                        "results travel over the network and must be owned types",
                    );
                }
                Returns::Value((**ty).clone())
            }
        },
    };

    if !ok {
        return None;
    }
    let kind = Kind::from_streams(
        stream_arg.is_some(),
        matches!(returns, Returns::Stream { .. }),
    );
    let (wire_name, name_span) = opts.name.unwrap_or_else(|| {
        (
            sig.ident.to_string().trim_start_matches("r#").to_owned(),
            sig.ident.span(),
        )
    });
    let id_explicit = opts.id.is_some();
    let (id, id_span) = opts
        .id
        .unwrap_or_else(|| (derived_id(&wire_name), sig.ident.span()));
    Some(Method {
        ident: sig.ident.clone(),
        inputs: sig.inputs.iter().skip(1).cloned().collect(),
        attrs: f
            .attrs
            .iter()
            .filter(|a| !attr::is_command_attr(a))
            .cloned()
            .collect(),
        kind,
        id,
        id_explicit,
        id_span,
        wire_name,
        name_span,
        timeout_ms: opts.timeout_ms,
        idempotent: opts.idempotent,
        context,
        args,
        stream_arg,
        stream_pos,
        returns,
    })
}

/// A command id derived from its wire name: FNV-1a, 32 bits. Stable across
/// versions and independent of declaration order; collisions are reported
/// at compile time.
pub(crate) fn derived_id(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Whether a type is `&CallContext` (by any path).
fn is_context(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.qself.is_none()
        && p.path
            .segments
            .last()
            .is_some_and(|s| s.ident == "CallContext")
}

/// Whether an `impl Trait` type lists `Send` among its bounds.
fn has_send(ty: &Type) -> bool {
    let Type::ImplTrait(t) = ty else { return false };
    t.bounds.iter().any(|b| matches!(b, TypeParamBound::Trait(tb) if tb.path.segments.last().is_some_and(|s| s.ident == "Send")))
}

/// The `T` of `impl Stream<Item = T> + …`.
fn stream_item(ty: &Type) -> Option<Type> {
    let Type::ImplTrait(t) = ty else { return None };
    t.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(tb) = bound else {
            return None;
        };
        let last = tb.path.segments.last()?;
        if last.ident != "Stream" {
            return None;
        }
        let PathArguments::AngleBracketed(ab) = &last.arguments else {
            return None;
        };
        ab.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(at) if at.ident == "Item" => Some(at.ty.clone()),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(item: ItemTrait) -> (Option<Receiver>, bool) {
        let mut cx = Ctxt::default();
        let r = receiver(
            &mut cx,
            &item,
            ReceiverOptions {
                krate: syn::parse_quote!(::cmdstream),
                derives: Vec::new(),
            },
        );
        let failed = cx.check().is_err();
        (Some(r), failed)
    }

    #[test]
    fn reads_every_shape() {
        let (r, failed) = parse(syn::parse_quote! {
            pub trait Calc {
                /// Adds.
                async fn add(&self, a: i64, b: i64) -> i64;
                #[command(id = 7, timeout = "2s")]
                async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;
                async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64;
                async fn echo(&self, ctx: &CallContext, lines: impl Stream<Item = String> + Send) -> impl Stream<Item = String> + Send;
                async fn ping(&self);
            }
        });
        assert!(!failed);
        let r = r.unwrap();
        let kinds: Vec<Kind> = r.methods.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Unary,
                Kind::ServerStream,
                Kind::ClientStream,
                Kind::Bidi,
                Kind::Unary
            ]
        );
        assert_eq!(r.methods[0].args.len(), 2);
        assert_eq!(r.methods[0].id, derived_id("add"));
        assert_eq!(r.methods[1].id, 7);
        assert_eq!(r.methods[1].timeout_ms, Some(2_000));
        assert!(r.methods[3].context.is_some());
        assert_eq!(r.methods[3].stream_pos, 1);
        assert_eq!(r.methods[0].attrs.len(), 1, "docs are kept");
        assert!(r.methods[1].attrs.is_empty(), "#[command] is consumed");
    }

    #[test]
    fn rejects_unsupported_shapes() {
        for item in [
            syn::parse_quote!(
                trait T {
                    async fn f(&mut self);
                }
            ),
            syn::parse_quote!(
                trait T {
                    async fn f(self);
                }
            ),
            syn::parse_quote!(
                trait T {
                    async fn f();
                }
            ),
            syn::parse_quote!(
                trait T {
                    fn f(&self) -> u8;
                }
            ),
            syn::parse_quote!(
                trait T {
                    async fn f<X>(&self, x: X);
                }
            ),
            syn::parse_quote!(
                trait T {
                    async fn f(&self, s: &str);
                }
            ),
            syn::parse_quote!(
                trait T {
                    async fn f(&self) -> impl Iterator<Item = u8>;
                }
            ),
            syn::parse_quote!(
                trait T {
                    const N: u8;
                }
            ),
            syn::parse_quote!(
                trait T<X> {
                    async fn f(&self);
                }
            ),
            syn::parse_quote!(
                trait T {
                    async fn f(&self) {}
                }
            ),
        ] {
            let (_, failed) = parse(item);
            assert!(failed);
        }
    }

    #[test]
    fn derived_ids_are_stable_fnv1a() {
        assert_eq!(derived_id(""), 0x811c_9dc5);
        assert_eq!(derived_id("a"), 0xe40c_292c);
    }
}
