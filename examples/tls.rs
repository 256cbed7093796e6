//! Mutual TLS end to end, with zero setup: a certificate authority, a
//! server certificate and two client certificates are made at start, in
//! memory; the server verifies every client against the CA, and its
//! authentication hook admits only the clients it knows. One client is
//! admitted, one is refused for its certificate, one has none at all.
//!
//! Run it with `cargo run --example tls`.

use cmdstream::tls::{ClientTls, ServerTls};
use cmdstream::{AuthError, CallContext, Client, Error, Principal, Server};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A vault that tells each client what it may read.
#[cmdstream::receiver]
trait Vault {
    /// Who the server says the caller is.
    async fn whoami(&self, ctx: &CallContext) -> String;
}

struct MyVault;

impl Vault for MyVault {
    async fn whoami(&self, ctx: &CallContext) -> String {
        ctx.principal::<String>().cloned().unwrap_or_default()
    }
}

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

/// Issues a certificate for `names` with `usage` from `ca`.
fn issue(ca: &CertifiedIssuer<'_, KeyPair>, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Pem {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("valid names");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, ca).expect("a certificate");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A CA, and what it issues: the server's certificate and two clients'.
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "example CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let server_cert = issue(&ca, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let ada = issue(&ca, &["ada"], ExtendedKeyUsagePurpose::ClientAuth);
    let eve = issue(&ca, &["eve"], ExtendedKeyUsagePurpose::ClientAuth);
    println!("made a CA, a server certificate and client certificates for ada and eve");

    // The server: TLS with client certificates required, and a hook that
    // admits only the certificates it knows (here: ada's, by its bytes).
    let tls = ServerTls::from_pem(server_cert.cert.as_bytes(), server_cert.key.as_bytes())
        .require_client_cert(ca.pem().as_bytes())
        .build()?;
    let known = der(&ada.cert);
    let server = Server::builder()
        .tls(tls)
        .authenticate(move |conn| {
            let leaf = conn
                .tls()
                .and_then(|t| t.peer_certificates.first().cloned());
            let known = known.clone();
            async move {
                match leaf {
                    Some(cert) if cert.as_ref() == known.as_slice() => {
                        Ok(Principal::new("ada".to_string()))
                    }
                    Some(_) => Err(AuthError::permission_denied(
                        "this certificate is not admitted",
                    )),
                    None => Err(AuthError::unauthenticated("no client certificate")),
                }
            }
        })
        .build(VaultServer::new(MyVault));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("serving mutual TLS on localhost:{port}");

    // Each client trusts the CA and presents its own certificate.
    let client_tls = |who: Option<&Pem>| {
        let tls = ClientTls::new().ca_pem(ca.pem().as_bytes());
        match who {
            Some(pem) => tls.identity_pem(pem.cert.as_bytes(), pem.key.as_bytes()),
            None => tls,
        }
        .build()
    };
    let connect =
        |tls: ClientTls| VaultClient::connect_with(Client::builder().tls(tls), ("localhost", port));

    let as_ada = connect(client_tls(Some(&ada))?).await?;
    println!(
        "ada connected; the server says she is {:?}",
        as_ada.whoami().await?
    );

    match connect(client_tls(Some(&eve))?).await {
        Err(Error::PermissionDenied(why)) => println!("eve was refused: {why}"),
        other => return Err(format!("eve should have been refused, got {other:?}").into()),
    }
    match connect(client_tls(None)?).await {
        Err(Error::Tls(e)) => println!("a client without a certificate was refused: {e}"),
        other => return Err(format!("a client without a certificate got {other:?}").into()),
    }

    server.shutdown().await;
    println!("done");
    Ok(())
}

/// The DER bytes of the first certificate in `pem`.
fn der(pem: &str) -> Vec<u8> {
    use cmdstream::tls::rustls::pki_types::pem::PemObject;
    cmdstream::tls::rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a certificate")
        .to_vec()
}
