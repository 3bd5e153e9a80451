//! TLS for the connection: which certificates are trusted, the pin check, and failures in words.
//!
//! A certificate is accepted when a trusted CA signed it for the host we dialled (the system's
//! roots plus `--ca`), or when it is exactly the one pinned for this `host:port` in the
//! known-hosts file ([`crate::known_hosts`]). A pinned server that presents another certificate
//! is refused ([`TlsFailure::Changed`]), even if a CA signed the new one: that is what pinning
//! means. A certificate no trusted CA signed, for a server with no pin, is
//! [`TlsFailure::Untrusted`]: the caller asks the user whether to pin it.
//!
//! Both decisions sit in one [`ServerCertVerifier`], which rustls consults during the
//! handshake; the handshake signatures are still checked with the provider's algorithms, so a
//! pinned certificate must still prove possession of its key. There is no plaintext fallback:
//! a failure here ends the attempt.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::known_hosts::{Check, Fingerprint, KnownHosts, Pin};

/// What the client trusts.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// CA certificates: the system's and `--ca`'s.
    pub roots: Arc<RootCertStore>,
    /// The known-hosts file of pinned certificates.
    pub known_hosts: PathBuf,
}

impl TlsSettings {
    /// The system's roots (when `system`), plus every certificate in the PEM file `ca`.
    pub fn new(ca: Option<&Path>, system: bool, known_hosts: PathBuf) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut roots = RootCertStore::empty();
        if system {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "a system CA certificate could not be loaded");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::info!(added, ignored, "system CA certificates");
        }
        if let Some(path) = ca {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read CA file {}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("no PEM certificate in CA file {}", path.display());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("unusable CA certificate in {}", path.display()))?;
            }
        }
        Ok(TlsSettings {
            roots: Arc::new(roots),
            known_hosts,
        })
    }
}

/// Why a TLS connection was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// No trusted CA signed the certificate and no pin exists: ask the user.
    Untrusted {
        /// The leaf certificate's fingerprint, to show and to pin.
        fingerprint: Fingerprint,
    },
    /// The server presented another certificate than the pinned one.
    Changed {
        /// The pin (with its line).
        pin: Pin,
        /// What the server presented.
        presented: Fingerprint,
        /// The known-hosts file to edit if the change is expected.
        file: PathBuf,
    },
    /// Anything else, in words (unknown CA, expired, name mismatch, not TLS, ...).
    Failed(String),
}

/// The host part of `host:port` (`[v6]:port` too), for the certificate's name.
pub fn host_of(server: &str) -> &str {
    let host = match server.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => server,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The TLS handshake over `tcp` with the server we dialled as `server` (`host:port`).
pub async fn connect(
    tcp: TcpStream,
    server: &str,
    settings: &TlsSettings,
) -> Result<TlsStream<TcpStream>, TlsFailure> {
    let host = host_of(server);
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| TlsFailure::Failed(format!("{host:?} is not a valid TLS server name")))?;
    let known = KnownHosts::load(&settings.known_hosts).map_err(|e| {
        TlsFailure::Failed(format!(
            "cannot read the known-hosts file {}: {e}",
            settings.known_hosts.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinningVerifier::new(
        &settings.roots,
        provider.clone(),
        server.to_owned(),
        known,
    ));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFailure::Failed(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    match TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Ok(stream) => Ok(stream),
        Err(e) => Err(verifier
            .take_verdict()
            .unwrap_or_else(|| TlsFailure::Failed(describe(&e, host)))),
    }
}

/// Whether the certificate failed only because no trusted CA vouches for it: signed by an
/// unknown CA, or self-signed. Those are the certificates trust on first use may pin; an
/// expired, misnamed or badly signed certificate is refused outright.
fn no_trusted_chain(e: &CertificateError) -> bool {
    match e {
        CertificateError::UnknownIssuer => true,
        // `openssl req -x509` makes a self-signed certificate with `CA:TRUE`, which webpki
        // refuses as an end entity before it looks for an issuer.
        CertificateError::Other(other) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// A handshake error in words a user can act on.
pub fn describe(e: &std::io::Error, host: &str) -> String {
    use rustls::Error as E;
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                "the server closed the connection during the TLS handshake: it may not speak \
                 TLS (try without --tls only if you trust the network)"
                    .to_owned()
            }
            _ => format!("TLS handshake failed: {e}"),
        };
    };
    match tls {
        E::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                "certificate signed by an unknown CA (pass its CA with --ca)".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clock)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("name mismatch: the server's certificate is not valid for {host}")
            }
            CertificateError::Revoked => "the server's certificate was revoked".to_owned(),
            other if no_trusted_chain(other) => {
                "self-signed certificate (pass it with --ca, or trust it when asked)".to_owned()
            }
            other => format!("invalid server certificate: {other:?}"),
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the server does not speak TLS (a plaintext server? its first bytes were not a TLS \
             handshake)"
                .to_owned()
        }
        E::AlertReceived(alert) => format!("the server refused the TLS handshake ({alert:?})"),
        E::NoApplicationProtocol | E::PeerIncompatible(_) => {
            format!("no TLS version or cipher in common with the server: {tls}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Accepts a CA-verified certificate, or the pinned one; remembers why it refused one.
#[derive(Debug)]
struct PinningVerifier {
    /// The CA check; `None` when no root is trusted at all (every certificate is then unknown).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// For the handshake signatures.
    provider: Arc<CryptoProvider>,
    /// `host:port`, the known-hosts key.
    server: String,
    known: KnownHosts,
    /// Set when the certificate was refused for a reason the caller acts on.
    verdict: Mutex<Option<TlsFailure>>,
}

impl PinningVerifier {
    fn new(
        roots: &Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        server: String,
        known: KnownHosts,
    ) -> Self {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .ok();
        PinningVerifier {
            webpki,
            provider,
            server,
            known,
            verdict: Mutex::new(None),
        }
    }

    fn set_verdict(&self, failure: TlsFailure) {
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
    }

    fn take_verdict(&self) -> Option<TlsFailure> {
        self.verdict
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        match self.known.check(&self.server, presented) {
            // The certificate the user trusted: no CA, name or date check (like ssh's keys).
            Check::Match => return Ok(ServerCertVerified::assertion()),
            Check::Mismatch(pin) => {
                self.set_verdict(TlsFailure::Changed {
                    pin,
                    presented,
                    file: self.known.path.clone(),
                });
                return Err(rustls::Error::General(
                    "the server's certificate does not match the pinned one".to_owned(),
                ));
            }
            Check::Unknown => {}
        }
        let unknown_issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let verified = match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(unknown_issuer),
        };
        if let Err(rustls::Error::InvalidCertificate(e)) = &verified {
            if no_trusted_chain(e) {
                self.set_verdict(TlsFailure::Untrusted {
                    fingerprint: presented,
                });
            }
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_part_before_the_port() {
        assert_eq!(host_of("chat.example.org:6666"), "chat.example.org");
        assert_eq!(host_of("127.0.0.1:6666"), "127.0.0.1");
        assert_eq!(host_of("[::1]:6666"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
