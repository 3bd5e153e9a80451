//! TLS: the server's certificate and key, loaded once at start, and the dialect inside a TLS
//! connection.
//!
//! TLS shares the plaintext port: the listener sees `0x16` (a TLS handshake record) as the first
//! byte and hands the stream to a [`TlsAcceptor`]. Inside, the framed and the text dialect are
//! told apart again by the first decrypted byte; a TLS stream cannot be peeked, so
//! [`read_dialect`] reads that byte and gives it back in front of the reader ([`Prefixed`]).
//!
//! Only the `ring` crypto provider is compiled in (see `Cargo.toml`), and configs are built with
//! it explicitly, so no process-wide default has to be installed before the server runs.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, Chain};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::listener::Dialect;

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate file is missing, unreadable, or holds no PEM certificate.
    #[error("cannot read TLS certificate {}: {reason}", path.display())]
    Cert {
        /// The file named by `--tls-cert`.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// The key file is missing, unreadable, or holds no PEM private key.
    #[error("cannot read TLS key {}: {reason}", path.display())]
    Key {
        /// The file named by `--tls-key`.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("cannot use TLS certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// The PEM certificate chain in `path` (leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let fail = |reason: String| TlsSetupError::Cert {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_error(&e)))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The PEM private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsSetupError::Key {
        path: path.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PEM private key in the file".to_owned()
            }
            other => pem_error(&other),
        },
    })
}

/// A PEM error in words (the I/O error's own text when the file could not be read).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// The acceptor for `--tls-cert` and `--tls-key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|source| TlsSetupError::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A reader with the bytes already read from it put back in front.
pub type Prefixed<R> = Chain<Cursor<Vec<u8>>, R>;

/// Reads the first decrypted byte (for at most `wait`) and returns the dialect it announces and
/// the stream with that byte put back. Silence is a text client waiting to be greeted; `None`:
/// the peer closed or failed first.
pub async fn read_dialect<S>(mut stream: S, wait: Duration) -> Option<(Dialect, Prefixed<S>)>
where
    S: AsyncRead + Unpin,
{
    let mut first = [0u8; 1];
    let (dialect, prefix) = match tokio::time::timeout(wait, stream.read(&mut first)).await {
        Ok(Ok(0) | Err(_)) => return None,
        Ok(Ok(_)) => (Dialect::from_first_byte(Some(first[0])), first.to_vec()),
        Err(_) => (Dialect::from_first_byte(None), Vec::new()),
    };
    Some((dialect, Cursor::new(prefix).chain(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_byte_is_read_and_put_back() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"alice\r\n")
            .await
            .unwrap();
        let (dialect, mut rest) = read_dialect(server, Duration::from_secs(1)).await.unwrap();
        assert_eq!(dialect, Dialect::Text { greet: false });
        let mut line = [0u8; 7];
        rest.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"alice\r\n");
    }

    #[tokio::test]
    async fn silence_inside_tls_is_a_text_client_to_greet() {
        let (_client, server) = tokio::io::duplex(64);
        let (dialect, _) = read_dialect(server, Duration::from_millis(20))
            .await
            .unwrap();
        assert_eq!(dialect, Dialect::Text { greet: true });
    }

    #[test]
    fn a_key_that_does_not_fit_the_certificate_or_an_empty_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, empty) = (
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            dir.path().join("empty.pem"),
        );
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, other.serialize_pem()).unwrap();
        std::fs::write(&empty, "").unwrap();
        let mismatch = acceptor(&cert, &key).map(|_| ()).unwrap_err().to_string();
        assert!(
            mismatch.starts_with("cannot use TLS certificate"),
            "{mismatch}"
        );
        let no_cert = acceptor(&empty, &key).map(|_| ()).unwrap_err().to_string();
        assert!(no_cert.contains("no PEM certificate"), "{no_cert}");
        let no_key = acceptor(&cert, &empty).map(|_| ()).unwrap_err().to_string();
        assert!(no_key.contains("no PEM private key"), "{no_key}");
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        assert!(acceptor(&cert, &key).is_ok());
    }

    #[test]
    fn a_missing_key_file_is_named_in_the_error() {
        let e = load_key(Path::new("/nonexistent/key.pem")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("cannot read TLS key /nonexistent/key.pem: "),
            "{text}"
        );
    }
}
