//! Text mode: netcat, telnet and legacy (GBK) clients on the same port and in the same rooms.
//!
//! The listener hands a connection here when its first byte is not the framed protocol's
//! `0x00` (or when it says nothing for a moment: then we greet it first). A text client types
//! lines: the first one is its name (after a private server's password, and followed by the
//! password of a registered name), then a line is a message for its current room and a line
//! starting with `/` is a command (`/join`, `/msg`, `/help`, ...). The session turns those into
//! the same [`chat_proto::ClientMsg`] requests a framed client sends, and turns the frames the
//! hub sends it back into lines such as `[12:34] #lobby <alice> text`. To the hub and to
//! framed clients, a text user is an ordinary user.
//!
//! Bytes on the wire are in the connection's charset (UTF-8 unless the server default or
//! `/charset` says otherwise, or the first non-ASCII line turns out to be GBK). Everything other
//! users wrote is sanitised before it is encoded, so nobody can reach a text client's terminal
//! with an escape sequence.
//!
//! Limits are the framed ones: the rate limit per line, the hub's outbound queue (a client that
//! does not read is dropped as lagged), lines capped at [`MAX_LINE`] bytes, a deadline for the
//! name (`--text-name-timeout`, longer than the framed handshake because people type) and an
//! idle timeout (`--text-idle-timeout`; a text client cannot answer pings).
//!
//! # Layout
//! - [`session`]: the connection task: name prompt, `select!` loop, requests, frames to lines.
//! - [`line`](mod@line): the byte stream cut into lines, capped, with telnet commands removed.
//! - [`telnet`]: the telnet command filter (`IAC ...`).
//! - [`charset`]: per-connection decoding and encoding with encoding_rs, and detection.
//! - [`command`]: what a typed line means.
//! - [`render`]: server messages as readable, sanitised lines.
//! - [`close`]: why a text session ends and what it says last.

pub mod charset;
pub mod close;
pub mod command;
pub mod line;
pub mod render;
pub mod session;
pub mod telnet;

pub use session::run;

/// The longest line a text client may send, in bytes of its charset, line ending excluded.
pub const MAX_LINE: usize = 4 * 1024;
