//! Transports as the client sees them: endpoints by name, address or path,
//! a connector of the user's, and a dial timeout that reads the same for
//! every transport.

use std::time::Duration;

use cmdstream::{Client, Connector, Endpoint, Error};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::raw::within;
use cmdstream_tests::{serve, CalcClient};

#[tokio::test]
async fn a_host_name_is_resolved_at_the_dial() {
    let srv = serve().await;
    let endpoint = Endpoint::host("localhost", srv.addr.port());
    let client = within("the connect", Client::connect(endpoint, &INFO))
        .await
        .unwrap();
    assert_eq!(CalcClient::new(client).add(2, 3).await.unwrap(), 5);
    let by_string = format!("localhost:{}", srv.addr.port());
    let client = within("the connect", Client::connect(by_string.as_str(), &INFO))
        .await
        .unwrap();
    assert_eq!(CalcClient::new(client).add(2, 3).await.unwrap(), 5);
}

#[cfg(unix)]
#[tokio::test]
async fn a_path_is_a_unix_socket_endpoint() {
    let dir = std::env::temp_dir().join(format!("cmdstream-transports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calc.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = cmdstream::Server::new(cmdstream_tests::CalcServer::new(
        cmdstream_tests::Calc::new(Default::default()),
    ));
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let client = within("the connect", Client::connect(path.as_path(), &INFO))
        .await
        .unwrap();
    assert_eq!(CalcClient::new(client).add(2, 3).await.unwrap(), 5);
    let parsed: Endpoint = format!("unix:{}", path.display()).parse().unwrap();
    let client = within("the connect", Client::connect(parsed, &INFO))
        .await
        .unwrap();
    assert_eq!(CalcClient::new(client).add(4, 4).await.unwrap(), 8);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Dials an in-memory pipe to a server it serves itself.
struct InMemory(cmdstream::Server<cmdstream_tests::CalcServer>);

impl Connector for InMemory {
    type Io = tokio::io::DuplexStream;

    async fn connect(&self, endpoint: &Endpoint) -> std::io::Result<Self::Io> {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let server = self.0.clone();
        let name = endpoint.to_string();
        tokio::spawn(async move { server.serve_connection(theirs, name.as_str()).await });
        Ok(ours)
    }
}

#[tokio::test]
async fn a_connector_of_ones_own_carries_the_calls() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let server = cmdstream::Server::builder()
        .on_connect({
            let seen = seen.clone();
            move |info| *seen.lock().unwrap() = Some(info.addr().to_string())
        })
        .build(cmdstream_tests::CalcServer::new(
            cmdstream_tests::Calc::new(Default::default()),
        ));
    let builder = Client::builder().connector(InMemory(server.clone()));
    let client = within("the connect", builder.connect("pipe.local:1", &INFO))
        .await
        .unwrap();
    assert_eq!(CalcClient::new(client).add(20, 22).await.unwrap(), 42);
    assert_eq!(seen.lock().unwrap().as_deref(), Some("pipe.local:1"));
}

/// A connector that never connects.
struct Silent;

impl Connector for Silent {
    type Io = tokio::io::DuplexStream;

    async fn connect(&self, _: &Endpoint) -> std::io::Result<Self::Io> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_dial_that_never_completes_times_out_with_one_error_for_every_transport() {
    let builder = Client::builder()
        .connector(Silent)
        .connect_timeout(Duration::from_secs(3));
    let err = builder
        .connect("nowhere.internal:7", &INFO)
        .await
        .unwrap_err();
    match &err {
        Error::Io(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
            assert!(
                e.to_string()
                    .contains("no connection to nowhere.internal:7 within 3s"),
                "{e}"
            );
        }
        other => panic!("expected a timed-out dial, got {other:?}"),
    }
}
