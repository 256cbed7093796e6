//! The static description of the service: name, fingerprint and commands.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, ToTokens};

use crate::model::{Method, Receiver, Returns};

/// The name of the hidden static holding the service description.
pub(crate) fn static_name(r: &Receiver) -> Ident {
    Ident::new(
        &format!("__CMDSTREAM_{}_INFO", r.ident.to_string().to_uppercase()),
        r.ident.span(),
    )
}

pub(crate) fn expand(r: &Receiver) -> TokenStream {
    let krate = &r.krate;
    let name = static_name(r);
    let service = r.ident.to_string();
    let fingerprint = fingerprint(r);
    let commands = r.methods.iter().map(|m| {
        let id = m.id;
        let wire = &m.wire_name;
        let kind = Ident::new(m.kind.variant(), m.ident.span());
        let timeout = m
            .timeout_ms
            .map(|ms| quote!(.with_timeout(#krate::__private::Duration::from_millis(#ms))));
        let idempotent = m.idempotent.then(|| quote!(.idempotent()));
        let signature = signature(m);
        let path = format!("{service}/{wire}");
        quote! {
            #krate::CommandInfo::new(#id, #wire, #krate::CommandKind::#kind, #signature)
                .with_path(#path)#timeout #idempotent
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #name: #krate::ServiceInfo =
            #krate::ServiceInfo::new(#service, #fingerprint, &[#(#commands),*]);
    }
}

/// What a command looks like on the wire, as written: its id, wire name,
/// shape, argument types and result type. Rust names of methods and
/// arguments are not part of it, so renaming them keeps peers compatible.
fn describe(m: &Method) -> String {
    let args: Vec<String> = m
        .args
        .iter()
        .map(|a| a.ty.to_token_stream().to_string())
        .collect();
    let stream = m
        .stream_arg
        .as_ref()
        .map(|s| s.item.to_token_stream().to_string());
    let result = match &m.returns {
        Returns::Value(ty) => ty.to_token_stream().to_string(),
        Returns::Stream { item, .. } => format!("stream {}", item.to_token_stream()),
    };
    format!(
        "{} {} {:?} ({}) items {:?} -> {}",
        m.id,
        m.wire_name,
        m.kind,
        args.join(", "),
        stream,
        result
    )
}

/// The signature of one command: a hash of [`describe`].
pub(crate) fn signature(m: &Method) -> u64 {
    fnv1a(&describe(m))
}

/// The fingerprint of the whole command set: the service name and every
/// command's description, in id order.
pub(crate) fn fingerprint(r: &Receiver) -> u64 {
    let mut methods: Vec<_> = r.methods.iter().collect();
    methods.sort_by_key(|m| m.id);
    let mut text = format!("cmdstream/1 service {}", r.ident);
    for m in methods {
        text.push_str("; ");
        text.push_str(&describe(m));
    }
    fnv1a(&text)
}

fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
