//! Closed-loop fan-out: P publishers (one by default), N subscribers, at most W messages in
//! flight.
//!
//! Each publisher has its own window of W / P messages, so with several publishers the load
//! stays at W in flight and a slow publisher cannot starve the others. Subscribers check every
//! publisher's sequence separately (each connection sees each publisher's messages in order).

use std::sync::Arc;

use anyhow::Result;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{Bench, tally};
use crate::cli::FanoutArgs;
use crate::driver::{Driver, Role};
use crate::measure::{Report, check_deliveries};
use crate::payload::{Marker, now_ns};
use crate::receiver::{Expect, Outcome, Running, Shared, Writer, join_all};
use crate::window::Window;

/// Most messages encoded into one write.
const BATCH: u64 = 256;

/// Runs `fanout`.
pub async fn run<D: Driver>(bench: &Bench<D>, args: &FanoutArgs) -> Result<Report> {
    let mut report = bench.report("fanout");
    report.subscribers = args.subs as u64;
    report.extra("window", args.window);
    let windows = windows(
        args.subs,
        args.window,
        args.publishers,
        bench.driver.acks_publishes(),
    );
    let shared = bench.shared(windows.clone());
    let deadline = bench.deadline();
    let phase = phase(
        bench,
        "s",
        args.subs,
        args.messages,
        &windows,
        &shared,
        &mut report,
    )
    .await?;
    finish(bench, phase, deadline, &shared, &mut report).await;
    Ok(report)
}

/// One window per publisher, sharing `limit` messages in flight between them. With a protocol
/// that acknowledges publishes (`acked`), a message stays in flight until its ack is back too:
/// the publisher's connection is one more receiver of its window, so the acks a server owes a
/// publisher are bounded by the window like the deliveries (else a publisher whose acks were
/// read late could have any number outstanding, and a server with a bounded queue would rightly
/// drop it as a slow reader).
pub(crate) fn windows(subs: usize, limit: u64, publishers: u32, acked: bool) -> Vec<Arc<Window>> {
    let subs = u32::try_from(subs + usize::from(acked)).unwrap_or(u32::MAX);
    let share = (limit / u64::from(publishers.max(1))).max(1);
    (0..publishers.max(1))
        .map(|_| Arc::new(Window::new(subs, share)))
        .collect()
}

/// One closed-loop phase in progress: receivers started, everything published.
pub(crate) struct Phase {
    subs: Vec<Running>,
    /// Subscribers outside `subs` that the server also counts (the stalled one in `slow`).
    pub(crate) uncounted: u64,
    publishers: Vec<Running>,
    published: u64,
    start_ns: u64,
}

/// Connects `subs` subscribers and one publisher per window, then publishes `messages` (in
/// all, split evenly) through them.
pub(crate) async fn phase<D: Driver>(
    bench: &Bench<D>,
    prefix: &str,
    subs: usize,
    messages: u64,
    windows: &[Arc<Window>],
    shared: &Shared,
    report: &mut Report,
) -> Result<Phase> {
    let publishers = u32::try_from(windows.len().max(1)).unwrap_or(u32::MAX);
    let per_publisher = messages / u64::from(publishers);
    report.publishers = u64::from(publishers);
    let expect = Expect {
        deliveries: per_publisher * u64::from(publishers),
        acks: 0,
        publishers,
        own: None,
        batch_wait: None,
        flow: true,
        acks_flow: false,
        own_thread: false,
    };
    let (subs, join_time) = bench
        .open(prefix, Role::Subscriber, subs, |_| expect, shared)
        .await?;
    report.extra("connect_s", round3(join_time.as_secs_f64()));
    let d = &bench.driver;
    // A publisher that also hears the room (a chat user) must read the other publishers'
    // messages to the end, or the server would count it as a slow reader.
    let others = per_publisher * u64::from(publishers - 1);
    let pub_expect = |i: usize| Expect {
        deliveries: match (d.acks_publishes(), d.publisher_hears_room()) {
            (true, true) => others,
            (true, false) => 0,
            // Nothing tells it when it is done: it reads until the run ends.
            (false, _) => u64::MAX,
        },
        acks: if d.acks_publishes() { per_publisher } else { 0 },
        publishers,
        own: Some(u32::try_from(i).unwrap_or(u32::MAX)),
        // Reads at once but records no latency: only the subscribers' count.
        batch_wait: Some(std::time::Duration::ZERO),
        flow: false,
        acks_flow: d.acks_publishes(),
        own_thread: false,
    };
    let (publisher_conns, _) = bench
        .open(
            &format!("{prefix}p"),
            Role::Publisher,
            publishers as usize,
            pub_expect,
            shared,
        )
        .await?;
    let start_ns = now_ns();
    let mut tasks = Vec::with_capacity(publisher_conns.len());
    for (i, (conn, window)) in publisher_conns.iter().zip(windows).enumerate() {
        let (d, wr, window) = (d.clone(), conn.writer.clone(), Arc::clone(window));
        let (room, size, cancel) = (bench.room.clone(), bench.common.size, shared.cancel.clone());
        let publisher = u32::try_from(i).unwrap_or(u32::MAX);
        tasks.push(tokio::spawn(async move {
            let what = Publishing {
                room: &room,
                size,
                publisher,
                total: per_publisher,
            };
            publish_closed(&*d, &wr, what, &window, &cancel).await
        }));
    }
    let mut published = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(n)) => published += n,
            Ok(Err((n, why))) => {
                published += n;
                report.fail(why);
            }
            Err(e) => report.fail(format!("publisher task: {e}")),
        }
    }
    Ok(Phase {
        subs,
        uncounted: 0,
        publishers: publisher_conns,
        published,
        start_ns,
    })
}

