//! The callers: workers that share clients of three kinds (one plain
//! connection, replaced when it dies; a reconnecting client; a group over
//! every server) and run a random mix of every call shape against them,
//! checking each outcome as it arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmdstream::{Backoff, CallOptions, CircuitBreaker, Client, Error, Group, Reconnect};
use futures_util::stream;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::cluster::MAX_FRAME;
use crate::report::{Shape, Tally};
use crate::rng::Rng;
use crate::service::{call_id, Echo, Ledger, Refusal, SoakClient};

/// Every call's timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(1_500);
/// How much later than its deadline a call may end: timers fire on a
/// loaded 2-core machine a little late, and a stream's last item may be
/// decoded after the deadline's check. A call later than this is a
/// violation.
pub(crate) const SLACK: Duration = Duration::from_millis(500);

/// The three kinds of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One connection; a worker that finds it gone dials a new one.
    Single,
    /// `ClientBuilder::reconnect`.
    Reconnecting,
    /// `connect_group` over every server, with a circuit breaker.
    Group,
}

/// A client shared by several workers.
pub(crate) struct Shared {
    kind: Kind,
    endpoints: Vec<SocketAddr>,
    /// For `Single`: the connection now, replaced once it is closed.
    slot: Mutex<Option<SoakClient>>,
}

impl Shared {
    pub(crate) async fn new(kind: Kind, endpoints: Vec<SocketAddr>) -> Arc<Self> {
        let shared = Arc::new(Shared {
            kind,
            endpoints,
            slot: Mutex::new(None),
        });
        if kind != Kind::Single {
            // Lazy: the first connection may be to a server that is down.
            let client = shared.connect().await;
            *shared.slot.lock().await = client;
        }
        shared
    }

    fn builder() -> cmdstream::ClientBuilder {
        Client::builder()
            .max_frame_size(MAX_FRAME)
            .keepalive(Some(Duration::from_secs(1)))
            .connect_timeout(Duration::from_secs(1))
            .handshake_timeout(Duration::from_secs(1))
            .call_options(CallOptions::new().timeout(TIMEOUT))
    }

    async fn connect(&self) -> Option<SoakClient> {
        let policy = Reconnect::new().lazy(true).backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(500),
        ));
        let client = match self.kind {
            Kind::Single => {
                Self::builder()
                    .connect(self.endpoints[0], SoakClient::INFO)
                    .await
            }
            Kind::Reconnecting => {
                Self::builder()
                    .reconnect(policy)
                    .connect(self.endpoints[0], SoakClient::INFO)
                    .await
            }
            Kind::Group => {
                Self::builder()
                    .reconnect(policy)
                    .circuit_breaker(
                        CircuitBreaker::new()
                            .consecutive_failures(5)
                            .open_for(Duration::from_millis(500)),
                    )
                    .connect_group(Group::new(), self.endpoints.clone(), SoakClient::INFO)
                    .await
            }
        };
        client.ok().map(SoakClient::from)
    }

    /// The client to call now; `None` while a single connection cannot be
    /// made (its server is down).
    async fn get(&self) -> Option<SoakClient> {
        let mut slot = self.slot.lock().await;
        if let Some(client) = &*slot {
            if !client.client().is_closed() {
                return Some(client.clone());
            }
        }
        *slot = self.connect().await;
        slot.clone()
    }
}

/// One worker: calls through `shared` until `stop`, its call numbers
/// `call_id(index, 0..)`, every outcome counted in its own tally.
pub(crate) async fn run(
    index: usize,
    shared: Arc<Shared>,
    ledger: Ledger,
    seed: u64,
    stop: CancellationToken,
) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut seq = 0u64;
    while !stop.is_cancelled() {
        let Some(client) = shared.get().await else {
            tally.no_connection += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let call = call_id(index, seq);
        seq += 1;
        one_call(&client, call, &mut rng, &ledger, shared.kind, &mut tally).await;
    }
    tally
}

/// What a call ended with, before it is counted.
enum Ended {
    Ok,
    /// The command's typed application error, as expected.
    Refused,
    Failed(Error),
    /// The outcome is wrong: the message says how.
    Wrong(String),
}

