//! Operators from text mode over real sockets: a netcat operator kicks, mutes, bans and locks
//! topics; the users it acts on (framed or text) and the rest of the room see it; a user who is
//! not an operator is refused in plain words.
#![allow(clippy::unwrap_used)]

mod account_support;
mod support;
mod text_support;

use chat_proto::{ErrorCode, ServerMsg};
use support::{Client, TestServer, bounded};
use text_support::TextClient;

use account_support::{SECRET, connect_from, operator_config, store_with_accounts};

/// A server whose `--admin root` has an account (keep the directory alive).
///
/// The one place the operator's account is made: in the store, as `chat-server account add
/// root` does on a stopped server (an admin nick cannot be registered over the network).
async fn server_with_operator_root() -> (TestServer, tempfile::TempDir) {
    let dir = store_with_accounts(&["root"], SECRET);
    let server = TestServer::start(operator_config(&dir)).await;
    (server, dir)
}

/// `root` logs in from netcat by answering the password prompt.
async fn text_root(server: &TestServer) -> TextClient {
    let mut root = TextClient::connect(server.addr).await;
    root.name = "root".into();
    root.send_line("root").await;
    root.line_with("root is registered: type its password")
        .await;
    root.send_line(SECRET).await;
    root.line_with("*** welcome, root!").await;
    root.line_with("*** in #lobby").await;
    root
}

/// The framed client reads until `f` matches.
async fn framed_sees<T>(c: &mut Client, f: impl FnMut(ServerMsg) -> Option<T>) -> T {
    c.recv_until(f).await
}

