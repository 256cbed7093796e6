//! The soak: clients of every kind run every call shape against servers
//! that crash and restart at random, through proxies that inject faults;
//! every result is checked, memory is watched, and the run fails on any
//! violation.
//!
//! `cargo run --release -p cmdstream-stress -- --seconds 30` (CI runs
//! this); `--seconds 3600` for the hour the README reports; `--seed N`
//! replays a run's draws (call mix, faults, crashes; thread timing still
//! varies); `--no-chaos` keeps the servers up.

mod cluster;
mod memory;
mod proxy;
mod report;
mod rng;
mod service;
mod workload;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::memory::{mib, Heap, Samples, Verdict};
use crate::service::Ledger;
use crate::workload::Kind;

#[global_allocator]
static HEAP: Heap = cap::Cap::new(std::alloc::System, usize::MAX);

/// Servers, each behind a proxy of its own.
const SERVERS: usize = 3;
/// Clients of each kind, and workers sharing each client.
const CLIENTS_PER_KIND: usize = 2;
const WORKERS_PER_CLIENT: usize = 8;

struct Args {
    seconds: u64,
    seed: u64,
    chaos: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 30,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        chaos: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--seconds" => args.seconds = value("--seconds")?,
            "--seed" => args.seed = value("--seed")?,
            "--no-chaos" => args.chaos = false,
            other => return Err(format!("unknown argument {other}; see the source's header")),
        }
    }
    Ok(args)
}

/// A loopback port free now.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("stress: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the clients' runtime");
    rt.block_on(soak(args))
}

async fn soak(args: Args) -> ExitCode {
    println!(
        "stress: {} s, seed {}, chaos {}",
        args.seconds,
        args.seed,
        if args.chaos { "on" } else { "off" }
    );
    let stop = CancellationToken::new();
    let ledger = Ledger::default();
    let mut rng = rng::Rng::new(args.seed);

    let servers: Vec<SocketAddr> = (0..SERVERS).map(|_| free_port()).collect();
    let chaos = Arc::new(cluster::Chaos::default());
    let cluster = tokio::spawn(cluster::run(
        servers.clone(),
        ledger.clone(),
        args.chaos,
        rng.next(),
        chaos.clone(),
        stop.clone(),
    ));
    let faults = Arc::new(proxy::FaultCounts::default());
    let mut proxies = Vec::new();
    for &server in &servers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        proxies.push(listener.local_addr().expect("its address"));
        tokio::spawn(proxy::run(
            listener,
            server,
            rng.next(),
            faults.clone(),
            stop.clone(),
        ));
    }

    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = tokio::spawn(memory::sample(&HEAP, samples.clone(), stop.clone()));

    let workers_stop = CancellationToken::new();
    let mut workers = Vec::new();
    let mut index = 0;
    for kind in [Kind::Single, Kind::Reconnecting, Kind::Group] {
        for _ in 0..CLIENTS_PER_KIND {
            let endpoints = match kind {
                Kind::Group => proxies.clone(),
                _ => vec![proxies[rng.below(proxies.len() as u64) as usize]],
            };
            let shared = workload::Shared::new(kind, endpoints).await;
            for _ in 0..WORKERS_PER_CLIENT {
                workers.push(tokio::spawn(workload::run(
                    index,
                    shared.clone(),
                    ledger.clone(),
                    rng.next(),
                    workers_stop.clone(),
                )));
                index += 1;
            }
        }
    }

    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    workers_stop.cancel();
    let mut tally = report::Tally::default();
    for worker in workers {
        match tokio::time::timeout(workload::TIMEOUT * 4, worker).await {
            Ok(Ok(t)) => tally.merge(t),
            Ok(Err(e)) => tally.violation(format!("a worker panicked: {e}")),
            Err(_) => {
                tally.violation("a worker did not stop within its last call's deadline".into())
            }
        }
    }
    for call in ledger.twice() {
        tally.violation(format!("call {call:#x} is not idempotent and ran twice"));
    }
    stop.cancel();
    let _ = cluster.await;
    let _ = sampler.await;

    let verdict = Verdict::of(&samples.lock().unwrap(), args.seconds as f64);
    println!();
    print!("{}", tally.table());
    println!();
    println!(
        "servers crashed {}, restarted gracefully {}; connections through the proxies by fault: {}",
        chaos.crashes.load(Ordering::Relaxed),
        chaos.graceful.load(Ordering::Relaxed),
        proxy::Fault::KINDS
            .iter()
            .zip(&faults.0)
            .map(|(k, n)| format!("{k} {}", n.load(Ordering::Relaxed)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "waits for a plain connection while its server was down: {}",
        tally.no_connection
    );
    println!(
        "memory: heap {}-{} MiB, resident {}-{} MiB; heap after 30 % of the run peaked at {} MiB, bound {} MiB (twice the 10-30 % peak of {} MiB, plus 64)",
        mib(verdict.heap.0),
        mib(verdict.heap.1),
        mib(verdict.resident.0),
        mib(verdict.resident.1),
        mib(verdict.peak_after),
        mib(verdict.bound),
        mib(verdict.baseline),
    );
    println!("verification errors: {}", tally.violations());
    for e in tally.examples() {
        println!("  {e}");
    }
    if tally.violations() > 0 || !verdict.holds() {
        if !verdict.holds() {
            println!("memory grew past its bound");
        }
        println!("FAILED");
        return ExitCode::FAILURE;
    }
    println!("passed");
    ExitCode::SUCCESS
}
