#![allow(missing_docs)] // a test crate: the receiver trait here documents only what matters
//! `#[cmdstream::receiver]` end to end: every method shape through the
//! generated client, server and command enum, over real loopback sockets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmdstream::{CallContext, Error, Server, Stream};
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DivError {
    DivideByZero,
}

#[cmdstream::receiver(derive(Debug, Clone, PartialEq))]
pub trait Calc {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivError>;
    #[command(id = 7)]
    async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send;
    async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64;
    async fn echo(
        &self,
        lines: impl Stream<Item = String> + Send,
    ) -> impl Stream<Item = String> + Send;
    async fn who(&self, ctx: &CallContext, greeting: String) -> String;
    #[command(timeout = "50ms")]
    async fn nap(&self, millis: u64);
}

static LONG_NAPS_CANCELLED: AtomicUsize = AtomicUsize::new(0);

struct MyCalc;

impl Calc for MyCalc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn div(&self, a: i64, b: i64) -> Result<i64, DivError> {
        if b == 0 {
            Err(DivError::DivideByZero)
        } else {
            Ok(a / b)
        }
    }

    async fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send {
        stream::iter((0..=from).rev())
    }

    async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64 {
        nums.fold(0, |acc, n| async move { acc + n }).await
    }

    async fn echo(
        &self,
        lines: impl Stream<Item = String> + Send,
    ) -> impl Stream<Item = String> + Send {
        lines.map(|l| l.to_uppercase())
    }

    async fn who(&self, ctx: &CallContext, greeting: String) -> String {
        format!(
            "{greeting}, {}",
            ctx.metadata().get("user").unwrap_or("stranger")
        )
    }

    async fn nap(&self, millis: u64) {
        // Counts naps of exactly 30 s that were dropped before waking.
        struct Abandoned(bool);
        impl Drop for Abandoned {
            fn drop(&mut self) {
                if self.0 {
                    LONG_NAPS_CANCELLED.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let mut guard = Abandoned(millis == 30_000);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        guard.0 = false;
    }
}

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(CalcServer::new(MyCalc));
    tokio::spawn(async move { server.serve(listener).await });
    addr
}

async fn start() -> CalcClient {
    CalcClient::connect(serve().await).await.unwrap()
}

#[tokio::test]
async fn unary_methods_and_typed_application_errors() {
    let client = start().await;
    assert_eq!(client.add(2, 3).await.unwrap(), 5);
    assert_eq!(client.div(9, 3).await.unwrap(), Ok(3));
    assert_eq!(client.div(1, 0).await.unwrap(), Err(DivError::DivideByZero));
}

#[tokio::test]
async fn every_stream_shape() {
    let client = start().await;
    let down: Vec<u32> = client
        .countdown(3)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(down, [3, 2, 1, 0]);
    assert_eq!(client.total(stream::iter(1..=100)).await.unwrap(), 5050);
    let up: Vec<String> = client
        .echo(stream::iter(["a".to_string(), "b".to_string()]))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(up, ["A", "B"]);
}

#[tokio::test]
async fn context_reaches_methods_that_ask_for_it() {
    let client = start().await;
    assert_eq!(client.who("hi".into()).await.unwrap(), "hi, stranger");
    let ada = client.with_options(cmdstream::CallOptions::new().metadata("user", "ada"));
    assert_eq!(ada.who("hello".into()).await.unwrap(), "hello, ada");
}

#[tokio::test]
async fn a_command_default_timeout_applies_unless_the_call_sets_one() {
    let client = start().await;
    assert!(matches!(client.nap(5_000).await, Err(Error::Timeout)));
    let patient =
        client.with_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(10)));
    patient.nap(60).await.unwrap();
}

#[tokio::test]
async fn the_most_specific_timeout_wins() {
    // A generous client-wide default does not override the command's own
    // 50 ms; a per-call timeout overrides both.
    let builder = cmdstream::Client::builder().timeout(Duration::from_secs(60));
    let client = CalcClient::connect_with(builder, serve().await)
        .await
        .unwrap();
    assert!(matches!(client.nap(5_000).await, Err(Error::Timeout)));
    let patient =
        client.with_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(10)));
    patient.nap(60).await.unwrap();
    // The client default applies to commands without one of their own.
    let hasty = cmdstream::Client::builder().timeout(Duration::from_millis(1));
    let hasty = CalcClient::connect_with(hasty, serve().await)
        .await
        .unwrap();
    let slow = futures_util::stream::pending::<i64>();
    assert!(matches!(hasty.total(slow).await, Err(Error::Timeout)));
}

