//! TLS on the chat port: TLS, plaintext and text clients in one room, wrong CAs, `--tls-only`
//! and the handshake deadline, with certificates made by rcgen for each test.
#![allow(clippy::unwrap_used)]

mod support;
mod text_support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chat_proto::{ErrorCode, ServerMsg};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use support::{Client, TestServer, bounded, test_config};
use text_support::TextClient;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, written as PEM
/// files in a temporary directory.
struct Pki {
    ca: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        // Each CA has its own name, so a client trusting one does not take the other for it.
        static CAS: AtomicU32 = AtomicU32::new(0);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let n = CAS.fetch_add(1, Ordering::Relaxed);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("chat test CA {n}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Pki {
            ca: ca.der().clone(),
            cert: cert_path,
            key: key_path,
            _dir: dir,
        }
    }

    /// A test server config serving TLS with this certificate.
    fn config(&self) -> chat_server::Config {
        chat_server::Config {
            tls_cert: Some(self.cert.clone()),
            tls_key: Some(self.key.clone()),
            ..test_config()
        }
    }

    /// A client that trusts this CA only.
    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// A TLS connection to `addr` (as `127.0.0.1`), or the client's handshake error.
async fn tls_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// A framed client over TLS, logged in as `nick` and through its `#lobby` join burst.
async fn tls_login(addr: SocketAddr, pki: &Pki, nick: &str) -> Client {
    let stream = tls_connect(addr, &pki.connector()).await.unwrap();
    let mut c = Client::over_io(Box::new(stream));
    match c.hello(nick).await {
        ServerMsg::Welcome(w) => assert_eq!(w.nick, nick),
        other => panic!("{nick}: expected welcome, got {other:?}"),
    }
    c.expect_burst("#lobby").await;
    c
}

/// A text client over TLS that gives its name at once.
async fn tls_text_login(addr: SocketAddr, pki: &Pki, nick: &str) -> TextClient {
    let stream = tls_connect(addr, &pki.connector()).await.unwrap();
    let mut c = TextClient::over_io(Box::new(stream));
    c.name = nick.to_owned();
    c.send_line(nick).await;
    c.line_with(&format!("*** welcome, {nick}!")).await;
    c.line_with("*** in #lobby").await;
    c
}

