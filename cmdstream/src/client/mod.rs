//! The client: one cheap, cloneable handle over one multiplexed connection.
//!
//! Generated clients wrap a [`Client`] and call its four methods, one per
//! command shape. Every clone shares the connection; any number of tasks may
//! call at once.

mod arg_credit;
mod arg_pump;
mod breaker;
mod builder;
mod config;
mod connection;
mod dial;
mod driver;
mod group;
mod lease;
mod message;
mod options;
mod reconnect;
mod resend;
mod result_stream;
mod route;
mod send;
mod send_command;
mod settle;
mod shared;
mod state;
mod stream_sink;
mod streams;
mod waiting;
mod watch;

use std::future::Future;
use std::sync::Arc;

use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

pub use self::breaker::{BreakerState, CircuitBreaker};
pub use self::builder::ClientBuilder;
pub use self::group::{dns, Balance, Change, Dns, Group, MemberState};
pub use self::options::CallOptions;
pub use self::reconnect::backoff::Backoff;
pub use self::reconnect::Reconnect;
pub use self::result_stream::{NextResult, ResultStream};
pub use self::send_command::SendCommand;
pub use self::state::ConnectionState;
pub use self::watch::StateWatch;

use self::lease::Use;
use self::resend::{Deadline, Sends};
use self::route::Route;
use crate::codec::{Codec, DefaultCodec};
use crate::error::Error;
use crate::service::{CommandInfo, ServiceInfo};

/// A handle to one connection to a cmdstream server.
///
/// Cloning is cheap (one reference count) and every clone shares the one
/// connection, whose calls are multiplexed by request id. Dropping the last
/// handle closes the connection once the calls in flight are done.
///
/// Built with [`ClientBuilder::reconnect`], the handle keeps a connection
/// up through server restarts instead (see [`Reconnect`]).
///
/// Most code uses a generated client (`CalcClient`), which wraps this type.
///
/// # Errors
///
/// Every call returns [`Error`]: [`Error::ConnectionLost`] once the
/// connection is gone, [`Error::Timeout`] when a timeout expires, and the
/// server's verdict otherwise.
pub struct Client<C = DefaultCodec> {
    route: Route,
    codec: C,
    options: CallOptions,
    default_timeout: Option<std::time::Duration>,
    service: &'static ServiceInfo,
}

