//! TLS and mutual TLS through rustls, always with the `ring` provider,
//! chosen explicitly: never the process-wide default, so a dependency that
//! enables another provider changes nothing here, and nothing panics for
//! want of one.

mod pem;
mod rotation;
mod sniff;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::rustls::{
    self, crypto::CryptoProvider, server::WebPkiClientVerifier, sign::CertifiedKey,
    AlertDescription, CertificateError, RootCertStore,
};

pub use self::rotation::CertificateRotation;
pub(crate) use self::sniff::sniff;

use self::pem::{certificates, certified_key, private_key, read, roots};
use self::rotation::Resolver;
use super::endpoint::Endpoint;
use crate::error::{Error, TlsError, TlsErrorKind};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(what: impl fmt::Display) -> Error {
    Error::Tls(TlsError::new(TlsErrorKind::Config, what.to_string()))
}

/// A server's TLS settings, for [`ServerBuilder::tls`](crate::ServerBuilder::tls).
///
/// # Examples
///
/// Mutual TLS, clients verified against a CA:
///
/// ```no_run
/// # fn f(cert: &[u8], key: &[u8], client_ca: &[u8]) -> cmdstream::Result<()> {
/// use cmdstream::tls::ServerTls;
///
/// let tls = ServerTls::from_pem(cert, key).require_client_cert(client_ca).build()?;
/// let builder = cmdstream::Server::builder().tls(tls);
/// # Ok(()) }
/// ```
#[must_use = "build() makes the settings"]
pub struct ServerTlsBuilder {
    identity: Result<Identity, Error>,
    client_ca: Option<Result<RootCertStore, Error>>,
}

enum Identity {
    Fixed(Arc<CertifiedKey>),
    Rotating(watch::Receiver<Arc<CertifiedKey>>),
}

/// A server's TLS settings, made by [`ServerTls::from_pem`] and friends.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Presents this certificate chain and private key, both PEM.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> ServerTlsBuilder {
        ServerTlsBuilder {
            identity: certified_key(chain_pem, key_pem).map(Identity::Fixed),
            client_ca: None,
        }
    }

    /// Presents the certificate chain and key in these PEM files.
    pub fn from_pem_files(chain: impl AsRef<Path>, key: impl AsRef<Path>) -> ServerTlsBuilder {
        let identity = read(chain.as_ref()).and_then(|chain| {
            let key = read(key.as_ref())?;
            certified_key(&chain, &key).map(Identity::Fixed)
        });
        ServerTlsBuilder {
            identity,
            client_ca: None,
        }
    }

    /// Presents whatever `rotation` holds at each handshake.
    pub fn rotating(rotation: &CertificateRotation) -> ServerTlsBuilder {
        ServerTlsBuilder {
            identity: Ok(Identity::Rotating(rotation.subscribe())),
            client_ca: None,
        }
    }

    /// Uses a rustls configuration as it is. Build it with
    /// `rustls::ServerConfig::builder_with_provider(..)` and an explicit
    /// provider: with `builder()`, rustls picks the process default, which
    /// panics when more than one provider is compiled in.
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls {
            acceptor: config.into(),
        }
    }
}

impl ServerTlsBuilder {
    /// Requires every client to present a certificate signed by one of the
    /// CAs in `ca_pem` (mutual TLS); the verified certificate reaches the
    /// authentication hook and every call's
    /// [`connection`](crate::CallContext::connection).
    pub fn require_client_cert(mut self, ca_pem: &[u8]) -> Self {
        self.client_ca = Some(roots(ca_pem));
        self
    }

    /// The settings.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] ([`TlsErrorKind::Config`]) for a certificate, key or
    /// CA that cannot be used.
    pub fn build(self) -> Result<ServerTls, Error> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?;
        let builder = match self.client_ca.transpose()? {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(config_error)?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let resolver = match self.identity? {
            Identity::Fixed(key) => Resolver(watch::channel(key).1),
            Identity::Rotating(rx) => Resolver(rx),
        };
        let config = builder.with_cert_resolver(Arc::new(resolver));
        Ok(ServerTls::from_config(Arc::new(config)))
    }
}

/// A client's TLS settings, for [`ClientBuilder::tls`](crate::ClientBuilder::tls).
///
/// # Examples
///
/// ```no_run
/// # fn f(ca: &[u8], cert: &[u8], key: &[u8]) -> cmdstream::Result<()> {
/// use cmdstream::tls::ClientTls;
///
/// // Trust this CA; present a certificate of our own (mutual TLS).
/// let tls = ClientTls::new().ca_pem(ca).identity_pem(cert, key).build()?;
/// let builder = cmdstream::Client::builder().tls(tls);
/// # Ok(()) }
/// ```
#[must_use = "build() makes the settings"]
#[derive(Default)]
pub struct ClientTlsBuilder {
    roots: Option<Result<RootCertStore, Error>>,
    identity: Option<Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error>>,
    server_name: Option<Result<ServerName<'static>, Error>>,
}

