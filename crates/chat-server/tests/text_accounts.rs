//! Accounts from text mode over real sockets: a netcat user logs in to a registered name by
//! answering a password prompt (or with `/login`), registers with `/register`, and gives a
//! private server's password first; the hub's checks and throttling apply as for framed clients.
#![allow(clippy::unwrap_used)]

mod account_support;
mod support;
mod text_support;

use std::time::Duration;

use chat_proto::ServerMsg;
use chat_server::config::HistoryKind;
use support::{Client, TestServer, bounded, test_config};
use text_support::TextClient;

use account_support::{SECRET, hello, store_with_accounts};

/// A server whose store holds the account `alice` (keep the directory alive).
async fn server_with_alice() -> (TestServer, tempfile::TempDir) {
    let dir = store_with_accounts(&["alice"], SECRET);
    let mut config = test_config();
    config.history = HistoryKind::Sqlite;
    config.data_dir = Some(dir.path().to_owned());
    config.handshake_timeout = Duration::from_secs(30);
    (TestServer::start(config).await, dir)
}

/// Types `name`, which must be registered: reads the password prompt.
async fn type_registered_name(t: &mut TextClient, name: &str) {
    t.send_line(name).await;
    let prompt = t.line().await;
    assert!(
        prompt.ends_with("is registered: type its password and press Enter"),
        "{name}: {prompt}"
    );
}

/// The framed client reads messages until one from `from`; returns its text.
async fn heard_from(c: &mut Client, from: &str) -> String {
    c.recv_until(|m| match m {
        ServerMsg::Message(x) if x.from == from => Some(x.text),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_text_user_answers_the_password_prompt_and_chats_under_its_registered_name() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut t = TextClient::connect(server.addr).await;
        t.name = "alice".into();
        type_registered_name(&mut t, "alice").await;
        t.send_line(SECRET).await;
        t.line_with("*** welcome, alice!").await;
        t.line_with("*** in #lobby (2): alice, bob").await;
        t.send_line("hi, it is really me").await;
        assert_eq!(heard_from(&mut bob, "alice").await, "hi, it is really me");
        assert!(!t.raw.contains(&255), "netcat gets no telnet commands");
        server.stop().await;
    })
    .await;
}

/// Everything `c` receives up to the message `text` from `from`.
async fn seen_until(c: &mut Client, from: &str, text: &str) -> Vec<ServerMsg> {
    let mut seen = Vec::new();
    c.recv_until(|m| {
        let done = matches!(&m, ServerMsg::Message(x) if x.from == from && x.text == text);
        seen.push(m);
        done.then_some(())
    })
    .await;
    seen
}

/// The prompt after a wrong password for `alice`.
const ASK_AGAIN: &str =
    "*** type the password of alice again (an empty line or /nick other to choose another name)";

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_name_stays_free_for_its_owner() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut t = TextClient::connect(server.addr).await;
        type_registered_name(&mut t, "alice").await;
        t.send_line("not the password").await;
        assert_eq!(t.line().await, r#"*** error: wrong password for "alice""#);
        assert_eq!(t.line().await, ASK_AGAIN);
        // The owner logs in meanwhile; the text user goes on under another name.
        let mut owner = Client::connect(server.addr).await;
        let answer = hello(&mut owner, "alice", Some(SECRET)).await;
        assert!(matches!(answer, ServerMsg::Welcome(_)), "{answer:?}");
        t.send_line("/nick mallory").await;
        t.line_with("*** welcome, mallory!").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_password_typed_again_after_a_wrong_one_is_a_password_never_a_name_or_a_message() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut t = TextClient::connect(server.addr).await;
        t.name = "alice".into();
        type_registered_name(&mut t, "alice").await;
        t.send_line("Zebra-Quartz-7781-secreT").await;
        t.line_with("wrong password").await;
        assert_eq!(t.line().await, ASK_AGAIN);
        // The retyped password — a valid nick, the worst case — logs in.
        t.send_line(SECRET).await;
        t.line_with("*** welcome, alice!").await;
        t.send_line("it is me").await;
        // Bob saw alice join and talk, never a nick or a line made of a password.
        let seen = format!("{:?}", seen_until(&mut bob, "alice", "it is me").await);
        server.stop().await;
        for password in ["Zebra-Quartz", "secreT"] {
            assert!(!seen.contains(password), "{seen}");
        }
        let raw = String::from_utf8_lossy(&t.raw).into_owned();
        assert!(!raw.contains("Zebra"), "no password is echoed: {raw}");
    })
    .await;
}

