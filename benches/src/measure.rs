//! The rounds: every workload on every contender after a warm-up, most
//! in turns shuffled every pass, and the figures made of them.

use std::time::{Duration, Instant};

use crate::contenders::{Addrs, Contender, Target};
use crate::cpu::CpuTally;
use crate::plan::Plan;
use crate::stats::{percentile, Turns};
use crate::workload::{
    burst, count_allocs, fan, pipelined, pipelined_interleaved, sequential, sequential_interleaved,
    stream, Allocs, Op, Shuffle,
};
use crate::BenchError;

/// Rate and tail latency of a workload.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateTail {
    /// Calls per second of each turn (pipelined) or round (many
    /// connections).
    pub(crate) rate: Turns,
    /// Latency p99 (pipelined) or p99.9 (many connections), nanoseconds.
    pub(crate) tail: u64,
}

/// The fan-out workload's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct FanFigures {
    /// Items/s of all streams when every consumer is fast, per turn.
    pub(crate) all_fast: Turns,
    /// Items/s of the fast streams while one consumer is slow, per turn.
    pub(crate) with_slow: Turns,
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
    /// One stream's items per second in each turn, if the contender
    /// streams.
    pub(crate) stream_rate: Option<Turns>,
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
    /// Sequential `add` latency p50 of a second raw connection, measured
    /// alongside the others, nanoseconds: against raw's own, it shows how
    /// far two identical contenders come apart in this method.
    pub(crate) raw_again_seq_p50: u64,
    /// Pipelined `add` calls per second of that second raw connection, per
    /// turn.
    pub(crate) raw_again_add: Turns,
    /// Its items per second of one stream, and of 64 fast ones, per turn.
    pub(crate) raw_again_stream: Turns,
    pub(crate) raw_again_fan: Turns,
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
    // The workloads taken in turns take them on every contender and,
    // last (index `n`), on a second raw connection: the control.
    let n = targets.len();
    let mut turn_targets = targets.clone();
    turn_targets.push(Target::connect(Contender::Raw, &addrs).await?);
    let with_control: Vec<&[Target]> = turn_targets.chunks(1).collect();
    let mut cpu_seq = vec![CpuTally::default(); n + 1];
    let mut cpu_pipe = vec![CpuTally::default(); n + 1];
    let mut raw_again = Vec::new();
    let mut raw_again_rates = Vec::new();
    let mut streaming: Vec<usize> = (0..=n)
        .filter(|&i| i == n || Contender::ALL[i].streams())
        .collect();
    let mut fanning: Vec<usize> = (0..=n)
        .filter(|&i| i == n || Contender::ALL[i].fans_out())
        .collect();
    let mut shuffle = Shuffle::new(0x3c6e_f372_fe94_f82b);
    let (mut control_stream, mut control_fan) = (Vec::new(), Vec::new());

    sequential(&turn_targets[n], plan.warmup).await?;
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
        let mut seq = sequential_interleaved(
            &turn_targets,
            plan.latency_time,
            plan.latency_turn,
            &mut cpu_seq,
        )
        .await?;
        raw_again.extend(seq.pop().expect("the control's samples"));
        for (c, samples) in collected.iter_mut().zip(seq) {
            c.seq.extend(samples);
        }
        // The control takes its turns at `add`, not `echo`.
        let mut add = pipelined_interleaved(
            &with_control,
            plan.in_flight,
            plan.pipelined_time,
            plan.pipelined_turn,
            Op::Add,
            &mut cpu_pipe,
        )
        .await?;
        raw_again_rates.extend(add.pop().expect("the control's turns").rates);
        let echo = pipelined_interleaved(
            &with_control[..n],
            plan.in_flight,
            plan.pipelined_time,
            plan.pipelined_turn,
            Op::Echo(plan.echo_size),
            &mut vec![CpuTally::default(); n],
        )
        .await?;
        for ((c, add), echo) in collected.iter_mut().zip(add).zip(echo) {
            c.pipe_rates.extend(add.rates);
            c.pipe.extend(add.samples);
            c.echo_rates.extend(echo.rates);
            c.echo.extend(echo.samples);
        }
        for (k, &conns) in plan.conn_counts.iter().enumerate() {
            for &i in &order {
                let (rate, samples) = burst(&pools[i][..conns], plan.burst_calls).await?;
                collected[i].bursts[k].0.extend(samples);
                collected[i].bursts[k].1.push(rate);
            }
        }
        // A stream is over in milliseconds: several turns of each in a
        // round, shuffled, the control (index `n`) among them.
        for _ in 0..plan.stream_turns {
            shuffle.apply(&mut streaming);
            for &i in &streaming {
                let rate = stream(&turn_targets[i], plan.stream_items).await?;
                match collected.get_mut(i) {
                    Some(c) => c.stream_rates.push(rate),
                    None => control_stream.push(rate),
                }
            }
            shuffle.apply(&mut fanning);
            for &i in &fanning {
                let all_fast = fan(&turn_targets[i], plan, plan.fan_items, false).await?;
                match collected.get_mut(i) {
                    Some(c) => {
                        let with_slow = fan(&turn_targets[i], plan, plan.fan_items, true).await?;
                        c.fan_fast.push(all_fast.fast_rate);
                        c.fan_slow.push(with_slow.fast_rate);
                        c.fan_peak = c.fan_peak.max(with_slow.peak_heap);
                    }
                    None => control_fan.push(all_fast.fast_rate),
                }
            }
        }
    }

    for ((c, seq), pipe) in collected.iter_mut().zip(cpu_seq).zip(cpu_pipe) {
        c.cpu_seq = seq;
        c.cpu_pipe = pipe;
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
                    rate: Turns(rates),
                    tail: percentile(&samples, 99.9),
                }
            })
            .collect();
        let fan = who.fans_out().then_some(FanFigures {
            all_fast: Turns(c.fan_fast),
            with_slow: Turns(c.fan_slow),
            peak_heap: c.fan_peak,
        });
        if let Some(f) = &fan {
            let (with_slow, all_fast) = (f.with_slow.spread().median, f.all_fast.spread().median);
            if with_slow < FAN_MIN_SHARE * all_fast {
                return Err(BenchError::new(format!(
                    "{who}: with one slow consumer the other streams fell to {:.0} items/s, \
                     from {:.0}: they are held back",
                    with_slow, all_fast
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
                    rate: Turns(c.pipe_rates),
                    tail: percentile(&c.pipe, 99.0),
                },
                pipe_echo: RateTail {
                    rate: Turns(c.echo_rates),
                    tail: percentile(&c.echo, 99.0),
                },
                bursts,
                stream_rate: who.streams().then_some(Turns(c.stream_rates)),
                fan,
                cpu_seq: c.cpu_seq.per_call(),
                cpu_pipe: c.cpu_pipe.per_call(),
                allocs: count_allocs(target, plan).await?,
            },
        ));
    }
    raw_again.sort_unstable();
    Ok(Comparison {
        figures,
        raw_again_seq_p50: percentile(&raw_again, 50.0),
        raw_again_add: Turns(raw_again_rates),
        raw_again_stream: Turns(control_stream),
        raw_again_fan: Turns(control_fan),
    })
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
    /// 64 concurrent streams on one connection, all read fast, again and
    /// again.
    Fan,
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
                ProfileWorkload::Fan => {
                    let plan = Plan::full();
                    let mut items = 0;
                    while start.elapsed() < time {
                        fan(&target, &plan, plan.fan_items, false).await?;
                        items += plan.fan_items * plan.fan_streams as u64;
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
