//! The two runtime setups, each applied to both sides alike: every
//! contender's server in one runtime on one OS thread, every client in
//! another.

use std::fmt;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use cmdstream::codec::{Bincode, Json, Postcard};

use crate::contenders::Addrs;
use crate::measure::{self, Comparison};
use crate::plan::Plan;
use crate::service::{BenchServer, Bencher};
use crate::{raw, tarpc_peer, tonic_peer, BenchError};

/// How each side's runtime is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// A current-thread runtime per side.
    CurrentThread,
    /// A multi-thread runtime with one worker per side.
    MultiThreadOneWorker,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setup::CurrentThread => "A: current-thread runtime per side",
            Setup::MultiThreadOneWorker => "B: multi-thread runtime, 1 worker per side",
        })
    }
}

impl Setup {
    /// `A` or `B`.
    pub(crate) fn letter(self) -> &'static str {
        match self {
            Setup::CurrentThread => "A",
            Setup::MultiThreadOneWorker => "B",
        }
    }

    pub(crate) fn runtime(self) -> std::io::Result<Runtime> {
        match self {
            Setup::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Setup::MultiThreadOneWorker => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build(),
        }
    }
}

/// Runs `f` as a task of `rt` (so on a worker thread, not on the thread
/// that blocks) and waits for it.
pub(crate) fn run_on<F>(rt: &Runtime, f: F) -> Result<F::Output, BenchError>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async { tokio::spawn(f).await })
        .map_err(|e| BenchError::new(format!("a benchmark task failed: {e}")))
}

/// A loopback listener on a free port.
pub(crate) async fn listen() -> Result<(TcpListener, SocketAddr), BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Waits for a cmdstream server to finish serving after its shutdown.
async fn cmdstream_stopped(
    name: &str,
    serving: tokio::task::JoinHandle<cmdstream::Result<()>>,
) -> Result<(), BenchError> {
    serving
        .await
        .map_err(|e| BenchError::new(format!("{name}: {e}")))?
        .map_err(|e| BenchError::new(format!("{name}: {e}")))
}

/// Every contender's server, serving on a thread of their own.
struct Servers {
    addrs: Addrs,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), BenchError>>>,
}

impl Servers {
    fn start(setup: Setup) -> Result<Servers, BenchError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || -> Result<(), BenchError> {
                let rt = setup.runtime()?;
                run_on(&rt, async move {
                    let (bincode_l, cmd_bincode) = listen().await?;
                    let (json_l, cmd_json) = listen().await?;
                    let (postcard_l, cmd_postcard) = listen().await?;
                    let (tarpc_l, tarpc) = listen().await?;
                    let (tonic_l, tonic) = listen().await?;
                    let (raw_l, raw) = listen().await?;
                    let _ = ready_tx.send(Addrs {
                        cmd_bincode,
                        cmd_json,
                        cmd_postcard,
                        tarpc,
                        tonic,
                        raw,
                    });
                    let bincode = cmdstream::Server::builder()
                        .codec(Bincode)
                        .build(BenchServer::new(Bencher));
                    let json = cmdstream::Server::builder()
                        .codec(Json)
                        .build(BenchServer::new(Bencher));
                    let postcard = cmdstream::Server::builder()
                        .codec(Postcard)
                        .build(BenchServer::new(Bencher));
                    let serving_bincode = tokio::spawn({
                        let s = bincode.clone();
                        async move { s.serve(bincode_l).await }
                    });
                    let serving_json = tokio::spawn({
                        let s = json.clone();
                        async move { s.serve(json_l).await }
                    });
                    let serving_postcard = tokio::spawn({
                        let s = postcard.clone();
                        async move { s.serve(postcard_l).await }
                    });
                    let (tonic_stop, tonic_stopped) = oneshot::channel::<()>();
                    let tonic = tokio::spawn(tonic_peer::serve(tonic_l, async move {
                        let _ = tonic_stopped.await;
                    }));
                    let tarpc = tokio::spawn(tarpc_peer::serve(tarpc_l));
                    let raw = tokio::spawn(raw::serve(raw_l));
                    let _ = stopped.await;
                    raw.abort();
                    tarpc.abort();
                    let _ = tonic_stop.send(());
                    let grace = Duration::from_secs(5);
                    let all = async {
                        tokio::join!(bincode.shutdown(), json.shutdown(), postcard.shutdown())
                    };
                    tokio::time::timeout(grace, all)
                        .await
                        .map_err(|_| BenchError::new("a cmdstream server did not shut down"))?;
                    cmdstream_stopped("cmdstream (bincode)", serving_bincode).await?;
                    cmdstream_stopped("cmdstream (json)", serving_json).await?;
                    cmdstream_stopped("cmdstream (postcard)", serving_postcard).await?;
                    tokio::time::timeout(grace, tonic)
                        .await
                        .map_err(|_| BenchError::new("the tonic server did not shut down"))?
                        .map_err(|e| BenchError::new(format!("tonic server: {e}")))??;
                    Ok::<_, BenchError>(())
                })?
            })?;
        let Ok(addrs) = ready_rx.recv() else {
            let why = match thread.join() {
                Ok(Err(e)) => e.to_string(),
                _ => "the server thread died".into(),
            };
            return Err(BenchError::new(format!("servers did not start: {why}")));
        };
        Ok(Servers {
            addrs,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn stop(mut self) -> Result<(), BenchError> {
        self.stop.take().map(|s| s.send(()));
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(BenchError::new("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // On an early return the thread is told to stop but not waited for.
        self.stop.take().map(|s| s.send(()));
    }
}

/// Runs every workload on every contender in one setup.
pub(crate) fn run(setup: Setup, plan: &Plan, watchdog: Duration) -> Result<Comparison, BenchError> {
    let plan = plan.clone();
    run_client(setup, watchdog, move |addrs| async move {
        measure::run_all(addrs, &plan).await
    })
}

/// Starts every server, runs `job` (given their addresses) on the client
/// runtime, then stops everything.
pub(crate) fn run_client<T, F, Fut>(
    setup: Setup,
    watchdog: Duration,
    job: F,
) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce(Addrs) -> Fut,
    Fut: std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
{
    let servers = Servers::start(setup)?;
    let rt = setup.runtime()?;
    let work = job(servers.addrs);
    let result = run_on(&rt, async move {
        tokio::time::timeout(watchdog, work)
            .await
            .unwrap_or_else(|_| {
                Err(BenchError::new(format!(
                    "the measurements did not finish within {watchdog:?}: a call hangs"
                )))
            })
    })
    .and_then(|r| r);
    // The clients are gone with the task; closing the runtime stops their
    // connection tasks too, so the servers can drain.
    rt.shutdown_timeout(Duration::from_secs(5));
    let stopped = servers.stop();
    let value = result?;
    stopped?;
    Ok(value)
}
