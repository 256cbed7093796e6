//! OpenTelemetry across the wire (feature `otel`): one trace from the
//! caller's span through the client's call span and the server's command
//! span to a span the receiver opens itself, for every call shape, over a
//! plain client, a reconnecting one and a group; with the attributes of
//! OpenTelemetry's RPC conventions. Spans are collected by the SDK's
//! in-memory exporter.

use std::net::SocketAddr;
use std::time::Duration;

use cmdstream::{Client, Group, Reconnect, Server, Stream};
use futures_util::{stream, StreamExt};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[cmdstream::receiver]
trait Traced {
    /// Answers at once: polled inline on the connection.
    async fn quick(&self, n: u32) -> u32;
    /// Waits first: runs in a task of its own.
    async fn slow(&self, n: u32) -> u32;
    async fn count(&self, n: u32) -> impl Stream<Item = u32> + Send;
    async fn sum(&self, items: impl Stream<Item = u32> + Send) -> u32;
    async fn echo(&self, items: impl Stream<Item = u32> + Send) -> impl Stream<Item = u32> + Send;
    async fn stall(&self) -> u32;
}

struct Worker;

impl Traced for Worker {
    async fn quick(&self, n: u32) -> u32 {
        tracing::info_span!("receiver.quick").in_scope(|| n + 1)
    }

    async fn slow(&self, n: u32) -> u32 {
        async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            n + 1
        }
        .instrument(tracing::info_span!("receiver.slow"))
        .await
    }

    async fn count(&self, n: u32) -> impl Stream<Item = u32> + Send {
        tracing::info_span!("receiver.count").in_scope(|| stream::iter(0..n))
    }

    async fn sum(&self, items: impl Stream<Item = u32> + Send) -> u32 {
        items
            .fold(0, |a, b| async move { a + b })
            .instrument(tracing::info_span!("receiver.sum"))
            .await
    }

    async fn echo(&self, items: impl Stream<Item = u32> + Send) -> impl Stream<Item = u32> + Send {
        tracing::info_span!("receiver.echo").in_scope(|| items)
    }

    async fn stall(&self) -> u32 {
        std::future::pending()
            .instrument(tracing::info_span!("receiver.stall"))
            .await
    }
}

/// An OpenTelemetry pipeline into memory, installed for this thread (the
/// tests' runtime runs client and server on it).
struct Otel {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Otel {
    fn install() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tests")));
        let guard = tracing::subscriber::set_default(subscriber);
        Otel {
            exporter,
            _provider: provider,
            _guard: guard,
        }
    }

    /// The finished spans named `name`.
    fn named(&self, name: &str) -> Vec<SpanData> {
        let spans = self.exporter.get_finished_spans().unwrap();
        spans.into_iter().filter(|s| s.name == name).collect()
    }

    /// Waits for `count` finished spans named `name` (the server's span
    /// ends just after its answer leaves).
    async fn wait_for(&self, name: &str, count: usize) -> Vec<SpanData> {
        cmdstream_tests::eventually(&format!("{count} spans named {name}"), || {
            self.named(name).len() >= count
        })
        .await;
        self.named(name)
    }