#[tokio::test]
async fn a_netcat_operator_kicks_a_framed_and_a_text_user_and_everyone_sees_it() {
    bounded(30, async {
        let (server, _dir) = server_with_operator_root().await;
        let mut root = text_root(&server).await;
        let mut mallory = Client::login(server.addr, "mallory").await;
        let mut carol = TextClient::login(server.addr, "carol").await;
        root.line_with("carol joined #lobby").await;

        // Not an operator: a clear refusal, and nobody is kicked.
        carol.send_line("/kick #lobby mallory").await;
        assert_eq!(
            carol.line_with("error").await,
            "*** error: only operators may do that"
        );

        root.send_line("/kick #lobby mallory spamming links").await;
        let reason = framed_sees(&mut mallory, |m| match m {
            ServerMsg::Parted(p) if p.nick == "mallory" => p.reason,
            _ => None,
        })
        .await;
        assert_eq!(reason, "kicked by root: spamming links");
        let seen = carol.line_with("mallory left #lobby").await;
        assert!(
            seen.ends_with("*** mallory left #lobby (kicked by root: spamming links)"),
            "{seen}"
        );
        root.line_with("mallory left #lobby (kicked by root: spamming links)")
            .await;

        // A text user is kicked: it reads who did it and why, and where its lines go now.
        root.send_line("/kick carol flooding").await;
        let seen = carol.line_with("kicked").await;
        assert!(
            seen.ends_with("*** you were kicked from #lobby by root: flooding"),
            "{seen}"
        );
        assert_eq!(
            carol.line().await,
            "*** you are in no room now: /join #room"
        );
        carol.send_line("still here?").await;
        assert_eq!(
            carol.line().await,
            "*** you are in no room: /join #room first"
        );

        // Errors name the problem.
        root.send_line("/kick #lobby nobody").await;
        assert_eq!(
            root.line_with("error").await,
            "*** error: nobody is not in #lobby"
        );
        root.send_line("/kick").await;
        assert_eq!(root.line().await, "*** usage: /kick [#room] nick [reason]");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_netcat_operator_mutes_and_unmutes_and_the_muted_user_is_told_when_it_speaks() {
    bounded(30, async {
        let (server, _dir) = server_with_operator_root().await;
        let mut root = text_root(&server).await;
        let mut bob = Client::login(server.addr, "bob").await;
        let mut carol = TextClient::login(server.addr, "carol").await;
        root.line_with("carol joined #lobby").await;

        carol.send_line("/mute bob").await;
        assert_eq!(
            carol.line_with("error").await,
            "*** error: only operators may do that"
        );

        root.send_line("/mute carol #lobby 10m").await;
        assert_eq!(root.line_with("muted").await, "*** carol is muted");
        carol.send_line("can anyone hear me").await;
        assert_eq!(
            carol.line_with("error").await,
            "*** error: you are muted in #lobby"
        );

        root.send_line("/unmute carol #lobby").await;
        assert_eq!(
            root.line_with("muted").await,
            "*** carol is no longer muted"
        );
        carol.send_line("back again").await;
        // Bob hears the line after the mute, never the one during it.
        let heard = framed_sees(&mut bob, |m| match m {
            ServerMsg::Message(x) if x.from == "carol" => Some(x.text),
            _ => None,
        })
        .await;
        assert_eq!(heard, "back again");

        // A muted framed user, everywhere, for 30 seconds.
        root.send_line("/mute bob 30s").await;
        assert_eq!(root.line_with("muted").await, "*** bob is muted");
        bob.say("#lobby", "hello?", "1").await;
        let refused = bob.recv_error().await;
        assert_eq!(refused.code, ErrorCode::Forbidden, "{refused:?}");

        root.send_line("/mute bob forever").await;
        assert_eq!(
            root.line().await,
            "*** usage: /mute nick [#room] [duration]"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_netcat_operator_bans_a_nick_and_an_address_and_lifts_a_ban() {
    bounded(30, async {
        let (server, _dir) = server_with_operator_root().await;
        let mut root = text_root(&server).await;
        let mut eve = TextClient::login(server.addr, "eve").await;
        let mut carol = TextClient::login(server.addr, "carol").await;

        carol.send_line("/ban eve").await;
        assert_eq!(
            carol.line_with("error").await,
            "*** error: only operators may do that"
        );

        root.send_line("/ban eve 2h go away").await;
        assert_eq!(root.line_with("eve is banned").await, "*** eve is banned");
        let last = eve.expect_closed().await;
        let told = last
            .iter()
            .find(|l| l.contains("banned"))
            .unwrap_or_else(|| panic!("{last:?}"));
        assert!(
            told.starts_with("*** you are banned until ")
                && told.ends_with(": go away; disconnecting"),
            "{told}"
        );
        assert!(
            carol
                .line_with("eve quit")
                .await
                .ends_with("*** eve quit (banned)")
        );

        // The nick is refused at the door; lifted, it is welcome again.
        let mut again = TextClient::connect(server.addr).await;
        again.send_line("eve").await;
        let last = again.expect_closed().await;
        assert!(
            last.iter().any(|l| l.contains("you are banned")),
            "{last:?}"
        );
        root.send_line("/unban eve").await;
        assert_eq!(
            root.line_with("banned").await,
            "*** eve is no longer banned"
        );
        TextClient::login(server.addr, "eve").await;

        // An address (a user on another loopback address), for good.
        let mut far = TextClient::over(connect_from([127, 0, 0, 9], server.addr).await);
        far.name = "far".into();
        far.send_line("far").await;
        far.line_with("*** welcome, far!").await;
        root.send_line("/ban 127.0.0.9").await;
        assert_eq!(root.line_with("is banned").await, "*** 127.0.0.9 is banned");
        let last = far.expect_closed().await;
        assert!(
            last.iter()
                .any(|l| l.contains("you are banned permanently")),
            "{last:?}"
        );
        // The operator cannot lock itself out.
        root.send_line("/ban 127.0.0.1").await;
        assert_eq!(
            root.line_with("error").await,
            "*** error: 127.0.0.1 is you: a ban would lock you out"
        );
        root.send_line("/ban eve 0").await;
        assert!(root.line().await.starts_with("*** usage: a duration is"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_netcat_operator_locks_a_topic_that_others_then_cannot_change() {
    bounded(30, async {
        let (server, _dir) = server_with_operator_root().await;
        let mut root = text_root(&server).await;
        let mut carol = TextClient::login(server.addr, "carol").await;
        let mut dave = Client::login(server.addr, "dave").await;

        carol.send_line("/topic lock").await;
        assert_eq!(
            carol.line_with("error").await,
            "*** error: only operators may lock a topic"
        );
        root.send_line("/topic #lobby rules first").await;
        root.line_with("*** topic of #lobby: rules first").await;
        root.send_line("/topic #lobby lock").await;
        let seen = root.line_with("locked").await;
        assert!(
            seen.ends_with("[locked: only operators may change it]"),
            "{seen}"
        );
        carol
            .line_with("[locked: only operators may change it]")
            .await;
        let locked = framed_sees(&mut dave, |m| match m {
            ServerMsg::Topic(t) if t.locked => Some(t.topic),
            _ => None,
        })
        .await;
        assert_eq!(locked, "rules first");

        carol.send_line("/topic anarchy").await;
        assert_eq!(
            carol.line_with("error").await,
            "*** error: the topic is locked: only operators may change it"
        );
        root.send_line("/topic unlock").await;
        root.line_with("*** topic of #lobby: rules first").await;
        carol.send_line("/topic anarchy").await;
        carol.line_with("*** topic of #lobby: anarchy").await;
        server.stop().await;
    })
    .await;
}
