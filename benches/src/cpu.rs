//! CPU time of the whole process (every thread: clients and servers),
//! from `/proc/self/stat`.

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
}
