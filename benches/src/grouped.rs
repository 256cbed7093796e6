//! The group rows: pipelined `add` over a group of 1, 2 and 4 connections
//! to one server, against as many plain clients with the calls spread over
//! them; and allocations per call for the one-member group. What a group
//! costs the call path, in each runtime setup.

use std::fmt::Write;
use std::time::Duration;

use cmdstream::{Client, Group};

use crate::contenders::{Addrs, Target};
use crate::cpu::CpuTally;
use crate::plan::Plan;
use crate::report;
use crate::runtime::{run_client, Setup};
use crate::service::BenchClient;
use crate::stats::Turns;
use crate::workload::{
    count_allocs, pipelined_interleaved, pipelined_over, Allocs, Op, PipelinedTurns,
};
use crate::BenchError;

/// The group sizes measured.
const SIZES: [usize; 3] = [1, 2, 4];

/// The goal for a one-member group on pipelined `add`, against one plain
/// client.
const ONE_MEMBER_GOAL: f64 = 0.9;

/// One group size's figures.
struct Row {
    size: usize,
    /// Calls per second in each round.
    plain: Turns,
    group: Turns,
}

/// Every size's figures, and the allocations of a one-member group against
/// one plain client.
pub(crate) struct GroupComparison {
    rows: Vec<Row>,
    /// Turns each of plain and group took, per size.
    turns: usize,
    allocs: [Allocs; 2],
}

/// Measures groups against plain clients in `setup`.
pub(crate) fn run(
    setup: Setup,
    plan: &Plan,
    watchdog: Duration,
) -> Result<GroupComparison, BenchError> {
    let plan = plan.clone();
    run_client(setup, watchdog, move |addrs| measure(addrs, plan))
}

async fn measure(addrs: Addrs, plan: Plan) -> Result<GroupComparison, BenchError> {
    // Each as long as all the main run's pipelined `add` turns together,
    // in the same turns.
    let time = plan.pipelined_time * plan.rounds as u32;
    let mut turns = 0;
    let mut rows = Vec::new();
    let mut one_member = None;
    for size in SIZES {
        let mut plain = Vec::with_capacity(size);
        for _ in 0..size {
            plain.push(Target::Cmdstream(
                BenchClient::connect(addrs.cmd_bincode).await?,
            ));
        }
        let group = Client::builder()
            .connect_group(
                Group::new().connections_per_endpoint(size),
                [addrs.cmd_bincode],
                BenchClient::INFO,
            )
            .await?;
        let group = [Target::Cmdstream(BenchClient::from(group))];
        pipelined_over(&plain, plan.in_flight, plan.warmup, Op::Add).await?;
        pipelined_over(&group, plan.in_flight, plan.warmup, Op::Add).await?;
        let [plain_turns, group_turns]: [PipelinedTurns; 2] = pipelined_interleaved(
            &[&plain, &group],
            plan.in_flight,
            time,
            plan.pipelined_turn,
            Op::Add,
            &mut [CpuTally::default(); 2],
        )
        .await?
        .try_into()
        .map_err(|_| BenchError::new("two contenders, two sets of turns"))?;
        turns = plain_turns.rates.len();
        rows.push(Row {
            size,
            plain: Turns(plain_turns.rates),
            group: Turns(group_turns.rates),
        });
        if size == 1 {
            one_member = Some([
                count_allocs(&plain[0], &plan).await?,
                count_allocs(&group[0], &plan).await?,
            ]);
        }
    }
    Ok(GroupComparison {
        rows,
        turns,
        allocs: one_member.ok_or_else(|| BenchError::new("no one-member group measured"))?,
    })
}

/// The group section of the report for one setup.
pub(crate) fn table(setup: Setup, c: &GroupComparison, plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### Setup {}: client groups\n", setup.letter());
    let _ = writeln!(
        s,
        "| pipelined `add` calls/s ({} in flight) | N plain clients | a group of N | group/plain |",
        plan.in_flight
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let rate = report::rate;
    for row in &c.rows {
        let ratio = row.group.ratios_to(&row.plain);
        let _ = writeln!(
            s,
            "| N = {} | {} | {} | {:.2} ({:.2}–{:.2}) |",
            row.size,
            rate(row.plain.spread()),
            rate(row.group.spread()),
            ratio.median,
            ratio.min,
            ratio.max
        );
    }
    let [plain, group] = &c.allocs;
    let _ = writeln!(
        s,
        "\nAllocations per pipelined call, one plain client / a one-member group: {:.2} / {:.2}.",
        plain.pipelined, group.pipelined
    );
    let _ = writeln!(
        s,
        "\n{} turns each per size, plain and group in an order shuffled every pass; a ratio \
         is the median of the passes' own ratios (lowest–highest).",
        c.turns
    );
    let one = c.rows.first().map_or(0.0, |r| r.group.ratio_to(&r.plain));
    let _ = writeln!(
        s,
        "\nTarget: pipelined `add`, a one-member group against one plain client ≥ {ONE_MEMBER_GOAL}: {one:.2}, {}.",
        if one >= ONE_MEMBER_GOAL {
            "met"
        } else {
            "**missed**"
        }
    );
    s
}
