//! TLS for the API: TLS 1.3 only, from a PEM certificate chain and key.
//!
//! Older versions are refused outright: every client the API has (curl, Prometheus,
//! `lifeboat status`) speaks 1.3, and one version means one set of settings to audit.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use super::DaemonError;

fn tls_err(path: &Path, what: &str, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Tls(format!("{what} {}: {e}", path.display()))
}

/// A TLS 1.3 acceptor for `cert` (PEM chain, leaf first) and `key` (PEM private key).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, DaemonError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, "cannot read certificate", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, "cannot parse certificate", e))?;
    if chain.is_empty() {
        return Err(tls_err(cert, "no certificate in", "expected a PEM CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, "cannot read private key", e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| DaemonError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(cert, "certificate and key do not form a usable pair:", e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
