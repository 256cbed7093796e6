//! The Markdown report: per setup, every contender's figures, the ratios
//! of cmdstream to each peer, and the targets met or missed.

use std::fmt::{self, Write};

use crate::contenders::Contender;
use crate::measure::{Comparison, Figures, RateTail};
use crate::plan::Plan;
use crate::runtime::Setup;
use crate::stats::{Spread, Turns};

fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

fn millis(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// `x` with thousands separators.
pub(crate) fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate in a few significant digits: `912`, `48.3k`, `1.07M`.
pub(crate) fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e5 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A median rate with the slowest and fastest rounds.
pub(crate) fn rate(s: Spread) -> String {
    format!("{} ({}–{})", short(s.median), short(s.min), short(s.max))
}

fn bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

/// A figure of the wide table as the ratio table divides it.
#[derive(Debug, Clone)]
enum Value {
    /// A latency, a CPU time, a count.
    One(f64),
    /// A rate in each turn: divided turn by turn.
    Turns(Turns),
}

impl Value {
    /// `self / peer`, if it means something.
    fn ratio_to(&self, peer: &Value) -> Option<f64> {
        let r = match (self, peer) {
            (Value::Turns(a), Value::Turns(b)) if !a.0.is_empty() && !b.0.is_empty() => {
                a.ratio_to(b)
            }
            (Value::One(a), Value::One(b)) if *b != 0.0 => a / b,
            _ => return None,
        };
        r.is_finite().then_some(r)
    }
}

/// A rate cell and its value.
fn rate_cell(t: &Turns) -> (String, Value) {
    (rate(t.spread()), Value::Turns(t.clone()))
}

const NONE: &str = "–";

/// What the run measured, once above the tables.
pub(crate) fn preamble(plan: &Plan, quick: bool, cpus: usize, cpu_model: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# cmdstream vs tarpc, tonic and raw TCP{}\n",
        if quick { " (quick)" } else { "" }
    );
    let _ = writeln!(s, "- CPUs: {cpus} × {cpu_model}");
    let _ = writeln!(
        s,
        "- per setup: warm-up {:?} per workload and contender, then {} rounds; in each, every \
         contender gets {:?} of sequential `add` in turns of {:?}, {:?} of `add` and as much of \
         {}-byte `echo` with {} calls in flight on one connection in turns of {:?}, and {} turn{} \
         of one stream of {} items and of {} streams of {} items (all fast, then one consumer \
         pausing {:?} per item), the turns of each workload in an order shuffled every pass; \
         then {} `slow_add` calls ({:?} in the handler) fired at once over {} connections, each \
         contender once, the order rotating and reversing from round to round",
        plan.warmup,
        plan.rounds,
        plan.latency_time,
        plan.latency_turn,
        plan.pipelined_time,
        plan.echo_size,
        plan.in_flight,
        plan.pipelined_turn,
        plan.stream_turns,
        if plan.stream_turns == 1 { "" } else { "s" },
        thousands(plan.stream_items as f64),
        plan.fan_streams,
        thousands(plan.fan_items as f64),
        plan.slow_pause,
        plan.burst_calls,
        crate::service::SLOW_DELAY,
        plan.conn_counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    let _ = writeln!(
        s,
        "- a second connection to the raw server takes its turns at sequential and pipelined \
         `add` and at both streaming workloads, as a control"
    );
    let _ = writeln!(
        s,
        "- rates are the median turn or round (slowest–fastest); latencies are over all calls"
    );
    let _ = writeln!(
        s,
        "- CPU time is the whole process's (clients and servers, `/proc/self/stat`) over the \
         measured rounds, per call; allocations are the whole process's too"
    );
    let _ = writeln!(
        s,
        "- a ratio is cmdstream (bincode) / the peer: above 1 is faster for rates, slower for \
         latencies, CPU and allocations; a rate's ratio is the median of the ratios of the two \
         contenders' turns (or rounds) in the same pass, which the machine's drift over seconds \
         leaves alone"
    );
    s
}

/// One row of the wide table: a metric and one cell per contender.
struct Row {
    name: String,
    cells: Vec<String>,
    /// cmdstream's value and each contender's, for the ratio table;
    /// `None` where the ratio means nothing.
    values: Option<Vec<Option<Value>>>,
}

fn rows(c: &Comparison, plan: &Plan) -> Vec<Row> {
    let all: Vec<&Figures> = Contender::ALL.iter().map(|&w| c.of(w)).collect();
    let mut rows = Vec::new();
    let mut push = |name: String, cell: &dyn Fn(&Figures) -> Option<(String, Value)>| {
        let got: Vec<_> = all.iter().map(|f| cell(f)).collect();
        rows.push(Row {
            name,
            cells: got
                .iter()
                .map(|g| {
                    g.as_ref()
                        .map_or_else(|| NONE.to_string(), |(s, _)| s.clone())
                })
                .collect(),
            values: Some(got.into_iter().map(|g| g.map(|(_, v)| v)).collect()),
        });
    };
    push("sequential `add` latency p50".into(), &|f| {
        Some((micros(f.seq_p50), Value::One(f.seq_p50 as f64)))
    });
    push("sequential `add` latency p99".into(), &|f| {
        Some((micros(f.seq_p99), Value::One(f.seq_p99 as f64)))
    });
    let in_flight = plan.in_flight;
    let pipe = |name: &str, rt: fn(&Figures) -> &RateTail| {
        (
            format!("pipelined {name} calls/s ({in_flight} in flight)"),
            format!("pipelined {name} latency p99"),
            rt,
        )
    };
    for (rate_name, tail_name, rt) in [
        pipe("`add`", |f| &f.pipe_add),
        pipe(&format!("{} B `echo`", plan.echo_size), |f| &f.pipe_echo),
    ] {
        push(rate_name, &|f| Some(rate_cell(&rt(f).rate)));
        push(tail_name, &|f| {
            Some((micros(rt(f).tail), Value::One(rt(f).tail as f64)))
        });
    }
    for (k, conns) in plan.conn_counts.iter().enumerate() {
        push(
            format!(
                "{conns} connection{}, {} × `slow_add` at once: calls/s",
                if *conns == 1 { "" } else { "s" },
                plan.burst_calls
            ),
            &|f| Some(rate_cell(&f.bursts[k].rate)),
        );
        push(
            format!(
                "{conns} connection{}: latency p99.9",
                if *conns == 1 { "" } else { "s" }
            ),
            &|f| {
                Some((
                    millis(f.bursts[k].tail),
                    Value::One(f.bursts[k].tail as f64),
                ))
            },
        );
    }
    push("one server stream: items/s".into(), &|f| {
        f.stream_rate.as_ref().map(rate_cell)
    });
    push(
        format!("{} streams, all fast: items/s", plan.fan_streams),
        &|f| f.fan.as_ref().map(|x| rate_cell(&x.all_fast)),
    );
    push(
        format!(
            "{} streams, one slow consumer: the others' items/s",
            plan.fan_streams
        ),
        &|f| f.fan.as_ref().map(|x| rate_cell(&x.with_slow)),
    );
    push("… share of their rate kept".into(), &|f| {
        f.fan.as_ref().map(|x| {
            let share = x.with_slow.spread().median / x.all_fast.spread().median;
            (format!("{:.0} %", share * 100.0), Value::One(share))
        })
    });
    push("… peak heap growth meanwhile".into(), &|f| {
        f.fan
            .as_ref()
            .map(|x| (bytes(x.peak_heap), Value::One(x.peak_heap as f64)))
    });
    push("CPU time per sequential call".into(), &|f| {
        f.cpu_seq.map(|ns| (micros(ns as u64), Value::One(ns)))
    });
    push("CPU time per pipelined call".into(), &|f| {
        f.cpu_pipe.map(|ns| (micros(ns as u64), Value::One(ns)))
    });
    push("allocations per sequential call".into(), &|f| {
        let a = f.allocs.sequential;
        Some((format!("{a:.2}"), Value::One(a)))
    });
    push("allocations per pipelined call".into(), &|f| {
        let a = f.allocs.pipelined;
        Some((format!("{a:.2}"), Value::One(a)))
    });
    push("allocations per streamed item".into(), &|f| {
        f.allocs
            .per_item
            .map(|a| (format!("{a:.3}"), Value::One(a)))
    });
    // Share and heap growth compare poorly as ratios.
    for r in &mut rows {
        if r.name.starts_with('…') {
            r.values = None;
        }
    }
    rows
}

/// The peers cmdstream is divided by in the ratio table.
const PEERS: [Contender; 3] = [Contender::Tarpc, Contender::Tonic, Contender::Raw];

fn index(who: Contender) -> usize {
    Contender::ALL
        .iter()
        .position(|&c| c == who)
        .expect("a contender")
}

/// One setup's tables.
pub(crate) fn table(setup: Setup, c: &Comparison, plan: &Plan) -> String {
    let rows = rows(c, plan);
    let mut s = String::new();
    let _ = writeln!(s, "\n## Setup {setup}\n");
    let _ = write!(s, "| metric |");
    for who in Contender::ALL {
        let _ = write!(s, " {who} |");
    }
    let _ = write!(s, "\n|---|");
    for _ in Contender::ALL {
        let _ = write!(s, "---:|");
    }
    s.push('\n');
    for r in &rows {
        let _ = writeln!(s, "| {} | {} |", r.name, r.cells.join(" | "));
    }

    let _ = writeln!(s, "\n### Setup {}: cmdstream / peer\n", setup.letter());
    let _ = write!(s, "| metric |");
    for peer in PEERS {
        let _ = write!(s, " cmdstream/{peer} |");
    }
    let _ = writeln!(s, "\n|---|---:|---:|---:|");
    let me = index(Contender::Cmdstream);
    for r in &rows {
        let Some(values) = &r.values else { continue };
        let cells: Vec<String> = PEERS
            .iter()
            .map(|&p| match (&values[me], &values[index(p)]) {
                (Some(a), Some(b)) => a.ratio_to(b).map_or(NONE.into(), |r| format!("{r:.2}")),
                _ => NONE.into(),
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", r.name, cells.join(" | "));
    }
    s.push_str(&targets(setup, c));
    s
}

/// A target: a bound on a ratio, which both checks and prints itself, so
/// that the goal shown and the goal checked cannot differ.
#[derive(Debug, Clone, Copy)]
enum Goal {
    AtLeast(f64),
    Above(f64),
    AtMost(f64),
}

impl Goal {
    fn met(self, measured: f64) -> bool {
        match self {
            Goal::AtLeast(g) => measured >= g,
            Goal::Above(g) => measured > g,
            Goal::AtMost(g) => measured <= g,
        }
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::AtLeast(g) => write!(f, "≥ {g}"),
            Goal::Above(g) => write!(f, "> {g}"),
            Goal::AtMost(g) => write!(f, "≤ {g}"),
        }
    }
}

/// One target's verdict.
fn verdict(s: &mut String, what: &str, measured: f64, goal: Goal) {
    let _ = writeln!(
        s,
        "| {what} | {goal} | {measured:.2} | {} |",
        if goal.met(measured) {
            "met"
        } else {
            "**missed**"
        }
    );
}

/// The targets of the peer benchmark, checked against this setup's figures.
fn targets(setup: Setup, c: &Comparison) -> String {
    let me = c.of(Contender::Cmdstream);
    let tarpc = c.of(Contender::Tarpc);
    let tonic = c.of(Contender::Tonic);
    let raw = c.of(Contender::Raw);
    let mut s = String::new();
    let _ = writeln!(s, "\n### Setup {}: targets\n", setup.letter());
    let _ = writeln!(s, "| target | goal | measured | |");
    let _ = writeln!(s, "|---|---:|---:|---|");
    let add = |peer: &Figures| me.pipe_add.rate.ratio_to(&peer.pipe_add.rate);
    let (vs_tarpc, vs_tonic, vs_raw) = (add(tarpc), add(tonic), add(raw));
    match setup {
        Setup::CurrentThread => {
            verdict(
                &mut s,
                "pipelined `add`, cmdstream/tarpc",
                vs_tarpc,
                Goal::AtLeast(3.0),
            );
        }
        Setup::MultiThreadOneWorker => {
            verdict(
                &mut s,
                "pipelined `add`, cmdstream/tarpc",
                vs_tarpc,
                Goal::Above(1.0),
            );
            verdict(
                &mut s,
                "pipelined `add`, cmdstream/tonic",
                vs_tonic,
                Goal::Above(1.0),
            );
        }
    }
    verdict(
        &mut s,
        "pipelined `add`, cmdstream/raw",
        vs_raw,
        Goal::AtLeast(0.7),
    );
    let echo = me.pipe_echo.rate.ratio_to(&tarpc.pipe_echo.rate);
    verdict(
        &mut s,
        "pipelined 1 KiB `echo`, cmdstream/tarpc",
        echo,
        Goal::AtLeast(3.0),
    );
    let p50 = me.seq_p50 as f64 / raw.seq_p50 as f64;
    verdict(
        &mut s,
        "sequential p50, cmdstream/raw",
        p50,
        Goal::AtMost(1.2),
    );
    let allocs = me.allocs.sequential.max(me.allocs.pipelined);
    verdict(
        &mut s,
        "allocations per unary call (the larger of sequential and pipelined)",
        allocs,
        Goal::AtMost(4.0),
    );
    let stream = match (&me.stream_rate, &raw.stream_rate) {
        (Some(a), Some(b)) => a.ratio_to(b),
        _ => 0.0,
    };
    verdict(
        &mut s,
        "server stream items/s, cmdstream/raw",
        stream,
        Goal::AtLeast(0.6),
    );
    let _ = writeln!(
        s,
        "\nControl: a second raw connection, measured in turn with the others, comes to {:.2}× \
         raw's sequential p50, {:.2}× its pipelined `add`, {:.2}× its one stream and {:.2}× its \
         64 fast streams: how far two identical contenders come apart here.",
        c.raw_again_seq_p50 as f64 / raw.seq_p50.max(1) as f64,
        c.raw_again_add.ratio_to(&raw.pipe_add.rate),
        raw.stream_rate
            .as_ref()
            .map_or(f64::NAN, |s| c.raw_again_stream.ratio_to(s)),
        raw.fan
            .as_ref()
            .map_or(f64::NAN, |f| c.raw_again_fan.ratio_to(&f.all_fast)),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_goal_checks_what_it_prints() {
        assert!(Goal::AtLeast(0.7).met(0.7) && !Goal::AtLeast(0.7).met(0.69));
        assert!(Goal::Above(1.0).met(1.01) && !Goal::Above(1.0).met(1.0));
        assert!(Goal::AtMost(1.2).met(1.2) && !Goal::AtMost(1.2).met(1.21));
        assert_eq!(Goal::AtLeast(3.0).to_string(), "≥ 3");
        assert_eq!(Goal::Above(1.0).to_string(), "> 1");
        assert_eq!(Goal::AtMost(1.2).to_string(), "≤ 1.2");
    }
}
