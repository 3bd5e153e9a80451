//! One connection's side of the hub's fan-out: the frames of the current hub turn, staged to go
//! out as one queue item, and how many frames its outbound queue holds.
//!
//! Why: a `try_send` on a tokio `mpsc` costs a semaphore permit, a list push and a waker wake-up;
//! done once per delivery it was a third of the hub's time at 100 subscribers. The hub now
//! stages everything it produces for a connection during one turn (a burst of commands, see
//! [`super::Hub::run`]) and queues it once at the end of the turn, copied into one buffer, which
//! the writer then writes as it is (a lone queue item is never copied again).
//!
//! The lag policy still counts *frames*, not queue items: the outbound queue's bound
//! (`--outbound-queue`) is the number of frames a connection may have waiting. The hub numbers
//! the items it queues and remembers those carrying more than one frame; from the channel's free
//! capacity it knows how many items are still waiting, hence which of those, so it knows the
//! frames waiting without any help from the writer (a single-frame item costs no bookkeeping). A frame that would go beyond the bound makes the connection lagged, exactly as a full
//! queue did when every frame was its own item; the frames staged before it still go out.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Most bytes in one queue item; beyond, the staged frames are queued and a new item begins.
pub(super) const MAX_ITEM: usize = 64 * 1024;
/// Frames larger than this are queued as their own item, never copied.
pub(super) const COPY_MAX: usize = 16 * 1024;

/// What queuing an item did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// Nothing was staged.
    Nothing,
    /// Queued; the connection's per-room `seq`s staged with it now count as delivered.
    Sent(Vec<(String, u64)>),
    /// The queue had no free item: the connection is lagged.
    Full,
    /// The connection is closing.
    Closed,
}

/// One connection's staged frames and queue accounting.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// The first staged frame, kept as it is while it is the only one (no copy).
    one: Option<Bytes>,
    /// Two or more staged frames, copied together.
    many: BytesMut,
    /// Frames staged.
    frames: usize,
    /// Per folded room name, the last `seq` staged.
    seqs: Vec<(String, u64)>,
    /// Items queued by the hub so far (the next item's number).
    sent: u64,
    /// Items of more than one frame maybe not yet taken by the writer, oldest first: the item's
    /// number and its frames beyond the first.
    multi: VecDeque<(u64, u32)>,
    /// Sum of the frames beyond the first in `multi`.
    extra: usize,
}

impl Outbox {
    /// Frames staged and not yet queued.
    pub(super) fn staged(&self) -> usize {
        self.frames
    }

    /// Bytes staged and not yet queued.
    pub(super) fn staged_bytes(&self) -> usize {
        self.one.as_ref().map_or(self.many.len(), Bytes::len)
    }

    /// Frames waiting for this connection: queued (as far as the hub knows) and staged. Items
    /// the writer has taken no longer count.
    pub(super) fn waiting(&mut self, tx: &mpsc::Sender<Bytes>) -> usize {
        // Items in the channel; the session's own (a `pong`) make this count high, never low.
        let items = tx.max_capacity() - tx.capacity();
        let taken = self.sent.saturating_sub(items as u64);
        while let Some(&(item, n)) = self.multi.front() {
            if item >= taken {
                break;
            }
            self.extra -= n as usize;
            self.multi.pop_front();
        }
        if self.multi.is_empty() && self.multi.capacity() > 16 {
            // An idle connection keeps no record of its last burst.
            self.multi = VecDeque::new();
        }
        items + self.extra + self.frames
    }

    /// Whether `frame` should be queued on its own rather than staged (a large frame).
    pub(super) fn is_large(frame: &Bytes) -> bool {
        frame.len() > COPY_MAX
    }

    /// Whether `frame` fits the item being staged.
    pub(super) fn fits(&self, frame: &Bytes) -> bool {
        self.frames == 0 || self.staged_bytes() + frame.len() <= MAX_ITEM
    }

