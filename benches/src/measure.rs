//! What is measured, and how: the three workloads, run alternately on the
//! two contenders after a warm-up, every result checked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::alloc::Counter;
use crate::raw::RawClient;
use crate::service::BenchClient;
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
    /// Pipelined unary calls, per round and contender.
    pub(crate) pipelined_time: Duration,
    /// Calls in flight in the pipelined workload.
    pub(crate) in_flight: usize,
    /// Items of the one stream, per round and contender.
    pub(crate) stream_items: u64,
    /// Calls made (or items streamed, times 10) while counting allocations.
    pub(crate) alloc_calls: u64,
}

impl Plan {
    /// About 45 s per runtime setup.
    pub(crate) fn full() -> Plan {
        Plan {
            warmup: Duration::from_millis(500),
            rounds: 6,
            latency_time: Duration::from_millis(1000),
            pipelined_time: Duration::from_millis(1500),
            in_flight: 256,
            stream_items: 1_000_000,
            alloc_calls: 20_000,
        }
    }

    /// A few seconds per runtime setup: every path, few samples.
    pub(crate) fn quick() -> Plan {
        Plan {
            warmup: Duration::from_millis(50),
            rounds: 2,
            latency_time: Duration::from_millis(200),
            pipelined_time: Duration::from_millis(250),
            in_flight: 256,
            stream_items: 50_000,
            alloc_calls: 2_000,
        }
    }
}

/// One contender's connection.
#[derive(Clone)]
pub(crate) enum Target {
    Cmdstream(BenchClient),
    Raw(RawClient),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Cmdstream(_) => "cmdstream",
            Target::Raw(_) => "raw",
        }
    }

    /// One checked `add` call.
    async fn add(&self, a: i64, b: i64) -> Result<(), BenchError> {
        let got = match self {
            Target::Cmdstream(c) => c.add(a, b).await?,
            Target::Raw(c) => c.add(a, b).await?,
        };
        let want = a.wrapping_add(b);
        if got != want {
            return Err(BenchError::new(format!(
                "{}: add({a}, {b}) returned {got}, not {want}",
                self.name()
            )));
        }
        Ok(())
    }

    /// One `count(n)` call, every item checked.
    async fn count(&self, n: u64) -> Result<(), BenchError> {
        let mut next = 0u64;
        let mut check = |item: u64| {
            if item != next {
                return Err(BenchError::new(format!(
                    "{}: stream item {next} was {item}",
                    self.name()
                )));
            }
            next += 1;
            Ok(())
        };
        match self {
            Target::Cmdstream(c) => {
                let mut s = c.count(n)?;
                while let Some(item) = s.next().await {
                    check(item?)?;
                }
            }
            Target::Raw(c) => {
                let mut s = c.count(n)?;
                while let Some(item) = s.next().await {
                    check(item?)?;
                }
            }
        }
        if next != n {
            return Err(BenchError::new(format!(
                "{}: the stream ended after {next} of {n} items",
                self.name()
            )));
        }
        Ok(())
    }
}

