//! The accept loop: connection limits, `TCP_NODELAY`, the dialect, and one tracked task per
//! session.
//!
//! Two limits are checked before a session starts: a global semaphore (`max_conns` permits) and
//! a per-IP count (`max_conns_per_ip`). A refused connection gets one `too_many_connections`
//! error, written without waiting (its send buffer is empty), and is closed at once, so refusing
//! costs no task.
//!
//! One port serves two dialects. The session task first peeks at the first byte without
//! consuming it ([`detect`]): `0x00` is the framed protocol (the first byte of version 1's
//! header), `0x16` is a TLS handshake (not served yet: it gets one plain-text line), any other
//! byte is a text client (netcat, telnet, a homework client) and so is a connection that says
//! nothing within `detect_timeout`: a person at netcat waits to be greeted, while every framed
//! client speaks first.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chat_proto::{ErrorCode, ServerMsg, WireMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::hub::{HubHandle, SessionId};
use crate::session;
use crate::text;

/// Accepts connections and starts sessions.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    /// Cloned into every session; dropping the listener drops this one.
    hub: HubHandle,
    config: Arc<Config>,
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
    /// A listener that serves sessions on `tracker` until `shutdown` is cancelled.
    pub fn new(
        listener: TcpListener,
        hub: HubHandle,
        config: Arc<Config>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Listener {
            listener,
            hub,
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
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little and go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
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
                hub: self.hub.clone(),
                config: self.config.clone(),
                shutdown: self.shutdown.clone(),
            };
            self.tracker.spawn(async move {
                conn.serve().await;
                drop(permit);
                drop(slot);
            });
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
    /// A TLS handshake; TLS is not served yet.
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

/// Peeks at the first byte (not consuming it) for at most `wait`. `None` when the peer closed,
/// failed, or the server is stopping before it said anything.
pub async fn detect(
    stream: &TcpStream,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Option<Dialect> {
    let mut first = [0u8; 1];
    tokio::select! {
        // The server is stopping: nobody to serve.
        () = shutdown.cancelled() => None,
        peeked = tokio::time::timeout(wait, stream.peek(&mut first)) => match peeked {
            Ok(Ok(0) | Err(_)) => None,
            Ok(Ok(_)) => Some(Dialect::from_first_byte(Some(first[0]))),
            // Silence: a person at netcat or telnet, waiting to be greeted.
            Err(_) => Some(Dialect::from_first_byte(None)),
        },
    }
}

/// An accepted connection on its way to a session.
struct Conn {
    id: SessionId,
    peer: SocketAddr,
    stream: TcpStream,
    hub: HubHandle,
    config: Arc<Config>,
    shutdown: CancellationToken,
}

impl Conn {
    /// Picks the dialect and serves the connection until it ends.
    async fn serve(self) {
        let Conn {
            id,
            peer,
            stream,
            hub,
            config,
            shutdown,
        } = self;
        let Some(dialect) = detect(&stream, config.detect_timeout, &shutdown).await else {
            debug!(session = id, %peer, "closed before its first byte");
            return;
        };
        debug!(session = id, %peer, ?dialect, "dialect");
        match dialect {
            Dialect::Framed => {
                session::run(id, peer, stream.into_split(), hub, config, shutdown).await;
            }
            Dialect::Text { greet } => {
                let halves = stream.into_split();
                // Boxed: every connection's task is sized for its largest state, and a text
                // session's is larger than a framed one's.
                Box::pin(text::run(id, peer, halves, hub, config, shutdown, greet)).await;
            }
            Dialect::Tls => refuse_tls(stream, peer, config.close_timeout).await,
        }
    }
}

/// Answers a TLS handshake with one readable line and closes. The unread handshake is drained
/// first (briefly), so closing does not reset the connection before the line is read.
async fn refuse_tls(mut stream: TcpStream, peer: SocketAddr, grace: Duration) {
    info!(%peer, "TLS handshake refused: TLS is not enabled");
    let line = b"TLS is not enabled on this server: connect without TLS\r\n";
    let _ = tokio::time::timeout(grace, async {
        stream.write_all(line).await?;
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
