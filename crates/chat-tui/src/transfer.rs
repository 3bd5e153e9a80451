//! File transfers as plain data, and what each step does to them. Part of `update`:
//! synchronous, no IO. The IO (hashing, reading chunks, writing `.part` files) happens in
//! [`crate::files`], which takes [`FileJob`]s and reports [`FileEvent`]s.
//!
//! The flow (PROTOCOL.md section 9): the sender's `/send` hashes the file ([`FileJob::Hash`]),
//! then offers it (through the pacer). The recipient's `/accept` opens a `.part`
//! ([`FileJob::Open`]) and sends `file_accept` with the offset already stored. The sender
//! streams chunks from that offset, at most [`WINDOW`] bytes beyond the last `file_progress`
//! ([`FileJob::Upload`], [`FileJob::Allow`]); the recipient writes them ([`FileJob::Write`]),
//! acks every [`ACK_EVERY`] bytes, and on `file_done` checks the SHA-256 ([`FileJob::Finish`]).
//! After a reconnect the recipient re-hashes its `.part` ([`FileJob::Resume`]) and accepts
//! again from what it holds; the sender continues from the offset in `file_accepted`.

use std::path::PathBuf;

use chat_proto::message::{FileChunk, FileDone};
use chat_proto::sanitize::sanitize_line;
use chat_proto::server::{
    Error, FileAccepted, FileCancelled, FileDeclined, FileOffered, FileProgress,
};
use chat_proto::{ClientMsg, client};

use crate::app::{App, LineBody};
use crate::update::{Command, flush_outbox, push_local};

/// Most unacknowledged bytes a sender keeps in flight.
pub const WINDOW: u64 = 512 * 1024;
/// Largest chunk of file data (the frame body adds 16 bytes; `max_body` caps it further).
pub const CHUNK: u64 = 60 * 1024;
/// The recipient acks after storing this many bytes (and at the end).
pub const ACK_EVERY: u64 = 128 * 1024;
/// Largest download accepted by default.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 1 << 30;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We send.
    Send,
    /// We receive.
    Receive,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Sender: the file is being read to hash it.
    Hashing,
    /// Offered; waiting for the recipient's answer (or ours).
    Offered,
    /// Recipient: the `.part` is being opened or re-checked.
    Opening,
    /// Data flows.
    Active,
    /// The connection dropped mid-transfer; it resumes after the reconnect.
    Interrupted,
    /// The other side disconnected (the server said so); it resumes when they return.
    Paused,
    /// Recipient: every byte is in; the checksum is being checked.
    Verifying,
    /// Complete (recipient: the checksum matched and the file has its name).
    Done,
    /// Declined by the recipient.
    Declined,
    /// Cancelled by either side or the server (sanitized reason).
    Cancelled(String),
    /// Failed here (sanitized reason).
    Failed(String),
}

impl TransferState {
    /// Whether the transfer is over.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TransferState::Done
                | TransferState::Declined
                | TransferState::Cancelled(_)
                | TransferState::Failed(_)
        )
    }

    /// Whether it gets a progress gauge.
    pub fn shows_gauge(&self) -> bool {
        matches!(
            self,
            TransferState::Active
                | TransferState::Interrupted
                | TransferState::Paused
                | TransferState::Verifying
        )
    }

    /// A word for `/files`.
    pub fn label(&self) -> String {
        match self {
            TransferState::Hashing => "hashing".into(),
            TransferState::Offered => "offered".into(),
            TransferState::Opening => "opening".into(),
            TransferState::Active => "active".into(),
            TransferState::Interrupted => "interrupted".into(),
            TransferState::Paused => "paused".into(),
            TransferState::Verifying => "verifying".into(),
            TransferState::Done => "done".into(),
            TransferState::Declined => "declined".into(),
            TransferState::Cancelled(r) => format!("cancelled ({r})"),
            TransferState::Failed(r) => format!("failed ({r})"),
        }
    }
}