    /// Stages a frame; `seq` is the room sequence it carries.
    pub(super) fn stage(&mut self, frame: &Bytes, seq: Option<(&str, u64)>) {
        match self.frames {
            0 => self.one = Some(frame.clone()),
            _ => {
                if let Some(first) = self.one.take() {
                    // Room for a burst of similar frames: growing by reallocation was a third
                    // of staging's cost.
                    let room = ((first.len() + frame.len()) * 8).min(MAX_ITEM);
                    self.many = BytesMut::with_capacity(room);
                    self.many.extend_from_slice(&first);
                }
                self.many.extend_from_slice(frame);
            }
        }
        self.frames += 1;
        if let Some((key, s)) = seq {
            match self.seqs.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = s,
                None => self.seqs.push((key.to_owned(), s)),
            }
        }
    }

    /// Nothing staged and no item of several frames queued: every queued item is one frame, so
    /// a full channel is exactly a full queue and [`Outbox::send_now`] needs no
    /// [`Outbox::waiting`] first.
    pub(super) fn is_plain(&self) -> bool {
        self.frames == 0 && self.multi.is_empty()
    }

    /// Queues one frame as its own item at once (nothing may be staged), without waiting; its
    /// room sequence is the caller's to book.
    pub(super) fn send_now(&mut self, tx: &mpsc::Sender<Bytes>, frame: &Bytes) -> Queued {
        debug_assert_eq!(self.frames, 0, "staged frames go first");
        match tx.try_send(frame.clone()) {
            Ok(()) => {
                self.sent += 1;
                Queued::Sent(Vec::new())
            }
            Err(TrySendError::Full(_)) => Queued::Full,
            Err(TrySendError::Closed(_)) => Queued::Closed,
        }
    }

    /// Queues what is staged as one item, without waiting.
    pub(super) fn flush(&mut self, tx: &mpsc::Sender<Bytes>) -> Queued {
        if self.frames == 0 {
            return Queued::Nothing;
        }
        let item = match self.one.take() {
            Some(one) => one,
            // Taken whole: the buffer goes with the item, an idle connection keeps none.
            None => std::mem::take(&mut self.many).freeze(),
        };
        let frames = std::mem::take(&mut self.frames);
        let seqs = std::mem::take(&mut self.seqs);
        match tx.try_send(item) {
            Ok(()) => {
                if frames > 1 {
                    let beyond = u32::try_from(frames - 1).unwrap_or(u32::MAX);
                    self.multi.push_back((self.sent, beyond));
                    self.extra += beyond as usize;
                }
                self.sent += 1;
                Queued::Sent(seqs)
            }
            Err(TrySendError::Full(_)) => Queued::Full,
            Err(TrySendError::Closed(_)) => Queued::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn a_turns_frames_go_out_as_one_item_in_order() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Outbox::default();
        out.stage(&frame(1, 3), Some(("#a", 5)));
        out.stage(&frame(2, 2), None);
        out.stage(&frame(3, 1), Some(("#a", 6)));
        assert_eq!(out.waiting(&tx), 3);
        assert_eq!(out.flush(&tx), Queued::Sent(vec![("#a".into(), 6)]));
        assert_eq!(rx.try_recv().unwrap(), Bytes::from(vec![1, 1, 1, 2, 2, 3]));
        assert!(rx.try_recv().is_err(), "one item for the whole turn");
        assert_eq!(out.flush(&tx), Queued::Nothing);
    }

    #[test]
    fn a_frame_sent_at_once_counts_as_waiting_like_a_staged_one() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Outbox::default();
        let f = frame(7, 10);
        assert_eq!(out.send_now(&tx, &f), Queued::Sent(Vec::new()));
        assert_eq!(out.waiting(&tx), 1);
        assert_eq!(rx.try_recv().unwrap().as_ptr(), f.as_ptr());
        assert_eq!(out.waiting(&tx), 0);
    }

    #[test]
    fn a_lone_frame_is_queued_as_it_is() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Outbox::default();
        let f = frame(7, 100);
        out.stage(&f, None);
        out.flush(&tx);
        let got = rx.try_recv().unwrap();
        assert_eq!(got.as_ptr(), f.as_ptr(), "shared, not copied");
    }

    #[test]
    fn waiting_counts_frames_until_the_writer_takes_their_item() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Outbox::default();
        for _ in 0..3 {
            out.stage(&frame(1, 10), None);
        }
        out.flush(&tx);
        out.stage(&frame(2, 10), None);
        out.flush(&tx);
        out.stage(&frame(3, 10), None);
        assert_eq!(out.waiting(&tx), 5, "3 + 1 queued, 1 staged");
        rx.try_recv().unwrap();
        assert_eq!(out.waiting(&tx), 2, "the writer took the item of 3");
        rx.try_recv().unwrap();
        assert_eq!(out.waiting(&tx), 1);
    }

    #[test]
    fn a_full_queue_reports_full_and_a_closed_one_closed() {
        let (tx, rx) = mpsc::channel(1);
        let mut out = Outbox::default();
        out.stage(&frame(1, 1), None);
        assert!(matches!(out.flush(&tx), Queued::Sent(_)));
        out.stage(&frame(1, 1), Some(("#a", 1)));
        assert_eq!(out.flush(&tx), Queued::Full);
        drop(rx);
        out.stage(&frame(1, 1), None);
        assert_eq!(out.flush(&tx), Queued::Closed);
    }

    #[test]
    fn an_item_stops_at_its_byte_limit() {
        let mut out = Outbox::default();
        let big = frame(1, COPY_MAX);
        let mut staged = 0;
        while out.fits(&big) {
            out.stage(&big, None);
            staged += 1;
        }
        assert_eq!(staged, MAX_ITEM / COPY_MAX);
        assert!(Outbox::is_large(&frame(1, COPY_MAX + 1)));
    }
}
