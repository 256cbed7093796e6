//! The task that owns one client connection.
//!
//! It is the only owner of the socket and of the in-flight map, so nothing
//! on the call path takes a lock: callers queue encoded COMMAND frames on
//! one channel (new calls) and control messages on another (cancel, credit,
//! streamed arguments); the driver copies them into one write buffer, writes
//! it once, reads as many frames as the socket has and routes each result
//! to its caller by request id (`incoming.rs`), a slice of the read at a
//! time so that the callers' next calls go out meanwhile.

mod incoming;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tracing::{trace, warn, Instrument};

use super::arg_credit::ArgCredit;
use super::message::{Control, Reply, Request};
use super::settle::MAX_ARG_WINDOW;
use super::shared::Shared;
use crate::conn::framed::FramedIo;
use crate::conn::id_map::IdMap;
use crate::conn::link::{Link, Side, Written};
use crate::error::Error;
use crate::service::ServiceInfo;
use crate::wire::frame::{self, Kind};

/// The sources that said Pending during one poll of the driver.
#[derive(Default)]
struct Idle {
    control: bool,
    requests: bool,
    read: bool,
    keepalive: bool,
}

/// Where a client connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// New calls are sent.
    Open,
    /// The server sent go-away: new calls are failed as unsent
    /// (`Unavailable`), those in flight finish.
    GoingAway,
    /// Every handle is gone, or `close` was called (`closed`): no new
    /// calls are taken, and the connection closes once those in flight
    /// are done.
    Finishing { closed: bool },
}

/// The most new calls taken from the channel at a time.
const TAKE_AT_ONCE: usize = 64;

/// A large read is routed this many frames at a time, the driver yielding
/// in between: the callers handed their results queue their next calls,
/// which go out while the rest of the read is routed. Routed all at once,
/// every call of a full pipeline is answered, then sent again, in one
/// batch, and the server waits idle while the client routes the batch and
/// the client while the server answers it. (Measured with 256 calls in
/// flight, setup A: about 1.0 M calls/s routed at once, 1.6 M with 64;
/// 32 and 128 do worse than 64.)
const ROUTE_EVERY: usize = 64;

/// One call in flight. Kept small: the map holds one per call, and every
/// call writes and reads its entry.
struct Pending {
    command: u32,
    /// Results the server may still send before it needs more credit.
    result_credit: u32,
    /// Where its COMMAND starts in the byte stream to the server: it was
    /// sent (in part at least) once the socket has taken more than that.
    start: u64,
    reply: Reply,
    /// The argument stream's credit, for a call that streams arguments.
    args: Option<Box<ArgStream>>,
}

/// The credit of a call's argument stream: its usable part is the
/// semaphore's permits (the pump takes one per frame it hands over).
struct ArgStream {
    permits: Arc<Semaphore>,
    credit: ArgCredit,
}

impl Pending {
    fn close_args(&self) {
        if let Some(args) = &self.args {
            args.permits.close();
        }
    }
}

pub(crate) struct Driver<IO> {
    link: Link<IO>,
    requests: mpsc::UnboundedReceiver<Request>,
    control: mpsc::UnboundedReceiver<Control>,
    pending: IdMap<Pending>,
    shared: Arc<Shared>,
    /// Callers woken with a result whose next call has not arrived yet:
    /// each is likely to queue one in a moment. Not reset by a write: a
    /// caller woken just before one still counts after it, or the calls of
    /// late callers would each go out in a write of their own.
    woken: usize,
    state: State,
    /// Streams with results gathered from this slice of a read, to hand
    /// over once the slice is routed.
    to_flush: Vec<u64>,
    /// New calls taken from the channel in one go (one `poll_recv_many`
    /// costs far less than a `poll_recv` per call) and not yet queued.
    taken: Vec<Request>,
    /// Bytes of streamed arguments in the write buffer, released from
    /// [`Shared::args_backlog`] once written.
    unwritten_args: usize,
    /// The last read may hold frames not routed yet: the driver stopped
    /// after [`ROUTE_EVERY`] of them to let the callers it woke run.
    unrouted: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Driver<IO> {
    pub(crate) fn new(
        io: FramedIo<IO>,
        requests: mpsc::UnboundedReceiver<Request>,
        control: mpsc::UnboundedReceiver<Control>,
        shared: Arc<Shared>,
    ) -> Self {
        Driver {
            link: Link::new(io, shared.settled.keepalive, Side::Client),
            requests,
            control,
            pending: IdMap::default(),
            shared,
            woken: 0,
            state: State::Open,
            to_flush: Vec::new(),
            taken: Vec::new(),
            unwritten_args: 0,
            unrouted: false,
        }
    }

    /// Runs the driver in a task of its own.
    pub(crate) fn spawn(self, service: &ServiceInfo, peer: &str)
    where
        IO: Send + 'static,
    {
        // The span only when a subscriber wants it: entered on every poll of
        // the driver, even a span nobody records costs hundreds of
        // instructions per call when tracing's `log` feature is on.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let span = tracing::debug_span!("cmdstream.client.conn", service = service.name, peer);
            tokio::spawn(self.run().instrument(span));
        } else {
            tokio::spawn(self.run());
        }
    }

