//! The task that owns one server connection.
//!
//! It reads frames, starts one task per command, routes streamed arguments,
//! cancels and credit to the commands they belong to, and writes what the
//! command tasks queue in as few writes as it can. It alone owns the socket
//! and the map of running commands, so command tasks never take a lock to
//! answer.

use std::any::Any;
use std::future::poll_fn;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, Instrument};

use super::call::{ArgSource, Call};
use super::config::ServerConfig;
use super::context::CallContext;
use super::dispatch::Dispatch;
use super::hooks::ConnectionInfo;
use super::outbox::{self, CallRef, Collected, Out, Outbox};
use crate::codec::Codec;
use crate::conn::framed::FramedIo;
use crate::conn::id_map::{seeded_map, SeededIdMap};
use crate::conn::link::{Link, Side, Written};
use crate::error::{Error, ErrorCode};
use crate::wire::command;
use crate::wire::frame::{self, Frame, Kind};

/// Stop taking frames from command tasks, and stop reading commands, while
/// this much is waiting to be written to a client that does not read.
/// Command tasks meanwhile queue up to the connection's output buffer
/// (`ServerBuilder::max_output_buffer`) and then wait.
const HIGH_WATER: usize = 1 << 20;

/// A command's future, boxed once.
type Command = Pin<Box<dyn Future<Output = ()> + Send>>;

/// While working through a large read, the driver writes what it has
/// answered so far after this many frames instead of holding it all until
/// the end: the client starts on the first answers while the server works
/// on the rest, so the two sides run at once. (Measured with 256 calls in
/// flight: 1.1 M calls/s without, 1.55 M with; 32 and 64 do alike.)
const WRITE_EVERY: usize = 64;

/// A call the client still waits on: its command runs in a task of its
/// own, or has handed its `Call` elsewhere to answer later.
struct Running {
    /// Which call of this connection it is: frames of an earlier call
    /// with the same request id are not for it.
    seq: u64,
    /// The command's task, if it has one (see [`Connection::start`]).
    abort: Option<AbortHandle>,
    /// Where the client's streamed arguments go; dropped at END.
    args: Option<mpsc::UnboundedSender<Bytes>>,
    /// Items the client may still send before it needs more credit.
    arg_credit: u32,
    /// Credit for the command's streamed results.
    results: Option<Arc<Semaphore>>,
    /// Results the command may still send: the credit granted less the
    /// results it sent, kept within the server's `max_result_window`.
    result_credit: u32,
}

impl Running {
    fn stop(self) {
        if let Some(abort) = self.abort {
            abort.abort();
        }
        if let Some(results) = self.results {
            results.close();
        }
    }
}

/// The sources that said Pending during one poll of the driver.
#[derive(Default)]
struct Idle {
    /// The shutdown signal, the keepalive and idle timers.
    timers: bool,
    outbox: bool,
    read: bool,
}

/// What the handshake settled about the client, its announcements
/// clamped to the server's own limits.
pub(crate) struct Peer {
    /// The largest frame the server sends it.
    pub(crate) max_frame: usize,
    /// The initial credit of each of its result streams.
    pub(crate) stream_window: u32,
    /// What every call's context shares.
    pub(crate) info: Arc<ConnectionInfo>,
}

pub(crate) struct Connection<IO, D, C> {
    link: Link<IO>,
    outbox_rx: mpsc::UnboundedReceiver<Out>,
    outbox: Outbox,
    /// What commands polled inline sent, kept to reuse its allocations.
    inline: Collected,
    /// The box of the last command that finished inline, for the next.
    recycled: Option<Box<dyn Any + Send>>,
    running: SeededIdMap<Running>,
    /// The number the next call gets (see [`CallRef`]).
    next_seq: u64,
    service: Arc<D>,
    codec: C,
    config: Arc<ServerConfig>,
    peer: Peer,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Set once the connection is going away: the grace period's end.
    draining: Option<Pin<Box<Sleep>>>,
    idle: Option<Pin<Box<Sleep>>>,
    commands_seen: u64,
    commands_at_idle_check: u64,
}

