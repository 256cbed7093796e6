//! The credit of one of the client's argument streams: usable up to the
//! client's own maximum, without losing any of what the server granted.
//!
//! The usable part lives in a semaphore the stream's pump takes from, which
//! must not grow with what a server grants. But a server counts what it
//! granted and grants more as its command takes items, once a batch of
//! them is taken: were the client to drop the credit beyond its maximum,
//! the server would wait for items the client never sends, and the stream
//! would stall for good. So what lies beyond the maximum is held, as a
//! count, and released as the usable credit is spent: the client never has
//! more than its maximum usable at once, and in the end sends all it was
//! granted.

/// The credit of one argument stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArgCredit {
    /// What it may send now: at most the maximum.
    usable: u32,
    /// Granted beyond the maximum, released as `usable` is spent. A count
    /// only; it sizes nothing (saturating at `u32::MAX` items).
    held: u32,
    max: u32,
}

impl ArgCredit {
    /// `granted` credit (a hello's window, say), at most `max` of it usable.
    pub(crate) fn new(granted: u32, max: u32) -> Self {
        let usable = granted.min(max);
        ArgCredit {
            usable,
            held: granted - usable,
            max,
        }
    }

    /// What may be sent now.
    pub(crate) fn usable(&self) -> u32 {
        self.usable
    }

    /// Adds a grant of `n`; returns how much of it is usable now.
    pub(crate) fn grant(&mut self, n: u32) -> u32 {
        let now = n.min(self.max - self.usable);
        self.usable += now;
        self.held = self.held.saturating_add(n - now);
        now
    }

    /// Spends `n` (at most what is usable); returns the held credit that
    /// becomes usable in its place.
    pub(crate) fn spend(&mut self, n: u32) -> u32 {
        self.usable = self.usable.saturating_sub(n);
        let released = self.held.min(self.max - self.usable);
        self.usable += released;
        self.held -= released;
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn credit_beyond_the_maximum_is_held_and_released_as_it_is_spent() {
        let mut credit = ArgCredit::new(10, 4);
        assert_eq!(credit.usable(), 4);
        assert_eq!(credit.spend(3), 3);
        assert_eq!(credit.usable(), 4);
        assert_eq!(credit.grant(5), 0);
        assert_eq!(credit.spend(4), 4);
        // 10 + 5 granted, 7 spent: 8 left, 4 of them usable.
        assert_eq!(credit.spend(4), 4);
        assert_eq!(credit.spend(4), 0);
        assert_eq!(credit.usable(), 0);
        assert_eq!(credit.grant(2), 2);
    }

    proptest! {
        /// Whatever the grants and spending, the usable credit stays within
        /// the maximum and all that was granted is eventually usable.
        #[test]
        fn nothing_granted_is_lost(
            max in 1u32..64,
            initial in 0u32..200,
            steps in proptest::collection::vec((any::<bool>(), 0u32..100), 0..64),
        ) {
            let mut credit = ArgCredit::new(initial, max);
            let mut granted = u64::from(initial);
            let mut spent = 0u64;
            for (is_grant, n) in steps {
                if is_grant {
                    granted += u64::from(n);
                    credit.grant(n);
                } else {
                    let n = n.min(credit.usable());
                    spent += u64::from(n);
                    credit.spend(n);
                }
                prop_assert!(credit.usable() <= max);
            }
            while credit.usable() > 0 {
                spent += u64::from(credit.usable());
                credit.spend(credit.usable());
            }
            prop_assert_eq!(spent, granted);
        }
    }
}
