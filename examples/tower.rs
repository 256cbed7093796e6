//! tower on both sides: on the server, a layer around the dispatch that
//! logs each command and refuses `wipe` to callers without the `admin`
//! role; on the client, the generated client as a tower `Service` of its
//! commands, under tower's concurrency limit and timeout.
//!
//! Run it with `cargo run --example tower`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cmdstream::tower::{BoxError, ClientService, Incoming, Layered};
use cmdstream::{CallOptions, Error, Server};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

#[cmdstream::receiver]
trait Store {
    /// Reads a value.
    async fn get(&self, key: String) -> Option<String>;
    /// Deletes everything.
    async fn wipe(&self) -> u32;
}

struct MyStore;

impl Store for MyStore {
    async fn get(&self, key: String) -> Option<String> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some(format!("value of {key}"))
    }

    async fn wipe(&self) -> u32 {
        42
    }
}

/// The server's layer: logs, and lets `wipe` through only for admins.
#[derive(Clone)]
struct Guard;

impl<S> Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded(inner)
    }
}

#[derive(Clone)]
struct Guarded<S>(S);

impl<S> Service<Incoming> for Guarded<S>
where
    S: Service<Incoming, Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let role = incoming.context().metadata().get("role").unwrap_or("none");
        println!("server: {} (role {role})", incoming.command().name);
        if incoming.command().name == "wipe" && role != "admin" {
            return Box::pin(async { Err("wipe needs the admin role".into()) });
        }
        Box::pin(self.0.call(incoming))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(Layered::new(StoreServer::new(MyStore), Guard));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let client = StoreClient::connect(addr).await?;

    // The server's layer at work: a refusal reads as Unavailable, nothing ran.
    match client.wipe().await {
        Err(Error::Unavailable(why)) => println!("client: wipe refused: {why}"),
        other => println!("client: wipe: {other:?}"),
    }
    let admin = client.with_options(CallOptions::new().metadata("role", "admin"));
    println!("client: wipe as admin = {}", admin.wipe().await?);

    // The client as a tower service: at most 4 calls at once, 1 s each.
    let service = ServiceBuilder::new()
        .concurrency_limit(4)
        .timeout(Duration::from_secs(1))
        .service(ClientService::new(client.clone()));
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let service = service.clone();
            let key = format!("k{i}");
            tokio::spawn(async move { service.oneshot(StoreCommand::Get { key }).await })
        })
        .collect();
    for call in calls {
        match call.await? {
            Ok(StoreReply::Get(value)) => println!("client: {value:?}"),
            Ok(_) => {}
            // tower's errors are boxed: a timeout, or the client's own.
            Err(e) => println!("client: failed: {e}"),
        }
    }

    server.shutdown().await;
    serving.await??;
    Ok(())
}