/// After a reconnect the server re-sends `file_offered` for every offer it still has, right
/// after `welcome`. A transfer not re-announced by the end of the join bursts is gone (the
/// server restarted, or the offer expired): it fails instead of hanging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reannounce {
    /// Open transfers not re-announced yet.
    pub files: Vec<u64>,
    /// Rooms (folded) whose join burst has not ended yet.
    pub rooms: Vec<String>,
}

/// Why a forgotten transfer failed.
pub const FORGOTTEN: &str = "the server no longer knows this transfer; send it again";

/// One transfer, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Our offer's request id (sender), or `file-<id>` (recipient).
    pub key: String,
    /// The server's transfer id, once known.
    pub file: Option<u64>,
    /// Which way.
    pub dir: Direction,
    /// The other side: recipient (`#room` or nick) or sender, raw (used as a key).
    pub peer: String,
    /// The conversation its lines go to: the room, or the other nick.
    pub chat: String,
    /// Name as shown (sanitized).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Where it stands.
    pub state: TransferState,
    /// Sender: bytes acknowledged; recipient: bytes stored.
    pub offset: u64,
    /// Recipient: the offset last acked. Sender: the offset the upload may read up to.
    pub mark: u64,
    /// When the current run of data started (ms since the epoch), for the speed.
    pub started_ms: i64,
    /// The offset the current run started from.
    pub start_offset: u64,
    /// Sender: the local file. Recipient: where it was saved, once done.
    pub path: Option<PathBuf>,
}

impl Transfer {
    /// Bytes per second over the current run, once it has run for a moment.
    pub fn speed(&self, now_ms: i64) -> Option<f64> {
        let ms = now_ms - self.started_ms;
        (ms >= 200).then(|| (self.offset - self.start_offset) as f64 * 1000.0 / ms as f64)
    }

    /// Seconds left at the current speed.
    pub fn eta_secs(&self, now_ms: i64) -> Option<u64> {
        let speed = self.speed(now_ms).filter(|s| *s > 0.0)?;
        Some(((self.size - self.offset.min(self.size)) as f64 / speed).ceil() as u64)
    }

    /// Progress in percent.
    pub fn percent(&self) -> u64 {
        (self.offset.min(self.size) * 100)
            .checked_div(self.size)
            .unwrap_or(100)
    }
}

/// IO the runtime does for transfers ([`crate::files`]).
#[derive(Debug, Clone, PartialEq)]
pub enum FileJob {
    /// Stat and SHA-256 the file at `path` (`~/` expands), off the UI thread.
    Hash {
        /// Transfer key.
        key: String,
        /// As typed.
        path: String,
    },
    /// Stream `path` from `offset` as transfer `file`, up to `until` bytes for now, then
    /// `file_done`; chunks are tagged with the connection `generation` they belong to.
    Upload {
        /// Transfer id.
        file: u64,
        /// Local file.
        path: PathBuf,
        /// First byte.
        offset: u64,
        /// Size offered (the upload stops there).
        size: u64,
        /// May send up to this offset for now.
        until: u64,
        /// Data bytes per chunk.
        chunk: u64,
        /// Connection generation.
        generation: u64,
    },
    /// The upload of `file` may now send up to `until`.
    Allow {
        /// Transfer id.
        file: u64,
        /// New limit.
        until: u64,
    },
    /// Create the `.part` for an accepted offer (sanitized, never overwriting).
    Open {
        /// Transfer id.
        file: u64,
        /// Name as offered (untrusted).
        name: String,
        /// Size offered.
        size: u64,
        /// Expected SHA-256.
        sha256: String,
    },
    /// Re-hash what the `.part` holds and report it as the offset to resume from.
    Resume {
        /// Transfer id.
        file: u64,
    },
    /// Append a received chunk.
    Write(FileChunk),
    /// All data sent: check the SHA-256, then rename (or delete the `.part`).
    Finish {
        /// Transfer id.
        file: u64,
    },
    /// Stop: end an upload, or delete a download's `.part`.
    Stop {
        /// Transfer id.
        file: u64,
    },
}

