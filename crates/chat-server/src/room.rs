//! A room as plain data: its members, its topic and its sequence numbers.
//!
//! The hub owns every [`Room`]; nothing here does IO or awaits. A message takes its `seq` when
//! the hub hands it to the store and counts as *pending* until the store reports it; only then
//! is it *committed* (acked and broadcast). A room with pending messages is kept even when its
//! last member leaves, so a new join cannot reuse their sequence numbers.

use std::collections::BTreeSet;
use std::sync::Arc;

use chat_proto::message::Timestamp;
use chat_proto::server::TopicInfo;

use crate::hub::SessionId;

/// One room.
#[derive(Debug, Clone)]
pub struct Room {
    /// The name as first created (e.g. `#Rust`); events carry it.
    pub name: Arc<str>,
    /// Sessions in the room.
    pub members: BTreeSet<SessionId>,
    /// The topic; empty when none.
    pub topic: String,
    /// Who set the topic.
    pub topic_by: Option<String>,
    /// When the topic was set.
    pub topic_ts: Option<Timestamp>,
    /// Set by an operator: only operators change the topic.
    pub topic_locked: bool,
    /// The `seq` the next message gets.
    next_seq: u64,
    /// The highest committed `seq`: everything up to it is in the store and was broadcast.
    committed: u64,
    /// Messages handed to the store and not reported yet.
    pending: usize,
}

impl Room {
    /// An empty room whose last message had `last_seq` (0 for a new room).
    pub fn new(name: String, last_seq: u64) -> Self {
        Room {
            name: name.into(),
            members: BTreeSet::new(),
            topic: String::new(),
            topic_by: None,
            topic_ts: None,
            topic_locked: false,
            next_seq: last_seq + 1,
            committed: last_seq,
            pending: 0,
        }
    }

    /// Takes the next sequence number for a message handed to the store: strictly increasing
    /// and contiguous.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending += 1;
        seq
    }

    /// The store has the message with `seq`.
    pub fn commit(&mut self, seq: u64) {
        self.pending = self.pending.saturating_sub(1);
        self.committed = self.committed.max(seq);
    }

    /// The message with `seq` was refused. With `rewind`, `seq` is handed out again (every
    /// message after it was refused too, so the sequence stays without holes).
    pub fn refuse(&mut self, seq: u64, rewind: bool) {
        self.pending = self.pending.saturating_sub(1);
        if rewind {
            self.next_seq = self.next_seq.min(seq).max(self.committed + 1);
        }
    }

    /// The `seq` of the last committed message (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.committed
    }

    /// No member and nothing pending: the hub may forget the room.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending == 0
    }

    /// More than `limit` members (`limit` 0: never): presence in the room is not announced to
    /// it (`--presence-limit`, PROTOCOL.md section 7.3).
    pub fn is_large(&self, limit: usize) -> bool {
        limit != 0 && self.members.len() > limit
    }

    /// The topic as a `topic_info` answering request `id`.
    pub fn topic_info(&self, id: Option<String>) -> TopicInfo {
        TopicInfo {
            id,
            room: self.name.to_string(),
            topic: self.topic.clone(),
            set_by: self.topic_by.clone(),
            ts: self.topic_ts,
            locked: self.topic_locked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_are_contiguous_from_one() {
        let mut room = Room::new("#r".into(), 0);
        let seqs: Vec<u64> = (0..5).map(|_| room.take_seq()).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(room.last_seq(), 0, "nothing committed yet");
        assert!(!room.is_idle(), "pending messages keep the room");
        seqs.iter().for_each(|&s| room.commit(s));
        assert_eq!(room.last_seq(), 5);
        assert!(room.is_idle());
    }

    #[test]
    fn a_room_is_large_above_the_limit_and_never_with_no_limit() {
        let mut room = Room::new("#r".into(), 0);
        room.members.extend([1, 2, 3]);
        assert!(!room.is_large(3), "at the limit it is still small");
        assert!(room.is_large(2));
        assert!(!room.is_large(0), "0 means no limit");
    }

    #[test]
    fn a_recreated_room_continues_its_sequence() {
        let mut room = Room::new("#r".into(), 41);
        assert_eq!(room.last_seq(), 41);
        assert_eq!(room.take_seq(), 42);
    }

    #[test]
    fn a_refused_message_gives_its_seq_back() {
        let mut room = Room::new("#r".into(), 0);
        let seq = room.take_seq();
        room.refuse(seq, true);
        assert_eq!(room.take_seq(), seq, "no gap after a refusal");
        assert_eq!(room.take_seq(), seq + 1);
    }

    #[test]
    fn a_failed_batch_rewinds_to_its_first_seq() {
        let mut room = Room::new("#r".into(), 10);
        let s: Vec<u64> = (0..4).map(|_| room.take_seq()).collect();
        room.commit(s[0]);
        // 12 and 13 failed in one batch; 14 was queued behind them and is refused unwritten.
        room.refuse(s[1], true);
        room.refuse(s[2], true);
        room.refuse(s[3], false);
        assert_eq!(room.last_seq(), 11);
        assert_eq!(room.take_seq(), 12);
        assert!(!room.is_idle());
    }
}
