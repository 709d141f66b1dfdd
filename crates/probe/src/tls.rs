//! Layer 4 for wss: the TLS handshake and the device's certificate.
//!
//! Devices use self-signed certificates, so a verifier that fails would stop the diagnosis at
//! exactly the point the user wants explained. `Recorder` accepts any chain (the handshake
//! signatures are still checked with the provider's algorithms) and keeps it; the layer then
//! reports subject, issuer, self-signed, validity and whether the name matches, as an app's
//! verifier would judge them.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::extensions::GeneralName;

use super::target::Target;
use super::{Details, LayerResult, LayerVerdict};

/// Layer TLS facts (leaf certificate).
#[derive(Debug, Clone, Serialize)]
pub struct TlsDetails {
    /// Negotiated protocol version, e.g. `TLSv1_3`.
    pub version: Option<String>,
    /// Certificates the server sent.
    pub chain_len: usize,
    /// Leaf subject (RFC 4514 style).
    pub subject: Option<String>,
    /// Leaf issuer.
    pub issuer: Option<String>,
    /// Subject == issuer (nobody vouches for it; the app must trust this exact certificate).
    pub self_signed: Option<bool>,
    /// Subject alternative names (DNS names and IPs).
    pub names: Vec<String>,
    /// Whether the URL's host is among `names`.
    pub name_matches: Option<bool>,
    /// Validity start, RFC 3339.
    pub not_before: Option<String>,
    /// Validity end, RFC 3339.
    pub not_after: Option<String>,
    /// Whole days until `not_after` (negative: expired).
    pub days_left: Option<i64>,
}

/// A verifier that accepts any certificate and records the chain it was shown.
#[derive(Debug)]
pub(crate) struct Recorder {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl Recorder {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SNI / verification name for the URL's host.
pub(crate) fn server_name(target: &Target) -> Option<ServerName<'static>> {
    match target.ip_literal() {
        Some(ip) => Some(ServerName::IpAddress(ip.into())),
        None => ServerName::try_from(target.host.clone()).ok(),
    }
}

fn client_config() -> Result<(Arc<rustls::ClientConfig>, Arc<Recorder>), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recorder {
        provider: provider.clone(),
        chain: Mutex::new(Vec::new()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), recorder))
}

fn rfc3339(ts: i64) -> String {
    let t = u64::try_from(ts)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .unwrap_or(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn host_matches(host: &str, names: &[GeneralName<'_>]) -> bool {
    let ip: Option<IpAddr> = host.parse().ok();
    names.iter().any(|n| match (n, ip) {
        (GeneralName::IPAddress(bytes), Some(IpAddr::V4(v4))) => *bytes == v4.octets(),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V6(v6))) => *bytes == v6.octets(),
        (GeneralName::DNSName(name), None) => {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
                None => name == host,
            }
        }
        _ => false,
    })
}

/// Reads the leaf certificate into `details`.
fn describe(leaf: &[u8], host: &str, details: &mut TlsDetails) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    details.self_signed = Some(cert.subject().as_raw() == cert.issuer().as_raw());
    details.subject = Some(subject);
    details.issuer = Some(issuer);
    let validity = cert.validity();
    let after = validity.not_after.timestamp();
    details.not_before = Some(rfc3339(validity.not_before.timestamp()));
    details.not_after = Some(rfc3339(after));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    details.days_left = Some((after - now).div_euclid(86_400));
    let sans: Vec<GeneralName<'_>> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.clone(),
        _ => Vec::new(),
    };
    details.names = sans
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    details.name_matches = Some(host_matches(host, &sans));
    Ok(())
}

