//! User key/value metadata that travels with a call or a connection.

use crate::error::Error;

/// The most bytes of a key or a value: the wire counts each with a `u16`.
const MAX_STR16: usize = u16::MAX as usize;

/// The most entries one call or connection carries. Each costs the
/// receiver two strings, so this bounds what a peer's metadata makes it
/// allocate, whatever the frame size.
pub(crate) const MAX_ENTRIES: usize = 256;

/// The most bytes of keys and values together one call or connection
/// carries.
pub(crate) const MAX_BYTES: usize = 64 * 1024;

/// Key/value pairs sent with a call (see [`CallOptions`](crate::CallOptions))
/// or with the connection's handshake.
///
/// Keys and values are UTF-8 strings of at most 65 535 bytes each, at most
/// 64 KiB in all, in at most 256 entries. Order is kept; keys may repeat.
/// Inserting never fails: metadata beyond those limits fails the call (or
/// the connect) that would send it, with [`Error::InvalidMetadata`]; a peer
/// that sends it anyway is cut off.
///
/// # Examples
///
/// ```
/// let mut md = cmdstream::Metadata::new();
/// md.insert("tenant", "acme");
/// assert_eq!(md.get("tenant"), Some("acme"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
    /// The first entry over the wire's limits, as its key's length and
    /// its value's length (each checked once, when inserted).
    oversized: Option<(usize, usize)>,
}

impl Metadata {
    /// An empty set.
    pub const fn new() -> Self {
        Metadata {
            entries: Vec::new(),
            oversized: None,
        }
    }

    pub(crate) fn from_entries(entries: Vec<(String, String)>) -> Self {
        Metadata {
            entries,
            oversized: None,
        }
    }

    /// Adds an entry.
    ///
    /// A key or value longer than 65 535 bytes is kept, but cannot be sent:
    /// the call or connect that would carry it fails with
    /// [`Error::InvalidMetadata`].
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        if self.oversized.is_none() && (key.len() > MAX_STR16 || value.len() > MAX_STR16) {
            self.oversized = Some((key.len(), value.len()));
        }
        self.entries.push((key, value));
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All entries, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the wire can carry this metadata as it is.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetadata`] naming the limit it breaks.
    pub(crate) fn fits_wire(&self) -> Result<(), Error> {
        if let Some((key, value)) = self.oversized {
            return Err(Error::InvalidMetadata(
                format!(
                    "an entry with a key of {key} bytes and a value of {value} bytes is over the limit of {MAX_STR16} bytes each"
                )
                .into(),
            ));
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(Error::InvalidMetadata(
                format!(
                    "{} entries are over the limit of {MAX_ENTRIES}",
                    self.entries.len()
                )
                .into(),
            ));
        }
        let bytes: usize = self.entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_BYTES {
            return Err(Error::InvalidMetadata(
                format!("{bytes} bytes of keys and values are over the limit of {MAX_BYTES}")
                    .into(),
            ));
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut md = Metadata::new();
        for (k, v) in iter {
            md.insert(k, v);
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_entries_are_kept_but_refused_for_the_wire() {
        let mut md = Metadata::new();
        md.insert("ok", "fine");
        assert!(md.fits_wire().is_ok());
        md.insert("pad", "x".repeat(MAX_STR16 + 1));
        assert_eq!(md.len(), 2);
        let err = md.fits_wire().unwrap_err();
        assert!(matches!(err, Error::InvalidMetadata(_)), "{err:?}");
        assert!(err.to_string().contains("65536 bytes"), "{err}");
    }

    #[test]
    fn too_many_entries_are_refused_for_the_wire() {
        let md: Metadata = (0..=MAX_STR16).map(|i| (i.to_string(), "")).collect();
        assert!(matches!(md.fits_wire(), Err(Error::InvalidMetadata(_))));
    }
}
