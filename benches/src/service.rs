//! The cmdstream contender: a two-command service written by hand against
//! the runtime traits, the way `#[cmdstream::receiver]` would generate it.

use std::sync::Arc;

use cmdstream::codec::Codec;
use cmdstream::{
    Call, Client, CommandInfo, CommandKind, Dispatch, Error, ErrorCode, ResultStream, ServiceInfo,
};

/// Command id of `add(a: i64, b: i64) -> i64`.
pub(crate) const ADD: u32 = 1;
/// Command id of `count(n: u64) -> stream of u64` (0, 1, …, n − 1).
pub(crate) const COUNT: u32 = 2;

/// The service both sides share.
pub(crate) static INFO: ServiceInfo = ServiceInfo {
    name: "Bench",
    fingerprint: cmdstream::fingerprint(
        b"Bench v1: 1 add(i64,i64)->i64; 2 count(u64)->stream<u64>",
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
            other => call.fail(ErrorCode::UnknownCommand, format!("no command {other}")),
        }
    }
}

/// The typed client.
#[derive(Clone, Debug)]
pub(crate) struct BenchClient {
    inner: Client,
}

impl BenchClient {
    /// Connects with the default settings (default codec: bincode).
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> Result<Self, Error> {
        Ok(BenchClient {
            inner: Client::connect(addr, &INFO).await?,
        })
    }

    /// `a + b`, computed by the server.
    pub(crate) async fn add(&self, a: i64, b: i64) -> Result<i64, Error> {
        self.inner.unary(&INFO.commands[0], &(a, b)).await
    }

    /// The stream 0, 1, …, n − 1.
    pub(crate) fn count(
        &self,
        n: u64,
    ) -> Result<ResultStream<u64, cmdstream::codec::Bincode>, Error> {
        self.inner.server_stream(&INFO.commands[1], &(n,))
    }
}
