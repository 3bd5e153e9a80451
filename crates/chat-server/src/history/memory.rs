//! The in-memory store: the last N messages per conversation, gone when the server stops.
//!
//! Memory mode is ephemeral and bounded: besides `keep` messages per conversation, the store
//! holds at most [`MAX_BYTES`] of messages and [`MAX_CONVS`] conversations in all. Beyond
//! either, the conversation appended to least recently loses its whole history (and its last
//! `seq`: a room re-created after that starts again at 1, as after a restart). A busy room keeps
//! its history; a room nobody has written to for a long time is the first to go.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

// Keys here are room names and (nick, client id) pairs that clients choose: foldhash's
// `RandomState` gives every map its own random seed, so nobody can aim keys at one bucket
// without knowing it, and it hashes a short key for a fraction of SipHash's cost (std's
// `RandomState` was a tenth of the server's instructions per message).
use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::{Appended, Done, HistoryError, HistoryStore, Page, Record, search_words};

/// Bytes of messages kept in all conversations together, by default.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;
/// Conversations (rooms and direct conversations) kept, by default.
pub const MAX_CONVS: usize = 20_000;

/// Keeps the last `keep` messages of every conversation in memory, within a total budget.
/// Appends are stored at once.
///
/// An append is the server's hot path in memory mode, so it allocates nothing but the record's
/// shared box: one map entry per conversation holds its log, last `seq` and age, and the index
/// of client ids says where a record is (conversation number and `seq`) rather than holding
/// it: a count of the record per entry was two atomic updates per message, and comparing
/// entries read the forgotten record back from cold memory.
#[derive(Debug)]
pub struct MemoryHistory {
    /// Most messages kept per conversation; older ones are forgotten.
    keep: usize,
    /// Most bytes kept in all (approximate: texts, names and a fixed cost per message).
    max_bytes: usize,
    /// Most conversations kept.
    max_convs: usize,
    /// Bytes kept now, as `max_bytes` counts them.
    bytes: usize,
    /// The conversations kept.
    convs: HashMap<Arc<str>, Conv, RandomState>,
    /// The name of each kept conversation by its number ([`Conv::id`]).
    conv_names: HashMap<u64, Arc<str>, RandomState>,
    /// The number the next new conversation gets.
    next_conv_id: u64,
    /// Per tick of a last append, its conversation: oldest first.
    lru: BTreeMap<u64, Arc<str>>,
    tick: u64,
    /// Where the kept records that had a client id are, found by (sender fold, client id).
    sent: HashTable<Sent>,
    /// Seeds the hash of `sent`'s keys.
    sent_hasher: RandomState,
    last_mid: u64,
}

/// One conversation's messages and bookkeeping.
#[derive(Debug, Default)]
struct Conv {
    /// Its number, never reused: what the index of client ids knows it by.
    id: u64,
    /// Records in increasing `seq`.
    log: VecDeque<Kept>,
    /// The highest `seq` ever stored (it outlives forgotten messages, not an evicted
    /// conversation).
    last_seq: u64,
    /// The tick of its last append (its key in `lru`).
    touched: u64,
}

/// A kept record, with what forgetting it takes: the oldest record is forgotten on every
/// append to a full conversation, and reading its fields again to know its cost and its index
/// key was a cache miss each (an eighth of the store's time).
#[derive(Debug)]
struct Kept {
    record: Arc<Record>,
    /// Its `seq`, beside it for the same reason.
    seq: u64,
    /// Its [`cost`].
    cost: usize,
    /// The hash of its key in `sent`, if it has a client id.
    sent_hash: Option<u64>,
}

/// An entry of the index of client ids: where a record with one is.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// The hash of its (sender fold, client id).
    hash: u64,
    /// Its conversation's [`Conv::id`].
    conv: u64,
    seq: u64,
}

/// The hash of a key of the index of client ids.
fn sent_hash(hasher: &RandomState, sender_fold: &str, client_id: &str) -> u64 {
    hasher.hash_one((sender_fold, client_id))
}

/// What a record costs in [`MemoryHistory::bytes`].
fn cost(r: &Record) -> usize {
    const PER_RECORD: usize = 160;
    PER_RECORD
        + r.msg.text.len()
        + r.origin.from.len()
        + r.conv().len()
        + r.sender_fold().len()
        + r.client_id.as_ref().map_or(0, String::len)
        + r.origin.room.as_deref().map_or(0, str::len)
        + r.origin.to.as_deref().map_or(0, str::len)
}

impl MemoryHistory {
    /// An empty store keeping up to `keep` messages per conversation, within the default
    /// budget ([`MAX_BYTES`], [`MAX_CONVS`]).
    pub fn new(keep: usize) -> Self {
        Self::with_budget(keep, MAX_BYTES, MAX_CONVS)
    }

