//! What the soak counted, and its table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Call shapes as the table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Shape {
    Unary,
    ServerStream,
    Cancelled,
    ClientStream,
    Bidi,
    Oversize,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::Unary => "unary (record, read, fail, slow)",
            Shape::ServerStream => "server stream",
            Shape::Cancelled => "server stream, dropped mid-way",
            Shape::ClientStream => "client stream",
            Shape::Bidi => "bidirectional",
            Shape::Oversize => "oversize, must be refused",
        }
    }
}

/// Latencies in buckets 5 % wide, from 1 µs: fixed memory over any run.
#[derive(Clone)]
pub(crate) struct Latency {
    buckets: Vec<u64>,
}

const BUCKETS: usize = 400;
const GROWTH: f64 = 1.05;

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: vec![0; BUCKETS],
        }
    }
}

impl Latency {
    pub(crate) fn record(&mut self, took: Duration) {
        let micros = took.as_secs_f64() * 1e6;
        let i = if micros <= 1.0 {
            0
        } else {
            (micros.ln() / GROWTH.ln()) as usize
        };
        self.buckets[i.min(BUCKETS - 1)] += 1;
    }

    fn merge(&mut self, other: &Latency) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// The `q` quantile, in milliseconds (the bucket's upper edge).
    fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(GROWTH.powi(i as i32 + 1) / 1e3);
            }
        }
        None
    }
}

/// One shape's counts.
#[derive(Default, Clone)]
pub(crate) struct Row {
    pub(crate) calls: u64,
    pub(crate) ok: u64,
    /// The typed application error the command returns, as expected.
    pub(crate) refused: u64,
    /// Documented errors, by kind.
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Wrong content, wrong caller, an undocumented error, a call that
    /// ran though reported as never run.
    pub(crate) wrong: u64,
    /// Ended past deadline plus slack.
    pub(crate) late: u64,
    pub(crate) latency: Latency,
}

/// Everything one worker (or, merged, the whole run) counted.
#[derive(Default)]
pub(crate) struct Tally {
    rows: BTreeMap<Shape, Row>,
    pub(crate) no_connection: u64,
    violations: u64,
    /// The first violations, for the report.
    examples: Vec<String>,
}

impl Tally {
    pub(crate) fn row(&mut self, shape: Shape) -> &mut Row {
        self.rows.entry(shape).or_default()
    }

    pub(crate) fn violation(&mut self, what: String) {
        self.violations += 1;
        if self.examples.len() < 20 {
            self.examples.push(what);
        }
    }

    pub(crate) fn violations(&self) -> u64 {
        self.violations
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        for (shape, row) in other.rows {
            let mine = self.row(shape);
            mine.calls += row.calls;
            mine.ok += row.ok;
            mine.refused += row.refused;
            mine.wrong += row.wrong;
            mine.late += row.late;
            for (kind, n) in row.errors {
                *mine.errors.entry(kind).or_default() += n;
            }
            mine.latency.merge(&row.latency);
        }
        self.no_connection += other.no_connection;
        self.violations += other.violations;
        for e in other.examples {
            if self.examples.len() < 20 {
                self.examples.push(e);
            }
        }
    }

    /// The table of calls, as Markdown.
    pub(crate) fn table(&self) -> String {
        let kinds = ["timeout", "connection lost", "unavailable", "circuit open"];
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| shape | calls | ok | app error | {} | verification errors | late | p50 ms | p99 ms |",
            kinds.join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---:|".repeat(7 + kinds.len()));
        let mut total = Row::default();
        for (shape, row) in &self.rows {
            let _ = writeln!(out, "{}", line(shape.label(), row, &kinds));
            total.calls += row.calls;
            total.ok += row.ok;
            total.refused += row.refused;
            total.wrong += row.wrong;
            total.late += row.late;
            for (kind, n) in &row.errors {
                *total.errors.entry(kind).or_default() += n;
            }
            total.latency.merge(&row.latency);
        }
        let _ = writeln!(out, "{}", line("**all**", &total, &kinds));
        out
    }

    pub(crate) fn examples(&self) -> &[String] {
        &self.examples
    }
}

fn line(label: &str, row: &Row, kinds: &[&str]) -> String {
    let ms = |q| {
        row.latency
            .quantile(q)
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
    };
    let errors: Vec<String> = kinds
        .iter()
        .map(|k| row.errors.get(k).copied().unwrap_or(0).to_string())
        .collect();
    format!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
        row.calls,
        row.ok,
        row.refused,
        errors.join(" | "),
        row.wrong,
        row.late,
        ms(0.5),
        ms(0.99)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let mut l = Latency::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let p50 = l.quantile(0.5).unwrap();
        let p99 = l.quantile(0.99).unwrap();
        assert!((50.0..53.0).contains(&p50), "{p50}");
        assert!((99.0..105.0).contains(&p99), "{p99}");
    }
}
