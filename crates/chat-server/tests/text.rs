//! Text mode over real sockets: netcat, telnet and GBK clients chat with framed clients.
#![allow(clippy::unwrap_used)]

mod support;
mod text_support;

use std::time::Duration;

use chat_proto::ServerMsg;
use chat_proto::client::{Join, Send};
use encoding_rs::GBK;
use support::{Client, TestServer, bounded, test_config};
use text_support::{TextClient, has_clock};
use tokio::time::Instant;

/// The framed client receives a room message from `from` and returns its text.
async fn heard_from(c: &mut Client, from: &str) -> String {
    c.recv_until(|m| match m {
        ServerMsg::Message(x) if x.from == from => Some(x.text),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_gbk_client_and_a_framed_client_exchange_chinese_text() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;

        // A legacy Windows client: GBK bytes, its name first, no greeting asked for.
        let mut zhang = TextClient::connect(server.addr).await;
        zhang.charset = GBK;
        zhang.send_line("张三").await;
        let switched = zhang.line().await;
        assert!(
            switched.contains("not UTF-8") && switched.contains("GBK"),
            "{switched}"
        );
        zhang.line_with("*** welcome, 张三!").await;
        zhang.line_with("*** in #lobby (2): alice, 张三").await;
        alice
            .recv_until(|m| match m {
                ServerMsg::Joined(j) if j.nick == "张三" => Some(()),
                _ => None,
            })
            .await;

        zhang.send_line("你好，世界！").await;
        assert_eq!(heard_from(&mut alice, "张三").await, "你好，世界！");

        alice.say("#lobby", "欢迎你 😀 ok", "w").await;
        let line = zhang.line_with("<alice>").await;
        assert!(has_clock(&line), "{line}");
        assert!(line.ends_with(" #lobby <alice> 欢迎你 ? ok"), "{line}");
        assert!(
            !zhang.raw.windows(2).any(|w| w == b"&#"),
            "no numeric character references"
        );
    })
    .await;
}

#[tokio::test]
async fn gbk_bytes_split_inside_a_character_decode_correctly() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut wang = TextClient::login(server.addr, "wang").await;
        wang.send_line("/charset gbk").await;
        wang.line_with("*** this connection now uses GBK").await;
        wang.charset = GBK;

        // A whole line, cut after the first byte of its second character.
        let mut bytes = wang.encode("中文测试");
        bytes.extend_from_slice(b"\r\n");
        wang.write(&bytes[..3]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        wang.write(&bytes[3..]).await;
        assert_eq!(heard_from(&mut alice, "wang").await, "中文测试");

        // Chunks with no line ending, cut inside a character, each followed by silence: the
        // half character waits for the next chunk instead of turning into garbage.
        let bytes = wang.encode("半个字");
        wang.write(&bytes[..3]).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        wang.write(&bytes[3..]).await;
        assert_eq!(heard_from(&mut alice, "wang").await, "半");
        assert_eq!(heard_from(&mut alice, "wang").await, "个字");
    })
    .await;
}

#[tokio::test]
async fn the_server_default_charset_applies_to_text_clients() {
    bounded(20, async {
        let mut config = test_config();
        config.text_encoding = GBK;
        let server = TestServer::start(config).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut li = TextClient::connect(server.addr).await;
        li.charset = GBK;
        li.send_line("李四").await;
        let first = li.line().await;
        assert!(
            first.starts_with("*** welcome, 李四!"),
            "no detection notice: {first}"
        );
        li.send_line("/charset").await;
        li.line_with("*** this connection uses GBK").await;
        alice.say("#lobby", "早上好", "m").await;
        assert!(li.line_with("<alice>").await.ends_with("<alice> 早上好"));
    })
    .await;
}

#[tokio::test]
async fn a_silent_netcat_client_is_greeted_names_itself_chats_and_quits() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let started = Instant::now();
        let mut carol = TextClient::connect(server.addr).await;
        let greeting = carol.line().await;
        let took = started.elapsed();
        assert!(greeting.contains("welcome to chat-server"), "{greeting}");
        assert!(carol.line().await.contains("what is your name?"));
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
            "greeted after {took:?}"
        );

        // netcat sends LF only.
        carol.write(b"carol\n").await;
        carol.line_with("*** welcome, carol!").await;
        let joined = carol.line().await;
        assert!(
            has_clock(&joined)
                && joined.ends_with("*** you joined #lobby; your lines go there now"),
            "{joined}"
        );
        carol.line_with("*** in #lobby (2): alice, carol").await;

        carol.write(b"hello from netcat\n").await;
        assert_eq!(heard_from(&mut alice, "carol").await, "hello from netcat");
        alice.say("#lobby", "hi carol", "hi").await;
        let line = carol.line_with("hi carol").await;
        assert!(has_clock(&line));
        assert_eq!(&line[8..], "#lobby <alice> hi carol");

        carol.write(b"/quit gotta go\n").await;
        let last = carol.expect_closed().await;
        assert_eq!(last.last().map(String::as_str), Some("*** bye"), "{last:?}");
        let reason = alice
            .recv_until(|m| match m {
                ServerMsg::Quit(q) if q.nick == "carol" => Some(q.reason),
                _ => None,
            })
            .await;
        assert_eq!(reason.as_deref(), Some("gotta go"));
    })
    .await;
}