    /// An empty store keeping up to `keep` messages per conversation, `max_bytes` and
    /// `max_convs` conversations in all.
    pub fn with_budget(keep: usize, max_bytes: usize, max_convs: usize) -> Self {
        MemoryHistory {
            keep: keep.max(1),
            max_bytes,
            max_convs: max_convs.max(1),
            bytes: 0,
            convs: HashMap::default(),
            conv_names: HashMap::default(),
            next_conv_id: 0,
            lru: BTreeMap::new(),
            tick: 0,
            sent: HashTable::new(),
            sent_hasher: RandomState::default(),
            last_mid: 0,
        }
    }

    /// Bytes kept now (approximate), and conversations kept.
    pub fn usage(&self) -> (usize, usize) {
        (self.bytes, self.convs.len())
    }

    fn log(&self, conv: &str) -> Option<&VecDeque<Kept>> {
        self.convs.get(conv).map(|c| &c.log)
    }

    fn sent_hash(&self, sender_fold: &str, client_id: &str) -> u64 {
        sent_hash(&self.sent_hasher, sender_fold, client_id)
    }

    /// Indexes a record of conversation `conv` in `sent` by its client id, if it has one;
    /// returns the hash it is indexed by. (Not a method: the caller holds the conversation.)
    fn index(
        sent: &mut HashTable<Sent>,
        hasher: &RandomState,
        conv: u64,
        record: &Record,
    ) -> Option<u64> {
        let id = record.client_id.as_deref()?;
        let hash = sent_hash(hasher, record.sender_fold(), id);
        let entry = Sent {
            hash,
            conv,
            seq: record.msg.seq,
        };
        sent.insert_unique(hash, entry, |e| e.hash);
        Some(hash)
    }

    /// Forgets a record of conversation `conv` that leaves the store: its bytes and its index
    /// entry.
    fn forget(&mut self, conv: u64, old: &Kept) {
        self.bytes = self.bytes.saturating_sub(old.cost);
        if let Some(hash) = old.sent_hash {
            let at = |e: &Sent| e.conv == conv && e.seq == old.seq;
            if let Ok(entry) = self.sent.find_entry(hash, at) {
                entry.remove();
            }
        }
    }

    /// The kept record of conversation number `conv` with `seq`.
    fn record_at(&self, conv: u64, seq: u64) -> Option<&Record> {
        let log = self.log(self.conv_names.get(&conv)?)?;
        let i = log.binary_search_by_key(&seq, |k| k.seq).ok()?;
        log.get(i).map(|k| &*k.record)
    }

    fn over_budget(&self) -> bool {
        self.bytes > self.max_bytes || self.convs.len() > self.max_convs
    }

    /// Forgets the least recently appended conversations but `keep_conv` until within budget.
    fn evict(&mut self, keep_conv: &str) {
        while self.over_budget() {
            let victim = self.lru.values().find(|c| &***c != keep_conv).cloned();
            let Some(victim) = victim else {
                return;
            };
            let Some(conv) = self.convs.remove(&victim) else {
                return;
            };
            self.lru.remove(&conv.touched);
            self.conv_names.remove(&conv.id);
            for old in &conv.log {
                self.forget(conv.id, old);
            }
        }
    }
}

fn page<'a>(records: impl Iterator<Item = &'a Kept>, more: bool) -> Page {
    Page {
        messages: records.map(|k| k.record.to_message()).collect(),
        more,
    }
}

impl MemoryHistory {
    /// Keeps `record`: an append to memory cannot fail.
    fn insert(&mut self, record: Arc<Record>) {
        let cost = cost(&record);
        self.bytes += cost;
        self.last_mid = self.last_mid.max(record.msg.mid);
        let conv = match self.convs.get_mut(&**record.conv()) {
            Some(conv) => conv,
            None => {
                let id = self.next_conv_id;
                self.next_conv_id += 1;
                self.conv_names.insert(id, Arc::clone(record.conv()));
                let conv = Conv {
                    id,
                    ..Conv::default()
                };
                self.convs.entry(Arc::clone(record.conv())).or_insert(conv)
            }
        };
        let conv_id = conv.id;
        let sent_hash = Self::index(&mut self.sent, &self.sent_hasher, conv_id, &record);
        conv.last_seq = record.msg.seq;
        // The most recent conversation stays where it is in `lru` (the common case: one busy
        // room), so that costs nothing.
        if conv.touched != self.tick || conv.log.is_empty() {
            let name = self.lru.remove(&conv.touched);
            self.tick += 1;
            conv.touched = self.tick;
            self.lru
                .insert(self.tick, name.unwrap_or_else(|| Arc::clone(record.conv())));
        }
        let old = if conv.log.len() >= self.keep {
            conv.log.pop_front()
        } else {
            None
        };
        let seq = record.msg.seq;
        conv.log.push_back(Kept {
            record,
            seq,
            cost,
            sent_hash,
        });
        if let Some(old) = old {
            self.forget(conv_id, &old);
        }
        // The name is only needed past the budget: not cloning it saves two atomic updates of
        // a shared count per message. This conversation is the last one touched.
        if self.over_budget() {
            if let Some(name) = self.lru.get(&self.tick).cloned() {
                self.evict(&name);
            }
        }
    }
}

