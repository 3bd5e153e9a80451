//! A token bucket: the per-connection request rate limit.
//!
//! The bucket holds up to `burst` tokens and refills at `per_sec` tokens a second; each request
//! takes one. It reads tokio's clock, so tests drive it with `tokio::time::pause`.

use tokio::time::Instant;

/// Token bucket over requests.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Most tokens the bucket holds.
    capacity: f64,
    /// Tokens added per second.
    per_sec: f64,
    /// Tokens now (as of `updated`).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `per_sec`.
    pub fn new(burst: u32, per_sec: f64) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            per_sec: per_sec.max(0.0),
            tokens: capacity,
            updated: Instant::now(),
        }
    }

    /// Takes one token if there is one; `false` means the request must be refused.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// [`TokenBucket::try_take`] as of `now` (one clock reading for a burst of requests).
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available; zero if one is now. Takes nothing.
    pub fn time_to_token(&mut self) -> std::time::Duration {
        self.refill(Instant::now());
        if self.tokens >= 1.0 {
            std::time::Duration::ZERO
        } else if self.per_sec > 0.0 {
            std::time::Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        } else {
            // No refill at all: check again in a while.
            std::time::Duration::from_secs(3600)
        }
    }

    fn refill(&mut self, now: Instant) {
        // The frames of one read share one clock reading: nothing to add after the first.
        if now == self.updated {
            return;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_is_allowed_then_refused() {
        let mut bucket = TokenBucket::new(10, 5.0);
        for i in 0..10 {
            assert!(bucket.try_take(), "request {i} of the burst");
        }
        assert!(!bucket.try_take(), "eleventh request refused");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_refill_at_the_sustained_rate() {
        let mut bucket = TokenBucket::new(10, 5.0);
        while bucket.try_take() {}
        tokio::time::advance(Duration::from_millis(199)).await;
        assert!(!bucket.try_take(), "not yet a whole token after 199 ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(bucket.try_take(), "one token after 200 ms at 5/s");
        assert!(!bucket.try_take());
        tokio::time::advance(Duration::from_secs(1)).await;
        let taken = std::iter::from_fn(|| bucket.try_take().then_some(())).count();
        assert_eq!(taken, 5, "five tokens per second");
    }

    #[tokio::test(start_paused = true)]
    async fn time_to_token_says_when_the_next_token_is_due() {
        let mut bucket = TokenBucket::new(2, 5.0);
        assert_eq!(bucket.time_to_token(), Duration::ZERO);
        while bucket.try_take() {}
        let wait = bucket.time_to_token();
        assert!(wait > Duration::from_millis(199) && wait <= Duration::from_millis(200));
        tokio::time::advance(wait).await;
        assert!(bucket.try_take());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_pause_refills_only_up_to_the_burst() {
        let mut bucket = TokenBucket::new(10, 5.0);
        while bucket.try_take() {}
        tokio::time::advance(Duration::from_secs(3600)).await;
        let taken = std::iter::from_fn(|| bucket.try_take().then_some(())).count();
        assert_eq!(taken, 10);
    }
}
