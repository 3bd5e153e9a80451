//! The zero-logic broadcaster: the ceiling every table compares against.
//!
//! It relays each complete line a client writes to every other client and does nothing else:
//! no parsing, no rooms, no names. A reader cuts what it read at the last newline and sends that
//! chunk once, as shared `Bytes`, on a broadcast channel; each writer takes everything queued and
//! writes it in one call. A writer that falls a full channel behind is disconnected (the same
//! slow-consumer policy as the chat server). `OK\n` tells a client it is registered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Chunks buffered per subscriber before it counts as too slow.
const CHANNEL: usize = 4096;
/// Most bytes gathered into one write.
const WRITE_MAX: usize = 256 * 1024;

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn run(listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
    let (tx, _) = broadcast::channel::<(u64, Bytes)>(CHANNEL);
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: keep serving the others.
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        // Subscribe before `OK` goes out, so nothing sent after it is missed.
        let rx = tx.subscribe();
        let (rd, wr) = stream.into_split();
        let stop = shutdown.child_token();
        tokio::spawn(write_loop(id, wr, rx, stop.clone()));
        tokio::spawn(read_loop(id, rd, tx.clone(), stop));
    }
}

async fn read_loop(
    id: u64,
    mut rd: OwnedReadHalf,
    tx: broadcast::Sender<(u64, Bytes)>,
    stop: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        buf.reserve(16 * 1024);
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            n = rd.read_buf(&mut buf) => n.unwrap_or(0),
        };
        if n == 0 {
            stop.cancel();
            return;
        }
        if let Some(end) = memchr::memrchr(b'\n', &buf) {
            let _ = tx.send((id, buf.split_to(end + 1).freeze()));
        }
    }
}

async fn write_loop(
    id: u64,
    mut wr: OwnedWriteHalf,
    mut rx: broadcast::Receiver<(u64, Bytes)>,
    stop: CancellationToken,
) {
    if wr.write_all(b"OK\n").await.is_err() {
        stop.cancel();
        return;
    }
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.recv() => r,
        };
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Ok((from, chunk)) if from != id => out.extend_from_slice(&chunk),
                Ok(_) => {}
                // Too slow (or shutting down): drop the connection, never block the others.
                Err(_) => {
                    stop.cancel();
                    return;
                }
            }
            if out.len() >= WRITE_MAX {
                break;
            }
            next = match rx.try_recv() {
                Ok(m) => Some(Ok(m)),
                Err(broadcast::error::TryRecvError::Empty) => None,
                Err(_) => Some(Err(broadcast::error::RecvError::Closed)),
            };
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                stop.cancel();
                return;
            }
            out.clear();
        }
    }
}
