//! How long a reconnecting client waits before each dial: exponential
//! backoff with jitter, as a pure function of the attempt and a random
//! draw.

use std::time::Duration;

/// The waits between dials of a [reconnecting](crate::Reconnect) client.
///
/// Before its `n`-th redial in a row (after a failed dial, or a connection
/// that did not stay up) the client waits `initial × multiplier^(n-1)`,
/// capped at `max`, then moved by up to ± `jitter` of itself at random so
/// that many clients of one server do not dial it in step. The defaults
/// are gRPC's: 1 s, × 1.6, ± 20 %, at most 120 s.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let backoff = cmdstream::Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
///     .multiplier(2.0)
///     .jitter(0.1);
/// # let _ = backoff;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    jitter: f64,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// Waits from `initial` up to `max` (at least `initial`), growing × 1.6
    /// with ± 20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            ..Backoff::default()
        }
    }

    /// How much each wait grows over the one before (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// How far each wait is moved at random, as a fraction of itself
    /// (between 0 and 1).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The wait before redial `attempt` (from 1), for a draw `unit` in
    /// `[-1, 1]`.
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let grown = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let base = grown.min(self.max.as_secs_f64());
        let jittered = base * (1.0 + self.jitter * unit.clamp(-1.0, 1.0));
        Duration::try_from_secs_f64(jittered.max(0.0)).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_by_the_multiplier_up_to_the_cap() {
        let b = Backoff::default();
        let secs = |attempt| b.delay(attempt, 0.0).as_secs_f64();
        assert_eq!(secs(1), 1.0);
        assert!((secs(2) - 1.6).abs() < 1e-9);
        assert!((secs(3) - 2.56).abs() < 1e-9);
        assert_eq!(secs(20), 120.0);
        assert_eq!(secs(u32::MAX), 120.0);
        // Jitter moves a wait by at most its share.
        assert!((b.delay(1, 1.0).as_secs_f64() - 1.2).abs() < 1e-9);
        assert!((b.delay(1, -1.0).as_secs_f64() - 0.8).abs() < 1e-9);
        assert!((b.delay(20, 1.0).as_secs_f64() - 144.0).abs() < 1e-9);
    }

    #[test]
    fn odd_settings_are_tamed() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1))
            .multiplier(f64::NAN)
            .jitter(7.0);
        assert_eq!(b.delay(9, 0.0), Duration::from_secs(5));
        assert_eq!(b.delay(1, -1.0), Duration::ZERO);
    }
}
