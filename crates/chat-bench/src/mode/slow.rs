//! Slow consumer: the same closed-loop fan-out twice, first with N readers only (baseline), then
//! with one more subscriber that never reads. Reports both throughputs, the server's peak memory
//! during the stalled phase, and what the server did to the stalled subscriber.

use std::time::Duration;

use anyhow::Result;
use bytes::Buf;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::fanout::{finish, phase, round3, windows as fanout_windows};
use super::{Bench, rss_kb};
use crate::cli::SlowArgs;
use crate::driver::{Conn, Driver, Event, Role, connect};
use crate::measure::Report;
use crate::payload::Marker;

/// Runs `slow`.
pub async fn run<D: Driver>(bench: &Bench<D>, args: &SlowArgs) -> Result<Report> {
    let deadline = bench.deadline();

    let mut base = bench.report("slow");
    let windows = fanout_windows(args.subs, args.window, 1, bench.driver.acks_publishes());
    let sh = bench.shared(windows.clone());
    let p = phase(
        bench,
        "a",
        args.subs,
        args.messages,
        &windows,
        &sh,
        &mut base,
    )
    .await?;
    finish(bench, p, deadline, &sh, &mut base).await;

    let mut report = bench.report("slow");
    report.subscribers = args.subs as u64;
    report.publishers = 1;
    if let Some(f) = base.failure {
        report.fail(format!("baseline phase: {f}"));
    }
    let stalled = connect(
        &*bench.driver,
        bench.common.addr,
        &bench.name("z", 0),
        &bench.room,
        Role::Subscriber,
        bench.handshake_limit(),
    )
    .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = bench
        .common
        .server_pid
        .map(|pid| tokio::spawn(sample_rss(pid, stop_rx)));
    let windows = fanout_windows(args.subs, args.window, 1, bench.driver.acks_publishes());
    let sh = bench.shared(windows.clone());
    let mut p = phase(
        bench,
        "b",
        args.subs,
        args.messages,
        &windows,
        &sh,
        &mut report,
    )
    .await?;
    // The server counts the stalled subscriber as a receiver too (Redis reports it).
    p.uncounted = 1;
    finish(bench, p, deadline, &sh, &mut report).await;
    let _ = stop_tx.send(true);
    if let Some(s) = sampler {
        let peak = s.await.unwrap_or(0);
        report.extra("server_rss_peak_kb", peak);
    }
    report.extra("baseline_msgs_per_s", base.delivered_per_s.round());
    if base.delivered_per_s > 0.0 {
        report.extra(
            "vs_baseline",
            round3(report.delivered_per_s / base.delivered_per_s),
        );
    }
    let (got, fate) = drain(&*bench.driver, stalled).await;
    report.extra("stalled_received", got);
    report.extra("stalled_fate", fate);
    Ok(report)
}

/// Peak `VmRSS` (kB) of `pid`, sampled every 50 ms until `stop`.
async fn sample_rss(pid: u32, mut stop: watch::Receiver<bool>) -> u64 {
    let mut peak = 0;
    loop {
        if let Some((rss, _)) = rss_kb(pid) {
            peak = peak.max(rss);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => return peak,
        }
    }
}

/// Reads what the stalled subscriber was sent, until the server closes it or 2 s pass with
/// nothing new. Returns the messages found and what happened.
async fn drain<D: Driver + ?Sized>(d: &D, conn: Conn) -> (u64, String) {
    let Conn {
        mut stream,
        mut buf,
    } = conn;
    let mut got = 0;
    let mut error = None;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::time::Instant::now() > give_up {
            return (got, "still sending after 30 s of draining".to_owned());
        }
        while let Ok(Some((used, ev))) = d.parse(&buf) {
            match ev {
                Event::Delivery(b) if Marker::find(b).is_some() => got += 1,
                Event::Error(e) => error = Some(String::from_utf8_lossy(e).into_owned()),
                _ => {}
            }
            buf.advance(used);
        }
        buf.reserve(64 * 1024);
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read_buf(&mut buf)).await;
        let what = match read {
            Ok(Ok(0)) => "disconnected by the server",
            Ok(Ok(_)) => continue,
            Ok(Err(_)) => "connection reset by the server",
            Err(_) => "still connected (nothing more to read)",
        };
        let fate = match error {
            Some(e) => format!("{what} after error {e}"),
            None => what.to_owned(),
        };
        return (got, fate);
    }
}
