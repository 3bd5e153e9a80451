//! The receiving side every mode shares: open connections, then read, cut, count and time what
//! arrives, answer pings, and stop when everything expected is in or the run is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::driver::{Conn, Driver, Event, Role, connect};
use crate::measure::Recorder;
use crate::payload::{Marker, now_ns};
use crate::window::Window;

/// Shared by every receiver of one run.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Latencies go here.
    pub recorder: Arc<Recorder>,
    /// Closed-loop flow control, when the mode has it: one window per publisher, indexed by
    /// the publisher number in each message's marker.
    pub windows: Vec<Arc<Window>>,
    /// Cancelled when the run ends (done, failed or timed out).
    pub cancel: CancellationToken,
}

/// What one receiver must see.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Deliveries to wait for; the receiver returns once it has them.
    pub deliveries: u64,
    /// Acks to wait for (publishers' connections), 0 for pure subscribers.
    pub acks: u64,
    /// Publishers whose sequences are checked (each must arrive 0, 1, 2, ... in order).
    pub publishers: u32,
    /// A publisher whose messages this receiver must not get (its own), if any.
    pub own: Option<u32>,
    /// `None`: read as soon as bytes arrive and record latencies (a probe). `Some(pause)`: a
    /// bulk reader that pauses between reads so it reads in batches, and records no latency.
    /// With many subscribers at a modest rate, one wake-up and read per message per
    /// subscriber would saturate the load tool's core; bulk readers still count and check
    /// every delivery, and the server's work is the same. `Some(Duration::ZERO)` reads at once
    /// without recording (a fan-out publisher hearing the other publishers).
    pub batch_wait: Option<Duration>,
    /// Whether this receiver's deliveries move the closed-loop windows: true for the
    /// subscribers a fan-out counts, false for publishers that also hear the room.
    pub flow: bool,
    /// Whether this receiver's acks move its own publisher's window (`own`): a publisher's
    /// connection, with a protocol that acks (see [`crate::mode::fanout::windows`]).
    pub acks_flow: bool,
    /// Whether it runs on the probe thread ([`probe_runtime`]) instead of the tool's runtime,
    /// so that the moment it reads is not decided by the other receivers' work.
    pub own_thread: bool,
}

/// A single-threaded runtime on an OS thread of its own, started on first use, for latency
/// probes: the OS wakes that thread when a probe's bytes arrive, whatever the tool's other
/// threads are busy with.
pub fn probe_runtime() -> Result<tokio::runtime::Handle> {
    static PROBES: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    if let Some(handle) = PROBES.get() {
        return Ok(handle.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the probes' runtime")?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("probes".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .context("the probes' thread")?;
    Ok(PROBES.get_or_init(|| handle).clone())
}

/// What one receiver saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Messages delivered (with a valid marker).
    pub delivered: u64,
    /// Publish acknowledgements.
    pub acks: u64,
    /// Sum of the receiver counts reported in acks (Redis).
    pub ack_receivers: u64,
    /// When the last delivery or ack arrived, in [`now_ns`] units.
    pub last_ns: u64,
    /// Why it stopped early or saw something wrong.
    pub failure: Option<String>,
}

/// The writing half, shared so a publisher and its receiver can both write.
pub type Writer = Arc<Mutex<OwnedWriteHalf>>;

/// Reads one connection until `expect` is met, the run is cancelled or the connection fails.
pub async fn receive<D, R>(
    driver: &D,
    who: usize,
    mut rd: R,
    mut buf: BytesMut,
    wr: Writer,
    expect: Expect,
    shared: &Shared,
) -> Outcome
where
    D: Driver + ?Sized,
    R: AsyncRead + Unpin,
{
    let mut out = Outcome::default();
    let mut next_seq = vec![0u64; expect.publishers.max(1) as usize];
    let mut latencies = Vec::with_capacity(1024);
    let mut reply = Vec::new();
    let done = |o: &Outcome| o.delivered >= expect.deliveries && o.acks >= expect.acks;
    loop {
        // Parse what is buffered first: the handshake may have read past its end.
        let now = now_ns();
        loop {
            let parsed = match driver.parse(&buf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    out.failure = Some(format!("receiver {who}: unparsable input: {e:#}"));
                    return out;
                }
            };
            let (used, ev) = parsed;
            match ev {
                Event::Delivery(bytes) => match Marker::find(bytes) {
                    Some(m) => {
                        if expect.flow {
                            let window = usize::try_from(m.publisher)
                                .ok()
                                .and_then(|p| shared.windows.get(p));
                            if let Some(w) = window {
                                w.on_delivery(m.seq);
                            }
                        }
                        check_order(who, &m, &mut next_seq, expect.own, &mut out);
                        latencies.push(now.saturating_sub(m.sent_ns));
                        out.delivered += 1;
                        out.last_ns = now;
                    }
                    None => {
                        // Not ours (e.g. a history replay or another tool's message): ignore.
                    }
                },
                Event::Ack(n) => {
                    // Acks come in publish order: the k-th acks the publisher's message k - 1.
                    if expect.acks_flow {
                        let window = expect
                            .own
                            .and_then(|p| usize::try_from(p).ok())
                            .and_then(|p| shared.windows.get(p));
                        if let Some(w) = window {
                            w.on_delivery(out.acks);
                        }
                    }
                    out.acks += 1;
                    out.ack_receivers += n;
                    out.last_ns = now;
                }
                Event::Ping(token) => driver.encode_pong(token, &mut reply),
                Event::Error(text) => {
                    out.failure.get_or_insert(format!(
                        "receiver {who}: server error after {} deliveries: {}",
                        out.delivered,
                        String::from_utf8_lossy(text)
                    ));
                    return out;
                }
                Event::Pong | Event::Subscribed | Event::Frame(..) | Event::Other => {}
            }
            buf.advance(used);
        }
        if expect.batch_wait.is_none() {
            shared.recorder.record_batch(who, &latencies);
        }
        latencies.clear();
        if !reply.is_empty() {
            if let Err(e) = wr.lock().await.write_all(&reply).await {
                out.failure = Some(format!("receiver {who}: writing pong: {e}"));
                return out;
            }
            reply.clear();
        }
        if done(&out) {
            return out;
        }
        if let Some(pause) = expect.batch_wait.filter(|p| !p.is_zero()) {
            tokio::select! {
                _ = shared.cancel.cancelled() => return out,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        buf.reserve(64 * 1024);
        tokio::select! {
            // The run ended (timeout or another failure): report what arrived.
            _ = shared.cancel.cancelled() => return out,
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) => {
                    out.failure.get_or_insert(format!(
                        "receiver {who}: connection closed by the server after {} deliveries",
                        out.delivered
                    ));
                    return out;
                }
                Ok(_) => {}
                Err(e) => {
                    out.failure.get_or_insert(format!("receiver {who}: read failed: {e}"));
                    return out;
                }
            },
        }
    }
}