async fn one_call(
    client: &SoakClient,
    call: u64,
    rng: &mut Rng,
    ledger: &Ledger,
    kind: Kind,
    tally: &mut Tally,
) {
    let started = Instant::now();
    let draw = rng.below(100);
    let (shape, ended, idempotent) = match draw {
        0..=29 => {
            let payload: Vec<u8> = (0..rng.below(512)).map(|i| i as u8).collect();
            let ended = match client.record(call, payload.clone()).await {
                Ok(echo)
                    if echo
                        == Echo {
                            call,
                            payload,
                            runs: 1,
                        } =>
                {
                    Ended::Ok
                }
                Ok(echo) => Ended::Wrong(format!(
                    "record {call:#x}: got call {:#x}, {} runs, {} bytes",
                    echo.call,
                    echo.runs,
                    echo.payload.len()
                )),
                Err(e) => Ended::Failed(e),
            };
            (Shape::Unary, ended, false)
        }
        30..=39 => {
            let ended = match client.read(call).await {
                Ok(v) if v == call.wrapping_mul(7) => Ended::Ok,
                Ok(v) => Ended::Wrong(format!("read {call:#x}: got {v:#x}")),
                Err(e) => Ended::Failed(e),
            };
            (Shape::Unary, ended, true)
        }
        40..=44 => {
            let ended = match client.fail(call).await {
                Ok(Err(Refusal { call: c })) if c == call => Ended::Refused,
                Ok(other) => Ended::Wrong(format!("fail {call:#x}: got {other:?}")),
                Err(e) => Ended::Failed(e),
            };
            (Shape::Unary, ended, false)
        }
        45..=52 => {
            // Some of these outlast the timeout.
            let millis = rng.below(2_000);
            let ended = match client.slow(call, millis).await {
                Ok(v) if v == call => Ended::Ok,
                Ok(v) => Ended::Wrong(format!("slow {call:#x}: got {v:#x}")),
                Err(e) => Ended::Failed(e),
            };
            (Shape::Unary, ended, false)
        }
        53..=64 => {
            let n = 1 + rng.below(200) as u32;
            (
                Shape::ServerStream,
                count(client, call, n, None).await,
                false,
            )
        }
        65..=71 => {
            let n = 20 + rng.below(200) as u32;
            let keep = rng.below(u64::from(n)) as usize;
            (
                Shape::Cancelled,
                count(client, call, n, Some(keep)).await,
                false,
            )
        }
        72..=81 => {
            let items: Vec<u64> = (0..rng.below(100)).map(|i| call ^ i).collect();
            let want = items.iter().fold(0u64, |a, &b| a.wrapping_add(b));
            let ended = match client.sum(call, stream::iter(items)).await {
                Ok(v) if v == want => Ended::Ok,
                Ok(v) => Ended::Wrong(format!("sum {call:#x}: got {v:#x}, wanted {want:#x}")),
                Err(e) => Ended::Failed(e),
            };
            (Shape::ClientStream, ended, false)
        }
        82..=93 => {
            let items: Vec<u64> = (0..1 + rng.below(50)).map(|i| call + 3 * i).collect();
            (Shape::Bidi, echo(client, call, items).await, false)
        }
        94..=96 => {
            // An argument larger than the server takes: refused before it
            // is sent.
            let payload = vec![1u8; MAX_FRAME + 1024];
            let ended = match client.record(call, payload).await {
                Err(Error::FrameTooLarge { .. }) if !ledger.ran(call) => Ended::Ok,
                Err(Error::FrameTooLarge { .. }) => {
                    Ended::Wrong(format!("oversize record {call:#x} ran"))
                }
                Err(
                    e @ (Error::Timeout
                    | Error::ConnectionLost { .. }
                    | Error::Unavailable(_)
                    | Error::CircuitOpen { .. }),
                ) => {
                    // Waiting for a connection (reconnecting, group) can
                    // end first.
                    Ended::Failed(e)
                }
                other => Ended::Wrong(format!("oversize record {call:#x}: {other:?}")),
            };
            (Shape::Oversize, ended, false)
        }
        _ => {
            // A result larger than the client takes: the server refuses
            // to send it.
            let ended = match client.big(call, (MAX_FRAME + 1024) as u32).await {
                Err(Error::FrameTooLarge { .. }) => Ended::Ok,
                Ok(bytes) => Ended::Wrong(format!("big {call:#x}: {} bytes arrived", bytes.len())),
                Err(e) => Ended::Failed(e),
            };
            (Shape::Oversize, ended, false)
        }
    };
    let took = started.elapsed();
    let row = tally.row(shape);
    row.calls += 1;
    if took > TIMEOUT + SLACK {
        row.late += 1;
        tally.violation(format!(
            "{shape:?} call {call:#x} ({kind:?}) ended {took:?} after it began, past its {TIMEOUT:?} deadline"
        ));
    }
    let row = tally.row(shape);
    match ended {
        Ended::Ok => {
            row.ok += 1;
            row.latency.record(took);
        }
        Ended::Refused => {
            row.refused += 1;
            row.latency.record(took);
        }
        Ended::Wrong(what) => {
            row.wrong += 1;
            tally.violation(what);
        }
        Ended::Failed(e) => match typed(&e, kind) {
            Ok(name) => {
                *row.errors.entry(name).or_default() += 1;
                // A call reported as never run must not have run.
                let unsent = matches!(
                    e,
                    Error::ConnectionLost { sent: false, .. }
                        | Error::Unavailable(_)
                        | Error::CircuitOpen { .. }
                );
                if unsent && !idempotent && ledger.ran(call) {
                    row.wrong += 1;
                    tally.violation(format!(
                        "{shape:?} call {call:#x} ({kind:?}) was reported as never run ({e}) but ran"
                    ));
                }
            }
            Err(what) => {
                row.wrong += 1;
                tally.violation(format!("{shape:?} call {call:#x} ({kind:?}): {what}"));
            }
        },
    }
}

