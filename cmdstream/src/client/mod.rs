//! The client: one cheap, cloneable handle over one multiplexed connection.
//!
//! Generated clients wrap a [`Client`] and call its four methods, one per
//! command shape. Every clone shares the connection; any number of tasks may
//! call at once.

mod arg_credit;
mod arg_pump;
mod builder;
mod config;
mod connection;
mod driver;
mod message;
mod options;
mod result_stream;
mod settle;
mod shared;
mod state;
mod stream_sink;

use std::sync::Arc;

use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Semaphore};

pub use self::builder::ClientBuilder;
pub use self::options::CallOptions;
pub use self::result_stream::ResultStream;
pub use self::state::ConnectionState;

use self::connection::Connection;
use self::message::{Control, Reply, Request};
use self::stream_sink::StreamSink;
use crate::codec::{Codec, DefaultCodec};
use crate::conn::frame_buf::FrameBuf;
use crate::error::Error;
use crate::service::{CommandInfo, ServiceInfo};
use crate::wire::command::put_head;
use crate::wire::frame::{self, Kind};

/// A handle to one connection to a cmdstream server.
///
/// Cloning is cheap (one reference count) and every clone shares the one
/// connection, whose calls are multiplexed by request id. Dropping the last
/// handle closes the connection once the calls in flight are done.
///
/// Most code uses a generated client (`CalcClient`), which wraps this type.
///
/// # Errors
///
/// Every call returns [`Error`]: [`Error::ConnectionLost`] once the
/// connection is gone, [`Error::Timeout`] when a timeout expires, and the
/// server's verdict otherwise.
pub struct Client<C = DefaultCodec> {
    conn: Arc<Connection>,
    codec: C,
    options: CallOptions,
    default_timeout: Option<std::time::Duration>,
    service: &'static ServiceInfo,
}

impl<C: Codec> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            conn: self.conn.clone(),
            codec: self.codec.clone(),
            options: self.options.clone(),
            default_timeout: self.default_timeout,
            service: self.service,
        }
    }
}

impl<C> std::fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service.name)
            .field("options", &self.options)
            .field("state", &self.conn.state())
            .finish()
    }
}

impl Client<DefaultCodec> {
    /// Settings for a new client.
    pub fn builder() -> ClientBuilder<DefaultCodec> {
        ClientBuilder::default()
    }

    /// Connects with the default settings: TCP to a `"host:port"` or an
    /// address, a Unix socket to a path.
    ///
    /// # Errors
    ///
    /// See [`ClientBuilder::connect`].
    pub async fn connect(
        addr: impl crate::IntoEndpoint,
        service: &'static ServiceInfo,
    ) -> Result<Self, Error> {
        Client::builder().connect(addr, service).await
    }
}

impl<C: Codec> Client<C> {
    pub(crate) fn from_parts(
        conn: Arc<Connection>,
        codec: C,
        options: CallOptions,
        default_timeout: Option<std::time::Duration>,
        service: &'static ServiceInfo,
    ) -> Self {
        Client {
            conn,
            codec,
            options,
            default_timeout,
            service,
        }
    }

    /// A handle on the same connection whose calls use `options`, layered
    /// over this handle's own: what `options` sets replaces what this
    /// handle has (for metadata, key by key), the rest is kept (see
    /// [`CallOptions`], "Precedence").
    pub fn with_options(&self, options: CallOptions) -> Self {
        Client {
            options: self.options.layered(options),
            ..self.clone()
        }
    }

