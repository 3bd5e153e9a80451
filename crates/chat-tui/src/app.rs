//! The model: everything the screen shows, as plain data.
//!
//! Nothing here does IO. [`crate::update`] changes an [`App`]; [`crate::ui`] draws it. Every
//! string that came from the network is sanitized before it is stored in a [`Line`], so the
//! renderer can print lines as they are (names, topics and member lists are sanitized again at
//! render time, because they are also used as keys to talk back to the server).

use chat_proto::Limits;
use chat_proto::nick::{fold_nick, fold_room};
use jiff::tz::TimeZone;
use ratatui::style::Color;
use tui_input::Input;

use crate::pacer::SendPacer;
use crate::transfer::{DEFAULT_MAX_DOWNLOAD, Transfer};

/// Most lines a buffer keeps; older ones are dropped (and can be fetched again as history).
pub const MAX_LINES: usize = 5000;

/// Which conversation a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferKind {
    /// Server notices, errors without a room, `/rooms` answers, help.
    Server,
    /// A room, by its name as the server spells it (`#rust`).
    Room(String),
    /// A direct conversation with a nick.
    Dm(String),
}

impl BufferKind {
    /// The name as shown in the room list and status bar (not yet sanitized).
    pub fn label(&self) -> &str {
        match self {
            BufferKind::Server => "server",
            BufferKind::Room(name) | BufferKind::Dm(name) => name,
        }
    }

    /// Whether this buffer is the room or DM partner `name` (compared by identity fold).
    pub fn is(&self, name: &str) -> bool {
        match self {
            BufferKind::Server => false,
            BufferKind::Room(room) => name.starts_with('#') && fold_room(room) == fold_room(name),
            BufferKind::Dm(nick) => !name.starts_with('#') && fold_nick(nick) == fold_nick(name),
        }
    }

    /// The `to` of a `send` to this buffer, if one can be sent.
    pub fn target(&self) -> Option<&str> {
        match self {
            BufferKind::Server => None,
            BufferKind::Room(name) | BufferKind::Dm(name) => Some(name),
        }
    }
}

/// Where the session with the server stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Opening the connection; `attempt` counts from 1 since the last success.
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// The session is open.
    Connected,
    /// The connection is lost; the network client retries at `retry_at` (ms since epoch).
    Disconnected {
        /// Why (sanitized).
        reason: String,
        /// When the next attempt starts, if one is planned.
        retry_at: Option<i64>,
    },
}

/// What happened to a message you sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Not yet acknowledged by the server (maybe not even sent: see the outbox).
    Pending,
    /// The server accepted it.
    Acked,
    /// The server refused it (sanitized reason).
    Failed(String),
}

/// One entry of a buffer's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Time in ms since the epoch (server time, or local time for local lines).
    pub ts: i64,
    /// Room (or DM pair) sequence number, for messages the server numbered.
    pub seq: Option<u64>,
    /// Server message id, for messages the server numbered. Together with `seq` and `ts` it
    /// identifies a message: `seq` alone repeats (a restarted in-memory server, a DM pair after
    /// a nick change).
    pub mid: Option<u64>,
    /// What the line says.
    pub body: LineBody,
}

/// What a line says. Every string in here is already sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineBody {
    /// A chat message.
    Chat {
        /// Sender.
        from: String,
        /// Text; may contain `\n` (sanitized with `sanitize_text`).
        text: String,
        /// `/me` action.
        action: bool,
        /// Sent by us.
        own: bool,
        /// Mentions our nick.
        mention: bool,
        /// Delivery state for our own messages (`Acked` for everybody else's).
        delivery: Delivery,
        /// Client message id, for our own messages.
        id: Option<String>,
    },
    /// Consecutive joins and parts, collapsed into one line.
    Membership {
        /// Who joined, in order.
        joined: Vec<String>,
        /// Who left, in order.
        parted: Vec<String>,
    },
    /// Information from the client or the server (topic changes, nick changes, answers).
    Info(String),
    /// Something went wrong, or a hint about input we did not send.
    Error(String),
}

/// A message waiting for its `ack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Client message id, chosen once when the message is created.
    pub id: String,
    /// `#room` or nick.
    pub to: String,
    /// The text as typed.
    pub text: String,
    /// `/me` action.
    pub action: bool,
    /// The connection generation it was last sent on (`None`: never sent).
    pub sent_on: Option<u64>,
    /// The server refused it for rate: send again at this time (ms since the epoch).
    pub retry_at: Option<i64>,
}

/// A `join` sent and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJoin {
    /// Request id (the error that refuses it carries it).
    pub id: String,
    /// The room asked for.
    pub room: String,
    /// Typed by the user (`/join`): show the room once joined. Otherwise a rejoin after a
    /// reconnect, whose buffer already exists.
    pub by_user: bool,
}

/// Up/Down history of what was typed in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputHistory {
    /// Entries, oldest first.
    pub entries: Vec<String>,
    /// Index being shown while browsing; `None` when editing fresh text.
    pub pos: Option<usize>,
    /// The fresh text saved when browsing started.
    pub draft: String,
}

