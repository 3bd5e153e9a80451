//! Closed-loop fan-out: one publisher, N subscribers, at most W messages in flight.

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
    report.publishers = 1;
    report.extra("window", args.window);
    let window = Arc::new(Window::new(
        u32::try_from(args.subs).unwrap_or(u32::MAX),
        args.window,
    ));
    let shared = bench.shared(Some(Arc::clone(&window)));
    let deadline = bench.deadline();
    let phase = phase(
        bench,
        "s",
        args.subs,
        args.messages,
        &window,
        &shared,
        &mut report,
    )
    .await?;
    finish(bench, phase, deadline, &shared, &mut report).await;
    Ok(report)
}

/// One closed-loop phase in progress: receivers started, everything published.
pub(crate) struct Phase {
    subs: Vec<Running>,
    /// Subscribers outside `subs` that the server also counts (the stalled one in `slow`).
    pub(crate) uncounted: u64,
    publisher: Running,
    published: u64,
    start_ns: u64,
}

/// Connects `subs` subscribers and a publisher, then publishes `messages` through `window`.
pub(crate) async fn phase<D: Driver>(
    bench: &Bench<D>,
    prefix: &str,
    subs: usize,
    messages: u64,
    window: &Window,
    shared: &Shared,
    report: &mut Report,
) -> Result<Phase> {
    let expect = Expect {
        deliveries: messages,
        acks: 0,
        publishers: 1,
        own: None,
        batch_wait: None,
    };
    let (subs, join_time) = bench
        .open(prefix, Role::Subscriber, subs, |_| expect, shared)
        .await?;
    report.extra("connect_s", round3(join_time.as_secs_f64()));
    let d = &bench.driver;
    let pub_expect = Expect {
        deliveries: if d.acks_publishes() { 0 } else { u64::MAX },
        acks: if d.acks_publishes() { messages } else { 0 },
        publishers: 1,
        own: Some(0),
        batch_wait: None,
    };
    let (mut publisher, _) = bench
        .open(
            &format!("{prefix}p"),
            Role::Publisher,
            1,
            |_| pub_expect,
            shared,
        )
        .await?;
    let publisher = publisher.remove(0);
    let start_ns = now_ns();
    let published = publish_closed(
        &**d,
        &publisher.writer,
        &bench.room,
        bench.common.size,
        messages,
        window,
        &shared.cancel,
    )
    .await;
    let published = match published {
        Ok(n) => n,
        Err((n, why)) => {
            report.fail(why);
            n
        }
    };
    Ok(Phase {
        subs,
        uncounted: 0,
        publisher,
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
    let mut task = phase.publisher.task;
    let pub_out = if bench.driver.acks_publishes() {
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
    shared.cancel.cancel();
    report.published += phase.published;
    report.expected += phase.published * n;
    report.set_elapsed(last.saturating_sub(phase.start_ns) as f64 / 1e9);
    report.latency = shared.recorder.summary();
    if let Err(why) = check_deliveries(report.delivered, report.expected) {
        report.fail(why);
    }
    let receivers = n + phase.uncounted;
    check_acks(&*bench.driver, &pub_out, phase.published, receivers, report);
    if let Some(f) = pub_out.failure {
        report.fail(format!("publisher: {f}"));
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

/// Publishes `total` messages, keeping at most the window's limit in flight. On failure,
/// returns how many were published and why it stopped.
pub(crate) async fn publish_closed<D: Driver + ?Sized>(
    d: &D,
    wr: &Writer,
    room: &str,
    size: usize,
    total: u64,
    window: &Window,
    cancel: &CancellationToken,
) -> Result<u64, (u64, String)> {
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
                publisher: 0,
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
