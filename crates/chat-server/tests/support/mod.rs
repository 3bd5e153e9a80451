//! A test server on 127.0.0.1 port 0 and a small protocol client for the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use chat_proto::client::{Hello, Send};
use chat_proto::frame::{Frame, HEADER_LEN};
use chat_proto::server::{Ack, ChatMessage, Error};
use chat_proto::{ClientCodec, ClientMsg, ErrorCode, ServerMsg};
use chat_server::Config;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Framed;

/// How long one `recv` waits before the test fails.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `fut`, failing the test if it takes longer than `secs` seconds.
pub async fn bounded<F: Future>(secs: u64, fut: F) -> F::Output {
    timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// The default config with deadlines shortened for tests, and the in-memory store (set
/// `CHAT_TEST_HISTORY=sqlite` to run the tests on SQLite instead, in a fresh directory each).
pub fn test_config() -> Config {
    let history = match std::env::var("CHAT_TEST_HISTORY").as_deref() {
        Ok("sqlite") => chat_server::config::HistoryKind::Sqlite,
        _ => chat_server::config::HistoryKind::Memory,
    };
    Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        history,
        handshake_timeout: Duration::from_millis(800),
        frame_timeout: Duration::from_millis(800),
        close_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

/// A server running in the background until [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    /// The SQLite store's directory when the config named none; removed on drop.
    _data_dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(mut config: Config) -> Self {
        init_logs();
        let mut data_dir = None;
        if config.history == chat_server::config::HistoryKind::Sqlite && config.data_dir.is_none() {
            let dir = tempfile::tempdir().unwrap();
            config.data_dir = Some(dir.path().to_owned());
            data_dir = Some(dir);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task,
            _data_dir: data_dir,
        }
    }

    /// Starts a server on a store the test opened itself (to keep a handle on it).
    pub async fn start_with_history(
        config: Config,
        history: Box<dyn chat_server::history::HistoryStore>,
    ) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::run_with_history(
            listener,
            config,
            history,
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task,
            _data_dir: None,
        }
    }

    /// Triggers the shutdown future and waits for `run` to return; returns how long it took.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
        started.elapsed()
    }
}

/// A client's byte stream: a TCP socket, or TLS over one.
pub trait Io: AsyncRead + AsyncWrite + Unpin + std::marker::Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + std::marker::Send> Io for T {}

