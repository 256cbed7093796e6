//! Certificates made in-process for the TLS tests: certificate
//! authorities, and identities they issue, valid or expired, for whatever
//! names a test needs. Nothing touches the disk.

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct Identity {
    /// The certificate (the leaf; these CAs issue directly).
    pub cert: String,
    /// Its private key.
    pub key: String,
}

impl Ca {
    /// A new CA called `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// The CA's certificate, PEM: what peers trust.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue_with(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Identity {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Identity {
        self.issue_with(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `names` that expired long ago.
    pub fn expired_server(&self, names: &[&str]) -> Identity {
        self.issue_with(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate named `name`.
    pub fn client(&self, name: &str) -> Identity {
        self.issue_with(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    /// A client certificate named `name` that expired long ago.
    pub fn expired_client(&self, name: &str) -> Identity {
        self.issue_with(&[name], ExtendedKeyUsagePurpose::ClientAuth, true)
    }
}
