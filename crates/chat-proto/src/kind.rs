//! The kind registry: the number in a frame header that says what its body is.
//!
//! One number names one body shape in one direction ("C→S" client to server, "S→C" server to
//! client), except ping, pong, file chunk and file done, whose shape is the same both ways.
//! Numbers are never reused; new kinds get new numbers (PROTOCOL.md, "Versioning").

/// C→S: open a session (first frame a client sends).
pub const HELLO: u32 = 1;
/// S→C: the session is open.
pub const WELCOME: u32 = 2;
/// S→C: a request failed, or the connection is about to close.
pub const ERROR: u32 = 3;
/// Both: liveness probe; answer with [`PONG`].
pub const PING: u32 = 4;
/// Both: answer to [`PING`].
pub const PONG: u32 = 5;
/// C→S: leave the server.
pub const QUIT: u32 = 6;
/// S→C: informational or warning text from the server (shutdown, lag, motd).
pub const NOTICE: u32 = 7;

/// C→S: send a chat message to a room or a user.
pub const SEND: u32 = 10;
/// S→C: a delivered chat message.
pub const MESSAGE: u32 = 11;
/// S→C: your message was accepted, with its sequence number.
pub const ACK: u32 = 12;
/// C→S: you started or stopped typing.
pub const TYPING: u32 = 13;
/// S→C: someone started or stopped typing.
pub const TYPING_EVENT: u32 = 14;

/// C→S: join (or create) a room.
pub const JOIN: u32 = 20;
/// C→S: leave a room.
pub const PART: u32 = 21;
/// C→S: change your nick.
pub const NICK: u32 = 22;
/// C→S: get or set a room's topic.
pub const TOPIC: u32 = 23;
/// C→S: list rooms.
pub const LIST_ROOMS: u32 = 24;
/// C→S: list a room's members.
pub const NAMES: u32 = 25;
/// C→S: fetch a page of a room's history.
pub const HISTORY: u32 = 26;
/// C→S: full-text search in a room's history.
pub const SEARCH: u32 = 27;

/// S→C: someone (possibly you) joined a room.
pub const JOINED: u32 = 30;
/// S→C: someone (possibly you) left a room.
pub const PARTED: u32 = 31;
/// S→C: someone (possibly you) changed nick.
pub const NICK_CHANGED: u32 = 32;
/// S→C: someone left the server.
pub const QUIT_EVENT: u32 = 33;
/// S→C: a room's topic (answer to [`TOPIC`], or a change).
pub const TOPIC_INFO: u32 = 34;
/// S→C: answer to [`LIST_ROOMS`].
pub const ROOM_LIST: u32 = 35;
/// S→C: a room's member list.
pub const NAME_LIST: u32 = 36;
/// S→C: a page of history.
pub const HISTORY_PAGE: u32 = 37;
/// S→C: answer to [`SEARCH`].
pub const SEARCH_RESULTS: u32 = 38;

/// C→S: register the current nick with a password.
pub const REGISTER: u32 = 40;
/// C→S (operator): remove a user from a room.
pub const KICK: u32 = 41;
/// C→S (operator): ban a nick or address.
pub const BAN: u32 = 42;
/// C→S (operator): silence a user.
pub const MUTE: u32 = 43;
/// C→S (operator): lift a ban.
pub const UNBAN: u32 = 44;

/// C→S: offer a file to a room or user.
pub const FILE_OFFER: u32 = 50;
/// C→S: accept an offered file (from an offset, to resume).
pub const FILE_ACCEPT: u32 = 51;
/// C→S: decline an offered file.
pub const FILE_DECLINE: u32 = 52;
/// Both: a binary chunk of file data.
pub const FILE_CHUNK: u32 = 53;
/// Both: the sender has sent every byte.
pub const FILE_DONE: u32 = 54;
/// C→S: cancel a transfer you send or receive.
pub const FILE_CANCEL: u32 = 55;
/// C→S: the receiver has stored and verified data up to an offset.
pub const FILE_ACK: u32 = 56;
/// S→C: a file was offered to you or your room.
pub const FILE_OFFERED: u32 = 60;
/// S→C: your offer was accepted (send from the offset).
pub const FILE_ACCEPTED: u32 = 61;
/// S→C: your offer was declined.
pub const FILE_DECLINED: u32 = 62;
/// S→C: a transfer was cancelled.
pub const FILE_CANCELLED: u32 = 63;
/// S→C: how far the receiver has acknowledged (flow control for the sender).
pub const FILE_PROGRESS: u32 = 64;
