//! The cmdstream contender: a service written by hand against the runtime
//! traits, the way `#[cmdstream::receiver]` would generate it. The dispatch
//! is generic over the codec, so one service serves bincode, JSON and
//! postcard servers alike.

use std::sync::Arc;
use std::time::Duration;

use cmdstream::codec::Codec;
use cmdstream::{
    Call, Client, ClientBuilder, CommandInfo, CommandKind, Dispatch, Error, ErrorCode,
    ResultStream, ServiceInfo,
};

/// Command id of `add(a: i64, b: i64) -> i64`.
pub(crate) const ADD: u32 = 1;
/// Command id of `count(n: u64) -> stream of u64` (0, 1, …, n − 1).
pub(crate) const COUNT: u32 = 2;
/// Command id of `echo(data: Vec<u8>) -> Vec<u8>`.
pub(crate) const ECHO: u32 = 3;
/// Command id of `slow_add(a: i64, b: i64) -> i64`: `add` after
/// [`SLOW_DELAY`] on the server.
pub(crate) const SLOW_ADD: u32 = 4;

/// How long `slow_add` sleeps in its handler, in every contender.
pub(crate) const SLOW_DELAY: Duration = Duration::from_millis(30);

/// The service both sides share.
pub(crate) static INFO: ServiceInfo = ServiceInfo {
    name: "Bench",
    fingerprint: cmdstream::fingerprint(
        b"Bench v2: 1 add(i64,i64)->i64; 2 count(u64)->stream<u64>; \
          3 echo(bytes)->bytes; 4 slow_add(i64,i64)->i64",
    ),
    commands: &[
        CommandInfo {
            id: ADD,
            name: "add",
            kind: CommandKind::Unary,
            timeout: None,
            signature: cmdstream::fingerprint(b"add(i64,i64)->i64"),
        },
        CommandInfo {
            id: COUNT,
            name: "count",
            kind: CommandKind::ServerStream,
            timeout: None,
            signature: cmdstream::fingerprint(b"count(u64)->stream<u64>"),
        },
        CommandInfo {
            id: ECHO,
            name: "echo",
            kind: CommandKind::Unary,
            timeout: None,
            signature: cmdstream::fingerprint(b"echo(Vec<u8>)->Vec<u8>"),
        },
        CommandInfo {
            id: SLOW_ADD,
            name: "slow_add",
            kind: CommandKind::Unary,
            timeout: None,
            signature: cmdstream::fingerprint(b"slow_add(i64,i64)->i64"),
        },
    ],
};

/// The receiver and its dispatch.
pub(crate) struct BenchService;

impl Dispatch for BenchService {
    const INFO: &'static ServiceInfo = &INFO;

    async fn dispatch<C: Codec>(self: Arc<Self>, call: Call<C>) {
        match call.command().id {
            ADD => {
                let (a, b) = match call.args::<(i64, i64)>() {
                    Ok(v) => v,
                    Err(e) => return call.reject_args(e),
                };
                call.reply(&a.wrapping_add(b));
            }
            COUNT => {
                let (n,) = match call.args::<(u64,)>() {
                    Ok(v) => v,
                    Err(e) => return call.reject_args(e),
                };
                call.reply_stream(futures_util::stream::iter(0..n)).await;
            }
            ECHO => {
                let (data,) = match call.args::<(Vec<u8>,)>() {
                    Ok(v) => v,
                    Err(e) => return call.reject_args(e),
                };
                call.reply(&data);
            }
            SLOW_ADD => {
                let (a, b) = match call.args::<(i64, i64)>() {
                    Ok(v) => v,
                    Err(e) => return call.reject_args(e),
                };
                tokio::time::sleep(SLOW_DELAY).await;
                call.reply(&a.wrapping_add(b));
            }
            other => call.fail(ErrorCode::UnknownCommand, format!("no command {other}")),
        }
    }
}

/// The typed client, over any codec.
#[derive(Debug)]
pub(crate) struct BenchClient<C> {
    inner: Client<C>,
}

impl<C: Codec> Clone for BenchClient<C> {
    fn clone(&self) -> Self {
        BenchClient {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> BenchClient<C> {
    /// Connects with `codec` and every other setting at its default.
    pub(crate) async fn connect(addr: std::net::SocketAddr, codec: C) -> Result<Self, Error> {
        let builder: ClientBuilder<C> = Client::builder().codec(codec);
        Ok(BenchClient {
            inner: builder.connect(addr, &INFO).await?,
        })
    }

    /// `a + b`, computed by the server.
    pub(crate) async fn add(&self, a: i64, b: i64) -> Result<i64, Error> {
        self.inner.unary(&INFO.commands[0], &(a, b)).await
    }

    /// The stream 0, 1, …, n − 1.
    pub(crate) fn count(&self, n: u64) -> Result<ResultStream<u64, C>, Error> {
        self.inner.server_stream(&INFO.commands[1], &(n,))
    }

    /// `data`, sent back by the server.
    pub(crate) async fn echo(&self, data: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.inner.unary(&INFO.commands[2], &(data,)).await
    }

    /// `a + b`, after the server's delay.
    pub(crate) async fn slow_add(&self, a: i64, b: i64) -> Result<i64, Error> {
        self.inner.unary(&INFO.commands[3], &(a, b)).await
    }
}
