//! Which member of a group takes a call: the strategies, as a pure
//! function of who is ready, how many calls each has in flight, and a
//! random draw.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How a [group](crate::Group) spreads calls over its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balance {
    /// Each member in turn.
    RoundRobin,
    /// The member with the fewest calls in flight (the first of them).
    LeastInFlight,
    /// Of two members drawn at random, the one with fewer calls in
    /// flight: nearly as good as the least loaded, without looking at all
    /// of them, and without every caller piling onto the same one.
    #[default]
    PowerOfTwoChoices,
}

/// What the strategies see of the members.
pub(crate) trait Members {
    fn len(&self) -> usize;
    /// Whether member `i` takes calls now.
    fn ready(&self, i: usize) -> bool;
    /// Member `i`'s calls in flight.
    fn load(&self, i: usize) -> u32;
}

/// Picks a ready member, if one is; `draw(n)` is a draw in `0..n`,
/// `cursor` the round-robin position.
pub(crate) fn pick(
    balance: Balance,
    members: &impl Members,
    cursor: &AtomicUsize,
    mut draw: impl FnMut(usize) -> usize,
) -> Option<usize> {
    let n = members.len();
    match n {
        0 => None,
        1 => members.ready(0).then_some(0),
        _ => match balance {
            Balance::RoundRobin => {
                let start = cursor.fetch_add(1, Ordering::Relaxed) % n;
                (0..n).map(|k| (start + k) % n).find(|&i| members.ready(i))
            }
            Balance::LeastInFlight => least(members, 0),
            Balance::PowerOfTwoChoices => {
                let a = draw(n);
                let mut b = draw(n - 1);
                if b >= a {
                    b += 1;
                }
                match (members.ready(a), members.ready(b)) {
                    (true, true) if members.load(b) < members.load(a) => Some(b),
                    (true, _) => Some(a),
                    (false, true) => Some(b),
                    // Both down: the least loaded of those that are up,
                    // from a random start so that ties spread.
                    (false, false) => least(members, draw(n)),
                }
            }
        },
    }
}

/// The ready member with the fewest calls in flight, scanning from
/// `start`; the first found wins a tie.
fn least(members: &impl Members, start: usize) -> Option<usize> {
    let n = members.len();
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| members.ready(i))
        .min_by_key(|&i| members.load(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rand::Rng;

    struct Fake {
        ready: Vec<bool>,
        load: Vec<u32>,
    }

    impl Members for Fake {
        fn len(&self) -> usize {
            self.ready.len()
        }
        fn ready(&self, i: usize) -> bool {
            self.ready[i]
        }
        fn load(&self, i: usize) -> u32 {
            self.load[i]
        }
    }

    fn fake(ready: &[bool], load: &[u32]) -> Fake {
        Fake {
            ready: ready.to_vec(),
            load: load.to_vec(),
        }
    }

    #[test]
    fn round_robin_takes_each_ready_member_in_turn() {
        let members = fake(&[true, false, true, true], &[0; 4]);
        let cursor = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6)
            .map(|_| pick(Balance::RoundRobin, &members, &cursor, |_| 0).unwrap())
            .collect();
        // The member that is down is skipped: its turn goes to the next.
        assert_eq!(picks, [0, 2, 2, 3, 0, 2]);
    }

    #[test]
    fn least_in_flight_takes_the_least_loaded_ready_member() {
        let members = fake(&[true, true, false, true], &[5, 2, 0, 2]);
        let cursor = AtomicUsize::new(0);
        assert_eq!(
            pick(Balance::LeastInFlight, &members, &cursor, |_| 0),
            Some(1)
        );
    }

    #[test]
    fn two_choices_prefer_the_less_loaded_of_the_pair() {
        let members = fake(&[true; 4], &[9, 1, 9, 9]);
        let cursor = AtomicUsize::new(0);
        let mut rng = Rng::seeded(42);
        let mut picks = [0u32; 4];
        for _ in 0..10_000 {
            let i = pick(Balance::PowerOfTwoChoices, &members, &cursor, |n| {
                rng.below(n)
            });
            picks[i.unwrap()] += 1;
        }
        // Member 1 wins every pair it is drawn into: half of all pairs.
        assert!(picks[1] > 4_500, "{picks:?}");
        assert!(picks[1] > 3 * picks[0], "{picks:?}");
        // Equally loaded members share the rest.
        let others = [picks[0], picks[2], picks[3]];
        assert!(others.iter().all(|&p| p > 1_300), "{picks:?}");
    }

    #[test]
    fn nothing_is_picked_when_no_member_is_ready_and_a_ready_one_always_is() {
        let cursor = AtomicUsize::new(0);
        for balance in [
            Balance::RoundRobin,
            Balance::LeastInFlight,
            Balance::PowerOfTwoChoices,
        ] {
            let none = fake(&[false; 3], &[0; 3]);
            assert_eq!(pick(balance, &none, &cursor, |n| n - 1), None);
            let one = fake(&[false, false, true], &[0, 0, 7]);
            let mut rng = Rng::seeded(3);
            for _ in 0..100 {
                assert_eq!(pick(balance, &one, &cursor, |n| rng.below(n)), Some(2));
            }
            assert_eq!(pick(balance, &fake(&[], &[]), &cursor, |_| 0), None);
            assert_eq!(pick(balance, &fake(&[true], &[3]), &cursor, |_| 0), Some(0));
        }
    }
}
