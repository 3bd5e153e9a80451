//! The network client: a handle to send [`ClientMsg`]s plus a receiver of [`NetEvent`]s.
//!
//! One task owns the connection and everything about keeping it: connecting, the `hello`,
//! answering pings, noticing a dead server, and reconnecting with exponential backoff (1 s
//! doubling to 30 s, with jitter). [`Session`] remembers what a new connection needs (nick,
//! rooms, last sequence number seen per room) by watching the traffic go by: the `hello` asks
//! the server to `resume` every room from there, and the server rejoins them and replays the
//! gap. Anything beyond that (rooms not restored, `more_history` paging) is sent by the UI,
//! through its pacer.
//!
//! File data has its own lane: the uploads in [`crate::files`] put [`Outbound`] chunks into a
//! small bounded channel that the connection drains only when no command from the UI and no
//! frame from the server is waiting, so chat frames interleave between chunks and are never
//! queued behind a file. Chunks are not paced (the pacer is for chat requests); flow control
//! is the transfer window.
//!
//! With TLS ([`NetConfig::tls`]) every attempt is TCP, then the handshake of [`crate::tls`],
//! and never plaintext. A certificate no trusted CA signed stops the task until the user
//! answers [`NetEvent::UntrustedCertificate`] (yes pins it in the known-hosts file and connects
//! at once); a pinned server presenting another certificate stops it for good
//! ([`NetEvent::CertificateChanged`]): reconnecting cannot fix that, the user must.
//!
//! **Architecture Invariant:** events flow through a bounded channel (the socket waits when
//! the UI falls behind); commands flow through an unbounded one, because they are made at
//! human speed, and that keeps the two channels from forming a cycle of bounded waits. The
//! chunk channel is bounded and only uploads wait on it; nothing the net task waits on waits
//! for an upload.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_proto::client::{self, Hello};
use chat_proto::message::{Ping, Pong};
use chat_proto::server::Welcome;
use chat_proto::{ClientCodec, ClientMsg, ErrorCode, ServerMsg};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use crate::known_hosts::{Fingerprint, KnownHosts};
use crate::tls::{self, TlsFailure, TlsSettings};

/// Something the network client reports.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// A connection attempt started (attempt counts from 1 since the last session).
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// The session is open.
    Connected(Welcome),
    /// A message from the server (pings are answered here and not reported).
    Message(ServerMsg),
    /// No trusted CA signed the server's certificate and it is not pinned: the task waits for
    /// [`NetHandle::trust_certificate`].
    UntrustedCertificate {
        /// `host:port`.
        server: String,
        /// The leaf certificate's SHA-256 fingerprint.
        fingerprint: Fingerprint,
    },
    /// The server presented another certificate than the pinned one: the task will not
    /// connect again.
    CertificateChanged {
        /// `host:port`.
        server: String,
        /// The pinned fingerprint.
        pinned: Fingerprint,
        /// The one presented now.
        presented: Fingerprint,
        /// The known-hosts file.
        file: std::path::PathBuf,
        /// The pin's line in it.
        line: usize,
    },
    /// The connection ended; the next attempt starts after `retry_in` (none: not by itself).
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Option<Duration>,
    },
}

/// What the UI asks of the network task.
#[derive(Debug)]
enum NetCommand {
    /// Send this on the open session (dropped while offline: the UI keeps its outbox).
    Send(ClientMsg),
    /// Say goodbye and stop.
    Quit(Option<String>),
    /// Use this nick from the next attempt on, and connect now if waiting.
    SetNick(String),
    /// The answer to [`NetEvent::UntrustedCertificate`]: pin it (and connect) or not.
    Trust(bool),
    /// A password typed at the prompt: use it from now on and connect now if waiting.
    SetPassword(PasswordFor, Secret),
}

/// Which password the server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordFor {
    /// The nick's account password (`hello.password`).
    Nick,
    /// A private server's password (`hello.server_password`).
    Server,
}

/// A frame of file data (a chunk or `file_done`) for the connection of `generation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// The connection it belongs to (counting `welcome`s from 1); on any other it is dropped,
    /// because after a reconnect the transfer continues from the offset the recipient asks for.
    pub generation: u64,
    /// The frame.
    pub msg: ClientMsg,
}

/// Chunks waiting for the socket: a few, so an upload reads ahead little.
const CHUNK_QUEUE: usize = 4;

/// The handle to the network task. Dropping every handle stops the task.
#[derive(Debug, Clone)]
pub struct NetHandle {
    /// To the network task; unbounded (see the module's invariant).
    cmd_tx: mpsc::UnboundedSender<NetCommand>,
    /// File data to the network task; bounded, uploads wait on it.
    chunk_tx: mpsc::Sender<Outbound>,
}

impl NetHandle {
    /// Sends `msg` if a session is open; dropped otherwise.
    pub fn send(&self, msg: ClientMsg) {
        let _ = self.cmd_tx.send(NetCommand::Send(msg));
    }

    /// Sends `quit` (when connected) and stops the task.
    pub fn quit(&self, reason: Option<String>) {
        let _ = self.cmd_tx.send(NetCommand::Quit(reason));
    }

    /// Uses `nick` for the next connection attempt and starts it at once if the client is
    /// offline (after a refused nick it waits for this).
    pub fn set_nick(&self, nick: String) {
        let _ = self.cmd_tx.send(NetCommand::SetNick(nick));
    }

    /// Uses a password typed at the prompt from now on (kept in memory for reconnects), and
    /// connects at once if the client is waiting after a refused login.
    pub fn set_password(&self, which: PasswordFor, password: Secret) {
        let _ = self.cmd_tx.send(NetCommand::SetPassword(which, password));
    }