    /// The options this handle's calls use.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The service this client speaks to.
    pub fn service(&self) -> &'static ServiceInfo {
        self.service
    }

    /// Whether new calls fail at once: the server has gone away (they fail
    /// with [`Error::Unavailable`]) or the connection has closed (with
    /// [`Error::ConnectionLost`]). See [`state`](Self::state).
    pub fn is_closed(&self) -> bool {
        !self.conn.state().is_open()
    }

    /// What the connection can still do: open, draining after the server's
    /// go-away (calls in flight finish, new ones are refused), or closed.
    pub fn state(&self) -> ConnectionState {
        self.conn.state()
    }

    /// Closes the connection gracefully, for every handle: new calls, and
    /// calls still waiting to be sent (for a slot under the in-flight
    /// limit, say), fail at once with [`Error::ConnectionLost`] (not sent);
    /// calls in flight finish, then the connection closes. Returns once it
    /// has.
    pub async fn close(&self) {
        self.conn.close().await;
    }

    /// Calls a unary command: sends `args`, waits for one result.
    ///
    /// Dropping the returned future cancels the call on the server.
    ///
    /// # Errors
    ///
    /// See [`Client`].
    pub async fn unary<A, R>(&self, command: &'static CommandInfo, args: &A) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let id = self.conn.next_id();
        let frame = self.encode_command(id, command, args)?;
        let (tx, rx) = oneshot::channel();
        self.conn.send(Request {
            id,
            command: command.id,
            frame,
            reply: Reply::Once(tx),
            args: None,
        })?;
        let bytes = self.wait(id, command, rx).await?;
        Ok(self.codec.decode(&bytes)?)
    }

    /// Calls a server-streaming command: sends `args`, returns the stream of
    /// results. Errors (including an unknown command) arrive as the stream's
    /// last item.
    ///
    /// Dropping the stream before its end cancels the call on the server.
    ///
    /// # Errors
    ///
    /// Fails at once only when the arguments cannot be encoded or the
    /// connection is gone.
    pub fn server_stream<A, R>(
        &self,
        command: &'static CommandInfo,
        args: &A,
    ) -> Result<ResultStream<R, C>, Error>
    where
        A: Serialize + ?Sized,
    {
        let (id, rx) = self.open_stream(command, args, None)?;
        Ok(self.result_stream(id, command, rx, None))
    }

    /// Calls a client-streaming command: sends `args`, then every item of
    /// `items` (as fast as the server's credit allows), and waits for one
    /// result.
    ///
    /// # Errors
    ///
    /// See [`Client`]; an item that cannot be encoded fails the call with
    /// [`Error::Codec`].
    pub async fn client_stream<A, I, S, R>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        items: S,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
        R: DeserializeOwned,
    {
        let id = self.conn.next_id();
        let frame = self.encode_command(id, command, args)?;
        let (tx, rx) = oneshot::channel();
        let credit = Arc::new(Semaphore::new(0));
        self.conn.send(Request {
            id,
            command: command.id,
            frame,
            reply: Reply::Once(tx),
            args: Some(credit.clone()),
        })?;
        let _pump = self.spawn_pump(id, items, credit);
        let bytes = self.wait(id, command, rx).await?;
        Ok(self.codec.decode(&bytes)?)
    }

    /// Calls a bidirectional command: sends `args` and the items of `items`
    /// while results stream back.
    ///
    /// Dropping the stream before its end cancels the call on the server and
    /// stops sending items.
    ///
    /// # Errors
    ///
    /// As [`server_stream`](Self::server_stream).
    pub fn bidi<A, I, S, R>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        items: S,
    ) -> Result<ResultStream<R, C>, Error>
    where
        A: Serialize + ?Sized,
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        let credit = Arc::new(Semaphore::new(0));
        let (id, rx) = self.open_stream(command, args, Some(credit.clone()))?;
        let pump = self.spawn_pump(id, items, credit);
        Ok(self.result_stream(id, command, rx, Some(pump)))
    }

    fn open_stream<A: Serialize + ?Sized>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        credit: Option<Arc<Semaphore>>,
    ) -> Result<(u64, stream_sink::Events), Error> {
        let id = self.conn.next_id();
        let frame = self.encode_command(id, command, args)?;
        let (sink, rx) = StreamSink::new();
        self.conn.send(Request {
            id,
            command: command.id,
            frame,
            reply: Reply::Many(sink),
            args: credit,
        })?;
        Ok((id, rx))
    }

    fn result_stream<R>(
        &self,
        id: u64,
        command: &'static CommandInfo,
        events: stream_sink::Events,
        pump: Option<arg_pump::PumpGuard>,
    ) -> ResultStream<R, C> {
        ResultStream::new(
            id,
            events,
            self.conn.control.clone(),
            self.codec.clone(),
            result_stream::Window {
                initial: self.conn.shared.settled.our_window,
                max: self.conn.shared.settled.max_window,
            },
            self.timeout(command),
            pump,
        )
    }

    fn spawn_pump<I, S>(&self, id: u64, items: S, credit: Arc<Semaphore>) -> arg_pump::PumpGuard
    where
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
    {
        arg_pump::spawn(
            id,
            items,
            credit,
            self.conn.control.clone(),
            self.codec.clone(),
            self.conn.shared.clone(),
        )
    }

    /// The call's timeout: the most specific setting wins — the handle's
    /// options, then the command's default, then the client's.
    fn timeout(&self, command: &CommandInfo) -> Option<std::time::Duration> {
        match self.options.timeout {
            Some(set) => set,
            None => command.timeout.or(self.default_timeout),
        }
    }

    /// Encodes a whole COMMAND frame into a buffer of its own, so a failed
    /// encode leaves nothing behind.
    fn encode_command<A: Serialize + ?Sized>(
        &self,
        id: u64,
        command: &'static CommandInfo,
        args: &A,
    ) -> Result<FrameBuf, Error> {
        let frame = FrameBuf::encode(|buf| {
            let start = frame::begin(buf, Kind::Command, id);
            put_head(
                buf,
                command.id,
                self.timeout(command),
                self.options.traceparent.as_deref(),
                self.options.metadata.as_deref(),
            )?;
            self.codec.encode(args, buf)?;
            frame::finish(buf, start);
            Ok::<_, Error>(())
        })?;
        let (len, max) = (
            frame.len() - frame::LEN_SIZE,
            self.conn.shared.settled.server_max_frame,
        );
        if len > max {
            return Err(Error::FrameTooLarge { size: len, max });
        }
        Ok(frame)
    }

    /// Waits for a single result, cancelling the call if this future is
    /// dropped or the timeout expires first.
    async fn wait(
        &self,
        id: u64,
        command: &'static CommandInfo,
        rx: oneshot::Receiver<Result<bytes::Bytes, Error>>,
    ) -> Result<bytes::Bytes, Error> {
        let guard = CancelOnDrop {
            control: &self.conn.control,
            id,
            armed: true,
        };
        let result = match self.timeout(command) {
            None => rx.await,
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => return Err(Error::Timeout),
            },
        };
        guard.disarm();
        // The driver answers every call it took before it goes: an
        // unanswered one is treated as sent.
        result.unwrap_or_else(|_| {
            Err(Error::ConnectionLost {
                reason: "the connection closed".into(),
                sent: true,
            })
        })
    }
}

/// Sends CANCEL for a call whose caller stopped waiting.
struct CancelOnDrop<'a> {
    control: &'a mpsc::UnboundedSender<Control>,
    id: u64,
    armed: bool,
}

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.control.send(Control::Cancel(self.id));
        }
    }
}
