//! TLS for the API: TLS 1.3 only, from a PEM certificate chain and key; with
//! `--tls-client-ca`, mutual TLS (every client must present a certificate that CA
//! issued and that is within its validity dates). All three files are read again on
//! SIGHUP.
//!
//! Older versions are refused outright: every client the API has (curl, Prometheus,
//! `lifeboat status`) speaks 1.3, and one version means one set of settings to audit.
//! A reload builds a complete new configuration before it replaces the old one, so a
//! bad new file leaves the certificate in effect, and the listener is never closed:
//! connections already open keep the configuration they were accepted with, new ones
//! get the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use super::{DaemonConfig, DaemonError};

fn tls_err(path: &Path, what: &str, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Tls(format!("{what} {}: {e}", path.display()))
}

/// The files the API's TLS comes from.
#[derive(Debug, Clone)]
struct TlsFiles {
    /// PEM certificate chain, leaf first.
    cert: PathBuf,
    /// PEM private key.
    key: PathBuf,
    /// PEM certificates of the CA(s) that issue client certificates: mutual TLS.
    client_ca: Option<PathBuf>,
}

/// The API's TLS settings in effect, replaced as a whole on reload.
pub struct Tls {
    files: TlsFiles,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    /// The API's TLS settings, if `--tls-cert` and `--tls-key` are given.
    pub fn from_config(cfg: &DaemonConfig) -> Result<Option<Arc<Tls>>, DaemonError> {
        let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (None, None) if cfg.tls_client_ca.is_some() => {
                return Err(DaemonError::Tls(
                    "--tls-client-ca needs --tls-cert and --tls-key".into(),
                ));
            }
            (None, None) => return Ok(None),
            _ => return Err(DaemonError::Tls("give both --tls-cert and --tls-key".into())),
        };
        if cfg.tls_client_ca.is_some() != cfg.tls_client_roles.is_some() {
            return Err(DaemonError::Tls(
                "give --tls-client-ca and --tls-client-roles together: the CA says who may connect, the roles file what each certificate may do".into(),
            ));
        }
        let client_ca = cfg.tls_client_ca.clone();
        Ok(Some(Arc::new(Tls::load(TlsFiles { cert, key, client_ca })?)))
    }

    fn load(files: TlsFiles) -> Result<Tls, DaemonError> {
        let acceptor = RwLock::new(acceptor(&files)?);
        Ok(Tls { files, acceptor })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Read the files again; on any error the settings in effect stay.
    pub fn reload(&self) -> Result<(), DaemonError> {
        let fresh = acceptor(&self.files)?;
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, DaemonError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(path, "cannot read certificate", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(path, "cannot parse certificate", e))?;
    if certs.is_empty() {
        return Err(tls_err(path, "no certificate in", "expected a PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// A verifier that demands a certificate issued by one of the CAs in `path`.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, DaemonError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| tls_err(path, "unusable CA certificate in", e))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| tls_err(path, "cannot use the client CA", e))
}

/// A TLS 1.3 acceptor for the files.
fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, DaemonError> {
    let chain = read_certs(&files.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_err(&files.key, "cannot read private key", e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| DaemonError::Tls(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(&files.cert, "certificate and key do not form a usable pair:", e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