    /// Answers [`NetEvent::UntrustedCertificate`]: `true` pins the certificate and connects.
    pub fn trust_certificate(&self, trust: bool) {
        let _ = self.cmd_tx.send(NetCommand::Trust(trust));
    }

    /// Where uploads put their chunks.
    pub fn chunks(&self) -> mpsc::Sender<Outbound> {
        self.chunk_tx.clone()
    }

    /// A handle connected to nothing, plus the receiver its commands go to (for tests).
    pub fn detached() -> (NetHandle, DetachedCommands) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (chunk_tx, chunk_rx) = mpsc::channel(CHUNK_QUEUE);
        (
            NetHandle { cmd_tx, chunk_tx },
            DetachedCommands { cmd_rx, chunk_rx },
        )
    }
}

/// The receiving end of a [`NetHandle::detached`] handle.
#[derive(Debug)]
pub struct DetachedCommands {
    cmd_rx: mpsc::UnboundedReceiver<NetCommand>,
    /// File data sent through the handle.
    pub chunk_rx: mpsc::Receiver<Outbound>,
}

impl DetachedCommands {
    /// Messages sent so far (quits are skipped).
    pub fn drain(&mut self) -> Vec<ClientMsg> {
        let mut out = Vec::new();
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            if let NetCommand::Send(m) = cmd {
                out.push(m);
            }
        }
        out
    }
}

/// Largest frame body the client accepts from the server.
///
/// Deliberately far above any announced `max_body`: that limit is what the server accepts, and
/// a server frame a little above it (a history page of long messages) must not be fatal, or the
/// client reconnects into the same frame forever. The bound still keeps memory in check.
pub const RECEIVE_MAX_BODY: u32 = 16 * 1024 * 1024;

/// How long a session must stay up before the backoff starts over: a server that welcomes us
/// and then drops us at once is a crash loop, and is retried ever more slowly, up to 30 s.
pub const STABLE_SESSION: Duration = Duration::from_secs(10);

/// A password: kept out of `Debug` output, so it never reaches a log.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where and who to connect as.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// `host:port`.
    pub addr: String,
    /// Nick to ask for.
    pub name: String,
    /// `client` field of the hello.
    pub client: String,
    /// Password of our registered nick (`hello.password`).
    pub password: Option<Secret>,
    /// Password of a private server (`hello.server_password`).
    pub server_password: Option<Secret>,
    /// Connect with TLS, trusting these (none: plaintext).
    pub tls: Option<TlsSettings>,
}

/// What a client message looks like in a log: a `register` without its password.
fn loggable(msg: &ClientMsg) -> String {
    match msg {
        ClientMsg::Register(_) => "Register(..)".to_owned(),
        ClientMsg::Hello(h) => format!("Hello({})", h.name),
        other => format!("{other:?}"),
    }
}

/// Starts the network task; it connects at once.
pub fn spawn(config: NetConfig) -> (NetHandle, mpsc::Receiver<NetEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (chunk_tx, chunk_rx) = mpsc::channel(CHUNK_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(1024);
    tokio::spawn(run(config, cmd_rx, chunk_rx, event_tx));
    (NetHandle { cmd_tx, chunk_tx }, event_rx)
}

/// The nick to ask for after `nick` was taken: one `_` more, the base cut so the result stays
/// within the protocol's limits (a nick that only grows would become invalid and loop).
pub fn next_nick(nick: &str) -> String {
    use chat_proto::nick::{MAX_NICK_BYTES, MAX_NICK_COLUMNS};
    use unicode_segmentation::UnicodeSegmentation;
    use unicode_width::UnicodeWidthStr;
    let mut base = String::new();
    for g in nick.graphemes(true) {
        if base.width() + g.width() + 1 > MAX_NICK_COLUMNS
            || base.len() + g.len() + 1 > MAX_NICK_BYTES
        {
            break;
        }
        base.push_str(g);
    }
    base.push('_');
    base
}

/// What a new connection needs to know about the last one. Pure: tested without sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Our nick (as the server last confirmed it).
    pub nick: String,
    /// Rooms we are in, with the last sequence number seen in each.
    pub rooms: BTreeMap<String, Option<u64>>,
    /// Software name for the hello.
    pub client: String,
    /// Password of the nick, sent in every hello.
    pub password: Option<Secret>,
    /// Password of the server, sent in every hello.
    pub server_password: Option<Secret>,
}

impl Session {
    /// Uses `password` in every hello from now on.
    pub fn set_password(&mut self, which: PasswordFor, password: Secret) {
        match which {
            PasswordFor::Nick => self.password = Some(password),
            PasswordFor::Server => self.server_password = Some(password),
        }
    }

    /// A session for `nick` that has never connected.
    pub fn new(nick: impl Into<String>, client: impl Into<String>) -> Self {
        Session {
            nick: nick.into(),
            rooms: BTreeMap::new(),
            client: client.into(),
            password: None,
            server_password: None,
        }
    }

    /// The hello for a new connection: resume every room we are in from its last sequence
    /// number (0 for a room where nothing was seen yet), so the server rejoins them all and
    /// replays what was missed in each join burst.
    pub fn hello(&self) -> Hello {
        Hello {
            name: self.nick.clone(),
            password: self.password.as_ref().map(|p| p.0.clone()),
            server_password: self.server_password.as_ref().map(|p| p.0.clone()),
            client: Some(self.client.clone()),
            resume: self
                .rooms
                .iter()
                .map(|(room, seq)| (room.clone(), seq.unwrap_or(0)))
                .collect(),
        }
    }

