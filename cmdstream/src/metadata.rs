//! User key/value metadata that travels with a call or a connection.

use bytes::{Buf, BufMut, BytesMut};

/// Key/value pairs sent with a call (see [`CallOptions`](crate::CallOptions))
/// or with the connection's handshake.
///
/// Keys and values are UTF-8 strings of at most 65 535 bytes each; at most
/// 65 535 entries. Order is kept; keys may repeat.
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
}

impl Metadata {
    /// An empty set.
    pub fn new() -> Self {
        Metadata::default()
    }

    /// Adds an entry.
    ///
    /// # Panics
    ///
    /// When the key or value is longer than 65 535 bytes: such an entry
    /// cannot be sent.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        assert!(
            key.len() <= u16::MAX as usize && value.len() <= u16::MAX as usize,
            "metadata keys and values are limited to 65535 bytes"
        );
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

    /// Appends the wire form: `u16` count, then key and value as `str16`.
    pub(crate) fn put(&self, dst: &mut BytesMut) {
        let n = self.entries.len().min(u16::MAX as usize);
        dst.put_u16(n as u16);
        for (k, v) in &self.entries[..n] {
            put_str16(dst, k);
            put_str16(dst, v);
        }
    }

    /// Reads the wire form from the front of `src`.
    pub(crate) fn take(src: &mut &[u8]) -> Option<Metadata> {
        let n = take_u16(src)? as usize;
        let mut entries = Vec::with_capacity(n.min(src.len() / 4));
        for _ in 0..n {
            let k = take_str16(src)?;
            let v = take_str16(src)?;
            entries.push((k, v));
        }
        Some(Metadata { entries })
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

pub(crate) fn put_str16(dst: &mut BytesMut, s: &str) {
    let n = s.len().min(u16::MAX as usize);
    dst.put_u16(n as u16);
    dst.put_slice(&s.as_bytes()[..n]);
}

pub(crate) fn take_u16(src: &mut &[u8]) -> Option<u16> {
    (src.len() >= 2).then(|| src.get_u16())
}

pub(crate) fn take_str16(src: &mut &[u8]) -> Option<String> {
    let n = take_u16(src)? as usize;
    if src.len() < n {
        return None;
    }
    let s = std::str::from_utf8(&src[..n]).ok()?.to_owned();
    src.advance(n);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_truncation() {
        let md: Metadata = [("a", "1"), ("tenant", "acme")].into_iter().collect();
        let mut buf = BytesMut::new();
        md.put(&mut buf);
        let mut src = &buf[..];
        assert_eq!(Metadata::take(&mut src), Some(md));
        assert!(src.is_empty());
        for cut in 0..buf.len() {
            let mut src = &buf[..cut];
            assert_eq!(Metadata::take(&mut src), None, "cut at {cut}");
        }
    }

    #[test]
    fn huge_count_does_not_preallocate() {
        let mut src: &[u8] = &[0xff, 0xff];
        assert_eq!(Metadata::take(&mut src), None);
    }
}
