//! wss:// support: a self-signed certificate generated at start, or one loaded from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsOptions {
    /// Generate a self-signed certificate for these names (and IPs) at start.
    SelfSigned {
        /// Subject alternative names, e.g. `["192.168.4.1", "localhost"]`.
        names: Vec<String>,
        /// Write the generated certificate (PEM) here so an app or test can trust it.
        write_cert: Option<PathBuf>,
    },
    /// Load a certificate chain and private key from PEM files.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The generated certificate could not be written.
    #[error("cannot write the certificate to {path}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// rustls rejected the certificate or key.
    #[error("invalid certificate or key")]
    Config(#[source] rustls::Error),
}

/// A self-signed certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8).
    pub key_pem: String,
}

/// Generates a self-signed certificate for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<SelfSigned, TlsError> {
    let certified =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(TlsError::Generate)?;
    Ok(SelfSigned {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(|source| TlsError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Builds the TLS acceptor for `options` (generating and writing the certificate if asked).
pub(crate) fn acceptor(options: &TlsOptions) -> Result<TlsAcceptor, TlsError> {
    let (chain, key) = match options {
        TlsOptions::SelfSigned { names, write_cert } => {
            let generated = self_signed(names)?;
            if let Some(path) = write_cert {
                write(path, &generated.cert_pem)?;
            }
            let chain = parse_certs(generated.cert_pem.as_bytes(), Path::new("<generated>"))?;
            let key = parse_key(generated.key_pem.as_bytes(), Path::new("<generated>"))?;
            (chain, key)
        }
        TlsOptions::Files { cert, key } => {
            let pem = |path: &Path, what| {
                std::fs::read(path).map_err(|e| TlsError::Pem {
                    what,
                    path: path.display().to_string(),
                    source: rustls::pki_types::pem::Error::Io(e),
                })
            };
            let chain = parse_certs(&pem(cert, "certificate")?, cert)?;
            let key = parse_key(&pem(key, "private key")?, key)?;
            (chain, key)
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |source| TlsError::Pem {
        what: "certificate",
        path: path.display().to_string(),
        source,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    if certs.is_empty() {
        return Err(err(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| TlsError::Pem {
        what: "private key",
        path: path.display().to_string(),
        source,
    })
}
