//! What a user sees at `info` with a plain `tracing` subscriber: a command
//! that panics is logged at ERROR with its name, request id and the
//! panic's message (polled inline or in its own task); connections opening
//! and closing, a lost connection and a reconnect are logged; a successful
//! call logs nothing at this level.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmdstream::{Backoff, Client, Error, Reconnect, Server};
use cmdstream_tests::calc::INFO;
use cmdstream_tests::{serve_with, CalcClient};
use tracing::Level;

/// Everything the subscriber writes, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn lines(&self, level: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(level))
            .map(str::to_owned)
            .collect()
    }

    /// A subscriber at INFO writing here, for the current thread.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_command_is_logged_at_error_with_its_message() {
    for inline in [true, false] {
        let log = Captured::default();
        let _guard = log.install();
        let srv = serve_with(Server::builder().run_ready_commands_inline(inline)).await;
        let client = cmdstream_tests::connect(srv.addr).await;
        assert!(matches!(client.boom().await, Err(Error::Remote(_))));
        let errors = log.lines("ERROR");
        assert_eq!(errors.len(), 1, "inline {inline}: {}", log.text());
        let line = &errors[0];
        assert!(line.contains("command=\"boom\""), "{line}");
        assert!(line.contains("request_id="), "{line}");
        assert!(line.contains("boom on purpose"), "{line}");
        srv.server.shutdown().await;
    }
}

#[tokio::test]
async fn connections_are_logged_and_successful_calls_are_not() {
    let log = Captured::default();
    let _guard = log.install();
    let srv = serve_with(Server::builder()).await;
    let client = cmdstream_tests::connect(srv.addr).await;
    let before = log.text().lines().count();
    for i in 0..50 {
        assert_eq!(client.add(i, 1).await.unwrap(), i + 1);
    }
    assert_eq!(log.text().lines().count(), before, "{}", log.text());
    client.inner().close().await;
    cmdstream_tests::eventually("the close is logged", || {
        log.text().contains("connection closed")
    })
    .await;
    assert!(log.text().contains("connection opened"), "{}", log.text());
    srv.server.shutdown().await;
}

#[tokio::test]
async fn a_lost_connection_and_the_reconnect_are_logged() {
    let log = Captured::default();
    let _guard = log.install();
    let srv = serve_with(Server::builder()).await;
    let policy = Reconnect::new().backoff(Backoff::new(
        Duration::from_millis(10),
        Duration::from_millis(50),
    ));
    let client = Client::builder()
        .reconnect(policy)
        .connect(srv.addr, &INFO)
        .await
        .unwrap();
    let client = CalcClient::new(client);
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    // The server goes away gracefully and comes back on the same port.
    srv.server.shutdown().await;
    let _ = srv.task.await;
    let listener = loop {
        match tokio::net::TcpListener::bind(srv.addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let server = Server::builder().build(cmdstream_tests::CalcServer::new(
        cmdstream_tests::Calc::new(cmdstream_tests::Probe::default()),
    ));
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let patient =
        client.with_options(cmdstream::CallOptions::new().timeout(Duration::from_secs(10)));
    assert_eq!(patient.add(2, 2).await.unwrap(), 4);
    let text = log.text();
    assert!(text.contains("going away"), "{text}");
    assert!(text.contains("reconnected"), "{text}");
    client.inner().close().await;
    server.shutdown().await;
    serving.await.unwrap().unwrap();
}
