#![allow(missing_docs)] // a test crate: the receiver trait documents only what matters
//! TLS, mutual TLS and authentication over loopback, with certificates
//! made in-process: calls work end to end, the client's verified identity
//! reaches the server, certificates rotate under a running server, and
//! every refusal is typed and comes at once (the handshake timeouts here
//! are an hour: a refusal that waited for one would hang the test).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmdstream::tls::{CertificateRotation, ClientTls, ServerTls};
use cmdstream::{
    AuthError, CallContext, Client, Error, Principal, Server, ServerBuilder, TlsErrorKind,
};
use cmdstream_tests::pki::{Ca, Identity};
use cmdstream_tests::raw::within;
use tokio::net::TcpListener;

#[cmdstream::receiver]
pub trait Greeter {
    /// Greets whoever the authentication hook said the client is.
    async fn hello(&self, ctx: &CallContext) -> String;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, ctx: &CallContext) -> String {
        match ctx.principal::<String>() {
            Some(who) => format!("hello, {who}"),
            None => "hello, whoever you are".to_string(),
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// A server with `builder`'s settings (and an hour's handshake timeout) on
/// a loopback port.
async fn serve(builder: ServerBuilder) -> (SocketAddr, Server<GreeterServer<MyGreeter>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = builder
        .handshake_timeout(HOUR)
        .build(GreeterServer::new(MyGreeter));
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    (addr, server)
}

fn server_tls(identity: &Identity) -> cmdstream::tls::ServerTlsBuilder {
    ServerTls::from_pem(identity.cert.as_bytes(), identity.key.as_bytes())
}

/// A client that trusts `ca` and presents `identity`, if any.
fn client_tls(ca: &Ca, identity: Option<&Identity>) -> ClientTls {
    let tls = ClientTls::new().ca_pem(ca.pem().as_bytes());
    match identity {
        Some(id) => tls.identity_pem(id.cert.as_bytes(), id.key.as_bytes()),
        None => tls,
    }
    .build()
    .unwrap()
}

async fn connect(addr: SocketAddr, tls: ClientTls) -> Result<GreeterClient, Error> {
    let builder = Client::builder().tls(tls).handshake_timeout(HOUR);
    within(
        "the TLS connect",
        GreeterClient::connect_with(builder, ("localhost", addr.port())),
    )
    .await
}

fn tls_kind(result: Result<GreeterClient, Error>) -> TlsErrorKind {
    match result {
        Err(Error::Tls(e)) => e.kind(),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("the connection was made"),
    }
}

struct Pki {
    ca: Ca,
    server: Identity,
    client: Identity,
}

fn pki() -> Pki {
    let ca = Ca::new("test CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let client = ca.client("ada");
    Pki { ca, server, client }
}

#[tokio::test]
async fn calls_work_over_tls() {
    let pki = pki();
    let (addr, _server) =
        serve(Server::builder().tls(server_tls(&pki.server).build().unwrap())).await;
    let client = connect(addr, client_tls(&pki.ca, None)).await.unwrap();
    assert_eq!(
        within("a call", client.hello()).await.unwrap(),
        "hello, whoever you are"
    );
    // Dialed by address, the certificate's IP address is what is checked.
    let builder = Client::builder().tls(client_tls(&pki.ca, None));
    let by_addr = within(
        "a connect by address",
        GreeterClient::connect_with(builder, addr),
    )
    .await;
    assert_eq!(
        within("a call", by_addr.unwrap().hello()).await.unwrap(),
        "hello, whoever you are"
    );
}

#[tokio::test]
async fn with_mutual_tls_the_verified_client_certificate_reaches_the_server() {
    let pki = pki();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tls = server_tls(&pki.server)
        .require_client_cert(pki.ca.pem().as_bytes())
        .build()
        .unwrap();
    let builder = Server::builder().tls(tls).on_connect({
        let seen = seen.clone();
        move |info| {
            let tls = info.tls().expect("a TLS connection");
            seen.lock()
                .unwrap()
                .push((tls.peer_certificates.len(), tls.server_name.clone()));
        }
    });
    let (addr, _server) = serve(builder).await;
    let client = connect(addr, client_tls(&pki.ca, Some(&pki.client)))
        .await
        .unwrap();
    assert_eq!(
        within("a call", client.hello()).await.unwrap(),
        "hello, whoever you are"
    );
    assert_eq!(*seen.lock().unwrap(), [(1, Some("localhost".to_string()))]);
}

#[tokio::test]
async fn every_refusal_is_typed_and_comes_at_once() {
    let pki = pki();
    let mtls = server_tls(&pki.server)
        .require_client_cert(pki.ca.pem().as_bytes())
        .build()
        .unwrap();
    let (addr, _server) = serve(Server::builder().tls(mtls)).await;
    let bystander = connect(addr, client_tls(&pki.ca, Some(&pki.client)))
        .await
        .unwrap();

    // No client certificate against mutual TLS.
    let kind = tls_kind(connect(addr, client_tls(&pki.ca, None)).await);
    assert_eq!(kind, TlsErrorKind::CertificateRequired);
    // A client certificate from another CA.
    let stranger = Ca::new("another CA").client("mallory");
    let kind = tls_kind(connect(addr, client_tls(&pki.ca, Some(&stranger))).await);
    assert_eq!(kind, TlsErrorKind::CertificateRefused);
    // An expired client certificate.
    let stale = pki.ca.expired_client("ada");
    let kind = tls_kind(connect(addr, client_tls(&pki.ca, Some(&stale))).await);
    assert_eq!(kind, TlsErrorKind::CertificateRefused);
    // A server whose CA the client does not trust.
    let other = Ca::new("not trusted");
    let kind = tls_kind(connect(addr, client_tls(&other, Some(&pki.client))).await);
    assert_eq!(kind, TlsErrorKind::UnknownIssuer);
    // A plaintext client against the TLS port.
    let plain = within("a plaintext connect", GreeterClient::connect(addr)).await;
    assert_eq!(tls_kind(plain), TlsErrorKind::TlsRequired);

    // The bystander was never disturbed.
    assert_eq!(
        within("a call", bystander.hello()).await.unwrap(),
        "hello, whoever you are"
    );
}

#[tokio::test]
async fn a_server_certificate_that_expired_or_names_another_host_is_refused() {
    let pki = pki();
    let expired = pki.ca.expired_server(&["localhost"]);
    let (addr, _s) = serve(Server::builder().tls(server_tls(&expired).build().unwrap())).await;
    let kind = tls_kind(connect(addr, client_tls(&pki.ca, None)).await);
    assert_eq!(kind, TlsErrorKind::Expired);

    let elsewhere = pki.ca.server(&["calc.example"]);
    let (addr, _s) = serve(Server::builder().tls(server_tls(&elsewhere).build().unwrap())).await;
    let kind = tls_kind(connect(addr, client_tls(&pki.ca, None)).await);
    assert_eq!(kind, TlsErrorKind::NameMismatch);
    // Told the name to expect, the same client is satisfied.
    let named = ClientTls::new()
        .ca_pem(pki.ca.pem().as_bytes())
        .server_name("calc.example")
        .build()
        .unwrap();
    let client = connect(addr, named).await.unwrap();
    assert_eq!(
        within("a call", client.hello()).await.unwrap(),
        "hello, whoever you are"
    );
}

#[tokio::test]
async fn a_tls_client_against_a_plaintext_port_is_told_at_once() {
    let pki = pki();
    let (addr, _server) = serve(Server::builder()).await;
    let kind = tls_kind(connect(addr, client_tls(&pki.ca, None)).await);
    assert_eq!(kind, TlsErrorKind::NotTls);
    // The plaintext server still serves plaintext clients.
    let plain = within("a plaintext connect", GreeterClient::connect(addr))
        .await
        .unwrap();
    assert_eq!(
        within("a call", plain.hello()).await.unwrap(),
        "hello, whoever you are"
    );
}

#[tokio::test]
async fn a_silent_client_on_a_tls_port_holds_up_nobody_else() {
    let pki = pki();
    let (addr, _server) =
        serve(Server::builder().tls(server_tls(&pki.server).build().unwrap())).await;
    // Connects, and says nothing: its TLS handshake waits in its own task.
    let _silent: Vec<_> =
        futures_util::future::join_all((0..8).map(|_| tokio::net::TcpStream::connect(addr))).await;
    let client = connect(addr, client_tls(&pki.ca, None)).await.unwrap();
    assert_eq!(
        within("a call", client.hello()).await.unwrap(),
        "hello, whoever you are"
    );
}

#[tokio::test]
async fn new_connections_get_a_rotated_certificate_while_open_ones_go_on() {
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let old = old_ca.server(&["localhost"]);
    let rotation = CertificateRotation::from_pem(old.cert.as_bytes(), old.key.as_bytes()).unwrap();
    let tls = ServerTls::rotating(&rotation).build().unwrap();
    let (addr, _server) = serve(Server::builder().tls(tls)).await;
    let before = connect(addr, client_tls(&old_ca, None)).await.unwrap();

    let new = new_ca.server(&["localhost"]);
    rotation
        .replace(new.cert.as_bytes(), new.key.as_bytes())
        .unwrap();
    let after = connect(addr, client_tls(&new_ca, None)).await.unwrap();
    assert_eq!(
        within("a call", after.hello()).await.unwrap(),
        "hello, whoever you are"
    );
    let kind = tls_kind(connect(addr, client_tls(&old_ca, None)).await);
    assert_eq!(
        kind,
        TlsErrorKind::UnknownIssuer,
        "new connections get the new certificate"
    );
    assert_eq!(
        within("a call", before.hello()).await.unwrap(),
        "hello, whoever you are"
    );

    // A replacement that does not fit its key is refused; the one in use stays.
    let err = rotation
        .replace(new.cert.as_bytes(), old.key.as_bytes())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Tls(e) if e.kind() == TlsErrorKind::Config),
        "{err:?}"
    );
    connect(addr, client_tls(&new_ca, None)).await.unwrap();
}

/// A server that accepts the token `"s3cret"` as ada and refuses
/// `"banned"`.
fn token_auth(builder: ServerBuilder) -> ServerBuilder {
    builder.authenticate(|conn| {
        let token = conn.metadata().get("token").map(str::to_owned);
        async move {
            match token.as_deref() {
                Some("s3cret") => Ok(Principal::new("ada".to_string())),
                Some("banned") => Err(AuthError::permission_denied("ada is banned")),
                Some(_) => Err(AuthError::unauthenticated("unknown token")),
                None => Err(AuthError::unauthenticated("no token")),
            }
        }
    })
}

async fn connect_with_token(addr: SocketAddr, token: Option<&str>) -> Result<GreeterClient, Error> {
    let builder = match token {
        Some(t) => Client::builder().connection_metadata("token", t),
        None => Client::builder(),
    };
    within("the connect", GreeterClient::connect_with(builder, addr)).await
}

#[tokio::test]
async fn a_token_in_the_handshake_authenticates_and_its_principal_reaches_every_call() {
    let (addr, _server) = serve(token_auth(Server::builder())).await;
    let ada = connect_with_token(addr, Some("s3cret")).await.unwrap();
    assert_eq!(within("a call", ada.hello()).await.unwrap(), "hello, ada");

    let err = connect_with_token(addr, Some("wrong")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated(why) if why.contains("unknown token")),
        "{err:?}"
    );
    let err = connect_with_token(addr, None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated(why) if why.contains("no token")),
        "{err:?}"
    );
    let err = connect_with_token(addr, Some("banned")).await.unwrap_err();
    assert!(
        matches!(&err, Error::PermissionDenied(why) if why.contains("banned")),
        "{err:?}"
    );
    assert_eq!(within("a call", ada.hello()).await.unwrap(), "hello, ada");
}

