//! Running a command: polled once on its connection first, so that one
//! that completes at once costs no task (and its future's box is reused
//! for the next); given a task of its own once it has to wait.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Command, Driver, Running};
use crate::codec::Codec;
use crate::error::ErrorCode;
use crate::server::dispatch::Dispatch;
use crate::server::outbox::{CallRef, Sent};
use crate::server::unary::{Ran, Step};

/// Frames collected from inline polls go to the write buffer at the end of
/// the batch, or as soon as they hold this many bytes: the write buffer's
/// high-water mark then sees them in time to stop the batch.
const FLUSH_AT: usize = 64 * 1024;

impl<IO, D, C> Driver<IO, D, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Dispatch,
    C: Codec,
{
    /// Runs a command. Unless configured otherwise, it is polled once right
    /// here: a command that completes without waiting (most unary ones) is
    /// answered without a task of its own, and without ever entering the
    /// map of running commands; one that has to wait continues in its own
    /// task, so it never holds up the connection while it waits.
    ///
    /// A command given a task at once starts only when its connection's
    /// queue has room: the commands of one read all start before any of
    /// them answers, and must not all answer into a full queue.
    pub(super) fn start(
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
            Some((Poll::Ready(()), sent)) => self.inline_done(call, running, sent),
            Some((Poll::Pending, sent)) => {
                running.abort = Some(tokio::spawn(command).abort_handle());
                self.inline_done(call, running, sent);
            }
            None => self.inline_panicked(call.id, running),
        }
    }

    /// [`start`](Self::start) for a command with neither deadline nor span
    /// (most of them): its future is written into the box of the last such
    /// command that finished here, when there is one, instead of into a new
    /// allocation.
    ///
    /// The future is made by `make` right where it goes, and this function
    /// is inlined into its caller: handed over by value, the future (some
    /// 600 bytes for a small service) would be copied twice per call.
    #[inline(always)]
    pub(super) fn start_recycling<F>(
        &mut self,
        cx: &mut Context<'_>,
        call: CallRef,
        mut running: Running,
        make: impl FnOnce() -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        if !self.config.run_ready_inline {
            return self.start(cx, call, running, Box::pin(make()));
        }
        let recycled = self.recycled.take().map(|b| b.downcast::<Pin<Box<F>>>());
        let mut slot = match recycled {
            Some(Ok(mut slot)) => {
                // Drops the finished future in place and moves this one in.
                Pin::set(&mut *slot, make());
                slot
            }
            _ => Box::new(Box::pin(make())),
        };
        match self.poll_inline(cx, call, Pin::as_mut(&mut *slot)) {
            Some((Poll::Ready(()), sent)) => {
                self.recycled = Some(slot);
                self.inline_done(call, running, sent);
            }
            Some((Poll::Pending, sent)) => {
                running.abort = Some(tokio::spawn(*slot).abort_handle());
                self.inline_done(call, running, sent);
            }
            None => self.inline_panicked(call.id, running),
        }
    }

    /// Polls a command once on the connection's own thread, with what it
    /// sends meanwhile collected (see [`Outbox::poll_collected`]; the
    /// collection opens at the first such poll of a batch). `None` when it
    /// panicked: what it sent is dropped.
    ///
    /// [`Outbox::poll_collected`]: crate::server::outbox::Outbox::poll_collected
    #[inline]
    fn poll_inline(
        &mut self,
        cx: &mut Context<'_>,
        call: CallRef,
        command: Pin<&mut (dyn Future<Output = ()> + Send)>,
    ) -> Option<(Poll<()>, Sent)> {
        let (polled, sent) = self.outbox.poll_collected(&mut self.collecting, call, || {
            std::panic::catch_unwind(AssertUnwindSafe(|| command.poll(cx)))
        });
        match polled {
            Ok(poll) => Some((poll, sent)),
            Err(_) => {
                self.outbox.discard(&mut self.collecting, &sent);
                None
            }
        }
    }

    /// Books what a command polled inline sent. A call that has not sent
    /// its last frame yet is entered as running, whether its command is now
    /// a task or finished: its `Call` may have been handed elsewhere (to a
    /// task, to another command) and answer later through the channel. A
    /// call that has, is not running as far as the client is concerned.
    /// Its frames wait in the collection for the end of the batch, unless
    /// the collection has grown large.
    #[inline]
    fn inline_done(&mut self, call: CallRef, mut running: Running, sent: Sent) {
        if !sent.ended {
            running.result_credit = running.result_credit.saturating_sub(sent.results);
            self.running.insert(call.id, running);
            for credit in sent.credits {
                self.on_out(credit);
            }
        }
        if sent.held >= FLUSH_AT {
            if let Some(collecting) = &mut self.collecting {
                collecting.flush(self.link.out_frames(collecting.answers()));
            }
        }
    }

    /// Books how a unary command run without a `Call` went (see
    /// [`Unary`](crate::server::unary::Unary)).
    #[inline]
    pub(super) fn ran(&mut self, call: CallRef, ran: Ran) {
        let running = |abort| Running {
            seq: call.seq,
            abort,
            args: None,
            arg_credit: 0,
            results: None,
            result_credit: 0,
        };
        match ran.0 {
            Step::Answered => {
                self.link.out_frames(1);
            }
            Step::Waiting(abort) => {
                self.running.insert(call.id, running(Some(abort)));
            }
            Step::Panicked => self.inline_panicked(call.id, running(None)),
        }
    }

    /// A command panicked while polled inline. The panic hook has reported
    /// it; the client hears the same as from a command that panics in its
    /// own task, and nothing the command sent before. Whatever the command
    /// handed its `Call` to before it panicked finds the call over: its
    /// result stream's credit closed, its items ended.
    fn inline_panicked(&mut self, id: u64, running: Running) {
        running.stop();
        self.reject(
            id,
            ErrorCode::Internal,
            "the command panicked; see the server's log",
        );
    }
}
