//! A tarpc service ported to cmdstream.
//!
//! Run it with `cargo run --example from_tarpc`.
//!
//! This is the cmdstream version only; every line that differs from the
//! usual tarpc code says what it was, after `// tarpc:`. Lines without such
//! a comment are the same in both. The payloads are JSON here, as with
//! tarpc's `Json` transport; drop the `.codec(Json)` calls to use the
//! default, bincode. docs/MIGRATING.md has the full guide.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cmdstream::codec::Json; // tarpc: use tokio_serde::formats::Json;
                            // tarpc: use tarpc::{client, context, server::{self, Channel}};
use cmdstream::{CallContext, CallOptions, Client, Error, Server};

/// The service definition.
#[cmdstream::receiver] // tarpc: #[tarpc::service]
trait World {
    /// Greets someone by name.
    async fn hello(&self, name: String) -> String; // tarpc: async fn hello(name: String) -> String;

    /// How many greetings the server has given so far.
    async fn greeted(&self) -> u64; // tarpc: async fn greeted() -> u64;

    /// Sleeps, then says how much of the caller's deadline was left.
    // tarpc: async fn nap(millis: u64) -> Option<u64>;
    async fn nap(&self, ctx: &CallContext, millis: u64) -> Option<u64>;
}

/// The server's state. tarpc clones the server value for every request; a
/// cmdstream server holds one value and lends it to every call, so shared
/// state needs no `Arc`, only interior mutability.
#[derive(Default)] // tarpc: #[derive(Clone, Default)]
struct HelloServer {
    greetings: AtomicU64, // tarpc: greetings: Arc<AtomicU64>,
}

impl World for HelloServer {
    async fn hello(&self, name: String) -> String {
        // tarpc: async fn hello(self, _: context::Context, name: String) -> String {
        self.greetings.fetch_add(1, Ordering::Relaxed);
        format!("Hello, {name}!")
    }

    async fn greeted(&self) -> u64 {
        // tarpc: async fn greeted(self, _: context::Context) -> u64 {
        self.greetings.load(Ordering::Relaxed)
    }

    async fn nap(&self, ctx: &CallContext, millis: u64) -> Option<u64> {
        // tarpc: async fn nap(self, ctx: context::Context, millis: u64) -> Option<u64> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        // tarpc: let left = ctx.deadline.checked_duration_since(Instant::now())?;
        let left = ctx
            .deadline()?
            .checked_duration_since(tokio::time::Instant::now())?;
        Some(left.as_millis() as u64)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Serving. tarpc builds a pipeline from the transport's listener:
    // tarpc: let listener = tarpc::serde_transport::tcp::listen(("127.0.0.1", 0), Json::default).await?;
    // tarpc: listener.filter_map(|r| future::ready(r.ok())).map(server::BaseChannel::with_defaults)
    // tarpc:     .map(|channel| channel.execute(HelloServer::default().serve()).for_each(spawn))
    // tarpc:     .buffer_unordered(10).for_each(|_| async {})
    // cmdstream takes a listener and spawns a task per connection and per command.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::builder()
        .codec(Json)
        .build(WorldServer::new(HelloServer::default()));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("server: listening on {addr}");

    // tarpc: let transport = tarpc::serde_transport::tcp::connect(addr, Json::default).await?;
    // tarpc: let client = WorldClient::new(client::Config::default(), transport).spawn();
    let client = WorldClient::connect_with(Client::builder().codec(Json), addr).await?;
    println!("client: connected");

    // tarpc: client.hello(context::current(), "Ferris".to_string()).await?
    let greeting = client.hello("Ferris".to_string()).await?;
    println!("client: hello(\"Ferris\") = {greeting:?}");
    // tarpc: client.hello(context::current(), "Ada".to_string()).await?
    let greeting = client.hello("Ada".to_string()).await?;
    println!("client: hello(\"Ada\") = {greeting:?}");
    // tarpc: client.greeted(context::current()).await?
    println!("client: greeted() = {}", client.greeted().await?);

    // Deadlines. A tarpc context always has one (10 s unless changed); a
    // cmdstream call has one only when a timeout is set, on the handle.
    // tarpc: let mut ctx = context::current();
    // tarpc: ctx.deadline = Instant::now() + Duration::from_secs(1);
    let within_a_second = client.with_options(CallOptions::new().timeout(Duration::from_secs(1)));
    // tarpc: client.nap(ctx, 20).await?
    match within_a_second.nap(20).await? {
        Some(left) => println!("client: nap(20 ms) with 1 s allowed: done, {left} ms to spare"),
        None => println!("client: nap(20 ms) with 1 s allowed: done, no deadline seen"),
    }
    // tarpc: client.nap(context::current(), 20).await? (which has a 10 s deadline)
    let no_deadline = client.nap(20).await?;
    println!("client: nap(20 ms) with no timeout: {no_deadline:?}, the server saw no deadline");

    // tarpc: ctx.deadline = Instant::now() + Duration::from_millis(100);
    let hurried = client.with_options(CallOptions::new().timeout(Duration::from_millis(100)));
    // tarpc: match client.nap(ctx, 5_000).await {
    match hurried.nap(5_000).await {
        // tarpc: Err(RpcError::DeadlineExceeded) => ...
        Err(Error::Timeout) => {
            println!("client: nap(5 s) with 100 ms allowed: Error::Timeout, stopped on the server")
        }
        other => println!("client: nap(5 s) with 100 ms allowed: unexpected {other:?}"),
    }

    // tarpc: stop the task that runs the pipeline (abort it, or select! on a signal).
    server.shutdown().await;
    serving.await??;
    println!("server: shut down");
    Ok(())
}