/// What the file IO reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// A file to offer was hashed.
    Hashed {
        /// Transfer key.
        key: String,
        /// The file (expanded).
        path: PathBuf,
        /// Its base name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// SHA-256, lowercase hex.
        sha256: String,
    },
    /// A file to offer could not be read.
    HashFailed {
        /// Transfer key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A download's `.part` is ready; it holds `offset` verified bytes.
    Opened {
        /// Transfer id.
        file: u64,
        /// Bytes already stored.
        offset: u64,
    },
    /// Data up to `offset` is written.
    Stored {
        /// Transfer id.
        file: u64,
        /// Bytes stored.
        offset: u64,
    },
    /// The checksum matched; the file is at `path`.
    Finished {
        /// Transfer id.
        file: u64,
        /// Final path.
        path: PathBuf,
    },
    /// The transfer failed here (IO error, checksum mismatch); nothing is left on disk.
    Failed {
        /// Transfer id.
        file: u64,
        /// Why.
        reason: String,
    },
}

/// Human size: `12 B`, `12 KiB`, `4.5 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 && v.fract() > 0.05 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

fn line(s: &str) -> String {
    sanitize_line(s).into_owned()
}

/// Adds an information (or error) line to the transfer's conversation.
/// Puts a line in the conversation of `chat`, or, for `""` (answers to a typed command that
/// belong to no conversation), in the buffer on screen, where the user typed it.
fn say(app: &mut App, chat: &str, body: LineBody) {
    let i = if chat.is_empty() {
        app.active
    } else {
        app.buffer_for(chat)
    };
    push_local(app, i, body);
}

fn find(app: &App, file: u64) -> Option<usize> {
    app.transfers.iter().rposition(|t| t.file == Some(file))
}

/// Data bytes per chunk for the server's `max_body`.
fn chunk_len(app: &App) -> u64 {
    let room = u64::from(app.limits.max_body).saturating_sub(FileChunk::PREFIX_LEN as u64 + 64);
    CHUNK.min(room).max(1)
}

/// `/send path [to]`: start hashing; the offer goes out once the hash is known.
pub fn start_send(app: &mut App, path: String, to: String, out: &mut Vec<Command>) {
    let key = format!("{}-file-{}", app.id_prefix, app.next_id);
    app.next_id += 1;
    let chat = to.clone();
    let name = line(path.rsplit('/').next().unwrap_or(&path));
    say(
        app,
        &chat,
        LineBody::Info(format!("hashing {name} to offer it to {}…", line(&to))),
    );
    app.transfers.push(Transfer {
        key: key.clone(),
        file: None,
        dir: Direction::Send,
        peer: to,
        chat,
        name,
        size: 0,
        sha256: String::new(),
        state: TransferState::Hashing,
        offset: 0,
        mark: 0,
        started_ms: app.now_ms,
        start_offset: 0,
        path: None,
    });
    out.push(Command::File(FileJob::Hash { key, path }));
}

/// The index of offer `file` made to us and still waiting for an answer; otherwise says why
/// (in the buffer where the command was typed) and gives `None`.
fn open_offer(app: &mut App, file: u64, verb: &str) -> Option<usize> {
    let Some(k) = find(app, file).filter(|&k| app.transfers[k].dir == Direction::Receive) else {
        say(
            app,
            "",
            LineBody::Error(format!("no offer {file} to {verb}")),
        );
        return None;
    };
    let state = &app.transfers[k].state;
    if *state != TransferState::Offered {
        let state = state.label();
        say(app, "", LineBody::Error(format!("file {file} is {state}")));
        return None;
    }
    Some(k)
}

/// `/accept <file>`.
pub fn accept(app: &mut App, file: u64, out: &mut Vec<Command>) {
    let Some(k) = open_offer(app, file, "accept") else {
        return;
    };
    let t = &mut app.transfers[k];
    t.state = TransferState::Opening;
    out.push(Command::File(FileJob::Open {
        file,
        name: t.name.clone(),
        size: t.size,
        sha256: t.sha256.clone(),
    }));
}

