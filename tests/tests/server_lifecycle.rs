#![allow(missing_docs)] // a test crate: the receiver trait documents only what matters
//! What a server's handles mean for its connections, and how a command
//! learns of a graceful shutdown: dropping the last handle shuts the
//! server down in the background, a kept handle goes on serving the open
//! connections after the serve task is gone, and a stream that listens for
//! the shutdown ends at once instead of holding it for the grace period.

use std::time::Duration;

use cmdstream::{CallContext, Error, Server, Stream};
use futures_util::{stream, StreamExt};
use tokio::net::TcpListener;

#[cmdstream::receiver]
pub trait Feed {
    /// Ticks until the server shuts down.
    async fn watch(&self, ctx: &CallContext) -> impl Stream<Item = u64> + Send;
    /// Ticks forever, deaf to shutdown.
    async fn deaf(&self) -> impl Stream<Item = u64> + Send;
    async fn nap(&self, millis: u64) -> u64;
    /// Naps, then says whether the server is shutting down.
    async fn nap_then_look(&self, ctx: &CallContext, millis: u64) -> bool;
}

struct MyFeed;

fn ticks() -> impl Stream<Item = u64> + Send + 'static {
    stream::iter(0u64..).then(|n| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        n
    })
}

impl Feed for MyFeed {
    async fn watch(&self, ctx: &CallContext) -> impl Stream<Item = u64> + Send {
        ticks().take_until(ctx.shutdown())
    }

    async fn deaf(&self) -> impl Stream<Item = u64> + Send {
        ticks()
    }

    async fn nap(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }

    async fn nap_then_look(&self, ctx: &CallContext, millis: u64) -> bool {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        ctx.is_shutting_down()
    }
}

/// Far longer than anything here; on paused time it costs nothing.
const BOUND: Duration = Duration::from_secs(3_600);

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

/// A server with a 30 s grace period serving one end of a pipe, and a
/// client on the other end.
async fn served(server: &Server<FeedServer<MyFeed>>) -> FeedClient {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_connection(theirs, None).await }
    });
    let client = cmdstream::Client::builder()
        .connect_io(ours, FeedClient::INFO, "pipe")
        .await
        .unwrap();
    FeedClient::from(client)
}

fn server() -> Server<FeedServer<MyFeed>> {
    Server::builder()
        .shutdown_grace(Duration::from_secs(30))
        .build(FeedServer::new(MyFeed))
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_listens_for_the_shutdown_lets_the_server_stop_at_once() {
    let server = server();
    let client = served(&server).await;
    let mut ticks = client.watch().await.unwrap();
    assert_eq!(bounded("a tick", ticks.next()).await.unwrap().unwrap(), 0);

    let start = tokio::time::Instant::now();
    bounded("the shutdown", server.shutdown()).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "the shutdown waited {:?} for a stream that was told to stop",
        start.elapsed()
    );
    // The stream ended cleanly, after the ticks it made.
    let rest: Vec<_> = bounded("the stream's end", ticks.collect::<Vec<_>>()).await;
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_deaf_to_the_shutdown_holds_it_for_the_whole_grace_period() {
    // The contrast to the test above: without listening, only the grace
    // period ends the stream.
    let server = server();
    let client = served(&server).await;
    let mut ticks = client.deaf().await.unwrap();
    assert_eq!(bounded("a tick", ticks.next()).await.unwrap().unwrap(), 0);
    let start = tokio::time::Instant::now();
    bounded("the shutdown", server.shutdown()).await;
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn commands_see_a_shutdown_that_has_begun() {
    let server = server();
    let client = served(&server).await;
    assert!(!client.nap_then_look(1).await.unwrap());
    // A call in flight while the shutdown begins finishes, and sees it.
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.nap_then_look(1_000).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown().await }
    });
    assert!(bounded("the call in flight", in_flight)
        .await
        .unwrap()
        .unwrap());
    bounded("the shutdown", shutdown).await.unwrap();
}

/// A server on loopback whose `serve` runs in a task that owns the handle
/// given; returns the address, the task and a connected client.
async fn serve_in_task(
    server: Server<FeedServer<MyFeed>>,
) -> (tokio::task::JoinHandle<cmdstream::Result<()>>, FeedClient) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { server.serve(listener).await });
    let client = bounded("the connect", FeedClient::connect(addr))
        .await
        .unwrap();
    (task, client)
}

#[tokio::test]
async fn dropping_every_handle_shuts_the_server_down_in_the_background() {
    let (task, client) = serve_in_task(server()).await;
    assert_eq!(client.nap(1).await.unwrap(), 1);
    let nap = tokio::spawn({
        let client = client.clone();
        async move { client.nap(300).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The serve task owned the only handle.
    task.abort();
    let _ = task.await;

    // The call in flight finishes; new calls are refused; the connection
    // then closes.
    assert_eq!(bounded("the nap", nap).await.unwrap().unwrap(), 300);
    let refused = bounded("a call after the drop", client.nap(1)).await;
    assert!(
        matches!(
            refused,
            Err(Error::Unavailable(_) | Error::ConnectionLost { .. })
        ),
        "{refused:?}"
    );
    bounded("the connection closes", async {
        while !client.client().is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_kept_handle_serves_open_connections_after_the_serve_task_is_gone() {
    let server = server();
    let (task, client) = serve_in_task(server.clone()).await;
    task.abort();
    let _ = task.await;

    // No longer accepting, but the open connection is served...
    for n in 1..=3 {
        assert_eq!(bounded("a call", client.nap(n)).await.unwrap(), n);
    }
    assert_eq!(server.connections(), 1);
    // ...until the kept handle shuts the server down.
    bounded("the shutdown", server.shutdown()).await;
    assert_eq!(server.connections(), 0);
    bounded("the connection closes", async {
        while !client.client().is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