impl<IO, D, C> Connection<IO, D, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Dispatch,
    C: Codec,
{
    pub(crate) fn new(
        io: FramedIo<IO>,
        service: Arc<D>,
        codec: C,
        config: Arc<ServerConfig>,
        peer: Peer,
        shutdown: WaitForCancellationFutureOwned,
    ) -> Self {
        let (outbox, outbox_rx) = Outbox::new(peer.max_frame, config.max_output_buffer);
        let idle = config.idle_timeout.map(|d| Box::pin(tokio::time::sleep(d)));
        Connection {
            link: Link::new(io, config.keepalive_interval, Side::Server),
            outbox_rx,
            outbox,
            inline: Collected::default(),
            recycled: None,
            running: seeded_map(),
            next_seq: 1,
            service,
            codec,
            config,
            peer,
            shutdown: Box::pin(shutdown),
            draining: None,
            idle,
            commands_seen: 0,
            commands_at_idle_check: 0,
        }
    }

    /// Serves the connection until the client leaves, the connection fails,
    /// or a shutdown or idle timeout has drained it.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        let result = poll_fn(|cx| self.poll_drive(cx)).await;
        // Close politely only when nothing is left to write: flushing to a
        // client that stopped reading would never end.
        if result.is_ok() && self.link.queued() == 0 {
            let _ = poll_fn(|cx| self.link.poll_close(cx)).await;
        }
        result
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // A source that said Pending in this poll holds the driver's waker
        // and wakes it when that changes: polling it again before returning
        // would only register the waker once more.
        let mut idle = Idle::default();
        loop {
            let mut progress = false;

            if !idle.timers {
                if self.draining.is_none() && self.shutdown.as_mut().poll(cx).is_ready() {
                    self.go_away("the server is shutting down");
                    progress = true;
                }
                progress |= self.link.poll_keepalive(cx)?;
                if self.poll_idle(cx) {
                    self.go_away("the connection was idle");
                    progress = true;
                }
                // Each timer that fired was re-armed (or is done) without
                // being polled since: look again next time round.
                idle.timers = !progress;
            }

            while !idle.outbox && self.link.queued() < HIGH_WATER {
                match self.outbox_rx.poll_recv(cx) {
                    Poll::Ready(Some(out)) => {
                        self.on_out(out);
                        progress = true;
                    }
                    // The connection holds a sender itself: never closed.
                    Poll::Ready(None) | Poll::Pending => idle.outbox = true,
                }
            }

            // Frames left over from an earlier read first; then more, unless
            // a client that does not read has let answers pile up.
            progress |= self.take_frames(cx)?;
            if !idle.read && !self.backed_up() {
                match self.link.poll_read(cx)? {
                    Poll::Ready(true) => {
                        progress = true;
                        self.take_frames(cx)?;
                    }
                    // The client is done with us: whatever still runs has
                    // nobody to answer to.
                    Poll::Ready(false) => return Poll::Ready(Ok(())),
                    Poll::Pending => idle.read = true,
                }
            }

            if let Some(grace) = &mut self.draining {
                if grace.as_mut().poll(cx).is_ready() {
                    // The grace period bounds everything, including frames a
                    // client that stopped reading will never take.
                    debug!(running = self.running.len(), "grace period over; closing");
                    for (_, r) in self.running.drain() {
                        r.stop();
                    }
                    return Poll::Ready(Ok(()));
                }
                if self.running.is_empty() && self.link.queued() == 0 {
                    return Poll::Ready(Ok(()));
                }
            }

            match self.link.poll_write(cx, self.running.len())? {
                Written::Yield => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Written::All => progress = true,
                Written::Nothing | Written::Blocked => {}
            }

            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Whether answers pile up for a client that does not read: more than
    /// [`HIGH_WATER`] in the write buffer, or command tasks at the limit of
    /// what they may queue. No new command starts meanwhile.
    fn backed_up(&self) -> bool {
        self.link.queued() >= HIGH_WATER || !self.outbox.backlog().has_room()
    }

    /// Handles the frames in the read buffer until answers back up (the
    /// rest stay for later, unread from the socket meanwhile, so a client
    /// that sends without reading pushes back on itself). Writes every
    /// [`WRITE_EVERY`] frames. `Ok(true)` if it handled any.
    fn take_frames(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let mut frames = 0usize;
        while !self.backed_up() {
            let Some(frame) = self.link.next_frame()? else {
                break;
            };
            self.on_frame(cx, frame)?;
            frames += 1;
            if frames % WRITE_EVERY == 0 {
                // Whatever the result, the driver's own write retries.
                self.link.poll_write(cx, 0)?;
            }
        }
        Ok(frames > 0)
    }

    /// Whether the idle timeout expired with no command in flight and none
    /// received since the last check.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(idle), Some(timeout)) = (&mut self.idle, self.config.idle_timeout) else {
            return false;
        };
        if self.draining.is_some() || idle.as_mut().poll(cx).is_pending() {
            return false;
        }
        if self.running.is_empty() && self.commands_seen == self.commands_at_idle_check {
            return true;
        }
        self.commands_at_idle_check = self.commands_seen;
        idle.as_mut().reset(Instant::now() + timeout);
        // Register the new deadline.
        let _ = idle.as_mut().poll(cx);
        false
    }

    /// Tells the client to send nothing new and starts the grace period.
    fn go_away(&mut self, reason: &str) {
        debug!(reason, running = self.running.len(), "going away");
        frame::put_go_away(self.link.out(), reason, self.peer.max_frame);
        self.draining = Some(Box::pin(tokio::time::sleep(self.config.shutdown_grace)));
    }

    /// The running call `call` names, if it still runs: frames of a call
    /// that ended (cancelled, say) go nowhere, even when the client has
    /// given its request id to a new call meanwhile.
    fn running(&mut self, call: CallRef) -> Option<&mut Running> {
        self.running.get_mut(&call.id).filter(|r| r.seq == call.seq)
    }

    fn on_out(&mut self, out: Out) {
        match out {
            Out::Frame {
                call,
                last,
                results,
                frame,
            } => {
                self.outbox.backlog().release(frame.len());
                let Some(r) = self.running(call) else {
                    return;
                };
                r.result_credit = r.result_credit.saturating_sub(results);
                if last {
                    self.running.remove(&call.id);
                }
                self.link.out().extend_from_slice(frame.as_slice());
            }
            Out::ArgCredit { call, n } => {
                if let Some(r) = self.running(call) {
                    r.arg_credit = r.arg_credit.saturating_add(n);
                    frame::put_credit(self.link.out(), call.id, n);
                }
            }
        }
    }

    fn on_frame(&mut self, cx: &mut Context<'_>, frame: Frame) -> Result<(), Error> {
        let protocol = |e: crate::wire::frame::FrameError| Error::protocol(e.to_string());
        match frame.kind {
            Kind::Command => self.on_command(cx, frame.id, frame.body)?,
            Kind::Cancel => {
                frame.expect_empty().map_err(protocol)?;
                if let Some(r) = self.running.remove(&frame.id) {
                    debug!(id = frame.id, "cancelled by the client");
                    r.stop();
                }
            }
            Kind::Item => {
                if let Some(r) = self.running.get_mut(&frame.id) {
                    let Some(args) = &r.args else {
                        return Err(Error::protocol(
                            "the client sent an item for a call that takes no (more) items",
                        ));
                    };
                    if r.arg_credit == 0 {
                        return Err(Error::protocol(
                            "the client sent a streamed item without credit",
                        ));
                    }
                    r.arg_credit -= 1;
                    let _ = args.send(frame.body);
                }
            }
            Kind::End => {
                frame.expect_empty().map_err(protocol)?;
                if let Some(r) = self.running.get_mut(&frame.id) {
                    r.args = None;
                }
            }
            Kind::Credit => {
                let n = frame.credit().map_err(protocol)?;
                let max = self.config.max_result_window;
                if let Some(r) = self.running.get_mut(&frame.id) {
                    if let Some(results) = &r.results {
                        // Credit is kept up to the server's own limit; a
                        // grant beyond it is dropped, not stored.
                        let grant = n.min(max.saturating_sub(r.result_credit));
                        r.result_credit += grant;
                        results.add_permits(grant as usize);
                    }
                }
            }
            Kind::Ping => self.link.pong(&frame)?,
            Kind::Pong => {
                frame.ping_payload().map_err(protocol)?;
            }
            Kind::Result | Kind::ResultLast | Kind::Error | Kind::GoAway => {
                return Err(Error::protocol(format!(
                    "the client sent a {:?} frame, which only servers send",
                    frame.kind
                )));
            }
        }
        Ok(())
    }

    fn reject(&mut self, id: u64, code: ErrorCode, message: &str) {
        frame::put_error(self.link.out(), id, code, message, self.peer.max_frame);
    }

    fn on_command(&mut self, cx: &mut Context<'_>, id: u64, body: Bytes) -> Result<(), Error> {
        if id == 0 {
            return Err(Error::protocol("the client used request id 0"));
        }
        if self.running.contains_key(&id) {
            return Err(Error::protocol(format!(
                "the client reused request id {id} while it was in flight"
            )));
        }
        let (head, payload) = command::parse(body).map_err(|e| Error::protocol(e.to_string()))?;
        self.commands_seen += 1;
        if self.draining.is_some() {
            self.reject(id, ErrorCode::ShuttingDown, "the server is shutting down");
            return Ok(());
        }
        let Some(info) = D::INFO.command(head.command) else {
            let message = format!(
                "unknown command id {} for service {}",
                head.command,
                D::INFO.name
            );
            self.reject(id, ErrorCode::UnknownCommand, &message);
            return Ok(());
        };
        if self.running.len() >= self.config.max_in_flight {
            let message = format!(
                "too many calls in flight (limit {})",
                self.config.max_in_flight
            );
            self.reject(id, ErrorCode::Overloaded, &message);
            return Ok(());
        }

        let (args_tx, args) = if info.kind.streams_arguments() {
            let (tx, items) = mpsc::unbounded_channel();
            (
                Some(tx),
                Some(ArgSource {
                    items,
                    window: self.config.stream_window,
                }),
            )
        } else {
            (None, None)
        };
        let results = info
            .kind
            .streams_results()
            .then(|| Arc::new(Semaphore::new(self.peer.stream_window as usize)));
        let call = CallRef {
            id,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let deadline = head.deadline.map(|d| Instant::now() + d);
        let context = CallContext {
            request_id: id,
            command: info,
            deadline,
            traceparent: head.traceparent,
            metadata: head.metadata,
            connection: self.peer.info.clone(),
        };
        let call_ref = call;
        let call = Call::new(
            call,
            payload,
            context,
            self.codec.clone(),
            self.outbox.clone(),
            args,
            results.clone(),
        );
        let running = Running {
            seq: call_ref.seq,
            abort: None,
            args: args_tx,
            arg_credit: self.config.stream_window,
            results,
            result_credit: self.peer.stream_window,
        };
        let run = D::dispatch(self.service.clone(), call);
        // The span only when a subscriber wants it: with tracing's `log`
        // feature on, even a span nobody records costs a few hundred
        // instructions, and its wrapper more on every poll.
        let span = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| tracing::debug_span!("cmdstream.command", command = info.name, id));
        // The command's future (several hundred bytes) goes to the heap once,
        // where it is made; after that only the box moves. On expiry of the
        // deadline the call is dropped unanswered and reports it to the client.
        let command: Command = match (deadline, span) {
            (None, None) => {
                self.start_recycling(cx, call_ref, running, run);
                return Ok(());
            }
            (None, Some(span)) => Box::pin(run.instrument(span)),
            (Some(at), None) => Box::pin(async move {
                drop(tokio::time::timeout_at(at, run).await);
            }),
            (Some(at), Some(span)) => Box::pin(
                async move { drop(tokio::time::timeout_at(at, run).await) }.instrument(span),
            ),
        };
        self.start(cx, call_ref, running, command);
        Ok(())
    }

    /// Runs a command. Unless configured otherwise, it is polled once right
    /// here: a command that completes without waiting (most unary ones) is
    /// answered without a task of its own, and without ever entering the
    /// map of running commands; one that has to wait continues in its own
    /// task, so it never holds up the connection while it waits.
    ///
    /// A command given a task at once starts only when its connection's
    /// queue has room: the commands of one read all start before any of
    /// them answers, and must not all answer into a full queue.
    fn start(
        &mut self,
        cx: &mut Context<'_>,
        call: CallRef,
        mut running: Running,
        mut command: Command,
    ) {
        if !self.config.run_ready_inline {
            let outbox = self.outbox.clone();
            let task = tokio::spawn(async move {
                outbox.room().await;
                command.await;
            });
            running.abort = Some(task.abort_handle());
            self.running.insert(call.id, running);
            return;
        }
        match self.poll_inline(cx, call, command.as_mut()) {
            Some(Poll::Ready(())) => self.inline_done(call, running),
            Some(Poll::Pending) => {
                running.abort = Some(tokio::spawn(command).abort_handle());
                self.inline_done(call, running);
            }
            None => self.inline_panicked(call.id),
        }
    }

    /// [`start`](Self::start) for a command with neither deadline nor span
    /// (most of them): its future is written into the box of the last such
    /// command that finished here, when there is one, instead of into a new
    /// allocation.
    fn start_recycling<F>(
        &mut self,
        cx: &mut Context<'_>,
        call: CallRef,
        mut running: Running,
        future: F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        if !self.config.run_ready_inline {
            return self.start(cx, call, running, Box::pin(future));
        }
        let recycled = self.recycled.take().map(|b| b.downcast::<Pin<Box<F>>>());
        let mut slot = match recycled {
            Some(Ok(mut slot)) => {
                // Drops the finished future in place and moves this one in.
                Pin::set(&mut *slot, future);
                slot
            }
            _ => Box::new(Box::pin(future)),
        };
        match self.poll_inline(cx, call, Pin::as_mut(&mut *slot)) {
            Some(Poll::Ready(())) => {
                self.recycled = Some(slot);
                self.inline_done(call, running);
            }
            Some(Poll::Pending) => {
                running.abort = Some(tokio::spawn(*slot).abort_handle());
                self.inline_done(call, running);
            }
            None => self.inline_panicked(call.id),
        }
    }

    /// Polls a command once on the connection's own thread; what it sends
    /// meanwhile is left in `self.inline`. `None` when it panicked.
    fn poll_inline(
        &mut self,
        cx: &mut Context<'_>,
        call: CallRef,
        command: Pin<&mut (dyn Future<Output = ()> + Send)>,
    ) -> Option<Poll<()>> {
        let mut collected = std::mem::take(&mut self.inline);
        let polled = outbox::collect_inline(&self.outbox, call, &mut collected, || {
            std::panic::catch_unwind(AssertUnwindSafe(|| command.poll(cx)))
        });
        self.inline = collected;
        polled.ok()
    }

    /// Writes what a command polled inline sent. A call that has not sent
    /// its last frame yet is entered as running, whether its command is now
    /// a task or finished: its `Call` may have been handed elsewhere (to a
    /// task, to another command) and answer later through the channel. A
    /// call that has, is not running as far as the client is concerned.
    fn inline_done(&mut self, call: CallRef, mut running: Running) {
        let mut collected = std::mem::take(&mut self.inline);
        self.link.out().extend_from_slice(&collected.frames);
        if !collected.ended {
            running.result_credit = running.result_credit.saturating_sub(collected.results);
            self.running.insert(call.id, running);
            for credit in collected.credits.drain(..) {
                self.on_out(credit);
            }
        }
        self.inline = collected;
    }

    /// A command panicked while polled inline. The panic hook has reported
    /// it; the client hears the same as from a command that panics in its
    /// own task, and nothing the command sent before.
    fn inline_panicked(&mut self, id: u64) {
        self.reject(
            id,
            ErrorCode::Internal,
            "the command panicked; see the server's log",
        );
    }
}

impl<IO, D, C> Drop for Connection<IO, D, C> {
    fn drop(&mut self) {
        // Commands of a closed connection have nobody to answer to; a call
        // handed elsewhere and waiting for room in the queue goes on to
        // find nobody there.
        for (_, r) in self.running.drain() {
            r.stop();
        }
        self.outbox.backlog().close();
    }
}
