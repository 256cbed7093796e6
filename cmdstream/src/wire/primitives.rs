//! The small pieces every message is built from (`docs/PROTOCOL.md`,
//! notation): `u16`-length strings and the metadata list.

use bytes::{Buf, BufMut, BytesMut};

use crate::metadata::{Metadata, MAX_BYTES, MAX_ENTRIES};

/// The longest string a `str16` holds.
pub(crate) const MAX_STR16: usize = u16::MAX as usize;

/// Appends `s` as a `str16`. Callers check the length first
/// ([`MAX_STR16`]); a longer string is cut at a character boundary rather
/// than sent with a length that does not match it.
pub(crate) fn put_str16(dst: &mut BytesMut, s: &str) {
    let s = truncate(s, MAX_STR16);
    dst.put_u16(s.len() as u16);
    dst.put_slice(s.as_bytes());
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn take_u16(src: &mut &[u8]) -> Option<u16> {
    (src.len() >= 2).then(|| src.get_u16())
}

pub(crate) fn take_u32(src: &mut &[u8]) -> Option<u32> {
    (src.len() >= 4).then(|| src.get_u32())
}

pub(crate) fn take_u64(src: &mut &[u8]) -> Option<u64> {
    (src.len() >= 8).then(|| src.get_u64())
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

/// Appends a metadata list: `u16` count, then key and value as `str16`.
/// Callers check [`Metadata::fits_wire`] first.
pub(crate) fn put_metadata(dst: &mut BytesMut, metadata: &Metadata) {
    let n = metadata.len().min(MAX_STR16);
    dst.put_u16(n as u16);
    for (k, v) in metadata.iter().take(n) {
        put_str16(dst, k);
        put_str16(dst, v);
    }
}

/// Reads a metadata list from the front of `src`; `None` when it is cut
/// short or over the limits (`metadata::MAX_ENTRIES`, `MAX_BYTES`).
pub(crate) fn take_metadata(src: &mut &[u8]) -> Option<Metadata> {
    let n = take_u16(src)? as usize;
    if n > MAX_ENTRIES {
        return None;
    }
    // Each entry takes at least 4 bytes: nothing is reserved for entries
    // the input cannot hold.
    let mut entries = Vec::with_capacity(n.min(src.len() / 4));
    let mut bytes = 0;
    for _ in 0..n {
        let k = take_str16(src)?;
        let v = take_str16(src)?;
        bytes += k.len() + v.len();
        if bytes > MAX_BYTES {
            return None;
        }
        entries.push((k, v));
    }
    Some(Metadata::from_entries(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_truncation_fails() {
        let md: Metadata = [("a", "1"), ("tenant", "acme")].into_iter().collect();
        let mut buf = BytesMut::new();
        put_metadata(&mut buf, &md);
        let mut src = &buf[..];
        assert_eq!(take_metadata(&mut src), Some(md));
        assert!(src.is_empty());
        for cut in 0..buf.len() {
            let mut src = &buf[..cut];
            assert_eq!(take_metadata(&mut src), None, "cut at {cut}");
        }
    }

    #[test]
    fn metadata_beyond_its_limits_is_refused_on_both_sides() {
        let within: Metadata = (0..MAX_ENTRIES).map(|i| (i.to_string(), "v")).collect();
        within.fits_wire().unwrap();
        let mut buf = BytesMut::new();
        put_metadata(&mut buf, &within);
        assert_eq!(take_metadata(&mut &buf[..]).as_ref(), Some(&within));

        let mut more = within.clone();
        more.insert("one", "more");
        assert!(more.fits_wire().is_err());
        let mut buf = BytesMut::new();
        put_metadata(&mut buf, &more);
        assert_eq!(take_metadata(&mut &buf[..]), None);

        let big = "v".repeat(MAX_BYTES / 2);
        let heavy: Metadata = [("a", big.as_str()), ("b", big.as_str())]
            .into_iter()
            .collect();
        assert!(heavy.fits_wire().is_err());
        let mut buf = BytesMut::new();
        put_metadata(&mut buf, &heavy);
        assert_eq!(take_metadata(&mut &buf[..]), None);
    }

    #[test]
    fn a_huge_count_reserves_nothing() {
        let mut src: &[u8] = &[0xff, 0xff];
        assert_eq!(take_metadata(&mut src), None);
    }

    #[test]
    fn strings_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
        let long = "é".repeat(40_000);
        let mut buf = BytesMut::new();
        put_str16(&mut buf, &long);
        let mut src = &buf[..];
        let back = take_str16(&mut src).unwrap();
        assert_eq!(back.len(), MAX_STR16 - 1);
        assert!(src.is_empty());
    }
}
