//! The accept loop: connection limits, `TCP_NODELAY`, and one tracked task per session.
//!
//! Two limits are checked before a session starts: a global semaphore (`max_conns` permits) and
//! a per-IP count (`max_conns_per_ip`). A refused connection gets one `too_many_connections`
//! error, written without waiting (its send buffer is empty), and is closed at once, so refusing
//! costs no task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chat_proto::{ErrorCode, ServerMsg, WireMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::hub::{HubHandle, SessionId};
use crate::session;

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
            let session = session::run(
                id,
                peer,
                stream.into_split(),
                self.hub.clone(),
                self.config.clone(),
                self.shutdown.clone(),
            );
            self.tracker.spawn(async move {
                session.await;
                drop(permit);
                drop(slot);
            });
        }
    }
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