impl HistoryStore for MemoryHistory {
    fn append(&mut self, record: Arc<Record>, _epoch: u64) -> Result<Appended, HistoryError> {
        self.insert(record);
        Ok(Appended::Stored)
    }

    fn store_now(
        &mut self,
        record: Arc<Record>,
        _epoch: u64,
    ) -> Result<(), (HistoryError, Option<String>)> {
        self.insert(record);
        Ok(())
    }

    fn completions(&mut self) -> Option<tokio::sync::mpsc::Receiver<Done>> {
        None
    }

    fn stores_at_once(&self) -> bool {
        true
    }

    fn before(&self, conv: &str, before: u64, n: usize) -> Result<Page, HistoryError> {
        let Some(log) = self.log(conv) else {
            return Ok(Page::default());
        };
        let end = log.partition_point(|k| k.record.msg.seq < before);
        let start = end.saturating_sub(n);
        Ok(page(log.range(start..end), start > 0))
    }

    fn after(&self, conv: &str, after: u64, n: usize) -> Result<Page, HistoryError> {
        let Some(log) = self.log(conv) else {
            return Ok(Page::default());
        };
        let start = log.partition_point(|k| k.record.msg.seq <= after);
        let end = start.saturating_add(n).min(log.len());
        Ok(page(log.range(start..end), end < log.len()))
    }

    fn last_seq(&self, conv: &str) -> Result<u64, HistoryError> {
        Ok(self.convs.get(conv).map_or(0, |c| c.last_seq))
    }

    fn last_mid(&self) -> Result<u64, HistoryError> {
        Ok(self.last_mid)
    }

    fn find_sent(
        &self,
        sender_fold: &str,
        client_id: &str,
    ) -> Result<Option<Record>, HistoryError> {
        let hash = self.sent_hash(sender_fold, client_id);
        // The matching entry's record, kept as it is found (not looked up twice).
        let mut found = None;
        self.sent.find(hash, |e| {
            found = self.record_at(e.conv, e.seq).filter(|r| {
                **r.sender_fold() == *sender_fold && r.client_id.as_deref() == Some(client_id)
            });
            found.is_some()
        });
        Ok(found.cloned())
    }

