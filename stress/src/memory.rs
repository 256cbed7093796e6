//! Memory over the run: the heap in use (counted by the global allocator)
//! and the resident set, sampled every quarter second, and the bound the
//! heap must keep once the run has settled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The counting allocator (see `main.rs`).
pub(crate) type Heap = cap::Cap<std::alloc::System>;

/// Samples taken so far.
#[derive(Default)]
pub(crate) struct Samples {
    /// (seconds into the run, heap bytes, resident bytes)
    pub(crate) points: Vec<(f64, usize, usize)>,
}

/// The resident set of this process, from `/proc/self/statm`.
fn resident() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Samples until `stop`.
pub(crate) async fn sample(
    heap: &'static Heap,
    samples: Arc<Mutex<Samples>>,
    stop: CancellationToken,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let point = (start.elapsed().as_secs_f64(), heap.allocated(), resident());
        samples.lock().unwrap().points.push(point);
    }
}

/// The verdict on memory: the heap after the first 30 % of the run may
/// not exceed twice its peak during 10-30 %, plus 64 MiB. A leak of a
/// few bytes a call, over millions of calls, breaks it; the churn of
/// reconnects and half-open links held 30 s does not.
pub(crate) struct Verdict {
    pub(crate) heap: (usize, usize),
    pub(crate) resident: (usize, usize),
    pub(crate) baseline: usize,
    pub(crate) bound: usize,
    pub(crate) peak_after: usize,
}

impl Verdict {
    pub(crate) fn of(samples: &Samples, seconds: f64) -> Verdict {
        let points = &samples.points;
        let range = |f: fn(&(f64, usize, usize)) -> usize| {
            let min = points.iter().map(f).min().unwrap_or(0);
            let max = points.iter().map(f).max().unwrap_or(0);
            (min, max)
        };
        let baseline = points
            .iter()
            .filter(|p| p.0 >= 0.1 * seconds && p.0 < 0.3 * seconds)
            .map(|p| p.1)
            .max()
            .unwrap_or(0);
        let peak_after = points
            .iter()
            .filter(|p| p.0 >= 0.3 * seconds)
            .map(|p| p.1)
            .max()
            .unwrap_or(0);
        Verdict {
            heap: range(|p| p.1),
            resident: range(|p| p.2),
            baseline,
            bound: baseline * 2 + (64 << 20),
            peak_after,
        }
    }

    pub(crate) fn holds(&self) -> bool {
        self.peak_after <= self.bound
    }
}

/// Bytes as MiB, for the table.
pub(crate) fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}
