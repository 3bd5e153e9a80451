//! Open-loop latency: one publisher sends on a fixed schedule whatever happens downstream, and
//! every message carries its *scheduled* send time, so a stall anywhere (server, socket or the
//! publisher itself) shows up in the latency of every message it delays: no coordinated
//! omission.
//!
//! The publisher runs on its own OS thread with a blocking socket: tokio's timer has 1 ms
//! granularity, a thread sleep is within ~0.1 ms. Its lateness is counted in the latency, and
//! reported on its own as `pub_lag_max_ms`.
//!
//! Latency is sampled on the first `--probes` subscribers, which read as soon as bytes arrive;
//! the others read in batches every few milliseconds (see [`Expect::batch_wait`]) but are still
//! counted and checked. Otherwise, at 100 subscribers × 10 k msg/s, a million wake-ups per second
//! in the load tool would be what the latency measures. The probes run on a thread of their own
//! (see [`Expect::own_thread`]): on the tool's runtime, a probe whose bytes had arrived waited
//! behind the bulk readers' batches (which all wake together), and that wait was the tail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::BytesMut;
use tokio_util::sync::CancellationToken;

use super::fanout::{check_acks, round3};
use super::{Bench, tally};
use crate::cli::LatencyArgs;
use crate::driver::{Driver, Event, Role, connect};
use crate::measure::{Report, check_deliveries};
use crate::payload::{Marker, now_ns};
use crate::receiver::{Expect, Outcome, join_all};

/// Pause between reads of the bulk (non-probe) subscribers.
const BULK_PAUSE_MS: u64 = 5;

/// Runs `latency`.
pub async fn run<D: Driver>(bench: &Bench<D>, args: &LatencyArgs) -> Result<Report> {
    let mut report = bench.report("latency");
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    report.subscribers = args.subs as u64;
    report.publishers = 1;
    report.extra("rate", args.rate);
    let shared = bench.shared(Vec::new());
    let deadline = bench.deadline();
    let probes = args.probes.min(args.subs);
    report.extra("probes", probes as u64);
    let expect = |i: usize| Expect {
        deliveries: total,
        acks: 0,
        publishers: 1,
        own: None,
        batch_wait: (i >= probes).then_some(Duration::from_millis(BULK_PAUSE_MS)),
        flow: false,
        acks_flow: false,
        own_thread: i < probes,
    };
    let (subs, join_time) = bench
        .open("s", Role::Subscriber, args.subs, expect, &shared)
        .await?;
    report.extra("connect_s", round3(join_time.as_secs_f64()));

    let d = Arc::clone(&bench.driver);
    let conn = connect(
        &*d,
        bench.common.addr,
        &bench.name("p", 0),
        &bench.room,
        Role::Publisher,
        bench.handshake_limit(),
    )
    .await?;
    let stream = conn.stream.into_std()?;
    stream.set_nonblocking(false)?;
    let read_half = stream.try_clone()?;
    // Held open until every subscriber is done: closing a socket with unread input (a server's
    // PING) sends a reset, and the server may then drop the publishes it had not read yet.
    let keep_open = stream.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let acks = d.acks_publishes().then(|| {
        let (d, stop) = (Arc::clone(&d), Arc::clone(&stop));
        tokio::task::spawn_blocking(move || read_acks(&*d, read_half, conn.buf, total, &stop))
    });
    let pacing = Pacing {
        interval_ns: 1e9 / args.rate,
        total,
        size: bench.common.size,
    };
    let (d2, room, cancel) = (Arc::clone(&d), bench.room.clone(), shared.cancel.clone());
    let start_ns = now_ns();
    let published = tokio::task::spawn_blocking(move || pacing.run(&*d2, stream, &room, &cancel))
        .await
        .context("publisher thread")?;

    let outcomes = join_all(subs, deadline, &shared).await;
    let last = tally(&mut report, &outcomes);
    // The last acks may still be in flight when the subscriber has the last message (a durable
    // server acks after its commit): let the reader take them, up to the deadline, before it
    // is told to stop, or the run fails for acks that were merely late.
    let acks = match acks {
        Some(mut task) => Some(tokio::select! {
            out = &mut task => out.unwrap_or_default(),
            () = tokio::time::sleep_until(deadline) => {
                stop.store(true, Ordering::Relaxed);
                task.await.unwrap_or_default()
            }
        }),
        None => None,
    };
    drop(keep_open);
    stop.store(true, Ordering::Relaxed);
    let (sent, lag_ns) = match published {
        Ok(p) => p,
        Err((p, why)) => {
            report.fail(why);
            p
        }
    };
    report.published = sent;
    report.expected = sent * args.subs as u64;
    report.extra("pub_lag_max_ms", round3(lag_ns as f64 / 1e6));
    report.set_elapsed(last.saturating_sub(start_ns) as f64 / 1e9);
    report.latency = shared.recorder.summary();
    if let Err(why) = check_deliveries(report.delivered, report.expected) {
        report.fail(why);
    }
    if let Some(out) = acks {
        check_acks(&*d, &out, sent, args.subs as u64, &mut report);
        if let Some(f) = out.failure {
            report.fail(format!("publisher: {f}"));
        }
    }
    Ok(report)
}

