//! A connection's outbound queue: the hub (and the session) put [`Item`]s in, the writer task
//! takes them out. Bounded in *frames*, allocated only while something waits.
//!
//! Why not a tokio `mpsc`: an idle connection's queue is most of what it costs the server. A
//! tokio channel allocates its first block of 32 slots when the first item is sent and keeps it
//! (with its cache-padded ends that is ~1.8 KB per connection, a third of an idle connection's
//! memory); this one is a `VecDeque` behind a mutex that frees its buffer whenever the writer
//! finds it empty, so a connection that has nothing to write keeps ~100 bytes. And because it
//! knows what it holds, it counts frames, not items: the lag bound (`--outbound-queue`) is the
//! number of frames a connection may have waiting, although one item carries a whole hub turn,
//! and the hub reads that number here instead of keeping its own books.
//!
//! The mutex is held only for a push or a pop (never across an `.await`), by at most two
//! parties (the hub or the session on one side, the writer on the other); the writer is woken
//! through an [`AtomicWaker`]. Senders never wait: [`Sender::try_send`] refuses an item that
//! would go beyond the bound, and the hub then treats the connection as lagged.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use crate::writer::Item;

/// A queue bounded to `bound` frames (at least one).
pub fn channel(bound: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            closed: false,
        }),
        frames: AtomicUsize::new(0),
        waker: AtomicWaker::new(),
        bound: bound.max(1),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

/// Why [`Sender::try_send`] gave the item back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// It would put more frames in the queue than its bound.
    Full(Item),
    /// The writer is gone or finishing: nothing more is taken.
    Closed(Item),
}

/// Why [`Receiver::try_recv`] has no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing waits now.
    Empty,
    /// Nothing waits and every sender is gone.
    Disconnected,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Frames in `state.items`: changed only under the lock, read without it (the hub reads it
    /// before every delivery, to apply the lag bound).
    frames: AtomicUsize,
    /// The writer's waker, while it waits for an item.
    waker: AtomicWaker,
    /// Most frames waiting at once.
    bound: usize,
}

#[derive(Debug)]
struct State {
    /// Waiting items, oldest first.
    items: VecDeque<Item>,
    /// Live [`Sender`]s; at zero the receiver sees the end once `items` is empty.
    senders: usize,
    /// The receiver closed or went away: sends are refused.
    closed: bool,
}

impl Shared {
    /// The state; a panic elsewhere while it was held leaves it consistent (every change is a
    /// push or a pop with its count), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the oldest item, with its frames off the count (`state` is this queue's, locked).
    fn pop(&self, state: &mut State) -> Option<Item> {
        let item = state.items.pop_front()?;
        // Changed only under the lock, so a load and a store (no atomic read-modify-write).
        let frames = self.frames.load(Ordering::Relaxed);
        self.frames.store(frames - item.frames(), Ordering::Release);
        Some(item)
    }
}

/// The sending end: held by the session and, once registered, by the hub.
#[derive(Debug)]
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `item` unless that would put more than the bound's frames in the queue (a lone
    /// item larger than the bound still fits an empty queue), or the receiver is closed.
    pub fn try_send(&self, item: Item) -> Result<(), TrySendError> {
        let frames = item.frames();
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(TrySendError::Closed(item));
            }
            let waiting = self.shared.frames.load(Ordering::Acquire);
            if waiting > 0 && waiting + frames > self.shared.bound {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
            self.shared
                .frames
                .store(waiting + frames, Ordering::Release);
        }
        self.shared.waker.wake();
        Ok(())
    }

    /// Frames waiting in the queue (taken by the writer no longer count).
    pub fn frames(&self) -> usize {
        self.shared.frames.load(Ordering::Acquire)
    }

    /// The bound: most frames waiting at once.
    pub fn max_capacity(&self) -> usize {
        self.shared.bound
    }

    /// Frames that may still be queued now.
    pub fn capacity(&self) -> usize {
        self.shared.bound.saturating_sub(self.frames())
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.waker.wake();
        }
    }
}

