//! Where messages are kept, behind a trait: the durable SQLite store ([`crate::store`]) or the
//! in-memory one ([`MemoryHistory`], `--history memory`).
//!
//! The hub owns one [`HistoryStore`] and calls it from its task. Writes are *asynchronous*: the
//! hub stamps a message (`mid`, `seq`, `ts`), hands it over with [`HistoryStore::append`] and
//! carries on; when the store has made it durable it reports a [`Done`] on the channel from
//! [`HistoryStore::completions`], and only then does the hub ack the sender and broadcast. A
//! store that keeps nothing on disk may answer [`Appended::Stored`] at once instead.
//!
//! Reads (join bursts, `history`, `search`, resend look-ups) are synchronous: they read what
//! has been committed. Conversations are keyed by the folded room name, or by [`dm_conv`] for a
//! pair of users.
//!
//! # Failures and epochs
//! When a write fails, every message handed over after it and before the hub hears of the
//! failure must fail too, or a room's sequence would have a hole. Each append carries the hub's
//! *epoch*; a failed batch makes the store refuse every later append of that epoch or older,
//! and the hub, on hearing of the failure, rewinds the sequences and starts the next epoch.
//!
//! # Layout
//! - this file: the trait, [`Record`], [`Page`], [`Done`], the conversation keys.
//! - `memory`: [`MemoryHistory`], the last N messages per conversation in memory.

mod memory;

use std::sync::Arc;

use chat_proto::message::Timestamp;
use chat_proto::server::{Ack, AckRef, ChatMessage, MessageRef};
use clap::ValueEnum;

pub use memory::MemoryHistory;

/// Which store the server keeps messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryKind {
    /// Durable: SQLite in the data directory; acked messages survive a crash.
    Sqlite,
    /// In memory: the last `--history-keep` messages per room, lost on restart.
    Memory,
}

/// The store failed; the hub answers `store_unavailable` and the message is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The backing store could not be read or written.
    #[error("message store unavailable: {0}")]
    Unavailable(String),
}

/// Who sent a message and where: the names every message one sender sends into one
/// conversation carries, kept once and shared by all of those records.
///
/// Why: with the names as separate shared strings, every message took four reference counts
/// (nick, folded nick, room name, conversation) and gave four back when the store forgot it;
/// those atomic updates were a sixth of the server's time per message. The hub keeps the
/// origin of a session's last message and reuses it while the names are the same (compared
/// by pointer first, then by content), so a message costs one count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The conversation: a folded room name (`#lobby`) or [`dm_conv`] of two folded nicks.
    pub conv: Arc<str>,
    /// See [`ChatMessage::room`]: the room's name as created, for a room message.
    pub room: Option<Arc<str>>,
    /// See [`ChatMessage::to`]: the recipient's nick, for a direct message.
    pub to: Option<Arc<str>>,
    /// See [`ChatMessage::from`].
    pub from: Arc<str>,
    /// The sender's folded nick: with a client id, unique in the store.
    pub sender_fold: Arc<str>,
}

/// Whether two shared names are the same: by pointer first (the usual case, one shared
/// string), then by content.
pub fn same_name(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

/// What is a message's own besides its names: the numbers the server gave it and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// See [`ChatMessage::mid`].
    pub mid: u64,
    /// See [`ChatMessage::seq`].
    pub seq: u64,
    /// See [`ChatMessage::ts`].
    pub ts: Timestamp,
    /// See [`ChatMessage::text`].
    pub text: String,
    /// See [`ChatMessage::action`].
    pub action: bool,
}

/// One stored message as delivered (`mid`, `seq`, `ts`, `from` set by the server) and what
/// identifies it besides its place in the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its names, shared with the sender's other messages into the same conversation.
    pub origin: Arc<Origin>,
    /// Its numbers and text.
    pub msg: StoredMessage,
    /// The client message id of the `send`, if it had one.
    pub client_id: Option<String>,
}

impl Record {
    /// A record of `msg` in `conv`, with names of its own (a message read back from disk).
    pub fn new(
        conv: &str,
        msg: ChatMessage,
        sender_fold: &str,
        client_id: Option<String>,
    ) -> Record {
        Record {
            origin: Arc::new(Origin {
                conv: Arc::from(conv),
                room: msg.room.map(Arc::from),
                to: msg.to.map(Arc::from),
                from: Arc::from(msg.from),
                sender_fold: Arc::from(sender_fold),
            }),
            msg: StoredMessage {
                mid: msg.mid,
                seq: msg.seq,
                ts: msg.ts,
                text: msg.text,
                action: msg.action,
            },
            client_id,
        }
    }

    /// See [`Origin::conv`].
    pub fn conv(&self) -> &Arc<str> {
        &self.origin.conv
    }

    /// See [`Origin::sender_fold`].
    pub fn sender_fold(&self) -> &Arc<str> {
        &self.origin.sender_fold
    }

