//! What the code `#[cmdstream::receiver]` generates builds on, besides the
//! public API: the means by which a type that cannot cross the wire (no
//! `Serialize`, say) is reported once, at the user's own type, rather than
//! again at every place the generated code serializes it.
//!
//! The generated code asserts, spanned on each type, that it is
//! `Serialize + DeserializeOwned + Send`: those are the errors the user
//! sees. Everywhere else it goes through [`Wire`] and [`WireDe`], whose
//! methods resolve (at the concrete type, by autoref) to the type's own
//! serde impls when it has them, and otherwise to a fallback that merely
//! compiles. A program with the fallback in it never builds, since the
//! assertion fails, so the fallback never runs.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::ser::{Error as _, Serialize, Serializer};

/// A value to serialize with its own `Serialize` impl.
pub struct Wire<'a, T: ?Sized>(pub &'a T);

/// Chosen when `T: Serialize` (the call is `(&Wire(v)).__cmdstream_serialize(s)`).
pub trait ViaSerde {
    /// Serializes the value.
    fn __cmdstream_serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

impl<T: Serialize + ?Sized> ViaSerde for Wire<'_, T> {
    #[inline]
    fn __cmdstream_serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Chosen otherwise; never runs (see the module's docs).
pub trait NoSerde {
    /// Fails.
    fn __cmdstream_serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

impl<T: ?Sized> NoSerde for &Wire<'_, T> {
    fn __cmdstream_serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("the type does not implement Serialize"))
    }
}

/// A value of type `T` to deserialize with its own `Deserialize` impl.
pub struct WireDe<T>(PhantomData<fn() -> T>);

impl<T> WireDe<T> {
    /// The marker.
    pub const fn new() -> Self {
        WireDe(PhantomData)
    }
}

impl<T> Default for WireDe<T> {
    fn default() -> Self {
        WireDe::new()
    }
}

/// Chosen when `T: DeserializeOwned`.
pub trait ViaSerdeDe<T> {
    /// Deserializes a `T`.
    fn __cmdstream_deserialize<'de, D: Deserializer<'de>>(&self, d: D) -> Result<T, D::Error>;
}

impl<T: DeserializeOwned> ViaSerdeDe<T> for WireDe<T> {
    #[inline]
    fn __cmdstream_deserialize<'de, D: Deserializer<'de>>(&self, d: D) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// Chosen otherwise; never runs.
pub trait NoSerdeDe<T> {
    /// Fails.
    fn __cmdstream_deserialize<'de, D: Deserializer<'de>>(&self, d: D) -> Result<T, D::Error>;
}

impl<T> NoSerdeDe<T> for &WireDe<T> {
    fn __cmdstream_deserialize<'de, D: Deserializer<'de>>(&self, _: D) -> Result<T, D::Error> {
        Err(D::Error::custom("the type does not implement Deserialize"))
    }
}

pin_project_lite::pin_project! {
    /// A stream with each item passed through `f`: how generated code
    /// wraps a stream's items on their way to and from the wire.
    pub struct MapItems<S, F> {
        #[pin]
        stream: S,
        f: F,
    }
}

impl<S, F> MapItems<S, F> {
    /// `stream`, its items passed through `f`.
    pub fn new(stream: S, f: F) -> Self {
        MapItems { stream, f }
    }
}

impl<S: Stream, F: FnMut(S::Item) -> U, U> Stream for MapItems<S, F> {
    type Item = U;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let this = self.project();
        this.stream.poll_next(cx).map(|item| item.map(this.f))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Bincode, Codec};

    struct NotSerde;

    // The borrow is the form generated code uses; it is what picks the impl.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn a_serde_type_goes_through_its_own_impls_and_others_get_the_fallback() {
        // Concrete types at the call site, as in generated code.
        let mut buf = bytes::BytesMut::new();
        struct Via<'a>(&'a u32);
        impl Serialize for Via<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                (&Wire(self.0)).__cmdstream_serialize(s)
            }
        }
        Bincode.encode(&Via(&7), &mut buf).unwrap();
        assert_eq!(Bincode.decode::<u32>(&buf).unwrap(), 7);

        struct Not<'a>(&'a NotSerde);
        impl Serialize for Not<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                (&Wire(self.0)).__cmdstream_serialize(s)
            }
        }
        assert!(Bincode.encode(&Not(&NotSerde), &mut buf).is_err());

        use serde::de::value::{Error as ValueError, U8Deserializer};
        let d = U8Deserializer::<ValueError>::new(5);
        let n: u8 = (&WireDe::<u8>::new()).__cmdstream_deserialize(d).unwrap();
        assert_eq!(n, 5);
        let d = U8Deserializer::<ValueError>::new(5);
        let not: Result<NotSerde, _> = (&WireDe::<NotSerde>::new()).__cmdstream_deserialize(d);
        assert!(not.is_err());
    }
}
