//! Measurement shared by every mode and driver: the latency histogram, the delivery check and
//! the report (one line for people, JSON for scripts).

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Shards of the latency histogram: subscribers record a whole read batch under one shard's
/// lock, so with a few shards they almost never wait for each other.
const SHARDS: usize = 8;
/// Lowest latency told apart (1 µs, in ns).
const LOWEST_NS: u64 = 1_000;
/// Highest latency recorded (60 s, in ns); larger values are clamped to it.
const HIGHEST_NS: u64 = 60_000_000_000;

/// A latency histogram many tasks record into.
#[derive(Debug)]
pub struct Recorder {
    /// One histogram per shard, in nanoseconds, 3 significant digits.
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Recorder {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }

    /// Records every latency in `latencies_ns` into the shard for `who`.
    pub fn record_batch(&self, who: usize, latencies_ns: &[u64]) {
        if latencies_ns.is_empty() {
            return;
        }
        let mut h = self.shards[who % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &ns in latencies_ns {
            h.saturating_record(ns.clamp(LOWEST_NS, HIGHEST_NS));
        }
    }

    /// Merges the shards and summarises them.
    pub fn summary(&self) -> LatencySummary {
        let mut all = new_histogram();
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&*h);
        }
        LatencySummary::of(&all)
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3).expect("constant bounds are valid")
}

/// Percentiles of one run's latencies, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarises a histogram recorded in nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        LatencySummary {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Whether deliveries matched what had to arrive.
///
/// `Err` carries the sentence the run fails with.
pub fn check_deliveries(delivered: u64, expected: u64) -> Result<(), String> {
    if delivered == expected {
        Ok(())
    } else {
        Err(format!(
            "delivered {delivered} messages but expected {expected} ({} missing)",
            expected as i128 - delivered as i128
        ))
    }
}

/// The result of one run: printed as one line, or as JSON with `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Mode (`fanout`, `latency`, ...).
    pub mode: String,
    /// Driver (`chat`, `redis`, `nats`, `line`).
    pub proto: String,
    /// Receiving connections.
    pub subscribers: u64,
    /// Publishing connections.
    pub publishers: u64,
    /// Payload size in bytes.
    pub payload: usize,
    /// Messages published.
    pub published: u64,
    /// Deliveries that had to arrive (published × receivers).
    pub expected: u64,
    /// Deliveries that arrived.
    pub delivered: u64,
    /// Seconds from the first publish to the last delivery (or the measured phase).
    pub elapsed_s: f64,
    /// Deliveries per second.
    pub delivered_per_s: f64,
    /// Publishes per second.
    pub published_per_s: f64,
    /// Latency from the (scheduled) send time to the read that delivered it.
    pub latency: LatencySummary,
    /// Mode-specific figures (RSS, connect time, the stalled subscriber's fate, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Why the run failed; `None` when it passed.
    pub failure: Option<String>,
}

impl Report {
    /// Adds a mode-specific figure.
    pub fn extra(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.extra.insert(key.to_owned(), value.into());
    }

    /// Sets the rates from `elapsed_s`.
    pub fn set_elapsed(&mut self, elapsed_s: f64) {
        self.elapsed_s = elapsed_s;
        if elapsed_s > 0.0 {
            self.delivered_per_s = self.delivered as f64 / elapsed_s;
            self.published_per_s = self.published as f64 / elapsed_s;
        }
    }

    /// Records a failure (the first one wins: it is usually the cause of the others).
    pub fn fail(&mut self, why: impl Into<String>) {
        if self.failure.is_none() {
            self.failure = Some(why.into());
        }
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} {} subs={} pubs={} size={}B: published {} ({}/s), delivered {}/{} in {:.2}s = {} msg/s",
            self.mode,
            self.proto,
            self.subscribers,
            self.publishers,
            self.payload,
            self.published,
            si(self.published_per_s),
            self.delivered,
            self.expected,
            self.elapsed_s,
            si(self.delivered_per_s),
        );
        if self.latency.count > 0 {
            let l = &self.latency;
            let _ = write!(
                s,
                "; latency p50={} p99={} p99.9={} max={}",
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            );
        }
        for (k, v) in &self.extra {
            let _ = write!(s, "; {k}={v}");
        }
        match &self.failure {
            None => s.push_str("; ok"),
            Some(why) => {
                let _ = write!(s, "; FAILED: {why}");
            }
        }
        s
    }
}

/// `1234567.0` → `1.23M`.
pub fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: f64) -> String {
    format!("{:.3}ms", us / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_uniform_latencies_has_the_expected_percentiles() {
        let r = Recorder::new();
        let lat: Vec<u64> = (1..=1000).map(|i| i * 1_000).collect(); // 1 µs .. 1 ms
        r.record_batch(0, &lat[..500]);
        r.record_batch(5, &lat[500..]);
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() <= 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() <= 1.0, "{s:?}");
        assert!((s.p999_us - 999.0).abs() <= 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() <= 1.0, "{s:?}");
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let r = Recorder::new();
        r.record_batch(1, &[0, 10, u64::MAX]);
        let s = r.summary();
        assert_eq!(s.count, 3);
        assert!(s.max_us >= 59_000_000.0, "{s:?}");
    }

    #[test]
    fn empty_recorder_summarises_to_zero() {
        assert_eq!(Recorder::new().summary(), LatencySummary::default());
    }

    #[test]
    fn deliveries_must_match_exactly() {
        assert!(check_deliveries(600, 600).is_ok());
        let err = check_deliveries(599, 600).unwrap_err();
        assert!(err.contains("1 missing"), "{err}");
        assert!(check_deliveries(601, 600).is_err());
    }

    #[test]
    fn report_line_says_ok_or_failed() {
        let mut r = Report {
            mode: "fanout".into(),
            proto: "redis".into(),
            subscribers: 3,
            publishers: 1,
            payload: 64,
            published: 200,
            expected: 600,
            delivered: 600,
            ..Report::default()
        };
        r.set_elapsed(0.5);
        assert_eq!(r.delivered_per_s, 1200.0);
        let line = r.line();
        assert!(line.starts_with("fanout redis subs=3"), "{line}");
        assert!(line.contains("600/600"), "{line}");
        assert!(line.ends_with("; ok"), "{line}");
        r.fail("connection 2 closed");
        r.fail("later failure");
        assert!(r.line().ends_with("FAILED: connection 2 closed"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["delivered"], 600);
        assert_eq!(json["failure"], "connection 2 closed");
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(6_580_000.0), "6.58M");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(12.0), "12");
    }
}