/// `/decline <file>`: nothing was written, nothing is left.
pub fn decline(app: &mut App, file: u64, out: &mut Vec<Command>) {
    let Some(k) = open_offer(app, file, "decline") else {
        return;
    };
    let t = &mut app.transfers[k];
    t.state = TransferState::Declined;
    let (chat, name) = (t.chat.clone(), t.name.clone());
    out.push(Command::Send(ClientMsg::FileDecline(client::FileDecline {
        file,
    })));
    say(app, &chat, LineBody::Info(format!("declined {name}")));
}

/// `/cancel <file>`.
pub fn cancel(app: &mut App, file: u64, out: &mut Vec<Command>) {
    let Some(k) = find(app, file) else {
        say(app, "", LineBody::Error(format!("no transfer {file}")));
        return;
    };
    let t = &mut app.transfers[k];
    if t.state.is_final() {
        let state = t.state.label();
        // An answer to what was just typed: shown where it was typed.
        say(app, "", LineBody::Error(format!("file {file} is {state}")));
        return;
    }
    t.state = TransferState::Cancelled("by you".into());
    let (chat, name) = (t.chat.clone(), t.name.clone());
    out.push(Command::Send(ClientMsg::FileCancel(client::FileCancel {
        file,
        reason: None,
    })));
    out.push(Command::File(FileJob::Stop { file }));
    say(app, &chat, LineBody::Info(format!("cancelled {name}")));
}

/// `/files`: every transfer, newest last.
pub fn list(app: &mut App) {
    let i = app.active;
    if app.transfers.is_empty() {
        push_local(app, i, LineBody::Info("no file transfers".into()));
        return;
    }
    let rows: Vec<String> = app
        .transfers
        .iter()
        .map(|t| {
            let id = t.file.map_or_else(|| "-".to_owned(), |f| f.to_string());
            let (arrow, who) = match t.dir {
                Direction::Send => ("→", line(&t.peer)),
                Direction::Receive => ("←", line(&t.peer)),
            };
            let saved = t
                .path
                .as_ref()
                .filter(|_| t.dir == Direction::Receive)
                .map(|p| format!(" → {}", line(&p.display().to_string())))
                .unwrap_or_default();
            format!(
                "  {id:>4} {arrow} {who} {} {}/{} {}{saved}",
                t.name,
                human_size(t.offset),
                human_size(t.size),
                t.state.label()
            )
        })
        .collect();
    push_local(app, i, LineBody::Info("file transfers:".into()));
    for r in rows {
        push_local(app, i, LineBody::Info(r));
    }
}