/// One conversation: its timeline and everything the screen shows about it.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// What conversation this is.
    pub kind: BufferKind,
    /// Timeline, oldest first.
    pub lines: Vec<Line>,
    /// Members (rooms only), as the server sent them.
    pub members: Vec<String>,
    /// The member count a large room's `name_list` gave (its members are not all listed, and
    /// its joins and parts are not announced); `None`: `members` is the room.
    pub member_count: Option<u32>,
    /// The room's topic, sanitized; empty when none.
    pub topic: String,
    /// When the topic was set, as the server said (none: unknown).
    pub topic_ts: Option<i64>,
    /// Only operators may change the topic.
    pub topic_locked: bool,
    /// Whether we are in the room (false after `/part` or while offline).
    pub joined: bool,
    /// Rows scrolled up from the bottom; 0 follows new messages.
    pub scroll: usize,
    /// Lines that arrived below the view while scrolled up.
    pub unseen_below: usize,
    /// Messages that arrived while another buffer was active.
    pub unread: usize,
    /// Mentions (and DMs) that arrived while another buffer was active.
    pub mentions: usize,
    /// Index of the first line not seen when we last left this buffer.
    pub read_marker: Option<usize>,
    /// Whether the server said older history exists beyond what is loaded.
    pub more_before: bool,
    /// A `history {before}` request is in flight.
    pub loading_older: bool,
    /// What was typed here.
    pub history: InputHistory,
}

impl Buffer {
    /// An empty buffer for `kind`.
    pub fn new(kind: BufferKind) -> Self {
        Buffer {
            kind,
            lines: Vec::new(),
            members: Vec::new(),
            member_count: None,
            topic: String::new(),
            topic_ts: None,
            topic_locked: false,
            joined: false,
            scroll: 0,
            unseen_below: 0,
            unread: 0,
            mentions: 0,
            read_marker: None,
            more_before: true,
            loading_older: false,
            history: InputHistory::default(),
        }
    }

    /// The smallest sequence number loaded.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.lines.iter().filter_map(|l| l.seq).min()
    }

    /// Whether this message (`seq`, `mid` and `ts` all equal) is loaded.
    pub fn has_message(&self, seq: u64, mid: u64, ts: i64) -> bool {
        self.lines
            .iter()
            .rev()
            .any(|l| l.seq == Some(seq) && l.mid == Some(mid) && l.ts == ts)
    }

    /// Whether there is activity worth jumping to.
    pub fn has_activity(&self) -> bool {
        self.unread > 0 || self.mentions > 0
    }
}

/// What keys currently mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputMode {
    /// Editing the input line.
    #[default]
    Normal,
    /// Asking whether to send a long (pasted) input: `y` sends, `n`/Esc goes back to editing.
    ConfirmSend,
    /// Asking whether to trust (pin) the server's certificate: typing the word `yes` and Enter
    /// pins it and connects (like ssh); anything else stays offline.
    TrustCertificate,
    /// The server refused our login: the password is typed (shown as stars, never kept in the
    /// input history) and sent with the next hello; Esc goes back to the input line.
    Password(crate::net::PasswordFor),
}

/// Tab completion in progress: repeated Tab cycles through `candidates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Full replacements (with their suffix), in order.
    pub candidates: Vec<String>,
    /// Which one is in the input now.
    pub index: usize,
    /// Char index where the completed word starts.
    pub start: usize,
    /// Char length of the replacement currently inserted.
    pub inserted: usize,
}

/// Colours and presentation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Use colours at all (false: only bold / reverse / underline carry meaning).
    pub colors: bool,
    /// Palette nicks are coloured from.
    pub nick_palette: Vec<Color>,
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            colors: true,
            nick_palette: vec![
                Color::Red,
                Color::Green,
                Color::Yellow,
                Color::Blue,
                Color::Magenta,
                Color::Cyan,
                Color::LightRed,
                Color::LightGreen,
                Color::LightYellow,
                Color::LightBlue,
                Color::LightMagenta,
                Color::LightCyan,
            ],
        }
    }
}

