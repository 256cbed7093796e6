//! The servers under test, each on a fixed port with its own runtime on a
//! thread of its own, so that killing one (dropping its runtime: every
//! connection cut mid-stream, nothing flushed) is a crash as the clients
//! see it; and the chaos that kills, restarts gracefully and brings back
//! servers at random.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmdstream::Server;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::rng::Rng;
use crate::service::{Ledger, SoakServer, Worker};

/// The largest frame either side takes: `big` asks for more.
pub(crate) const MAX_FRAME: usize = 64 * 1024;

/// How one incarnation ends.
enum Ending {
    /// The runtime is dropped with everything in flight.
    Crash,
    /// `shutdown`: go-away, calls in flight finish.
    Graceful,
}

/// One running incarnation of a server.
struct Incarnation {
    end: oneshot::Sender<Ending>,
    thread: std::thread::JoinHandle<()>,
}

/// Starts a server on `addr` in a runtime of its own.
fn start(addr: SocketAddr, ledger: Ledger) -> Incarnation {
    let (end, ending) = oneshot::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a server runtime");
        rt.block_on(async move {
            // The port was just freed by the incarnation before: retry.
            let listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(listener) => break listener,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            let server = Server::builder()
                .max_frame_size(MAX_FRAME)
                .keepalive(Some(Duration::from_secs(1)))
                .shutdown_grace(Duration::from_secs(2))
                .build(SoakServer::new(Worker { ledger }));
            let serving = tokio::spawn({
                let server = server.clone();
                async move { server.serve(listener).await }
            });
            match ending.await {
                Ok(Ending::Graceful) => server.shutdown().await,
                Ok(Ending::Crash) | Err(_) => serving.abort(),
            }
        });
        // Whatever still runs (a crash) is dropped here, cut mid-call.
        drop(rt);
    });
    Incarnation { end, thread }
}

/// What chaos did.
#[derive(Default)]
pub(crate) struct Chaos {
    pub(crate) crashes: AtomicU64,
    pub(crate) graceful: AtomicU64,
}

/// Runs the servers on `addrs` until `stop`; when `chaos`, kills or
/// restarts one every few seconds and brings it back after a pause.
pub(crate) async fn run(
    addrs: Vec<SocketAddr>,
    ledger: Ledger,
    chaos: bool,
    seed: u64,
    tally: Arc<Chaos>,
    stop: CancellationToken,
) {
    let mut rng = Rng::new(seed);
    let mut running: Vec<Option<Incarnation>> = addrs
        .iter()
        .map(|&addr| Some(start(addr, ledger.clone())))
        .collect();
    loop {
        let pause = Duration::from_millis(1_000 + rng.below(4_000));
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
        if !chaos {
            continue;
        }
        let i = rng.below(addrs.len() as u64) as usize;
        let Some(incarnation) = running[i].take() else {
            continue;
        };
        let ending = if rng.below(10) < 7 {
            tally.crashes.fetch_add(1, Ordering::Relaxed);
            Ending::Crash
        } else {
            tally.graceful.fetch_add(1, Ordering::Relaxed);
            Ending::Graceful
        };
        let _ = incarnation.end.send(ending);
        let _ = tokio::task::spawn_blocking(move || incarnation.thread.join()).await;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(1_400))).await;
        running[i] = Some(start(addrs[i], ledger.clone()));
    }
    for incarnation in running.into_iter().flatten() {
        let _ = incarnation.end.send(Ending::Graceful);
        let _ = tokio::task::spawn_blocking(move || incarnation.thread.join()).await;
    }
}
