//! Measures cmdstream (with its bincode, JSON and postcard codecs) against
//! tarpc, tonic and a hand-written raw TCP baseline that speaks cmdstream's
//! frames: sequential and pipelined unary calls, many connections with a
//! slow handler, server streams with and without a slow consumer, CPU time
//! and allocations, in two tokio runtime setups; then over TLS, a
//! reconnecting client against a plain one, and client groups. See `README.md` beside
//! this crate's `Cargo.toml`.
//!
//! ```text
//! cargo run --release -p cmdstream-benches -- [--quick] [--only main|tls|reconnect|group] [--out FILE] [--chart FILE]
//! ```

mod alloc;
mod chart;
mod contenders;
mod cpu;
mod grouped;
mod measure;
mod plan;
mod raw;
mod reconnecting;
mod report;
mod runtime;
mod service;
mod side_by_side;
mod stats;
mod tarpc_peer;
mod tls;
mod tonic_peer;
mod workload;

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use contenders::Contender;
use plan::Plan;
use runtime::Setup;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Why a benchmark run failed: a call returned an error or a wrong result,
/// a connection broke, or a workload hung.
#[derive(Debug)]
pub(crate) struct BenchError(String);

impl BenchError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        BenchError(message.into())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<cmdstream::Error> for BenchError {
    fn from(e: cmdstream::Error) -> Self {
        BenchError(format!("cmdstream: {e}"))
    }
}

impl From<cmdstream::codec::CodecError> for BenchError {
    fn from(e: cmdstream::codec::CodecError) -> Self {
        BenchError(format!("codec: {e}"))
    }
}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError(format!("I/O: {e}"))
    }
}

impl From<tokio::task::JoinError> for BenchError {
    fn from(e: tokio::task::JoinError) -> Self {
        BenchError(format!("a benchmark task failed: {e}"))
    }
}

struct Args {
    quick: bool,
    out: Option<String>,
    /// Where the chart goes; by default `chart.svg` beside `--out`.
    chart: Option<String>,
    /// `--profile WHO`: one workload on one contender, setup A.
    profile: Option<Contender>,
    /// `--workload`: what `--profile` runs.
    workload: measure::ProfileWorkload,
    /// `--seconds S`: how long `--profile` runs.
    seconds: f64,
    /// `--setup a|b`: the runtime setup `--profile` runs in.
    setup: Setup,
    /// `--only SECTION`: one section of the report instead of all.
    only: Option<Section>,
}

/// The sections of a run, each measured in both runtime setups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Every contender, every workload, plaintext.
    Main,
    /// cmdstream, tonic and raw over TLS.
    Tls,
    /// A reconnecting cmdstream client against a plain one.
    Reconnect,
    /// Client groups against as many plain clients.
    Group,
}

impl Args {
    fn runs(&self, section: Section) -> bool {
        self.only.is_none_or(|only| only == section)
    }
}

const USAGE: &str =
    "usage: cmdstream-benches [--quick] [--only main|tls|reconnect|group] [--out FILE] [--chart FILE]
       cmdstream-benches --profile WHO [--workload add|echo|seq|stream|fan] [--setup a|b] [--seconds S]
WHO: cmdstream, cmdstream-json, cmdstream-postcard, tarpc, tonic, raw";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        out: None,
        chart: None,
        profile: None,
        workload: measure::ProfileWorkload::Pipelined(workload::Op::Add),
        seconds: 5.0,
        setup: Setup::CurrentThread,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = Some(it.next().ok_or("--out needs a file name")?),
            "--chart" => args.chart = Some(it.next().ok_or("--chart needs a file name")?),
            "--profile" => {
                let who = it.next().unwrap_or_default();
                args.profile = Some(
                    Contender::from_arg(&who)
                        .ok_or_else(|| format!("--profile: unknown contender {who:?}\n{USAGE}"))?,
                );
            }
            "--workload" => {
                args.workload = match it.next().as_deref() {
                    Some("add") => measure::ProfileWorkload::Pipelined(workload::Op::Add),
                    Some("echo") => measure::ProfileWorkload::Pipelined(workload::Op::Echo(1024)),
                    Some("seq") => measure::ProfileWorkload::Sequential,
                    Some("stream") => measure::ProfileWorkload::Stream,
                    Some("fan") => measure::ProfileWorkload::Fan,
                    _ => {
                        return Err(format!(
                            "--workload needs add, echo, seq, stream or fan\n{USAGE}"
                        ))
                    }
                }
            }
            "--setup" => {
                args.setup = match it.next().as_deref() {
                    Some("a" | "A") => Setup::CurrentThread,
                    Some("b" | "B") => Setup::MultiThreadOneWorker,
                    _ => return Err(format!("--setup needs a or b\n{USAGE}")),
                }
            }
            "--seconds" => {
                args.seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or("--seconds needs a positive number")?
            }
            "--only" => {
                args.only = Some(match it.next().as_deref() {
                    Some("main") => Section::Main,
                    Some("tls") => Section::Tls,
                    Some("reconnect") => Section::Reconnect,
                    Some("group") => Section::Group,
                    _ => {
                        return Err(format!(
                            "--only needs main, tls, reconnect or group\n{USAGE}"
                        ))
                    }
                })
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.chart.is_none() {
        args.chart = args.out.as_ref().map(|out| {
            std::path::Path::new(out)
                .with_file_name("chart.svg")
                .to_string_lossy()
                .into_owned()
        });
    }
    Ok(args)
}