    /// The message by reference, to encode.
    pub fn message_ref(&self) -> MessageRef<'_> {
        MessageRef {
            mid: self.msg.mid,
            room: self.origin.room.as_deref(),
            to: self.origin.to.as_deref(),
            from: &self.origin.from,
            seq: self.msg.seq,
            ts: self.msg.ts,
            text: &self.msg.text,
            action: self.msg.action,
        }
    }

    /// The message as the protocol type, for a page of history.
    pub fn to_message(&self) -> ChatMessage {
        self.message_ref().to_message()
    }

    /// The `ack` this message earned (or earns again, with `duplicate`), by reference: what the
    /// hub encodes for every message, without copying the fields.
    pub fn ack_ref(&self, duplicate: bool) -> AckRef<'_> {
        AckRef {
            id: self.client_id.as_deref(),
            mid: self.msg.mid,
            room: self.origin.room.as_deref(),
            to: self.origin.to.as_deref(),
            seq: self.msg.seq,
            ts: self.msg.ts,
            duplicate,
        }
    }

    /// The `ack` this message earned (or earns again, with `duplicate`, for a resend).
    pub fn ack(&self, duplicate: bool) -> Ack {
        Ack {
            id: self.client_id.clone(),
            mid: self.msg.mid,
            room: self.origin.room.as_deref().map(str::to_owned),
            to: self.origin.to.as_deref().map(str::to_owned),
            seq: self.msg.seq,
            ts: self.msg.ts,
            duplicate,
        }
    }
}

/// Messages, oldest first, and whether more exist beyond them in the direction asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The messages in increasing `seq`.
    pub messages: Vec<ChatMessage>,
    /// More messages exist beyond this page in the requested direction.
    pub more: bool,
}

/// How an append was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Already stored: the hub may ack and broadcast now.
    Stored,
    /// Queued for the writer: a [`Done`] will report it.
    Queued,
}

/// The outcome of the next `count` queued appends, in the order they were handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// How many appends this reports (the oldest ones not reported yet).
    pub count: usize,
    /// `Ok`: committed (on disk). `Err`: none of them was stored.
    pub result: Result<(), HistoryError>,
}

/// Where messages are kept.
pub trait HistoryStore: Send {
    /// Hands over an accepted message; `epoch` is the hub's current epoch (see the module docs).
    /// `Err` means it was not taken at all (and no [`Done`] will report it).
    fn append(&mut self, record: Arc<Record>, epoch: u64) -> Result<Appended, HistoryError>;
    /// The channel on which queued appends are reported; `None` for a store that never queues,
    /// and after the first call.
    fn completions(&mut self) -> Option<tokio::sync::mpsc::Receiver<Done>>;
    /// Whether every append is stored as it is handed over ([`Appended::Stored`], never
    /// queued): the hub then acks and delivers at once, without keeping a pending copy.
    fn stores_at_once(&self) -> bool {
        false
    }
    /// Stores `record` at once (for a store that [`HistoryStore::stores_at_once`]); a refusal
    /// gives back the record's client id with the error, for the hub's answer. A store that
    /// cannot refuse overrides it, so that the hub keeps no copy of every id just in case.
    fn store_now(
        &mut self,
        record: Arc<Record>,
        epoch: u64,
    ) -> Result<(), (HistoryError, Option<String>)> {
        let client_id = record.client_id.clone();
        match self.append(record, epoch) {
            Ok(_) => Ok(()),
            Err(e) => Err((e, client_id)),
        }
    }
    /// The newest `n` committed messages with `seq < before`.
    fn before(&self, conv: &str, before: u64, n: usize) -> Result<Page, HistoryError>;
    /// The oldest `n` committed messages with `seq > after`.
    fn after(&self, conv: &str, after: u64, n: usize) -> Result<Page, HistoryError>;
    /// The highest `seq` ever stored for `conv` (0 when none): a conversation continues its
    /// sequence after a restart, or after retention deleted its messages.
    fn last_seq(&self, conv: &str) -> Result<u64, HistoryError>;
    /// The highest `mid` ever stored (0 when none).
    fn last_mid(&self) -> Result<u64, HistoryError>;
    /// The stored message that `sender_fold` sent with `client_id`, if any.
    fn find_sent(&self, sender_fold: &str, client_id: &str)
    -> Result<Option<Record>, HistoryError>;
    /// The newest `n` messages of `conv` containing every word of `query`, oldest first.
    fn search(&self, conv: &str, query: &str, n: usize) -> Result<Page, HistoryError>;
    /// The SQLite database that also keeps accounts and bans; `None` keeps them in memory.
    fn db_path(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// The conversation key of a direct conversation between two folded nicks, in either order.
///
/// Nicks never start with `#` and contain no whitespace, so this never equals a room key or
/// another pair's key.
pub fn dm_conv(a: &str, b: &str) -> String {
    if a <= b {
        format!("@{a} {b}")
    } else {
        format!("@{b} {a}")
    }
}

/// The words of a search query: split on anything that is not a letter or a digit, at most
/// `MAX_SEARCH_WORDS` of them. Empty when the query has no word at all.
pub fn search_words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_SEARCH_WORDS)
        .map(str::to_lowercase)
        .collect()
}

/// Most words of a search query that are used; the rest are ignored.
pub const MAX_SEARCH_WORDS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_keys_do_not_depend_on_the_order_and_never_look_like_rooms() {
        assert_eq!(dm_conv("bob", "alice"), dm_conv("alice", "bob"));
        assert_eq!(dm_conv("alice", "bob"), "@alice bob");
        assert!(!dm_conv("#x", "y").starts_with('#'));
    }

    #[test]
    fn search_words_drop_punctuation_and_fts_syntax() {
        assert_eq!(search_words("Tokio select!"), ["tokio", "select"]);
        assert_eq!(
            search_words("\"a\" OR b* NEAR(c) -d ^e"),
            ["a", "or", "b", "near", "c", "d", "e"]
        );
        assert!(search_words("*** \" ()").is_empty());
        assert_eq!(search_words("世界 ok"), ["世界", "ok"]);
    }
}
