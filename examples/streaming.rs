//! The four call shapes: unary, server streaming, client streaming and
//! bidirectional; a stream dropped early (which cancels it on the server);
//! and per-call timeouts.
//!
//! Run it with `cargo run --example streaming`.
//!
//! The shape of a command follows from its signature: a parameter written
//! `impl Stream<Item = T> + Send` is streamed by the client, a return type
//! written that way is streamed by the server.

use std::time::Duration;

use cmdstream::{CallOptions, Error, Server, Stream};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::mpsc;

/// A service with one command of every shape.
#[cmdstream::receiver]
trait Numbers {
    /// Unary: one value in, one value out.
    async fn square(&self, x: u64) -> u64;

    /// Server streaming: the first `count` multiples of `n`.
    async fn multiples(&self, n: u64, count: u64) -> impl Stream<Item = u64> + Send;

    /// Server streaming, without end: a tick every `every_ms` milliseconds
    /// until the caller lets go.
    async fn ticks(&self, every_ms: u64) -> impl Stream<Item = u64> + Send;

    /// Client streaming: many values in, their sum out.
    async fn sum(&self, values: impl Stream<Item = u64> + Send) -> u64;

    /// Bidirectional: after each value, the running total so far.
    async fn running_total(
        &self,
        values: impl Stream<Item = u64> + Send,
    ) -> impl Stream<Item = u64> + Send;

    /// Unary, but slow: answers `x * x` after `millis` milliseconds.
    async fn slow_square(&self, x: u64, millis: u64) -> u64;
}

/// The receiver. It reports commands that were stopped before they finished
/// on `stopped`, so that `main` can show what happened on the server.
struct Lab {
    stopped: mpsc::UnboundedSender<String>,
}

impl Numbers for Lab {
    async fn square(&self, x: u64) -> u64 {
        x * x
    }

    async fn multiples(&self, n: u64, count: u64) -> impl Stream<Item = u64> + Send {
        stream::iter((1..=count).map(move |i| i * n))
    }

    async fn ticks(&self, every_ms: u64) -> impl Stream<Item = u64> + Send {
        // The server drops this stream when the call is cancelled or its
        // deadline passes; the report goes with it.
        let report = Report::new(
            &self.stopped,
            "ticks: the stream was dropped, the command stopped",
        );
        stream::unfold((0, report), move |(n, report)| async move {
            tokio::time::sleep(Duration::from_millis(every_ms)).await;
            Some((n, (n + 1, report)))
        })
    }

    async fn sum(&self, values: impl Stream<Item = u64> + Send) -> u64 {
        values.fold(0, |acc, v| async move { acc + v }).await
    }

    async fn running_total(
        &self,
        values: impl Stream<Item = u64> + Send,
    ) -> impl Stream<Item = u64> + Send {
        values.scan(0, |total, v| {
            *total += v;
            futures_util::future::ready(Some(*total))
        })
    }

    async fn slow_square(&self, x: u64, millis: u64) -> u64 {
        let report = Report::new(&self.stopped, "slow_square: stopped at its deadline");
        tokio::time::sleep(Duration::from_millis(millis)).await;
        report.finished();
        x * x
    }
}

/// Sends a message when dropped before [`Report::finished`] is called.
struct Report {
    tx: mpsc::UnboundedSender<String>,
    message: &'static str,
    armed: bool,
}

impl Report {
    fn new(tx: &mpsc::UnboundedSender<String>, message: &'static str) -> Self {
        Report {
            tx: tx.clone(),
            message,
            armed: true,
        }
    }

    fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.tx.send(self.message.to_owned());
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(NumbersServer::new(Lab {
        stopped: stopped_tx,
    }));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("server: listening on {addr}");
    let client = NumbersClient::connect(addr).await?;
    println!("client: connected");

    // 1. Unary.
    println!("unary:         square(12) = {}", client.square(12).await?);

    // 2. Server streaming: a `ResultStream`, whose items are
    //    `Result<u64, cmdstream::Error>` (a failure ends the stream).
    let multiples: Vec<u64> = client.multiples(7, 5).await?.try_collect().await?;
    println!("server stream: multiples(7, 5) = {multiples:?}");

    // 3. Client streaming: the items go out as fast as the server's flow
    //    control credit allows; one result comes back.
    let total = client.sum(stream::iter(1..=1_000)).await?;
    println!("client stream: sum(1..=1000) = {total}");

    // 4. Bidirectional: both directions are open at once. Each value is sent
    //    only after the previous total has come back.
    let (values_tx, values_rx) = mpsc::unbounded_channel::<u64>();
    let values = stream::unfold(values_rx, |mut rx| async move {
        rx.recv().await.map(|v| (v, rx))
    });
    let mut totals = client.running_total(values).await?;
    for v in [5, 10, 20] {
        values_tx.send(v)?;
        let total = totals.next().await.ok_or("the stream ended early")??;
        println!("bidi:          sent {v:>2}, running total {total}");
    }
    drop(values_tx); // ends the argument stream, and so the server's results
    assert!(totals.next().await.is_none());
    println!("bidi:          argument stream closed; the result stream ended");

    // Dropping a stream before its end cancels the command on the server.
    let mut ticks = client.ticks(10).await?;
    for _ in 0..3 {
        let tick = ticks.next().await.ok_or("the stream ended early")??;
        println!("early drop:    tick {tick}");
    }
    drop(ticks);
    println!("early drop:    client dropped the stream after 3 ticks");
    println!(
        "server:        {}",
        stopped.recv().await.ok_or("no report")?
    );

    // Per-call timeouts: `with_options` gives a handle on the same connection
    // whose calls carry these options. The timeout travels with the command,
    // and the server stops the command when it expires.
    let hurried = client.with_options(CallOptions::new().timeout(Duration::from_millis(200)));
    println!(
        "timeout:       slow_square(9) taking 20 ms, 200 ms allowed: {}",
        hurried.slow_square(9, 20).await?
    );
    match hurried.slow_square(9, 5_000).await {
        Err(Error::Timeout) => {
            println!("timeout:       slow_square(9) taking 5 s, 200 ms allowed: Error::Timeout")
        }
        other => println!("timeout:       unexpected {other:?}"),
    }
    println!(
        "server:        {}",
        stopped.recv().await.ok_or("no report")?
    );

    // A timeout covers a whole stream too: it ends with `Err(Timeout)`.
    let mut ticks = hurried.ticks(60).await?;
    let mut received = 0;
    while let Some(tick) = ticks.next().await {
        match tick {
            Ok(_) => received += 1,
            Err(e) => {
                println!("timeout:       ticks(60 ms), 200 ms allowed: {received} ticks, then Err({e:?})");
                break;
            }
        }
    }
    println!(
        "server:        {}",
        stopped.recv().await.ok_or("no report")?
    );

    server.shutdown().await;
    serving.await??;
    println!("server: shut down");
    Ok(())
}
