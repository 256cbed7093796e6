//! Quick start: a `Calc` service and its client in one process, on loopback.
//!
//! Run it with `cargo run --example quickstart`.
//!
//! The service is a plain trait. `#[cmdstream::receiver]` turns each method
//! into a command and generates `CalcServer` (the server side), `CalcClient`
//! (a typed client with the same methods) and `CalcCommand` (the commands as
//! values; see `command_pattern.rs`).

use cmdstream::{Server, Stream};
use serde::{Deserialize, Serialize};

/// An application error: it travels back to the caller as a plain value.
#[derive(Debug, Serialize, Deserialize)]
enum DivError {
    DivideByZero,
}

/// The service: every method is a command the client can send.
#[cmdstream::receiver]
trait Calc {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides, or says why it cannot.
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivError>;
    /// Counts down to zero, one result at a time.
    async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;
}

/// The receiver: what actually runs on the server.
struct MyCalc;

impl Calc for MyCalc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn div(&self, a: i64, b: i64) -> Result<i64, DivError> {
        a.checked_div(b).ok_or(DivError::DivideByZero)
    }

    async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send {
        futures_util::stream::iter((0..=from).rev())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Port 0: the OS picks a free port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(CalcServer::new(MyCalc));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("server: listening on {addr}");

    let client = CalcClient::connect(addr).await?;
    println!("client: connected");

    println!("client: add(2, 3) = {}", client.add(2, 3).await?);
    // `?` handles `cmdstream::Error` (timeouts, lost connections...). The
    // application's own error is a value inside: `div` returns a `Result`.
    println!("client: div(7, 2) = {:?}", client.div(7, 2).await?);
    println!("client: div(1, 0) = {:?}", client.div(1, 0).await?);

    // The client is a cheap handle: clone it into as many tasks as you like.
    // Every call shares the one connection and gets its own result back.
    let tasks: Vec<_> = (1..=100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.add(i, i).await })
        })
        .collect();
    let mut sum = 0;
    for task in tasks {
        sum += task.await??;
    }
    println!("client: 100 tasks called add(i, i) at once; the results sum to {sum}");

    // A server stream: results arrive one at a time, as a `Stream`.
    let mut countdown = client.countdown(3).await?;
    print!("client: countdown(3) streams");
    while let Some(n) = countdown.next().await {
        print!(" {}", n?);
    }
    println!();

    // Graceful shutdown: the server stops accepting, tells the client to go
    // away, lets calls in flight finish, then closes.
    server.shutdown().await;
    serving.await??;
    println!("server: shut down");
    Ok(())
}
