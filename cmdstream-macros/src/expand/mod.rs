//! One generator per generated item; each reads only the model.

mod assertions;
mod client;
mod command_enum;
mod dispatch;
mod info;
mod trait_def;
mod wire;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::Receiver;

pub(crate) fn receiver(r: &Receiver) -> TokenStream {
    let trait_def = trait_def::expand(r);
    let info = info::expand(r);
    let command_enum = command_enum::expand(r);
    let dispatch = dispatch::expand(r);
    let client = client::expand(r);
    let assertions = assertions::expand(r);
    quote! {
        #trait_def
        #info
        #command_enum
        #dispatch
        #client
        #assertions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::ReceiverOptions;
    use crate::ctxt::Ctxt;

    fn model(item: syn::ItemTrait) -> Receiver {
        let mut cx = Ctxt::default();
        let r = crate::parse::receiver(
            &mut cx,
            &item,
            ReceiverOptions {
                krate: syn::parse_quote!(::cmdstream),
                derives: Vec::new(),
            },
        );
        assert!(cx.check().is_ok());
        r
    }

    fn calc() -> Receiver {
        model(syn::parse_quote! {
            pub trait Calc {
                /// Adds.
                async fn add(&self, a: i64, b: i64) -> i64;
                async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;
                async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64;
            }
        })
    }

    fn items(tokens: TokenStream) -> Vec<String> {
        let file: syn::File = syn::parse2(tokens).expect("the expansion parses as Rust items");
        file.items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Trait(t) => Some(format!("trait {}", t.ident)),
                syn::Item::Struct(s) => Some(format!("struct {}", s.ident)),
                syn::Item::Enum(e) => Some(format!("enum {}", e.ident)),
                syn::Item::Static(s) => Some(format!("static {}", s.ident)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn generates_every_item() {
        let names = items(receiver(&calc()));
        for expected in [
            "trait Calc",
            "static __CMDSTREAM_CALC_INFO",
            "enum CalcCommand",
            "enum CalcReply",
            "struct CalcServer",
            "struct CalcClient",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
    }

    #[test]
    fn the_trait_demands_send_futures_and_keeps_docs() {
        let t: syn::ItemTrait = syn::parse2(trait_def::expand(&calc())).unwrap();
        let text = quote!(#t).to_string();
        assert!(
            text.contains("Future < Output = i64 > + :: cmdstream :: __private :: Send"),
            "{text}"
        );
        assert!(text.contains("# [doc = r\" Adds.\"]"), "{text}");
        assert!(!text.contains("async"), "{text}");
    }

    #[test]
    fn only_value_commands_become_enum_variants() {
        let e: syn::File = syn::parse2(command_enum::expand(&calc())).unwrap();
        let command = e
            .items
            .iter()
            .find_map(|item| match item {
                syn::Item::Enum(e) if e.ident == "CalcCommand" => Some(e),
                _ => None,
            })
            .expect("the command enum");
        let variants: Vec<String> = command
            .variants
            .iter()
            .map(|v| v.ident.to_string())
            .collect();
        assert_eq!(variants, ["Add", "Countdown"]);
    }

    #[test]
    fn every_command_gets_a_dispatch_arm_and_a_client_method() {
        let dispatch = dispatch::expand(&calc()).to_string();
        for m in calc().methods {
            assert!(
                dispatch.contains(&format!("{}u32 =>", m.id)),
                "no arm for {}",
                m.ident
            );
        }
        let client = client::expand(&calc()).to_string();
        // A unary method returns its call's future as it is; the others
        // are async.
        for name in ["pub fn add", "pub async fn countdown", "pub async fn total"] {
            assert!(client.contains(name), "{name} missing");
        }
        assert!(
            client.contains("client_stream"),
            "total streams its argument"
        );
    }

    #[test]
    fn fingerprint_follows_the_wire_not_rust_names() {
        let base = info::fingerprint(&calc());
        let renamed = model(syn::parse_quote! {
            pub trait Calc {
                #[command(name = "add")]
                async fn plus(&self, a: i64, b: i64) -> i64;
                async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;
                async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64;
            }
        });
        assert_eq!(info::fingerprint(&renamed), base);
        let retyped = model(syn::parse_quote! {
            pub trait Calc {
                async fn add(&self, a: i32, b: i64) -> i64;
                async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;
                async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64;
            }
        });
        assert_ne!(info::fingerprint(&retyped), base);
    }

    #[test]
    fn assertions_cover_every_wire_type() {
        let text = assertions::expand(&calc()).to_string();
        // add: a, b, result; countdown: from, item; total: item, result.
        assert_eq!(text.matches("assert_wire_type ::").count(), 7, "{text}");
    }
}