/// The publisher's schedule.
struct Pacing {
    interval_ns: f64,
    total: u64,
    size: usize,
}

impl Pacing {
    /// Sends every message at (or as soon as possible after) its scheduled time. Returns the
    /// count sent and the publisher's worst lateness in ns.
    fn run<D: Driver + ?Sized>(
        &self,
        d: &D,
        mut stream: TcpStream,
        room: &str,
        cancel: &CancellationToken,
    ) -> Result<(u64, u64), ((u64, u64), String)> {
        let t0 = now_ns() + 2_000_000;
        let sched = |k: u64| t0 + (k as f64 * self.interval_ns) as u64;
        let (mut k, mut lag) = (0u64, 0u64);
        let (mut out, mut payload) = (Vec::new(), Vec::new());
        while k < self.total {
            if cancel.is_cancelled() {
                return Err((
                    (k, lag),
                    format!("publisher stopped after {k}: run cancelled"),
                ));
            }
            let now = now_ns();
            let first = k;
            out.clear();
            while k < self.total && sched(k) <= now {
                payload.clear();
                Marker {
                    publisher: 0,
                    seq: k,
                    sent_ns: sched(k),
                }
                .write(self.size, &mut payload);
                d.encode_publish(room, k, &payload, &mut out);
                k += 1;
            }
            if !out.is_empty() {
                lag = lag.max(now - sched(first));
                if let Err(e) = stream.write_all(&out) {
                    return Err(((first, lag), format!("publisher write failed: {e}")));
                }
            }
            if k < self.total {
                let wait = sched(k).saturating_sub(now_ns());
                if wait > 0 {
                    std::thread::sleep(Duration::from_nanos(wait));
                }
            }
        }
        Ok((k, lag))
    }
}

/// Reads the publisher's acks on a blocking socket until `total` arrived or `stop` is set.
fn read_acks<D: Driver + ?Sized>(
    d: &D,
    mut stream: TcpStream,
    mut buf: BytesMut,
    total: u64,
    stop: &AtomicBool,
) -> Outcome {
    let mut out = Outcome::default();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut chunk = vec![0u8; 64 * 1024];
    while out.acks < total && !stop.load(Ordering::Relaxed) {
        loop {
            match d.parse(&buf) {
                Ok(Some((used, ev))) => {
                    match ev {
                        Event::Ack(n) => {
                            out.acks += 1;
                            out.ack_receivers += n;
                        }
                        Event::Error(e) => {
                            out.failure =
                                Some(format!("server error: {}", String::from_utf8_lossy(e)));
                            return out;
                        }
                        _ => {}
                    }
                    bytes::Buf::advance(&mut buf, used);
                }
                Ok(None) => break,
                Err(e) => {
                    out.failure = Some(format!("unparsable input: {e:#}"));
                    return out;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                out.failure = Some("connection closed by the server".into());
                return out;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                out.failure = Some(format!("read failed: {e}"));
                return out;
            }
        }
    }
    out
}