/// The receiving end: the writer's.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// The oldest item, waiting for one; `None` once every sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<Item> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The oldest item, if one waits.
    pub fn try_recv(&mut self) -> Result<Item, TryRecvError> {
        let mut state = self.shared.lock();
        match self.shared.pop(&mut state) {
            Some(item) => Ok(item),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        match self.try_recv() {
            Ok(item) => return Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        // Registered before the second look, so an item pushed in between wakes us.
        self.shared.waker.register(cx.waker());
        let mut state = self.shared.lock();
        match self.shared.pop(&mut state) {
            Some(item) => Poll::Ready(Some(item)),
            None if state.senders == 0 => Poll::Ready(None),
            None => {
                // Going idle: an idle connection keeps no buffer.
                state.items = VecDeque::new();
                Poll::Pending
            }
        }
    }

    /// Frames waiting (read without the lock).
    pub fn frames(&self) -> usize {
        self.shared.frames.load(Ordering::Acquire)
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses further items; those already queued can still be taken.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        // Nobody will take them: the frames' memory goes now, not when the last sender does.
        state.items = VecDeque::new();
        self.shared.frames.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn one(byte: u8) -> Item {
        Item::One(Bytes::from(vec![byte]))
    }

    fn many(n: usize) -> Item {
        Item::many((0..n).map(|i| Bytes::from(vec![i as u8])).collect())
    }

    #[test]
    fn the_bound_counts_frames_not_items() {
        let (tx, mut rx) = channel(5);
        tx.try_send(many(3)).unwrap();
        assert_eq!(tx.frames(), 3);
        assert_eq!(tx.capacity(), 2);
        assert!(matches!(tx.try_send(many(3)), Err(TrySendError::Full(_))));
        tx.try_send(many(2)).unwrap();
        assert!(matches!(tx.try_send(one(1)), Err(TrySendError::Full(_))));
        assert_eq!(rx.try_recv().unwrap().frames(), 3, "oldest first");
        assert_eq!(tx.frames(), 2, "taken frames no longer count");
        tx.try_send(one(9)).unwrap();
        assert_eq!(rx.len(), 2);
    }

    #[test]
    fn an_item_larger_than_the_bound_fits_an_empty_queue_only() {
        let (tx, mut rx) = channel(2);
        tx.try_send(many(4)).unwrap();
        assert!(matches!(tx.try_send(one(1)), Err(TrySendError::Full(_))));
        rx.try_recv().unwrap();
        tx.try_send(one(1)).unwrap();
        assert!(matches!(tx.try_send(many(4)), Err(TrySendError::Full(_))));
    }

    #[test]
    fn a_closed_queue_refuses_but_gives_what_it_holds() {
        let (tx, mut rx) = channel(8);
        tx.try_send(one(1)).unwrap();
        rx.close();
        assert!(matches!(tx.try_send(one(2)), Err(TrySendError::Closed(_))));
        assert_eq!(rx.try_recv(), Ok(one(1)));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(rx);
        assert!(matches!(tx.try_send(one(3)), Err(TrySendError::Closed(_))));
    }

    #[tokio::test]
    async fn recv_waits_for_an_item_and_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = channel(8);
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            let end = rx.recv().await;
            (first, second, end)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(one(1)).unwrap();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx2.try_send(one(2)).unwrap();
        drop(tx2);
        let (first, second, end) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by every send and by the last sender leaving")
            .unwrap();
        assert_eq!(first, Some(one(1)));
        assert_eq!(second, Some(one(2)));
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn a_queue_that_goes_idle_frees_its_buffer() {
        let (tx, mut rx) = channel(64);
        for i in 0..40 {
            tx.try_send(one(i)).unwrap();
        }
        assert!(rx.shared.lock().items.capacity() >= 40);
        for _ in 0..40 {
            rx.recv().await.unwrap();
        }
        let idle = tokio::time::timeout(Duration::from_millis(10), rx.recv()).await;
        assert!(idle.is_err(), "nothing to take");
        assert_eq!(rx.shared.lock().items.capacity(), 0, "no buffer while idle");
    }
}
