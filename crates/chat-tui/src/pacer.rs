//! Client-side flood control, so pasted or fast-typed lines arrive in the order they were typed.
//!
//! The server refuses requests above its token bucket (`rate_limited`) and announces the
//! bucket in `welcome`. A client that sends blindly and retries refusals later scrambles the
//! order of a burst (the 12th line is refused, the 19th accepted a moment later). So the client
//! mirrors the bucket, a little more strictly than the server (a smaller burst, a slower refill,
//! for the clock skew between the two and the few other requests it sends), and sends its outbox
//! strictly in order as tokens become available. Like irssi's `cmd_queue_speed`, only automatic.

use chat_proto::Limits;

/// Tokens kept back from the server's burst, for joins, names and other requests.
const BURST_MARGIN: f64 = 2.0;
/// Fraction of the server's sustained rate the client uses.
const RATE_MARGIN: f64 = 0.9;

/// A token bucket in client time (ms since the epoch, as the app's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct SendPacer {
    tokens: f64,
    updated_ms: i64,
    burst: f64,
    per_ms: f64,
}

impl SendPacer {
    /// A full bucket for the limits a server announced, at time `now_ms`.
    pub fn new(limits: &Limits, now_ms: i64) -> Self {
        let burst = (f64::from(limits.rate_burst) - BURST_MARGIN).max(1.0);
        let per_ms = (limits.rate_per_sec * RATE_MARGIN / 1000.0).max(1e-6);
        SendPacer {
            tokens: burst,
            updated_ms: now_ms,
            burst,
            per_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms).max(0);
        // Milliseconds fit an f64 exactly for any realistic interval.
        self.tokens = (self.tokens + elapsed as f64 * self.per_ms).min(self.burst);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a send may go now, without taking a token (for the refresh of the screen).
    pub fn ready_at(&self) -> i64 {
        if self.tokens >= 1.0 {
            return self.updated_ms;
        }
        let wait = ((1.0 - self.tokens) / self.per_ms).ceil();
        // `wait` is a small positive number of milliseconds.
        self.updated_ms + wait as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(burst: u32, rate: f64) -> Limits {
        Limits {
            rate_burst: burst,
            rate_per_sec: rate,
            ..Limits::default()
        }
    }

    #[test]
    fn burst_is_a_little_smaller_than_the_servers() {
        let mut p = SendPacer::new(&limits(10, 5.0), 0);
        let sent = (0..20).filter(|_| p.try_take(0)).count();
        assert_eq!(sent, 8);
    }

    #[test]
    fn refill_is_a_little_slower_than_the_servers() {
        let mut p = SendPacer::new(&limits(10, 5.0), 0);
        while p.try_take(0) {}
        // 5/s * 0.9 = 4.5 tokens per second.
        let sent = (0..20).filter(|_| p.try_take(1000)).count();
        assert_eq!(sent, 4);
        assert!(p.ready_at() > 1000);
        assert!(p.ready_at() <= 1000 + 223);
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_create_tokens() {
        let mut p = SendPacer::new(&limits(3, 1.0), 10_000);
        assert!(p.try_take(10_000));
        assert!(!p.try_take(5_000));
    }
}
