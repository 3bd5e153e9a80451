//! The accept loop: connection limits, `TCP_NODELAY`, the dialect, and one tracked task per
//! session.
//!
//! Two limits are checked before a session starts: a global semaphore (`max_conns` permits) and
//! a per-IP count (`max_conns_per_ip`). A refused connection gets one `too_many_connections`
//! error, written without waiting (its send buffer is empty), and is closed at once, so refusing
//! costs no task.
//!
//! One port serves two dialects, in the clear or inside TLS. The session task first peeks at
//! the first byte without consuming it ([`detect`]): `0x00` is the framed protocol (the first
//! byte of version 1's header), `0x16` is a TLS handshake, any other byte is a text client
//! (netcat, telnet, a homework client) and so is a connection that says nothing within
//! `detect_timeout`: a person at netcat waits to be greeted, while every framed client speaks
//! first.
//!
//! TLS (`--tls-cert`, `--tls-key`): a `0x16` connection is handed to the acceptor, which must
//! finish the handshake within `tls_handshake_timeout` of the accept; inside, the dialect is
//! chosen again from the first decrypted byte ([`crate::tls::read_dialect`]). Without a
//! certificate, `0x16` gets one plain-text line saying TLS is not enabled. With `--tls-only`,
//! plaintext is refused in its own dialect (a framed `tls_required` error, or one text line),
//! and silence is not taken for netcat: it is closed at the TLS handshake deadline.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chat_proto::{ErrorCode, ServerMsg, WireMessage};
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::hub::{HubHandle, SessionId};
use crate::session;
use crate::text;
use crate::tls;

/// Accepts connections and starts sessions.
pub struct Listener {
    listener: TcpListener,
    /// Cloned into every session; dropping the listener drops this one.
    hub: HubHandle,
    config: Arc<Config>,
    /// Set when the server has a certificate: `0x16` connections are served over TLS.
    tls: Option<TlsAcceptor>,
    /// One permit per open connection; a session holds its permit until it ends.
    limit: Arc<Semaphore>,
    /// Open connections per address; an [`IpSlot`] held by each session decrements on drop.
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Tracks every session so shutdown can wait for them.
    tracker: TaskTracker,
    /// Cancelled on shutdown; every session watches it.
    shutdown: CancellationToken,
    next_id: SessionId,
}

