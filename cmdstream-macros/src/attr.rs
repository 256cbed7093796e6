//! The options of `#[cmdstream::receiver(...)]` and `#[command(...)]`.

use proc_macro2::Span;
use syn::{Attribute, LitInt, LitStr, Path};

use crate::ctxt::Ctxt;

/// Options of the receiver attribute.
pub(crate) struct ReceiverOptions {
    pub(crate) krate: Path,
    /// Extra derives for the command enum, from `derive(Debug, Clone, …)`.
    pub(crate) derives: Vec<Path>,
}

pub(crate) fn receiver_options(cx: &mut Ctxt, args: proc_macro2::TokenStream) -> ReceiverOptions {
    let mut krate: Path = syn::parse_quote!(::cmdstream);
    let mut derives = Vec::new();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let value: LitStr = meta.value()?.parse()?;
            krate = value.parse()?;
            Ok(())
        } else if meta.path.is_ident("derive") {
            meta.parse_nested_meta(|inner| {
                derives.push(inner.path);
                Ok(())
            })
        } else {
            Err(meta.error(
                "unknown receiver option; expected `crate = \"path\"` or `derive(Trait, ...)` for the command enum",
            ))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(e);
    }
    ReceiverOptions { krate, derives }
}

/// Options of one method's `#[command(...)]`.
#[derive(Default)]
pub(crate) struct CommandOptions {
    pub(crate) id: Option<(u32, Span)>,
    pub(crate) name: Option<(String, Span)>,
    pub(crate) timeout_ms: Option<u64>,
    /// `#[command(idempotent)]`: running the command twice does no harm.
    pub(crate) idempotent: bool,
}

/// Whether an attribute is ours (`#[command]`), to be removed from the trait.
pub(crate) fn is_command_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("command")
}

pub(crate) fn command_options(cx: &mut Ctxt, attrs: &[Attribute]) -> CommandOptions {
    let mut opts = CommandOptions::default();
    for attr in attrs.iter().filter(|a| is_command_attr(a)) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("id") {
                let lit: LitInt = meta.value()?.parse()?;
                let id = lit.base10_parse::<u32>()?;
                if opts.id.replace((id, lit.span())).is_some() {
                    return Err(meta.error("`id` is given twice"));
                }
            } else if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(lit.span(), "the wire name cannot be empty"));
                }
                if opts.name.replace((lit.value(), lit.span())).is_some() {
                    return Err(meta.error("`name` is given twice"));
                }
            } else if meta.path.is_ident("timeout") {
                let lit: LitStr = meta.value()?.parse()?;
                let ms = parse_duration(&lit.value()).ok_or_else(|| {
                    syn::Error::new(
                        lit.span(),
                        "cannot read this timeout; write a number and a unit, like \"250ms\", \"5s\", \"2m\" or \"1h\"",
                    )
                })?;
                opts.timeout_ms = Some(ms);
            } else if meta.path.is_ident("idempotent") {
                if opts.idempotent {
                    return Err(meta.error("`idempotent` is given twice"));
                }
                opts.idempotent = true;
            } else {
                return Err(meta.error("unknown command option; expected `id = N`, `name = \"...\"`, `timeout = \"...\"` or `idempotent`"));
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    opts
}

/// Reads "250ms", "5s", "2m", "1h" as milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor).filter(|ms| *ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("5s"), Some(5_000));
        assert_eq!(parse_duration(" 2m "), Some(120_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 days"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn command_options_are_read() {
        let attrs: Vec<Attribute> =
            vec![syn::parse_quote!(#[command(id = 7, name = "count", timeout = "3s", idempotent)])];
        let mut cx = Ctxt::default();
        let opts = command_options(&mut cx, &attrs);
        assert!(cx.check().is_ok());
        assert_eq!(opts.id.map(|(id, _)| id), Some(7));
        assert_eq!(opts.name.map(|(n, _)| n).as_deref(), Some("count"));
        assert_eq!(opts.timeout_ms, Some(3_000));
        assert!(opts.idempotent);
    }

    #[test]
    fn unknown_command_option_is_an_error() {
        let attrs: Vec<Attribute> = vec![syn::parse_quote!(#[command(retries = 3)])];
        let mut cx = Ctxt::default();
        command_options(&mut cx, &attrs);
        assert!(cx.check().is_err());
    }
}