/// Layer TLS: one handshake to `addr`; returns the client config later layers reuse.
pub(crate) async fn probe(
    addr: SocketAddr,
    target: &Target,
    timeout: Duration,
) -> (LayerResult, Option<Arc<rustls::ClientConfig>>) {
    let mut details = TlsDetails {
        version: None,
        chain_len: 0,
        subject: None,
        issuer: None,
        self_signed: None,
        names: Vec::new(),
        name_matches: None,
        not_before: None,
        not_after: None,
        days_left: None,
    };
    let (config, recorder) = match client_config() {
        Ok(c) => c,
        Err(e) => {
            return (
                LayerResult::new(LayerVerdict::Fail, format!("cannot set up TLS: {e}")),
                None,
            );
        }
    };
    let Some(name) = server_name(target) else {
        return (
            LayerResult::new(
                LayerVerdict::Fail,
                format!("`{}` is not a valid TLS server name", target.host),
            ),
            None,
        );
    };
    let tcp = match super::net::connect(addr, timeout).await {
        Ok(s) => s,
        Err((o, e)) => {
            let why = e.map_or_else(|| format!("{o:?}"), |e| e.to_string());
            return (
                LayerResult::new(
                    LayerVerdict::Fail,
                    format!("reconnect for TLS failed: {why}"),
                ),
                None,
            );
        }
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let handshake = tokio::time::timeout(timeout, connector.connect(name, tcp)).await;
    let stream = match handshake {
        Err(_) => {
            return (
                LayerResult::new(
                    LayerVerdict::Fail,
                    format!("no TLS handshake within {timeout:?}"),
                )
                .hint(
                    "the port accepted TCP but does not answer a ClientHello: it probably speaks \
                     plain HTTP (ESP-IDF's httpd without esp_https_server); use ws://",
                )
                .details(Details::Tls(details)),
                None,
            );
        }
        Ok(Err(e)) => {
            return (
                LayerResult::new(LayerVerdict::Fail, format!("TLS handshake failed: {e}"))
                    .hint(
                        "the server is not speaking TLS on this port, or offers no cipher suite \
                         rustls supports; a plain-HTTP ESP32 answers a ClientHello with `400` or \
                         closes (use ws://)",
                    )
                    .details(Details::Tls(details)),
                None,
            );
        }
        Ok(Ok(s)) => s,
    };
    details.version = stream
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}"));
    drop(stream);
    let chain = recorder.chain();
    details.chain_len = chain.len();
    let Some(leaf) = chain.first() else {
        return (
            LayerResult::new(LayerVerdict::Fail, "the server sent no certificate")
                .details(Details::Tls(details)),
            None,
        );
    };
    if let Err(e) = describe(leaf, &target.host, &mut details) {
        return (
            LayerResult::new(LayerVerdict::Warn, format!("certificate unreadable: {e}"))
                .details(Details::Tls(details)),
            Some(config),
        );
    }
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    if details.self_signed == Some(true) {
        problems.push("self-signed".to_owned());
        hints.push(
            "apps reject it unless they trust this certificate: Android network_security_config \
             <certificates src=\"@raw/device\"/>, Dart SecurityContext.setTrustedCertificates or \
             badCertificateCallback, iOS pinning in URLSessionDelegate",
        );
    }
    if details.name_matches == Some(false) {
        problems.push(format!("{} not in its names", target.host));
        hints.push("the certificate does not name this host: regenerate it with the device's IP (e.g. 192.168.4.1) as a subject alternative name");
    }
    match details.days_left {
        Some(d) if d < 0 => {
            problems.push(format!("expired {} days ago", -d));
            hints.push("expired: most clients refuse it even when pinned; ESP32s without an RTC often also lack the time to check it");
        }
        Some(d) if d < 30 => problems.push(format!("expires in {d} days")),
        _ => {}
    }
    let subject = details.subject.clone().unwrap_or_default();
    let version = details.version.clone().unwrap_or_default();
    let summary = if problems.is_empty() {
        format!(
            "{version}, {subject}, valid until {}",
            details.not_after.clone().unwrap_or_default()
        )
    } else {
        format!("{version}, {subject}: {}", problems.join(", "))
    };
    let verdict = if problems.is_empty() {
        LayerVerdict::Pass
    } else {
        LayerVerdict::Warn
    };
    let hint = (!hints.is_empty()).then(|| hints.join("; "));
    (
        LayerResult::new(verdict, summary)
            .maybe_hint(hint)
            .details(Details::Tls(details)),
        Some(config),
    )
}
