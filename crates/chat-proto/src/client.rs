//! Messages a client sends to the server ("C→S").
//!
//! Sender, sequence numbers and timestamps never appear here: the server assigns them, and any
//! such field a client adds is ignored. Requests that can fail carry an optional client-chosen
//! `id` (at most [`crate::limits::MAX_ID_LEN`] bytes) that the server echoes in its answer or error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kind;
use crate::message::{FileChunk, FileDone, Ping, Pong, json_body, wire_enum};

/// `send`'s body, decoded without serde in its usual form.
mod send_body;

/// Opens a session. The first frame a client sends; at most 4 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hello {
    /// The nick to use.
    pub name: String,
    /// Password of a registered nick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Password of a private server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_password: Option<String>,
    /// Client software and version, e.g. `chat-tui/0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Per room, the last sequence number this client has seen: the server replays what follows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resume: BTreeMap<String, u64>,
}

/// Sends a chat message to a room (`to` starts with `#`) or a user (`to` is a nick).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Send {
    /// Client message id: echoed in the ack; a resend with the same id is not delivered twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room` or a nick.
    pub to: String,
    /// The text; may contain newlines; at most the announced `max_text` bytes.
    pub text: String,
    /// True for a `/me` action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
}

/// Tells a room or user that you started or stopped typing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Typing {
    /// `#room` or a nick.
    pub to: String,
    /// True while typing; false when stopped.
    pub active: bool,
}

/// Leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quit {
    /// Shown to the rooms you were in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Joins a room, creating it if needed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Join {
    /// Request id, echoed in the `name_list` answer or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
}

/// Leaves a room.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Part {
    /// Request id, echoed in an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// Shown to the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Changes your nick.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Nick {
    /// Request id, echoed in an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The new nick.
    pub nick: String,
}

/// Gets a room's topic (no `topic`) or sets it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topic {
    /// Request id, echoed in the `topic_info` answer or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// The new topic; absent to only read it; empty string to clear it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Operators only: lock (true) or unlock (false) the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<bool>,
}

/// Asks for the list of rooms.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListRooms {
    /// Request id, echoed in the `room_list` answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Asks for a room's members.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Names {
    /// Request id, echoed in the `name_list` answer or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
}

/// Asks for a page of a room's history.
///
/// With `before`: the newest messages with `seq < before`. With `after`: the oldest messages with
/// `seq > after`. With neither: the newest messages. Messages in a page are always oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// Request id, echoed in the `history_page` answer or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// Only messages with a smaller sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Only messages with a larger sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many messages (the server caps it at its `history_page` limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Full-text search in a room's history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Search {
    /// Request id, echoed in the `search_results` answer or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// Words to find.
    pub query: String,
    /// At most this many results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Registers your current nick with a password.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Register {
    /// Request id, echoed in the notice or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The password.
    pub password: String,
}

/// Operator: removes a user from a room.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Kick {
    /// Request id, echoed in an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room`.
    pub room: String,
    /// Who to remove.
    pub nick: String,
    /// Shown to the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Operator: bans a nick or an IP address from the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ban {
    /// Request id, echoed in the notice or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A nick, or an IP address.
    pub target: String,
    /// Ban length in seconds; absent for a permanent ban.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// Recorded and shown to the banned user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Reads a ban or mute length as operators type it: `90` or `90s` seconds, `10m` minutes,
/// `2h` hours, `7d` days, `2w` weeks. `None` for anything else (then it is not a length).
pub fn parse_duration_secs(text: &str) -> Option<u64> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Operator: lifts a ban.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Unban {
    /// Request id, echoed in the notice or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The banned nick or IP address.
    pub target: String,
}

/// Operator: silences a user in a room (or everywhere when `room` is absent).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mute {
    /// Request id, echoed in the notice or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The nick to silence.
    pub nick: String,
    /// Only in this room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Length in seconds; absent until lifted; `0` lifts the mute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
}

/// Offers a file to a room or user.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileOffer {
    /// Request id, echoed in the `file_offered` copy sent back to you, or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `#room` or a nick.
    pub to: String,
    /// File name (the receiver sanitizes it).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, 64 lowercase hex digits.
    pub sha256: String,
}

/// Accepts an offered file, from `offset` (0, or where a broken transfer stopped).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileAccept {
    /// Transfer id from `file_offered`.
    pub file: u64,
    /// First byte wanted.
    #[serde(default)]
    pub offset: u64,
}

