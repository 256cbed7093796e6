//! The static description of the service: name, fingerprint and commands.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, ToTokens};

use crate::model::{Receiver, Returns};

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
        let timeout = match m.timeout_ms {
            Some(ms) => quote!(#krate::__private::Option::Some(#krate::__private::Duration::from_millis(#ms))),
            None => quote!(#krate::__private::Option::None),
        };
        quote! {
            #krate::CommandInfo { id: #id, name: #wire, kind: #krate::CommandKind::#kind, timeout: #timeout }
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #name: #krate::ServiceInfo = #krate::ServiceInfo {
            name: #service,
            fingerprint: #fingerprint,
            commands: &[#(#commands),*],
        };
    }
}

/// A 64-bit FNV-1a hash of the whole command set as written: the service
/// name and, for every command in id order, its id, wire name, shape,
/// argument types and result type.
pub(crate) fn fingerprint(r: &Receiver) -> u64 {
    let mut text = format!("cmdstream/1 service {}", r.ident);
    let mut methods: Vec<_> = r.methods.iter().collect();
    methods.sort_by_key(|m| m.id);
    for m in methods {
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
        text.push_str(&format!(
            "; {} {} {:?} ({}) items {:?} -> {}",
            m.id,
            m.wire_name,
            m.kind,
            args.join(", "),
            stream,
            result
        ));
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
