//! The workloads, each run on one contender: sequential and pipelined
//! unary calls, bursts over many connections, streams (one, and many with a
//! slow consumer), and allocation counts. Every result is checked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alloc::{Counter, HeapWatch};
use crate::contenders::Target;
use crate::cpu::{self, CpuTally};
use crate::plan::Plan;
use crate::BenchError;

/// Sequential `add` calls for `time`; returns each call's latency in
/// nanoseconds.
pub(crate) async fn sequential(target: &Target, time: Duration) -> Result<Vec<u64>, BenchError> {
    let mut samples = Vec::with_capacity(1 << 16);
    sequential_into(target, time, &mut samples).await?;
    Ok(samples)
}

/// As [`sequential`], each latency pushed onto `samples`; returns the
/// calls made.
async fn sequential_into(
    target: &Target,
    time: Duration,
    samples: &mut Vec<u64>,
) -> Result<u64, BenchError> {
    let mut target = target.clone();
    let end = Instant::now() + time;
    let mut i = 0i64;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        target.add(i, 7).await?;
        samples.push(t0.elapsed().as_nanos() as u64);
        i += 1;
    }
    Ok(i as u64)
}

/// Sequential `add` calls on each of `targets` in turn, `turn` at a time,
/// until each has had `time`, in a new shuffled order every pass. So the
/// targets meet the same drift of the machine (which core each thread runs
/// on, clock speed, the host), which moves a one-at-a-time latency by more
/// than the targets differ; and, as no target keeps its place in the
/// pass, none is caught in step with something periodic. Returns each
/// target's latencies, nanoseconds, and adds each turn's CPU time and
/// calls to the target's entry in `cpu`.
pub(crate) async fn sequential_interleaved(
    targets: &[Target],
    time: Duration,
    turn: Duration,
    cpu: &mut [CpuTally],
) -> Result<Vec<Vec<u64>>, BenchError> {
    let n = targets.len();
    let mut samples: Vec<Vec<u64>> = (0..n).map(|_| Vec::with_capacity(1 << 16)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut shuffle = Shuffle::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..passes(time, turn) {
        shuffle.apply(&mut order);
        for &i in &order {
            let before = cpu::process_time();
            let calls = sequential_into(&targets[i], turn, &mut samples[i]).await?;
            cpu[i].add(before, calls);
        }
    }
    Ok(samples)
}

/// Passes of `turn` each that give every target `time`, at least.
fn passes(time: Duration, turn: Duration) -> usize {
    time.as_nanos().div_ceil(turn.as_nanos().max(1)) as usize
}

/// What [`pipelined_interleaved`] measured on one contender.
#[derive(Default)]
pub(crate) struct PipelinedTurns {
    /// Calls per second of each turn.
    pub(crate) rates: Vec<f64>,
    /// Every call's latency, nanoseconds.
    pub(crate) samples: Vec<u64>,
}

/// [`pipelined_over`] on each of `contenders` (each some connections the
/// calls are spread over) in turn, `turn` at a time, until each has had
/// `time`, in a new shuffled order every pass, as
/// [`sequential_interleaved`] does and for the same reason; each turn's
/// CPU time and calls go to the contender's entry in `cpu`.
pub(crate) async fn pipelined_interleaved(
    contenders: &[&[Target]],
    in_flight: usize,
    time: Duration,
    turn: Duration,
    op: Op,
    cpu: &mut [CpuTally],
) -> Result<Vec<PipelinedTurns>, BenchError> {
    let n = contenders.len();
    let mut turns: Vec<PipelinedTurns> = (0..n).map(|_| PipelinedTurns::default()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut shuffle = Shuffle::new(0x2545_f491_4f6c_dd1d);
    for _ in 0..passes(time, turn) {
        shuffle.apply(&mut order);
        for &i in &order {
            let before = cpu::process_time();
            let run = pipelined_over(contenders[i], in_flight, turn, op).await?;
            cpu[i].add(before, run.samples.len() as u64);
            turns[i].rates.push(run.calls_per_sec);
            turns[i].samples.extend(run.samples);
        }
    }
    Ok(turns)
}

/// Fisher-Yates over an xorshift64 sequence: any order, often, from a
/// fixed seed.
pub(crate) struct Shuffle(u64);

impl Shuffle {
    /// A sequence of orders starting from `seed` (not zero).
    pub(crate) fn new(seed: u64) -> Shuffle {
        Shuffle(seed | 1)
    }

    /// Puts `v` in the next order.
    pub(crate) fn apply(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            v.swap(i, (self.0 % (i as u64 + 1)) as usize);
        }
    }
}

/// Which unary call a pipelined workload makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    /// `echo` of this many bytes.
    Echo(usize),
}