    /// Learns from a message the server sent.
    ///
    /// The stream delivers each room in order, so the last live message (or ack, or join-burst
    /// page) is where the room stands, even when its numbers went down (a restarted in-memory
    /// server starts over at 1). Pages asked for by id can be older than the stream, so they
    /// only ever raise the mark.
    pub fn observe(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Message(m) => {
                if let Some(room) = &m.room {
                    self.stream_at(room, m.seq);
                }
            }
            ServerMsg::Ack(a) if !a.duplicate => {
                if let Some(room) = &a.room {
                    self.stream_at(room, a.seq);
                }
            }
            ServerMsg::History(page) => {
                if let Some(last) = page.messages.last() {
                    if page.id.is_none() {
                        self.stream_at(&page.room, last.seq);
                    } else if let Some(known) = self.rooms.get_mut(&page.room) {
                        *known = Some(known.map_or(last.seq, |k| k.max(last.seq)));
                    }
                }
            }
            ServerMsg::Joined(j) if j.nick == self.nick => {
                self.rooms.entry(j.room.clone()).or_insert(None);
            }
            ServerMsg::Parted(p) if p.nick == self.nick => {
                self.rooms.remove(&p.room);
            }
            ServerMsg::NickChanged(n) if n.old == self.nick => self.nick = n.new.clone(),
            _ => {}
        }
    }

    /// Records that the stream of `room` reached `seq` (only for rooms we are in).
    fn stream_at(&mut self, room: &str, seq: u64) {
        if let Some(last) = self.rooms.get_mut(room) {
            *last = Some(seq);
        }
    }

    /// After a `welcome`: the rooms are the ones the server restored. A room it did not
    /// restore is forgotten here; the UI joins it again (paced, with an id), and its `joined`
    /// brings it back.
    pub fn after_welcome(&mut self, welcome: &Welcome) {
        self.nick = welcome.nick.clone();
        self.rooms.retain(|room, _| welcome.rooms.contains(room));
        for room in &welcome.rooms {
            self.rooms.entry(room.clone()).or_insert(None);
        }
    }
}

/// Exponential backoff: 1 s doubling to 30 s, each delay with up to 25 % random jitter added.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// First delay.
    pub const START: Duration = Duration::from_secs(1);
    /// Largest delay.
    pub const MAX: Duration = Duration::from_secs(30);

    /// A fresh backoff.
    pub fn new() -> Self {
        Backoff { next: Self::START }
    }

    /// Back to the first delay (after a successful session).
    pub fn reset(&mut self) {
        self.next = Self::START;
    }

    /// A connection ended after a session of `up_for` (none: never welcomed); true when the
    /// backoff started over because the session had been stable.
    pub fn session_ended(&mut self, up_for: Option<Duration>) -> bool {
        let stable = up_for.is_some_and(|d| d >= STABLE_SESSION);
        if stable {
            self.reset();
        }
        stable
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let jitter = base.mul_f64(rng.random_range(0.0..0.25));
        (base + jitter).min(Self::MAX)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// How one connection ended.
enum Outcome {
    /// The user quit.
    Quit,
    /// The server refused our nick as invalid, or its password (`auth_failed`), or banned us:
    /// wait for the user to choose another nick.
    NickRefused {
        /// Why, for the screen.
        reason: String,
    },
    /// The server's certificate is not trusted and not pinned: ask the user.
    Untrusted {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// Reconnecting cannot help (a changed pinned certificate, a TLS-only server without
    /// `--tls`): say why and wait for the user to quit. The event is already sent.
    Stopped,
    /// The connection was lost (or never made).
    Lost {
        /// Why, for the screen.
        reason: String,
        /// When the session opened (`welcome`), if it did.
        welcomed: Option<Instant>,
    },
}

/// The network task: connect, serve, back off, repeat until told to quit.
async fn run(
    config: NetConfig,
    mut cmd_rx: mpsc::UnboundedReceiver<NetCommand>,
    mut chunk_rx: mpsc::Receiver<Outbound>,
    event_tx: mpsc::Sender<NetEvent>,
) {
    let mut session = Session::new(config.name.clone(), config.client.clone());
    session.password = config.password.clone();
    session.server_password = config.server_password.clone();
    // Counts `welcome`s, like `App::generation`: chunks tagged with another one are stale.
    let mut generation = 0u64;
    let mut backoff = Backoff::new();
    let mut attempt = 0;
    // Whether a session was opened in this run: the server's identity was then settled (a
    // trusted CA, or a pin), and a later certificate nobody vouches for is refused, not offered
    // for pinning (a stray "yes" while reconnecting in the background must not pin a stranger).
    let mut had_session = false;
    loop {
        attempt += 1;
        if event_tx
            .send(NetEvent::Connecting { attempt })
            .await
            .is_err()
        {
            return;
        }
        let lanes = Lanes {
            cmd_rx: &mut cmd_rx,
            chunk_rx: &mut chunk_rx,
            generation: &mut generation,
        };
        let outcome = serve(&config, &mut session, lanes, &event_tx).await;
        let (reason, welcomed) = match outcome {
            Outcome::Quit => return,
            Outcome::NickRefused { reason } => {
                // Retrying the same nick cannot work: stop until the user sets another one.
                attempt = 0;
                let event = NetEvent::Disconnected {
                    reason,
                    retry_in: None,
                };
                if event_tx.send(event).await.is_err() {
                    return;
                }
                loop {
                    match cmd_rx.recv().await {
                        Some(NetCommand::SetNick(nick)) => {
                            session.nick = nick;
                            break;
                        }
                        Some(NetCommand::SetPassword(which, password)) => {
                            session.set_password(which, password);
                            break;
                        }
                        Some(NetCommand::Send(m)) => {
                            debug!(msg = %loggable(&m), "dropped while offline")
                        }
                        Some(NetCommand::Trust(_)) => {}
                        Some(NetCommand::Quit(_)) | None => return,
                    }
                }
                continue;
            }
            Outcome::Untrusted { fingerprint } if had_session => {
                let reason = format!(
                    "the server's TLS certificate (SHA-256 {fingerprint}) is no longer one this \
                     client trusts, though it was earlier in this session: not connecting, \
                     someone may be intercepting the connection; quit and start chat-tui \
                     again to decide anew"
                );
                warn!(%fingerprint, "certificate no longer trusted after a session");
                let event = NetEvent::Disconnected {
                    reason,
                    retry_in: None,
                };
                if event_tx.send(event).await.is_err() {
                    return;
                }
                wait_for_quit(&mut cmd_rx).await;
                return;
            }
            Outcome::Untrusted { fingerprint } => {
                let event = NetEvent::UntrustedCertificate {
                    server: config.addr.clone(),
                    fingerprint,
                };
                if event_tx.send(event).await.is_err() {
                    return;
                }
                match await_trust(&config, fingerprint, &mut cmd_rx, &mut session).await {
                    // Pinned: connect again at once.
                    Ok(true) => {
                        attempt = 0;
                        continue;
                    }
                    Ok(false) => return,
                    Err(reason) => {
                        let event = NetEvent::Disconnected {
                            reason,
                            retry_in: None,
                        };
                        if event_tx.send(event).await.is_err() {
                            return;
                        }
                        wait_for_quit(&mut cmd_rx).await;
                        return;
                    }
                }
            }
            Outcome::Stopped => {
                wait_for_quit(&mut cmd_rx).await;
                return;
            }
            Outcome::Lost { reason, welcomed } => (reason, welcomed),
        };
        had_session |= welcomed.is_some();
        if backoff.session_ended(welcomed.map(|at| at.elapsed())) {
            attempt = 0;
        }
        let delay = backoff.next_delay(&mut rand::rng());
        info!(%reason, delay_ms = delay.as_millis() as u64, "connection lost");
        let event = NetEvent::Disconnected {
            reason,
            retry_in: Some(delay),
        };
        if event_tx.send(event).await.is_err() {
            return;
        }
        // Wait out the delay; the UI keeps its own outbox, so commands meanwhile are dropped.
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                // Time to try again.
                () = sleep_until(deadline) => break,
                // The UI is still there: drop sends, stop on quit or when every handle is gone.
                cmd = cmd_rx.recv() => match cmd {
                    Some(NetCommand::Send(m)) => debug!(msg = %loggable(&m), "dropped while offline"),
                    // A new nick: try it now.
                    Some(NetCommand::SetNick(nick)) => {
                        session.nick = nick;
                        break;
                    }
                    Some(NetCommand::SetPassword(which, password)) => {
                        session.set_password(which, password);
                        break;
                    }
                    Some(NetCommand::Trust(_)) => {}
                    Some(NetCommand::Quit(_)) | None => return,
                },
            }
        }
    }
}