/// The framed client receives a room message from `from` and returns its text.
async fn heard_from(c: &mut Client, from: &str) -> String {
    c.recv_until(|m| match m {
        ServerMsg::Message(x) if x.from == from => Some(x.text),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn tls_plaintext_and_text_clients_chat_in_one_room() {
    bounded(30, async {
        let pki = Pki::new();
        let server = TestServer::start(pki.config()).await;
        let mut alice = tls_login(server.addr, &pki, "alice").await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut carol = TextClient::login(server.addr, "carol").await;
        let mut dave = tls_text_login(server.addr, &pki, "dave").await;

        alice.chat_with(&mut bob, "over TLS to plaintext").await;
        carol.line_with("<alice> over TLS to plaintext").await;
        dave.line_with("<alice> over TLS to plaintext").await;

        bob.say("#lobby", "plaintext to TLS", "b1").await;
        assert_eq!(heard_from(&mut alice, "bob").await, "plaintext to TLS");
        dave.line_with("<bob> plaintext to TLS").await;

        carol.send_line("netcat to everyone").await;
        assert_eq!(heard_from(&mut alice, "carol").await, "netcat to everyone");
        dave.line_with("<carol> netcat to everyone").await;

        dave.send_line("text over TLS").await;
        assert_eq!(heard_from(&mut alice, "dave").await, "text over TLS");
        assert_eq!(heard_from(&mut bob, "dave").await, "text over TLS");
        carol.line_with("<dave> text over TLS").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_and_the_server_keeps_serving() {
    bounded(30, async {
        let pki = Pki::new();
        let stranger = Pki::new();
        let server = TestServer::start(pki.config()).await;
        let e = tls_connect(server.addr, &stranger.connector())
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            e.to_string().contains("UnknownIssuer"),
            "the client names the problem: {e}"
        );
        let mut alice = tls_login(server.addr, &pki, "alice").await;
        let mut bob = Client::login(server.addr, "bob").await;
        alice.chat_with(&mut bob, "still serving").await;
        bob.chat_with(&mut alice, "yes").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_tls_only_server_refuses_plaintext_while_tls_clients_chat() {
    bounded(30, async {
        let pki = Pki::new();
        let server = TestServer::start(chat_server::Config {
            tls_only: true,
            ..pki.config()
        })
        .await;
        let mut alice = tls_login(server.addr, &pki, "alice").await;
        let mut bob = tls_login(server.addr, &pki, "bob").await;

        // Each refusal must come within 5 s: `bounded` fails the test otherwise.
        let framed = bounded(5, async {
            let mut mallory = Client::connect_framed(server.addr).await;
            mallory.expect_closed().await
        })
        .await;
        match framed.as_slice() {
            [ServerMsg::Error(e)] => {
                assert_eq!(e.code, ErrorCode::TlsRequired);
                assert!(e.message.contains("TLS"), "{}", e.message);
            }
            other => panic!("expected one tls_required error, got {other:?}"),
        }
        alice.chat_with(&mut bob, "after the framed refusal").await;

        let lines = bounded(5, async {
            let mut netcat = TextClient::connect(server.addr).await;
            netcat.send_line("eve").await;
            netcat.expect_closed().await
        })
        .await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("accepts TLS connections only"),
            "{lines:?}"
        );
        bob.chat_with(&mut alice, "after the text refusal").await;
        server.stop().await;
    })
    .await;
}

/// Reads until the server closes the connection (a reset counts); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn silence_and_a_stalled_handshake_are_closed_at_the_tls_deadline() {
    bounded(30, async {
        let pki = Pki::new();
        let deadline = Duration::from_millis(400);
        let tls_only = TestServer::start(chat_server::Config {
            tls_only: true,
            tls_handshake_timeout: deadline,
            ..pki.config()
        })
        .await;
        // A silent connection on a TLS-only server is not greeted as a netcat client.
        let mut silent = TcpStream::connect(tls_only.addr).await.unwrap();
        let said = bounded(5, read_until_closed(&mut silent)).await;
        assert!(said.is_empty(), "{:?}", String::from_utf8_lossy(&said));

        // On a mixed server, the start of a TLS record and then nothing.
        let mixed = TestServer::start(chat_server::Config {
            tls_handshake_timeout: deadline,
            ..pki.config()
        })
        .await;
        let mut stalled = TcpStream::connect(mixed.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stalled, &[0x16, 0x03, 0x01])
            .await
            .unwrap();
        let said = bounded(5, read_until_closed(&mut stalled)).await;
        assert!(said.is_empty(), "{:?}", String::from_utf8_lossy(&said));

        // Both servers still serve TLS.
        let mut alice = tls_login(tls_only.addr, &pki, "alice").await;
        let mut bob = tls_login(tls_only.addr, &pki, "bob").await;
        alice.chat_with(&mut bob, "still here").await;
        tls_login(mixed.addr, &pki, "carol").await;
        tls_only.stop().await;
        mixed.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_server_without_a_certificate_still_answers_tls_in_words() {
    bounded(10, async {
        let pki = Pki::new();
        let server = TestServer::start(test_config()).await;
        let e = tls_connect(server.addr, &pki.connector())
            .await
            .map(|_| ())
            .unwrap_err();
        // The plain-text line is not a TLS record: the client fails, and does not hang.
        assert!(!e.to_string().is_empty());
        server.stop().await;
    })
    .await;
}

#[test]
fn an_unreadable_key_stops_the_binary_with_a_clear_error() {
    let pki = Pki::new();
    let missing = pki.cert.with_file_name("missing-key.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--bind", "127.0.0.1:0", "--history", "memory", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&missing)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("error: cannot read TLS key {}: ", missing.display());
    assert!(stderr.lines().any(|l| l.starts_with(&expected)), "{stderr}");
}
