//! Measures cmdstream against a hand-written raw TCP baseline that speaks
//! the same frames: sequential unary latency, pipelined unary throughput
//! over one connection, and server-streaming throughput, in two tokio
//! runtime setups. See `README.md` beside this crate's `Cargo.toml`.
//!
//! ```text
//! cargo run --release -p cmdstream-benches -- [--quick] [--out FILE]
//! ```

mod alloc;
mod measure;
mod raw;
mod report;
mod runtime;
mod service;

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use measure::Plan;
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
    /// `--profile cmdstream|raw`: only the pipelined workload, setup A.
    profile: Option<measure::Contender>,
    /// `--seconds S`: how long `--profile` calls.
    seconds: f64,
}

const USAGE: &str = "usage: cmdstream-benches [--quick] [--out FILE]
       cmdstream-benches --profile cmdstream|raw [--seconds S]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        out: None,
        profile: None,
        seconds: 5.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = Some(it.next().ok_or("--out needs a file name")?),
            "--profile" => {
                args.profile = Some(match it.next().as_deref() {
                    Some("cmdstream") => measure::Contender::Cmdstream,
                    Some("raw") => measure::Contender::Raw,
                    _ => return Err(format!("--profile needs cmdstream or raw\n{USAGE}")),
                })
            }
            "--seconds" => {
                args.seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or("--seconds needs a positive number")?
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
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
        return profile(who, args.seconds);
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
        Duration::from_secs(300)
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    let started = Instant::now();
    let mut out = report::preamble(&plan, args.quick, cpus, &cpu_model());
    for setup in [Setup::CurrentThread, Setup::MultiThreadOneWorker] {
        eprintln!("measuring setup {setup} …");
        match runtime::run(setup, &plan, watchdog) {
            Ok(c) => out.push_str(&report::table(setup, &c, plan.in_flight)),
            Err(e) => {
                eprintln!("benchmark failed in setup {setup}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    out.push_str(&format!(
        "\nWhole run: {:.1} s.\n",
        started.elapsed().as_secs_f64()
    ));

    print!("{out}");
    if let Some(path) = args.out {
        if let Err(e) = std::fs::write(&path, &out) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `--profile`: the pipelined workload alone, for `perf` or `valgrind`.
fn profile(who: measure::Contender, seconds: f64) -> ExitCode {
    let time = Duration::from_secs_f64(seconds);
    let watchdog = time * 4 + Duration::from_secs(60);
    let result = runtime::run_client(Setup::CurrentThread, watchdog, move |cmd, raw| {
        measure::profile_pipelined(cmd, raw, who, 256, time)
    });
    match result {
        Ok((calls, rate)) => {
            println!("{who:?}: {calls} pipelined calls (warm-up included), {rate:.0} calls/s");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("profile run failed: {e}");
            ExitCode::FAILURE
        }
    }
}