/// A report from the file IO.
pub fn on_file_event(app: &mut App, event: FileEvent, out: &mut Vec<Command>) {
    match event {
        FileEvent::Hashed {
            key,
            path,
            name,
            size,
            sha256,
        } => {
            let Some(k) = app.transfers.iter().position(|t| t.key == key) else {
                return;
            };
            if app.transfers[k].state != TransferState::Hashing {
                return;
            }
            let max = app.limits.max_file_size;
            let t = &mut app.transfers[k];
            t.name = line(&name);
            t.size = size;
            t.sha256 = sha256.clone();
            t.path = Some(path);
            let chat = t.chat.clone();
            if max == 0 || size > max {
                let why = if max == 0 {
                    "this server does not relay files".to_owned()
                } else {
                    format!("the server takes at most {}", human_size(max))
                };
                t.state = TransferState::Failed(why.clone());
                let text = format!("cannot send {} ({}): {why}", t.name, human_size(size));
                say(app, &chat, LineBody::Error(text));
                return;
            }
            t.state = TransferState::Offered;
            let to = t.peer.clone();
            app.requests.push(ClientMsg::FileOffer(client::FileOffer {
                id: Some(key),
                to,
                name,
                size,
                sha256,
            }));
            flush_outbox(app, out);
        }
        FileEvent::HashFailed { key, reason } => {
            let Some(k) = app.transfers.iter().position(|t| t.key == key) else {
                return;
            };
            let reason = line(&reason);
            let t = &mut app.transfers[k];
            t.state = TransferState::Failed(reason.clone());
            let (chat, name) = (t.chat.clone(), t.name.clone());
            say(
                app,
                &chat,
                LineBody::Error(format!("cannot send {name}: {reason}")),
            );
        }
        FileEvent::Opened { file, offset } => {
            let Some(k) = find(app, file) else { return };
            let now = app.now_ms;
            let t = &mut app.transfers[k];
            if t.state != TransferState::Opening {
                return;
            }
            t.state = TransferState::Active;
            t.offset = offset;
            t.mark = offset;
            t.start_offset = offset;
            t.started_ms = now;
            let (chat, name) = (t.chat.clone(), t.name.clone());
            out.push(Command::Send(ClientMsg::FileAccept(client::FileAccept {
                file,
                offset,
            })));
            let text = if offset == 0 {
                format!("receiving {name}…")
            } else {
                format!("resuming {name} from {}", human_size(offset))
            };
            say(app, &chat, LineBody::Info(text));
        }
        FileEvent::Stored { file, offset } => {
            let Some(k) = find(app, file) else { return };
            let t = &mut app.transfers[k];
            if !matches!(
                t.state,
                TransferState::Active | TransferState::Paused | TransferState::Verifying
            ) {
                return;
            }
            t.offset = offset;
            if offset >= t.mark + ACK_EVERY || (offset >= t.size && t.mark < t.size) {
                t.mark = offset;
                out.push(Command::Send(ClientMsg::FileAck(client::FileAck {
                    file,
                    offset,
                })));
            }
        }
        FileEvent::Finished { file, path } => {
            let Some(k) = find(app, file) else { return };
            let t = &mut app.transfers[k];
            t.state = TransferState::Done;
            t.path = Some(path.clone());
            let (chat, name) = (t.chat.clone(), t.name.clone());
            let path = line(&path.display().to_string());
            say(
                app,
                &chat,
                LineBody::Info(format!("received {name}: saved as {path} (SHA-256 ok)")),
            );
        }
        FileEvent::Failed { file, reason } => {
            let Some(k) = find(app, file) else { return };
            let reason = line(&reason);
            let t = &mut app.transfers[k];
            if t.state.is_final() {
                return;
            }
            t.state = TransferState::Failed(reason.clone());
            let (chat, name) = (t.chat.clone(), t.name.clone());
            out.push(Command::Send(ClientMsg::FileCancel(client::FileCancel {
                file,
                reason: Some(reason.clone()),
            })));
            out.push(Command::File(FileJob::Stop { file }));
            say(
                app,
                &chat,
                LineBody::Error(format!("{name} failed: {reason}; nothing kept")),
            );
        }
    }
}

