//! Session timers on a virtual clock: the real session and hub over an in-memory pipe.

use std::time::Duration;

use chat_proto::client::Hello;
use chat_proto::{ClientCodec, ClientMsg, ErrorCode, ServerMsg};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::history::MemoryHistory;
use crate::hub;

type Client = Framed<DuplexStream, ClientCodec>;

/// Starts a hub and one session with the default (unshortened) config.
fn start() -> (Client, CancellationToken) {
    let config = Arc::new(Config::default());
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let hub = hub::spawn(
        config.clone(),
        Box::new(MemoryHistory::new(100)),
        token.clone(),
        &tracker,
    );
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let halves = tokio::io::split(server);
    tokio::spawn(run(1, peer, halves, hub, config, token.clone()));
    (Framed::new(client, ClientCodec::new(1 << 20)), token)
}

async fn recv(c: &mut Client) -> Option<ServerMsg> {
    c.next().await.map(|r| r.unwrap().unwrap())
}

async fn login(c: &mut Client) {
    let hello = Hello {
        name: "alice".into(),
        ..Hello::default()
    };
    c.send(ClientMsg::Hello(hello)).await.unwrap();
    assert!(matches!(recv(c).await, Some(ServerMsg::Welcome(_))));
    // joined, topic, names, history
    for _ in 0..4 {
        recv(c).await.unwrap();
    }
}

fn assert_fatal(msg: Option<ServerMsg>, want: ErrorCode) {
    match msg {
        Some(ServerMsg::Error(e)) => assert_eq!(e.code, want, "{}", e.message),
        other => panic!("expected error {want}, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn no_hello_within_five_seconds_is_a_handshake_timeout() {
    let (mut c, _token) = start();
    let start = Instant::now();
    assert_fatal(recv(&mut c).await, ErrorCode::HandshakeTimeout);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(recv(&mut c).await.is_none(), "closed after the error");
}

#[tokio::test(start_paused = true)]
async fn requests_before_hello_need_the_handshake() {
    let (mut c, _token) = start();
    c.send(ClientMsg::ListRooms(Default::default()))
        .await
        .unwrap();
    assert!(matches!(
        recv(&mut c).await,
        Some(ServerMsg::Error(e)) if e.code == ErrorCode::HandshakeRequired
    ));
    c.send(ClientMsg::Ping(Default::default())).await.unwrap();
    assert!(matches!(recv(&mut c).await, Some(ServerMsg::Pong(_))));
    login(&mut c).await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_pinged_twice_then_closed_as_idle() {
    let (mut c, _token) = start();
    login(&mut c).await;
    let start = Instant::now();
    assert!(matches!(recv(&mut c).await, Some(ServerMsg::Ping(_))));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert!(matches!(recv(&mut c).await, Some(ServerMsg::Ping(_))));
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_fatal(recv(&mut c).await, ErrorCode::IdleTimeout);
    assert_eq!(start.elapsed(), Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn answering_pings_keeps_the_connection_open() {
    let (mut c, _token) = start();
    login(&mut c).await;
    for _ in 0..5 {
        let Some(ServerMsg::Ping(p)) = recv(&mut c).await else {
            panic!("expected a ping");
        };
        c.send(ClientMsg::Pong(chat_proto::message::Pong {
            token: p.token,
        }))
        .await
        .unwrap();
    }
    // Five pings answered over 150 s; the connection is still there.
    c.send(ClientMsg::Ping(Default::default())).await.unwrap();
    assert!(matches!(recv(&mut c).await, Some(ServerMsg::Pong(_))));
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_trickles_in_is_closed_after_ten_seconds() {
    let (mut c, _token) = start();
    login(&mut c).await;
    let start = Instant::now();
    // Half a header, then two more bytes three seconds later: never a whole frame.
    c.get_mut().write_all(&[0, 0, 0, 1, 0, 0]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.get_mut().write_all(&[0, 10]).await.unwrap();
    assert_fatal(recv(&mut c).await, ErrorCode::SlowFrame);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(10),
        "timed from the first byte"
    );
    assert!(recv(&mut c).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_a_notice_then_an_error() {
    let (mut c, token) = start();
    login(&mut c).await;
    token.cancel();
    assert!(matches!(
        recv(&mut c).await,
        Some(ServerMsg::Notice(n)) if n.code == chat_proto::server::NoticeCode::ShuttingDown
    ));
    assert_fatal(recv(&mut c).await, ErrorCode::ShuttingDown);
    assert!(recv(&mut c).await.is_none());
}