    /// Runs the connection until every handle is gone (or it was closed)
    /// and no call is in flight, or until it fails; then fails whatever is
    /// still waiting.
    pub(crate) async fn run(mut self) {
        let result = poll_fn(|cx| self.poll_drive(cx)).await;
        let error = match result {
            Ok(()) => {
                // Clean close: say goodbye properly, unless the server stopped
                // reading, in which case flushing would never end.
                if self.link.queued() == 0 {
                    self.link.close().await;
                }
                match self.state {
                    State::Finishing { closed: true } => {
                        Error::connection_lost("the client was closed")
                    }
                    State::GoingAway => Error::connection_lost(format!(
                        "the server went away ({})",
                        self.shared.going_away.get().map_or("", |r| &**r)
                    )),
                    _ => Error::connection_lost("the client was dropped"),
                }
            }
            Err(e) => {
                warn!(error = %e, "connection failed");
                e
            }
        };
        self.shutdown(error);
    }

    fn shutdown(&mut self, error: Error) {
        let reason: Arc<str> = match &error {
            Error::ConnectionLost { reason, .. } => reason.clone(),
            other => other.to_string().into(),
        };
        self.shared.close(reason.clone());
        let written = self.link.written();
        for (_, p) in self.pending.drain() {
            p.close_args();
            p.reply.fail(Error::ConnectionLost {
                reason: reason.clone(),
                sent: p.start < written,
            });
        }
        let shared = self.shared.clone();
        self.fail_unsent(|| shared.unsent());
    }

