//! Sequential and pipelined `add` on a few contenders side by side, in
//! the main run's rounds of shuffled turns: the figures of the sections
//! that compare a few contenders (over TLS, reconnecting).

use crate::contenders::Target;
use crate::cpu::CpuTally;
use crate::plan::Plan;
use crate::stats::{percentile, Turns};
use crate::workload::{pipelined, pipelined_interleaved, sequential, sequential_interleaved, Op};
use crate::BenchError;

/// One contender's figures in a side-by-side of unary calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnaryFigures {
    /// Sequential `add` latency p50, nanoseconds.
    pub(crate) seq_p50: u64,
    /// Pipelined `add` calls per second, per turn.
    pub(crate) pipe_add: Turns,
}

/// Sequential and pipelined `add` on each of `targets` after a warm-up,
/// in rounds of shuffled turns as in the main run: the sections that set
/// a few contenders side by side (over TLS, reconnecting).
pub(crate) async fn unary_rounds(
    targets: &[Target],
    plan: &Plan,
) -> Result<Vec<UnaryFigures>, BenchError> {
    let n = targets.len();
    for t in targets {
        sequential(t, plan.warmup).await?;
        pipelined(t, plan.in_flight, plan.warmup, Op::Add).await?;
    }
    let mut seq: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut cpu = vec![CpuTally::default(); n];
    let each: Vec<&[Target]> = targets.chunks(1).collect();
    for _ in 0..plan.rounds {
        let samples =
            sequential_interleaved(targets, plan.latency_time, plan.latency_turn, &mut cpu).await?;
        for (all, some) in seq.iter_mut().zip(samples) {
            all.extend(some);
        }
        let turns = pipelined_interleaved(
            &each,
            plan.in_flight,
            plan.pipelined_time,
            plan.pipelined_turn,
            Op::Add,
            &mut cpu,
        )
        .await?;
        for (all, some) in rates.iter_mut().zip(turns) {
            all.extend(some.rates);
        }
    }
    Ok(seq
        .into_iter()
        .zip(rates)
        .map(|(mut seq, rates)| {
            seq.sort_unstable();
            UnaryFigures {
                seq_p50: percentile(&seq, 50.0),
                pipe_add: Turns(rates),
            }
        })
        .collect())
}