#[tokio::test]
async fn lines_sent_right_behind_the_name_reach_the_lobby() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        // A homework client or a piped file: the name and the first lines in one write,
        // before the server has said anything.
        let mut dave = TextClient::connect(server.addr).await;
        dave.write(
            b"dave
first line
second line
",
        )
        .await;
        assert_eq!(heard_from(&mut alice, "dave").await, "first line");
        assert_eq!(heard_from(&mut alice, "dave").await, "second line");
        dave.line_with("*** welcome, dave!").await;
        dave.line_with("*** you joined #lobby").await;
        // Neither line bounced.
        dave.send_line("/quit").await;
        let rest = dave.expect_closed().await;
        assert!(
            !rest.iter().any(|l| l.contains("no room")),
            "a line bounced: {rest:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_taken_or_invalid_name_is_refused_and_asked_again() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let _alice = Client::login(server.addr, "alice").await;
        let mut t = TextClient::connect(server.addr).await;
        t.send_line("ALICE").await;
        assert!(t.line().await.contains("is in use"));
        assert_eq!(t.line().await, "*** choose another name:");
        t.send_line("two words").await;
        assert!(t.line().await.contains("whitespace"));
        t.line_with("choose another name").await;
        t.send_line("/join #rust").await;
        assert!(t.line().await.contains("choose a name first"));
        t.send_line("dave").await;
        t.line_with("*** welcome, dave!").await;
    })
    .await;
}

#[tokio::test]
async fn a_homework_client_that_sends_chunks_without_newlines_can_chat() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        // Like the course homework: send(), then block on recv().
        let mut hw = TextClient::connect(server.addr).await;
        hw.name = "homer".into();
        let started = Instant::now();
        hw.write(b"homer").await;
        let welcome = hw.line().await;
        let took = started.elapsed();
        assert!(welcome.starts_with("*** welcome, homer!"), "{welcome}");
        assert!(
            took >= Duration::from_millis(450),
            "a chunk is a line only after silence: {took:?}"
        );
        hw.line_with("*** in #lobby").await;

        let started = Instant::now();
        hw.write(b"is anybody there?").await;
        assert_eq!(heard_from(&mut alice, "homer").await, "is anybody there?");
        assert!(started.elapsed() >= Duration::from_millis(450));
        alice.say("#lobby", "yes, me", "y").await;
        assert!(hw.line_with("<alice>").await.ends_with("<alice> yes, me"));

        // Then GBK text, still without line endings: the first non-ASCII chunk decides.
        hw.write(&GBK.encode("有人说中文吗？").0).await;
        assert_eq!(heard_from(&mut alice, "homer").await, "有人说中文吗？");
        let switched = hw.line().await;
        assert!(switched.contains("GBK"), "{switched}");
        hw.charset = GBK;
        alice.say("#lobby", "说，当然", "z").await;
        assert!(hw.line_with("<alice>").await.ends_with("<alice> 说，当然"));
    })
    .await;
}

#[tokio::test]
async fn telnet_negotiation_is_ignored_and_never_echoed() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut alice = Client::login(server.addr, "alice").await;
        let mut t = TextClient::connect(server.addr).await;
        // IAC DO ECHO, IAC WILL NAWS, IAC SB NAWS 0 80 0 24 IAC SE: a telnet client's opening.
        t.write(&[
            255, 253, 1, 255, 251, 31, 255, 250, 31, 0, 80, 0, 24, 255, 240,
        ])
        .await;
        t.line_with("what is your name?").await;
        // A NOP in the middle of the name, and an escaped 0xFF subnegotiation byte.
        t.write(b"tel").await;
        t.write(&[255, 241]).await;
        t.write(b"net\r\n").await;
        t.line_with("*** welcome, telnet!").await;
        t.write(&[255, 250, 24, 0]).await;
        t.write(b"xterm").await;
        t.write(&[255, 255, 255, 240]).await;
        t.write(b"typed in telnet\r\n").await;
        assert_eq!(heard_from(&mut alice, "telnet").await, "typed in telnet");
        alice.say("#lobby", "ok", "ok").await;
        t.line_with("<alice> ok").await;
        assert!(!t.raw.contains(&255), "no telnet command is ever sent back");
    })
    .await;
}