/// Waits for the user's answer about an untrusted certificate. `Ok(true)`: pinned, connect;
/// `Ok(false)`: the user quit; `Err`: not trusted or not stored, why (stay offline).
async fn await_trust(
    config: &NetConfig,
    fingerprint: Fingerprint,
    cmd_rx: &mut mpsc::UnboundedReceiver<NetCommand>,
    session: &mut Session,
) -> Result<bool, String> {
    loop {
        match cmd_rx.recv().await {
            Some(NetCommand::Trust(true)) => {
                let Some(tls) = &config.tls else {
                    return Err("no TLS configured".to_owned());
                };
                return match KnownHosts::add(&tls.known_hosts, &config.addr, fingerprint) {
                    Ok(()) => {
                        info!(server = %config.addr, %fingerprint, file = %tls.known_hosts.display(), "certificate pinned");
                        Ok(true)
                    }
                    Err(e) => Err(format!(
                        "cannot write the known-hosts file {}: {e}",
                        tls.known_hosts.display()
                    )),
                };
            }
            Some(NetCommand::Trust(false)) => {
                return Err("certificate not trusted: not connecting".to_owned());
            }
            Some(NetCommand::Send(m)) => debug!(msg = %loggable(&m), "dropped while asking"),
            Some(NetCommand::SetNick(nick)) => session.nick = nick,
            Some(NetCommand::SetPassword(which, password)) => session.set_password(which, password),
            Some(NetCommand::Quit(_)) | None => return Ok(false),
        }
    }
}

/// Offline for good: drops everything until the user quits.
async fn wait_for_quit(cmd_rx: &mut mpsc::UnboundedReceiver<NetCommand>) {
    loop {
        match cmd_rx.recv().await {
            Some(NetCommand::Quit(_)) | None => return,
            Some(NetCommand::Send(m)) => debug!(msg = %loggable(&m), "dropped while stopped"),
            Some(NetCommand::SetNick(_) | NetCommand::Trust(_) | NetCommand::SetPassword(..)) => {}
        }
    }
}

/// A connection's byte stream: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why an attempt made no stream.
enum ConnectError {
    /// TCP (or its timeout), in words.
    Tcp(String),
    /// The TLS handshake.
    Tls(TlsFailure),
}

/// TCP, then TLS when configured: the stream a session runs over.
async fn open_stream(config: &NetConfig) -> Result<Box<dyn Io>, ConnectError> {
    let tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(&config.addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(ConnectError::Tcp(format!("cannot connect: {e}"))),
        Err(_) => return Err(ConnectError::Tcp("cannot connect: timed out".to_owned())),
    };
    let _ = tcp.set_nodelay(true);
    let Some(settings) = &config.tls else {
        return Ok(Box::new(tcp));
    };
    match timeout(CONNECT_TIMEOUT, tls::connect(tcp, &config.addr, settings)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(failure)) => Err(ConnectError::Tls(failure)),
        Err(_) => Err(ConnectError::Tls(TlsFailure::Failed(
            "the TLS handshake timed out (does the server speak TLS?)".to_owned(),
        ))),
    }
}

