//! What is measured, and how: the workloads, run in alternating rounds on
//! every contender after a warm-up, every result checked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alloc::{Counter, HeapWatch};
use crate::contenders::{Addrs, Contender, Target};
use crate::cpu::{self, CpuTally};
use crate::BenchError;

/// How long and how much to measure.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Warm-up of each workload on each contender, before anything counts.
    pub(crate) warmup: Duration,
    /// Measured rounds; each runs every workload once on each contender.
    pub(crate) rounds: usize,
    /// Sequential unary calls, per round and contender.
    pub(crate) latency_time: Duration,
    /// Pipelined unary calls (`add`, then `echo`), per round and contender.
    pub(crate) pipelined_time: Duration,
    /// Calls in flight in the pipelined workloads.
    pub(crate) in_flight: usize,
    /// Bytes of each `echo` payload.
    pub(crate) echo_size: usize,
    /// Connection counts of the many-connection workload.
    pub(crate) conn_counts: Vec<usize>,
    /// `slow_add` calls fired at once, spread over the connections, per
    /// round, contender and connection count.
    pub(crate) burst_calls: usize,
    /// Items of the one stream, per round and contender.
    pub(crate) stream_items: u64,
    /// Concurrent streams of the fan-out workload.
    pub(crate) fan_streams: usize,
    /// Items of each stream of the fan-out workload.
    pub(crate) fan_items: u64,
    /// The slow consumer's pause after each item.
    pub(crate) slow_pause: Duration,
    /// Calls made (or items streamed, times 10) while counting allocations.
    pub(crate) alloc_calls: u64,
}

impl Plan {
    /// About two minutes per runtime setup.
    pub(crate) fn full() -> Plan {
        Plan {
            warmup: Duration::from_millis(300),
            rounds: 5,
            latency_time: Duration::from_millis(500),
            pipelined_time: Duration::from_millis(750),
            in_flight: 256,
            echo_size: 1024,
            conn_counts: vec![1, 4, 16],
            burst_calls: 960,
            stream_items: 500_000,
            fan_streams: 64,
            fan_items: 10_000,
            slow_pause: Duration::from_millis(1),
            alloc_calls: 20_000,
        }
    }

    /// A few seconds per runtime setup: every contender and workload, few
    /// samples.
    pub(crate) fn quick() -> Plan {
        Plan {
            warmup: Duration::from_millis(30),
            rounds: 2,
            latency_time: Duration::from_millis(80),
            pipelined_time: Duration::from_millis(120),
            in_flight: 256,
            echo_size: 1024,
            conn_counts: vec![1, 4, 16],
            burst_calls: 192,
            stream_items: 20_000,
            fan_streams: 64,
            fan_items: 1_000,
            slow_pause: Duration::from_millis(1),
            alloc_calls: 1_000,
        }
    }
}

