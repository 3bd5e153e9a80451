//! One connection's side of the hub's fan-out: the frames of the current hub turn, staged to go
//! out as one queue item, and how many frames its outbound queue holds.
//!
//! Why: a `try_send` on a tokio `mpsc` costs a semaphore permit, a list push and a waker wake-up;
//! done once per delivery it was a third of the hub's time at 100 subscribers, and half of it
//! at 1000. The hub now stages everything it produces for a connection during one turn (a burst
//! of commands, see [`super::Hub::run`]) and queues it once at the end of the turn as one
//! [`Item`]. Staging keeps handles to the shared frames, never copies: a message to 10,000
//! members stays one buffer, however many queues hold it.
//!
//! The lag policy counts *frames*, not queue items: the outbound queue's bound
//! (`--outbound-queue`) is the number of frames a connection may have waiting, and the queue
//! itself counts the frames it holds ([`queue::Sender::frames`]). A frame that would go beyond
//! the bound makes the connection lagged, exactly as a full queue did when every frame was its
//! own item; the frames staged before it still go out.

use crate::queue::{self, TrySendError};
use crate::writer::Item;
use bytes::Bytes;

/// Most bytes in one queue item; beyond, the staged frames are queued and a new item begins.
pub(super) const MAX_ITEM: usize = 64 * 1024;
/// Room for this many frames is made when a connection's staging begins (it grows beyond).
const FIRST_STAGE: usize = 16;
/// Most frames room is made for at first, however large the last item was.
const MAX_FIRST_STAGE: usize = 4096;

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
    /// The buffers staged this turn, in order, shared with their other recipients: each one
    /// frame, or several for a run of messages (see `super::run`).
    staged: Vec<Bytes>,
    /// Frames in `staged`.
    frames: usize,
    /// Bytes staged.
    bytes: usize,
    /// Per folded room name, the last `seq` staged.
    seqs: Vec<(String, u64)>,
    /// Buffers in the last item queued: the next turn's list starts with room for about as many,
    /// instead of growing by doubling (each step a copy) through every busy turn.
    recent: usize,
}

impl Outbox {
    /// Frames staged and not yet queued.
    pub(super) fn staged(&self) -> usize {
        self.frames
    }

    /// Frames waiting for this connection: queued and staged. Frames the writer has taken no
    /// longer count.
    pub(super) fn waiting(&self, tx: &queue::Sender) -> usize {
        tx.frames() + self.frames
    }

    /// Whether `frame` fits the item being staged.
    pub(super) fn fits(&self, frame: &Bytes) -> bool {
        self.staged.is_empty() || self.bytes + frame.len() <= MAX_ITEM
    }

    /// Stages a frame; `seq` is the room sequence it carries.
    pub(super) fn stage(&mut self, frame: &Bytes, seq: Option<(&str, u64)>) {
        self.stage_frames(frame, 1, seq);
    }

    /// Stages a buffer of `frames` whole frames; `seq` is the last room sequence they carry.
    pub(super) fn stage_frames(&mut self, buf: &Bytes, frames: usize, seq: Option<(&str, u64)>) {
        if self.staged.capacity() == 0 {
            let guess = self.recent + self.recent / 4;
            self.staged
                .reserve_exact(guess.clamp(FIRST_STAGE, MAX_FIRST_STAGE));
        }
        self.staged.push(buf.clone());
        self.frames += frames;
        self.bytes += buf.len();
        if let Some((key, s)) = seq {
            match self.seqs.iter_mut().find(|(k, _)| same_key(k, key)) {
                Some(slot) => slot.1 = s,
                None => self.seqs.push((key.to_owned(), s)),
            }
        }
    }

    /// Nothing staged: [`Outbox::send_now`] may queue a frame at once (the queue's own bound
    /// then decides whether it fits).
    pub(super) fn is_plain(&self) -> bool {
        self.staged.is_empty()
    }

    /// Queues one frame as its own item at once (nothing may be staged), without waiting; its
    /// room sequence is the caller's to book.
    pub(super) fn send_now(&mut self, tx: &queue::Sender, frame: &Bytes) -> Queued {
        debug_assert!(self.staged.is_empty(), "staged frames go first");
        match tx.try_send(Item::One(frame.clone())) {
            Ok(()) => Queued::Sent(Vec::new()),
            Err(TrySendError::Full(_)) => Queued::Full,
            Err(TrySendError::Closed(_)) => Queued::Closed,
        }
    }