/// A client's TLS settings.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Settings to fill in: at least the CAs to trust.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Uses a rustls configuration as it is (see [`ServerTls::from_config`]
    /// on choosing its provider).
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls {
            connector: config.into(),
            server_name: None,
        }
    }

    /// Opens TLS over `io` to `endpoint`.
    pub(crate) async fn connect<IO>(
        &self,
        io: IO,
        endpoint: &Endpoint,
    ) -> Result<tokio_rustls::client::TlsStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = match (&self.server_name, endpoint) {
            (Some(name), _) => name.clone(),
            (None, Endpoint::Host { host, .. }) => ServerName::try_from(host.to_string())
                .map_err(|e| config_error(format_args!("`{host}` is not a server name: {e}")))?,
            (None, Endpoint::Addr(addr)) => ServerName::IpAddress(addr.ip().into()),
            #[cfg(unix)]
            (None, Endpoint::Unix(path)) => {
                return Err(config_error(format_args!(
                    "TLS to {} needs a server name (ClientTlsBuilder::server_name)",
                    path.display()
                )))
            }
        };
        self.connector
            .connect(name, io)
            .await
            .map_err(|e| classify(e.into()))
    }
}

impl ClientTlsBuilder {
    /// Trusts the CA certificates in `pem`, besides any given before.
    pub fn ca_pem(self, pem: &[u8]) -> Self {
        self.trust(roots(pem))
    }

    /// Trusts the CA certificates in the PEM file at `path`, besides any
    /// given before.
    pub fn ca_pem_file(self, path: impl AsRef<Path>) -> Self {
        self.trust(read(path.as_ref()).and_then(|pem| roots(&pem)))
    }

    /// Trusts the platform's CA store (on Linux the system's bundle; the
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` variables, when set, name the
    /// certificates to load instead), besides any CA given before. Needs
    /// the `tls-system-roots` feature.
    ///
    /// Certificates of the store that rustls cannot use are skipped; the
    /// settings fail to build only if none is usable.
    #[cfg(feature = "tls-system-roots")]
    pub fn system_roots(self) -> Self {
        let loaded = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(loaded.certs);
        let found = if added > 0 {
            Ok(store)
        } else {
            let why: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            Err(config_error(format_args!(
                "no usable CA in the platform's store{}{}",
                if why.is_empty() { "" } else { ": " },
                why.join("; ")
            )))
        };
        self.trust(found)
    }

    /// Adds `more` to the CAs trusted; the first failure is kept.
    fn trust(mut self, more: Result<RootCertStore, Error>) -> Self {
        self.roots = Some(match (self.roots.take(), more) {
            (None, more) => more,
            (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
            (Some(Ok(mut store)), Ok(more)) => {
                store.roots.extend(more.roots);
                Ok(store)
            }
        });
        self
    }

    /// Presents this certificate chain and key (PEM) to servers that ask
    /// for one (mutual TLS).
    pub fn identity_pem(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Self {
        self.identity =
            Some(certificates(chain_pem).and_then(|chain| Ok((chain, private_key(key_pem)?))));
        self
    }

    /// The name to check the server's certificate against (and send as
    /// SNI). By default the endpoint's host name, or its IP address.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.server_name = Some(
            ServerName::try_from(name.clone())
                .map_err(|e| config_error(format_args!("`{name}` is not a server name: {e}"))),
        );
        self
    }

    /// The settings.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] ([`TlsErrorKind::Config`]) when no CA was given, or a
    /// certificate, key or name cannot be used.
    pub fn build(self) -> Result<ClientTls, Error> {
        let roots = self.roots.ok_or_else(|| {
            config_error("no CA to trust: give one with ca_pem or system_roots")
        })??;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_root_certificates(roots);
        let config = match self.identity.transpose()? {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_error(format_args!("unusable client certificate: {e}")))?,
        };
        Ok(ClientTls {
            connector: Arc::new(config).into(),
            server_name: self.server_name.transpose()?,
        })
    }
}

/// What a server learned of a TLS client in the handshake.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The certificate chain the client presented, leaf first, verified
    /// against the configured CAs; empty without mutual TLS.
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The server name the client asked for (SNI).
    pub server_name: Option<String>,
}

impl TlsInfo {
    pub(crate) fn of<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> TlsInfo {
        let (_, conn) = stream.get_ref();
        TlsInfo {
            peer_certificates: conn
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
            server_name: conn.server_name().map(str::to_owned),
        }
    }
}

/// Names what a TLS failure means, when `error` is one: rustls reports
/// through `io::Error`, during the TLS handshake or (for a certificate the
/// server refuses after a TLS 1.3 handshake) on the first read after it.
pub(crate) fn classify(error: Error) -> Error {
    let Error::Io(io) = &error else {
        return error;
    };
    let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return error;
    };
    use TlsErrorKind as K;
    let kind = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => K::UnknownIssuer,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => K::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                K::NameMismatch
            }
            _ => K::Other,
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            K::CertificateRequired
        }
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => K::CertificateRefused,
        rustls::Error::NoCertificatesPresented => K::CertificateRequired,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => K::NotTls,
        _ => K::Other,
    };
    Error::Tls(TlsError::new(kind, tls.to_string()))
}
