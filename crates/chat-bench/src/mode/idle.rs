//! Idle connections: how long N take to connect and join, and what they cost the server in
//! memory (`VmRSS` from `/proc/PID/status` before and after, divided by N).

use std::time::Duration;

use anyhow::Result;

use super::fanout::round3;
use super::{Bench, rss_kb, tally};
use crate::cli::IdleArgs;
use crate::driver::{Driver, Role};
use crate::measure::Report;
use crate::receiver::{Expect, join_all};

/// Runs `idle`.
pub async fn run<D: Driver>(bench: &Bench<D>, args: &IdleArgs) -> Result<Report> {
    let mut report = bench.report("idle");
    report.subscribers = args.conns as u64;
    let pid = bench.common.server_pid;
    let before = pid.and_then(rss_kb);
    let shared = bench.shared(Vec::new());
    // Idle connections never finish on their own: they read (and answer pings) until cancelled.
    let expect = Expect {
        deliveries: u64::MAX,
        acks: 0,
        publishers: 1,
        own: None,
        batch_wait: None,
        flow: false,
        acks_flow: false,
        own_thread: false,
    };
    let (conns, join_time) = bench
        .open("i", Role::Subscriber, args.conns, |_| expect, &shared)
        .await?;
    let secs = join_time.as_secs_f64();
    report.extra("connect_s", round3(secs));
    report.extra("joins_per_s", (args.conns as f64 / secs).round());
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = pid.and_then(rss_kb);
    if let (Some((b, _)), Some((a, hwm))) = (before, after) {
        report.extra("rss_before_kb", b);
        report.extra("rss_after_kb", a);
        report.extra("rss_hwm_kb", hwm);
        let per = (a.saturating_sub(b)) as f64 / args.conns.max(1) as f64;
        report.extra("rss_per_conn_kb", round3(per));
    } else if let Some(pid) = pid {
        report.fail(format!("cannot read /proc/{pid}/status"));
    }
    // Everything still connected? A receiver that stopped early saw its connection close.
    shared.cancel.cancel();
    let outcomes = join_all(conns, tokio::time::Instant::now(), &shared).await;
    tally(&mut report, &outcomes);
    report.set_elapsed(secs);
    Ok(report)
}