#[tokio::test]
async fn a_client_certificate_authenticates_and_an_unknown_one_is_denied() {
    let pki = pki();
    let grace = pki.ca.client("grace");
    let known = pki.client.clone();
    let tls = server_tls(&pki.server)
        .require_client_cert(pki.ca.pem().as_bytes())
        .build()
        .unwrap();
    // The certificates this server knows, by their DER bytes.
    let ada_der = der(&known.cert);
    let builder = Server::builder().tls(tls).authenticate(move |conn| {
        let leaf = conn
            .tls()
            .and_then(|t| t.peer_certificates.first().cloned());
        let ada_der = ada_der.clone();
        async move {
            match leaf {
                Some(cert) if cert.as_ref() == ada_der.as_slice() => {
                    Ok(Principal::new("ada".to_string()))
                }
                Some(_) => Err(AuthError::permission_denied(
                    "this certificate is not on the list",
                )),
                None => Err(AuthError::unauthenticated("no client certificate")),
            }
        }
    });
    let (addr, _server) = serve(builder).await;
    let ada = connect(addr, client_tls(&pki.ca, Some(&known)))
        .await
        .unwrap();
    assert_eq!(within("a call", ada.hello()).await.unwrap(), "hello, ada");
    let builder = Client::builder()
        .tls(client_tls(&pki.ca, Some(&grace)))
        .handshake_timeout(HOUR);
    let err = within(
        "grace connects",
        GreeterClient::connect_with(builder, ("localhost", addr.port())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::PermissionDenied(why) if why.contains("not on the list")),
        "{err:?}"
    );
}