/// `file_offered`: our own offer's copy binds its id; anyone else's is a new offer.
pub fn on_offered(app: &mut App, o: FileOffered, out: &mut Vec<Command>) {
    if let Some(r) = &mut app.reannounce {
        r.files.retain(|&f| f != o.file);
    }
    let own =
        o.id.as_ref()
            .and_then(|id| app.transfers.iter().position(|t| &t.key == id));
    if let Some(k) = own {
        let t = &mut app.transfers[k];
        t.file = Some(o.file);
        let text = format!(
            "offered {} ({}) to {} as file {} — /cancel {} to withdraw",
            t.name,
            human_size(t.size),
            line(&t.peer),
            o.file,
            o.file
        );
        let chat = t.chat.clone();
        say(app, &chat, LineBody::Info(text));
        return;
    }
    // A known, still open transfer is re-announced after a reconnect: nothing new. One that is
    // over does not hide a new offer that got the same number (from an older server).
    let known_open = find(app, o.file).is_some_and(|k| !app.transfers[k].state.is_final());
    if app.is_me(&o.from) || known_open {
        return;
    }
    let chat = if o.to.starts_with('#') {
        o.to.clone()
    } else {
        o.from.clone()
    };
    let name = line(&o.name);
    let from = line(&o.from);
    let mut t = Transfer {
        key: format!("file-{}", o.file),
        file: Some(o.file),
        dir: Direction::Receive,
        peer: o.from.clone(),
        chat: chat.clone(),
        name: name.clone(),
        size: o.size,
        sha256: o.sha256.to_ascii_lowercase(),
        state: TransferState::Offered,
        offset: 0,
        mark: 0,
        started_ms: app.now_ms,
        start_offset: 0,
        path: None,
    };
    let limit = match app.limits.max_file_size {
        0 => app.max_download,
        server => server.min(app.max_download),
    };
    let valid_hash = t.sha256.len() == 64 && t.sha256.bytes().all(|b| b.is_ascii_hexdigit());
    let refusal = if o.size > limit {
        Some(format!("larger than {} allowed", human_size(limit)))
    } else if !valid_hash {
        Some("no valid SHA-256".to_owned())
    } else {
        None
    };
    if let Some(why) = refusal {
        t.state = TransferState::Declined;
        app.transfers.push(t);
        out.push(Command::Send(ClientMsg::FileDecline(client::FileDecline {
            file: o.file,
        })));
        let text = format!(
            "{from} offered {name} ({}): declined, {why}",
            human_size(o.size)
        );
        say(app, &chat, LineBody::Error(text));
        return;
    }
    app.transfers.push(t);
    let text = format!(
        "{from} offers {name} ({}) — /accept {} or /decline {}",
        human_size(o.size),
        o.file,
        o.file
    );
    say(app, &chat, LineBody::Info(text));
    // An offer waits for an answer: flag it like a mention where it landed.
    let i = app.buffer_for(&chat);
    if i != app.active {
        app.buffers[i].mentions += 1;
    }
    if app.bell {
        out.push(Command::Bell);
    }
}

/// `file_accepted`: stream from the offset asked for.
pub fn on_accepted(app: &mut App, a: FileAccepted, out: &mut Vec<Command>) {
    let Some(k) = find(app, a.file).filter(|&k| app.transfers[k].dir == Direction::Send) else {
        return;
    };
    let (now, generation, chunk) = (app.now_ms, app.generation, chunk_len(app));
    let t = &mut app.transfers[k];
    if t.state.is_final() {
        return;
    }
    let Some(path) = t.path.clone() else { return };
    let resumed =
        matches!(t.state, TransferState::Interrupted | TransferState::Paused) || t.offset > 0;
    t.state = TransferState::Active;
    t.offset = a.offset.min(t.size);
    t.start_offset = t.offset;
    t.started_ms = now;
    t.mark = t.offset + WINDOW;
    out.push(Command::File(FileJob::Upload {
        file: a.file,
        path,
        offset: t.offset,
        size: t.size,
        until: t.mark,
        chunk,
        generation,
    }));
    let (chat, name) = (t.chat.clone(), t.name.clone());
    let by = line(&a.by);
    let text = if resumed && a.offset > 0 {
        format!("{by} resumes {name} from {}", human_size(a.offset))
    } else {
        format!("{by} accepted {name}, sending…")
    };
    say(app, &chat, LineBody::Info(text));
}

/// `file_progress`: the window moves on; all of it acknowledged is the end.
pub fn on_progress(app: &mut App, p: FileProgress, out: &mut Vec<Command>) {
    let Some(k) = find(app, p.file).filter(|&k| app.transfers[k].dir == Direction::Send) else {
        return;
    };
    let t = &mut app.transfers[k];
    if t.state != TransferState::Active {
        return;
    }
    t.offset = p.offset.min(t.size).max(t.offset);
    if t.offset >= t.size {
        t.state = TransferState::Done;
        // The upload ends by itself after `file_done`; stopping it here could cut that off.
        let (chat, name, peer) = (t.chat.clone(), t.name.clone(), line(&t.peer));
        say(app, &chat, LineBody::Info(format!("sent {name} to {peer}")));
        return;
    }
    let until = t.offset + WINDOW;
    if until > t.mark {
        t.mark = until;
        out.push(Command::File(FileJob::Allow {
            file: p.file,
            until,
        }));
    }
}

