//! chat-tui's TLS trust decisions against a real TLS listener on 127.0.0.1 (rcgen
//! certificates, tokio-rustls): CA-verified, unknown (with the fingerprint to pin), pinned,
//! changed, name mismatch, expired, and a server that does not speak TLS; and the network
//! client against the real `chat-server --tls-only`.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chat_tui::known_hosts::{Fingerprint, KnownHosts};
use chat_tui::tls::{self, TlsFailure, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// A certificate and its key, as the server holds them.
struct Identity {
    cert: CertificateDer<'static>,
    /// The certificate in PEM, for the server binary.
    pem: String,
    key: KeyPair,
}

/// A CA: its issuer, and its certificate in PEM.
fn ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = issuer.pem();
    (issuer, pem)
}

fn signed(names: &[&str], issuer: &Issuer<'_, KeyPair>, expired: bool) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, issuer).unwrap();
    Identity {
        cert: cert.der().clone(),
        pem: cert.pem(),
        key,
    }
}

fn self_signed() -> Identity {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Identity {
        cert: cert.der().clone(),
        pem: cert.pem(),
        key,
    }
}

/// A self-signed certificate that says it is a CA, as `openssl req -x509` makes them.
fn self_signed_ca() -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Identity {
        cert: cert.der().clone(),
        pem: cert.pem(),
        key,
    }
}

/// A TLS server on 127.0.0.1 that answers every line with `ok` (one connection at a time).
async fn serve(identity: Identity) -> SocketAddr {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![identity.cert], key)
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = [0u8; 64];
            if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                let _ = tls.write_all(b"ok").await;
                let _ = tls.shutdown().await;
            }
        }
    });
    addr
}

/// Trust settings with only `ca` (no system roots) and a fresh known-hosts path.
struct Trust {
    settings: TlsSettings,
    dir: PathBuf,
}

impl Trust {
    fn new(name: &str, ca_pem: Option<&str>) -> Trust {
        let dir = std::env::temp_dir().join(format!("chat-tui-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_path = ca_pem.map(|pem| {
            let path = dir.join("ca.pem");
            std::fs::write(&path, pem).unwrap();
            path
        });
        let settings =
            TlsSettings::new(ca_path.as_deref(), false, dir.join("known_hosts")).unwrap();
        Trust { settings, dir }
    }
}

impl Drop for Trust {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects as `server` (`host:port`) and exchanges one line.
async fn talk(addr: SocketAddr, server: &str, trust: &Trust) -> Result<(), TlsFailure> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = tls::connect(tcp, server, &trust.settings).await?;
    stream.write_all(b"hi\n").await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"ok");
    Ok(())
}

#[tokio::test]
async fn a_certificate_from_a_trusted_ca_connects_without_a_pin() {
    let (issuer, ca_pem) = ca("chat test CA one");
    let addr = serve(signed(&["127.0.0.1", "localhost"], &issuer, false)).await;
    let trust = Trust::new("ca", Some(&ca_pem));
    talk(addr, &addr.to_string(), &trust).await.unwrap();
    let localhost = format!("localhost:{}", addr.port());
    talk(addr, &localhost, &trust).await.unwrap();
    assert!(
        KnownHosts::load(&trust.settings.known_hosts)
            .unwrap()
            .pins
            .is_empty(),
        "nothing pinned"
    );
}

#[tokio::test]
async fn an_unknown_certificate_is_offered_for_pinning_then_accepted_once_pinned() {
    let identity = self_signed();
    let expected = Fingerprint::of(&identity.cert);
    let addr = serve(identity).await;
    let trust = Trust::new("tofu", None);
    let server = addr.to_string();
    match talk(addr, &server, &trust).await {
        Err(TlsFailure::Untrusted { fingerprint }) => assert_eq!(fingerprint, expected),
        other => panic!("expected an untrusted certificate, got {other:?}"),
    }
    KnownHosts::add(&trust.settings.known_hosts, &server, expected).unwrap();
    talk(addr, &server, &trust).await.unwrap();
}

