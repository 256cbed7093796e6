//! The Markdown tables.

use std::fmt::Write;

use crate::measure::{Comparison, Plan, Spread};
use crate::runtime::Setup;

fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

fn rate(s: Spread) -> String {
    format!(
        "{} ({}–{})",
        thousands(s.median),
        thousands(s.min),
        thousands(s.max)
    )
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(cmd: f64, raw: f64) -> String {
    if raw == 0.0 {
        "–".into()
    } else {
        format!("{:.2}", cmd / raw)
    }
}

/// What the run measured, once above the tables.
pub(crate) fn preamble(plan: &Plan, quick: bool, cpus: usize, cpu_model: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# cmdstream vs raw TCP{}\n",
        if quick { " (quick)" } else { "" }
    );
    let _ = writeln!(s, "- CPUs: {cpus} × {cpu_model}");
    let _ = writeln!(
        s,
        "- per setup: warm-up {:?} per workload and contender, then {} alternating rounds of \
         {:?} sequential calls, {:?} with {} calls in flight, one stream of {} items",
        plan.warmup,
        plan.rounds,
        plan.latency_time,
        plan.pipelined_time,
        plan.in_flight,
        thousands(plan.stream_items as f64),
    );
    let _ = writeln!(
        s,
        "- rates are the median round (slowest–fastest round); latencies are over all rounds' calls"
    );
    let _ = writeln!(
        s,
        "- the ratio is cmdstream / raw: above 1 is slower for latencies and allocations, faster for rates"
    );
    s
}

/// One setup's table.
pub(crate) fn table(setup: Setup, c: &Comparison, in_flight: usize) -> String {
    let (a, b) = (&c.cmdstream, &c.raw);
    let mut s = String::new();
    let _ = writeln!(s, "\n## Setup {setup}\n");
    let _ = writeln!(s, "| metric | cmdstream | raw | cmdstream/raw |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let mut row = |name: String, x: String, y: String, r: String| {
        let _ = writeln!(s, "| {name} | {x} | {y} | {r} |");
    };
    row(
        "sequential unary latency p50".into(),
        micros(a.seq_p50),
        micros(b.seq_p50),
        ratio(a.seq_p50 as f64, b.seq_p50 as f64),
    );
    row(
        "sequential unary latency p99".into(),
        micros(a.seq_p99),
        micros(b.seq_p99),
        ratio(a.seq_p99 as f64, b.seq_p99 as f64),
    );
    row(
        format!("pipelined unary calls/s ({in_flight} in flight)"),
        rate(a.pipe_rate),
        rate(b.pipe_rate),
        ratio(a.pipe_rate.median, b.pipe_rate.median),
    );
    row(
        "pipelined unary latency p99".into(),
        micros(a.pipe_p99),
        micros(b.pipe_p99),
        ratio(a.pipe_p99 as f64, b.pipe_p99 as f64),
    );
    row(
        "server stream items/s".into(),
        rate(a.stream_rate),
        rate(b.stream_rate),
        ratio(a.stream_rate.median, b.stream_rate.median),
    );
    row(
        "allocations per sequential call".into(),
        format!("{:.2}", a.allocs.sequential),
        format!("{:.2}", b.allocs.sequential),
        ratio(a.allocs.sequential, b.allocs.sequential),
    );
    row(
        "allocations per pipelined call".into(),
        format!("{:.2}", a.allocs.pipelined),
        format!("{:.2}", b.allocs.pipelined),
        ratio(a.allocs.pipelined, b.allocs.pipelined),
    );
    row(
        "allocations per streamed item".into(),
        format!("{:.3}", a.allocs.per_item),
        format!("{:.3}", b.allocs.per_item),
        ratio(a.allocs.per_item, b.allocs.per_item),
    );
    s
}
