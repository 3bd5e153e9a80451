//! Errors of the three decoding layers, and the stable error codes sent on the wire.
//!
//! A [`FrameError`] means the byte stream itself is broken (wrong version, hostile length): it
//! cannot be resynchronised and the connection ends. A [`MessageError`] means one well-formed frame
//! carried a body we cannot use: the peer is told and the connection goes on.

use serde::{Deserialize, Serialize};

/// The stream is broken; the connection must end.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header's version field is not one we speak.
    #[error("unsupported protocol version {version} (this side speaks 1)")]
    UnsupportedVersion {
        /// The version the peer sent.
        version: u32,
    },
    /// The header declares a body longer than the current limit.
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The declared body length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// Reading or writing the underlying transport failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The wire error code that tells the peer why the connection ends.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::Io(_) => ErrorCode::Internal,
        }
    }
}

/// One frame's body could not be turned into a message; the stream is still in sync.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The kind number is not one this direction of the protocol defines.
    #[error("unknown message kind {kind}")]
    UnknownKind {
        /// The kind from the header.
        kind: u32,
    },
    /// The body of a JSON kind is not valid UTF-8.
    #[error("body of kind {kind} is not valid utf-8")]
    InvalidUtf8 {
        /// The kind from the header.
        kind: u32,
    },
    /// The body is not a syntactically complete JSON object.
    #[error("body of kind {kind} is not a json object: {detail}")]
    InvalidJson {
        /// The kind from the header.
        kind: u32,
        /// What the JSON parser said.
        detail: String,
    },
    /// The body is JSON but its fields do not match the kind (missing, wrong type, out of range).
    #[error("body of kind {kind} has wrong fields: {detail}")]
    InvalidFields {
        /// The kind from the header.
        kind: u32,
        /// What was wrong.
        detail: String,
    },
    /// A binary body is shorter than its fixed layout.
    #[error("binary body of kind {kind} is {len} bytes, shorter than its {min}-byte prefix")]
    BinaryTooShort {
        /// The kind from the header.
        kind: u32,
        /// The body length received.
        len: usize,
        /// The minimum length of the layout.
        min: usize,
    },
}

impl MessageError {
    /// The wire error code for this problem.
    pub fn code(&self) -> ErrorCode {
        match self {
            MessageError::UnknownKind { .. } => ErrorCode::UnknownKind,
            _ => ErrorCode::Malformed,
        }
    }

    /// Classifies a serde_json failure for `kind`.
    pub(crate) fn from_json(kind: u32, err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let detail = err.to_string();
        match err.classify() {
            Category::Data => MessageError::InvalidFields { kind, detail },
            Category::Io | Category::Syntax | Category::Eof => {
                MessageError::InvalidJson { kind, detail }
            }
        }
    }
}

/// Encoding a message failed. Only possible for values JSON cannot represent.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// serde_json refused the value.
    #[error("cannot encode message: {0}")]
    Json(#[from] serde_json::Error),
    /// The encoded body does not fit the frame's 32-bit length field.
    #[error("encoded body is too large for a frame")]
    TooLarge,
    /// Writing the encoded bytes to the transport failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

/// Stable, machine-readable error codes carried in `error` frames (PROTOCOL.md lists them).
///
/// Codes are lowercase snake_case strings on the wire. A code this build does not know
/// deserializes to [`ErrorCode::Other`], so newer servers do not break older clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Fatal: the header's version is not 1.
    UnsupportedVersion,
    /// Fatal: the header declared a body above the limit.
    FrameTooLarge,
    /// The kind number is unknown; the frame was skipped.
    UnknownKind,
    /// The body was not valid UTF-8 / JSON / fields for its kind.
    Malformed,
    /// The request is not allowed before `hello` (or `hello` was sent twice).
    HandshakeRequired,
    /// Fatal: no `hello` arrived in time.
    HandshakeTimeout,
    /// The nick is already in use (compared after case and Unicode folding).
    NickTaken,
    /// The nick breaks the nick rules.
    NickInvalid,
    /// The room name breaks the room name rules.
    RoomInvalid,
    /// The request names a room you are not in (or that does not exist).
    NotInRoom,
    /// No user with that nick is online.
    NoSuchNick,
    /// The text is empty or longer than the announced `max_text`.
    TextInvalid,
    /// A request field is out of range (e.g. history limit, id too long).
    BadRequest,
    /// Too many requests: the rate limit refused this one. Retry later.
    RateLimited,
    /// Fatal: your outbound queue overflowed; you missed messages after a sequence.
    Lagged,
    /// Fatal: you stayed silent through pings.
    IdleTimeout,
    /// Fatal: a frame took too long to arrive completely.
    SlowFrame,
    /// Fatal: too many connections from your address or in total.
    TooManyConnections,
    /// Fatal: the server accepts TLS connections only, and this one is plaintext.
    TlsRequired,
    /// Fatal: the server is shutting down.
    ShuttingDown,
    /// The server's message store failed; the message was not accepted.
    StoreUnavailable,
    /// Wrong or missing password.
    AuthFailed,
    /// Too many failed logins; wait before trying again.
    AuthThrottled,
    /// You may not do this (operator command, locked topic, muted, banned nick change).
    Forbidden,
    /// Fatal: an operator banned your nick or address; the text says why and until when.
    Banned,
    /// The file transfer was refused (too large, expired, unknown id, too many).
    FileRefused,
    /// The server failed unexpectedly while handling the request.
    Internal,
    /// A code this build does not know yet.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Whether the server closes the connection after sending this code.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedVersion
                | ErrorCode::FrameTooLarge
                | ErrorCode::HandshakeTimeout
                | ErrorCode::Lagged
                | ErrorCode::IdleTimeout
                | ErrorCode::SlowFrame
                | ErrorCode::TooManyConnections
                | ErrorCode::TlsRequired
                | ErrorCode::ShuttingDown
                | ErrorCode::Banned
        )
    }

    /// The wire string of this code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownKind => "unknown_kind",
            ErrorCode::Malformed => "malformed",
            ErrorCode::HandshakeRequired => "handshake_required",
            ErrorCode::HandshakeTimeout => "handshake_timeout",
            ErrorCode::NickTaken => "nick_taken",
            ErrorCode::NickInvalid => "nick_invalid",
            ErrorCode::RoomInvalid => "room_invalid",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::NoSuchNick => "no_such_nick",
            ErrorCode::TextInvalid => "text_invalid",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Lagged => "lagged",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::SlowFrame => "slow_frame",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::TlsRequired => "tls_required",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::AuthThrottled => "auth_throttled",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Banned => "banned",
            ErrorCode::FileRefused => "file_refused",
            ErrorCode::Internal => "internal",
            ErrorCode::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_wire_strings() {
        for code in [
            ErrorCode::NickTaken,
            ErrorCode::FrameTooLarge,
            ErrorCode::Other,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_error_code_from_a_newer_server_is_other() {
        let code: ErrorCode = serde_json::from_str("\"brand_new_code\"").unwrap();
        assert_eq!(code, ErrorCode::Other);
    }
}