    /// Queues what is staged as one item, without waiting.
    pub(super) fn flush(&mut self, tx: &queue::Sender) -> Queued {
        let (bufs, frames) = (self.staged.len(), self.frames);
        let item = match (bufs, frames) {
            (0, _) => return Queued::Nothing,
            // The list stays for the next turn; one frame goes as it is.
            (1, 1) => match self.staged.pop() {
                Some(frame) => Item::One(frame),
                None => return Queued::Nothing,
            },
            // Taken whole: the list goes with the item, an idle connection keeps none.
            _ => Item::Many {
                bufs: std::mem::take(&mut self.staged),
                frames,
            },
        };
        self.bytes = 0;
        self.frames = 0;
        self.recent = bufs;
        let seqs = std::mem::take(&mut self.seqs);
        match tx.try_send(item) {
            Ok(()) => Queued::Sent(seqs),
            Err(TrySendError::Full(_)) => Queued::Full,
            Err(TrySendError::Closed(_)) => Queued::Closed,
        }
    }
}

/// `a == b` for the short room keys compared at every staged frame, without a call to
/// `memcmp` (whose setup cost more than the comparison of a few bytes: a tenth of the hub's time
/// at 1000 subscribers).
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn a_turns_frames_go_out_as_one_item_in_order_and_are_not_copied() {
        let (tx, mut rx) = queue::channel(8);
        let mut out = Outbox::default();
        let frames = [frame(1, 3), frame(2, 2), frame(3, 1)];
        out.stage(&frames[0], Some(("#a", 5)));
        out.stage(&frames[1], None);
        out.stage(&frames[2], Some(("#a", 6)));
        assert_eq!(out.waiting(&tx), 3);
        assert_eq!(out.flush(&tx), Queued::Sent(vec![("#a".into(), 6)]));
        let item = rx.try_recv().unwrap().into_frames();
        assert_eq!(item, frames);
        assert!(
            item.iter()
                .zip(&frames)
                .all(|(a, b)| a.as_ptr() == b.as_ptr()),
            "shared with the other recipients, not copied"
        );
        assert!(rx.try_recv().is_err(), "one item for the whole turn");
        assert_eq!(out.flush(&tx), Queued::Nothing);
    }

    #[test]
    fn a_frame_sent_at_once_counts_as_waiting_like_a_staged_one() {
        let (tx, mut rx) = queue::channel(8);
        let mut out = Outbox::default();
        let f = frame(7, 10);
        assert_eq!(out.send_now(&tx, &f), Queued::Sent(Vec::new()));
        assert_eq!(out.waiting(&tx), 1);
        assert_eq!(rx.try_recv().unwrap(), Item::One(f));
        assert_eq!(out.waiting(&tx), 0);
    }

    #[test]
    fn a_buffer_of_several_frames_counts_as_its_frames() {
        let (tx, mut rx) = queue::channel(8);
        let mut out = Outbox::default();
        let run = frame(1, 30);
        out.stage_frames(&run, 3, Some(("#a", 9)));
        assert_eq!(out.waiting(&tx), 3);
        assert_eq!(out.flush(&tx), Queued::Sent(vec![("#a".into(), 9)]));
        assert_eq!(tx.frames(), 3, "the queue's bound sees three frames");
        let item = rx.try_recv().unwrap();
        assert_eq!(item.frames(), 3);
        let Item::Many { bufs, .. } = item else {
            panic!("a buffer of three frames is not an item of one");
        };
        assert_eq!(bufs[0].as_ptr(), run.as_ptr(), "shared, not copied");
    }

    #[test]
    fn a_lone_frame_is_queued_as_it_is() {
        let (tx, mut rx) = queue::channel(8);
        let mut out = Outbox::default();
        let f = frame(7, 100);
        out.stage(&f, None);
        out.flush(&tx);
        let Item::One(got) = rx.try_recv().unwrap() else {
            panic!("a lone frame is an item of one");
        };
        assert_eq!(got.as_ptr(), f.as_ptr(), "shared, not copied");
    }

    #[test]
    fn waiting_counts_frames_until_the_writer_takes_their_item() {
        let (tx, mut rx) = queue::channel(8);
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
        let (tx, rx) = queue::channel(1);
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
        let big = frame(1, 16 * 1024);
        let mut staged = 0;
        while out.fits(&big) {
            out.stage(&big, None);
            staged += 1;
        }
        assert_eq!(staged, MAX_ITEM / (16 * 1024));
        let huge = frame(1, 2 * MAX_ITEM);
        assert!(Outbox::default().fits(&huge), "a frame alone always fits");
    }
}
