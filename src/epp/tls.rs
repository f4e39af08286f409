//! The EPP listener's TLS: the operator's certificate and key from PEM
//! files, or a test CA and a server certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by it (a CA certificate is refused as a
//! server's own by rustls and other clients), made once and kept in the
//! database. rustls with the `ring` provider only.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::crypto::ring;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};
use crate::store::epp::Tls;

/// The names the test server certificate is made for.
const TEST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("EPP TLS: {what}: {e}"))
}

/// A new test CA and a server certificate it signed, PEM.
pub fn make_test_material() -> Result<Tls> {
    let ca_key = KeyPair::generate().map_err(|e| tls_error("CA key", e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error("CA", e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "regdesk EPP test CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| tls_error("CA", e))?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(|e| tls_error("server key", e))?;
    let names: Vec<String> = TEST_NAMES.iter().map(|n| n.to_string()).collect();
    let mut server = CertificateParams::new(names).map_err(|e| tls_error("server", e))?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server
        .signed_by(&key, &issuer)
        .map_err(|e| tls_error("server certificate", e))?;
    Ok(Tls {
        ca_cert: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The server's TLS configuration from a PEM certificate chain and key.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid("epp_cert", format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(Error::invalid("epp_cert", "holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::invalid("epp_key", format!("not a PEM private key: {e}")))?;
    // ring, not aws-lc (which needs cmake and a long build); rustls marks
    // ring's provider deprecated only for its lack of post-quantum key
    // exchange, which no EPP client asks for.
    #[allow(deprecated)]
    let provider = ring::default_provider();
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::invalid("epp_key", format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_material_makes_a_server_config_and_is_not_a_ca_as_server() {
        let tls = make_test_material().unwrap();
        assert!(tls.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(tls.ca_cert, tls.cert);
        server_config(tls.cert.as_bytes(), tls.key.as_bytes()).unwrap();
    }

    #[test]
    fn a_file_that_is_not_pem_is_refused_naming_the_flag() {
        let err = server_config(b"nonsense", b"nonsense").unwrap_err();
        assert_eq!(err.field(), Some("epp_cert"));
    }
}
