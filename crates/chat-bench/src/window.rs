//! Closed-loop flow control: at most `limit` messages in flight, where a message is in flight
//! until every subscriber has received it.
//!
//! Counting every delivery on one shared counter would make the load tool's own cache line the
//! bottleneck, so subscribers report per block of `block` messages: when a subscriber receives
//! the last message of a block it bumps that block's counter, and the subscriber that brings it
//! to `subs` marks the block complete and wakes the publisher.
//!
//! **Invariant:** blocks complete in order. Each connection delivers one publisher's messages in
//! order, so every subscriber finishes block `b` before block `b + 1`, and the last one to finish
//! `b` does so before the last one finishes `b + 1`. Hence at most `limit / block + 1` blocks are
//! open at once and a ring of `limit / block + 2` counters never mixes two blocks.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Shared between one publisher and its subscribers.
#[derive(Debug)]
pub struct Window {
    /// Subscribers that must receive a message before it leaves the window.
    subs: u32,
    /// Messages per block.
    block: u64,
    /// Most messages in flight.
    limit: u64,
    /// Per open block (ring), how many subscribers have finished it.
    counts: Vec<AtomicU32>,
    /// Blocks every subscriber has finished.
    completed: AtomicU64,
    /// Wakes the publisher when a block completes.
    notify: Notify,
}

impl Window {
    /// A window of at most `limit` messages in flight to `subs` subscribers.
    pub fn new(subs: u32, limit: u64) -> Self {
        let limit = limit.max(1);
        let block = (limit / 4).max(1);
        let ring = usize::try_from(limit / block + 2).unwrap_or(usize::MAX);
        Window {
            subs: subs.max(1),
            block,
            limit,
            counts: (0..ring).map(|_| AtomicU32::new(0)).collect(),
            completed: AtomicU64::new(0),
            notify: Notify::new(),
        }
    }

    /// A subscriber received message `seq` (sequences start at 0).
    pub fn on_delivery(&self, seq: u64) {
        if (seq + 1) % self.block != 0 {
            return;
        }
        let slot = usize::try_from((seq / self.block) % self.counts.len() as u64).unwrap_or(0);
        if self.counts[slot].fetch_add(1, Ordering::AcqRel) + 1 == self.subs {
            self.counts[slot].store(0, Ordering::Release);
            self.completed.fetch_add(1, Ordering::AcqRel);
            self.notify.notify_one();
        }
    }

    /// How many more messages may be published now, when `published` have been.
    pub fn room(&self, published: u64) -> u64 {
        let done = self.completed.load(Ordering::Acquire) * self.block;
        self.limit.saturating_sub(published.saturating_sub(done))
    }

    /// Waits until a block completes (returns at once if one completed since the last wait).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_opens_only_when_every_subscriber_finished_a_block() {
        let w = Window::new(2, 8); // blocks of 2
        assert_eq!(w.room(0), 8);
        assert_eq!(w.room(8), 0);
        w.on_delivery(0);
        w.on_delivery(1); // sub A finished block 0
        assert_eq!(w.room(8), 0);
        w.on_delivery(0);
        w.on_delivery(1); // sub B too
        assert_eq!(w.room(8), 2);
    }

    #[test]
    fn ring_slots_are_reused_across_many_blocks() {
        let w = Window::new(3, 4); // blocks of 1, ring of 6
        for seq in 0..100 {
            for _ in 0..3 {
                w.on_delivery(seq);
            }
            assert_eq!(w.room(seq + 1), 4, "after seq {seq}");
        }
    }
}
