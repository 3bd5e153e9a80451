//! The `chat` server: rooms, nicks, direct messages, history and limits over TCP.
//!
//! [`run`] takes a bound listener, a [`Config`] and a shutdown future, so the binary and the
//! tests start it the same way (tests bind `127.0.0.1:0` and stop it with their own future).
//!
//! Per connection there is a session (reads, timers, rate limit) and a writer task (the only
//! code that writes to the socket); shared state (nicks, rooms, history) belongs to one actor,
//! the hub. Every channel is bounded, and the hub never waits for a client: see the
//! architecture invariant in [`hub`].
//!
//! # Layout
//! - [`accounts_cmd`]: `chat-server account ...`, accounts made on the server (operators).
//! - [`config`]: [`Config`], every limit as a flag and `CHAT_*` variable, with defaults.
//! - [`listener`]: the accept loop, connection limits, `TCP_NODELAY`, session tasks.
//! - [`session`]: one per peer: handshake, the read loop, rate limit, pings, slowloris guard.
//! - [`reader`]: bytes to messages, and since when a partial frame has waited.
//! - [`writer`]: the per-connection writer task: drains its queue, writes in one go.
//! - [`queue`]: a connection's outbound queue, bounded in frames, with no buffer while idle.
//! - [`hub`]: the actor owning nicks, presence and rooms; [`hub::HubHandle`] to talk to it.
//! - [`room`]: a room as plain data: members, topic, next sequence number.
//! - [`history`]: the [`history::HistoryStore`] trait and the in-memory store.
//! - [`store`]: the durable store: SQLite, a writer thread with group commit, search.
//! - [`rate`]: the token bucket.
//! - [`text`]: text mode: netcat, telnet and legacy-charset clients in the same rooms.
//! - [`tls`]: the certificate and key, and the dialect inside a TLS connection.

pub mod accounts_cmd;
pub mod config;
pub mod history;
pub mod hub;
pub mod listener;
pub mod queue;
pub mod rate;
pub mod reader;
pub mod room;
pub mod session;
pub mod store;
pub mod text;
pub mod tls;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::Config;

use crate::history::HistoryStore;
use crate::listener::Listener;

/// Serves `listener` until `shutdown` completes, then shuts down gracefully.
///
/// On shutdown it stops accepting, every session sends `notice shutting_down` and
/// `error shutting_down` after flushing its queue, and this returns once every task has ended
/// or `config.shutdown_timeout` has passed, whichever comes first.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let history = store::open_configured(&config)?;
    run_with_history(listener, config, history, shutdown).await
}

/// [`run`] with a store opened by the caller (tests keep a [`store::StoreControl`] to it).
pub async fn run_with_history(
    listener: TcpListener,
    config: Config,
    history: Box<dyn HistoryStore>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        (None, None) if !config.tls_only => None,
        _ => anyhow::bail!("TLS needs both --tls-cert and --tls-key (and --tls-only needs them)"),
    };
    let config = Arc::new(config);
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let hub = hub::spawn(config.clone(), history, token.clone(), &tracker);
    let mut server = Listener::new(
        listener,
        hub,
        config.clone(),
        tls.clone(),
        tracker.clone(),
        token.clone(),
    );
    info!(%addr, tls = tls.is_some(), tls_only = tls.is_some() && config.tls_only, "listening");

    tokio::select! {
        // Accepts until the shutdown future completes; it never ends by itself.
        () = server.run() => {}
        () = shutdown => info!("shutdown requested"),
    }
    // Stop accepting and let go of the listener's hub handle: the hub ends after the sessions.
    drop(server);
    token.cancel();
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = tracker.len(),
            "shutdown timeout passed; dropping the remaining connections"
        );
    }
    info!("server stopped");
    Ok(())
}