impl Listener {
    /// A listener that serves sessions on `tracker` until `shutdown` is cancelled, and TLS
    /// with `tls` when given.
    pub fn new(
        listener: TcpListener,
        hub: HubHandle,
        config: Arc<Config>,
        tls: Option<TlsAcceptor>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Listener {
            listener,
            hub,
            tls,
            limit: Arc::new(Semaphore::new(config.max_conns)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            config,
            tracker,
            shutdown,
            next_id: 1,
        }
    }

    /// Accepts forever; the caller stops it by dropping the future.
    pub async fn run(&mut self) {
        loop {
            let (stream, mut peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little and go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`: one address, one
            // form, or bans, throttles and per-address limits would see two clients.
            peer.set_ip(peer.ip().to_canonical());
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                refuse(&stream, peer, "the server is full");
                continue;
            };
            let Some(slot) = IpSlot::take(&self.per_ip, peer.ip(), self.config.max_conns_per_ip)
            else {
                refuse(&stream, peer, "too many connections from your address");
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            debug!(session = id, %peer, "accepted");
            let conn = Conn {
                id,
                peer,
                stream,
                accepted: Instant::now(),
                hub: self.hub.clone(),
                config: self.config.clone(),
                tls: self.tls.clone(),
                shutdown: self.shutdown.clone(),
                tracker: self.tracker.clone(),
                held: Held {
                    _permit: permit,
                    _slot: slot,
                },
            };
            self.tracker.spawn(conn.serve());
        }
    }
}

/// The first byte of a framed connection (version 1's header starts with three zero bytes).
const FRAMED_FIRST: u8 = 0x00;
/// The first byte of a TLS record carrying a handshake (`ClientHello`).
const TLS_HANDSHAKE: u8 = 0x16;

/// How a connection speaks, judged from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The framed protocol of `PROTOCOL.md`.
    Framed,
    /// Lines of text. `greet`: the peer is waiting for us to speak first (it sent nothing, or
    /// only telnet negotiation).
    Text {
        /// Greet and ask for a name at once.
        greet: bool,
    },
    /// A TLS handshake.
    Tls,
}

impl Dialect {
    /// The dialect a first byte announces; `None` is silence.
    pub fn from_first_byte(first: Option<u8>) -> Dialect {
        match first {
            Some(FRAMED_FIRST) => Dialect::Framed,
            Some(TLS_HANDSHAKE) => Dialect::Tls,
            // A telnet client that negotiates first is still waiting to be greeted.
            Some(text::telnet::IAC) | None => Dialect::Text { greet: true },
            Some(_) => Dialect::Text { greet: false },
        }
    }
}

/// What the first peek saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// The first byte, still unread.
    Byte(u8),
    /// Nothing within the wait.
    Silence,
    /// The peer closed or failed, or the server is stopping.
    Gone,
}

/// Peeks at the first byte (not consuming it) for at most `wait`.
async fn peek_first(stream: &TcpStream, wait: Duration, shutdown: &CancellationToken) -> First {
    let mut first = [0u8; 1];
    tokio::select! {
        // The server is stopping: nobody to serve.
        () = shutdown.cancelled() => First::Gone,
        peeked = tokio::time::timeout(wait, stream.peek(&mut first)) => match peeked {
            Ok(Ok(0) | Err(_)) => First::Gone,
            Ok(Ok(_)) => First::Byte(first[0]),
            Err(_) => First::Silence,
        },
    }
}

/// Peeks at the first byte (not consuming it) for at most `wait`. `None` when the peer closed,
/// failed, or the server is stopping before it said anything.
pub async fn detect(
    stream: &TcpStream,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Option<Dialect> {
    match peek_first(stream, wait, shutdown).await {
        First::Byte(byte) => Some(Dialect::from_first_byte(Some(byte))),
        // Silence: a person at netcat or telnet, waiting to be greeted.
        First::Silence => Some(Dialect::from_first_byte(None)),
        First::Gone => None,
    }
}

/// An accepted connection on its way to a session.
struct Conn {
    id: SessionId,
    peer: SocketAddr,
    stream: TcpStream,
    /// When it was accepted: the TLS handshake deadline counts from here.
    accepted: Instant,
    hub: HubHandle,
    config: Arc<Config>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    /// Where the session's task is started.
    tracker: TaskTracker,
    /// Its places under the connection limits, handed on to the session's task.
    held: Held,
}

/// A connection's places under the global and per-address limits, given back when dropped.
struct Held {
    _permit: OwnedSemaphorePermit,
    _slot: IpSlot,
}

impl Conn {
    /// Picks the dialect (and TLS) and serves the connection until it ends.
    async fn serve(self) {
        let tls_deadline = self.accepted + self.config.tls_handshake_timeout;
        let tls_only = self.tls.is_some() && self.config.tls_only;
        // On a TLS-only server nobody is greeted in the clear: wait up to the deadline.
        let wait = if tls_only {
            tls_deadline.saturating_duration_since(Instant::now())
        } else {
            self.config.detect_timeout
        };
        let (id, peer) = (self.id, self.peer);
        let dialect = match peek_first(&self.stream, wait, &self.shutdown).await {
            First::Gone => {
                debug!(session = id, %peer, "closed before its first byte");
                return;
            }
            First::Silence if tls_only => {
                info!(session = id, %peer, "closed: no TLS handshake before the deadline");
                return;
            }
            First::Silence => Dialect::from_first_byte(None),
            First::Byte(byte) => Dialect::from_first_byte(Some(byte)),
        };
        debug!(session = id, %peer, ?dialect, "dialect");
        match (dialect, self.tls.clone()) {
            (Dialect::Tls, Some(acceptor)) => {
                // Boxed: the handshake's state is large, and every connection's task is sized
                // for its largest state; only TLS connections pay for it.
                Box::pin(self.serve_tls(acceptor, tls_deadline)).await;
            }
            // Boxed too: a refusal drains the peer through a 4 KiB buffer.
            (Dialect::Tls, None) => {
                Box::pin(refuse_tls(self.stream, peer, self.config.close_timeout)).await;
            }
            (plain, Some(_)) if tls_only => {
                let grace = self.config.close_timeout;
                Box::pin(refuse_plaintext(self.stream, peer, plain, grace)).await;
            }
            (plain, _) => {
                let Conn {
                    stream,
                    hub,
                    config,
                    shutdown,
                    tracker,
                    held,
                    ..
                } = self;
                let halves = stream.into_split();
                let session = Detected {
                    id,
                    peer,
                    dialect: plain,
                    hub,
                    config,
                    shutdown,
                };
                session.start(halves, &tracker, held);
            }
        }
    }

    /// The TLS handshake (by `deadline`), then the dialect of the first decrypted byte.
    async fn serve_tls(self, acceptor: TlsAcceptor, deadline: Instant) {
        let Conn {
            id,
            peer,
            stream,
            hub,
            config,
            shutdown,
            tracker,
            held,
            ..
        } = self;
        let handshake = tokio::select! {
            // The server is stopping: no session to start.
            () = shutdown.cancelled() => return,
            done = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => done,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                info!(session = id, %peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                info!(
                    session = id,
                    %peer,
                    timeout = ?config.tls_handshake_timeout,
                    "closed: TLS handshake not finished before the deadline"
                );
                return;
            }
        };
        let (rd, wr) = tokio::io::split(stream);
        let detected = tokio::select! {
            // The server is stopping: nobody to serve.
            () = shutdown.cancelled() => return,
            detected = tls::read_dialect(rd, config.detect_timeout) => detected,
        };
        let Some((dialect, rd)) = detected else {
            debug!(session = id, %peer, "TLS closed before its first byte");
            return;
        };
        debug!(session = id, %peer, ?dialect, "dialect inside TLS");
        if dialect == Dialect::Tls {
            info!(session = id, %peer, "closed: a TLS handshake inside TLS");
            return;
        }
        let session = Detected {
            id,
            peer,
            dialect,
            hub,
            config,
            shutdown,
        };
        session.start((rd, wr), &tracker, held);
    }
}

/// A connection whose dialect is known, about to be served.
struct Detected {
    id: SessionId,
    peer: SocketAddr,
    dialect: Dialect,
    hub: HubHandle,
    config: Arc<Config>,
    shutdown: CancellationToken,
}

impl Detected {
    /// Starts the framed or text session over `halves` (plaintext or TLS) as a task of its own,
    /// which holds the connection's places (`held`) until it ends.
    ///
    /// Its own task, not the one that picked the dialect: a task is sized for its largest
    /// state, and an idle session's should not carry the detection, the TLS handshake or the
    /// other dialect's session.
    fn start<R, W>(self, halves: (R, W), tracker: &TaskTracker, held: Held)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (id, peer) = (self.id, self.peer);
        match self.dialect {
            Dialect::Framed => {
                let session = session::run(id, peer, halves, self.hub, self.config, self.shutdown);
                tracker.spawn(session.map(move |()| drop(held)));
            }
            Dialect::Text { greet } => {
                let (hub, config, shutdown) = (self.hub, self.config, self.shutdown);
                let session = text::run(id, peer, halves, hub, config, shutdown, greet);
                tracker.spawn(session.map(move |()| drop(held)));
            }
            Dialect::Tls => debug!(session = id, %peer, "TLS is not a session dialect"),
        }
    }
}

/// Answers a TLS handshake with one readable line and closes.
async fn refuse_tls(stream: TcpStream, peer: SocketAddr, grace: Duration) {
    info!(%peer, "TLS handshake refused: TLS is not enabled");
    let line = b"TLS is not enabled on this server: connect without TLS\r\n";
    say_and_close(stream, line, grace).await;
}

/// On a `--tls-only` server: tells a plaintext client, in its own dialect, that it must use
/// TLS, and closes.
async fn refuse_plaintext(stream: TcpStream, peer: SocketAddr, dialect: Dialect, grace: Duration) {
    info!(%peer, ?dialect, "plaintext refused: this server accepts TLS only");
    let said = match dialect {
        Dialect::Framed => ServerMsg::error(
            None,
            ErrorCode::TlsRequired,
            "this server accepts TLS connections only: connect with TLS",
        )
        .to_frame_bytes()
        .map(|frame| frame.to_vec())
        .unwrap_or_default(),
        _ => b"This server accepts TLS connections only: connect with TLS \
               (for example: openssl s_client -quiet -connect host:port)\r\n"
            .to_vec(),
    };
    say_and_close(stream, &said, grace).await;
}

/// Writes `bytes` and closes. What the peer already sent is drained first (briefly), so
/// closing does not reset the connection before it has read our answer.
async fn say_and_close(mut stream: TcpStream, bytes: &[u8], grace: Duration) {
    let _ = tokio::time::timeout(grace, async {
        stream.write_all(bytes).await?;
        stream.shutdown().await?;
        let mut scratch = [0u8; 4096];
        while stream.read(&mut scratch).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Sends `too_many_connections` without waiting, then the stream is dropped (closed).
fn refuse(stream: &TcpStream, peer: SocketAddr, reason: &str) {
    info!(%peer, reason, "connection refused");
    let error = ServerMsg::error(None, ErrorCode::TooManyConnections, reason);
    if let Ok(frame) = error.to_frame_bytes() {
        let _ = stream.try_write(&frame);
    }
}

/// One connection counted against its address; dropping it gives the place back.
#[derive(Debug)]
struct IpSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl IpSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            counts: counts.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_picks_the_dialect() {
        assert_eq!(Dialect::from_first_byte(Some(0x00)), Dialect::Framed);
        assert_eq!(Dialect::from_first_byte(Some(0x16)), Dialect::Tls);
        assert_eq!(
            Dialect::from_first_byte(Some(b'a')),
            Dialect::Text { greet: false }
        );
        assert_eq!(
            Dialect::from_first_byte(Some(0xB0)),
            Dialect::Text { greet: false },
            "a GBK lead byte"
        );
        assert_eq!(
            Dialect::from_first_byte(Some(0xFF)),
            Dialect::Text { greet: true },
            "telnet negotiation"
        );
        assert_eq!(
            Dialect::from_first_byte(None),
            Dialect::Text { greet: true }
        );
    }

    #[test]
    fn ip_slots_count_per_address_and_free_on_drop() {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = IpSlot::take(&counts, a, 2).unwrap();
        let _second = IpSlot::take(&counts, a, 2).unwrap();
        assert!(
            IpSlot::take(&counts, a, 2).is_none(),
            "third from a refused"
        );
        let _other = IpSlot::take(&counts, b, 2).unwrap();
        drop(first);
        assert!(IpSlot::take(&counts, a, 2).is_some(), "a place freed");
    }
}
