//! Per-room message history behind a trait, so a durable store can replace the in-memory one.
//!
//! The hub owns one [`HistoryStore`] and calls it synchronously from its task: it appends every
//! accepted room message *before* acking or broadcasting it, and serves join bursts and
//! `history` requests from it. Rooms are keyed by their folded name (see [`chat_proto::nick`]).

use std::collections::{HashMap, VecDeque};

use chat_proto::server::ChatMessage;

/// The store failed; the hub answers `store_unavailable` and the message is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The backing store could not be read or written.
    #[error("history store unavailable: {0}")]
    Unavailable(String),
}

/// Messages, oldest first, and whether more exist beyond them in the direction asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The messages in increasing `seq`.
    pub messages: Vec<ChatMessage>,
    /// More messages exist beyond this page in the requested direction.
    pub more: bool,
}

/// Where room messages are kept.
pub trait HistoryStore: Send {
    /// Records an accepted message of `room`; its `seq` is above every stored one.
    fn append(&mut self, room: &str, msg: &ChatMessage) -> Result<(), HistoryError>;
    /// The newest `n` messages.
    fn latest(&self, room: &str, n: usize) -> Result<Page, HistoryError>;
    /// The newest `n` messages with `seq < before`.
    fn before(&self, room: &str, before: u64, n: usize) -> Result<Page, HistoryError>;
    /// The oldest `n` messages with `seq > after`.
    fn after(&self, room: &str, after: u64, n: usize) -> Result<Page, HistoryError>;
    /// The highest `seq` ever stored for `room` (0 when none), so a room that was emptied and
    /// removed continues its sequence when it is created again.
    fn last_seq(&self, room: &str) -> Result<u64, HistoryError>;
}

/// Keeps the last `keep` messages of every room in memory.
#[derive(Debug)]
pub struct MemoryHistory {
    /// Most messages kept per room; older ones are forgotten.
    keep: usize,
    /// Per room, messages in increasing `seq`.
    rooms: HashMap<String, VecDeque<ChatMessage>>,
}

impl MemoryHistory {
    /// An empty store keeping up to `keep` messages per room.
    pub fn new(keep: usize) -> Self {
        MemoryHistory {
            keep: keep.max(1),
            rooms: HashMap::new(),
        }
    }

    fn room(&self, room: &str) -> Option<&VecDeque<ChatMessage>> {
        self.rooms.get(room)
    }
}

impl HistoryStore for MemoryHistory {
    fn append(&mut self, room: &str, msg: &ChatMessage) -> Result<(), HistoryError> {
        let log = self.rooms.entry(room.to_owned()).or_default();
        if log.len() == self.keep {
            log.pop_front();
        }
        log.push_back(msg.clone());
        Ok(())
    }

    fn latest(&self, room: &str, n: usize) -> Result<Page, HistoryError> {
        self.before(room, u64::MAX, n)
    }

    fn before(&self, room: &str, before: u64, n: usize) -> Result<Page, HistoryError> {
        let Some(log) = self.room(room) else {
            return Ok(Page::default());
        };
        let end = log.partition_point(|m| m.seq < before);
        let start = end.saturating_sub(n);
        Ok(Page {
            messages: log.range(start..end).cloned().collect(),
            more: start > 0,
        })
    }

    fn after(&self, room: &str, after: u64, n: usize) -> Result<Page, HistoryError> {
        let Some(log) = self.room(room) else {
            return Ok(Page::default());
        };
        let start = log.partition_point(|m| m.seq <= after);
        let end = start.saturating_add(n).min(log.len());
        Ok(Page {
            messages: log.range(start..end).cloned().collect(),
            more: end < log.len(),
        })
    }

    fn last_seq(&self, room: &str) -> Result<u64, HistoryError> {
        Ok(self
            .room(room)
            .and_then(|log| log.back())
            .map_or(0, |m| m.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> ChatMessage {
        ChatMessage {
            mid: seq,
            room: Some("#r".into()),
            from: "alice".into(),
            seq,
            text: format!("m{seq}"),
            ..ChatMessage::default()
        }
    }

    fn store(n: u64, keep: usize) -> MemoryHistory {
        let mut h = MemoryHistory::new(keep);
        for seq in 1..=n {
            h.append("#r", &msg(seq)).unwrap();
        }
        h
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn latest_returns_the_newest_oldest_first() {
        let h = store(10, 1000);
        let page = h.latest("#r", 3).unwrap();
        assert_eq!(seqs(&page), vec![8, 9, 10]);
        assert!(page.more);
        let all = h.latest("#r", 50).unwrap();
        assert_eq!(all.messages.len(), 10);
        assert!(!all.more);
    }

    #[test]
    fn paging_back_with_before_walks_to_the_start() {
        let h = store(10, 1000);
        let mut before = u64::MAX;
        let mut seen = Vec::new();
        loop {
            let page = h.before("#r", before, 4).unwrap();
            let mut s = seqs(&page);
            s.extend(seen);
            seen = s;
            if !page.more {
                break;
            }
            before = page.messages[0].seq;
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn paging_forward_with_after_walks_to_the_end() {
        let h = store(10, 1000);
        let page = h.after("#r", 3, 4).unwrap();
        assert_eq!(seqs(&page), vec![4, 5, 6, 7]);
        assert!(page.more);
        let page = h.after("#r", 7, 4).unwrap();
        assert_eq!(seqs(&page), vec![8, 9, 10]);
        assert!(!page.more);
        let page = h.after("#r", 10, 4).unwrap();
        assert!(page.messages.is_empty() && !page.more);
    }

    #[test]
    fn only_the_last_keep_messages_are_kept() {
        let h = store(1500, 1000);
        let page = h.latest("#r", 2000).unwrap();
        assert_eq!(page.messages.len(), 1000);
        assert_eq!(page.messages[0].seq, 501);
        assert!(!page.more);
        assert_eq!(h.last_seq("#r").unwrap(), 1500);
    }

    #[test]
    fn an_unknown_room_is_empty() {
        let h = MemoryHistory::new(10);
        assert_eq!(h.latest("#nope", 5).unwrap(), Page::default());
        assert_eq!(h.last_seq("#nope").unwrap(), 0);
    }
}
