//! A chat room: N users, each publishing R msg/s on its own schedule and receiving everyone's.
//!
//! Messages carry their scheduled send time, as in `latency`; the schedule runs on tokio's timer,
//! whose 1 ms granularity is part of the measured latency here (report it as such).

use std::time::Duration;

use anyhow::Result;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::fanout::{check_acks, round3};
use super::{Bench, tally};
use crate::cli::MixArgs;
use crate::driver::{Driver, Role};
use crate::measure::{Report, check_deliveries};
use crate::payload::{Marker, now_ns};
use crate::receiver::{Expect, Writer, join_all};

/// Runs `mix`.
pub async fn run<D: Driver>(bench: &Bench<D>, args: &MixArgs) -> Result<Report> {
    let mut report = bench.report("mix");
    let d = &bench.driver;
    let n = args.users;
    let per_user = (args.rate * args.duration).round().max(1.0) as u64;
    let total = per_user * n as u64;
    let users = u32::try_from(n)?;
    report.subscribers = n as u64;
    report.publishers = n as u64;
    report.extra("rate_per_user", args.rate);
    let shared = bench.shared(Vec::new());
    let deadline = bench.deadline();
    let separate = d.separate_publisher();
    let own_too = d.echoes_own() || separate;
    let receive_expect = |i: usize| Expect {
        deliveries: if own_too { total } else { total - per_user },
        acks: if d.acks_publishes() && !separate {
            per_user
        } else {
            0
        },
        publishers: users,
        own: (!own_too).then_some(u32::try_from(i).unwrap_or(u32::MAX)),
        batch_wait: None,
        flow: false,
        acks_flow: false,
        own_thread: false,
    };
    let role = if separate {
        Role::Subscriber
    } else {
        Role::Both
    };
    let (receivers, join_time) = bench.open("u", role, n, receive_expect, &shared).await?;
    report.extra("connect_s", round3(join_time.as_secs_f64()));
    let (publishers, writers): (Vec<_>, Vec<Writer>) = if separate {
        let pub_expect = |_| Expect {
            deliveries: 0,
            acks: per_user,
            publishers: users,
            own: None,
            batch_wait: None,
            flow: false,
            acks_flow: false,
            own_thread: false,
        };
        let (p, _) = bench
            .open("p", Role::Publisher, n, pub_expect, &shared)
            .await?;
        let w = p.iter().map(|r| r.writer.clone()).collect();
        (p, w)
    } else {
        (
            Vec::new(),
            receivers.iter().map(|r| r.writer.clone()).collect(),
        )
    };

    let interval_ns = 1e9 / args.rate;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(5);
    let t0_ns = now_ns() + 5_000_000;
    let mut tasks = Vec::with_capacity(n);
    for (i, wr) in writers.into_iter().enumerate() {
        let (d, room, cancel) = (d.clone(), bench.room.clone(), shared.cancel.clone());
        let size = bench.common.size;
        // Spread users over one interval so they do not all speak in the same millisecond.
        let offset = interval_ns * i as f64 / n as f64;
        tasks.push(tokio::spawn(async move {
            let sched = |k: u64| (offset + k as f64 * interval_ns) as u64;
            let p = u32::try_from(i).unwrap_or(u32::MAX);
            user(
                &*d, &wr, &room, size, p, per_user, t0, t0_ns, sched, &cancel,
            )
            .await
        }));
    }
    let mut published = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(k)) => published += k,
            Ok(Err((k, why))) => {
                published += k;
                report.fail(why);
            }
            Err(e) => report.fail(format!("user task panicked: {e}")),
        }
    }
    let outcomes = join_all(receivers, deadline, &shared).await;
    let last = tally(&mut report, &outcomes);
    let pub_outcomes = join_all(publishers, deadline, &shared).await;
    report.published = published;
    report.expected = outcomes
        .iter()
        .enumerate()
        .map(|(i, _)| receive_expect(i).deliveries)
        .sum();
    report.set_elapsed(last.saturating_sub(t0_ns) as f64 / 1e9);
    report.latency = shared.recorder.summary();
    if let Err(why) = check_deliveries(report.delivered, report.expected) {
        report.fail(why);
    }
    let ack_sources = if separate { &pub_outcomes } else { &outcomes };
    for o in ack_sources {
        check_acks(
            &**d,
            o,
            per_user,
            if own_too { n as u64 } else { n as u64 - 1 },
            &mut report,
        );
        if let Some(f) = &o.failure {
            report.fail(f.clone());
        }
    }
    Ok(report)
}

/// One user's publishing schedule.
#[allow(clippy::too_many_arguments)]
async fn user<D: Driver + ?Sized>(
    d: &D,
    wr: &Writer,
    room: &str,
    size: usize,
    publisher: u32,
    count: u64,
    t0: tokio::time::Instant,
    t0_ns: u64,
    sched: impl Fn(u64) -> u64,
    cancel: &CancellationToken,
) -> Result<u64, (u64, String)> {
    let (mut out, mut payload) = (Vec::new(), Vec::new());
    let mut k = 0;
    while k < count {
        tokio::select! {
            _ = tokio::time::sleep_until(t0 + Duration::from_nanos(sched(k))) => {}
            // A receiver failed or the run timed out.
            _ = cancel.cancelled() => return Err((k, format!("user {publisher} stopped after {k}: run cancelled"))),
        }
        let now = now_ns();
        out.clear();
        while k < count && t0_ns + sched(k) <= now {
            payload.clear();
            Marker {
                publisher,
                seq: k,
                sent_ns: t0_ns + sched(k),
            }
            .write(size, &mut payload);
            d.encode_publish(room, k, &payload, &mut out);
            k += 1;
        }
        if !out.is_empty() {
            if let Err(e) = wr.lock().await.write_all(&out).await {
                return Err((k, format!("user {publisher} write failed: {e}")));
            }
        }
    }
    Ok(k)
}