/// The documented error a call may end with under faults, by name;
/// anything else is a violation.
fn typed(error: &Error, kind: Kind) -> Result<&'static str, String> {
    match error {
        Error::Timeout => Ok("timeout"),
        Error::ConnectionLost { .. } => Ok("connection lost"),
        Error::Unavailable(_) => Ok("unavailable"),
        Error::CircuitOpen { .. } if kind == Kind::Group => Ok("circuit open"),
        other => Err(format!("an error no fault explains: {other:?}")),
    }
}

/// `count(call, n)`, consumed whole or dropped after `keep` items: every
/// item in order, none missing, none repeated, none of another call.
async fn count(client: &SoakClient, call: u64, n: u32, keep: Option<usize>) -> Ended {
    let mut items = match client.count(call, n).await {
        Ok(items) => items,
        Err(e) => return Ended::Failed(e),
    };
    let mut next = 0u64;
    while let Some(item) = items.next().await {
        match item {
            Ok(v) if v == call + next => next += 1,
            Ok(v) => {
                return Ended::Wrong(format!(
                    "count {call:#x}: item {next} was {v:#x}, not {:#x}",
                    call + next
                ))
            }
            Err(e) => return Ended::Failed(e),
        }
        if keep.is_some_and(|keep| next as usize >= keep) {
            // Dropped here: the call is cancelled on the server.
            return Ended::Ok;
        }
    }
    if next == u64::from(n) {
        Ended::Ok
    } else {
        Ended::Wrong(format!("count {call:#x}: ended after {next} of {n} items"))
    }
}

/// `echo(call, items)`: the same items back, in order.
async fn echo(client: &SoakClient, call: u64, items: Vec<u64>) -> Ended {
    let want = items.clone();
    let mut back = match client.echo(call, stream::iter(items)).await {
        Ok(back) => back,
        Err(e) => return Ended::Failed(e),
    };
    let mut got = 0usize;
    while let Some(item) = back.next().await {
        match item {
            Ok(v) if want.get(got) == Some(&v) => got += 1,
            Ok(v) => return Ended::Wrong(format!("echo {call:#x}: item {got} was {v:#x}")),
            Err(e) => return Ended::Failed(e),
        }
    }
    if got == want.len() {
        Ended::Ok
    } else {
        Ended::Wrong(format!(
            "echo {call:#x}: {got} of {} items came back",
            want.len()
        ))
    }
}
