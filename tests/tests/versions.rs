//! Two versions of one service definition meet: a server that added
//! commands serves older clients; a changed or missing command is refused at
//! connect time, named, with both fingerprints — never garbled results later.
#![allow(missing_docs)] // test-only receiver traits

use cmdstream::{Error, Server};

mod v1 {
    #[cmdstream::receiver]
    pub trait Calc {
        async fn add(&self, a: i64, b: i64) -> i64;
    }

    pub(crate) struct Impl;

    impl Calc for Impl {
        async fn add(&self, a: i64, b: i64) -> i64 {
            a + b
        }
    }
}

mod v2_changed_type {
    // `add` now takes i32: same name, same derived id, different meaning.
    #[cmdstream::receiver]
    pub trait Calc {
        async fn add(&self, a: i32, b: i32) -> i32;
    }
}

mod v2_renamed_keeping_wire_name {
    // Renamed in Rust, kept on the wire: still compatible.
    #[cmdstream::receiver]
    pub trait Calc {
        #[command(name = "add")]
        async fn sum(&self, a: i64, b: i64) -> i64;
    }
}

mod v2_added_a_command {
    // A newer definition: everything v1 has, plus `sub`.
    #[cmdstream::receiver]
    pub trait Calc {
        async fn add(&self, a: i64, b: i64) -> i64;
        async fn sub(&self, a: i64, b: i64) -> i64;
    }

    pub(crate) struct Impl;

    impl Calc for Impl {
        async fn add(&self, a: i64, b: i64) -> i64 {
            a + b
        }

        async fn sub(&self, a: i64, b: i64) -> i64 {
            a - b
        }
    }
}

async fn serve_v1() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(v1::CalcServer::new(v1::Impl));
    tokio::spawn(async move { server.serve(listener).await });
    addr
}

#[tokio::test]
async fn a_changed_argument_type_is_refused_at_connect_naming_both_fingerprints() {
    let addr = serve_v1().await;
    let err = v2_changed_type::CalcClient::connect(addr)
        .await
        .unwrap_err();
    let Error::Incompatible(message) = &err else {
        panic!("expected Incompatible, got {err:?}")
    };
    let ours = format!("{:#018x}", v2_changed_type::CalcClient::INFO.fingerprint);
    let theirs = format!("{:#018x}", v1::CalcClient::INFO.fingerprint);
    assert_ne!(ours, theirs);
    assert!(
        message.contains(&ours) && message.contains(&theirs),
        "{message}"
    );
}

#[tokio::test]
async fn a_rust_rename_that_keeps_the_wire_name_stays_compatible() {
    let addr = serve_v1().await;
    assert_eq!(
        v2_renamed_keeping_wire_name::CalcClient::INFO.fingerprint,
        v1::CalcClient::INFO.fingerprint
    );
    let client = v2_renamed_keeping_wire_name::CalcClient::connect(addr)
        .await
        .unwrap();
    assert_eq!(client.sum(40, 2).await.unwrap(), 42);
}

#[tokio::test]
async fn a_server_that_added_a_command_still_serves_older_clients() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(v2_added_a_command::CalcServer::new(
        v2_added_a_command::Impl,
    ));
    tokio::spawn(async move { server.serve(listener).await });
    assert_ne!(
        v1::CalcClient::INFO.fingerprint,
        v2_added_a_command::CalcClient::INFO.fingerprint
    );
    let old = v1::CalcClient::connect(addr).await.unwrap();
    assert_eq!(old.add(1, 2).await.unwrap(), 3);
    let new = v2_added_a_command::CalcClient::connect(addr).await.unwrap();
    assert_eq!(new.sub(5, 2).await.unwrap(), 3);
}

#[tokio::test]
async fn a_client_using_a_command_the_server_lacks_is_refused_naming_it() {
    // A newer client against an older server: the server has no `sub`.
    let addr = serve_v1().await;
    let err = v2_added_a_command::CalcClient::connect(addr)
        .await
        .unwrap_err();
    let Error::Incompatible(message) = &err else {
        panic!("expected Incompatible, got {err:?}")
    };
    assert!(message.contains("no command `sub`"), "{message}");
}
