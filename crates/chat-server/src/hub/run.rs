//! A run: consecutive messages of one sender into one room, encoded into one buffer that every
//! member gets as it is, and their acks into one buffer for the sender.
//!
//! Why: a publisher's read carries dozens of `send`s, and delivering each message on its own
//! cost every recipient a connection lookup, a shared-buffer handle (two atomic operations), a
//! staging step and a slice for the writer, per message. That was about a fifth of the server's
//! time at 10 subscribers. A run pays those once per recipient for all the messages of one read.
//!
//! The frames inside are the same bytes, in the same order, as when each went on its own: a
//! client sees no difference. A run only ever holds messages that nothing else happened
//! between: the hub delivers it before any other frame goes anywhere (`Hub::deliver`), before
//! any request other than a `send`, and at the end of every command (one read's `send`s) and
//! of every turn (the store's reports). So its
//! recipients, the room's members when it is delivered, are the members each of its messages
//! went to. The lag bound still counts frames: a run of 30 is 30 frames in a queue.

use std::sync::Arc;

use bytes::Bytes;
use chat_proto::frame::HEADER_LEN;

use super::outbox::MAX_ITEM;
use super::{Hub, SessionId, settle};
use crate::history::same_name;
use crate::writer::split_frames;

/// A run delivers itself once its messages reach this many bytes (one item's worth).
const MAX_RUN: usize = MAX_ITEM / 2;

/// Consecutive messages of `sender` into room `key`, not delivered yet.
pub(super) struct Run {
    sender: SessionId,
    /// The room's folded name.
    key: Arc<str>,
    /// The last message's `seq`.
    seq: u64,
    /// The `message` frames, back to back.
    pub(super) messages: Vec<u8>,
    /// Frames in `messages`.
    message_frames: usize,
    /// The sender's `ack` frames, back to back.
    pub(super) acks: Vec<u8>,
    /// Frames in `acks`.
    ack_frames: usize,
}

/// Where a run's buffers ended before a message was appended, to take it back out.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    messages: usize,
    acks: usize,
}

impl Run {
    /// An empty run, with room for about `hint` (the last run's sizes, so a busy sender's
    /// buffers are allocated once per run instead of growing by doubling).
    fn new(sender: SessionId, key: &Arc<str>, hint: (usize, usize)) -> Self {
        Run {
            sender,
            key: Arc::clone(key),
            seq: 0,
            messages: Vec::with_capacity(hint.0.min(MAX_ITEM)),
            message_frames: 0,
            acks: Vec::with_capacity(hint.1.min(MAX_ITEM)),
            ack_frames: 0,
        }
    }

    /// The room's folded name.
    pub(super) fn key(&self) -> &Arc<str> {
        &self.key
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            messages: self.messages.len(),
            acks: self.acks.len(),
        }
    }

    /// Takes back what was appended since `mark`.
    pub(super) fn undo(&mut self, mark: Mark) {
        self.messages.truncate(mark.messages);
        self.acks.truncate(mark.acks);
    }

    /// Body length of the `message` frame appended since `mark`.
    pub(super) fn body_len_since(&self, mark: Mark) -> usize {
        (self.messages.len() - mark.messages).saturating_sub(HEADER_LEN)
    }

    /// Counts the message appended since `mark` (and its ack, if one was appended): its
    /// `seq` is the run's last.
    pub(super) fn add(&mut self, mark: Mark, seq: u64) {
        self.message_frames += 1;
        if self.acks.len() > mark.acks {
            self.ack_frames += 1;
        }
        self.seq = seq;
    }

    fn is_full(&self) -> bool {
        self.messages.len() >= MAX_RUN
    }
}

/// The buffer as shared bytes that hold little more than its length: a run begun with the
/// last run's capacity (up to 64 KiB) may hold one short message, and a queued buffer keeps
/// its whole allocation for as long as the slowest member holds it.
fn tight(mut buf: Vec<u8>) -> Bytes {
    if buf.capacity() > 2 * buf.len() + 1024 {
        buf.shrink_to_fit();
    }
    Bytes::from(buf)
}

impl Hub {
    /// The run of `sender` into room `key`, begun now if the current run is another's (which is
    /// delivered first).
    pub(super) fn run_for(&mut self, sender: SessionId, key: &Arc<str>) -> &mut Run {
        let same = self
            .run
            .as_ref()
            .is_some_and(|r| r.sender == sender && same_name(&r.key, key));
        if !same {
            self.deliver_run();
        }
        let hint = self.run_hint;
        self.run.get_or_insert_with(|| Run::new(sender, key, hint))
    }

    /// Delivers the run once it is as large as one queue item should be.
    pub(super) fn end_run_if_full(&mut self) {
        if self.run.as_ref().is_some_and(Run::is_full) {
            self.deliver_run();
        }
    }

    /// Delivers the current run, if any: the acks to the sender, the messages to the room's
    /// other members.
    pub(super) fn deliver_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        self.run_hint = (run.messages.len(), run.acks.len());
        let seq = Some((&*run.key, run.seq));
        if run.ack_frames > 0 {
            let acks = tight(run.acks);
            self.deliver_frames(run.sender, &acks, run.ack_frames, seq);
        }
        if run.message_frames == 0 {
            return;
        }
        let Some(room) = self.rooms.get(&*run.key) else {
            return;
        };
        // A reused list: no allocation per run.
        let mut others = std::mem::take(&mut self.recipients);
        others.clear();
        others.extend(room.members.iter().copied().filter(|&s| s != run.sender));
        if room.is_idle() {
            self.rooms.remove(&*run.key);
        }
        let messages = tight(run.messages);
        for &to in &others {
            self.deliver_frames(to, &messages, run.message_frames, seq);
        }
        self.recipients = others;
    }

    /// Delivers `buf`, `frames` whole frames (the last carrying `seq` in its room), to one
    /// connection: staged as one buffer, or frame by frame to a connection that takes single
    /// frames only (a text session).
    fn deliver_frames(
        &mut self,
        to: SessionId,
        buf: &Bytes,
        frames: usize,
        seq: Option<(&str, u64)>,
    ) {
        let Some(conn) = self.conns.get_mut(&to) else {
            return;
        };
        if conn.lagging {
            return;
        }
        if frames == 1 {
            return self.deliver(to, buf, seq);
        }
        if !conn.batches {
            let mut each = Vec::with_capacity(frames);
            split_frames(buf.clone(), &mut each);
            let last = each.len().saturating_sub(1);
            for (i, frame) in each.iter().enumerate() {
                self.deliver(to, frame, if i == last { seq } else { None });
            }
            return;
        }
        // Every frame of a run was held to `max_body` when it was appended.
        if conn.outbox.staged() > 0 && !conn.outbox.fits(buf) {
            // What is staged goes first, to keep the order.
            let queued = conn.outbox.flush(&conn.out_tx);
            settle(to, conn, queued, &mut self.lagged);
            if conn.lagging {
                return;
            }
        }
        if conn.outbox.waiting(&conn.out_tx) + frames > conn.out_tx.max_capacity() {
            conn.lagging = true;
            self.lagged.push(to);
            return;
        }
        if conn.outbox.staged() == 0 {
            self.dirty.push(to);
        }
        conn.outbox.stage_frames(buf, frames, seq);
        self.staged_frames += frames;
    }
}