fn der(pem: &str) -> Vec<u8> {
    use cmdstream::tls::rustls::pki_types::pem::PemObject;
    cmdstream::tls::rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn tls_needs_no_process_wide_crypto_provider() {
    // Nothing in this process installs a default provider; every
    // configuration names ring itself, so none of this panics.
    assert!(cmdstream::tls::rustls::crypto::CryptoProvider::get_default().is_none());
    let pki = pki();
    server_tls(&pki.server)
        .require_client_cert(pki.ca.pem().as_bytes())
        .build()
        .unwrap();
    client_tls(&pki.ca, Some(&pki.client));
    assert!(cmdstream::tls::rustls::crypto::CryptoProvider::get_default().is_none());
}

#[tokio::test]
async fn a_client_given_two_cas_trusts_both() {
    let first = pki();
    let second = pki();
    let tls = ClientTls::new()
        .ca_pem(first.ca.pem().as_bytes())
        .ca_pem(second.ca.pem().as_bytes())
        .build()
        .unwrap();
    for pki in [&first, &second] {
        let (addr, _server) =
            serve(Server::builder().tls(server_tls(&pki.server).build().unwrap())).await;
        let client = connect(addr, tls.clone()).await.unwrap();
        assert_eq!(
            within("a call", client.hello()).await.unwrap(),
            "hello, whoever you are"
        );
    }
    // A third CA is trusted by neither.
    let third = pki();
    let (addr, _server) =
        serve(Server::builder().tls(server_tls(&third.server).build().unwrap())).await;
    assert_eq!(
        tls_kind(connect(addr, tls).await),
        TlsErrorKind::UnknownIssuer
    );
}
