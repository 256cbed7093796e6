//! tower on both sides: the generated client as a `Service` of its
//! commands under tower's timeout and concurrency limit, and layers around
//! the server's dispatch that see each command, refuse some (the caller is
//! told nothing ran) and stop others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmdstream::tower::{ClientService, Dispatcher, Incoming, Layered};
use cmdstream::{Client, Error, ErrorCode, Server};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// A service that counts what runs at once.
#[cmdstream::receiver]
pub trait Jobs {
    /// Sleeps `millis`, then answers `millis`.
    async fn run(&self, millis: u64) -> u64;
}

#[derive(Clone, Default)]
struct Counts {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

struct MyJobs(Counts);

impl Jobs for MyJobs {
    async fn run(&self, millis: u64) -> u64 {
        let now = self.0.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.most.fetch_max(now, Ordering::SeqCst);
        /// Counts the command out however it ends.
        struct Out<'a>(&'a AtomicUsize);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _out = Out(&self.0.running);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        millis
    }
}

async fn pipe<D: cmdstream::Dispatch>(dispatch: D) -> JobsClient {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = Server::builder().build(dispatch);
    tokio::spawn(async move {
        let _ = server.serve_connection(theirs, "pipe").await;
    });
    let client = Client::builder()
        .connect_io(ours, JobsClient::INFO, "pipe")
        .await
        .unwrap();
    JobsClient::from(client)
}

#[tokio::test(start_paused = true)]
async fn the_client_is_a_service_of_its_commands() {
    let client = pipe(JobsServer::new(MyJobs(Counts::default()))).await;
    let reply = ClientService::new(client)
        .oneshot(JobsCommand::Run { millis: 3 })
        .await
        .unwrap();
    assert!(matches!(reply, JobsReply::Run(3)));
}

#[tokio::test(start_paused = true)]
async fn tower_limits_and_timeouts_stack_on_the_client() {
    let counts = Counts::default();
    let client = pipe(JobsServer::new(MyJobs(counts.clone()))).await;
    let service = ServiceBuilder::new()
        .concurrency_limit(2)
        .timeout(Duration::from_millis(500))
        .service(ClientService::new(client));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.oneshot(JobsCommand::Run { millis: 100 }).await })
        })
        .collect();
    for call in calls {
        assert!(matches!(call.await.unwrap(), Ok(JobsReply::Run(100))));
    }
    assert_eq!(counts.most.load(Ordering::SeqCst), 2, "the limit held");

    // A call past tower's timeout is dropped, and so cancelled on the
    // server.
    let slow = service
        .clone()
        .oneshot(JobsCommand::Run { millis: 60_000 })
        .await;
    let err = slow.err().expect("the timeout");
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    cmdstream_tests::eventually("the server dropped it", || {
        counts.running.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(counts.finished.load(Ordering::SeqCst), 8);
}

/// Records each command's name and the caller's metadata.
#[derive(Clone, Default)]
struct Record(Arc<std::sync::Mutex<Vec<String>>>);

impl<S> Layer<S> for Record {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded(inner, self.clone())
    }
}

#[derive(Clone)]
struct Recorded<S>(S, Record);

impl<S: Service<Incoming>> Service<Incoming> for Recorded<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, incoming: Incoming) -> S::Future {
        let who = incoming
            .context()
            .metadata()
            .get("who")
            .unwrap_or("?")
            .to_owned();
        self.1
             .0
            .lock()
            .unwrap()
            .push(format!("{} by {who}", incoming.command().name));
        self.0.call(incoming)
    }
}

#[tokio::test(start_paused = true)]
async fn server_layers_see_each_command_and_a_refusal_means_nothing_ran() {
    let counts = Counts::default();
    let record = Record::default();
    let layer = ServiceBuilder::new()
        .layer(record.clone())
        .load_shed()
        .concurrency_limit(1);
    let layered = Layered::new(JobsServer::new(MyJobs(counts.clone())), layer);
    let client = pipe(layered).await;
    let client = client.with_options(cmdstream::CallOptions::new().metadata("who", "ada"));

    assert_eq!(client.run(1).await.unwrap(), 1);
    assert_eq!(*record.0.lock().unwrap(), ["run by ada"]);

    // One slot: while a long command holds it, the others are shed.
    let long = tokio::spawn({
        let client = client.clone();
        async move { client.run(1_000).await }
    });
    cmdstream_tests::eventually("the long one runs", || {
        counts.running.load(Ordering::SeqCst) == 1
    })
    .await;
    for _ in 0..3 {
        match client.run(1).await {
            Err(Error::Unavailable(why)) => assert!(why.contains("refused by a layer"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(long.await.unwrap().unwrap(), 1_000);
    assert_eq!(
        counts.finished.load(Ordering::SeqCst),
        2,
        "the shed ones never ran"
    );
    assert_eq!(client.run(2).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_server_layer_that_stops_a_command_has_its_caller_told() {
    let counts = Counts::default();
    let layer = ServiceBuilder::new().timeout(Duration::from_millis(50));
    let layered = Layered::new(JobsServer::new(MyJobs(counts.clone())), layer);
    let client = pipe(layered).await;
    match client.run(10_000).await {
        Err(Error::Remote(e)) => assert_eq!(e.code, ErrorCode::Internal, "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(counts.running.load(Ordering::SeqCst), 0);
    assert_eq!(client.run(5).await.unwrap(), 5);
}

#[test]
fn the_innermost_service_is_the_dispatcher() {
    // A layer stack is built over `Dispatcher` once, for every codec.
    let _: tower::limit::ConcurrencyLimit<Dispatcher> =
        tower::limit::ConcurrencyLimitLayer::new(4).layer(Dispatcher);
}