    fn reset(&self) {
        self.exporter.reset();
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_else(|| panic!("span {} has no {key}: {:?}", span.name, span.attributes))
}

fn number(span: &SpanData, key: &str) -> i64 {
    // Unsigned numbers may arrive as text (those past i64's range must).
    match attr(span, key) {
        Some(Value::I64(n)) => *n,
        Some(Value::String(s)) if s.as_str().parse::<i64>().is_ok() => s.as_str().parse().unwrap(),
        other => panic!("span {} has {key} = {other:?}", span.name),
    }
}

async fn serve() -> (SocketAddr, Server<TracedServer<Worker>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(TracedServer::new(Worker));
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    (addr, server)
}

/// Checks the chain for one call of `method`: the caller's root span, the
/// client's span under it, the server's under that (its parent remote),
/// the receiver's under the server's; all one trace.
async fn check_chain(otel: &Otel, method: &str, receiver: &str) {
    let path = format!("Traced/{method}");
    let root = otel.wait_for("caller", 1).await.remove(0);
    let spans = otel.wait_for(&path, 2).await;
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    let inner = otel.wait_for(receiver, 1).await.remove(0);

    let trace: TraceId = root.span_context.trace_id();
    for span in [client, server, &inner] {
        assert_eq!(
            span.span_context.trace_id(),
            trace,
            "{} left the trace",
            span.name
        );
    }
    assert_eq!(client.parent_span_id, root.span_context.span_id());
    assert_eq!(server.parent_span_id, client.span_context.span_id());
    assert!(
        server.parent_span_is_remote,
        "the server's parent came over the wire"
    );
    assert_eq!(inner.parent_span_id, server.span_context.span_id());

    for span in [client, server] {
        assert_eq!(text(span, "rpc.system.name"), "cmdstream");
        assert_eq!(text(span, "rpc.method"), path);
        assert_eq!(text(span, "rpc.response.status_code"), "OK");
        assert_eq!(text(span, "cmdstream.outcome"), "ok");
        assert_eq!(text(span, "cmdstream.codec"), "bincode");
        assert!(number(span, "cmdstream.request_id") > 0);
        assert!(
            number(span, "cmdstream.bytes_in") > 0,
            "{:?}",
            span.attributes
        );
        assert!(
            number(span, "cmdstream.bytes_out") > 0,
            "{:?}",
            span.attributes
        );
        assert!(number(span, "cmdstream.duration_us") >= 0);
        assert_ne!(span.status, Status::error(""));
    }
    assert_eq!(text(client, "server.address"), "127.0.0.1");
    assert!(number(client, "server.port") > 0);
    assert_eq!(text(server, "network.peer.address"), "127.0.0.1");
    assert_eq!(text(server, "network.transport"), "tcp");
    assert_eq!(
        number(client, "cmdstream.request_id"),
        number(server, "cmdstream.request_id")
    );
}

/// One call of each shape, each checked and the spans cleared after.
async fn every_shape(otel: &Otel, client: &TracedClient) {
    async {
        assert_eq!(client.quick(1).await.unwrap(), 2);
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    check_chain(otel, "quick", "receiver.quick").await;
    otel.reset();

    async {
        assert_eq!(client.slow(1).await.unwrap(), 2);
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    check_chain(otel, "slow", "receiver.slow").await;
    otel.reset();

    async {
        let items: Vec<u32> = client
            .count(3)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(items, [0, 1, 2]);
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    check_chain(otel, "count", "receiver.count").await;
    otel.reset();

    async {
        let total = client.sum(stream::iter([1, 2, 3])).await.unwrap();
        assert_eq!(total, 6);
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    check_chain(otel, "sum", "receiver.sum").await;
    otel.reset();

    async {
        let items: Vec<u32> = client
            .echo(stream::iter([7, 8]))
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(items, [7, 8]);
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    check_chain(otel, "echo", "receiver.echo").await;
    otel.reset();
}

#[tokio::test]
async fn one_trace_from_caller_to_receiver_for_every_call_shape() {
    let otel = Otel::install();
    let (addr, _server) = serve().await;
    let client = TracedClient::connect(addr).await.unwrap();
    every_shape(&otel, &client).await;
}

#[tokio::test]
async fn the_trace_crosses_a_reconnecting_client_and_a_group() {
    let otel = Otel::install();
    let (addr, _server) = serve().await;
    let reconnecting = Client::builder()
        .reconnect(Reconnect::new())
        .connect(addr, TracedClient::INFO)
        .await
        .unwrap();
    every_shape(&otel, &TracedClient::from(reconnecting)).await;

    let (other, _second) = serve().await;
    let group = Client::builder()
        .connect_group(Group::new(), [addr, other], TracedClient::INFO)
        .await
        .unwrap();
    every_shape(&otel, &TracedClient::from(group)).await;
}

#[tokio::test]
async fn a_call_without_a_caller_span_starts_its_own_trace() {
    let otel = Otel::install();
    let (addr, _server) = serve().await;
    let client = TracedClient::connect(addr).await.unwrap();
    client.quick(1).await.unwrap();
    let spans = otel.wait_for("Traced/quick", 2).await;
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    let server_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(client_span.parent_span_id, SpanId::INVALID);
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert_eq!(
        server_span.span_context.trace_id(),
        client_span.span_context.trace_id()
    );
}

#[tokio::test]
async fn a_timed_out_call_is_an_error_on_both_sides() {
    let otel = Otel::install();
    let (addr, _server) = serve().await;
    let client = TracedClient::connect(addr)
        .await
        .unwrap()
        .with_options(cmdstream::CallOptions::new().timeout(Duration::from_millis(50)));
    assert!(matches!(
        client.stall().await,
        Err(cmdstream::Error::Timeout)
    ));
    let spans = otel.wait_for("Traced/stall", 2).await;
    for span in &spans {
        assert_eq!(
            text(span, "cmdstream.outcome"),
            "timeout",
            "{:?}",
            span.span_kind
        );
        assert_eq!(text(span, "error.type"), "timeout");
        assert!(
            matches!(span.status, Status::Error { .. }),
            "{:?}",
            span.status
        );
    }
    let stalled = otel.wait_for("receiver.stall", 1).await.remove(0);
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(stalled.parent_span_id, server.span_context.span_id());
}

#[tokio::test]
async fn a_traceparent_set_by_hand_is_sent_as_it_is() {
    let otel = Otel::install();
    let (addr, _server) = serve().await;
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let client = TracedClient::connect(addr)
        .await
        .unwrap()
        .with_options(cmdstream::CallOptions::new().traceparent(parent));
    client.quick(1).await.unwrap();
    let spans = otel.wait_for("Traced/quick", 2).await;
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(
        server.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    assert_eq!(
        server.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
}