#[tokio::test]
async fn an_empty_line_at_the_password_prompt_goes_back_to_the_name_prompt() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut t = TextClient::connect(server.addr).await;
        type_registered_name(&mut t, "alice").await;
        t.send_line("wrong one").await;
        t.line_with(ASK_AGAIN).await;
        t.send_line("").await;
        assert_eq!(t.line().await, "*** no password given; choose a name:");
        t.send_line("carol").await;
        t.line_with("*** welcome, carol!").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_fourth_login_within_a_minute_is_throttled_even_with_the_right_password() {
    bounded(60, async {
        let (server, _dir) = server_with_alice().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut t = TextClient::connect(server.addr).await;
        type_registered_name(&mut t, "alice").await;
        for i in 0..3 {
            t.send_line(&format!("guess number {i}")).await;
            t.line_with("wrong password").await;
            t.line_with(ASK_AGAIN).await;
        }
        // The throttle says stop: the connection closes (the next line could be the password).
        t.send_line(SECRET).await;
        let last = t.expect_closed().await;
        assert!(
            last.iter()
                .any(|l| l.contains("too many failed logins") && l.ends_with("disconnecting")),
            "{last:?}"
        );
        let mut again = TextClient::connect(server.addr).await;
        again.send_line(&format!("/login alice {SECRET}")).await;
        let last = again.expect_closed().await;
        assert!(
            last.iter().any(|l| l.contains("too many failed logins")),
            "{last:?}"
        );
        let mut carol = TextClient::login(server.addr, "carol").await;
        carol.send_line("the end").await;
        let seen = format!("{:?}", seen_until(&mut bob, "carol", "the end").await);
        for password in ["guess", "Zebra"] {
            assert!(!seen.contains(password), "{seen}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn case_variants_and_look_alikes_of_a_registered_name_need_its_password() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut t = TextClient::connect(server.addr).await;
        // Cyrillic а, fullwidth, a zero-width space, capitals: all the account `alice`.
        for name in ["\u{430}lice", "ＡＬＩＣＥ", "ali\u{200b}ce", "ALICE"] {
            type_registered_name(&mut t, name).await;
            t.send_line("").await;
            assert_eq!(t.line().await, "*** no password given; choose a name:");
        }
        t.send_line(&format!("/login Alice {SECRET}")).await;
        t.line_with("*** welcome, Alice!").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_private_server_asks_a_text_user_for_its_password_first() {
    bounded(30, async {
        let mut config = test_config();
        config.server_password = Some("open sesame".into());
        let server = TestServer::start(config).await;
        let mut t = TextClient::connect(server.addr).await;
        t.line_with("*** welcome to chat-server").await;
        assert_eq!(
            t.line().await,
            "*** this server is private: type its password and press Enter"
        );
        t.send_line("open sesam").await;
        assert_eq!(
            t.line().await,
            "*** error: wrong server password; type it again"
        );
        t.send_line("open sesame").await;
        t.line_with("*** what is your name?").await;
        t.send_line("carol").await;
        t.line_with("*** welcome, carol!").await;
        let raw = String::from_utf8_lossy(&t.raw).into_owned();
        assert!(!raw.contains("sesam"), "no password is echoed: {raw}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_text_user_registers_its_name_and_needs_the_password_next_time() {
    bounded(30, async {
        let mut config = test_config();
        config.handshake_timeout = Duration::from_secs(30);
        let server = TestServer::start(config).await;
        let mut t = TextClient::login(server.addr, "tom").await;
        t.send_line("/register short").await;
        t.line_with("*** error: a password has 8 to 1024 bytes")
            .await;
        t.send_line(&format!("/register {SECRET}")).await;
        t.line_with("*** nick tom is now registered").await;
        t.send_line("/quit").await;
        t.expect_closed().await;

        let mut again = TextClient::connect(server.addr).await;
        type_registered_name(&mut again, "Tom").await;
        again.send_line(SECRET).await;
        again.line_with("*** welcome, Tom!").await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_telnet_client_is_asked_not_to_echo_the_password_while_it_is_typed() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut t = TextClient::connect(server.addr).await;
        // A telnet client's opening: IAC DO SUPPRESS-GO-AHEAD.
        t.write(&[255, 253, 3]).await;
        t.line_with("what is your name?").await;
        type_registered_name(&mut t, "alice").await;
        t.send_line(SECRET).await;
        t.line_with("*** welcome, alice!").await;
        let at = |needle: &[u8]| t.raw.windows(3).position(|w| w == needle);
        let will = at(&[255, 251, 1]).expect("IAC WILL ECHO before the password");
        let wont = at(&[255, 252, 1]).expect("IAC WONT ECHO after it");
        let prompt = t
            .raw
            .windows(13)
            .position(|w| w == b"is registered")
            .unwrap();
        assert!(prompt < will && will < wont, "{prompt} {will} {wont}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_telnet_client_is_asked_not_to_echo_again_when_a_wrong_password_is_asked_again() {
    bounded(30, async {
        let (server, _dir) = server_with_alice().await;
        let mut t = TextClient::connect(server.addr).await;
        t.write(&[255, 253, 3]).await;
        t.line_with("what is your name?").await;
        type_registered_name(&mut t, "alice").await;
        t.send_line("wrong one").await;
        t.line_with(ASK_AGAIN).await;
        t.send_line(SECRET).await;
        t.line_with("*** welcome, alice!").await;
        let count = |needle: &[u8]| t.raw.windows(3).filter(|w| *w == needle).count();
        assert_eq!(count(&[255, 251, 1]), 2, "IAC WILL ECHO at each prompt");
        assert_eq!(
            count(&[255, 252, 1]),
            2,
            "IAC WONT ECHO after each password"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_text_user_guessing_the_server_password_is_throttled_at_the_fourth_try() {
    bounded(30, async {
        let mut config = test_config();
        config.server_password = Some("open sesame".into());
        let server = TestServer::start(config).await;
        let mut t = TextClient::connect(server.addr).await;
        t.line_with("*** this server is private").await;
        for guess in ["sesame", "open", "open sesam"] {
            t.send_line(guess).await;
            assert_eq!(
                t.line().await,
                "*** error: wrong server password; type it again"
            );
        }
        t.send_line("open sesame").await;
        let line = t.line().await;
        assert!(line.contains("too many wrong passwords"), "{line}");
        server.stop().await;
    })
    .await;
}