#[tokio::test]
async fn commands_are_values_that_can_be_queued_and_sent_later() {
    let client = start().await;
    let queue = vec![
        CalcCommand::Add { a: 1, b: 2 },
        CalcCommand::Div { a: 8, b: 0 },
        CalcCommand::Countdown { from: 2 },
    ];
    // A command survives a round trip through any serde format.
    let stored = serde_json::to_string(&queue).unwrap();
    let queue: Vec<CalcCommand> = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        queue.iter().map(|c| c.name()).collect::<Vec<_>>(),
        ["add", "div", "countdown"]
    );
    assert_eq!(queue[2].id(), 7);
    // `derive(...)` on the receiver reaches the command enum.
    let copy = queue.clone();
    assert_eq!(copy, queue);
    assert_eq!(format!("{:?}", queue[0]), "Add { a: 1, b: 2 }");
    let mut replies = Vec::new();
    for command in &queue {
        replies.push(client.send(command).await.unwrap());
    }
    assert!(matches!(replies[0], CalcReply::Add(3)));
    assert!(matches!(
        replies[1],
        CalcReply::Div(Err(DivError::DivideByZero))
    ));
    let CalcReply::Countdown(items) = replies.pop().unwrap() else {
        panic!("not a countdown")
    };
    assert_eq!(
        items.map(Result::unwrap).collect::<Vec<_>>().await,
        [2, 1, 0]
    );
}

#[test]
fn ids_are_stable_and_explicit_ones_are_kept() {
    let info = CalcClient::INFO;
    assert_eq!(info.name, "Calc");
    let countdown = info
        .commands
        .iter()
        .find(|c| c.name == "countdown")
        .unwrap();
    assert_eq!(countdown.id, 7);
    assert_eq!(countdown.kind, cmdstream::CommandKind::ServerStream);
    let nap = info.commands.iter().find(|c| c.name == "nap").unwrap();
    assert_eq!(nap.timeout, Some(Duration::from_millis(50)));
}

#[tokio::test]
async fn dropping_a_generated_call_cancels_it_on_the_server() {
    let client = start().await;
    let patient =
        client.with_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(60)));
    // Abandon a long nap after a moment; the connection must stay usable and
    // the abandoned call must not linger in flight.
    let abandoned = tokio::time::timeout(Duration::from_millis(20), patient.nap(30_000)).await;
    assert!(abandoned.is_err(), "the nap cannot have finished");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while LONG_NAPS_CANCELLED.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never dropped the abandoned nap"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn a_client_default_timeout_is_one_setting_however_it_is_given_and_commands_override_it() {
    // `nap` has a command timeout of 50 ms: it wins over a client default
    // of 5 s, given either way, and a handle's own timeout wins over both.
    let addr = serve().await;
    let via_timeout = cmdstream::Client::builder().timeout(Duration::from_secs(5));
    let via_options = cmdstream::Client::builder()
        .call_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(5)));
    for builder in [via_timeout, via_options] {
        let client = CalcClient::connect_with(builder, addr).await.unwrap();
        let err = client
            .nap(300)
            .await
            .expect_err("the command's 50 ms did not apply");
        assert!(matches!(err, Error::Timeout), "{err:?}");
        let patient =
            client.with_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(5)));
        patient.nap(100).await.unwrap();
        let unbounded = client.with_options(cmdstream::CallOptions::new().no_timeout());
        unbounded.nap(100).await.unwrap();
    }
}

#[tokio::test]
async fn metadata_set_on_the_builder_survives_later_options_and_is_replaced_key_by_key() {
    let addr = serve().await;
    let builder = cmdstream::Client::builder()
        .call_options(cmdstream::CallOptions::new().metadata("user", "ada"));
    let client = CalcClient::connect_with(builder, addr).await.unwrap();
    assert_eq!(client.who("hi".into()).await.unwrap(), "hi, ada");
    // Options that set something else keep the builder's metadata...
    let timed = client.with_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(5)));
    assert_eq!(timed.who("hi".into()).await.unwrap(), "hi, ada");
    let tagged = timed.with_options(cmdstream::CallOptions::new().metadata("trace", "1"));
    assert_eq!(tagged.who("hi".into()).await.unwrap(), "hi, ada");
    // ...and options that set the same key replace it.
    let other = tagged.with_options(cmdstream::CallOptions::new().metadata("user", "grace"));
    assert_eq!(other.who("hi".into()).await.unwrap(), "hi, grace");
    assert_eq!(client.who("hi".into()).await.unwrap(), "hi, ada");
}