/// The whole client state.
#[derive(Debug, Clone)]
pub struct App {
    /// Our nick as the server knows it (or as asked for, before `welcome`).
    pub me: String,
    /// `host:port`, for the status bar.
    pub server: String,
    /// The connection uses TLS (always, when set: there is no plaintext fallback).
    pub tls: bool,
    /// Connection state.
    pub conn: ConnState,
    /// Connection generation: increases on every `welcome`, so the outbox knows what was sent
    /// on the current connection.
    pub generation: u64,
    /// Conversations; index 0 is the server buffer.
    pub buffers: Vec<Buffer>,
    /// Index of the buffer on screen.
    pub active: usize,
    /// The input editor.
    pub input: Input,
    /// What keys mean now.
    pub mode: InputMode,
    /// What is typed in answer to the trust question or the password prompt, apart from the
    /// input line (and its history); emptied when the question appears, so nothing typed
    /// before it counts.
    pub answer: String,
    /// Tab completion in progress.
    pub completion: Option<Completion>,
    /// Messages not yet acknowledged, oldest first.
    pub outbox: Vec<Outgoing>,
    /// Requests (joins, history pages) waiting for the pacer; sent before the outbox.
    pub requests: Vec<chat_proto::ClientMsg>,
    /// Joins sent (or queued) and not yet answered.
    pub joins: Vec<PendingJoin>,
    /// Prefix of client message ids: random per run, so ids never collide across runs.
    pub id_prefix: String,
    /// Counter of client message ids.
    pub next_id: u64,
    /// Show the member list on the right.
    pub show_members: bool,
    /// Terminal size (columns, rows), for scrolling by pages.
    pub size: (u16, u16),
    /// Now, in ms since the epoch; the runtime sets it before each update.
    pub now_ms: i64,
    /// Time zone timestamps are shown in.
    pub tz: TimeZone,
    /// Ring the terminal bell on mentions and DMs.
    pub bell: bool,
    /// Presentation settings.
    pub theme: Theme,
    /// Limits announced by the server.
    pub limits: Limits,
    /// Paces the outbox by the server's announced rate, keeping sends in order.
    pub pacer: SendPacer,
    /// File transfers, both ways, oldest first.
    pub transfers: Vec<Transfer>,
    /// After a reconnect: the open transfers the server has not re-announced yet, and the
    /// rooms whose join burst is still to come (see [`crate::transfer::Reannounce`]).
    pub reannounce: Option<crate::transfer::Reannounce>,
    /// Largest download accepted; bigger offers are declined.
    pub max_download: u64,
    /// Set when the user asked to quit.
    pub quit: bool,
}

impl App {
    /// A fresh client for `me` on `server`, with the server buffer only.
    pub fn new(
        me: impl Into<String>,
        server: impl Into<String>,
        id_prefix: impl Into<String>,
    ) -> Self {
        App {
            me: me.into(),
            server: server.into(),
            tls: false,
            conn: ConnState::Connecting { attempt: 1 },
            generation: 0,
            buffers: vec![Buffer::new(BufferKind::Server)],
            active: 0,
            input: Input::default(),
            mode: InputMode::Normal,
            answer: String::new(),
            completion: None,
            outbox: Vec::new(),
            requests: Vec::new(),
            joins: Vec::new(),
            id_prefix: id_prefix.into(),
            next_id: 1,
            show_members: true,
            size: (80, 24),
            now_ms: 0,
            tz: TimeZone::UTC,
            bell: true,
            theme: Theme::default(),
            limits: Limits::default(),
            pacer: SendPacer::new(&Limits::default(), 0),
            transfers: Vec::new(),
            reannounce: None,
            max_download: DEFAULT_MAX_DOWNLOAD,
            quit: false,
        }
    }

    /// The buffer on screen.
    pub fn active_buffer(&self) -> &Buffer {
        &self.buffers[self.active.min(self.buffers.len() - 1)]
    }

    /// The buffer on screen, mutably.
    pub fn active_buffer_mut(&mut self) -> &mut Buffer {
        let i = self.active.min(self.buffers.len() - 1);
        &mut self.buffers[i]
    }

    /// Index of the buffer for room or nick `name`, if open.
    pub fn find_buffer(&self, name: &str) -> Option<usize> {
        self.buffers.iter().position(|b| b.kind.is(name))
    }

    /// Index of the buffer for room or nick `name`, opened if needed (rooms before DMs).
    pub fn buffer_for(&mut self, name: &str) -> usize {
        if let Some(i) = self.find_buffer(name) {
            return i;
        }
        if name.starts_with('#') {
            let at = self
                .buffers
                .iter()
                .position(|b| matches!(b.kind, BufferKind::Dm(_)))
                .unwrap_or(self.buffers.len());
            self.buffers
                .insert(at, Buffer::new(BufferKind::Room(name.to_owned())));
            if self.active >= at {
                self.active += 1;
            }
            at
        } else {
            self.buffers
                .push(Buffer::new(BufferKind::Dm(name.to_owned())));
            self.buffers.len() - 1
        }
    }

    /// Whether `nick` is us.
    pub fn is_me(&self, nick: &str) -> bool {
        fold_nick(nick) == fold_nick(&self.me)
    }

    /// A new client message id: `<session prefix>-<counter>`.
    pub fn new_message_id(&mut self) -> String {
        let id = format!("{}-{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// Whether the session is open.
    pub fn is_connected(&self) -> bool {
        self.conn == ConnState::Connected
    }

    /// Whether something on screen or in the outbox changes with time (so the loop ticks).
    pub fn needs_tick(&self) -> bool {
        matches!(
            self.conn,
            ConnState::Disconnected {
                retry_at: Some(_),
                ..
            }
        ) || self.transfers.iter().any(|t| t.state.shows_gauge())
            || (self.is_connected()
                && (!self.requests.is_empty()
                    || self
                        .outbox
                        .iter()
                        .any(|o| o.sent_on != Some(self.generation))))
    }

    /// Total unread messages and mentions in buffers other than the active one.
    pub fn activity_totals(&self) -> (usize, usize) {
        self.buffers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.active)
            .fold((0, 0), |(u, m), (_, b)| (u + b.unread, m + b.mentions))
    }
}