/// One protocol client over a real socket.
pub struct Client {
    pub framed: Framed<Box<dyn Io>, ClientCodec>,
    pub nick: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self::over(stream)
    }

    /// Connects and sends a `ping` at once, so the server takes this for a framed client: a
    /// connection that says nothing for the detect timeout is greeted as a text client.
    pub async fn connect_framed(addr: SocketAddr) -> Self {
        let mut c = Self::connect(addr).await;
        c.send(chat_proto::message::Ping::default()).await;
        c
    }

    pub fn over(stream: TcpStream) -> Self {
        Self::over_io(Box::new(stream))
    }

    /// A client over any stream (TLS in the TLS tests).
    pub fn over_io(stream: Box<dyn Io>) -> Self {
        Client {
            framed: Framed::new(stream, ClientCodec::new(1 << 20)),
            nick: String::new(),
        }
    }

    /// Connects, says hello and reads the welcome and the `#lobby` join burst.
    pub async fn login(addr: SocketAddr, nick: &str) -> Self {
        let mut c = Self::connect(addr).await;
        match c.hello(nick).await {
            ServerMsg::Welcome(w) => assert_eq!(w.nick, nick),
            other => panic!("{nick}: expected welcome, got {other:?}"),
        }
        c.expect_burst("#lobby").await;
        c
    }

    /// Sends `hello` and returns the answer (`welcome` or an `error`).
    pub async fn hello(&mut self, nick: &str) -> ServerMsg {
        self.nick = nick.to_owned();
        self.send(Hello {
            name: nick.into(),
            ..Hello::default()
        })
        .await;
        self.recv().await
    }

    /// Reads a join burst: joined (us), topic_info, name_list, history_page. Returns the page.
    /// The burst itself is contiguous in the stream.
    pub async fn expect_burst(&mut self, room: &str) -> chat_proto::server::HistoryPage {
        // Events queued earlier (other people's joins, ...) may come first.
        let nick = self.nick.clone();
        self.recv_until(|m| match m {
            ServerMsg::Joined(j) if j.room == room && j.nick == nick => Some(()),
            _ => None,
        })
        .await;
        assert!(matches!(self.recv().await, ServerMsg::Topic(t) if t.room == room));
        assert!(matches!(self.recv().await, ServerMsg::Names(n) if n.room == room));
        match self.recv().await {
            ServerMsg::History(h) if h.room == room => h,
            other => panic!("expected history_page, got {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: impl Into<ClientMsg>) {
        self.framed.send(msg.into()).await.unwrap();
    }

    /// Sends a chat message with a client id.
    /// Changes nick and waits until the server has carried it out (its own `nick_changed`).
    pub async fn rename(&mut self, nick: &str) {
        self.send(chat_proto::client::Nick {
            id: None,
            nick: nick.into(),
        })
        .await;
        let new = nick.to_owned();
        self.recv_until(|m| matches!(m, ServerMsg::NickChanged(n) if n.new == new).then_some(()))
            .await;
        self.nick = new;
    }

    pub async fn say(&mut self, to: &str, text: &str, id: &str) {
        self.send(Send {
            id: Some(id.into()),
            to: to.into(),
            text: text.into(),
            action: false,
        })
        .await;
    }

    /// Writes raw bytes, bypassing the codec.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    /// Writes one frame of `kind` with a raw body.
    pub async fn send_frame(&mut self, kind: u32, body: &[u8]) {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + body.len());
        Frame {
            kind,
            body: body.to_vec().into(),
        }
        .encode(&mut buf)
        .unwrap();
        self.send_raw(&buf).await;
    }

    /// The next frame, or `None` at end of stream (a reset counts as the end too).
    pub async fn next(&mut self) -> Option<ServerMsg> {
        match timeout(RECV_TIMEOUT, self.framed.next()).await {
            Ok(Some(Ok(msg))) => Some(msg.unwrap()),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("{}: nothing received within {RECV_TIMEOUT:?}", self.nick),
        }
    }

    /// The next frame; the connection must still be open.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.next().await {
            Some(msg) => msg,
            None => panic!("{}: connection closed", self.nick),
        }
    }

    /// Skips frames until one matches.
    pub async fn recv_until<T>(&mut self, mut f: impl FnMut(ServerMsg) -> Option<T>) -> T {
        loop {
            if let Some(t) = f(self.recv().await) {
                return t;
            }
        }
    }

    pub async fn recv_message(&mut self) -> ChatMessage {
        self.recv_until(|m| match m {
            ServerMsg::Message(c) => Some(c),
            _ => None,
        })
        .await
    }

    pub async fn recv_ack(&mut self) -> Ack {
        self.recv_until(|m| match m {
            ServerMsg::Ack(a) => Some(a),
            _ => None,
        })
        .await
    }

    pub async fn recv_error(&mut self) -> Error {
        self.recv_until(|m| match m {
            ServerMsg::Error(e) => Some(e),
            _ => None,
        })
        .await
    }

    /// Skips frames until an error with `code` arrives, which must be the next error.
    pub async fn expect_error(&mut self, code: ErrorCode) -> Error {
        let e = self.recv_error().await;
        assert_eq!(e.code, code, "{}: {}", self.nick, e.message);
        e
    }

    /// Reads until the server closes; returns what arrived on the way.
    pub async fn expect_closed(&mut self) -> Vec<ServerMsg> {
        let mut got = Vec::new();
        while let Some(msg) = self.next().await {
            got.push(msg);
        }
        got
    }

    /// A chat round trip with `other` in `#lobby`: self gets the ack and other gets the
    /// message (skipping other people's lobby traffic on the way).
    pub async fn chat_with(&mut self, other: &mut Client, text: &str) {
        self.say("#lobby", text, text).await;
        let ack = self.recv_ack().await;
        assert_eq!(ack.id.as_deref(), Some(text));
        let me = self.nick.clone();
        let msg = other
            .recv_until(|m| match m {
                ServerMsg::Message(c) if c.from == me => Some(c),
                _ => None,
            })
            .await;
        assert_eq!(msg.text, text);
        assert_eq!(msg.seq, ack.seq);
    }
}