impl<C: Codec> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            route: self.route.clone(),
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
            .field("state", &self.route.state())
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
        route: Route,
        codec: C,
        options: CallOptions,
        default_timeout: Option<std::time::Duration>,
        service: &'static ServiceInfo,
    ) -> Self {
        Client {
            route,
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
    /// [`Error::ConnectionLost`]). A reconnecting client is closed only
    /// once it has given up; while it reconnects, calls wait. See
    /// [`state`](Self::state).
    pub fn is_closed(&self) -> bool {
        !matches!(
            self.route.state(),
            ConnectionState::Open | ConnectionState::Reconnecting { .. }
        )
    }

    /// What the connection can still do: open, draining after the server's
    /// go-away (calls in flight finish, new ones are refused), reconnecting
    /// (a [reconnecting](Reconnect) client, whose new calls wait), or
    /// closed.
    pub fn state(&self) -> ConnectionState {
        self.route.state()
    }

    /// The state now and each change after it (see [`StateWatch`]).
    pub fn watch_state(&self) -> StateWatch {
        self.route.watch()
    }

    /// The state of the client's [circuit breaker](CircuitBreaker), if it
    /// has one and is not a group (a group's members show theirs in
    /// [`members`](Self::members)).
    pub fn breaker(&self) -> Option<BreakerState> {
        self.route.breaker()
    }

    /// For a client over a [group](Group), each member as it is now: its
    /// endpoint, its connection's state, its calls in flight. Empty for a
    /// client of one connection.
    pub fn members(&self) -> Vec<MemberState> {
        match &self.route {
            Route::Group(attached) => attached.handle.shared.members(),
            _ => Vec::new(),
        }
    }

    /// Closes the connection gracefully, for every handle: new calls, and
    /// calls still waiting to be sent (for a slot under the in-flight
    /// limit, say), fail at once with [`Error::ConnectionLost`] (not sent);
    /// calls in flight finish, then the connection closes. Returns once it
    /// has. A reconnecting client stops reconnecting.
    pub async fn close(&self) {
        self.route.close().await
    }

    /// Calls a unary command: sends `args`, waits for one result.
    ///
    /// Dropping the returned future cancels the call on the server.
    ///
    /// # Errors
    ///
    /// See [`Client`].
    pub fn unary<'a, A, R>(
        &'a self,
        command: &'static CommandInfo,
        args: &'a A,
    ) -> impl Future<Output = Result<R, Error>> + 'a
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned + 'a,
    {
        self.__unary_owned(command, args, |result: R| result)
    }

    /// [`unary`](Self::unary) with arguments it owns, and the decoded
    /// result passed through `map`: what generated clients call, so that
    /// a method's future is this call's own.
    #[doc(hidden)]
    pub async fn __unary_owned<A, W, T>(
        &self,
        command: &'static CommandInfo,
        args: A,
        map: impl FnOnce(W) -> T,
    ) -> Result<T, Error>
    where
        A: Serialize,
        W: DeserializeOwned,
    {
        match &self.route {
            Route::Direct(conn) => {
                let bytes = self
                    .send_unary(conn, command, &args, self.timeout(command))
                    .await?;
                Ok(map(self.codec.decode(&bytes)?))
            }
            // Sent again as the rules of [`Reconnect`] allow. The first
            // send, on the connection up now, costs what a direct call
            // does: it is inline here, not a nested future; waiting for a
            // connection and sending again are boxed, off that path.
            routed => {
                let deadline = Deadline::after(self.timeout(command));
                let idempotent = self.options.idempotent.unwrap_or(command.idempotent);
                // Only what the wait needs is kept across it (not the
                // picked `Option`, the timeout's `Result` or the resend
                // state), so the future is little larger than a direct one.
                let sends = 'first: {
                    let Some(lease) = routed.pick(Use::Call) else {
                        break 'first Sends::new(idempotent);
                    };
                    let timeout = deadline.left()?;
                    let result = self.send_unary(&lease.conn, command, &args, timeout).await;
                    lease.record(&result);
                    let mut sends = Sends::new(idempotent);
                    if !sends.again(&result, &lease.conn) {
                        return Ok(map(self.codec.decode(&result?)?));
                    }
                    sends
                };
                let resent = self.unary_resent(routed, command, &args, deadline, sends);
                Ok(map(self.codec.decode(&Box::pin(resent).await?)?))
            }
        }
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
        self.open_stream::<A, R, (), arg_pump::NoItems>(command, args, None)
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
        // Not sent again: its items may have been taken already.
        let deadline = Deadline::after(self.timeout(command));
        let lease = match self.route.pick(Use::Call) {
            Some(lease) => lease,
            None => self.route.lease(deadline.at, Use::Call).await?,
        };
        let (conn, timeout) = (&*lease.conn, deadline.left()?);
        let credit = Arc::new(Semaphore::new(0));
        let waiting = self.send_answered_once(conn, command, args, timeout, Some(credit.clone()));
        let _pump = waiting
            .sent_id()
            .map(|id| self.spawn_pump(conn, id, items, credit));
        let result = waiting.await;
        lease.record(&result);
        Ok(self.codec.decode(&result?)?)
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
        self.open_stream(command, args, Some(items))
    }

    /// The call's timeout: the most specific setting wins — the handle's
    /// options, then the command's default, then the client's.
    fn timeout(&self, command: &CommandInfo) -> Option<std::time::Duration> {
        match self.options.timeout {
            Some(set) => set,
            None => command.timeout.or(self.default_timeout),
        }
    }
}
