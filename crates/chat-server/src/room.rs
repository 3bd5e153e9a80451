//! A room as plain data: its members, its topic and its next sequence number.
//!
//! The hub owns every [`Room`]; nothing here does IO or awaits.

use std::collections::BTreeSet;

use chat_proto::message::Timestamp;
use chat_proto::server::TopicInfo;

use crate::hub::SessionId;

/// One room.
#[derive(Debug, Clone)]
pub struct Room {
    /// The name as first created (e.g. `#Rust`); events carry it.
    pub name: String,
    /// Sessions in the room.
    pub members: BTreeSet<SessionId>,
    /// The topic; empty when none.
    pub topic: String,
    /// Who set the topic.
    pub topic_by: Option<String>,
    /// When the topic was set.
    pub topic_ts: Option<Timestamp>,
    /// The `seq` the next message gets.
    next_seq: u64,
}

impl Room {
    /// An empty room whose last message had `last_seq` (0 for a new room).
    pub fn new(name: String, last_seq: u64) -> Self {
        Room {
            name,
            members: BTreeSet::new(),
            topic: String::new(),
            topic_by: None,
            topic_ts: None,
            next_seq: last_seq + 1,
        }
    }

    /// Takes the next sequence number: strictly increasing and contiguous.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Gives back the sequence number just taken, when the message it was for was refused.
    pub fn untake_seq(&mut self, seq: u64) {
        if seq + 1 == self.next_seq {
            self.next_seq = seq;
        }
    }

    /// The `seq` of the last accepted message (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The topic as a `topic_info` answering request `id`.
    pub fn topic_info(&self, id: Option<String>) -> TopicInfo {
        TopicInfo {
            id,
            room: self.name.clone(),
            topic: self.topic.clone(),
            set_by: self.topic_by.clone(),
            ts: self.topic_ts,
            locked: false,
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
        assert_eq!(room.last_seq(), 5);
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
        room.untake_seq(seq);
        assert_eq!(room.take_seq(), seq, "no gap after a refusal");
        assert_eq!(room.take_seq(), seq + 1);
    }
}