/// `file_declined`.
pub fn on_declined(app: &mut App, d: FileDeclined) {
    let Some(k) = find(app, d.file).filter(|&k| app.transfers[k].dir == Direction::Send) else {
        return;
    };
    let t = &mut app.transfers[k];
    // In a room one member's "no" does not end the offer for the others.
    let room = t.peer.starts_with('#');
    if !room {
        t.state = TransferState::Declined;
    }
    let (chat, name) = (t.chat.clone(), t.name.clone());
    let by = line(&d.by);
    say(app, &chat, LineBody::Info(format!("{by} declined {name}")));
}

/// `file_cancelled`: stop whatever we do for it; a download leaves nothing behind.
pub fn on_cancelled(app: &mut App, c: FileCancelled, out: &mut Vec<Command>) {
    let Some(k) = find(app, c.file) else { return };
    let t = &mut app.transfers[k];
    if t.state.is_final() {
        return;
    }
    let reason = c.reason.as_deref().map(line).unwrap_or_default();
    let by = line(&c.by);
    t.state = TransferState::Cancelled(if reason.is_empty() {
        format!("by {by}")
    } else {
        format!("by {by}: {reason}")
    });
    let (chat, name) = (t.chat.clone(), t.name.clone());
    out.push(Command::File(FileJob::Stop { file: c.file }));
    let text = if reason.is_empty() {
        format!("{by} cancelled {name}")
    } else {
        format!("{by} cancelled {name}: {reason}")
    };
    say(app, &chat, LineBody::Error(text));
}

/// A chunk for one of our downloads goes to the disk.
pub fn on_chunk(app: &mut App, chunk: FileChunk, out: &mut Vec<Command>) {
    let Some(k) = find(app, chunk.file) else {
        return;
    };
    let now = app.now_ms;
    let t = &mut app.transfers[k];
    if t.dir == Direction::Receive && t.state == TransferState::Paused {
        // The sender is back: a new run of data.
        t.state = TransferState::Active;
        t.started_ms = now;
        t.start_offset = t.offset;
    }
    if t.dir == Direction::Receive && t.state == TransferState::Active {
        out.push(Command::File(FileJob::Write(chunk)));
    }
}

/// `file_done` for one of our downloads: check it.
pub fn on_done(app: &mut App, done: FileDone, out: &mut Vec<Command>) {
    let Some(k) = find(app, done.file) else {
        return;
    };
    let t = &mut app.transfers[k];
    if t.dir == Direction::Receive
        && matches!(t.state, TransferState::Active | TransferState::Paused)
    {
        t.state = TransferState::Verifying;
        out.push(Command::File(FileJob::Finish { file: done.file }));
    }
}

/// Transfer `k` is gone from the server: it fails, and its IO stops.
fn forget(app: &mut App, k: usize, out: &mut Vec<Command>) {
    let t = &mut app.transfers[k];
    if t.state.is_final() {
        return;
    }
    t.state = TransferState::Failed(FORGOTTEN.to_owned());
    let (chat, name) = (t.chat.clone(), t.name.clone());
    if let Some(file) = t.file {
        out.push(Command::File(FileJob::Stop { file }));
    }
    say(app, &chat, LineBody::Error(format!("{name}: {FORGOTTEN}")));
}

/// The file id in a message such as "no file 7 (unknown or expired)".
fn file_in_message(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w.eq_ignore_ascii_case("file") {
            if let Some(n) = words.clone().next().and_then(|n| {
                n.trim_start_matches('#')
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            }) {
                return Some(n);
            }
        }
    }
    None
}