#[tokio::test]
async fn an_openssl_style_self_signed_ca_certificate_is_offered_for_pinning_too() {
    let identity = self_signed_ca();
    let expected = Fingerprint::of(&identity.cert);
    let addr = serve(identity).await;
    let trust = Trust::new("tofu-ca", None);
    let server = addr.to_string();
    match talk(addr, &server, &trust).await {
        Err(TlsFailure::Untrusted { fingerprint }) => assert_eq!(fingerprint, expected),
        other => panic!("expected an untrusted certificate, got {other:?}"),
    }
    KnownHosts::add(&trust.settings.known_hosts, &server, expected).unwrap();
    talk(addr, &server, &trust).await.unwrap();
}

#[tokio::test]
async fn a_pinned_server_with_another_certificate_is_refused_with_both_fingerprints() {
    let (issuer, ca_pem) = ca("chat test CA two");
    let first = self_signed();
    let pinned = Fingerprint::of(&first.cert);
    // The new certificate is even CA-signed: a pin still wins.
    let second = signed(&["127.0.0.1"], &issuer, false);
    let presented = Fingerprint::of(&second.cert);
    let addr = serve(second).await;
    let trust = Trust::new("changed", Some(&ca_pem));
    let server = addr.to_string();
    KnownHosts::add(&trust.settings.known_hosts, "other:1", presented).unwrap();
    KnownHosts::add(&trust.settings.known_hosts, &server, pinned).unwrap();
    match talk(addr, &server, &trust).await {
        Err(TlsFailure::Changed {
            pin,
            presented: got,
            file,
        }) => {
            assert_eq!(pin.fingerprint, pinned);
            assert_eq!(got, presented);
            assert_eq!(pin.line, 3, "the header comment, other:1, then ours");
            assert_eq!(file, trust.settings.known_hosts);
        }
        other => panic!("expected a changed certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn name_mismatch_and_expiry_are_named_in_words() {
    let (issuer, ca_pem) = ca("chat test CA three");
    let trust = Trust::new("words", Some(&ca_pem));
    let addr = serve(signed(&["chat.example.org"], &issuer, false)).await;
    match talk(addr, &addr.to_string(), &trust).await {
        Err(TlsFailure::Failed(words)) => {
            assert!(words.contains("name mismatch"), "{words}");
            assert!(words.contains("127.0.0.1"), "{words}");
        }
        other => panic!("{other:?}"),
    }
    let addr = serve(signed(&["127.0.0.1"], &issuer, true)).await;
    match talk(addr, &addr.to_string(), &trust).await {
        Err(TlsFailure::Failed(words)) => assert!(words.contains("expired"), "{words}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"TLS is not enabled on this server: connect without TLS\r\n")
            .await;
    });
    let trust = Trust::new("plain", None);
    match talk(addr, &addr.to_string(), &trust).await {
        Err(TlsFailure::Failed(words)) => {
            assert!(words.contains("does not speak TLS"), "{words}");
        }
        other => panic!("{other:?}"),
    }
}

/// The next event that `pick` accepts, within 10 s.
async fn next_event<T>(
    events: &mut tokio::sync::mpsc::Receiver<chat_tui::net::NetEvent>,
    mut pick: impl FnMut(chat_tui::net::NetEvent) -> Option<T>,
) -> T {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await {
            Ok(Some(event)) => {
                if let Some(t) = pick(event) {
                    return t;
                }
            }
            other => panic!("no such event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_tls_only_server_stops_a_plaintext_client_and_serves_a_tls_one() {
    use chat_proto::{ErrorCode, ServerMsg};
    use chat_tui::net::{self, NetConfig, NetEvent};
    let (issuer, ca_pem) = ca("chat test CA four");
    let identity = signed(&["127.0.0.1"], &issuer, false);
    let trust = Trust::new("tls-only", Some(&ca_pem));
    let (cert, key) = (trust.dir.join("cert.pem"), trust.dir.join("key.pem"));
    std::fs::write(&cert, &identity.pem).unwrap();
    std::fs::write(&key, identity.key.serialize_pem()).unwrap();
    let (_server, port) = support::start_server_with(&[
        "--tls-only".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    let addr = format!("127.0.0.1:{port}");

    let (plain, mut events) = net::spawn(NetConfig {
        addr: addr.clone(),
        name: "plain".into(),
        client: "t".into(),
        ..NetConfig::default()
    });
    let code = next_event(&mut events, |e| match e {
        NetEvent::Message(ServerMsg::Error(e)) => Some(e.code),
        _ => None,
    })
    .await;
    assert_eq!(code, ErrorCode::TlsRequired);
    let (reason, retry_in) = next_event(&mut events, |e| match e {
        NetEvent::Disconnected { reason, retry_in } => Some((reason, retry_in)),
        _ => None,
    })
    .await;
    assert_eq!(retry_in, None, "no plaintext retries: {reason}");
    assert!(reason.contains("--tls"), "{reason}");
    plain.quit(None);

    let (sealed, mut events) = net::spawn(NetConfig {
        addr,
        name: "sealed".into(),
        client: "t".into(),
        tls: Some(trust.settings.clone()),
        ..NetConfig::default()
    });
    let nick = next_event(&mut events, |e| match e {
        NetEvent::Connected(w) => Some(w.nick),
        _ => None,
    })
    .await;
    assert_eq!(nick, "sealed");
    sealed.quit(None);
}

#[tokio::test]
async fn a_server_trusted_earlier_in_the_session_is_not_offered_for_pinning_later() {
    use chat_tui::net::{self, NetConfig, NetEvent};
    let (issuer, ca_pem) = ca("chat test CA five");
    let trust = Trust::new("no-late-tofu", Some(&ca_pem));
    let write = |name: &str, identity: &Identity| {
        let (cert, key) = (
            trust.dir.join(format!("{name}.pem")),
            trust.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &identity.pem).unwrap();
        std::fs::write(&key, identity.key.serialize_pem()).unwrap();
        (cert, key)
    };
    let tls_flags = |(cert, key): &(PathBuf, PathBuf)| -> Vec<std::ffi::OsString> {
        vec![
            "--tls-cert".into(),
            cert.clone().into(),
            "--tls-key".into(),
            key.clone().into(),
        ]
    };
    let genuine = write("genuine", &signed(&["127.0.0.1"], &issuer, false));
    let impostor = write("impostor", &self_signed());
    let flags = tls_flags(&genuine);
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_os_str()).collect();
    let (server, port) = support::start_server_with(&flags);

    let (client, mut events) = net::spawn(NetConfig {
        addr: format!("127.0.0.1:{port}"),
        name: "heidi".into(),
        client: "t".into(),
        tls: Some(trust.settings.clone()),
        ..NetConfig::default()
    });
    next_event(&mut events, |e| match e {
        NetEvent::Connected(_) => Some(()),
        _ => None,
    })
    .await;
    // The server is replaced by one with a self-signed certificate, on the same address.
    drop(server);
    let flags = tls_flags(&impostor);
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_os_str()).collect();
    let _impostor = support::start_server_on(port, &flags);
    let (reason, retry_in) = next_event(&mut events, |e| match e {
        NetEvent::UntrustedCertificate { .. } => panic!("offered a stranger for pinning"),
        NetEvent::Connected(_) => panic!("connected to the impostor"),
        NetEvent::Disconnected { reason, retry_in } if reason.contains("no longer") => {
            Some((reason, retry_in))
        }
        _ => None,
    })
    .await;
    assert_eq!(retry_in, None, "{reason}");
    assert!(reason.contains("intercepting"), "{reason}");
    client.quit(None);
}
