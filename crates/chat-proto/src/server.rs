//! Messages the server sends to clients ("S→C").
//!
//! Events that go to many recipients (chat messages, joins, parts, ...) carry no per-recipient
//! field, so the server can encode each one once and share the bytes.
//!
//! # Layout
//! - this file: the message types, and their bodies as serde JSON.
//! - `per_message`: `message` and `ack`, sent for every chat message, encoded by hand.

mod per_message;

pub use per_message::{AckRef, MessageRef};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::kind;
use crate::limits::Limits;
use crate::message::{FileChunk, FileDone, Ping, Pong, Timestamp, json_body, wire_enum};

/// The session is open: your nick, the server's limits and the rooms you are in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Welcome {
    /// Server-assigned session id (unique while the server runs).
    pub session: u64,
    /// Your nick as the server will show it.
    pub nick: String,
    /// Server software and version, e.g. `chat-server/0.1.0`.
    pub server: String,
    /// Limits in force for this session.
    pub limits: Limits,
    /// The rooms you are in (`#lobby` for a new session); each is followed by its join burst.
    pub rooms: Vec<String>,
    /// Message of the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motd: Option<String>,
}

/// A request failed, or (for fatal codes) the connection is about to close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// The `id` of the request this answers, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation (untrusted text: sanitize before display).
    pub message: String,
}

/// Why the server sends a [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeCode {
    /// Plain information (answers to register, ban, ...).
    Info,
    /// The server is shutting down; the connection closes next.
    ShuttingDown,
    /// You fell behind: messages after `seqs` were not delivered; the connection closes next.
    Lagged,
    /// Replay of missed messages after resume was capped: page with `history` from `seqs`.
    MoreHistory,
    /// A notice this build does not know yet.
    #[serde(other)]
    Other,
}

/// Server text addressed to you.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What kind of notice.
    pub code: NoticeCode,
    /// Human-readable text.
    pub text: String,
    /// Per room, the last sequence number delivered to you (for `lagged` and `more_history`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seqs: BTreeMap<String, u64>,
    /// The `id` of the request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A delivered chat message, stamped by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned message id, unique on this server.
    pub mid: u64,
    /// The room, for a room message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The recipient's nick, for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The sender's nick at the time of sending.
    pub from: String,
    /// Sequence number: per room, or per pair of users for direct messages; strictly increasing.
    pub seq: u64,
    /// Server receive time.
    pub ts: Timestamp,
    /// The text (untrusted: sanitize before display).
    pub text: String,
    /// True for a `/me` action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
}

/// Your message was accepted and delivered with this sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ack {
    /// The client message id of the `send`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The assigned message id.
    pub mid: u64,
    /// The room, for a room message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The recipient, for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The assigned sequence number.
    pub seq: u64,
    /// The assigned timestamp.
    pub ts: Timestamp,
    /// True when this `id` was already accepted earlier: the message was not delivered again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Someone started or stopped typing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TypingEvent {
    /// The room, or absent for a direct conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Who is typing.
    pub from: String,
    /// True while typing.
    pub active: bool,
}

/// Someone joined a room (you too: that is your confirmation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Joined {
    /// `#room`.
    pub room: String,
    /// Who joined.
    pub nick: String,
    /// When.
    pub ts: Timestamp,
}

/// Someone left a room (you too: that is your confirmation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parted {
    /// `#room`.
    pub room: String,
    /// Who left.
    pub nick: String,
    /// Their reason, or why they were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    pub ts: Timestamp,
}

/// Someone changed nick; sent to everyone sharing a room with them, and to them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NickChanged {
    /// Previous nick.
    pub old: String,
    /// New nick.
    pub new: String,
    /// When.
    pub ts: Timestamp,
}

/// Someone left the server; sent to everyone sharing a room with them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuitEvent {
    /// Who left.
    pub nick: String,
    /// Their reason (`connection closed`, `lagged`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    pub ts: Timestamp,
}

/// A room's topic: the answer to `topic`, and the event when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The `id` of the request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// The topic; empty when none is set.
    pub topic: String,
    /// Who set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,
    /// When it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
    /// Only operators may change a locked topic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
}

/// One row of a [`RoomList`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoomSummary {
    /// `#room`.
    pub name: String,
    /// Members online.
    pub members: u32,
    /// Topic; empty when none.
    pub topic: String,
}

/// The rooms on the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoomList {
    /// The `id` of the request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Rooms, sorted by name.
    pub rooms: Vec<RoomSummary>,
}

