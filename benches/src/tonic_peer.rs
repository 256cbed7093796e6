//! The tonic contender: the same commands as a gRPC service `bench.Bench`,
//! written by hand in the shape tonic's code generator gives (a routing
//! `Service` over `tonic::server::Grpc` with prost messages on the server,
//! `tonic::client::Grpc` over a `Channel` on the client), so nothing is
//! generated at build time.
//!
//! Settings are tonic's defaults (HTTP/2, no limit on concurrent streams,
//! `Channel` buffer of 1024 requests), with `TCP_NODELAY` set explicitly
//! on both sides. The handlers are plain futures, not `async_trait` boxes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, Stream};
use tonic::codegen::http::{self, uri::PathAndQuery};
use tonic::codegen::{GrpcMethod, Service};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::service::SLOW_DELAY;
use crate::BenchError;

/// `add` and `slow_add` arguments.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct AddRequest {
    #[prost(int64, tag = "1")]
    pub(crate) a: i64,
    #[prost(int64, tag = "2")]
    pub(crate) b: i64,
}

/// `add` and `slow_add` result.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct AddReply {
    #[prost(int64, tag = "1")]
    pub(crate) sum: i64,
}

/// `echo` argument and result.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EchoMessage {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) data: Vec<u8>,
}

/// `count` argument.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct CountRequest {
    #[prost(uint64, tag = "1")]
    pub(crate) n: u64,
}

/// One `count` item.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct CountItem {
    #[prost(uint64, tag = "1")]
    pub(crate) value: u64,
}

const SERVICE: &str = "bench.Bench";
const ADD: &str = "/bench.Bench/Add";
const ECHO: &str = "/bench.Bench/Echo";
const SLOW_ADD: &str = "/bench.Bench/SlowAdd";
const COUNT: &str = "/bench.Bench/Count";

impl From<Status> for BenchError {
    fn from(s: Status) -> Self {
        BenchError::new(format!("tonic: {s}"))
    }
}

impl From<tonic::transport::Error> for BenchError {
    fn from(e: tonic::transport::Error) -> Self {
        BenchError::new(format!("tonic transport: {e}"))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type CountStream = Pin<Box<dyn Stream<Item = Result<CountItem, Status>> + Send + 'static>>;

/// `add`: answers at once.
struct AddSvc;

impl Service<Request<AddRequest>> for AddSvc {
    type Response = Response<AddReply>;
    type Error = Status;
    type Future = std::future::Ready<Result<Response<AddReply>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<AddRequest>) -> Self::Future {
        let AddRequest { a, b } = req.into_inner();
        std::future::ready(Ok(Response::new(AddReply {
            sum: a.wrapping_add(b),
        })))
    }
}

/// `echo`: answers at once with its argument.
struct EchoSvc;

impl Service<Request<EchoMessage>> for EchoSvc {
    type Response = Response<EchoMessage>;
    type Error = Status;
    type Future = std::future::Ready<Result<Response<EchoMessage>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoMessage>) -> Self::Future {
        std::future::ready(Ok(Response::new(req.into_inner())))
    }
}

/// `slow_add`: answers after the delay.
struct SlowAddSvc;

impl Service<Request<AddRequest>> for SlowAddSvc {
    type Response = Response<AddReply>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<AddReply>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<AddRequest>) -> Self::Future {
        let AddRequest { a, b } = req.into_inner();
        Box::pin(async move {
            tokio::time::sleep(SLOW_DELAY).await;
            Ok(Response::new(AddReply {
                sum: a.wrapping_add(b),
            }))
        })
    }
}

/// `count`: the stream 0, 1, …, n − 1.
struct CountSvc;

impl Service<Request<CountRequest>> for CountSvc {
    type Response = Response<CountStream>;
    type Error = Status;
    type Future = std::future::Ready<Result<Response<CountStream>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<CountRequest>) -> Self::Future {
        let n = req.into_inner().n;
        let items: CountStream =
            Box::pin(stream::iter((0..n).map(|value| Ok(CountItem { value }))));
        std::future::ready(Ok(Response::new(items)))
    }
}

