//! PEM in, rustls types out: certificate chains, private keys, CA roots,
//! and a chain with its key as one certified key, each failure a
//! configuration error naming what did not read.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{sign::CertifiedKey, RootCertStore};

use super::{config_error, provider};
use crate::error::Error;

pub(super) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(format_args!("unreadable certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(config_error("the PEM holds no certificate"));
    }
    Ok(certs)
}

pub(super) fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| config_error(format_args!("unreadable private key PEM: {e}")))
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| config_error(format_args!("{}: {e}", path.display())))
}

pub(super) fn roots(pem: &[u8]) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem)? {
        roots
            .add(cert)
            .map_err(|e| config_error(format_args!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

pub(super) fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, Error> {
    let key = CertifiedKey::from_der(certificates(chain_pem)?, private_key(key_pem)?, &provider())
        .map_err(|e| config_error(format_args!("the key does not fit the certificate: {e}")))?;
    Ok(Arc::new(key))
}
