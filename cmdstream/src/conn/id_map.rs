//! A map keyed by request id, with a hasher made for sequential `u64`s.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Request ids are unique small integers handed out in order, so a
/// multiplicative hash spreads them as well as SipHash does, for a fraction
/// of the cost on every frame.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; anything else still hashes.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_many_sequential_ids() {
        let mut m = IdMap::default();
        for i in 1..=10_000u64 {
            m.insert(i, i * 2);
        }
        assert!((1..=10_000u64).all(|i| m[&i] == i * 2));
    }
}