/// Sequential calls for `time`; returns each call's latency in nanoseconds.
async fn sequential(target: &Target, time: Duration) -> Result<Vec<u64>, BenchError> {
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

/// `in_flight` tasks calling in a loop on one shared handle for `time`.
struct PipelinedRun {
    calls_per_sec: f64,
    samples: Vec<u64>,
}

async fn pipelined(
    target: &Target,
    in_flight: usize,
    time: Duration,
) -> Result<PipelinedRun, BenchError> {
    let start = Instant::now();
    let end = start + time;
    let tasks: Vec<_> = (0..in_flight)
        .map(|t| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(4096);
                let base = (t as i64) << 40;
                let mut i = 0i64;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    target.add(base + i, -3).await?;
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

/// One stream of `n` items; returns items per second.
async fn stream(target: &Target, n: u64) -> Result<f64, BenchError> {
    let start = Instant::now();
    target.count(n).await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Heap allocations (client and server together) per call and per streamed
/// item, measured after the warm-up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allocs {
    pub(crate) sequential: f64,
    pub(crate) pipelined: f64,
    pub(crate) per_item: f64,
}

async fn count_allocs(target: &Target, plan: &Plan) -> Result<Allocs, BenchError> {
    let calls = plan.alloc_calls;

    let c = Counter::start();
    for i in 0..calls {
        target.add(i as i64, 1).await?;
    }
    let sequential = c.stop();

    // The tasks are spawned outside the counting window.
    let per_task = calls / plan.in_flight as u64 + 1;
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(plan.in_flight + 1));
    let tasks: Vec<_> = (0..plan.in_flight)
        .map(|t| {
            let target = target.clone();
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

    let items = calls * 10;
    let c = Counter::start();
    target.count(items).await?;
    let streamed = c.stop();

    Ok(Allocs {
        sequential: (sequential.allocs + sequential.reallocs) as f64 / calls as f64,
        pipelined: (pipelined.allocs + pipelined.reallocs) as f64 / pipelined_calls as f64,
        per_item: (streamed.allocs + streamed.reallocs) as f64 / items as f64,
    })
}

/// One contender's results in one runtime setup.
#[derive(Debug, Clone, Default)]
pub(crate) struct Figures {
    /// Sequential unary latency, nanoseconds.
    pub(crate) seq_p50: u64,
    pub(crate) seq_p99: u64,
    /// Pipelined calls per second: the median round, and the slowest and
    /// fastest rounds.
    pub(crate) pipe_rate: Spread,
    /// Pipelined latency p99, nanoseconds.
    pub(crate) pipe_p99: u64,
    /// Streamed items per second.
    pub(crate) stream_rate: Spread,
    pub(crate) allocs: Allocs,
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
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Default)]
struct Collected {
    seq: Vec<u64>,
    pipe: Vec<u64>,
    pipe_rates: Vec<f64>,
    stream_rates: Vec<f64>,
}

/// Both contenders' figures, cmdstream first.
pub(crate) struct Comparison {
    pub(crate) cmdstream: Figures,
    pub(crate) raw: Figures,
}

/// Which contender `--profile` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contender {
    Cmdstream,
    Raw,
}

/// Only the pipelined workload on one contender, for a profiler to watch:
/// a short warm-up, then `time` of calls. Returns all the calls made
/// (warm-up included, for per-call profile counts) and the measured rate.
pub(crate) async fn profile_pipelined(
    cmd_addr: SocketAddr,
    raw_addr: SocketAddr,
    who: Contender,
    in_flight: usize,
    time: Duration,
) -> Result<(usize, f64), BenchError> {
    let target = match who {
        Contender::Cmdstream => Target::Cmdstream(BenchClient::connect(cmd_addr).await?),
        Contender::Raw => Target::Raw(RawClient::connect(raw_addr).await?),
    };
    let warm = pipelined(&target, in_flight, time / 10).await?;
    let run = pipelined(&target, in_flight, time).await?;
    Ok((warm.samples.len() + run.samples.len(), run.calls_per_sec))
}

/// Connects both contenders and measures them.
pub(crate) async fn run_all(
    cmd_addr: SocketAddr,
    raw_addr: SocketAddr,
    plan: &Plan,
) -> Result<Comparison, BenchError> {
    let targets = [
        Target::Cmdstream(BenchClient::connect(cmd_addr).await?),
        Target::Raw(RawClient::connect(raw_addr).await?),
    ];

    for t in &targets {
        sequential(t, plan.warmup).await?;
        pipelined(t, plan.in_flight, plan.warmup).await?;
        stream(t, plan.stream_items / 10).await?;
    }

    let mut collected = [Collected::default(), Collected::default()];
    for round in 0..plan.rounds {
        // ABBA: each contender goes first in every other round.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for &i in &order {
            collected[i]
                .seq
                .extend(sequential(&targets[i], plan.latency_time).await?);
        }
        for &i in &order {
            let run = pipelined(&targets[i], plan.in_flight, plan.pipelined_time).await?;
            collected[i].pipe_rates.push(run.calls_per_sec);
            collected[i].pipe.extend(run.samples);
        }
        for &i in &order {
            let rate = stream(&targets[i], plan.stream_items).await?;
            collected[i].stream_rates.push(rate);
        }
    }

    let mut figures = Vec::with_capacity(2);
    for (target, mut c) in targets.iter().zip(collected) {
        c.seq.sort_unstable();
        c.pipe.sort_unstable();
        figures.push(Figures {
            seq_p50: percentile(&c.seq, 50.0),
            seq_p99: percentile(&c.seq, 99.0),
            pipe_rate: Spread::of(c.pipe_rates),
            pipe_p99: percentile(&c.pipe, 99.0),
            stream_rate: Spread::of(c.stream_rates),
            allocs: count_allocs(target, plan).await?,
        });
    }
    let raw = figures.pop().expect("two contenders");
    let cmdstream = figures.pop().expect("two contenders");
    Ok(Comparison { cmdstream, raw })
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
    }
}
