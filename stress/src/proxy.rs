//! A TCP proxy that injects faults: each connection through it draws one
//! fault and keeps it, in both directions. Added latency, stalls, writes
//! split into single bytes, a bandwidth limit, a reset after some bytes,
//! and a half-open link that swallows everything after some bytes while
//! both sockets stay open.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::rng::Rng;

/// One connection's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// Each chunk waits this long before it is passed on.
    Latency(Duration),
    /// Now and then, nothing passes for a while.
    Stalls,
    /// Every byte is written on its own.
    Split,
    /// At most this many bytes a second.
    Bandwidth(u64),
    /// After this many bytes, both sockets are reset.
    Reset(u64),
    /// After this many bytes, everything is dropped silently; the sockets
    /// stay open (until the proxy gives up on them after a while).
    HalfOpen(u64),
}

impl Fault {
    pub(crate) const KINDS: [&'static str; 7] = [
        "none",
        "latency",
        "stalls",
        "1-byte splits",
        "bandwidth",
        "reset",
        "half-open",
    ];

    fn index(self) -> usize {
        match self {
            Fault::None => 0,
            Fault::Latency(_) => 1,
            Fault::Stalls => 2,
            Fault::Split => 3,
            Fault::Bandwidth(_) => 4,
            Fault::Reset(_) => 5,
            Fault::HalfOpen(_) => 6,
        }
    }

    fn draw(rng: &mut Rng) -> Fault {
        match rng.below(100) {
            0..=39 => Fault::None,
            40..=54 => Fault::Latency(Duration::from_millis(1 + rng.below(20))),
            55..=64 => Fault::Stalls,
            65..=72 => Fault::Split,
            73..=80 => Fault::Bandwidth(64 * 1024 + rng.below(512 * 1024)),
            81..=92 => Fault::Reset(256 + rng.below(256 * 1024)),
            _ => Fault::HalfOpen(256 + rng.below(256 * 1024)),
        }
    }
}

/// How many connections drew each fault.
#[derive(Default)]
pub(crate) struct FaultCounts(pub(crate) [AtomicU64; 7]);

/// Listens on `listener`, forwarding each connection to `target` through a
/// fault of its own, until `stop`.
pub(crate) async fn run(
    listener: TcpListener,
    target: SocketAddr,
    seed: u64,
    counts: Arc<FaultCounts>,
    stop: CancellationToken,
) {
    let mut rng = Rng::new(seed);
    loop {
        let inbound = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((inbound, _)) => inbound,
                Err(_) => continue,
            },
        };
        let fault = Fault::draw(&mut rng);
        counts.0[fault.index()].fetch_add(1, Ordering::Relaxed);
        let seed = rng.next();
        tokio::spawn(link(inbound, target, fault, seed, stop.clone()));
    }
}

/// One proxied connection.
async fn link(
    inbound: TcpStream,
    target: SocketAddr,
    fault: Fault,
    seed: u64,
    stop: CancellationToken,
) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        // The server is down: the client sees its connection refused as a
        // reset.
        let _ = inbound.set_zero_linger();
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if matches!(fault, Fault::Reset(_)) {
        // Closing then sends a reset, not a FIN.
        let _ = inbound.set_zero_linger();
        let _ = outbound.set_zero_linger();
    }
    let cut = stop.child_token();
    let shared = Arc::new(Shared {
        passed: AtomicU64::new(0),
        silenced: CancellationToken::new(),
    });
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    let up = tokio::spawn(pump(ri, wo, fault, seed, cut.clone(), shared.clone()));
    let down = tokio::spawn(pump(
        ro,
        wi,
        fault,
        seed ^ 0x9e37_79b9_7f4a_7c15,
        cut.clone(),
        shared.clone(),
    ));
    // A silenced link is held open for 30 s, then dropped.
    let watchdog = async {
        shared.silenced.cancelled().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        cut.cancel();
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = watchdog => {}
    }
}

/// What both directions of a link share.
struct Shared {
    /// Bytes passed both ways.
    passed: AtomicU64,
    /// Cancelled once a half-open link has gone silent.
    silenced: CancellationToken,
}

/// Copies one direction through `fault` until either side closes or the
/// link is cut; then cuts the link, so the other direction ends too. A
/// silenced link reads and drops everything instead, without cutting.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    fault: Fault,
    seed: u64,
    cut: CancellationToken,
    shared: Arc<Shared>,
) {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            () = cut.cancelled() => break,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let passed = shared.passed.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if let Fault::HalfOpen(after) = fault {
            if passed >= after {
                shared.silenced.cancel();
            }
        }
        if shared.silenced.is_cancelled() {
            continue;
        }
        let chunk = &buf[..n];
        let written = match fault {
            Fault::None | Fault::HalfOpen(_) => to.write_all(chunk).await,
            Fault::Latency(delay) => {
                tokio::time::sleep(delay).await;
                to.write_all(chunk).await
            }
            Fault::Stalls => {
                if rng.below(50) == 0 {
                    tokio::time::sleep(Duration::from_millis(200 + rng.below(1800))).await;
                }
                to.write_all(chunk).await
            }
            Fault::Split => {
                let mut result = Ok(());
                for byte in chunk {
                    result = to.write_all(std::slice::from_ref(byte)).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
            Fault::Bandwidth(per_second) => {
                let wait = Duration::from_secs_f64(n as f64 / per_second as f64);
                tokio::time::sleep(wait).await;
                to.write_all(chunk).await
            }
            Fault::Reset(after) if passed >= after => break,
            Fault::Reset(_) => to.write_all(chunk).await,
        };
        if written.is_err() {
            break;
        }
    }
    if !shared.silenced.is_cancelled() {
        cut.cancel();
    }
}