/// Sequential `add` calls for `time`; returns each call's latency in
/// nanoseconds.
async fn sequential(target: &Target, time: Duration) -> Result<Vec<u64>, BenchError> {
    let mut target = target.clone();
    let mut samples = Vec::with_capacity(1 << 16);
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
    Ok(samples)
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
    let start = Instant::now();
    let end = start + time;
    let tasks: Vec<_> = (0..in_flight)
        .map(|t| {
            let mut target = target.clone();
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
async fn burst(conns: &[Target], calls: usize) -> Result<(f64, Vec<u64>), BenchError> {
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
async fn stream(target: &Target, n: u64) -> Result<f64, BenchError> {
    let mut target = target.clone();
    let start = Instant::now();
    target.open_count(n).await?.drain(n).await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One run of the fan-out workload.
struct FanRun {
    /// Items per second of the fast streams together.
    fast_rate: f64,
    /// Peak growth of the heap while the fast streams ran, bytes.
    peak_heap: u64,
}

/// `plan.fan_streams` concurrent `count(n)` streams on one connection. With
/// `slow`, the first stream's consumer pauses after every item, until the
/// other streams have ended; it then drops its stream.
async fn fan(target: &Target, plan: &Plan, n: u64, slow: bool) -> Result<FanRun, BenchError> {
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

async fn count_allocs(target: &Target, plan: &Plan) -> Result<Allocs, BenchError> {
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

/// Median, lowest and highest of the rounds' figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        Spread {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The small slack keeps `0.999 * 2000` (1998.0000000000002 in f64) at
    // rank 1998.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rate and tail latency of a workload.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RateTail {
    /// Calls per second, over the rounds.
    pub(crate) rate: Spread,
    /// Latency p99 (pipelined) or p99.9 (many connections), nanoseconds.
    pub(crate) tail: u64,
}

/// The fan-out workload's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FanFigures {
    /// Items/s of all streams when every consumer is fast.
    pub(crate) all_fast: Spread,
    /// Items/s of the fast streams while one consumer is slow.
    pub(crate) with_slow: Spread,
    /// The highest heap growth of any round with a slow consumer, bytes.
    pub(crate) peak_heap: u64,
}

/// One contender's results in one runtime setup.
#[derive(Debug, Clone, Default)]
pub(crate) struct Figures {
    /// Sequential unary latency, nanoseconds.
    pub(crate) seq_p50: u64,
    pub(crate) seq_p99: u64,
    /// Pipelined `add`, and pipelined `echo`.
    pub(crate) pipe_add: RateTail,
    pub(crate) pipe_echo: RateTail,
    /// Many connections, one entry per connection count (p99.9 tails).
    pub(crate) bursts: Vec<RateTail>,
    /// One stream's items per second, if the contender streams.
    pub(crate) stream_rate: Option<Spread>,
    /// The fan-out workload, if it ran.
    pub(crate) fan: Option<FanFigures>,
    /// CPU time, nanoseconds per sequential and per pipelined `add`.
    pub(crate) cpu_seq: Option<f64>,
    pub(crate) cpu_pipe: Option<f64>,
    pub(crate) allocs: Allocs,
}

#[derive(Default)]
struct Collected {
    seq: Vec<u64>,
    pipe: Vec<u64>,
    pipe_rates: Vec<f64>,
    echo: Vec<u64>,
    echo_rates: Vec<f64>,
    bursts: Vec<(Vec<u64>, Vec<f64>)>,
    stream_rates: Vec<f64>,
    fan_fast: Vec<f64>,
    fan_slow: Vec<f64>,
    fan_peak: u64,
    cpu_seq: CpuTally,
    cpu_pipe: CpuTally,
}

/// Every contender's figures, in [`Contender::ALL`] order.
pub(crate) struct Comparison {
    pub(crate) figures: Vec<(Contender, Figures)>,
}

impl Comparison {
    /// The figures of `who`.
    pub(crate) fn of(&self, who: Contender) -> &Figures {
        &self
            .figures
            .iter()
            .find(|(c, _)| *c == who)
            .expect("every contender is measured")
            .1
    }
}

/// The heap growth above which a flow-controlled contender fails the
/// fan-out workload: far above what 64 stream windows hold, far below what
/// an unbounded backlog of the slow stream takes.
const FAN_HEAP_LIMIT: u64 = 64 << 20;

/// The share of their unhindered rate that the fast streams must keep while
/// one consumer is slow; below it the run fails (the stream is stalled, not
/// merely slower on a noisy machine).
const FAN_MIN_SHARE: f64 = 0.25;

/// The order of the contenders in `round`: rotated by the round, and
/// reversed every other round, so that no contender always runs first or
/// right after the same one.
fn order(round: usize) -> Vec<usize> {
    let n = Contender::ALL.len();
    let mut v: Vec<usize> = (0..n).map(|i| (i + round / 2) % n).collect();
    if round % 2 == 1 {
        v.reverse();
    }
    v
}

/// Connects to every contender and measures them.
pub(crate) async fn run_all(addrs: Addrs, plan: &Plan) -> Result<Comparison, BenchError> {
    let max_conns = plan.conn_counts.iter().copied().max().unwrap_or(1);
    let mut targets = Vec::new();
    let mut pools = Vec::new();
    for who in Contender::ALL {
        targets.push(Target::connect(who, &addrs).await?);
        let mut pool = Vec::with_capacity(max_conns);
        for _ in 0..max_conns {
            pool.push(Target::connect(who, &addrs).await?);
        }
        pools.push(pool);
    }

    for (t, pool) in targets.iter().zip(&pools) {
        let who = t.contender();
        sequential(t, plan.warmup).await?;
        pipelined(t, plan.in_flight, plan.warmup, Op::Add).await?;
        pipelined(t, plan.in_flight, plan.warmup, Op::Echo(plan.echo_size)).await?;
        burst(pool, plan.burst_calls).await?;
        if who.streams() {
            stream(t, plan.stream_items / 10).await?;
        }
        if who.fans_out() {
            fan(t, plan, plan.fan_items / 10, false).await?;
        }
    }

    let mut collected: Vec<Collected> = Contender::ALL
        .iter()
        .map(|_| Collected {
            bursts: plan
                .conn_counts
                .iter()
                .map(|_| Default::default())
                .collect(),
            ..Default::default()
        })
        .collect();
    for round in 0..plan.rounds {
        let order = order(round);
        for &i in &order {
            let before = cpu::process_time();
            let samples = sequential(&targets[i], plan.latency_time).await?;
            collected[i].cpu_seq.add(before, samples.len() as u64);
            collected[i].seq.extend(samples);
        }
        for &i in &order {
            let before = cpu::process_time();
            let run = pipelined(&targets[i], plan.in_flight, plan.pipelined_time, Op::Add).await?;
            collected[i].cpu_pipe.add(before, run.samples.len() as u64);
            collected[i].pipe_rates.push(run.calls_per_sec);
            collected[i].pipe.extend(run.samples);
        }
        for &i in &order {
            let op = Op::Echo(plan.echo_size);
            let run = pipelined(&targets[i], plan.in_flight, plan.pipelined_time, op).await?;
            collected[i].echo_rates.push(run.calls_per_sec);
            collected[i].echo.extend(run.samples);
        }
        for (k, &conns) in plan.conn_counts.iter().enumerate() {
            for &i in &order {
                let (rate, samples) = burst(&pools[i][..conns], plan.burst_calls).await?;
                collected[i].bursts[k].0.extend(samples);
                collected[i].bursts[k].1.push(rate);
            }
        }
        for &i in &order {
            if Contender::ALL[i].streams() {
                let rate = stream(&targets[i], plan.stream_items).await?;
                collected[i].stream_rates.push(rate);
            }
        }
        for &i in &order {
            if Contender::ALL[i].fans_out() {
                let all_fast = fan(&targets[i], plan, plan.fan_items, false).await?;
                let with_slow = fan(&targets[i], plan, plan.fan_items, true).await?;
                let c = &mut collected[i];
                c.fan_fast.push(all_fast.fast_rate);
                c.fan_slow.push(with_slow.fast_rate);
                c.fan_peak = c.fan_peak.max(with_slow.peak_heap);
            }
        }
    }

    let mut figures = Vec::with_capacity(Contender::ALL.len());
    for (target, mut c) in targets.iter().zip(collected) {
        let who = target.contender();
        c.seq.sort_unstable();
        c.pipe.sort_unstable();
        c.echo.sort_unstable();
        let bursts = c
            .bursts
            .into_iter()
            .map(|(mut samples, rates)| {
                samples.sort_unstable();
                RateTail {
                    rate: Spread::of(rates),
                    tail: percentile(&samples, 99.9),
                }
            })
            .collect();
        let fan = who.fans_out().then(|| FanFigures {
            all_fast: Spread::of(c.fan_fast),
            with_slow: Spread::of(c.fan_slow),
            peak_heap: c.fan_peak,
        });
        if let Some(f) = &fan {
            if f.with_slow.median < FAN_MIN_SHARE * f.all_fast.median {
                return Err(BenchError::new(format!(
                    "{who}: with one slow consumer the other streams fell to {:.0} items/s, \
                     from {:.0}: they are held back",
                    f.with_slow.median, f.all_fast.median
                )));
            }
            if who.bounds_stream_memory() && f.peak_heap > FAN_HEAP_LIMIT {
                return Err(BenchError::new(format!(
                    "{who}: the heap grew by {} bytes with one slow consumer (limit {FAN_HEAP_LIMIT})",
                    f.peak_heap
                )));
            }
        }
        figures.push((
            who,
            Figures {
                seq_p50: percentile(&c.seq, 50.0),
                seq_p99: percentile(&c.seq, 99.0),
                pipe_add: RateTail {
                    rate: Spread::of(c.pipe_rates),
                    tail: percentile(&c.pipe, 99.0),
                },
                pipe_echo: RateTail {
                    rate: Spread::of(c.echo_rates),
                    tail: percentile(&c.echo, 99.0),
                },
                bursts,
                stream_rate: who.streams().then(|| Spread::of(c.stream_rates)),
                fan,
                cpu_seq: c.cpu_seq.per_call(),
                cpu_pipe: c.cpu_pipe.per_call(),
                allocs: count_allocs(target, plan).await?,
            },
        ));
    }
    Ok(Comparison { figures })
}

/// What `--profile` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProfileWorkload {
    /// One caller, one call at a time.
    Sequential,
    /// Calls in flight on one connection.
    Pipelined(Op),
    /// One stream after another.
    Stream,
}

/// One workload on one contender, for a profiler to watch: a short
/// warm-up, then `time` of it. Returns the calls (or items) made, warm-up
/// included, for per-call profile counts, and the measured rate.
pub(crate) async fn profile(
    addrs: Addrs,
    who: Contender,
    workload: ProfileWorkload,
    in_flight: usize,
    time: Duration,
) -> Result<(u64, f64), BenchError> {
    let target = Target::connect(who, &addrs).await?;
    let run = |time: Duration| {
        let target = target.clone();
        async move {
            let start = Instant::now();
            let count = match workload {
                ProfileWorkload::Sequential => sequential(&target, time).await?.len() as u64,
                ProfileWorkload::Pipelined(op) => {
                    pipelined(&target, in_flight, time, op).await?.samples.len() as u64
                }
                ProfileWorkload::Stream => {
                    let mut items = 0;
                    while start.elapsed() < time {
                        stream(&target, 100_000).await?;
                        items += 100_000;
                    }
                    items
                }
            };
            Ok::<_, BenchError>((count, count as f64 / start.elapsed().as_secs_f64()))
        }
    };
    let (warm, _) = run(time / 10).await?;
    let (count, rate) = run(time).await?;
    Ok((warm + count, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[5], 99.0), 5);
        assert_eq!(percentile(&[], 50.0), 0);
        let w: Vec<u64> = (1..=2000).collect();
        assert_eq!(percentile(&w, 99.9), 1998);
    }

    #[test]
    fn every_contender_leads_some_round() {
        let n = Contender::ALL.len();
        let firsts: std::collections::HashSet<usize> = (0..2 * n).map(|r| order(r)[0]).collect();
        assert_eq!(firsts.len(), n);
        for r in 0..2 * n {
            let mut o = order(r);
            o.sort_unstable();
            assert_eq!(o, (0..n).collect::<Vec<_>>());
        }
    }
}