/// How long the TCP connect, and then the TLS handshake, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection takes from the UI and the uploads.
struct Lanes<'a> {
    /// UI commands.
    cmd_rx: &'a mut mpsc::UnboundedReceiver<NetCommand>,
    /// File data.
    chunk_rx: &'a mut mpsc::Receiver<Outbound>,
    /// `welcome`s so far.
    generation: &'a mut u64,
}

/// One connection: connect, hello, then shuttle messages until it ends.
async fn serve(
    config: &NetConfig,
    session: &mut Session,
    lanes: Lanes<'_>,
    event_tx: &mpsc::Sender<NetEvent>,
) -> Outcome {
    let Lanes {
        cmd_rx,
        chunk_rx,
        generation,
    } = lanes;
    let lost = |reason: String, welcomed| Outcome::Lost { reason, welcomed };
    let connect = open_stream(config);
    tokio::pin!(connect);
    let stream = loop {
        tokio::select! {
            // The connection attempt finished (or timed out).
            r = &mut connect => match r {
                Ok(s) => break s,
                Err(ConnectError::Tcp(reason)) => return lost(reason, None),
                Err(ConnectError::Tls(TlsFailure::Failed(words))) => {
                    return lost(format!("TLS: {words}"), None);
                }
                Err(ConnectError::Tls(TlsFailure::Untrusted { fingerprint })) => {
                    return Outcome::Untrusted { fingerprint };
                }
                Err(ConnectError::Tls(TlsFailure::Changed { pin, presented, file })) => {
                    warn!(server = %config.addr, pinned = %pin.fingerprint, %presented, "certificate changed: refused");
                    let event = NetEvent::CertificateChanged {
                        server: config.addr.clone(),
                        pinned: pin.fingerprint,
                        presented,
                        file,
                        line: pin.line,
                    };
                    if event_tx.send(event).await.is_err() {
                        return Outcome::Quit;
                    }
                    return Outcome::Stopped;
                }
            },
            // The UI: a quit stops the attempt; a send made before it saw us go offline is
            // dropped (the outbox still holds it).
            cmd = cmd_rx.recv() => match cmd {
                Some(NetCommand::Quit(_)) | None => return Outcome::Quit,
                Some(NetCommand::Send(m)) => debug!(msg = %loggable(&m), "dropped while connecting"),
                Some(NetCommand::SetNick(nick)) => session.nick = nick,
                Some(NetCommand::SetPassword(which, password)) => session.set_password(which, password),
                Some(NetCommand::Trust(_)) => {}
            },
        }
    };
    let mut framed = Framed::new(stream, ClientCodec::new(RECEIVE_MAX_BODY));
    if let Err(e) = framed.send(ClientMsg::Hello(session.hello())).await {
        return lost(format!("cannot send hello: {e}"), None);
    }
    let mut welcomed: Option<Instant> = None;
    let mut silence = Duration::from_secs(60);
    let mut last_heard = Instant::now();
    let mut pinged = false;
    loop {
        tokio::select! {
            // In this order: the UI's commands, then the server's frames, then file data, so a
            // chat line waits for at most the one chunk being written.
            biased;
            // A command from the UI.
            cmd = cmd_rx.recv() => match cmd {
                Some(NetCommand::Send(msg)) if welcomed.is_some() => {
                    if let Err(e) = framed.send(msg).await {
                        return lost(format!("send failed: {e}"), welcomed);
                    }
                }
                Some(NetCommand::Send(msg)) => debug!(msg = %loggable(&msg), "dropped before welcome"),
                // Connected: a nick change is a `nick` request (the UI sends that); before the
                // welcome the name is used for the next hello.
                Some(NetCommand::SetNick(nick)) if welcomed.is_none() => session.nick = nick,
                Some(NetCommand::SetPassword(which, password)) => session.set_password(which, password),
                Some(NetCommand::SetNick(_) | NetCommand::Trust(_)) => {}
                Some(NetCommand::Quit(reason)) => {
                    let _ = timeout(
                        Duration::from_secs(1),
                        framed.send(ClientMsg::Quit(client::Quit { reason })),
                    )
                    .await;
                    return Outcome::Quit;
                }
                None => return Outcome::Quit,
            },
            // A frame from the server.
            frame = framed.next() => {
                last_heard = Instant::now();
                pinged = false;
                let msg = match frame {
                    None => return lost("server closed the connection".to_owned(), welcomed),
                    Some(Err(e)) => return lost(e.to_string(), welcomed),
                    Some(Ok(Err(e))) => {
                        warn!(error = %e, "undecodable message skipped");
                        continue;
                    }
                    Some(Ok(Ok(msg))) => msg,
                };
                match msg {
                    ServerMsg::Ping(Ping { token }) => {
                        if let Err(e) = framed.send(ClientMsg::Pong(Pong { token })).await {
                            return lost(format!("send failed: {e}"), welcomed);
                        }
                    }
                    ServerMsg::Pong(_) => {}
                    ServerMsg::Welcome(w) => {
                        welcomed = Some(Instant::now());
                        *generation += 1;
                        silence = Duration::from_secs(u64::from(w.limits.ping_interval_secs.max(5)) * 2);
                        session.after_welcome(&w);
                        info!(nick = %w.nick, rooms = w.rooms.len(), "welcome");
                        if event_tx.send(NetEvent::Connected(w)).await.is_err() {
                            return Outcome::Quit;
                        }
                    }
                    ServerMsg::Error(e) if welcomed.is_none() && e.code == ErrorCode::NickTaken => {
                        // Our nick is taken (often by our own ghost): ask for another one.
                        session.nick = next_nick(&session.nick);
                        let forward = ServerMsg::Error(e);
                        if event_tx.send(NetEvent::Message(forward)).await.is_err() {
                            return Outcome::Quit;
                        }
                        if let Err(e) = framed.send(ClientMsg::Hello(session.hello())).await {
                            return lost(format!("cannot send hello: {e}"), None);
                        }
                    }
                    ServerMsg::Error(e) if welcomed.is_none() && e.code == ErrorCode::NickInvalid => {
                        let reason = format!("nick refused: {}", e.message);
                        let forward = ServerMsg::Error(e);
                        if event_tx.send(NetEvent::Message(forward)).await.is_err() {
                            return Outcome::Quit;
                        }
                        return Outcome::NickRefused { reason };
                    }
                    ServerMsg::Error(e) if welcomed.is_none() && e.code == ErrorCode::AuthFailed => {
                        // The same hello would fail again (and count towards the throttle):
                        // wait for the user to choose another nick.
                        let reason = format!("login refused: {}", e.message);
                        let forward = ServerMsg::Error(e);
                        if event_tx.send(NetEvent::Message(forward)).await.is_err() {
                            return Outcome::Quit;
                        }
                        return Outcome::NickRefused { reason };
                    }
                    ServerMsg::Error(e) if e.code == ErrorCode::Banned => {
                        // At hello or later: the server closes, and reconnecting would be
                        // refused the same way. Wait for the user (a nick ban spares others).
                        let reason = format!("banned: {}", e.message);
                        let forward = ServerMsg::Error(e);
                        if event_tx.send(NetEvent::Message(forward)).await.is_err() {
                            return Outcome::Quit;
                        }
                        return Outcome::NickRefused { reason };
                    }
                    ServerMsg::Error(e) if e.code == ErrorCode::TlsRequired => {
                        // Reconnecting in the clear cannot work: the user must restart with --tls.
                        let reason = "the server accepts TLS only: restart chat-tui with --tls".to_owned();
                        let forward = ServerMsg::Error(e);
                        if event_tx.send(NetEvent::Message(forward)).await.is_err() {
                            return Outcome::Quit;
                        }
                        let event = NetEvent::Disconnected { reason, retry_in: None };
                        if event_tx.send(event).await.is_err() {
                            return Outcome::Quit;
                        }
                        return Outcome::Stopped;
                    }
                    ServerMsg::Error(e) if welcomed.is_none() && e.code == ErrorCode::AuthThrottled => {
                        // Too many attempts: back off as after a lost connection.
                        let reason = format!("login throttled: {}", e.message);
                        let forward = ServerMsg::Error(e);
                        if event_tx.send(NetEvent::Message(forward)).await.is_err() {
                            return Outcome::Quit;
                        }
                        return lost(reason, None);
                    }
                    other => {
                        session.observe(&other);
                        if event_tx.send(NetEvent::Message(other)).await.is_err() {
                            return Outcome::Quit;
                        }
                    }
                }
            }
            // File data for this connection; a chunk of an earlier one is dropped.
            Some(out) = chunk_rx.recv(), if welcomed.is_some() => {
                if out.generation == *generation {
                    if let Err(e) = framed.send(out.msg).await {
                        return lost(format!("send failed: {e}"), welcomed);
                    }
                }
            }
            // Nothing heard for too long: ping once, then give up on the connection.
            () = sleep_until(last_heard + silence) => {
                if pinged {
                    return lost("server stopped answering".to_owned(), welcomed);
                }
                pinged = true;
                last_heard = Instant::now();
                let ping = ClientMsg::Ping(Ping { token: Some("chat-tui".to_owned()) });
                if let Err(e) = framed.send(ping).await {
                    return lost(format!("send failed: {e}"), welcomed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::server::{Ack, ChatMessage, Joined, Parted};

    fn welcome(nick: &str, rooms: &[&str]) -> Welcome {
        Welcome {
            nick: nick.into(),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            ..Welcome::default()
        }
    }

    #[test]
    fn session_remembers_the_last_seq_per_room_for_resume() {
        let mut s = Session::new("alice", "chat-tui/test");
        s.after_welcome(&welcome("alice", &["#lobby"]));
        s.observe(&ServerMsg::Message(ChatMessage {
            room: Some("#lobby".into()),
            seq: 7,
            ..ChatMessage::default()
        }));
        s.observe(&ServerMsg::Ack(Ack {
            room: Some("#lobby".into()),
            seq: 9,
            ..Ack::default()
        }));
        assert_eq!(s.hello().resume.get("#lobby"), Some(&9));
    }

    #[test]
    fn hello_resumes_every_joined_room_even_one_with_no_messages_yet() {
        let mut s = Session::new("alice", "t");
        s.after_welcome(&welcome("alice", &["#lobby"]));
        s.observe(&ServerMsg::Joined(Joined {
            room: "#rust".into(),
            nick: "alice".into(),
            ts: 0,
        }));
        s.observe(&ServerMsg::Message(ChatMessage {
            room: Some("#lobby".into()),
            seq: 3,
            ..ChatMessage::default()
        }));
        let resume = s.hello().resume;
        assert_eq!(
            resume.into_iter().collect::<Vec<_>>(),
            vec![("#lobby".to_owned(), 3), ("#rust".to_owned(), 0)]
        );
        // A room the server did not restore is left to the UI to join again.
        s.after_welcome(&welcome("alice", &["#lobby"]));
        assert!(!s.rooms.contains_key("#rust"));
    }

    #[test]
    fn an_empty_resume_page_keeps_the_last_seq() {
        let mut s = Session::new("alice", "t");
        s.after_welcome(&welcome("alice", &["#lobby"]));
        s.observe(&ServerMsg::Message(ChatMessage {
            room: Some("#lobby".into()),
            seq: 40,
            ..ChatMessage::default()
        }));
        // Nothing was missed: the join burst's page is empty.
        s.observe(&ServerMsg::History(chat_proto::server::HistoryPage {
            room: "#lobby".into(),
            ..Default::default()
        }));
        assert_eq!(s.hello().resume.get("#lobby"), Some(&40));
    }

    #[test]
    fn a_restarted_server_renumbering_a_room_moves_the_resume_point_down() {
        let mut s = Session::new("alice", "t");
        s.after_welcome(&welcome("alice", &["#lobby"]));
        for seq in [40, 1] {
            s.observe(&ServerMsg::Message(ChatMessage {
                room: Some("#lobby".into()),
                seq,
                ..ChatMessage::default()
            }));
        }
        assert_eq!(s.hello().resume.get("#lobby"), Some(&1));
    }

    #[test]
    fn parting_forgets_the_room() {
        let mut s = Session::new("alice", "t");
        s.after_welcome(&welcome("alice", &["#lobby"]));
        s.observe(&ServerMsg::Parted(Parted {
            room: "#lobby".into(),
            nick: "alice".into(),
            ..Parted::default()
        }));
        assert!(s.rooms.is_empty());
    }

    #[tokio::test]
    async fn a_server_frame_above_the_announced_max_body_is_received_not_fatal() {
        use chat_proto::ServerCodec;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(sock, ServerCodec::new(RECEIVE_MAX_BODY));
            let _hello = framed.next().await;
            framed
                .send(&ServerMsg::Welcome(welcome("alice", &["#lobby"])))
                .await
                .unwrap();
            let big = ServerMsg::Message(ChatMessage {
                room: Some("#lobby".into()),
                from: "bob".into(),
                seq: 1,
                text: "x".repeat(3 * DEFAULT_MAX_BODY_FOR_TEST),
                ..ChatMessage::default()
            });
            framed.send(&big).await.unwrap();
            // Keep the connection open until the client has read the frame.
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let (handle, mut events) = spawn(NetConfig {
            addr,
            name: "alice".into(),
            client: "t".into(),
            ..NetConfig::default()
        });
        let mut got_big = false;
        while let Ok(Some(ev)) = timeout(Duration::from_secs(5), events.recv()).await {
            match ev {
                NetEvent::Message(ServerMsg::Message(m)) => {
                    got_big = m.text.len() == 3 * DEFAULT_MAX_BODY_FOR_TEST;
                    break;
                }
                NetEvent::Disconnected { reason, .. } => panic!("disconnected: {reason}"),
                _ => {}
            }
        }
        handle.quit(None);
        server.abort();
        assert!(got_big, "the large frame arrived");
    }

    const DEFAULT_MAX_BODY_FOR_TEST: usize = chat_proto::limits::DEFAULT_MAX_BODY as usize;

    #[test]
    fn a_session_dropped_right_after_welcome_keeps_backing_off() {
        let mut b = Backoff::new();
        let mut rng = rand::rng();
        let mut delays = Vec::new();
        for _ in 0..6 {
            // Welcomed, then dropped after a second: a crash loop, not a stable session.
            assert!(!b.session_ended(Some(Duration::from_secs(1))));
            delays.push(b.next_delay(&mut rng));
        }
        assert!(delays[5] >= Duration::from_secs(30), "{delays:?}");
        assert!(b.session_ended(Some(STABLE_SESSION)));
        assert!(b.next_delay(&mut rng) < Duration::from_millis(1250));
    }

    #[test]
    fn a_taken_nick_gets_an_underscore_within_32_columns() {
        assert_eq!(next_nick("alice"), "alice_");
        let long = "a".repeat(32);
        let next = next_nick(&long);
        assert_eq!(next, format!("{}_", "a".repeat(31)));
        assert!(chat_proto::nick::validate_nick(&next).is_ok());
        let wide = "界".repeat(16);
        assert!(chat_proto::nick::validate_nick(&next_nick(&wide)).is_ok());
    }

    #[tokio::test]
    async fn an_invalid_nick_stops_until_the_user_sets_another() {
        use chat_proto::ServerCodec;
        use chat_proto::server::Error;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (hello_tx, mut hello_rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let mut framed = Framed::new(sock, ServerCodec::new(RECEIVE_MAX_BODY));
                let Some(Ok(Ok(ClientMsg::Hello(h)))) = framed.next().await else {
                    continue;
                };
                let _ = hello_tx.send(h.name.clone());
                let reply = if h.name.contains(' ') {
                    ServerMsg::Error(Error {
                        id: None,
                        code: ErrorCode::NickInvalid,
                        message: "no spaces".into(),
                    })
                } else {
                    ServerMsg::Welcome(welcome(&h.name, &["#lobby"]))
                };
                framed.send(&reply).await.unwrap();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(framed);
                });
            }
        });
        let (handle, mut events) = spawn(NetConfig {
            addr,
            name: "a b".into(),
            client: "t".into(),
            ..NetConfig::default()
        });
        let stopped = loop {
            match timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(NetEvent::Disconnected { retry_in, .. })) => break retry_in,
                Ok(Some(_)) => {}
                other => panic!("no disconnect: {other:?}"),
            }
        };
        assert_eq!(stopped, None, "no retry planned with a refused nick");
        assert_eq!(hello_rx.recv().await.as_deref(), Some("a b"));
        // Nothing more is tried with the same nick.
        assert!(
            timeout(Duration::from_millis(1500), hello_rx.recv())
                .await
                .is_err()
        );
        handle.set_nick("ab".into());
        assert_eq!(hello_rx.recv().await.as_deref(), Some("ab"));
        let connected = loop {
            match timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(NetEvent::Connected(w))) => break w.nick,
                Ok(Some(_)) => {}
                other => panic!("not connected: {other:?}"),
            }
        };
        assert_eq!(connected, "ab");
        handle.quit(None);
        server.abort();
    }

    #[test]
    fn hello_carries_the_passwords_and_debug_output_hides_them() {
        let mut s = Session::new("alice", "t");
        s.password = Some(Secret("hunter22".into()));
        s.server_password = Some(Secret("letmein1".into()));
        let h = s.hello();
        assert_eq!(h.password.as_deref(), Some("hunter22"));
        assert_eq!(h.server_password.as_deref(), Some("letmein1"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter22") && !shown.contains("letmein1"),
            "{shown}"
        );
        let reg = ClientMsg::Register(client::Register {
            id: None,
            password: "hunter22".into(),
        });
        assert!(!loggable(&reg).contains("hunter22"));
        assert!(!loggable(&ClientMsg::Hello(h)).contains("hunter22"));
    }

    #[tokio::test]
    async fn a_refused_password_stops_until_the_user_sets_another_nick() {
        use chat_proto::ServerCodec;
        use chat_proto::server::Error;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (hello_tx, mut hello_rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let mut framed = Framed::new(sock, ServerCodec::new(RECEIVE_MAX_BODY));
                let Some(Ok(Ok(ClientMsg::Hello(h)))) = framed.next().await else {
                    continue;
                };
                let _ = hello_tx.send((h.name.clone(), h.password.clone()));
                let reply = if h.name == "alice" {
                    ServerMsg::Error(Error {
                        id: None,
                        code: ErrorCode::AuthFailed,
                        message: "nick alice is registered: wrong or missing password".into(),
                    })
                } else {
                    ServerMsg::Welcome(welcome(&h.name, &["#lobby"]))
                };
                framed.send(&reply).await.unwrap();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(framed);
                });
            }
        });
        let (handle, mut events) = spawn(NetConfig {
            addr,
            name: "alice".into(),
            client: "t".into(),
            password: Some(Secret("wrong-one".into())),
            server_password: None,
            tls: None,
        });
        let mut forwarded = false;
        let stopped = loop {
            match timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(NetEvent::Disconnected { retry_in, reason })) => {
                    assert!(reason.contains("wrong or missing password"), "{reason}");
                    break retry_in;
                }
                Ok(Some(NetEvent::Message(ServerMsg::Error(e)))) => {
                    forwarded = e.code == ErrorCode::AuthFailed;
                }
                Ok(Some(_)) => {}
                other => panic!("no disconnect: {other:?}"),
            }
        };
        assert!(forwarded, "the error reaches the UI");
        assert_eq!(stopped, None, "no retry planned after auth_failed");
        assert_eq!(
            hello_rx.recv().await,
            Some(("alice".to_owned(), Some("wrong-one".to_owned())))
        );
        assert!(
            timeout(Duration::from_millis(1500), hello_rx.recv())
                .await
                .is_err(),
            "the same login is not tried again"
        );
        handle.set_nick("alice2".into());
        assert_eq!(
            hello_rx.recv().await.map(|h| h.0).as_deref(),
            Some("alice2")
        );
        handle.quit(None);
        server.abort();
    }

    #[tokio::test]
    async fn a_ban_after_welcome_stops_reconnecting() {
        use chat_proto::ServerCodec;
        use chat_proto::server::Error;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (hello_tx, mut hello_rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let mut framed = Framed::new(sock, ServerCodec::new(RECEIVE_MAX_BODY));
                let Some(Ok(Ok(ClientMsg::Hello(h)))) = framed.next().await else {
                    continue;
                };
                let _ = hello_tx.send(h.name.clone());
                let welcome = ServerMsg::Welcome(welcome(&h.name, &["#lobby"]));
                framed.send(&welcome).await.unwrap();
                let banned = ServerMsg::Error(Error {
                    id: None,
                    code: ErrorCode::Banned,
                    message: "you are banned permanently: spam".into(),
                });
                framed.send(&banned).await.unwrap();
                // Then the server closes, as a real one does.
                drop(framed);
            }
        });
        let (handle, mut events) = spawn(NetConfig {
            addr,
            name: "eve".into(),
            client: "t".into(),
            password: None,
            server_password: None,
            tls: None,
        });
        let stopped = loop {
            match timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(NetEvent::Disconnected { retry_in, reason })) => {
                    assert!(reason.contains("banned permanently: spam"), "{reason}");
                    break retry_in;
                }
                Ok(Some(_)) => {}
                other => panic!("no disconnect: {other:?}"),
            }
        };
        assert_eq!(stopped, None, "no retry planned after a ban");
        assert_eq!(hello_rx.recv().await.as_deref(), Some("eve"));
        assert!(
            timeout(Duration::from_millis(1500), hello_rx.recv())
                .await
                .is_err(),
            "no reconnection"
        );
        handle.quit(None);
        server.abort();
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_bounded_jitter() {
        let mut b = Backoff::new();
        let mut rng = rand::rng();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay(&mut rng)).collect();
        let bases = [1, 2, 4, 8, 16, 30, 30, 30];
        for (d, base) in delays.iter().zip(bases) {
            let base = Duration::from_secs(base);
            assert!(
                *d >= base && *d <= (base.mul_f64(1.25)).min(Backoff::MAX),
                "{d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay(&mut rng) < Duration::from_millis(1250));
    }
}
