#![allow(missing_docs)] // a test crate
//! A TLS client that trusts the platform's CA store. The store is the
//! process's environment (`SSL_CERT_FILE`), which a test cannot change
//! for itself without `unsafe`; so the test runs itself again as a child
//! process with the variable naming a CA made for it.

use std::process::Command;

use cmdstream::tls::{ClientTls, ServerTls};
use cmdstream::{Client, Error, Server, TlsErrorKind};
use cmdstream_tests::pki::{Ca, Identity};
use cmdstream_tests::raw::within;
use cmdstream_tests::{Calc, CalcClient, CalcServer, Probe};

/// Set in the child: the part of the test that runs with the store.
const CHILD: &str = "CMDSTREAM_SYSTEM_ROOTS_CHILD";

#[test]
fn a_client_trusting_the_platform_store_trusts_what_the_store_holds() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let ca = Ca::new("platform CA");
    let dir = std::env::temp_dir().join(format!("cmdstream-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();
    let server = ca.server(&["localhost"]);
    std::fs::write(dir.join("server.pem"), &server.cert).unwrap();
    std::fs::write(dir.join("server.key"), &server.key).unwrap();

    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_client_trusting_the_platform_store_trusts_what_the_store_holds",
            "--nocapture",
        ])
        .env(CHILD, &dir)
        .env("SSL_CERT_FILE", &bundle)
        .env_remove("SSL_CERT_DIR")
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the child run failed: {status}");
}

/// Serves with a certificate of the store's CA, then with one of another
/// CA: the client trusts the first and refuses the second.
fn child() {
    let dir = std::path::PathBuf::from(std::env::var_os(CHILD).unwrap());
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    // Issued by the CA in the store; then one of a CA that is not.
    let in_store = Identity {
        cert: read("server.pem"),
        key: read("server.key"),
    };
    let stranger = Ca::new("not in the store").server(&["localhost"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tls = ClientTls::new().system_roots().build().unwrap();
        for (identity, trusted) in [(&in_store, true), (&stranger, false)] {
            let server_tls = ServerTls::from_pem(identity.cert.as_bytes(), identity.key.as_bytes())
                .build()
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = Server::builder()
                .tls(server_tls)
                .build(CalcServer::new(Calc::new(Probe::default())));
            tokio::spawn(async move { server.serve(listener).await });

            let builder = Client::builder().tls(tls.clone());
            let connected = within(
                "the connect",
                builder.connect(("localhost", port), &cmdstream_tests::calc::INFO),
            )
            .await;
            match (trusted, connected) {
                (true, Ok(client)) => {
                    let client = CalcClient::new(client);
                    assert_eq!(within("a call", client.add(2, 3)).await.unwrap(), 5);
                }
                (false, Err(Error::Tls(e))) => {
                    assert_eq!(e.kind(), TlsErrorKind::UnknownIssuer, "{e}");
                }
                (trusted, other) => panic!("trusted {trusted}: {other:?}"),
            }
        }
    });
}
