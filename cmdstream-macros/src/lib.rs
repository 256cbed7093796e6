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

/// Turns a trait into a cmdstream service: a command enum, the server's
/// dispatch and a typed client. See the `cmdstream` crate for the guide.
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