/// A room's members: the answer to `names` and to `join`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NameList {
    /// The `id` of the request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// Nicks, sorted case-insensitively.
    pub members: Vec<String>,
    /// How many members the room has, when `members` need not list them all: a large room
    /// (its join burst lists nobody; PROTOCOL.md section 7.3). Absent: `members` is the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// A page of history: oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The `id` of the request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// The messages, in increasing `seq`.
    pub messages: Vec<ChatMessage>,
    /// More messages exist beyond this page in the requested direction.
    pub more: bool,
}

/// Answer to `search`: matching messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchResults {
    /// The `id` of the request this answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// The query as received.
    pub query: String,
    /// The matches, in increasing `seq`.
    pub messages: Vec<ChatMessage>,
    /// More matches exist.
    pub more: bool,
}

/// A file was offered to you or to a room you are in (the sender gets a copy too).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileOffered {
    /// The `id` of the sender's `file_offer` (only in the sender's copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Server-assigned transfer id.
    pub file: u64,
    /// Who offers it.
    pub from: String,
    /// `#room` or the recipient's nick.
    pub to: String,
    /// File name as the sender gave it (untrusted: sanitize before use).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, 64 lowercase hex digits.
    pub sha256: String,
    /// After this time the offer can no longer be accepted.
    pub expires: Timestamp,
}

/// Your offer was accepted: send chunks from `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileAccepted {
    /// Transfer id.
    pub file: u64,
    /// Who accepted.
    pub by: String,
    /// First byte wanted.
    pub offset: u64,
}

/// Your offer was declined.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileDeclined {
    /// Transfer id.
    pub file: u64,
    /// Who declined.
    pub by: String,
}

/// A transfer was cancelled by one side or by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileCancelled {
    /// Transfer id.
    pub file: u64,
    /// Who cancelled (a nick, or `server`).
    pub by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Flow control for the sender: the receiver has stored everything before `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileProgress {
    /// Transfer id.
    pub file: u64,
    /// Acknowledged bytes.
    pub offset: u64,
}

// `ChatMessage` and `Ack` are encoded by hand: see `per_message`.
json_body!(
    Welcome,
    Error,
    Notice,
    TypingEvent,
    Joined,
    Parted,
    NickChanged,
    QuitEvent,
    TopicInfo,
    RoomList,
    NameList,
    HistoryPage,
    SearchResults,
    FileOffered,
    FileAccepted,
    FileDeclined,
    FileCancelled,
    FileProgress,
);

wire_enum! {
    /// Every message a server may send.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ServerMsg {
        /// The session is open.
        Welcome(Welcome) = kind::WELCOME,
        /// A request failed.
        Error(Error) = kind::ERROR,
        /// Liveness probe: answer with pong.
        Ping(Ping) = kind::PING,
        /// Answer to your ping.
        Pong(Pong) = kind::PONG,
        /// Server notice.
        Notice(Notice) = kind::NOTICE,
        /// A chat message.
        Message(ChatMessage) = kind::MESSAGE,
        /// Your message was accepted.
        Ack(Ack) = kind::ACK,
        /// Typing notice.
        Typing(TypingEvent) = kind::TYPING_EVENT,
        /// Someone joined.
        Joined(Joined) = kind::JOINED,
        /// Someone left a room.
        Parted(Parted) = kind::PARTED,
        /// Someone changed nick.
        NickChanged(NickChanged) = kind::NICK_CHANGED,
        /// Someone quit.
        Quit(QuitEvent) = kind::QUIT_EVENT,
        /// A room's topic.
        Topic(TopicInfo) = kind::TOPIC_INFO,
        /// Room list.
        RoomList(RoomList) = kind::ROOM_LIST,
        /// Member list.
        Names(NameList) = kind::NAME_LIST,
        /// History page.
        History(HistoryPage) = kind::HISTORY_PAGE,
        /// Search results.
        SearchResults(SearchResults) = kind::SEARCH_RESULTS,
        /// A file offer.
        FileOffered(FileOffered) = kind::FILE_OFFERED,
        /// Your offer was accepted.
        FileAccepted(FileAccepted) = kind::FILE_ACCEPTED,
        /// Your offer was declined.
        FileDeclined(FileDeclined) = kind::FILE_DECLINED,
        /// A transfer was cancelled.
        FileCancelled(FileCancelled) = kind::FILE_CANCELLED,
        /// Receiver's progress.
        FileProgress(FileProgress) = kind::FILE_PROGRESS,
        /// File data.
        FileChunk(FileChunk) = kind::FILE_CHUNK,
        /// All file data sent.
        FileDone(FileDone) = kind::FILE_DONE,
    }
}

impl ServerMsg {
    /// A convenience constructor for an error answering request `id`.
    pub fn error(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error(Error {
            id,
            code,
            message: message.into(),
        })
    }
}
