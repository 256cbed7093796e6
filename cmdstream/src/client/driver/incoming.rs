//! What the server sends a client connection, routed a slice of a read at
//! a time: results handed to their callers by request id (a stream's runs
//! of results gathered per slice), errors, credit for argument streams,
//! ping and pong, go-away.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use super::{Driver, Pending, State, ROUTE_EVERY};
use crate::client::message::Reply;
use crate::client::stream_sink::Chunk;
use crate::error::{Error, ErrorCode, RemoteError};
use crate::wire::frame::{ErrorBody, Frame, Kind};
use crate::wire::results::{Incoming, Results};

impl<IO: AsyncRead + AsyncWrite + Unpin> Driver<IO> {
    /// Routes the frames of the last read, at most [`ROUTE_EVERY`] of them
    /// (a stream's run counts as one); `unrouted` says whether it stopped
    /// short.
    pub(super) fn route_read(&mut self) -> Result<(), Error> {
        self.unrouted = false;
        let mut routed = 0;
        while let Some(incoming) = self.link.next_incoming()? {
            match incoming {
                Incoming::Frame(frame) => self.on_frame(frame)?,
                Incoming::Results(results) => self.on_results(results)?,
            }
            routed += 1;
            if routed == ROUTE_EVERY {
                self.unrouted = true;
                break;
            }
        }
        self.flush_streams();
        Ok(())
    }

    pub(super) fn on_frame(&mut self, frame: Frame) -> Result<(), Error> {
        match frame.kind {
            Kind::ResultLast => {
                if let Some(p) = self.pending.remove(&frame.id) {
                    p.close_args();
                    self.woke();
                    match p.reply {
                        Reply::Once(tx) => drop(tx.send(Ok(frame.body))),
                        Reply::Many(mut sink) => {
                            sink.push(Chunk::One(frame.body));
                            sink.end();
                        }
                    }
                }
            }
            // Read as runs (`on_results`), never as single frames.
            Kind::Result => return Err(Error::protocol("a RESULT frame outside a run")),
            Kind::End => {
                frame.expect_empty()?;
                if let Some(p) = self.pending.remove(&frame.id) {
                    p.close_args();
                    self.woke();
                    match p.reply {
                        Reply::Many(sink) => sink.end(),
                        Reply::Once(tx) => drop(tx.send(Err(Error::protocol(
                            "the server ended a single-result call without a result",
                        )))),
                    }
                }
            }
            Kind::Error => {
                let error = frame.error()?;
                if let Some(p) = self.pending.remove(&frame.id) {
                    p.close_args();
                    self.woke();
                    p.reply.fail(remote_error(error, p.command));
                }
            }
            Kind::Credit => {
                let n = frame.credit()?;
                if let Some(p) = self.pending.get_mut(&frame.id) {
                    if let Some(args) = &mut p.args {
                        // Usable up to the client's own limit; the rest is
                        // held until items spend what is usable.
                        args.permits.add_permits(args.credit.grant(n) as usize);
                    }
                }
            }
            Kind::Ping | Kind::Pong => self.link.ping_or_pong(&frame)?,
            Kind::GoAway => {
                let reason = String::from_utf8_lossy(&frame.body).into_owned();
                info!(%reason, "the server is going away");
                self.shared.go_away(reason.into());
                if self.state == State::Open {
                    self.state = State::GoingAway;
                }
            }
            Kind::Command | Kind::Cancel | Kind::Item => {
                return Err(Error::protocol(format!(
                    "the server sent a {:?} frame, which only clients send",
                    frame.kind
                )));
            }
        }
        Ok(())
    }

    /// Results of a stream: consecutive RESULT frames of one call.
    pub(super) fn on_results(&mut self, results: Results) -> Result<(), Error> {
        let id = results.id();
        let Some(p) = self.pending.get_mut(&id) else {
            return Ok(());
        };
        let Reply::Many(sink) = &mut p.reply else {
            return Err(Error::protocol(
                "the server streamed results to a single-result call",
            ));
        };
        if p.result_credit < results.count() {
            return Err(Error::protocol(
                "the server sent a streamed result without credit",
            ));
        }
        p.result_credit -= results.count();
        if sink.push(Chunk::Run(results)) {
            self.to_flush.push(id);
        }
        Ok(())
    }

    /// Hands every stream the results this read brought it, one message
    /// per stream.
    pub(super) fn flush_streams(&mut self) {
        for id in self.to_flush.drain(..) {
            if let Some(Pending {
                reply: Reply::Many(sink),
                ..
            }) = self.pending.get_mut(&id)
            {
                sink.flush();
            }
        }
    }
}

/// The error a caller sees for an ERROR frame.
fn remote_error(error: ErrorBody, command: u32) -> Error {
    match (error.code, error.too_large) {
        (ErrorCode::UnknownCommand, _) => Error::UnknownCommand { id: command },
        (ErrorCode::DeadlineExceeded, _) => Error::Timeout,
        (ErrorCode::Overloaded | ErrorCode::ShuttingDown, _) => Error::unavailable(error.message),
        (ErrorCode::FrameTooLarge, Some((size, max))) => Error::FrameTooLarge {
            size: size as usize,
            max: max as usize,
        },
        (code, _) => Error::Remote(RemoteError {
            code,
            message: error.message.into(),
        }),
    }
}
