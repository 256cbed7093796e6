//! Seeing inside: one call traced from the caller through the client and
//! the server to the receiver's own span (OpenTelemetry, feature `otel`),
//! and the metrics in Prometheus's text format (feature `metrics`).
//!
//! Run it with `cargo run --example observability`.
//!
//! The spans are tracing's; `tracing-opentelemetry` turns them into
//! OpenTelemetry spans. Here they are kept in memory so the example needs
//! nothing else; a real service hands them to an exporter (OTLP, say)
//! instead. Likewise the Prometheus recorder is only rendered here; a real
//! service serves `render()` on its metrics endpoint.

use std::collections::HashMap;
use std::time::Duration;

use cmdstream::Server;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[cmdstream::receiver]
trait Inventory {
    /// How many of `item` are in stock.
    async fn stock(&self, item: String) -> u32;
}

struct Warehouse;

impl Inventory for Warehouse {
    async fn stock(&self, item: String) -> u32 {
        // The receiver's own span: a child of the server's command span.
        async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            item.len() as u32
        }
        .instrument(tracing::info_span!("warehouse.lookup"))
        .await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Tracing into OpenTelemetry, kept in memory.
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info,cmdstream=debug"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("observability")));
    tracing::subscriber::set_global_default(subscriber)?;

    // Metrics into a Prometheus recorder, with units and help described.
    let prometheus = PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets_for_metric(
            Matcher::Suffix("call.duration".into()),
            &[0.001, 0.005, 0.025, 0.1, 0.5, 2.5],
        )?
        .set_buckets(&[1.0, 2.0, 4.0, 16.0, 64.0])?
        .install_recorder()?;
    cmdstream::metrics::describe();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(InventoryServer::new(Warehouse));
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let client = InventoryClient::connect(addr).await?;

    let n = client
        .stock("lamp".into())
        .instrument(tracing::info_span!("checkout"))
        .await?;
    println!("stock(\"lamp\") = {n}\n");

    // The server's span ends just after its answer leaves.
    let mut finished = Vec::new();
    for _ in 0..500 {
        finished = spans.get_finished_spans()?;
        if finished
            .iter()
            .filter(|s| s.name == "Inventory/stock")
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("One call's spans (one trace):");
    print_tree(&finished);

    client.client().close().await;
    server.shutdown().await;

    // Prometheus's text format, without the HELP and TYPE lines and the
    // buckets of the histograms, for brevity.
    println!("\nThe metrics, as Prometheus scrapes them (a sample):");
    let rendered = prometheus.render();
    let mut sample: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("_bucket"))
        .collect();
    sample.sort_unstable();
    for line in sample {
        println!("  {line}");
    }
    Ok(())
}

/// Prints the spans under each root, children indented under parents.
fn print_tree(spans: &[SpanData]) {
    let call =
        |s: &&SpanData| s.name != "cmdstream.client.conn" && s.name != "cmdstream.server.conn";
    let spans: Vec<&SpanData> = spans.iter().filter(call).collect();
    let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
    for span in &spans {
        children.entry(span.parent_span_id).or_default().push(span);
    }
    let ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    for root in spans.iter().filter(|s| !ids.contains(&s.parent_span_id)) {
        print_span(root, &children, 1);
    }
}

fn print_span(span: &SpanData, children: &HashMap<SpanId, Vec<&SpanData>>, depth: usize) {
    let took = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    let wanted = [
        "rpc.method",
        "cmdstream.request_id",
        "cmdstream.outcome",
        "cmdstream.bytes_out",
        "cmdstream.bytes_in",
        "server.address",
        "network.peer.address",
    ];
    let attrs: Vec<String> = span
        .attributes
        .iter()
        .filter(|kv| wanted.contains(&kv.key.as_str()))
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    println!(
        "{:indent$}{} [{:?}, {:.2} ms] trace {} {}",
        "",
        span.name,
        span.span_kind,
        took.as_secs_f64() * 1e3,
        &span.span_context.trace_id().to_string()[..8],
        attrs.join(" "),
        indent = depth * 2
    );
    let mut kids = children
        .get(&span.span_context.span_id())
        .cloned()
        .unwrap_or_default();
    kids.sort_by_key(|s| s.start_time);
    for child in kids {
        print_span(child, children, depth + 1);
    }
}
