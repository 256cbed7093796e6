//! CPU time of the whole process (every thread: clients and servers),
//! from `/proc/self/stat`; and the time the host took from this machine's
//! CPUs (steal time), from `/proc/stat`, so that a run on a disturbed
//! machine says so.

use std::time::Duration;

/// Clock ticks per second of `utime` and `stime` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: u64 = 100;

/// User plus system CPU time the process has used so far, or `None` where
/// `/proc/self/stat` cannot be read.
pub(crate) fn process_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // the fields after it start with field 3, so utime (14) and stime (15)
    // are the 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_nanos(
        (utime + stime) * (1_000_000_000 / TICKS_PER_SEC),
    ))
}

/// CPU time used between two readings, summed over windows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuTally {
    /// Nanoseconds of CPU time.
    pub(crate) nanos: u64,
    /// Calls made meanwhile.
    pub(crate) calls: u64,
    /// Whether every reading succeeded.
    pub(crate) broken: bool,
}

impl CpuTally {
    /// Adds one window: the CPU time since `before`, and its calls.
    pub(crate) fn add(&mut self, before: Option<Duration>, calls: u64) {
        match (before, process_time()) {
            (Some(b), Some(a)) => {
                self.nanos += a.saturating_sub(b).as_nanos() as u64;
                self.calls += calls;
            }
            _ => self.broken = true,
        }
    }

    /// Nanoseconds of CPU time per call, if any were measured.
    pub(crate) fn per_call(&self) -> Option<f64> {
        (!self.broken && self.calls > 0).then(|| self.nanos as f64 / self.calls as f64)
    }
}

/// Above this share of the machine's CPU time stolen by the host, a
/// report calls the measurement disturbed.
pub(crate) const STEAL_DISTURBED: f64 = 0.02;

/// A reading of `/proc/stat`'s summary line: ticks stolen by the host, and
/// all ticks, since boot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steal {
    stolen: u64,
    all: u64,
}

impl Steal {
    /// Now's reading, or `None` where `/proc/stat` cannot be read.
    pub(crate) fn now() -> Option<Steal> {
        Steal::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<Steal> {
        // `cpu  user nice system idle iowait irq softirq steal ...`
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // Guest time (fields 9 and 10) is already counted in user time.
        let all = ticks.iter().take(8).sum();
        Some(Steal {
            stolen: *ticks.get(7)?,
            all,
        })
    }

    /// The share of the machine's CPU time the host stole since `self`.
    pub(crate) fn share_since(self) -> Option<f64> {
        let now = Steal::now()?;
        let all = now.all.checked_sub(self.all).filter(|&a| a > 0)?;
        Some(now.stolen.saturating_sub(self.stolen) as f64 / all as f64)
    }
}

/// The sentence a report prints under a measurement that began at `since`.
pub(crate) fn steal_note(since: Option<Steal>) -> String {
    match since.and_then(Steal::share_since) {
        Some(s) if s > STEAL_DISTURBED => format!(
            "\nSteal time meanwhile: {:.1} % of the machine's CPU time, **a disturbed \
             measurement**: its ratios say little.\n",
            s * 100.0
        ),
        Some(s) => format!(
            "\nSteal time meanwhile: {:.1} % of the machine's CPU time.\n",
            s * 100.0
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let t0 = process_time().expect("/proc/self/stat");
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_time().unwrap() >= t0);
    }

    #[test]
    fn steal_is_the_eighth_field_of_the_summary_line() {
        let stat = "cpu  100 0 50 800 10 0 0 40 7 0\ncpu0 50 0 25 400 5 0 0 20 0 0\n";
        let s = Steal::parse(stat).expect("a summary line");
        assert_eq!((s.stolen, s.all), (40, 1000));
        assert!(Steal::parse("intr 1 2 3\n").is_none());
    }
}