/// Waits for a phase's receivers and fills the report.
pub(crate) async fn finish<D: Driver>(
    bench: &Bench<D>,
    phase: Phase,
    deadline: tokio::time::Instant,
    shared: &Shared,
    report: &mut Report,
) -> Vec<Outcome> {
    let n = phase.subs.len() as u64;
    let outcomes = join_all(phase.subs, deadline, shared).await;
    let last = tally(report, &outcomes);
    // Everything is in (or the run timed out). A publisher that is acked reads its last acks a
    // moment after the subscribers get the last message: wait for them (up to the deadline)
    // before stopping its reader, or the run fails for acks that were merely still in flight.
    let mut pub_outs = Vec::with_capacity(phase.publishers.len());
    for publisher in phase.publishers {
        let mut task = publisher.task;
        let out = if bench.driver.acks_publishes() {
            tokio::select! {
                out = &mut task => out.unwrap_or_default(),
                () = tokio::time::sleep_until(deadline) => {
                    shared.cancel.cancel();
                    task.await.unwrap_or_default()
                }
            }
        } else {
            shared.cancel.cancel();
            task.await.unwrap_or_default()
        };
        pub_outs.push(out);
    }
    shared.cancel.cancel();
    report.published += phase.published;
    report.expected += phase.published * n;
    report.set_elapsed(last.saturating_sub(phase.start_ns) as f64 / 1e9);
    report.latency = shared.recorder.summary();
    if let Err(why) = check_deliveries(report.delivered, report.expected) {
        report.fail(why);
    }
    let receivers = n + phase.uncounted;
    let per_publisher = phase.published / (pub_outs.len().max(1) as u64);
    for (i, out) in pub_outs.iter().enumerate() {
        check_acks(&*bench.driver, out, per_publisher, receivers, report);
        if let Some(f) = &out.failure {
            report.fail(format!("publisher {i}: {f}"));
        }
    }
    outcomes
}

/// Checks the publisher's acknowledgements: one per publish, and Redis's receiver counts.
pub(crate) fn check_acks<D: Driver + ?Sized>(
    d: &D,
    out: &Outcome,
    published: u64,
    subs: u64,
    report: &mut Report,
) {
    if !d.acks_publishes() {
        return;
    }
    if out.acks != published {
        report.fail(format!("{} acks for {published} publishes", out.acks));
    } else if d.name() == "redis" && out.ack_receivers != published * subs {
        report.fail(format!(
            "redis counted {} receivers, expected {}",
            out.ack_receivers,
            published * subs
        ));
    }
}

/// What one publisher publishes: `total` messages of `size` bytes to `room`, marked as
/// coming from `publisher`.
pub(crate) struct Publishing<'a> {
    pub(crate) room: &'a str,
    pub(crate) size: usize,
    pub(crate) publisher: u32,
    pub(crate) total: u64,
}

/// Publishes `what.total` messages, keeping at most the window's limit in flight. On failure,
/// returns how many were published and why it stopped.
pub(crate) async fn publish_closed<D: Driver + ?Sized>(
    d: &D,
    wr: &Writer,
    what: Publishing<'_>,
    window: &Window,
    cancel: &CancellationToken,
) -> Result<u64, (u64, String)> {
    let Publishing {
        room,
        size,
        publisher,
        total,
    } = what;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut payload = Vec::with_capacity(size);
    let mut seq = 0;
    while seq < total {
        let n = window.room(seq).min(total - seq).min(BATCH);
        if n == 0 {
            tokio::select! {
                _ = window.changed() => {}
                // A receiver failed or the run timed out.
                _ = cancel.cancelled() => return Err((seq, format!("stopped after publishing {seq} of {total}: the window never reopened"))),
            }
            continue;
        }
        out.clear();
        let now = now_ns();
        for s in seq..seq + n {
            payload.clear();
            Marker {
                publisher,
                seq: s,
                sent_ns: now,
            }
            .write(size, &mut payload);
            d.encode_publish(room, s, &payload, &mut out);
        }
        if let Err(e) = wr.lock().await.write_all(&out).await {
            return Err((seq, format!("publisher write failed after {seq}: {e}")));
        }
        seq += n;
    }
    Ok(seq)
}

/// Rounds to three decimals for reports.
pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
