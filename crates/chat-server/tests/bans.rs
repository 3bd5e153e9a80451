//! Bans over sockets, like IRC's K-line: a banned user (framed or text) reads why and until
//! when, and its connection closes; its rooms hear it quit "banned"; everyone else goes on.
#![allow(clippy::unwrap_used)]

mod account_support;
mod support;
mod text_support;

use chat_proto::client::Ban;
use chat_proto::server::Error;
use chat_proto::{ErrorCode, ServerMsg};
use support::{Client, bounded};
use text_support::TextClient;

use account_support::{connect_from, hello, operator_server};

fn ban(target: &str, reason: Option<&str>, duration_secs: Option<u64>) -> Ban {
    Ban {
        id: Some(format!("ban-{target}")),
        target: target.into(),
        duration_secs,
        reason: reason.map(str::to_owned),
    }
}

/// Reads until the server closes the connection; returns the `banned` error that came on
/// the way (which must be the last frame).
async fn banned_then_closed(c: &mut Client) -> Error {
    let got = c.expect_closed().await;
    match got.last() {
        Some(ServerMsg::Error(e)) if e.code == ErrorCode::Banned => e.clone(),
        other => panic!("{}: expected a last error banned, got {other:?}", c.nick),
    }
}

/// `who` reads `nick`'s quit and returns its reason.
async fn quit_reason(who: &mut Client, nick: &str) -> Option<String> {
    who.recv_until(|m| match m {
        ServerMsg::Quit(q) if q.nick == nick => Some(q.reason),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_banned_user_reads_why_and_is_disconnected_and_cannot_come_back() {
    bounded(60, async {
        let (server, mut root, _dir) = operator_server().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut eve = Client::login(server.addr, "eve").await;

        root.send(ban("Eve", Some("spam"), Some(3600))).await;
        let err = banned_then_closed(&mut eve).await;
        assert!(err.message.contains("spam"), "{}", err.message);
        assert!(err.message.contains("until 20"), "{}", err.message);
        assert_eq!(
            quit_reason(&mut bob, "eve").await.as_deref(),
            Some("banned")
        );
        // Everyone else goes on.
        bob.chat_with(&mut root, "still here").await;

        // Coming back under the banned nick (any case) is refused, and the connection closes.
        let mut again = Client::connect(server.addr).await;
        let answer = hello(&mut again, "EVE", None).await;
        match answer {
            ServerMsg::Error(e) => {
                assert_eq!(e.code, ErrorCode::Banned);
                assert!(e.message.contains("spam"), "{}", e.message);
            }
            other => panic!("expected error banned, got {other:?}"),
        }
        assert!(again.expect_closed().await.is_empty());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_banned_text_user_reads_one_line_and_is_disconnected() {
    bounded(60, async {
        let (server, mut root, _dir) = operator_server().await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut tex = TextClient::login(server.addr, "tex").await;

        root.send(ban("tex", Some("flooding \x1b[2J"), None)).await;
        let lines = tex.expect_closed().await;
        let last = lines.last().cloned().unwrap_or_default();
        assert!(
            last.starts_with("*** you are banned permanently: flooding ␛[2J")
                && last.ends_with("; disconnecting"),
            "{lines:?}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.contains("banned")).count(),
            1,
            "{lines:?}"
        );
        assert_eq!(
            quit_reason(&mut bob, "tex").await.as_deref(),
            Some("banned")
        );
        bob.chat_with(&mut root, "after tex").await;

        // Typing the banned name again closes the connection at once.
        let mut back = TextClient::connect(server.addr).await;
        back.send_line("Tex").await;
        let lines = back.expect_closed().await;
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("*** you are banned permanently")),
            "{lines:?}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_ban_by_address_closes_every_connection_from_it() {
    bounded(60, async {
        let (server, mut root, _dir) = operator_server().await;
        let mut bob = Client::login(server.addr, "bob").await;
        // Two users on another host, one framed and one text.
        let mut eve = Client::over(connect_from([127, 0, 0, 2], server.addr).await);
        assert!(matches!(eve.hello("eve").await, ServerMsg::Welcome(_)));
        eve.expect_burst("#lobby").await;
        let mut tex = TextClient::over(connect_from([127, 0, 0, 2], server.addr).await);
        tex.send_line("tex").await;
        tex.line_with("*** welcome, tex!").await;

        // An operator may not ban its own address.
        root.send(ban("127.0.0.1", None, Some(60))).await;
        root.expect_error(ErrorCode::BadRequest).await;

        root.send(ban("127.0.0.2", Some("botnet"), Some(600))).await;
        let err = banned_then_closed(&mut eve).await;
        assert!(err.message.contains("botnet"), "{}", err.message);
        let lines = tex.expect_closed().await;
        assert!(
            lines
                .last()
                .is_some_and(|l| l.contains("banned") && l.contains("botnet")),
            "{lines:?}"
        );
        // Both quits arrive, in either order.
        let mut quits = std::collections::BTreeMap::new();
        while quits.len() < 2 {
            let (nick, reason) = bob
                .recv_until(|m| match m {
                    ServerMsg::Quit(q) => Some((q.nick, q.reason)),
                    _ => None,
                })
                .await;
            quits.insert(nick, reason.unwrap_or_default());
        }
        assert_eq!(quits["eve"], "banned");
        assert_eq!(quits["tex"], "banned");
        bob.chat_with(&mut root, "the lobby is calm").await;

        // Any nick from that address is refused now.
        let mut other = Client::over(connect_from([127, 0, 0, 2], server.addr).await);
        match other.hello("someone_else").await {
            ServerMsg::Error(e) => assert_eq!(e.code, ErrorCode::Banned),
            m => panic!("expected error banned, got {m:?}"),
        }
        assert!(other.expect_closed().await.is_empty());
        server.stop().await;
    })
    .await;
}
