//! Why a session ends, what the peer is told and what its rooms hear.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use chat_proto::server::{Notice, NoticeCode};
use chat_proto::{ErrorCode, ServerMsg};

use crate::writer::WriterExit;

/// Why a session ended.
#[derive(Debug)]
pub enum Close {
    /// The peer closed its side.
    PeerClosed,
    /// The peer sent `quit`.
    Quit(String),
    /// Reading failed.
    Io(io::Error),
    /// We end the session with a fatal error code (timeouts, broken framing).
    Fatal {
        /// The code sent to the peer.
        code: ErrorCode,
        /// The text sent to the peer and logged.
        reason: String,
    },
    /// The outbound queue overflowed; per room, the last `seq` queued to the peer.
    Lagged {
        /// Room name → last queued `seq`.
        seqs: BTreeMap<String, u64>,
    },
    /// An operator banned the nick or address; the hub already dropped the session.
    Banned {
        /// The reason and expiry, for the peer.
        text: String,
    },
    /// The writer ended by itself (a stalled or failed write).
    Writer(WriterExit),
    /// The server is shutting down.
    Shutdown,
    /// The hub stopped before the session did.
    HubGone,
}

impl Close {
    pub(super) fn fatal(code: ErrorCode, reason: impl Into<String>) -> Self {
        Close::Fatal {
            code,
            reason: reason.into(),
        }
    }

    /// What the session's rooms are told in `quit`.
    pub(super) fn quit_reason(&self) -> String {
        match self {
            Close::PeerClosed => "connection closed".into(),
            Close::Quit(reason) => reason.clone(),
            Close::Io(_) => "connection error".into(),
            Close::Fatal { code, .. } => code.as_str().into(),
            Close::Lagged { .. } | Close::Writer(WriterExit::Stalled) => "lagged".into(),
            Close::Banned { .. } => "banned".into(),
            Close::Writer(_) => "connection error".into(),
            Close::Shutdown | Close::HubGone => "server shutting down".into(),
        }
    }

    /// The frames written after the queue is flushed.
    pub(super) fn final_frames(&self) -> Vec<ServerMsg> {
        match self {
            Close::Fatal { code, reason } => vec![ServerMsg::error(None, *code, reason.clone())],
            Close::Banned { text } => vec![ServerMsg::error(None, ErrorCode::Banned, text.clone())],
            // The notice (with the seqs to resume from) first: a client may stop reading at
            // the fatal error.
            Close::Lagged { seqs } => vec![
                ServerMsg::Notice(Notice {
                    code: NoticeCode::Lagged,
                    text: "you fell behind; reconnect and resume".into(),
                    seqs: seqs.clone(),
                    id: None,
                }),
                ServerMsg::error(
                    None,
                    ErrorCode::Lagged,
                    "you fell behind and were disconnected",
                ),
            ],
            Close::Shutdown | Close::HubGone => vec![
                ServerMsg::Notice(Notice {
                    code: NoticeCode::ShuttingDown,
                    text: "the server is shutting down".into(),
                    seqs: BTreeMap::new(),
                    id: None,
                }),
                ServerMsg::error(None, ErrorCode::ShuttingDown, "the server is shutting down"),
            ],
            Close::PeerClosed | Close::Quit(_) | Close::Io(_) | Close::Writer(_) => Vec::new(),
        }
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::PeerClosed => f.write_str("peer closed"),
            Close::Quit(reason) => write!(f, "quit: {reason}"),
            Close::Io(e) => write!(f, "read error: {e}"),
            Close::Fatal { code, reason } => write!(f, "{code}: {reason}"),
            Close::Lagged { .. } => f.write_str("lagged: outbound queue full"),
            Close::Banned { text } => write!(f, "banned: {text}"),
            Close::Writer(WriterExit::Stalled) => f.write_str("lagged: write stalled"),
            Close::Writer(exit) => write!(f, "writer ended: {exit:?}"),
            Close::Shutdown => f.write_str("server shutting down"),
            Close::HubGone => f.write_str("hub stopped"),
        }
    }
}
