//! A server certificate that can be replaced while the server runs, and
//! the resolver through which each handshake picks the one current then.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_rustls::rustls::{self, sign::CertifiedKey};

use super::pem::certified_key;
use crate::error::Error;

/// What a server presents: a fixed certificate, or whatever a
/// [`CertificateRotation`] holds at each handshake.
#[derive(Debug)]
pub(super) struct Resolver(pub(super) watch::Receiver<Arc<CertifiedKey>>);

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.borrow().clone())
    }
}

/// A server's certificate that can be replaced while it runs: connections
/// made after [`replace`](Self::replace) get the new certificate, open
/// ones go on with theirs.
///
/// # Examples
///
/// ```no_run
/// # fn f(cert: &[u8], key: &[u8], renewed_cert: &[u8], renewed_key: &[u8]) -> cmdstream::Result<()> {
/// use cmdstream::tls::{CertificateRotation, ServerTls};
///
/// let rotation = CertificateRotation::from_pem(cert, key)?;
/// let tls = ServerTls::rotating(&rotation).build()?;
/// // ... later, when the certificate is renewed:
/// rotation.replace(renewed_cert, renewed_key)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CertificateRotation {
    current: Arc<watch::Sender<Arc<CertifiedKey>>>,
}

impl CertificateRotation {
    /// Starts with this certificate chain and key (PEM).
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] ([`TlsErrorKind::Config`]) when the PEM holds no
    /// certificate or a key that does not match it.
    ///
    /// [`TlsErrorKind::Config`]: crate::error::TlsErrorKind::Config
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let (current, _) = watch::channel(certified_key(chain_pem, key_pem)?);
        Ok(CertificateRotation {
            current: Arc::new(current),
        })
    }

    /// What each handshake from now on reads its certificate from.
    pub(super) fn subscribe(&self) -> watch::Receiver<Arc<CertifiedKey>> {
        self.current.subscribe()
    }

    /// Presents this certificate chain and key (PEM) from the next
    /// handshake on.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Self::from_pem); the certificate in use is kept then.
    pub fn replace(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), Error> {
        self.current
            .send_replace(certified_key(chain_pem, key_pem)?);
        Ok(())
    }
}