fn check_order(who: usize, m: &Marker, next: &mut [u64], own: Option<u32>, out: &mut Outcome) {
    if own == Some(m.publisher) && out.failure.is_none() {
        out.failure = Some(format!("receiver {who}: got its own message {}", m.seq));
    }
    let Some(slot) = next.get_mut(m.publisher as usize) else {
        if out.failure.is_none() {
            out.failure = Some(format!("receiver {who}: unknown publisher {}", m.publisher));
        }
        return;
    };
    if m.seq != *slot && out.failure.is_none() {
        out.failure = Some(format!(
            "receiver {who}: publisher {} seq {} arrived when {} was due (lost, duplicated or reordered)",
            m.publisher, m.seq, *slot
        ));
    }
    *slot = m.seq + 1;
}

/// A handle on a running receiver.
#[derive(Debug)]
pub struct Running {
    /// Its writing half (for publishing on a `Both` connection).
    pub writer: Writer,
    /// Resolves to what it saw.
    pub task: JoinHandle<Outcome>,
}

/// Opens `n` connections with at most `concurrency` handshakes at a time, and starts a
/// receiver on each as soon as its handshake is done (so nothing queues up at the server while
/// the others connect). Returns once all are ready, with the time that took.
#[allow(clippy::too_many_arguments)]
pub async fn open_many<D: Driver>(
    driver: &Arc<D>,
    addr: SocketAddr,
    names: impl Fn(usize) -> String,
    room: &str,
    role: Role,
    n: usize,
    concurrency: usize,
    handshake_limit: Duration,
    expect: impl Fn(usize) -> Expect,
    shared: &Shared,
) -> Result<(Vec<Running>, Duration)> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (driver, name, room) = (Arc::clone(driver), names(i), room.to_owned());
        let (expect, shared) = (expect(i), shared.clone());
        let spawner = match expect.own_thread {
            true => probe_runtime()?,
            false => tokio::runtime::Handle::current(),
        };
        spawner.spawn(async move {
            let conn = connect(&*driver, addr, &name, &room, role, handshake_limit).await;
            drop(permit);
            let Conn { stream, buf } = match conn {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let (rd, wr) = stream.into_split();
            let writer = Arc::new(Mutex::new(wr));
            let task_writer = Arc::clone(&writer);
            let task = tokio::spawn(async move {
                receive(&*driver, i, rd, buf, task_writer, expect, &shared).await
            });
            let _ = ready_tx.send(Ok(Running { writer, task }));
        });
        pending.push(ready_rx);
    }
    let mut running = Vec::with_capacity(n);
    for (i, rx) in pending.into_iter().enumerate() {
        let r = rx
            .await
            .map_err(|_| anyhow!("connection {i} task vanished"))?
            .with_context(|| format!("connection {i} of {n}"));
        match r {
            Ok(r) => running.push(r),
            Err(e) => {
                shared.cancel.cancel();
                return Err(e);
            }
        }
    }
    Ok((running, started.elapsed()))
}

/// Waits for every receiver, cancelling the rest at `deadline`.
pub async fn join_all(
    running: Vec<Running>,
    deadline: tokio::time::Instant,
    shared: &Shared,
) -> Vec<Outcome> {
    let cancel = shared.cancel.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        cancel.cancel();
    });
    let mut outcomes = Vec::with_capacity(running.len());
    for r in running {
        outcomes.push(r.task.await.unwrap_or_else(|e| Outcome {
            failure: Some(format!("receiver task panicked: {e}")),
            ..Outcome::default()
        }));
    }
    timer.abort();
    outcomes
}