/// A `notice` "X disconnected: file N (name) is paused…": true when it is about one of our
/// running transfers, which then shows "paused" (and the notice goes to its conversation).
pub fn on_paused_notice(app: &mut App, text: &str) -> bool {
    if !text.contains(" disconnected: file ") || !text.contains("paused") {
        return false;
    }
    let Some(k) = file_in_message(text).and_then(|f| find(app, f)) else {
        return false;
    };
    let t = &mut app.transfers[k];
    if t.state.is_final() {
        return false;
    }
    if t.state == TransferState::Active {
        t.state = TransferState::Paused;
    }
    let chat = t.chat.clone();
    say(app, &chat, LineBody::Info(line(text)));
    true
}

/// A join-burst page (no id) for `room`: once every room's burst is in, the open transfers
/// the server did not re-announce are gone.
pub fn on_burst_page(app: &mut App, room: &str, out: &mut Vec<Command>) {
    let Some(r) = &mut app.reannounce else { return };
    let key = chat_proto::nick::fold_room(room);
    r.rooms.retain(|x| *x != key);
    if !r.rooms.is_empty() {
        return;
    }
    let files = std::mem::take(&mut r.files);
    app.reannounce = None;
    for file in files {
        if let Some(k) = find(app, file) {
            forget(app, k, out);
        }
    }
}

/// An `error`: true when it answers one of our offers (which then failed), or is a
/// `file_refused` about a transfer the server no longer knows.
pub fn on_error(app: &mut App, e: &Error, out: &mut Vec<Command>) -> bool {
    if e.id.is_none() && e.code == chat_proto::ErrorCode::FileRefused {
        let open = file_in_message(&e.message)
            .and_then(|f| find(app, f))
            .filter(|&k| {
                matches!(
                    app.transfers[k].state,
                    TransferState::Active
                        | TransferState::Interrupted
                        | TransferState::Paused
                        | TransferState::Opening
                )
            });
        if let Some(k) = open {
            forget(app, k, out);
            return true;
        }
        return false;
    }
    let Some(id) = &e.id else { return false };
    let Some(k) = app.transfers.iter().position(|t| &t.key == id) else {
        return false;
    };
    let text = line(&e.message);
    let code = e.code.as_str();
    let t = &mut app.transfers[k];
    t.state = TransferState::Failed(format!("{code}: {text}"));
    let (chat, name) = (t.chat.clone(), t.name.clone());
    say(
        app,
        &chat,
        LineBody::Error(format!("cannot send {name}: {code}: {text}")),
    );
    true
}

/// The connection dropped: data stops until the reconnect.
pub fn on_disconnected(app: &mut App) {
    for t in &mut app.transfers {
        if matches!(
            t.state,
            TransferState::Active | TransferState::Opening | TransferState::Paused
        ) {
            t.state = TransferState::Interrupted;
        }
    }
}

/// A new session: every interrupted download re-checks its `.part` and accepts again from
/// what it holds; interrupted uploads wait for that `file_accepted`.
pub fn on_reconnected(app: &mut App, rooms: &[String], out: &mut Vec<Command>) {
    let files: Vec<u64> = app
        .transfers
        .iter()
        .filter(|t| !t.state.is_final() && t.state != TransferState::Hashing)
        .filter_map(|t| t.file)
        .collect();
    // Without a join burst there is no point to wait for; a `file_refused` still tells.
    app.reannounce = (!files.is_empty() && !rooms.is_empty()).then(|| Reannounce {
        files,
        rooms: rooms
            .iter()
            .map(|r| chat_proto::nick::fold_room(r))
            .collect(),
    });
    for t in &mut app.transfers {
        if t.state == TransferState::Interrupted && t.dir == Direction::Receive {
            if let Some(file) = t.file {
                t.state = TransferState::Opening;
                out.push(Command::File(FileJob::Resume { file }));
            }
        }
    }
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
