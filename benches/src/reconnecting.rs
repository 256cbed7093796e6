//! The reconnect rows: a client built with `reconnect(..)` against a plain
//! client, both on the same plaintext cmdstream server and a healthy
//! connection. What the supervisor costs the call path: sequential latency,
//! pipelined `add` and allocations per call, in each runtime setup.

use std::fmt::Write;
use std::time::Duration;

use crate::contenders::{Addrs, Target};
use crate::plan::Plan;
use crate::report;
use crate::runtime::{run_client, Setup};
use crate::service::BenchClient;
use crate::side_by_side::{unary_rounds, UnaryFigures};
use crate::workload::{count_allocs, Allocs};
use crate::BenchError;

/// The goal on pipelined `add`, reconnecting against plain.
const PIPE_GOAL: f64 = 0.95;

/// Allocations per pipelined call count as unchanged up to this ratio: the
/// count varies by about 0.01 a call from run to run of one client, with
/// how the calls fall into batches.
const ALLOCS_SAME: f64 = 1.02;

/// Rounds per round of the main run.
const PAIRED_ROUNDS: usize = 4;

/// Both clients' figures: plain first, reconnecting second.
pub(crate) struct ReconnectComparison {
    unary: [UnaryFigures; 2],
    rounds: usize,
    allocs: [Allocs; 2],
}

/// Measures a plain and a reconnecting client in `setup`.
pub(crate) fn run(
    setup: Setup,
    plan: &Plan,
    watchdog: Duration,
) -> Result<ReconnectComparison, BenchError> {
    let plan = plan.clone();
    run_client(setup, watchdog, move |addrs| measure(addrs, plan))
}

async fn measure(addrs: Addrs, plan: Plan) -> Result<ReconnectComparison, BenchError> {
    let plain = BenchClient::connect(addrs.cmd_bincode).await?;
    let builder = cmdstream::Client::builder().reconnect(cmdstream::Reconnect::new());
    let reconnecting = BenchClient::connect_with(builder, addrs.cmd_bincode).await?;
    let targets = [Target::Cmdstream(plain), Target::Cmdstream(reconnecting)];
    // The two differ by a few per cent at most, less than a shared
    // machine drifts in a few seconds: so four times the main run's
    // rounds, each a quarter as long at sequential calls and half as long
    // at pipelined ones, in the same shuffled turns.
    let paired = Plan {
        rounds: plan.rounds * PAIRED_ROUNDS,
        latency_time: plan.latency_time / PAIRED_ROUNDS as u32,
        pipelined_time: plan.pipelined_time / 2,
        ..plan.clone()
    };
    let unary: [UnaryFigures; 2] = unary_rounds(&targets, &paired)
        .await?
        .try_into()
        .map_err(|_| BenchError::new("two clients, two sets of figures"))?;
    let allocs = [
        count_allocs(&targets[0], &plan).await?,
        count_allocs(&targets[1], &plan).await?,
    ];
    Ok(ReconnectComparison {
        unary,
        rounds: paired.rounds,
        allocs,
    })
}

/// The reconnect section of the report for one setup.
pub(crate) fn table(setup: Setup, c: &ReconnectComparison, plan: &Plan) -> String {
    let [plain, re] = &c.unary;
    let [plain_allocs, re_allocs] = &c.allocs;
    let mut s = String::new();
    let _ = writeln!(s, "\n### Setup {}: reconnecting client\n", setup.letter());
    let _ = writeln!(s, "| metric | plain | reconnecting | reconnecting/plain |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let micros = |ns: u64| format!("{:.1} µs", ns as f64 / 1000.0);
    let _ = writeln!(
        s,
        "| sequential `add` latency p50 | {} | {} | {:.2} |",
        micros(plain.seq_p50),
        micros(re.seq_p50),
        re.seq_p50 as f64 / plain.seq_p50.max(1) as f64
    );
    let rate = report::rate;
    let ratios = re.pipe_add.ratios_to(&plain.pipe_add);
    let pipe = ratios.median;
    let _ = writeln!(
        s,
        "| pipelined `add` calls/s ({} in flight) | {} | {} | {pipe:.2} ({:.2}–{:.2}) |",
        plan.in_flight,
        rate(plain.pipe_add.spread()),
        rate(re.pipe_add.spread()),
        ratios.min,
        ratios.max
    );
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    let _ = writeln!(
        s,
        "| allocations per sequential call | {:.2} | {:.2} | {:.2} |",
        plain_allocs.sequential,
        re_allocs.sequential,
        ratio(re_allocs.sequential, plain_allocs.sequential)
    );
    let allocs = ratio(re_allocs.pipelined, plain_allocs.pipelined);
    let _ = writeln!(
        s,
        "| allocations per pipelined call | {:.2} | {:.2} | {allocs:.2} |",
        plain_allocs.pipelined, re_allocs.pipelined
    );
    let _ = writeln!(
        s,
        "\n{} rounds, each with turns of both clients in an order shuffled every pass ({} \
         pipelined turns each in all); the pipelined ratio is the median of the passes' own \
         ratios (lowest–highest).",
        c.rounds,
        re.pipe_add.0.len()
    );
    let verdict = |met: bool| if met { "met" } else { "**missed**" };
    let _ = writeln!(
        s,
        "\nTarget: pipelined `add` reconnecting/plain ≥ {PIPE_GOAL}: {pipe:.2}, {}; \
         allocations per pipelined call unchanged: {allocs:.2}, {}.",
        verdict(pipe >= PIPE_GOAL),
        verdict(allocs <= ALLOCS_SAME)
    );
    s
}
