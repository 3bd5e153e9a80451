#![allow(clippy::unwrap_used)]
//! End to end: the real `chat-server` and two real `chat-tui`s, each in a pseudo-terminal whose
//! output is read by a vt100 emulator. Shows the client is full duplex: a message arrives while
//! the user has half a line typed, and the half-typed text is intact. With TLS: a TLS client
//! talks to a plaintext one, an unknown certificate is asked about and pinned, and a changed
//! pinned certificate is refused.
//!
//! Needs the server binary next to this crate's binary: `cargo build --workspace --bins`.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_tui::known_hosts::Fingerprint;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use support::{STARTUP, start_server, start_server_with};

mod support;

/// How long a message may take to show up on the other screen.
const DELIVERY: Duration = Duration::from_secs(2);
/// One chat-tui in a pseudo-terminal, its screen kept up to date by a reader thread.
struct Client {
    name: &'static str,
    screen: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _home: tempdir::TempHome,
}

mod tempdir {
    use std::path::PathBuf;

    /// A throwaway HOME so the client's config and log directories are its own.
    pub struct TempHome(pub PathBuf);

    impl TempHome {
        pub fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("chat-tui-e2e-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempHome(dir)
        }
    }

    impl Drop for TempHome {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Client {
    fn start(name: &'static str, port: u16) -> Client {
        Self::start_with(name, &[format!("127.0.0.1:{port}").into()])
    }