/// `in_flight` tasks calling in a loop on one shared connection.
pub(crate) struct PipelinedRun {
    pub(crate) calls_per_sec: f64,
    pub(crate) samples: Vec<u64>,
}

pub(crate) async fn pipelined(
    target: &Target,
    in_flight: usize,
    time: Duration,
    op: Op,
) -> Result<PipelinedRun, BenchError> {
    pipelined_over(std::slice::from_ref(target), in_flight, time, op).await
}

/// As [`pipelined`], the tasks spread round-robin over `targets`.
pub(crate) async fn pipelined_over(
    targets: &[Target],
    in_flight: usize,
    time: Duration,
    op: Op,
) -> Result<PipelinedRun, BenchError> {
    let start = Instant::now();
    let end = start + time;
    let tasks: Vec<_> = (0..in_flight)
        .map(|t| {
            let mut target = targets[t % targets.len()].clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(4096);
                let base = (t as i64) << 40;
                // Each task's payload differs, so a reply sent to the wrong
                // caller is caught.
                let payload: Vec<u8> = match op {
                    Op::Add => Vec::new(),
                    Op::Echo(size) => (0..size).map(|i| (i * 7 + t * 13) as u8).collect(),
                };
                let mut i = 0i64;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    match op {
                        Op::Add => target.add(base + i, -3).await?,
                        Op::Echo(_) => target.echo(&payload).await?,
                    }
                    samples.push(t0.elapsed().as_nanos() as u64);
                    i += 1;
                }
                Ok::<_, BenchError>(samples)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = start.elapsed();
    Ok(PipelinedRun {
        calls_per_sec: samples.len() as f64 / elapsed.as_secs_f64(),
        samples,
    })
}

/// `calls` `slow_add` calls fired at once, round-robin over `conns`.
/// Returns calls per second (from the first spawn to the last answer) and
/// each call's latency.
pub(crate) async fn burst(conns: &[Target], calls: usize) -> Result<(f64, Vec<u64>), BenchError> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let mut target = conns[i % conns.len()].clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                target.slow_add(i as i64, 1000).await?;
                Ok::<_, BenchError>(t0.elapsed().as_nanos() as u64)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(calls);
    for task in tasks {
        samples.push(task.await??);
    }
    Ok((calls as f64 / start.elapsed().as_secs_f64(), samples))
}

