//! Maps keyed by request id, with hashers made for `u64` ids.
//!
//! The client picks its own ids, one after another, so its map hashes them
//! with a plain multiply ([`IdMap`]). The server's map is keyed by ids a
//! client chose, and a hostile client can choose ids whose plain hashes
//! collide (every multiple of 2^20 lands in one bucket): there each
//! connection's map is keyed with a random seed ([`SeededIdMap`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

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
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(K);
    }
}

/// A map of the client's own request ids.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A folded multiply of the id mixed with a secret seed: the full 128-bit
/// product's halves xored, so every bit of the id reaches the low bits the
/// map indexes with, and which ids collide depends on the seed.
#[derive(Clone, Copy)]
pub(crate) struct SeededHasher {
    seed: u64,
    state: u64,
}

impl Hasher for SeededHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(self.state.rotate_left(8) ^ u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let p = u128::from(n ^ self.seed) * u128::from(K);
        self.state = (p as u64) ^ ((p >> 64) as u64);
    }
}

/// Builds [`SeededHasher`]s with one seed, drawn at random per map.
#[derive(Clone, Copy)]
pub(crate) struct Seeded {
    seed: u64,
}

impl Seeded {
    /// A fresh random seed: std's `RandomState` is keyed at random per
    /// process and stepped per instance, so each map gets its own.
    pub(crate) fn random() -> Self {
        Seeded {
            seed: std::hash::RandomState::new().hash_one(0x636d_6473u64),
        }
    }
}

impl BuildHasher for Seeded {
    type Hasher = SeededHasher;

    fn build_hasher(&self) -> SeededHasher {
        SeededHasher {
            seed: self.seed,
            state: 0,
        }
    }
}

/// A map of request ids a peer chose.
pub(crate) type SeededIdMap<V> = HashMap<u64, V, Seeded>;

/// An empty [`SeededIdMap`] with a seed of its own.
pub(crate) fn seeded_map<V>() -> SeededIdMap<V> {
    HashMap::with_hasher(Seeded::random())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn holds_many_sequential_ids() {
        let mut m = IdMap::default();
        for i in 1..=10_000u64 {
            m.insert(i, i * 2);
        }
        assert!((1..=10_000u64).all(|i| m[&i] == i * 2));
        let mut m = seeded_map();
        for i in 1..=10_000u64 {
            m.insert(i, i * 2);
        }
        assert!((1..=10_000u64).all(|i| m[&i] == i * 2));
    }

    /// How many distinct buckets of a table of 1024 the ids land in.
    fn buckets(build: &impl BuildHasher, ids: &[u64]) -> usize {
        ids.iter()
            .map(|id| build.hash_one(id) & 1023)
            .collect::<HashSet<_>>()
            .len()
    }

    #[test]
    fn ids_chosen_to_collide_under_the_plain_hash_spread_under_the_seeded_one() {
        let hostile: Vec<u64> = (1..=1024u64).map(|i| i << 20).collect();
        let plain = BuildHasherDefault::<IdHasher>::default();
        assert_eq!(
            buckets(&plain, &hostile),
            1,
            "the attack this guards against"
        );
        for _ in 0..8 {
            // Random placement fills about 1 - 1/e of the buckets (~647).
            let spread = buckets(&Seeded::random(), &hostile);
            assert!(spread > 512, "only {spread} of 1024 buckets used");
        }
    }

    #[test]
    fn each_map_has_its_own_seed() {
        let (a, b) = (Seeded::random(), Seeded::random());
        assert_ne!(a.hash_one(1u64), b.hash_one(1u64));
        assert_eq!(a.hash_one(1u64), a.hash_one(1u64));
    }
}