    /// A client with these arguments after `--name NAME --no-bell` (the server address among
    /// them).
    fn start_with(name: &'static str, args: &[std::ffi::OsString]) -> Client {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let home = tempdir::TempHome::new(name);
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_chat-tui"));
        cmd.args(["--name", name, "--no-bell"]);
        cmd.args(args);
        cmd.arg("--log-file");
        cmd.arg(home.0.join("log"));
        cmd.arg("--config");
        cmd.arg(home.0.join("config.toml"));
        cmd.env("HOME", &home.0);
        cmd.env("TERM", "xterm-256color");
        cmd.env("TZ", "UTC");
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let writer = pty.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            NonZeroU16::new(24).unwrap(),
            NonZeroU16::new(100).unwrap(),
            0,
        )));
        let feed = Arc::clone(&screen);
        std::thread::spawn(move || {
            // Keep the master alive as long as the reader runs.
            let _master = pty.master;
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        Client {
            name,
            screen,
            writer,
            child,
            _home: home,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn type_str(&mut self, s: &str) {
        self.writer.write_all(s.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits until `pred` holds for the screen, or fails after `within`.
    fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let screen = self.contents();
            if pred(&screen) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{}: no {what} within {within:?}; screen:\n{screen}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the terminal is back in its normal modes.
    fn wait_restored(&self) {
        let deadline = Instant::now() + DELIVERY;
        loop {
            let (alt, paste, hidden) = {
                let parser = self.screen.lock().unwrap();
                let s = parser.screen();
                (s.alternate_screen(), s.bracketed_paste(), s.hide_cursor())
            };
            if !alt && !paste && !hidden {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: terminal not restored (alternate screen {alt}, bracketed paste {paste}, cursor hidden {hidden})",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The input row (the last non-empty row starting with the prompt).
    fn input_row(&self) -> String {
        self.contents()
            .lines()
            .rfind(|l| l.starts_with('>'))
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_clients_chat_full_duplex_through_the_real_server() {
    let (_server, port) = start_server();
    let mut alice = Client::start("alice", port);
    alice.wait_for("connected state", STARTUP, |s| s.contains("[connected]"));
    let mut bob = Client::start("bob", port);
    bob.wait_for("connected state", STARTUP, |s| s.contains("[connected]"));
    alice.wait_for("bob joining", STARTUP, |s| s.contains("bob joined"));

    // Alice has half a line typed when bob's message arrives.
    alice.type_str("half a li");
    alice.wait_for("her typing", DELIVERY, |s| s.contains("> half a li"));
    bob.type_str("hello from bob\r");
    let took = alice.wait_for("bob's message", DELIVERY, |s| {
        s.contains("bob │ hello from bob")
    });
    eprintln!("bob → alice in {took:?}");
    assert_eq!(
        alice.input_row().trim_end(),
        "> half a li",
        "half-typed text intact"
    );

    // She finishes the line; it reaches bob.
    alice.type_str("ne, finished\r");
    let took = bob.wait_for("alice's message", DELIVERY, |s| {
        s.contains("alice │ half a line, finished")
    });
    eprintln!("alice → bob in {took:?}");
    alice.wait_for("the ack (no pending marker)", DELIVERY, |s| {
        s.contains("alice │ half a line, finished") && !s.contains('⧗')
    });
    assert_eq!(alice.input_row().trim_end(), ">");

    // Ctrl-C on an empty input quits and gives the terminal back.
    alice.type_str("\x03");
    let deadline = Instant::now() + STARTUP;
    while alice.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "alice did not quit on Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    bob.wait_for("alice leaving", DELIVERY, |s| s.contains("alice left"));
    // Her terminal was given back: main screen, no bracketed paste, cursor shown.
    alice.wait_restored();
}

#[test]
fn sigterm_restores_the_terminal_and_quits() {
    let (_server, port) = start_server();
    let mut carol = Client::start("carol", port);
    carol.wait_for("connected state", STARTUP, |s| s.contains("[connected]"));
    carol.type_str("unsent draft");
    carol.wait_for("her typing", DELIVERY, |s| s.contains("> unsent draft"));
    let pid = carol.child.process_id().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + STARTUP;
    while carol.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "carol did not quit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let parser = carol.screen.lock().unwrap();
    assert!(
        !parser.screen().alternate_screen(),
        "still on the alternate screen"
    );
    assert!(
        !parser.screen().bracketed_paste(),
        "bracketed paste left on"
    );
}

/// Certificate files for a TLS server in a temporary directory: `cert.pem`, `key.pem` and, when
/// signed by a test CA, `ca.pem`.
struct CertFiles {
    dir: tempdir::TempHome,
    /// The server certificate's fingerprint.
    fingerprint: Fingerprint,
}

impl CertFiles {
    /// A certificate for 127.0.0.1 signed by a fresh CA (`ca: true`) or self-signed.
    fn new(name: &str, ca: bool) -> CertFiles {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let dir = tempdir::TempHome::new(&format!("certs-{name}"));
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = if ca {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params
                .distinguished_name
                .push(DnType::CommonName, format!("chat e2e CA {name}"));
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let issuer =
                CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
            std::fs::write(dir.0.join("ca.pem"), issuer.pem()).unwrap();
            params.signed_by(&key, &issuer).unwrap()
        } else {
            params.self_signed(&key).unwrap()
        };
        std::fs::write(dir.0.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.0.join("key.pem"), key.serialize_pem()).unwrap();
        CertFiles {
            fingerprint: Fingerprint::of(cert.der()),
            dir,
        }
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.0.join(file)
    }

    /// A server serving TLS (and plaintext) with this certificate.
    fn start_server(&self) -> (support::Server, u16) {
        let (cert, key) = (self.path("cert.pem"), self.path("key.pem"));
        start_server_with(&[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ])
    }
}

/// The screen with wrapped rows joined, for text that may wrap (fingerprints).
fn unwrapped(screen: &str) -> String {
    screen.replace(['\n', ' ', '│'], "")
}

#[test]
fn a_tls_client_and_a_plaintext_client_chat_through_the_real_server() {
    let certs = CertFiles::new("ca", true);
    let (_server, port) = certs.start_server();
    let mut dave = Client::start_with(
        "dave",
        &[
            "--ca".into(),
            certs.path("ca.pem").into(),
            format!("tls://127.0.0.1:{port}").into(),
        ],
    );
    dave.wait_for("connected over TLS", STARTUP, |s| {
        s.contains("[connected]") && s.contains(&format!("127.0.0.1:{port} tls"))
    });
    let mut erin = Client::start("erin", port);
    erin.wait_for("connected state", STARTUP, |s| s.contains("[connected]"));
    dave.wait_for("erin joining", STARTUP, |s| s.contains("erin joined"));
    dave.type_str("sealed in TLS\r");
    erin.wait_for("dave's message", DELIVERY, |s| {
        s.contains("dave │ sealed in TLS")
    });
    erin.type_str("plain reply\r");
    dave.wait_for("erin's message", DELIVERY, |s| {
        s.contains("erin │ plain reply")
    });
}

#[test]
fn a_self_signed_server_is_asked_about_and_a_typed_yes_pins_its_certificate() {
    let certs = CertFiles::new("tofu", false);
    let (_server, port) = certs.start_server();
    let known_hosts = certs.path("known_hosts");
    let mut frank = Client::start_with(
        "frank",
        &[
            "--tls".into(),
            "--known-hosts".into(),
            known_hosts.clone().into(),
            format!("127.0.0.1:{port}").into(),
        ],
    );
    let question = format!("Trust this certificate for 127.0.0.1:{port}? Type yes");
    frank.wait_for("the trust question", STARTUP, |s| s.contains(&question));
    let fingerprint = certs.fingerprint.to_string();
    let screen = frank.contents();
    assert!(
        unwrapped(&screen).contains(&fingerprint),
        "the fingerprint is shown:\n{screen}"
    );
    assert!(!screen.contains("[connected]"));
    assert!(!known_hosts.exists(), "nothing pinned before the answer");
    // A `y` alone is not an answer yet: nothing happens until Enter, and only `yes` trusts.
    frank.type_str("y");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!known_hosts.exists(), "a bare y pinned the certificate");
    frank.type_str("es\r");
    frank.wait_for("connected after trusting", STARTUP, |s| {
        s.contains("[connected]")
    });
    let pins = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        pins.lines()
            .any(|l| l == format!("127.0.0.1:{port} sha256 {fingerprint}")),
        "{pins}"
    );
}

#[test]
fn a_pinned_server_presenting_another_certificate_is_refused() {
    let certs = CertFiles::new("changed", false);
    let (_server, port) = certs.start_server();
    let known_hosts = certs.path("known_hosts");
    let pinned = Fingerprint([0x5A; 32]);
    std::fs::write(
        &known_hosts,
        format!("# pins\n127.0.0.1:{port} sha256 {pinned}\n"),
    )
    .unwrap();
    let grace = Client::start_with(
        "grace",
        &[
            "--tls".into(),
            "--known-hosts".into(),
            known_hosts.clone().into(),
            format!("127.0.0.1:{port}").into(),
        ],
    );
    grace.wait_for("the warning", STARTUP, |s| s.contains("HAS CHANGED"));
    grace.wait_for("the line to edit", DELIVERY, |s| {
        unwrapped(s).contains(&format!("deleteline2of{}", known_hosts.display()).replace(' ', ""))
    });
    let screen = unwrapped(&grace.contents());
    assert!(screen.contains(&pinned.to_string()), "{screen}");
    assert!(screen.contains(&certs.fingerprint.to_string()), "{screen}");
    // It does not connect, now or after what would have been a reconnect delay.
    std::thread::sleep(Duration::from_millis(1500));
    let screen = grace.contents();
    assert!(!screen.contains("[connected]"), "{screen}");
    assert!(screen.contains("[offline]"), "{screen}");
}

#[test]
fn a_registered_nick_asks_for_its_password_and_logs_in_with_it() {
    let (_server, port) = start_server();
    let mut ivan = Client::start("ivan", port);
    ivan.wait_for("connected state", STARTUP, |s| s.contains("[connected]"));
    ivan.type_str("/register Quartz-Otter-1234\r");
    ivan.wait_for("registered", DELIVERY, |s| s.contains("now registered"));
    drop(ivan);

    let mut again = Client::start("ivan", port);
    again.wait_for("the password prompt", STARTUP, |s| {
        s.contains("password for ivan:")
    });
    again.type_str("Quartz-Otter-1234");
    again.wait_for("stars", DELIVERY, |s| {
        s.contains("password for ivan: *****************")
    });
    assert!(!again.contents().contains("Quartz-Otter"));
    again.type_str("\r");
    again.wait_for("connected with the password", STARTUP, |s| {
        s.contains("[connected]")
    });
    assert!(!again.contents().contains("Quartz-Otter"));
}

#[test]
fn an_operator_mutes_and_kicks_and_the_victim_reads_why() {
    let dir = std::env::temp_dir().join(format!("chat-tui-e2e-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    support::add_account(&dir, "root", "Operator-Pass-77");
    let (_server, port) = start_server_with(&[
        "--data-dir".as_ref(),
        dir.as_os_str(),
        "--admin".as_ref(),
        "root".as_ref(),
    ]);
    let mut root = Client::start("root", port);
    root.wait_for("the password prompt", STARTUP, |s| {
        s.contains("password for root:")
    });
    root.type_str("Operator-Pass-77\r");
    root.wait_for("connected", STARTUP, |s| s.contains("[connected]"));
    let mut eve = Client::start("eve", port);
    eve.wait_for("connected", STARTUP, |s| s.contains("[connected]"));
    root.wait_for("eve joining", STARTUP, |s| s.contains("eve joined"));

    // Not an operator: refused in words.
    eve.type_str("/kick root\r");
    eve.wait_for("the refusal", DELIVERY, |s| s.contains("forbidden"));

    root.type_str("/mute eve 10m\r");
    root.wait_for("the mute's notice", DELIVERY, |s| s.contains("muted"));
    eve.type_str("buy my stuff\r");
    eve.wait_for("her message bounced", DELIVERY, |s| {
        s.contains("you are muted")
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(!root.contents().contains("buy my stuff"));

    root.type_str("/kick eve spamming\r");
    eve.wait_for("the kick and its reason", DELIVERY, |s| {
        s.contains("you were kicked by root: spamming")
    });
    let _ = std::fs::remove_dir_all(&dir);
}