/// Declines an offered file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileDecline {
    /// Transfer id from `file_offered`.
    pub file: u64,
}

/// Cancels a transfer you send or receive.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileCancel {
    /// Transfer id.
    pub file: u64,
    /// Shown to the other side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The receiver has stored data up to `offset` (flow control and resume point).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileAck {
    /// Transfer id.
    pub file: u64,
    /// Every byte before this offset is stored.
    pub offset: u64,
}

json_body!(
    Hello,
    Typing,
    Quit,
    Join,
    Part,
    Nick,
    Topic,
    ListRooms,
    Names,
    History,
    Search,
    Register,
    Kick,
    Ban,
    Unban,
    Mute,
    FileOffer,
    FileAccept,
    FileDecline,
    FileCancel,
    FileAck,
);

wire_enum! {
    /// Every message a client may send.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ClientMsg {
        /// Open the session.
        Hello(Hello) = kind::HELLO,
        /// Liveness probe.
        Ping(Ping) = kind::PING,
        /// Answer to the server's ping.
        Pong(Pong) = kind::PONG,
        /// Leave the server.
        Quit(Quit) = kind::QUIT,
        /// Send a chat message.
        Send(Send) = kind::SEND,
        /// Typing notice.
        Typing(Typing) = kind::TYPING,
        /// Join a room.
        Join(Join) = kind::JOIN,
        /// Leave a room.
        Part(Part) = kind::PART,
        /// Change nick.
        Nick(Nick) = kind::NICK,
        /// Get or set a topic.
        Topic(Topic) = kind::TOPIC,
        /// List rooms.
        ListRooms(ListRooms) = kind::LIST_ROOMS,
        /// List a room's members.
        Names(Names) = kind::NAMES,
        /// Fetch history.
        History(History) = kind::HISTORY,
        /// Search history.
        Search(Search) = kind::SEARCH,
        /// Register the current nick.
        Register(Register) = kind::REGISTER,
        /// Operator: kick.
        Kick(Kick) = kind::KICK,
        /// Operator: ban.
        Ban(Ban) = kind::BAN,
        /// Operator: mute.
        Mute(Mute) = kind::MUTE,
        /// Operator: unban.
        Unban(Unban) = kind::UNBAN,
        /// Offer a file.
        FileOffer(FileOffer) = kind::FILE_OFFER,
        /// Accept a file.
        FileAccept(FileAccept) = kind::FILE_ACCEPT,
        /// Decline a file.
        FileDecline(FileDecline) = kind::FILE_DECLINE,
        /// File data.
        FileChunk(FileChunk) = kind::FILE_CHUNK,
        /// All file data sent.
        FileDone(FileDone) = kind::FILE_DONE,
        /// Cancel a transfer.
        FileCancel(FileCancel) = kind::FILE_CANCEL,
        /// Receiver's progress.
        FileAck(FileAck) = kind::FILE_ACK,
    }
}

impl ClientMsg {
    /// The client-chosen request id, if this message carries one.
    pub fn request_id(&self) -> Option<&str> {
        let id = match self {
            ClientMsg::Send(m) => &m.id,
            ClientMsg::Join(m) => &m.id,
            ClientMsg::Part(m) => &m.id,
            ClientMsg::Nick(m) => &m.id,
            ClientMsg::Topic(m) => &m.id,
            ClientMsg::ListRooms(m) => &m.id,
            ClientMsg::Names(m) => &m.id,
            ClientMsg::History(m) => &m.id,
            ClientMsg::Search(m) => &m.id,
            ClientMsg::Register(m) => &m.id,
            ClientMsg::Kick(m) => &m.id,
            ClientMsg::Ban(m) => &m.id,
            ClientMsg::Mute(m) => &m.id,
            ClientMsg::Unban(m) => &m.id,
            ClientMsg::FileOffer(m) => &m.id,
            _ => return None,
        };
        id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration_secs;

    #[test]
    fn ban_lengths_read_as_operators_type_them() {
        assert_eq!(parse_duration_secs("90"), Some(90));
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("10m"), Some(600));
        assert_eq!(parse_duration_secs("2h"), Some(7200));
        assert_eq!(parse_duration_secs("7d"), Some(604_800));
        assert_eq!(parse_duration_secs("1w"), Some(604_800));
        for not_a_length in [
            "",
            "h",
            "2x",
            "spam",
            "-5m",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert_eq!(parse_duration_secs(not_a_length), None, "{not_a_length:?}");
        }
    }
}