/// One stream of `n` items; returns items per second.
pub(crate) async fn stream(target: &Target, n: u64) -> Result<f64, BenchError> {
    let mut target = target.clone();
    let start = Instant::now();
    target.open_count(n).await?.drain(n).await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One run of the fan-out workload.
pub(crate) struct FanRun {
    /// Items per second of the fast streams together.
    pub(crate) fast_rate: f64,
    /// Peak growth of the heap while the fast streams ran, bytes.
    pub(crate) peak_heap: u64,
}

/// `plan.fan_streams` concurrent `count(n)` streams on one connection. With
/// `slow`, the first stream's consumer pauses after every item, until the
/// other streams have ended; it then drops its stream.
pub(crate) async fn fan(
    target: &Target,
    plan: &Plan,
    n: u64,
    slow: bool,
) -> Result<FanRun, BenchError> {
    let done = Arc::new(AtomicBool::new(false));
    let watch = HeapWatch::start();
    let start = Instant::now();
    let mut slow_task = None;
    let mut fast = Vec::with_capacity(plan.fan_streams);
    for s in 0..plan.fan_streams {
        let mut target = target.clone();
        if slow && s == 0 {
            let done = done.clone();
            let pause = plan.slow_pause;
            slow_task = Some(tokio::spawn(async move {
                let mut items = target.open_count(n).await?;
                while !done.load(Ordering::Relaxed) {
                    if items.next().await?.is_none() {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
                Ok::<_, BenchError>(items.received())
            }));
        } else {
            fast.push(tokio::spawn(async move {
                target.open_count(n).await?.drain(n).await
            }));
        }
    }
    let fast_streams = fast.len() as u64;
    for task in fast {
        task.await??;
    }
    let elapsed = start.elapsed();
    let peak_heap = watch.stop();
    done.store(true, Ordering::Relaxed);
    if let Some(task) = slow_task {
        task.await??;
    }
    Ok(FanRun {
        fast_rate: (fast_streams * n) as f64 / elapsed.as_secs_f64(),
        peak_heap,
    })
}

/// Heap allocations (client and server together) per call and per streamed
/// item, measured after the warm-up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allocs {
    pub(crate) sequential: f64,
    pub(crate) pipelined: f64,
    pub(crate) per_item: Option<f64>,
}

pub(crate) async fn count_allocs(target: &Target, plan: &Plan) -> Result<Allocs, BenchError> {
    let calls = plan.alloc_calls;
    let mut seq_target = target.clone();

    let c = Counter::start();
    for i in 0..calls {
        seq_target.add(i as i64, 1).await?;
    }
    let sequential = c.stop();

    // The tasks are spawned outside the counting window.
    let per_task = calls / plan.in_flight as u64 + 1;
    let gate = Arc::new(tokio::sync::Barrier::new(plan.in_flight + 1));
    let tasks: Vec<_> = (0..plan.in_flight)
        .map(|t| {
            let mut target = target.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.wait().await;
                for i in 0..per_task {
                    target.add(((t as i64) << 40) + i as i64, 2).await?;
                }
                gate.wait().await;
                Ok::<_, BenchError>(())
            })
        })
        .collect();
    gate.wait().await;
    let c = Counter::start();
    gate.wait().await;
    let pipelined = c.stop();
    for task in tasks {
        task.await??;
    }
    let pipelined_calls = per_task * plan.in_flight as u64;

    let per_item = if target.contender().streams() {
        let items = calls * 10;
        let c = Counter::start();
        seq_target.open_count(items).await?.drain(items).await?;
        let streamed = c.stop();
        Some((streamed.allocs + streamed.reallocs) as f64 / items as f64)
    } else {
        None
    };

    Ok(Allocs {
        sequential: (sequential.allocs + sequential.reallocs) as f64 / calls as f64,
        pipelined: (pipelined.allocs + pipelined.reallocs) as f64 / pipelined_calls as f64,
        per_item,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_permutation_and_puts_every_target_after_every_other() {
        let mut shuffle = Shuffle::new(0x9e37_79b9_7f4a_7c15);
        let mut order: Vec<usize> = (0..7).collect();
        let mut follows = [[0u32; 7]; 7];
        let mut first = [0u32; 7];
        for _ in 0..2_000 {
            shuffle.apply(&mut order);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..7).collect::<Vec<_>>());
            first[order[0]] += 1;
            for w in order.windows(2) {
                follows[w[0]][w[1]] += 1;
            }
        }
        // 2,000 passes put each target first about 286 times and each
        // ordered pair side by side about 286 times.
        assert!(first.iter().all(|&c| (200..380).contains(&c)), "{first:?}");
        for (a, row) in follows.iter().enumerate() {
            for (b, &c) in row.iter().enumerate() {
                assert!(a == b || (200..380).contains(&c), "{a} then {b}: {c}");
            }
        }
    }
}
