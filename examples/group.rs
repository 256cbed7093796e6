//! A client over a group of three servers, with a circuit breaker per
//! server, while sixteen tasks keep calling: one server crashes and comes
//! back a second later. Every 250 ms it prints how many calls each server
//! took, and each member's connection and breaker.
//!
//! Run it with `cargo run --example group`.
//!
//! `work` is marked idempotent, so the calls the crash takes in flight are
//! sent again to another server; the failures count against the crashed
//! server's breaker, which opens, probes once the server is back, and
//! closes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmdstream::{Backoff, CallOptions, CircuitBreaker, Client, Group, Reconnect, Server};

/// Which server did the work.
#[cmdstream::receiver]
trait Worker {
    /// Does a little work; harmless to run twice.
    #[command(idempotent)]
    async fn work(&self) -> usize;
}

struct MyWorker {
    id: usize,
    done: Arc<[AtomicU64; 3]>,
}

impl Worker for MyWorker {
    async fn work(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.done[self.id].fetch_add(1, Ordering::Relaxed);
        self.id
    }
}

/// One server process: a runtime of its own, so that dropping it ends
/// every connection at once, as a crash would.
struct ServerProcess(Option<tokio::runtime::Runtime>);

impl ServerProcess {
    /// Starts server `id` on `addr`, listening before it returns (so the
    /// client's first dial finds it), and waiting for the port to be free
    /// when a crashed server still holds it.
    async fn start(
        id: usize,
        addr: SocketAddr,
        done: Arc<[AtomicU64; 3]>,
    ) -> std::io::Result<ServerProcess> {
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
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let server = Server::new(WorkerServer::new(MyWorker { id, done }));
            server.serve(listener).await
        });
        Ok(ServerProcess(Some(runtime)))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Not a blocking shutdown: this may run inside the client's runtime.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addrs = [free_port()?, free_port()?, free_port()?];
    let done: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let mut servers = Vec::new();
    for (id, addr) in addrs.iter().enumerate() {
        servers.push(Some(ServerProcess::start(id, *addr, done.clone()).await?));
    }
    println!("servers on {}, {}, {}", addrs[0], addrs[1], addrs[2]);

    let client = Client::builder()
        .reconnect(Reconnect::new().backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(250),
        )))
        .circuit_breaker(
            CircuitBreaker::new()
                .consecutive_failures(3)
                .open_for(Duration::from_millis(500)),
        )
        .connect_group(Group::new(), addrs, WorkerClient::INFO)
        .await?;
    let client =
        WorkerClient::from(client).with_options(CallOptions::new().timeout(Duration::from_secs(2)));

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (client, stop, failed) = (client.clone(), stop.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = client.work().await {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("  a call failed: {e}");
                    }
                }
            })
        })
        .collect();

    let mut last = [0u64; 3];
    for tick in 1..=12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now: Vec<u64> = done.iter().map(|d| d.load(Ordering::Relaxed)).collect();
        let took: Vec<String> = (0..3).map(|i| format!("{:>5}", now[i] - last[i])).collect();
        last = [now[0], now[1], now[2]];
        let members: Vec<String> = client
            .client()
            .members()
            .iter()
            .map(|m| {
                let conn = if m.state.is_open() { "up" } else { "down" };
                match m.breaker {
                    Some(cmdstream::BreakerState::Closed) | None => conn.to_owned(),
                    Some(cmdstream::BreakerState::Open { retry_in }) if retry_in.is_zero() => {
                        format!("{conn}, circuit open (probe due)")
                    }
                    Some(cmdstream::BreakerState::Open { retry_in }) => {
                        format!("{conn}, circuit open ({} ms)", retry_in.as_millis())
                    }
                    Some(cmdstream::BreakerState::HalfOpen) => format!("{conn}, probing"),
                    Some(_) => format!("{conn}, ?"),
                }
            })
            .collect();
        println!(
            "[{:>4} ms] calls per server: {} | {}",
            tick * 250,
            took.join(" "),
            members.join(" / ")
        );
        if tick == 3 {
            println!("server 2 crashes");
            servers[2] = None;
        }
        if tick == 7 {
            println!("server 2 is back");
            servers[2] = Some(ServerProcess::start(2, addrs[2], done.clone()).await?);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    println!(
        "{} calls in all, {} failed",
        done.iter().map(|d| d.load(Ordering::Relaxed)).sum::<u64>(),
        failed.load(Ordering::Relaxed)
    );
    client.client().close().await;
    drop(servers);
    Ok(())
}
