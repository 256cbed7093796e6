//! The two runtime setups, each applied to both sides alike: the server's
//! runtime on one OS thread, the client's on another.

use std::fmt;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::measure::{self, Comparison, Plan};
use crate::service::BenchService;
use crate::{raw, BenchError};

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
    fn runtime(self) -> std::io::Result<Runtime> {
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
fn run_on<F>(rt: &Runtime, f: F) -> Result<F::Output, BenchError>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async { tokio::spawn(f).await })
        .map_err(|e| BenchError::new(format!("a benchmark task failed: {e}")))
}

/// Both servers, serving on a thread of their own.
struct Servers {
    cmdstream: SocketAddr,
    raw: SocketAddr,
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
                    let cmd_listener = TcpListener::bind("127.0.0.1:0").await?;
                    let raw_listener = TcpListener::bind("127.0.0.1:0").await?;
                    let addrs = (cmd_listener.local_addr()?, raw_listener.local_addr()?);
                    let _ = ready_tx.send(addrs);
                    let server = cmdstream::Server::new(BenchService);
                    let serving = tokio::spawn({
                        let server = server.clone();
                        async move { server.serve(cmd_listener).await }
                    });
                    let raw = tokio::spawn(raw::serve(raw_listener));
                    let _ = stopped.await;
                    raw.abort();
                    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
                        .await
                        .map_err(|_| BenchError::new("the cmdstream server did not shut down"))?;
                    serving
                        .await
                        .map_err(|e| BenchError::new(e.to_string()))??;
                    Ok::<_, BenchError>(())
                })?
            })?;
        let Ok((cmdstream, raw)) = ready_rx.recv() else {
            let why = match thread.join() {
                Ok(Err(e)) => e.to_string(),
                _ => "the server thread died".into(),
            };
            return Err(BenchError::new(format!("servers did not start: {why}")));
        };
        Ok(Servers {
            cmdstream,
            raw,
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

/// Runs every workload on both contenders in one setup.
pub(crate) fn run(setup: Setup, plan: &Plan, watchdog: Duration) -> Result<Comparison, BenchError> {
    let plan = plan.clone();
    run_client(setup, watchdog, move |cmd_addr, raw_addr| async move {
        measure::run_all(cmd_addr, raw_addr, &plan).await
    })
}

/// Starts both servers, runs `job` (given their addresses) on the client
/// runtime, then stops everything.
pub(crate) fn run_client<T, F, Fut>(
    setup: Setup,
    watchdog: Duration,
    job: F,
) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce(SocketAddr, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
{
    let servers = Servers::start(setup)?;
    let rt = setup.runtime()?;
    let work = job(servers.cmdstream, servers.raw);
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
