//! Rules that span several methods: unique ids, unique wire names, unique
//! command-enum variants, and no clash with the generated client's methods.

use std::collections::HashMap;

use crate::ctxt::Ctxt;
use crate::model::Receiver;

/// Methods every generated client has; a receiver method of the same name
/// would collide with them.
pub(crate) const CLIENT_METHODS: &[&str] = &[
    "connect",
    "connect_with",
    "from_client",
    "client",
    "with_options",
    "send",
];

pub(crate) fn receiver(cx: &mut Ctxt, r: &Receiver) {
    let mut ids = HashMap::new();
    let mut names = HashMap::new();
    let mut variants = HashMap::new();
    for m in &r.methods {
        // Two derived ids collide when their names do: the name error says it.
        let same_name = r
            .methods
            .iter()
            .any(|o| o.ident != m.ident && o.wire_name == m.wire_name);
        if let Some(first) = ids
            .insert(m.id, &m.ident)
            .filter(|_| m.id_explicit || !same_name)
        {
            cx.error_at(
                m.id_span,
                format!(
                    "command id {} of `{}` is already used by `{first}`; give one of them another `#[command(id = N)]`",
                    m.id, m.ident
                ),
            );
        }
        if let Some(first) = names.insert(m.wire_name.clone(), &m.ident) {
            cx.error_at(
                m.name_span,
                format!(
                    "wire name \"{}\" of `{}` is already used by `{first}`; give one of them another `#[command(name = \"...\")]`",
                    m.wire_name, m.ident
                ),
            );
        }
        if let Some(first) = variants.insert(m.variant().to_string(), &m.ident) {
            cx.error(
                &m.ident,
                format!(
                    "`{}` and `{first}` both become the command variant `{}`; rename one of them",
                    m.ident,
                    m.variant()
                ),
            );
        }
        if CLIENT_METHODS.contains(&m.ident.to_string().as_str()) {
            cx.error(
                &m.ident,
                format!(
                    "`{}` clashes with a method of the generated `{}Client`; rename the method and keep its wire name with `#[command(name = \"{}\")]`",
                    m.ident, r.ident, m.ident
                ),
            );
        }
    }
}
