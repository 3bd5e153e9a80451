//! Why a text session ends, what the peer reads last and what its rooms hear.

use std::fmt;
use std::io;

use chat_proto::sanitize::sanitize_line;

use crate::writer::WriterExit;

/// Why a text session ended.
#[derive(Debug)]
pub enum TextClose {
    /// The peer closed its side.
    PeerClosed,
    /// The user typed `/quit`.
    Quit(String),
    /// Reading failed.
    Io(io::Error),
    /// No name within the name timeout.
    NameTimeout,
    /// Nothing typed within the idle timeout.
    Idle,
    /// The client did not keep up with what it was sent.
    Lagged,
    /// An operator banned the nick or address (now, or before the name was given); the text
    /// says why and until when.
    Banned(String),
    /// Too many wrong passwords at a registered name's prompt: the hub's throttle says stop.
    /// The connection closes so that a password typed once more cannot become a name (public)
    /// at the name prompt. The text is the hub's.
    LoginThrottled(String),
    /// The writer ended by itself (a stalled or failed write).
    Writer(WriterExit),
    /// The server is shutting down.
    Shutdown,
    /// The hub stopped before the session did.
    HubGone,
}

impl TextClose {
    /// What the session's rooms are told in `quit`.
    pub fn quit_reason(&self) -> String {
        match self {
            TextClose::PeerClosed => "connection closed".into(),
            TextClose::Quit(reason) => reason.clone(),
            TextClose::NameTimeout => "handshake_timeout".into(),
            TextClose::Idle => "idle_timeout".into(),
            TextClose::Lagged | TextClose::Writer(WriterExit::Stalled) => "lagged".into(),
            TextClose::Banned(_) => "banned".into(),
            TextClose::LoginThrottled(_) => "login throttled".into(),
            TextClose::Io(_) | TextClose::Writer(_) => "connection error".into(),
            TextClose::Shutdown | TextClose::HubGone => "server shutting down".into(),
        }
    }

    /// The last line the peer reads, if any. `name_timeout` and `idle` are the configured
    /// durations, for the message.
    pub fn last_line(
        &self,
        name_timeout: std::time::Duration,
        idle: std::time::Duration,
    ) -> Option<String> {
        let line = match self {
            TextClose::Quit(_) => "*** bye".to_owned(),
            TextClose::NameTimeout => {
                format!("*** no name within {}; bye", secs(name_timeout))
            }
            TextClose::Idle => format!("*** nothing typed for {}; disconnecting", secs(idle)),
            TextClose::Lagged => {
                "*** you fell behind (your connection did not keep up) and were disconnected"
                    .to_owned()
            }
            TextClose::Shutdown | TextClose::HubGone => {
                "*** the server is shutting down; bye".to_owned()
            }
            // The reason is an operator's words: sanitised like everything other users write.
            TextClose::Banned(text) => format!("*** {}; disconnecting", sanitize_line(text)),
            TextClose::LoginThrottled(text) => {
                format!("*** error: {}; disconnecting", sanitize_line(text))
            }
            TextClose::PeerClosed | TextClose::Io(_) | TextClose::Writer(_) => return None,
        };
        Some(line)
    }
}

/// `60 s`, `30 min`: a duration as a person says it.
fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s % 60 == 0 {
        format!("{} min", s / 60)
    } else if s >= 1 {
        format!("{s} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl fmt::Display for TextClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextClose::PeerClosed => f.write_str("peer closed"),
            TextClose::Quit(reason) => write!(f, "quit: {reason}"),
            TextClose::Io(e) => write!(f, "read error: {e}"),
            TextClose::NameTimeout => f.write_str("no name in time"),
            TextClose::Idle => f.write_str("idle"),
            TextClose::Lagged => f.write_str("lagged: outbound queue full"),
            TextClose::Banned(text) => write!(f, "banned: {text}"),
            TextClose::LoginThrottled(text) => write!(f, "login throttled: {text}"),
            TextClose::Writer(WriterExit::Stalled) => f.write_str("lagged: write stalled"),
            TextClose::Writer(exit) => write!(f, "writer ended: {exit:?}"),
            TextClose::Shutdown => f.write_str("server shutting down"),
            TextClose::HubGone => f.write_str("hub stopped"),
        }
    }
}
