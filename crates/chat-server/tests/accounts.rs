//! Accounts over sockets: a private server's password, registering and logging in to registered
//! nicks, operators (topic lock, kick, mute, ban), and no password in the logs (framed or text).
#![allow(clippy::unwrap_used)]

mod account_support;
mod support;
mod text_support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use account_support::{
    SECRET, connect_from, hello, login_root, operator_config, operator_server, store_with_accounts,
};
use chat_proto::client::{Ban, Hello, Join, Kick, Mute, Register, Topic};
use chat_proto::{ClientMsg, ErrorCode, ServerMsg};
use chat_server::config::HistoryKind;
use support::{Client, TestServer, bounded, test_config};
use text_support::TextClient;

/// Everything the server logs (at trace level) while this file's tests run.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buf
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn code(m: &ServerMsg) -> Option<ErrorCode> {
    match m {
        ServerMsg::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn a_private_server_needs_its_password_and_the_connection_may_retry() {
    captured();
    bounded(30, async {
        let mut config = test_config();
        config.server_password = Some("open sesame".into());
        let server = TestServer::start(config).await;
        let mut c = Client::connect(server.addr).await;
        for given in [None, Some("open sesam")] {
            c.send(ClientMsg::Hello(Hello {
                name: "alice".into(),
                server_password: given.map(str::to_owned),
                ..Hello::default()
            }))
            .await;
            let err = c.expect_error(ErrorCode::AuthFailed).await;
            assert!(!err.message.contains("sesam"));
        }
        c.send(ClientMsg::Hello(Hello {
            name: "alice".into(),
            server_password: Some("open sesame".into()),
            ..Hello::default()
        }))
        .await;
        assert!(matches!(c.recv().await, ServerMsg::Welcome(_)));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn registered_nicks_need_their_password_and_the_fourth_failure_is_throttled() {
    captured();
    bounded(60, async {
        let dir = store_with_accounts(&["alice"], SECRET);
        let mut config = test_config();
        config.history = HistoryKind::Sqlite;
        config.data_dir = Some(dir.path().to_owned());
        config.handshake_timeout = std::time::Duration::from_secs(30);
        let server = TestServer::start(config).await;
        let mut c = Client::connect(server.addr).await;
        for nick in ["alice", "Alice", "ALICE", "\u{430}lice", "alice\u{200b}"] {
            let answer = hello(&mut c, nick, None).await;
            assert_eq!(code(&answer), Some(ErrorCode::AuthFailed), "{nick:?}");
        }
        let answer = hello(&mut c, "ALICE", Some(SECRET)).await;
        assert!(matches!(answer, ServerMsg::Welcome(_)), "{answer:?}");
        drop(c);
        let mut c = Client::connect(server.addr).await;
        for _ in 0..3 {
            let answer = hello(&mut c, "alice", Some("wrong password")).await;
            assert_eq!(code(&answer), Some(ErrorCode::AuthFailed));
        }
        let answer = hello(&mut c, "alice", Some(SECRET)).await;
        assert_eq!(code(&answer), Some(ErrorCode::AuthThrottled));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_operator_locks_the_topic_and_others_cannot_change_it() {
    captured();
    bounded(60, async {
        let (server, mut root, _dir) = operator_server().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let topic = |id: &str, text: &str, lock: Option<bool>| Topic {
            id: Some(id.into()),
            room: "#lobby".into(),
            topic: Some(text.into()),
            lock,
        };
        bob.send(topic("b1", "bob's", Some(true))).await;
        bob.expect_error(ErrorCode::Forbidden).await;
        root.send(topic("r1", "the rules", Some(true))).await;
        let info = bob
            .recv_until(|m| match m {
                ServerMsg::Topic(t) => Some(t),
                _ => None,
            })
            .await;
        assert!(info.locked);
        assert_eq!(info.topic, "the rules");
        bob.send(topic("b2", "bob's", None)).await;
        bob.expect_error(ErrorCode::Forbidden).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn no_password_reaches_the_logs() {
    let logs = captured();
    bounded(60, async {
        // Registering, through the hub's API (see the module docs).
        let tracker = tokio_util::task::TaskTracker::new();
        let hub = chat_server::hub::spawn(
            Arc::new(chat_server::config::Config::default()),
            Box::new(chat_server::history::MemoryHistory::new(10)),
            tokio_util::sync::CancellationToken::new(),
            &tracker,
        );
        let (out_tx, mut out_rx) = chat_server::queue::channel(64);
        let (kick_tx, _kick_rx) = tokio::sync::oneshot::channel();
        let conn = chat_server::hub::ConnInfo {
            id: 1,
            peer: SocketAddr::from(([127, 0, 0, 1], 9)),
            out_tx,
            kick_tx,
            batches: false,
        };
        let hi = Hello {
            name: "carol".into(),
            password: Some(SECRET.into()),
            server_password: Some(SECRET.into()),
            ..Hello::default()
        };
        hub.register(conn, hi).await.unwrap().unwrap();
        let register = Register {
            id: Some("r1".into()),
            password: SECRET.into(),
        };
        hub.request(1, ClientMsg::Register(register)).await.unwrap();
        // Wait for the answer to the register (the notice).
        let mut noticed = false;
        while let Some(item) = out_rx.recv().await {
            let frames = item.into_frames();
            if frames
                .iter()
                .any(|f| String::from_utf8_lossy(f).contains("now registered"))
            {
                noticed = true;
                break;
            }
        }
        assert!(noticed);
        // Logging in over a socket, wrong and right, on a server with a password of its own.
        let dir = store_with_accounts(&["dave", "frank"], SECRET);
        let mut config = test_config();
        config.history = HistoryKind::Sqlite;
        config.data_dir = Some(dir.path().to_owned());
        config.server_password = Some(format!("{SECRET}-server"));
        config.handshake_timeout = std::time::Duration::from_secs(30);
        let server = TestServer::start(config).await;
        let mut c = Client::connect(server.addr).await;
        for (password, server_password) in [
            (format!("{SECRET}-wrong"), format!("{SECRET}-server")),
            (SECRET.to_owned(), format!("{SECRET}-wrong")),
            (SECRET.to_owned(), format!("{SECRET}-server")),
        ] {
            c.send(ClientMsg::Hello(Hello {
                name: "dave".into(),
                password: Some(password),
                server_password: Some(server_password),
                ..Hello::default()
            }))
            .await;
            let answer = c.recv().await;
            if let ServerMsg::Error(e) = &answer {
                assert!(!e.message.contains(SECRET));
            }
        }
        // The text path: the server password, a wrong and a right account password, `/login`
        // and `/register`.
        // From other addresses: the failures above count against 127.0.0.1 (3 a minute).
        let mut t = TextClient::over(connect_from([127, 0, 0, 2], server.addr).await);
        t.line_with("this server is private").await;
        for line in [
            format!("{SECRET}-wrong-server"),
            format!("{SECRET}-server"),
            "frank".to_owned(),
            format!("{SECRET}-wrong"),
            format!("/login frank {SECRET}"),
            format!("/register {SECRET}-again"),
        ] {
            t.send_line(&line).await;
        }
        t.line_with("*** welcome, frank!").await;
        t.line_with("already registered").await;
        let mut erin = TextClient::over(connect_from([127, 0, 0, 3], server.addr).await);
        erin.line_with("this server is private").await;
        erin.send_line(&format!("{SECRET}-server")).await;
        erin.send_line("erin").await;
        erin.send_line(&format!("/register {SECRET}-erin")).await;
        erin.line_with("*** nick erin is now registered").await;
        let seen =
            String::from_utf8_lossy(&t.raw).into_owned() + &String::from_utf8_lossy(&erin.raw);
        assert!(!seen.contains(SECRET), "a password was echoed: {seen}");
        server.stop().await;
    })
    .await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("registered"),
        "the capture saw the server's logs"
    );
    assert!(!text.contains(SECRET), "a password was logged");
    assert!(!text.contains("Zebra"), "a password was logged");
}

#[tokio::test]
async fn registering_over_the_wire_reserves_the_nick_for_the_next_connection() {
    captured();
    bounded(60, async {
        let mut config = test_config();
        config.handshake_timeout = std::time::Duration::from_secs(30);
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;
        alice
            .send(Register {
                id: Some("r1".into()),
                password: SECRET.into(),
            })
            .await;
        let notice = alice
            .recv_until(|m| match m {
                ServerMsg::Notice(n) if n.id.as_deref() == Some("r1") => Some(n),
                ServerMsg::Error(e) => panic!("register refused: {e:?}"),
                _ => None,
            })
            .await;
        assert!(notice.text.contains("registered"), "{}", notice.text);
        drop(alice);
        let mut again = Client::connect(server.addr).await;
        let answer = hello(&mut again, "ALICE", None).await;
        assert_eq!(code(&answer), Some(ErrorCode::AuthFailed), "{answer:?}");
        let answer = hello(&mut again, "Alice", Some(SECRET)).await;
        assert!(matches!(answer, ServerMsg::Welcome(_)), "{answer:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_operator_kicks_mutes_and_bans_and_others_may_not() {
    captured();
    bounded(60, async {
        let (server, mut root, _dir) = operator_server().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut eve = Client::login(server.addr, "eve").await;
        // Not an operator.
        bob.send(Kick {
            id: Some("k0".into()),
            room: "#lobby".into(),
            nick: "eve".into(),
            reason: None,
        })
        .await;
        bob.expect_error(ErrorCode::Forbidden).await;
        // Mute: eve's sends are refused.
        root.send(Mute {
            id: Some("m1".into()),
            nick: "eve".into(),
            room: None,
            duration_secs: Some(600),
        })
        .await;
        eve.say("#lobby", "spam", "e1").await;
        let err = eve.expect_error(ErrorCode::Forbidden).await;
        assert_eq!(err.id.as_deref(), Some("e1"));
        // Kick: eve leaves #lobby with the reason.
        root.send(Kick {
            id: Some("k1".into()),
            room: "#lobby".into(),
            nick: "eve".into(),
            reason: Some("spam".into()),
        })
        .await;
        let parted = bob
            .recv_until(|m| match m {
                ServerMsg::Parted(p) if p.nick == "eve" => Some(p),
                _ => None,
            })
            .await;
        assert!(parted.reason.unwrap_or_default().contains("spam"));
        // Ban: eve cannot come back.
        root.send(Ban {
            id: Some("b1".into()),
            target: "eve".into(),
            duration_secs: Some(3600),
            reason: Some("spam".into()),
        })
        .await;
        drop(eve);
        let mut eve = Client::connect(server.addr).await;
        let answer = hello(&mut eve, "eve", None).await;
        assert_eq!(code(&answer), Some(ErrorCode::Banned), "{answer:?}");
        server.stop().await;
    })
    .await;
}

/// `root` mutes or unmutes `nick` everywhere and reads the answer.
async fn mute(root: &mut Client, nick: &str, duration_secs: u64) {
    let id = format!("mute-{nick}-{duration_secs}");
    root.send(Mute {
        id: Some(id.clone()),
        nick: nick.into(),
        room: None,
        duration_secs: Some(duration_secs),
    })
    .await;
    root.recv_until(|m| match m {
        ServerMsg::Notice(n) if n.id.as_deref() == Some(id.as_str()) => Some(()),
        ServerMsg::Error(e) => panic!("mute refused: {e:?}"),
        _ => None,
    })
    .await;
}

/// Whether `c`'s message to `#lobby` is refused as muted (else it is acked).
async fn is_muted(c: &mut Client, text: &str) -> bool {
    c.say("#lobby", text, text).await;
    c.recv_until(|m| match m {
        ServerMsg::Ack(a) if a.id.as_deref() == Some(text) => Some(false),
        ServerMsg::Error(e) if e.id.as_deref() == Some(text) => {
            assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
            Some(true)
        }
        _ => None,
    })
    .await
}

#[tokio::test]
async fn mutes_survive_a_restart_until_lifted_or_expired() {
    captured();
    bounded(60, async {
        let (server, mut root, dir) = operator_server().await;
        mute(&mut root, "eve", 3600).await;
        mute(&mut root, "Mallory", 1).await;
        let mut eve = Client::login(server.addr, "eve").await;
        assert!(is_muted(&mut eve, "before the restart").await);
        drop(eve);
        server.stop().await;
        // Mallory's mute ends while the server is down.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

        let server = TestServer::start(operator_config(&dir)).await;
        let mut eve = Client::login(server.addr, "EVE").await;
        assert!(is_muted(&mut eve, "after the restart").await);
        let mut mallory = Client::login(server.addr, "mallory").await;
        assert!(!is_muted(&mut mallory, "expired").await);
        let mut root = login_root(server.addr).await;
        mute(&mut root, "eve", 0).await;
        assert!(!is_muted(&mut eve, "unmuted").await);
        drop((eve, mallory, root));
        server.stop().await;

        // Lifting is kept too.
        let server = TestServer::start(operator_config(&dir)).await;
        let mut eve = Client::login(server.addr, "eve").await;
        assert!(!is_muted(&mut eve, "still unmuted").await);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_mute_follows_the_person_through_nick_changes_topics_and_files() {
    captured();
    bounded(60, async {
        let (server, mut root, _dir) = operator_server().await;
        let mut eve = Client::login(server.addr, "eve").await;
        root.send(Mute {
            id: Some("m-lobby".into()),
            nick: "eve".into(),
            room: Some("#lobby".into()),
            duration_secs: Some(600),
        })
        .await;
        // She is told at once, not at her next bounced line.
        let told = eve
            .recv_until(|m| match m {
                ServerMsg::Notice(n) if n.text.contains("muted") => Some(n.text),
                _ => None,
            })
            .await;
        assert!(
            told.starts_with("you are muted in #lobby by root until 20"),
            "{told}"
        );
        assert!(is_muted(&mut eve, "muted in the lobby").await);

        // A new nick would leave the mute behind with the old one: refused.
        eve.send(chat_proto::client::Nick {
            id: Some("n1".into()),
            nick: "steve".into(),
        })
        .await;
        let err = eve.expect_error(ErrorCode::Forbidden).await;
        assert_eq!(err.id.as_deref(), Some("n1"));
        assert!(err.message.contains("muted"), "{}", err.message);
        // A case change of the same nick is still hers to make.
        eve.send(chat_proto::client::Nick {
            id: Some("n2".into()),
            nick: "Eve".into(),
        })
        .await;
        eve.recv_until(|m| match m {
            ServerMsg::NickChanged(n) if n.new == "Eve" => Some(()),
            ServerMsg::Error(e) => panic!("case change refused: {e:?}"),
            _ => None,
        })
        .await;

        // Nor may she write the room's topic, nor offer the room a file.
        eve.send(chat_proto::client::Topic {
            id: Some("t1".into()),
            room: "#lobby".into(),
            topic: Some("buy my stuff".into()),
            lock: None,
        })
        .await;
        assert_eq!(
            eve.expect_error(ErrorCode::Forbidden).await.id.as_deref(),
            Some("t1")
        );
        eve.send(chat_proto::client::FileOffer {
            id: Some("f1".into()),
            to: "#lobby".into(),
            name: "spam.txt".into(),
            size: 10,
            sha256: "0".repeat(64),
        })
        .await;
        assert_eq!(
            eve.expect_error(ErrorCode::Forbidden).await.id.as_deref(),
            Some("f1")
        );
        assert!(is_muted(&mut eve, "still muted as Eve").await);
        server.stop().await;
    })
    .await;
}

/// Runs `chat-server account ARGS... --data-dir DIR --admin root` with `stdin`; returns its
/// success and what it printed.
fn account_cmd(dir: &tempfile::TempDir, args: &[&str], stdin: &str) -> (bool, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("account")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--admin", "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn an_operator_nick_is_registered_on_the_server_never_over_the_network() {
    captured();
    bounded(60, async {
        let dir = tempfile::tempdir().unwrap();
        // Whoever connects first as the admin nick cannot claim it.
        let server = TestServer::start(operator_config(&dir)).await;
        let mut early = Client::login(server.addr, "Root").await;
        early
            .send(Register {
                id: Some("r1".into()),
                password: "mallory's password".into(),
            })
            .await;
        let err = early.expect_error(ErrorCode::Forbidden).await;
        assert!(
            err.message.contains("chat-server account add"),
            "{}",
            err.message
        );
        // Nor has it any power while unregistered.
        early
            .send(Kick {
                id: Some("k1".into()),
                room: "#lobby".into(),
                nick: "Root".into(),
                reason: None,
            })
            .await;
        early.expect_error(ErrorCode::Forbidden).await;
        // The account command refuses to touch the store of a running server.
        let (ok, said) = account_cmd(&dir, &["add", "root"], &format!("{SECRET}\n"));
        assert!(!ok, "{said}");
        assert!(said.contains("stop the server"), "{said}");
        drop(early);
        server.stop().await;

        let (ok, said) = account_cmd(&dir, &["add", "root"], &format!("{SECRET}\n"));
        assert!(ok, "{said}");
        let (ok, said) = account_cmd(&dir, &["list"], "");
        assert!(ok && said.contains("root (admin)"), "{said}");
        // Now root is an operator once logged in with that password.
        let server = TestServer::start(operator_config(&dir)).await;
        let mut root = login_root(server.addr).await;
        let mut eve = Client::login(server.addr, "eve").await;
        root.send(Kick {
            id: Some("k2".into()),
            room: "#lobby".into(),
            nick: "eve".into(),
            reason: Some("test".into()),
        })
        .await;
        eve.recv_until(|m| match m {
            ServerMsg::Parted(p) if p.nick == "eve" => Some(()),
            _ => None,
        })
        .await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_fourth_wrong_server_password_within_a_minute_is_throttled() {
    captured();
    bounded(30, async {
        let mut config = test_config();
        config.server_password = Some("open sesame".into());
        config.handshake_timeout = std::time::Duration::from_secs(30);
        let server = TestServer::start(config).await;
        let mut c = Client::connect(server.addr).await;
        let hello = |password: &str| {
            ClientMsg::Hello(Hello {
                name: "alice".into(),
                server_password: Some(password.to_owned()),
                ..Hello::default()
            })
        };
        for guess in ["sesame", "open", "sesame open"] {
            c.send(hello(guess)).await;
            c.expect_error(ErrorCode::AuthFailed).await;
        }
        // Even the right one is refused unchecked now, and from a new connection too.
        c.send(hello("open sesame")).await;
        c.expect_error(ErrorCode::AuthThrottled).await;
        let mut again = Client::connect(server.addr).await;
        again.send(hello("open sesame")).await;
        again.expect_error(ErrorCode::AuthThrottled).await;
        // Another address is not affected.
        let stream = account_support::connect_from([127, 0, 0, 7], server.addr).await;
        let mut other = Client::over(stream);
        other.send(hello("open sesame")).await;
        assert!(matches!(other.recv().await, ServerMsg::Welcome(_)));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_room_keeps_its_topic_and_lock_when_it_empties_and_across_a_restart() {
    captured();
    bounded(60, async {
        let (server, mut root, dir) = operator_server().await;
        root.send(Join {
            id: None,
            room: "#rules".into(),
        })
        .await;
        root.expect_burst("#rules").await;
        root.send(Topic {
            id: Some("t1".into()),
            room: "#rules".into(),
            topic: Some("be kind".into()),
            lock: Some(true),
        })
        .await;
        root.recv_until(|m| match m {
            ServerMsg::Topic(t) if t.id.as_deref() == Some("t1") => Some(()),
            _ => None,
        })
        .await;
        drop(root);
        server.stop().await;

        let server = TestServer::start(operator_config(&dir)).await;
        let mut bob = Client::login(server.addr, "bob").await;
        bob.send(Join {
            id: None,
            room: "#Rules".into(),
        })
        .await;
        let topic = bob
            .recv_until(|m| match m {
                ServerMsg::Topic(t) if t.room == "#Rules" => Some(t),
                _ => None,
            })
            .await;
        assert_eq!(topic.topic, "be kind");
        assert_eq!(topic.set_by.as_deref(), Some("root"));
        assert!(topic.locked);
        // Still locked: bob may not change it.
        bob.send(Topic {
            id: Some("t2".into()),
            room: "#Rules".into(),
            topic: Some("anything goes".into()),
            lock: None,
        })
        .await;
        bob.expect_error(ErrorCode::Forbidden).await;
        server.stop().await;
    })
    .await;
}