    fn search(&self, conv: &str, query: &str, n: usize) -> Result<Page, HistoryError> {
        let words = search_words(query);
        let Some(log) = self.log(conv) else {
            return Ok(Page::default());
        };
        if words.is_empty() {
            return Ok(Page::default());
        }
        let mut hits: Vec<&Kept> = log
            .iter()
            .rev()
            .filter(|k| {
                let text = k.record.msg.text.to_lowercase();
                let found: Vec<&str> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                words.iter().all(|w| found.contains(&w.as_str()))
            })
            .take(n + 1)
            .collect();
        let more = hits.len() > n;
        hits.truncate(n);
        hits.reverse();
        Ok(page(hits.into_iter(), more))
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::server::ChatMessage;

    use super::*;

    fn record(seq: u64) -> Record {
        let msg = ChatMessage {
            mid: seq,
            room: Some("#r".into()),
            from: "alice".into(),
            seq,
            text: format!("m{seq}"),
            ..ChatMessage::default()
        };
        Record::new("#r", msg, "alice", Some(format!("c{seq}")))
    }

    fn store(n: u64, keep: usize) -> MemoryHistory {
        let mut h = MemoryHistory::new(keep);
        for seq in 1..=n {
            assert_eq!(
                h.append(Arc::new(record(seq)), 0).unwrap(),
                Appended::Stored
            );
        }
        h
    }

    #[test]
    fn a_resend_finds_its_own_record_after_other_conversations_come_and_go() {
        let mut h = MemoryHistory::with_budget(10, MAX_BYTES, 2);
        let put = |h: &mut MemoryHistory, conv: &str, seq: u64, id: &str| {
            let mut r = record(seq);
            Arc::make_mut(&mut r.origin).conv = conv.into();
            r.client_id = Some(id.into());
            h.append(Arc::new(r), 0).unwrap();
        };
        put(&mut h, "#a", 1, "a1");
        put(&mut h, "#b", 1, "b1");
        put(&mut h, "#b", 2, "b2");
        // A third conversation: #a, appended to least recently, goes with its index entries.
        put(&mut h, "#c", 1, "c1");
        assert!(h.find_sent("alice", "a1").unwrap().is_none());
        // #a again, from seq 1: a new conversation, whose entries are not the old one's.
        put(&mut h, "#a", 1, "a1-again");
        let found = |h: &MemoryHistory, id: &str| {
            h.find_sent("alice", id)
                .unwrap()
                .map(|r| (r.conv().to_string(), r.msg.seq))
        };
        assert_eq!(found(&h, "a1-again"), Some(("#a".into(), 1)));
        assert_eq!(found(&h, "a1"), None);
        assert_eq!(found(&h, "b2"), None, "#b went when #a came back");
        assert_eq!(found(&h, "c1"), Some(("#c".into(), 1)));
        assert!(
            h.find_sent("bob", "c1").unwrap().is_none(),
            "another sender's id"
        );
        assert_eq!(h.sent.len(), 2);
    }

    #[test]
    fn over_the_budget_the_conversation_just_written_to_keeps_its_message() {
        let mut h = MemoryHistory::with_budget(1000, 1000, 100);
        let big = |conv: &str| {
            let mut r = record(1);
            Arc::make_mut(&mut r.origin).conv = conv.into();
            r.msg.text = "x".repeat(2000);
            Arc::new(r)
        };
        let kept = |h: &MemoryHistory, conv: &str| h.after(conv, 0, 10).unwrap().messages.len();
        h.append(big("#a"), 0).unwrap();
        assert_eq!(kept(&h, "#a"), 1, "alone over budget, it stays");
        h.append(big("#b"), 0).unwrap();
        assert_eq!(
            (kept(&h, "#a"), kept(&h, "#b")),
            (0, 1),
            "the older room goes"
        );
    }

    #[test]
    fn many_rooms_keep_the_store_within_its_budget() {
        let mut h = MemoryHistory::with_budget(1000, 1024 * 1024, 100);
        for room in 0..500 {
            for seq in 1..=10 {
                let mut r = record(seq);
                Arc::make_mut(&mut r.origin).conv = format!("#r{room}").into();
                r.client_id = Some(format!("{room}-{seq}"));
                r.msg.text = "x".repeat(16 * 1024);
                h.append(Arc::new(r), 0).unwrap();
            }
            let (bytes, convs) = h.usage();
            assert!(
                bytes <= 1024 * 1024 && convs <= 100,
                "{bytes} bytes, {convs} rooms"
            );
        }
        assert!(h.sent.len() <= h.convs.values().map(|c| c.log.len()).sum());
        assert!(h.convs.len() <= 100 && h.lru.len() == h.convs.len());
        // The newest room is whole; the oldest is forgotten, seq and all.
        assert_eq!(h.before("#r499", 11, 50).unwrap().messages.len(), 10);
        assert_eq!(h.last_seq("#r0").unwrap(), 0);
        assert!(h.find_sent("alice", "0-1").unwrap().is_none());
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn before_returns_the_newest_oldest_first() {
        let h = store(10, 1000);
        let page = h.before("#r", u64::MAX, 3).unwrap();
        assert_eq!(seqs(&page), vec![8, 9, 10]);
        assert!(page.more);
        let all = h.before("#r", u64::MAX, 50).unwrap();
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
    fn only_the_last_keep_messages_are_kept_and_the_seq_goes_on() {
        let h = store(1500, 1000);
        let page = h.before("#r", u64::MAX, 2000).unwrap();
        assert_eq!(page.messages.len(), 1000);
        assert_eq!(page.messages[0].seq, 501);
        assert!(!page.more);
        assert_eq!(h.last_seq("#r").unwrap(), 1500);
        assert_eq!(h.last_mid().unwrap(), 1500);
        assert!(h.find_sent("alice", "c10").unwrap().is_none(), "forgotten");
        assert_eq!(
            h.find_sent("alice", "c1400").unwrap().unwrap().msg.seq,
            1400
        );
    }

    #[test]
    fn an_unknown_room_is_empty() {
        let h = MemoryHistory::new(10);
        assert_eq!(h.before("#nope", u64::MAX, 5).unwrap(), Page::default());
        assert_eq!(h.last_seq("#nope").unwrap(), 0);
    }

    #[test]
    fn search_finds_whole_words_newest_first_then_orders_by_seq() {
        let h = store(30, 1000);
        let page = h.search("#r", "M7", 10).unwrap();
        assert_eq!(seqs(&page), vec![7]);
        assert!(h.search("#r", "m", 10).unwrap().messages.is_empty());
    }
}
