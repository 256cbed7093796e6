//! The tarpc contender: the same unary commands as a `#[tarpc::service]`,
//! over tarpc's serde transport (length-delimited frames, bincode) on TCP
//! with `TCP_NODELAY` on both sides.
//!
//! Settings are tarpc's defaults (up to 1000 requests in flight per
//! client, a pending-request buffer of 100): raising the buffer to 1024,
//! which tarpc's documentation suggests for throughput, made the pipelined
//! workload slower here (260–290k instead of 370–410k calls/s), so it is
//! left alone. The server spawns every request, as tarpc's documentation
//! shows.

use std::net::SocketAddr;

use futures_util::StreamExt;
use tarpc::client;
use tarpc::context;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio::net::{TcpListener, TcpStream};

use crate::service::SLOW_DELAY;
use crate::BenchError;

/// The service, as tarpc spells it.
#[tarpc::service]
pub(crate) trait TarpcBench {
    /// `a + b`.
    async fn add(a: i64, b: i64) -> i64;
    /// `data`, sent back.
    async fn echo(data: Vec<u8>) -> Vec<u8>;
    /// `a + b`, after the server's delay.
    async fn slow_add(a: i64, b: i64) -> i64;
}

/// The server's implementation.
#[derive(Clone, Copy)]
struct Handler;

impl TarpcBench for Handler {
    async fn add(self, _: context::Context, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn echo(self, _: context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn slow_add(self, _: context::Context, a: i64, b: i64) -> i64 {
        tokio::time::sleep(SLOW_DELAY).await;
        a.wrapping_add(b)
    }
}

impl From<client::RpcError> for BenchError {
    fn from(e: client::RpcError) -> Self {
        BenchError::new(format!("tarpc: {e}"))
    }
}

/// Accepts connections until the task is aborted; each connection's
/// requests run as tasks of their own.
pub(crate) async fn serve(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("tarpc: accept failed: {e}");
                return;
            }
        };
        if stream.set_nodelay(true).is_err() {
            continue;
        }
        let framed = Framed::new(stream, LengthDelimitedCodec::new());
        let transport = tarpc::serde_transport::new(framed, Bincode::default());
        let channel = BaseChannel::with_defaults(transport);
        tokio::spawn(
            channel
                .execute(Handler.serve())
                .for_each(|response| async move {
                    tokio::spawn(response);
                }),
        );
    }
}

/// A cloneable handle on one tarpc connection.
#[derive(Clone)]
pub(crate) struct TarpcClient {
    inner: TarpcBenchClient,
}

impl TarpcClient {
    /// Connects with `TCP_NODELAY` and spawns the client's dispatch task.
    pub(crate) async fn connect(addr: SocketAddr) -> Result<TarpcClient, BenchError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let framed = Framed::new(stream, LengthDelimitedCodec::new());
        let transport = tarpc::serde_transport::new(framed, Bincode::default());
        Ok(TarpcClient {
            inner: TarpcBenchClient::new(client::Config::default(), transport).spawn(),
        })
    }

    /// `a + b`, computed by the server.
    pub(crate) async fn add(&self, a: i64, b: i64) -> Result<i64, BenchError> {
        Ok(self.inner.add(context::current(), a, b).await?)
    }

    /// `data`, sent back by the server.
    pub(crate) async fn echo(&self, data: Vec<u8>) -> Result<Vec<u8>, BenchError> {
        Ok(self.inner.echo(context::current(), data).await?)
    }

    /// `a + b`, after the server's delay.
    pub(crate) async fn slow_add(&self, a: i64, b: i64) -> Result<i64, BenchError> {
        Ok(self.inner.slow_add(context::current(), a, b).await?)
    }
}
