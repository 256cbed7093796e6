//! A reconnecting client riding through two server restarts while sixteen
//! tasks keep calling: first a graceful one (the server says it is going
//! away, finishes its calls, and a new one comes up on the same port), then
//! a crash (every socket closed at once, the new server up half a second
//! later). It prints each change of the client's state, then how many calls
//! succeeded at once, succeeded after waiting for a connection, or failed,
//! and why.
//!
//! Run it with `cargo run --example reconnect`.
//!
//! `get` is marked idempotent: when the crash takes a `get` that had gone
//! out, the client sends it again on the new connection. A lost `bump` is
//! not sent again (it might have run), and fails with `ConnectionLost`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cmdstream::{Backoff, CallOptions, Client, Error, Reconnect, Server};

/// A counter; each server process starts from zero.
#[cmdstream::receiver]
trait Counter {
    /// Reads the count: harmless to run twice.
    #[command(idempotent)]
    async fn get(&self) -> u64;
    /// Adds one and returns the new count: running it twice counts twice.
    async fn bump(&self) -> u64;
}

#[derive(Default)]
struct MyCounter(AtomicU64);

impl Counter for MyCounter {
    async fn get(&self) -> u64 {
        // Long enough that calls are in flight when the server crashes.
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.0.load(Ordering::Relaxed)
    }

    async fn bump(&self) -> u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One server process: a runtime of its own, so that dropping it ends
/// every connection at once, as a crash would.
struct ServerProcess {
    runtime: Option<tokio::runtime::Runtime>,
    server: Server<CounterServer<MyCounter>>,
}

impl ServerProcess {
    /// Starts a server on `addr`, waiting for the port to be free.
    async fn start(addr: SocketAddr) -> std::io::Result<ServerProcess> {
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => return Err(e),
            }
        };
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let server = Server::new(CounterServer::new(MyCounter::default()));
        let serving = server.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            serving.serve(listener).await
        });
        Ok(ServerProcess {
            runtime: Some(runtime),
            server,
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Not a blocking shutdown: this may run inside the client's runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What became of the calls.
#[derive(Default)]
struct Tally {
    at_once: AtomicU64,
    after_waiting: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    /// A call that takes longer than this waited for a connection.
    const WAITED: Duration = Duration::from_millis(50);

    fn record<T>(&self, command: &str, took: Duration, result: Result<T, Error>) {
        match result {
            Ok(_) if took < Self::WAITED => {
                self.at_once.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                self.after_waiting.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let why = match &e {
                    Error::ConnectionLost { sent: true, .. } => {
                        "lost with the connection after it went out (not sent again)".to_owned()
                    }
                    other => other.to_string(),
                };
                let mut failed = self.failed.lock().unwrap();
                *failed.entry(format!("{command}: {why}")).or_default() += 1;
            }
        }
    }

    /// Prints the calls since the last report, and starts counting anew.
    fn report(&self, phase: &str) {
        let at_once = self.at_once.swap(0, Ordering::Relaxed);
        let after_waiting = self.after_waiting.swap(0, Ordering::Relaxed);
        let failed = std::mem::take(&mut *self.failed.lock().unwrap());
        println!(
            "  {phase}: {at_once} succeeded at once, {after_waiting} after waiting for a connection, {} failed",
            failed.values().sum::<u64>()
        );
        for (why, n) in failed {
            println!("    {n} × {why}");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let addr: SocketAddr = {
        // A free port, kept across the restarts.
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let first = ServerProcess::start(addr).await?;
    println!("server 1: listening on {addr}");

    // Redial after 50 ms, then up to 250 ms apart (the defaults are gRPC's:
    // 1 s, ×1.6, up to 120 s). Every call gets 5 s, waiting included.
    let policy = Reconnect::new().backoff(Backoff::new(
        Duration::from_millis(50),
        Duration::from_millis(250),
    ));
    let client = CounterClient::connect_with(Client::builder().reconnect(policy), addr)
        .await?
        .with_options(CallOptions::new().timeout(Duration::from_secs(5)));

    let mut states = client.client().watch_state();
    let watching = tokio::spawn(async move {
        // The state now, then each change.
        while let Some(state) = states.changed().await {
            let at = started.elapsed().as_millis();
            println!("[{at:>5} ms] client: {state}");
        }
    });

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..16)
        .map(|task| {
            let (client, tally, stop) = (client.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    if task % 2 == 0 {
                        let result = client.get().await;
                        tally.record("get", t0.elapsed(), result);
                    } else {
                        let result = client.bump().await;
                        tally.record("bump", t0.elapsed(), result);
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    tally.report("server 1 up");

    println!("server 1: graceful shutdown; server 2 starts on the same port");
    first.server.shutdown().await;
    drop(first);
    let second = ServerProcess::start(addr).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tally.report("graceful restart");

    println!("server 2: crashes; server 3 starts 500 ms later");
    drop(second);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = ServerProcess::start(addr).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    tally.report("crash");

    client.client().close().await;
    watching.await?;
    third.server.shutdown().await;
    drop(third);
    Ok(())
}