/// The first `model name` of `/proc/cpuinfo`, if there is one.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(who) = args.profile {
        return profile(who, args.workload, args.setup, args.seconds);
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    // A hung call fails the run instead of stalling CI.
    let watchdog = if args.quick {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(400)
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    let started = Instant::now();
    let run_steal = cpu::Steal::now();
    let mut out = report::preamble(&plan, args.quick, cpus, &cpu_model());
    let mut results = Vec::new();
    for setup in [Setup::CurrentThread, Setup::MultiThreadOneWorker] {
        if !args.runs(Section::Main) {
            break;
        }
        eprintln!("measuring setup {setup} …");
        let setup_started = Instant::now();
        let steal = cpu::Steal::now();
        match runtime::run(setup, &plan, watchdog) {
            Ok(c) => {
                out.push_str(&report::table(setup, &c, &plan));
                out.push_str(&cpu::steal_note(steal));
                results.push((setup, c));
            }
            Err(e) => {
                eprintln!("benchmark failed in setup {setup}: {e}");
                return ExitCode::FAILURE;
            }
        }
        eprintln!(
            "setup {} took {:.1} s",
            setup.letter(),
            setup_started.elapsed().as_secs_f64()
        );
    }
    // The side sections, each in both setups: what it measures, and how.
    type Side = fn(Setup, &Plan, Duration) -> Result<String, BenchError>;
    let sides: [(Section, &str, Side); 3] = [
        (Section::Tls, "over TLS", |s, p, w| {
            tls::run(s, p, w).map(|c| tls::table(s, &c, p))
        }),
        (
            Section::Reconnect,
            "with a reconnecting client",
            |s, p, w| reconnecting::run(s, p, w).map(|c| reconnecting::table(s, &c, p)),
        ),
        (Section::Group, "with client groups", |s, p, w| {
            grouped::run(s, p, w).map(|c| grouped::table(s, &c, p))
        }),
    ];
    for (section, what, measure) in sides {
        if !args.runs(section) {
            continue;
        }
        for setup in [Setup::CurrentThread, Setup::MultiThreadOneWorker] {
            eprintln!("measuring setup {setup} {what} …");
            let steal = cpu::Steal::now();
            match measure(setup, &plan, watchdog) {
                Ok(table) => {
                    out.push_str(&table);
                    out.push_str(&cpu::steal_note(steal));
                }
                Err(e) => {
                    eprintln!("benchmark {what} failed in setup {setup}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    out.push_str(&format!(
        "\nWhole run: {:.1} s.\n",
        started.elapsed().as_secs_f64()
    ));
    out.push_str(&cpu::steal_note(run_steal));

    print!("{out}");
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &out) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // The chart is drawn from the main section alone.
    if let Some(path) = args.chart.as_ref().filter(|_| !results.is_empty()) {
        let written = chart::svg(&results, plan.in_flight)
            .and_then(|svg| std::fs::write(path, svg).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("cannot write the chart {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `--profile`: one workload alone, for `perf` or `valgrind`.
fn profile(
    who: Contender,
    workload: measure::ProfileWorkload,
    setup: Setup,
    seconds: f64,
) -> ExitCode {
    let time = Duration::from_secs_f64(seconds);
    let watchdog = time * 4 + Duration::from_secs(60);
    let result = runtime::run_client(setup, watchdog, move |addrs| {
        measure::profile(addrs, who, workload, 256, time)
    });
    match result {
        Ok((count, rate)) => {
            println!("{who}, {workload:?}: {count} calls or items (warm-up included), {rate:.0}/s");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("profile run failed: {e}");
            ExitCode::FAILURE
        }
    }
}