/// The server: routes each request by its path, as generated servers do.
#[derive(Clone, Copy)]
struct BenchGrpc;

impl Service<http::Request<tonic::body::Body>> for BenchGrpc {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        match req.uri().path() {
            ADD => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(AddSvc, req).await)
            }),
            ECHO => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(EchoSvc, req).await)
            }),
            SLOW_ADD => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(SlowAddSvc, req).await)
            }),
            COUNT => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.server_streaming(CountSvc, req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

/// Serves on `listener` until `stop` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()>,
) -> Result<(), BenchError> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .serve_with_incoming_shutdown(BenchGrpc, incoming, stop)
        .await?;
    Ok(())
}

/// [`serve`], over TLS with `identity` (certificate chain and key, PEM).
pub(crate) async fn serve_tls(
    listener: tokio::net::TcpListener,
    identity: (&[u8], &[u8]),
    stop: impl Future<Output = ()>,
) -> Result<(), BenchError> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(identity.0, identity.1));
    tonic::transport::Server::builder()
        .tls_config(tls)?
        .tcp_nodelay(true)
        .serve_with_incoming_shutdown(BenchGrpc, incoming, stop)
        .await?;
    Ok(())
}

/// One tonic client handle. Calls take `&mut self`, as with generated
/// clients: each task clones the handle once and calls on its clone.
#[derive(Clone)]
pub(crate) struct TonicClient {
    inner: tonic::client::Grpc<Channel>,
}

impl TonicClient {
    /// Opens one HTTP/2 connection with `TCP_NODELAY`.
    pub(crate) async fn connect(addr: SocketAddr) -> Result<TonicClient, BenchError> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(TonicClient {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    /// Opens one HTTP/2 connection over TLS to `localhost`, trusting
    /// `ca_pem`.
    pub(crate) async fn connect_tls(
        addr: SocketAddr,
        ca_pem: &[u8],
    ) -> Result<TonicClient, BenchError> {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://localhost:{}", addr.port()))?
            .tls_config(tls)?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(TonicClient {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    async fn ready(&mut self) -> Result<(), BenchError> {
        self.inner
            .ready()
            .await
            .map_err(|e| BenchError::new(format!("tonic: service was not ready: {e}")))
    }

    async fn add_at(
        &mut self,
        path: &'static str,
        method: &'static str,
        a: i64,
        b: i64,
    ) -> Result<i64, BenchError> {
        self.ready().await?;
        let mut req = Request::new(AddRequest { a, b });
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE, method));
        let reply: Response<AddReply> = self
            .inner
            .unary(req, PathAndQuery::from_static(path), ProstCodec::default())
            .await?;
        Ok(reply.into_inner().sum)
    }

    /// `a + b`, computed by the server.
    pub(crate) async fn add(&mut self, a: i64, b: i64) -> Result<i64, BenchError> {
        self.add_at(ADD, "Add", a, b).await
    }

    /// `a + b`, after the server's delay.
    pub(crate) async fn slow_add(&mut self, a: i64, b: i64) -> Result<i64, BenchError> {
        self.add_at(SLOW_ADD, "SlowAdd", a, b).await
    }

    /// `data`, sent back by the server.
    pub(crate) async fn echo(&mut self, data: Vec<u8>) -> Result<Vec<u8>, BenchError> {
        self.ready().await?;
        let mut req = Request::new(EchoMessage { data });
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "Echo"));
        let reply: Response<EchoMessage> = self
            .inner
            .unary(req, PathAndQuery::from_static(ECHO), ProstCodec::default())
            .await?;
        Ok(reply.into_inner().data)
    }

    /// The stream 0, 1, …, n − 1.
    pub(crate) async fn count(&mut self, n: u64) -> Result<Streaming<CountItem>, BenchError> {
        self.ready().await?;
        let mut req = Request::new(CountRequest { n });
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "Count"));
        let reply = self
            .inner
            .server_streaming(req, PathAndQuery::from_static(COUNT), ProstCodec::default())
            .await?;
        Ok(reply.into_inner())
    }
}
