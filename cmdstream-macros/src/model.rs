//! What a receiver trait means, independent of how it was written: the
//! generators read only this.

use proc_macro2::{Ident, Span};
use syn::{Attribute, Path, Type, Visibility};

/// The shape of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

impl Kind {
    pub(crate) fn from_streams(args: bool, results: bool) -> Kind {
        match (args, results) {
            (false, false) => Kind::Unary,
            (false, true) => Kind::ServerStream,
            (true, false) => Kind::ClientStream,
            (true, true) => Kind::Bidi,
        }
    }

    /// The variant name of `cmdstream::CommandKind`.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Kind::Unary => "Unary",
            Kind::ServerStream => "ServerStream",
            Kind::ClientStream => "ClientStream",
            Kind::Bidi => "Bidi",
        }
    }

    /// Whether the command can be a value of the command enum: its
    /// arguments are all plain values, none of them a stream.
    pub(crate) fn is_value(self) -> bool {
        matches!(self, Kind::Unary | Kind::ServerStream)
    }
}

/// One argument sent on the wire.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

impl Arg {
    /// Whether it travels as one byte string (see [`is_byte_vec`]).
    pub(crate) fn is_bytes(&self) -> bool {
        is_byte_vec(&self.ty)
    }
}

/// Whether `ty` is written `Vec<u8>` (with any path to `Vec`). Such
/// values go through serde as one byte string instead of a sequence of
/// bytes; an alias is not recognised, and travels element by element.
pub(crate) fn is_byte_vec(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    if p.qself.is_some() {
        return false;
    }
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if last.ident != "Vec" {
        return false;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(
        args.args.iter().collect::<Vec<_>>()[..],
        [syn::GenericArgument::Type(Type::Path(inner))]
            if inner.qself.is_none() && inner.path.is_ident("u8")
    )
}

/// The argument that is a stream of items.
pub(crate) struct StreamArg {
    pub(crate) ident: Ident,
    pub(crate) item: Type,
}

/// What a method returns.
#[allow(clippy::large_enum_variant)] // built once per method at compile time
pub(crate) enum Returns {
    /// One value of this type (`()` when nothing is written).
    Value(Type),
    /// A stream: the whole type as written, and its item type.
    Stream { ty: Type, item: Type },
}

impl Returns {
    /// Whether it is one value that travels as a byte string.
    pub(crate) fn is_bytes(&self) -> bool {
        matches!(self, Returns::Value(ty) if is_byte_vec(ty))
    }

    /// The type the client sees per result.
    pub(crate) fn item(&self) -> &Type {
        match self {
            Returns::Value(ty) => ty,
            Returns::Stream { item, .. } => item,
        }
    }
}

pub(crate) struct Method {
    pub(crate) ident: Ident,
    /// Every argument after `&self`, as written.
    pub(crate) inputs: Vec<syn::FnArg>,
    /// The `///` docs and other attributes kept on the trait method.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) kind: Kind,
    /// The wire id: from `#[command(id = N)]` or derived from the name.
    pub(crate) id: u32,
    /// Whether the id was given with `#[command(id = N)]`.
    pub(crate) id_explicit: bool,
    pub(crate) id_span: Span,
    /// The name on the wire and in fingerprints.
    pub(crate) wire_name: String,
    pub(crate) name_span: Span,
    pub(crate) timeout_ms: Option<u64>,
    /// Whether a reconnecting client may send it again after a lost
    /// connection (`#[command(idempotent)]`).
    pub(crate) idempotent: bool,
    /// The name of the `&CallContext` argument and its position among all
    /// arguments, when the method takes one.
    pub(crate) context: Option<(Ident, usize, Type)>,
    pub(crate) args: Vec<Arg>,
    pub(crate) stream_arg: Option<StreamArg>,
    /// Where the stream argument stands among all arguments.
    pub(crate) stream_pos: usize,
    pub(crate) returns: Returns,
}

impl Method {
    /// The variant of the command enum: the method name in UpperCamelCase.
    pub(crate) fn variant(&self) -> Ident {
        let mut out = String::new();
        for part in self
            .ident
            .to_string()
            .trim_start_matches("r#")
            .split('_')
            .filter(|p| !p.is_empty())
        {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
        Ident::new(&out, self.ident.span())
    }
}

pub(crate) struct Receiver {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) supertraits: syn::punctuated::Punctuated<syn::TypeParamBound, syn::token::Plus>,
    /// How to reach the runtime crate, `::cmdstream` unless renamed.
    pub(crate) krate: Path,
    /// Extra derives for the command enum.
    pub(crate) derives: Vec<Path>,
    pub(crate) methods: Vec<Method>,
}

impl Receiver {
    pub(crate) fn named(&self, suffix: &str) -> Ident {
        Ident::new(&format!("{}{suffix}", self.ident), self.ident.span())
    }
}

#[cfg(test)]
mod tests {
    use super::is_byte_vec;

    #[test]
    fn byte_vectors_are_recognised_by_their_spelling() {
        let yes: [syn::Type; 3] = [
            syn::parse_quote!(Vec<u8>),
            syn::parse_quote!(std::vec::Vec<u8>),
            syn::parse_quote!(::alloc::vec::Vec<u8>),
        ];
        let no: [syn::Type; 5] = [
            syn::parse_quote!(Vec<u16>),
            syn::parse_quote!(Vec<Vec<u8>>),
            syn::parse_quote!(Option<Vec<u8>>),
            syn::parse_quote!(Bytes),
            syn::parse_quote!(<T as Tr>::Vec<u8>),
        ];
        assert!(yes.iter().all(is_byte_vec));
        assert!(!no.iter().any(is_byte_vec));
    }
}
