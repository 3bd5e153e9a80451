//! The modes: each opens its connections through [`crate::receiver`], drives its publishers and
//! fills a [`Report`].
//!
//! # Layout
//! - [`fanout`]: closed-loop fan-out throughput (and the publisher loop `slow` reuses).
//! - [`latency`]: open-loop latency at a fixed rate.
//! - [`mix`]: many users publishing and receiving in one room.
//! - [`idle`]: connection and join time, memory per idle connection.
//! - [`slow`]: one stalled subscriber among readers.

pub mod fanout;
pub mod idle;
pub mod latency;
pub mod mix;
pub mod slow;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use tokio_util::sync::CancellationToken;

use crate::cli::Common;
use crate::driver::{Driver, Role};
use crate::measure::{Recorder, Report};
use crate::payload::MARKER_LEN;
use crate::receiver::{Expect, Outcome, Running, Shared, open_many};

/// What every mode needs to know about the run.
#[derive(Debug)]
pub struct Bench<D> {
    /// The protocol.
    pub driver: Arc<D>,
    /// The common options.
    pub common: Common,
    /// The room (channel, subject) in use.
    pub room: String,
    /// Distinguishes this run's nicks from earlier runs' on the same server.
    pub run_id: String,
}

impl<D: Driver> Bench<D> {
    /// A run of `driver` with `common` options.
    pub fn new(driver: D, common: Common) -> Result<Self> {
        if common.size < MARKER_LEN {
            bail!("--size must be at least {MARKER_LEN} bytes (the marker)");
        }
        let room = common
            .room
            .clone()
            .unwrap_or_else(|| driver.default_room().to_owned());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let run_id = format!("{:04x}", (nanos ^ std::process::id()) & 0xffff);
        Ok(Bench {
            driver: Arc::new(driver),
            common,
            room,
            run_id,
        })
    }

    /// A nick for connection `i` of kind `what` (`s`ubscriber, `p`ublisher, `u`ser, ...).
    pub fn name(&self, what: &str, i: usize) -> String {
        format!("b{}{what}{i}", self.run_id)
    }

    /// Time allowed for one handshake.
    pub fn handshake_limit(&self) -> Duration {
        Duration::from_secs_f64(self.common.timeout.clamp(1.0, 60.0))
    }

    /// The instant by which the whole run must be over.
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs_f64(self.common.timeout.max(0.1))
    }

    /// A fresh shared state whose cancel token fires at the run's deadline, so nothing (a
    /// publisher waiting on a window that never reopens, say) outlives `--timeout`.
    pub fn shared(&self, windows: Vec<Arc<crate::window::Window>>) -> Shared {
        let s = shared(windows);
        let (cancel, deadline) = (s.cancel.clone(), self.deadline());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => cancel.cancel(),
                _ = cancel.cancelled() => {}
            }
        });
        s
    }

    /// A fresh report for `mode`.
    pub fn report(&self, mode: &str) -> Report {
        Report {
            mode: mode.to_owned(),
            proto: self.driver.name().to_owned(),
            payload: self.common.size,
            ..Report::default()
        }
    }

    /// Opens `n` connections named `what{i}` with `role`, each expecting `expect(i)`.
    pub async fn open(
        &self,
        what: &str,
        role: Role,
        n: usize,
        expect: impl Fn(usize) -> Expect,
        shared: &Shared,
    ) -> Result<(Vec<Running>, Duration)> {
        open_many(
            &self.driver,
            self.common.addr,
            |i| self.name(what, i),
            &self.room,
            role,
            n,
            self.common.concurrency,
            self.handshake_limit(),
            expect,
            shared,
        )
        .await
    }
}

/// A fresh set of shared run state.
pub fn shared(windows: Vec<Arc<crate::window::Window>>) -> Shared {
    Shared {
        recorder: Arc::new(Recorder::new()),
        windows,
        cancel: CancellationToken::new(),
    }
}

/// Adds receivers' outcomes to `report`: deliveries, the last arrival, and the first failure.
pub fn tally(report: &mut Report, outcomes: &[Outcome]) -> u64 {
    let mut last = 0;
    for o in outcomes {
        report.delivered += o.delivered;
        last = last.max(o.last_ns);
        if let Some(f) = &o.failure {
            report.fail(f.clone());
        }
    }
    last
}

/// Reads `VmRSS` and `VmHWM` (kB) of a process from `/proc/PID/status`.
pub fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_memory_is_readable() {
        let (rss, hwm) = rss_kb(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss, "{rss} {hwm}");
        assert_eq!(rss_kb(u32::MAX), None);
    }
}