    /// Takes no new calls, and fails with `error` those not sent yet.
    fn fail_unsent(&mut self, error: impl Fn() -> Error) {
        self.requests.close();
        for r in std::mem::take(&mut self.taken) {
            r.reply.fail(error());
        }
        while let Ok(r) = self.requests.try_recv() {
            r.reply.fail(error());
        }
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // A source that said Pending in this poll holds the driver's waker
        // and wakes it when that changes: polling it again before returning
        // would only register the waker once more, at a few hundred
        // instructions each time.
        let mut idle = Idle::default();
        loop {
            let mut progress = false;

            while !idle.control {
                match self.control.poll_recv(cx) {
                    Poll::Ready(Some(msg)) => {
                        self.on_control(msg);
                        progress = true;
                    }
                    Poll::Ready(None) | Poll::Pending => idle.control = true,
                }
            }

            while self.may_take_requests() {
                if !self.taken.is_empty() {
                    self.queue_taken();
                    progress = true;
                    continue;
                }
                if idle.requests {
                    break;
                }
                let room =
                    (self.shared.settled.max_in_flight - self.pending.len()).min(TAKE_AT_ONCE);
                match self.requests.poll_recv_many(cx, &mut self.taken, room) {
                    Poll::Ready(0) => self.finish(false),
                    Poll::Ready(_) => {}
                    Poll::Pending => idle.requests = true,
                }
            }

            // Frames left over from the last read first, then more.
            if self.unrouted {
                progress = true;
                self.route_read()?;
            } else if !idle.read {
                match self.link.poll_read(cx)? {
                    Poll::Ready(true) => {
                        progress = true;
                        self.route_read()?;
                    }
                    Poll::Ready(false) => {
                        let why = match self.shared.going_away.get() {
                            Some(reason) => format!("the server shut down ({reason})"),
                            None => "the server closed the connection".to_owned(),
                        };
                        return Poll::Ready(Err(Error::connection_lost(why)));
                    }
                    Poll::Pending => idle.read = true,
                }
            }

            if !idle.keepalive {
                if self.link.poll_keepalive(cx)? {
                    progress = true;
                } else {
                    idle.keepalive = true;
                }
            }

            let expected = self.link.frames_queued() + self.woken;
            match self.link.poll_write(cx, expected)? {
                Written::Yield => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Written::All => {
                    progress = true;
                    self.shared
                        .args_backlog
                        .release(std::mem::take(&mut self.unwritten_args));
                }
                Written::Nothing | Written::Blocked => {}
            }
            // The callers just handed their results queue their next
            // calls before the rest of the read is routed.
            if self.unrouted {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }

            // Done: closing, or sent away by the server, with nothing left
            // in flight. Sent away, the client closes its side itself, so
            // that the server, which waits for that, can close at once.
            if matches!(self.state, State::Finishing { .. } | State::GoingAway)
                && self.pending.is_empty()
                && self.link.queued() == 0
            {
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Takes no more new calls: every handle is gone, or `close` (`closed`).
    fn finish(&mut self, closed: bool) {
        if !matches!(self.state, State::Finishing { closed: true }) {
            self.state = State::Finishing { closed };
        }
    }

    /// Whether a new call may be queued for writing now.
    fn may_take_requests(&self) -> bool {
        !matches!(self.state, State::Finishing { .. })
            && self.pending.len() < self.shared.settled.max_in_flight
            && !self.link.backed_up()
    }

    /// Queues the calls taken from the channel, in order, while
    /// [`may_take_requests`](Self::may_take_requests); the rest wait in
    /// `taken` for the next turn.
    fn queue_taken(&mut self) {
        let mut taken = std::mem::take(&mut self.taken);
        let mut calls = taken.drain(..);
        for req in calls.by_ref() {
            self.on_request(req);
            if !self.may_take_requests() {
                break;
            }
        }
        let rest: Vec<Request> = calls.collect();
        self.taken = if rest.is_empty() { taken } else { rest };
    }

    /// A caller was handed its result. Each call that arrives takes one off
    /// the count, so callers that never call again are worn off by later
    /// calls; meanwhile they cost at most one yield per write, and the count
    /// never exceeds the in-flight limit.
    fn woke(&mut self) {
        self.woken = (self.woken + 1).min(self.shared.settled.max_in_flight);
    }

    fn on_request(&mut self, req: Request) {
        if req.reply.is_closed() {
            // The caller gave up before the call was sent: nothing to cancel.
            return;
        }
        if self.state == State::GoingAway {
            req.reply.fail(self.shared.unsent());
            return;
        }
        self.woken = self.woken.saturating_sub(1);
        let start = self.link.offset();
        self.link.out().extend_from_slice(req.frame.as_slice());
        let args = req.args.map(|permits| {
            let credit = ArgCredit::new(self.shared.settled.server_window, MAX_ARG_WINDOW);
            permits.add_permits(credit.usable() as usize);
            Box::new(ArgStream { permits, credit })
        });
        let previous = self.pending.insert(
            req.id,
            Pending {
                command: req.command,
                result_credit: self.shared.settled.our_window,
                start,
                reply: req.reply,
                args,
            },
        );
        debug_assert!(previous.is_none(), "request ids are unique");
    }

    fn on_control(&mut self, msg: Control) {
        match msg {
            Control::Cancel(id) => {
                if let Some(p) = self.pending.remove(&id) {
                    trace!(id, "cancel");
                    p.close_args();
                    frame::put_empty(self.link.out(), Kind::Cancel, id);
                }
            }
            Control::Credit(id, n) => {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.result_credit = p.result_credit.saturating_add(n);
                    frame::put_credit(self.link.out(), id, n);
                }
            }
            Control::Frame(id, bytes) => {
                if let Some(p) = self.pending.get_mut(&id) {
                    // Each frame the pump hands over took one permit.
                    if let Some(args) = &mut p.args {
                        let released = args.credit.spend(1);
                        if released > 0 {
                            args.permits.add_permits(released as usize);
                        }
                    }
                    self.link.out().extend_from_slice(bytes.as_slice());
                    self.unwritten_args += bytes.len();
                } else {
                    self.shared.args_backlog.release(bytes.len());
                }
            }
            Control::Close => {
                // Calls in flight finish; those not sent yet (waiting for
                // a slot, say) fail now rather than after them.
                self.finish(true);
                self.fail_unsent(|| Error::ConnectionLost {
                    reason: "the client was closed".into(),
                    sent: false,
                });
            }
            Control::Abort(id, error) => {
                if let Some(p) = self.pending.remove(&id) {
                    p.close_args();
                    p.reply.fail(error);
                    frame::put_empty(self.link.out(), Kind::Cancel, id);
                }
            }
        }
    }
}