#[tokio::test]
async fn escape_sequences_from_a_framed_user_arrive_neutralised() {
    bounded(20, async {
        let server = TestServer::start(test_config()).await;
        let mut mallory = Client::login(server.addr, "mallory").await;
        let mut t = TextClient::login(server.addr, "victim").await;
        let evil = "\x1b[2J\x1b]52;c;cGF3bmVk\x07bell\x07\rfake\n[12:00] #lobby <admin> trust me\u{202E}\u{200B}";
        mallory.say("#lobby", evil, "e").await;
        let first = t.line_with("<mallory>").await;
        let second = t.line().await;
        assert!(first.ends_with("#lobby <mallory> ␛[2J␛]52;c;cGF3bmVk␇bell␇␍fake"), "{first}");
        assert!(has_clock(&second));
        assert!(second.ends_with("#lobby <mallory> [12:00] #lobby <admin> trust me\u{FFFD}"), "{second}");
        let controls: Vec<u8> = t
            .raw
            .iter()
            .copied()
            .filter(|&b| b < 0x20 && b != b'\r' && b != b'\n')
            .collect();
        assert!(controls.is_empty(), "control bytes reached the socket: {controls:?}");
        assert!(!t.raw.windows(3).any(|w| w == "\u{202E}".as_bytes()));
    })
    .await;
}

#[tokio::test]
async fn text_users_use_the_same_commands_as_the_tui() {
    bounded(20, async {
        let mut config = test_config();
        config.rate_burst = 100;
        let server = TestServer::start(config).await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut tom = TextClient::login(server.addr, "tom").await;

        tom.send_line("/join rust").await;
        tom.line_with("*** you joined #rust; your lines go there now")
            .await;
        tom.line_with("*** #rust has no topic").await;
        tom.line_with("*** in #rust (1): tom").await;
        bob.send(Join {
            id: None,
            room: "#rust".into(),
        })
        .await;
        bob.expect_burst("#rust").await;
        tom.line_with("*** bob joined #rust").await;

        tom.send_line("in rust now").await;
        let m = bob.recv_message().await;
        assert_eq!(
            (m.room.as_deref(), m.text.as_str()),
            (Some("#rust"), "in rust now")
        );
        tom.send_line("/me waves").await;
        let m = bob.recv_message().await;
        assert!(m.action && m.text == "waves");
        tom.send_line("//slash at the start").await;
        assert_eq!(bob.recv_message().await.text, "/slash at the start");
        tom.send_line("/msg bob psst").await;
        let m = bob.recv_message().await;
        assert_eq!(
            (m.room, m.to.as_deref(), m.text.as_str()),
            (None, Some("bob"), "psst")
        );
        bob.send(Send {
            id: None,
            to: "tom".into(),
            text: "psst back".into(),
            action: false,
        })
        .await;
        assert!(
            tom.line_with("psst back")
                .await
                .ends_with("(private) <bob> psst back")
        );

        tom.send_line("/who").await;
        tom.line_with("*** in #rust (2): bob, tom").await;
        tom.send_line("/topic crabs and ferris").await;
        tom.line_with("*** topic of #rust: crabs and ferris (set by tom)")
            .await;
        tom.send_line("/rooms").await;
        tom.line_with("*** 2 rooms:").await;
        tom.line_with("#lobby (2 in it)").await;
        tom.line_with("#rust (2 in it): crabs and ferris").await;
        tom.send_line("/nick tommy").await;
        tom.line_with("*** you are now known as tommy").await;
        let nick = bob
            .recv_until(|m| match m {
                ServerMsg::NickChanged(n) => Some(n),
                _ => None,
            })
            .await;
        assert_eq!((nick.old.as_str(), nick.new.as_str()), ("tom", "tommy"));
        tom.send_line("/part").await;
        tom.line_with("*** you left #rust").await;
        tom.line_with("*** your lines go to #lobby now").await;
        tom.send_line("back in the lobby").await;
        let m = bob.recv_message().await;
        assert_eq!(
            (m.room.as_deref(), m.from.as_str()),
            (Some("#lobby"), "tommy")
        );

        tom.send_line("/frobnicate").await;
        tom.line_with("*** unknown command /frobnicate; /help lists them")
            .await;
        tom.send_line("/msg bob").await;
        tom.line_with("*** usage: /msg nick text").await;
        tom.send_line("/join #bad room").await;
        tom.send_line("/help").await;
        tom.line_with("/charset [name]").await;
        tom.send_line("/charset klingon").await;
        tom.line_with("*** error: unknown charset").await;
    })
    .await;
}
