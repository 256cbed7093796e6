//! A small, fast generator for spreading load and dials: xorshift64*,
//! seeded from the standard library's random hasher keys. Not for anything
//! that must be unpredictable to a peer.

use std::cell::Cell;
use std::hash::BuildHasher;

/// xorshift64*.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded differently in every process and every call.
    pub(crate) fn from_entropy() -> Self {
        Rng::seeded(std::hash::RandomState::new().hash_one(0x636d_6473_7472_6561u64))
    }

    /// A generator whose draws follow from `seed` (for tests).
    pub(crate) fn seeded(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A draw in `[-1, 1]`.
    pub(crate) fn unit(&mut self) -> f64 {
        let bits = self.next_u64() >> 11;
        (bits as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// A draw in `0..n`, for `n > 0`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        // The high bits of a multiply: unbiased enough for picking.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

thread_local! {
    static THREAD_STATE: Cell<u64> = Cell::new(Rng::from_entropy().0);
}

/// A draw in `0..n` (`n > 0`) from this thread's generator: no state
/// shared between threads, nothing to lock.
pub(crate) fn below(n: usize) -> usize {
    THREAD_STATE.with(|state| {
        let mut rng = Rng(state.get());
        let draw = rng.below(n);
        state.set(rng.0);
        draw
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_draws_stay_in_range_and_spread() {
        let mut rng = Rng::seeded(7);
        let draws: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(draws.iter().all(|d| (-1.0..=1.0).contains(d)));
        let below = draws.iter().filter(|d| **d < 0.0).count();
        assert!((4_000..6_000).contains(&below), "{below} of 10000 below 0");
        assert_ne!(Rng::from_entropy().unit(), Rng::from_entropy().unit());
    }

    #[test]
    fn picks_cover_the_range_evenly() {
        let mut rng = Rng::seeded(11);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_000..11_000).contains(c)),
            "{counts:?}"
        );
        assert!((0..1_000).all(|_| below(3) < 3));
        assert_eq!(below(1), 0);
    }
}
