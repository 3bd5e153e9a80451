//! The hub: the one actor that owns nicks, presence, rooms and history.
//!
//! Sessions talk to it through a cloneable [`HubHandle`] over a bounded command channel; the hub
//! answers and fans out by putting pre-encoded frames (`Bytes`) on each connection's bounded
//! outbound queue. A broadcast is encoded once and the same bytes are cloned to every recipient.
//! Because every reply goes through the same queue as the broadcasts, a client sees its `ack` at
//! the point in its stream where the others see the `message`.
//!
//! **Architecture Invariant:** connections → hub is a bounded channel on which the sender
//! *awaits* (backpressure lands on that one reader, nobody else); hub → connections uses
//! `try_send` only and the hub never awaits a client. So there is no cycle of bounded channels,
//! and one stalled client can never stall the hub or the other members of a room.
//!
//! Messages are stored before anyone hears of them, but the hub never waits for the disk: it
//! stamps a message, hands it to the [`HistoryStore`] and goes on with the next command; the
//! store's report (a [`Done`] on the completion channel, which the hub selects on next to its
//! commands) is what acks the sender and broadcasts, in `seq` order. While too many messages
//! are in flight the hub stops taking commands, which backs up into the readers.
//!
//! Frames for a connection are staged during a hub *turn* (a command and those queued behind
//! it, at most [`MAX_TURN`] commands or [`MAX_TURN_FRAMES`] deliveries) and queued once at its
//! end, as one item of shared frames (`outbox`): one channel operation per connection per turn
//! instead of one per frame, and no copies. Order
//! per connection is the order of staging, so nothing about what a client sees changes.
//!
//! When a client's queue is full (more than `--outbound-queue` frames waiting) the hub marks it
//! lagged: it takes the last `seq` it queued to
//! that client per room, drops it from every room and the nick table, announces its `quit` with
//! reason `lagged`, and kicks its session (a oneshot, which never blocks) with those sequences.
//! The session then writes `notice lagged` (with the sequences) and `error lagged` after the
//! queue drains, and closes.
//!
//! # Layout
//! - this file: the handle, the commands, the actor loop, delivery and lag, register and leave.
//! - `rooms`: request dispatch, and room and presence requests (`join`, `topic`, ...).
//! - `chat`: `send` (to a room or a user), the store's reports, and `typing`.
//! - `history`: `history` pages and `search`, bounded by what was broadcast.
//! - `fit`: keeping every frame within the announced `max_body` (pages, lists, reasons).
//! - `outbox`: a connection's frames of the current turn, and the frames in its queue.
//! - `run`: consecutive messages of one sender into one room, one buffer for all recipients.
//! - `account`: registered nicks (argon2 hashes), login checks off the hub, throttling.
//! - `operator`: `--admin` powers: kick, ban, unban, mute, topic locks.
//! - `topics`: room topics and locks, kept while a room is empty and across restarts.
//! - `transfer`: file offers and the relay of chunks, with credit-based flow control.

mod account;
mod chat;
mod fit;
mod history;
mod membership;
mod operator;
mod outbox;
mod rooms;
mod run;
mod topics;
mod transfer;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use chat_proto::client::Hello;
use chat_proto::frame::{HEADER_LEN, Header};
use chat_proto::server::{QuitEvent, Welcome};
use chat_proto::{ClientMsg, ErrorCode, ServerMsg, WireMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info};

pub use account::{check_password, hash_password, server_password_ok};

use crate::config::Config;
use crate::history::{Done, HistoryStore};
use crate::queue;
use crate::room::Room;
use chat_proto::nick::{fold_nick, validate_nick};

/// Server-assigned id of one connection, unique while the server runs.
pub type SessionId = u64;

/// The room every new session joins.
pub const LOBBY: &str = "#lobby";

/// Messages handed to the store and not yet reported, at most; beyond it the hub stops taking
/// commands until the store catches up. Below the store's queue bound, so appends never find
/// that queue full in normal operation.
const MAX_IN_FLIGHT: usize = 4096;

/// Commands handled in one turn at most, before the staged frames are queued.
const MAX_TURN: usize = 128;
/// Frames staged for all connections in one turn at most (handles to shared frames, 32 bytes
/// each, so at most 16 MiB staged): in a room of 10,000 a turn ends after ~50 messages. Larger
/// turns mean fewer, larger queue items: fan-out to 10,000 doubled from 64 Ki to 512 Ki.
const MAX_TURN_FRAMES: usize = 512 * 1024;
/// A turn with about one frame for each of at least [`LINGER_CONNS`] connections waits up to
/// this long for more commands before it queues them. Each connection in the turn costs a writer wake-up and a
/// `write` (~1 µs): a room of 1000 at 1000 messages a second would otherwise cost a core just
/// in syscalls, one per member per message, and the queues (and latency) would grow until the
/// writes coalesced by themselves. Waiting 1 ms puts the messages of that millisecond in one
/// write per member. Smaller turns never wait: their messages go out at once.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);
/// See [`LINGER`].
const LINGER_CONNS: usize = 500;

/// What a session hands the hub when it asks to register.
#[derive(Debug)]
pub struct ConnInfo {
    /// The session's id.
    pub id: SessionId,
    /// The peer's address, for logs.
    pub peer: SocketAddr,
    /// The connection's outbound queue; the hub only ever `try_send`s on it.
    pub out_tx: queue::Sender,
    /// Fired once if the hub drops the connection (lagged, banned); dropping it means nothing.
    pub kick_tx: oneshot::Sender<Kick>,
    /// Whether one queue item may carry several frames (a framed session writes items as they
    /// are); if not, every frame is its own item (a text session renders item by item).
    pub batches: bool,
}

/// Why the hub dropped a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kick {
    /// The outbound queue overflowed; per room, the last `seq` that was queued to the client.
    Lagged {
        /// Room name → last queued `seq`.
        seqs: BTreeMap<String, u64>,
    },
    /// An operator banned the connection's nick or address (the hub already dropped it and
    /// told its rooms); the session closes after `text`.
    Banned {
        /// For the user: the reason and until when.
        text: String,
    },
}

/// A registration the hub refused; the client may try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refused {
    /// `nick_taken` or `nick_invalid`.
    pub code: ErrorCode,
    /// Why, for the client.
    pub message: String,
    /// The nick is registered and `hello` had no password: a client that asks its user one
    /// thing at a time (text mode) asks for the password now.
    pub needs_password: bool,
}

/// The hub has stopped (the server is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the hub has stopped")]
pub struct HubGone;

/// Requests from sessions to the hub.
#[derive(Debug)]
enum Command {
    /// Open a session with the `hello` nick; the answer frames go on the connection's queue.
    Register {
        conn: ConnInfo,
        hello: Hello,
        reply: oneshot::Sender<Result<String, Refused>>,
    },
    /// A private server's password typed by a text client before its name.
    ServerPassword {
        ip: IpAddr,
        password: String,
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    /// A request of a registered session.
    Request { id: SessionId, msg: ClientMsg },
    /// Several requests of a registered session, in order (the `send`s of one read).
    Requests { id: SessionId, msgs: Vec<ClientMsg> },
    /// The session itself found its queue full.
    Lagged { id: SessionId },
    /// The session is gone; `reason` goes to its rooms in `quit`.
    Leave { id: SessionId, reason: String },
    /// From the blocking pool: whether the `hello` password matched the account `fold`.
    Verified {
        conn: ConnInfo,
        hello: Hello,
        reply: oneshot::Sender<Result<String, Refused>>,
        fold: String,
        ok: bool,
    },
    /// From the blocking pool: a `register` hashed (and stored), or why not.
    Hashed {
        id: SessionId,
        req: Option<String>,
        fold: String,
        nick: String,
        /// The registering client's address, whose hashing place is freed.
        ip: std::net::IpAddr,
        hash: Result<String, String>,
    },
}

/// A cloneable handle to the hub. Dropping every handle stops the hub.
#[derive(Debug, Clone)]
pub struct HubHandle {
    /// Bounded: senders wait when the hub is busy (backpressure on the sending reader only).
    tx: mpsc::Sender<Command>,
}

impl HubHandle {
    /// Registers a connection under the nick of `hello`; `Ok(Err(..))` is a refusal to retry.
    pub async fn register(
        &self,
        conn: ConnInfo,
        hello: Hello,
    ) -> Result<Result<String, Refused>, HubGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Register { conn, hello, reply }).await?;
        answer.await.map_err(|_| HubGone)
    }

    /// Checks a private server's password for a client at `ip` before it has a name (text
    /// mode asks for it first); wrong ones are throttled per address like failed logins.
    pub async fn check_server_password(
        &self,
        ip: IpAddr,
        password: String,
    ) -> Result<Result<(), Refused>, HubGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::ServerPassword {
            ip,
            password,
            reply,
        })
        .await?;
        answer.await.map_err(|_| HubGone)
    }

    /// Hands a request of a registered session to the hub.
    pub async fn request(&self, id: SessionId, msg: ClientMsg) -> Result<(), HubGone> {
        self.send(Command::Request { id, msg }).await
    }

    /// Hands several requests of a registered session to the hub at once, in order: one
    /// channel operation instead of one per request.
    pub async fn requests(&self, id: SessionId, msgs: Vec<ClientMsg>) -> Result<(), HubGone> {
        self.send(Command::Requests { id, msgs }).await
    }

    /// Tells the hub that the session found its own queue full.
    pub async fn lagged(&self, id: SessionId) -> Result<(), HubGone> {
        self.send(Command::Lagged { id }).await
    }

    /// Tells the hub that a session ended.
    pub async fn leave(&self, id: SessionId, reason: String) -> Result<(), HubGone> {
        self.send(Command::Leave { id, reason }).await
    }

    async fn send(&self, cmd: Command) -> Result<(), HubGone> {
        self.tx.send(cmd).await.map_err(|_| HubGone)
    }
}

/// Starts the hub on `tracker`; it runs until every [`HubHandle`] is dropped.
pub fn spawn(
    config: Arc<Config>,
    history: Box<dyn HistoryStore>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> HubHandle {
    let (tx, rx) = mpsc::channel(config.hub_queue.max(1));
    let mut history = history;
    let last_mid = history.last_mid().unwrap_or_else(|e| {
        // Reads failing at start-up is unlikely (the store was just checked); mids then
        // restart, which the store refuses as duplicates rather than overwrite anything.
        error!(error = %e, "cannot read the last message id");
        0
    });
    let done_rx = history.completions();
    let accounts = account::Accounts::load(history.db_path(), config.auth_window);
    accounts.warn_unregistered_admins(&config.admins, history.db_path().is_some());
    let hub = Hub {
        self_tx: tx.downgrade(),
        bans: operator::Bans::load(history.db_path()),
        mutes: operator::Mutes::load(history.db_path()),
        topics: topics::Topics::load(history.db_path()),
        accounts,
        config,
        history,
        done_rx,
        shutdown,
        conns: HashMap::default(),
        nicks: HashMap::new(),
        rooms: HashMap::default(),
        dm_seqs: HashMap::new(),
        next_mid: last_mid + 1,
        lagged: Vec::new(),
        dirty: Vec::new(),
        staged_frames: 0,
        stamp: None,
        recipients: Vec::new(),
        run: None,
        run_hint: (0, 0),
        pending: VecDeque::new(),
        pending_ids: HashMap::new(),
        pending_base: 0,
        held: VecDeque::new(),
        epoch: 0,
        transfers: transfer::Transfers::default(),
    };
    tracker.spawn(hub.run(rx));
    HubHandle { tx }
}

/// A registered connection as the hub sees it.
struct Conn {
    peer: SocketAddr,
    nick: Arc<str>,
    /// Folded nick: the key in `Hub::nicks`.
    fold: Arc<str>,
    out_tx: queue::Sender,
    /// Taken when the connection is kicked.
    kick_tx: Option<oneshot::Sender<Kick>>,
    /// The rooms it is in (folded names), each with the last `seq` queued to it.
    rooms: membership::Membership,
    /// Set when its queue overflowed; it gets nothing more.
    lagging: bool,
    /// Most frames seen waiting in its queue at once.
    peak_queued: usize,
    /// Frames staged this turn, and the frames in its queue.
    outbox: outbox::Outbox,
    /// See [`ConnInfo::batches`].
    batches: bool,
    /// The room name it last sent to, as it spelled it, and its fold: a client repeats the same
    /// spelling, and folding (NFKC) on every `send` was a tenth of the hub's time.
    last_room: Option<(String, Arc<str>)>,
    /// The names of its last message, which its next one reuses while they are the same (see
    /// [`crate::history::Origin`]).
    origin: Option<Arc<crate::history::Origin>>,
    /// Folded nicks it exchanged direct messages with in this run, most recent last (at most
    /// [`MAX_DM_PEERS`]): they hear its nick changes and its quit, so their DM buffers stay true.
    dm_peers: VecDeque<String>,
    /// Folded nicks whose password it gave (or registered) on this connection.
    authed: BTreeSet<String>,
}

/// Direct-message partners remembered per connection for presence events.
const MAX_DM_PEERS: usize = 64;

impl Conn {
    /// Remembers `fold` as a direct-message partner (most recent last, bounded).
    fn add_dm_peer(&mut self, fold: &str) {
        if let Some(i) = self.dm_peers.iter().position(|f| f == fold) {
            self.dm_peers.remove(i);
        }
        if self.dm_peers.len() == MAX_DM_PEERS {
            self.dm_peers.pop_front();
        }
        self.dm_peers.push_back(fold.to_owned());
    }
}

/// The actor's state. Only its own task touches it.
struct Hub {
    config: Arc<Config>,
    /// For the blocking pool to report back; weak, so it never keeps the hub alive.
    self_tx: mpsc::WeakSender<Command>,
    /// Registered nicks and login throttling.
    accounts: account::Accounts,
    /// Bans in force.
    bans: operator::Bans,
    /// Mutes in force.
    mutes: operator::Mutes,
    /// Every room's topic and lock, also while the room is empty.
    topics: topics::Topics,
    history: Box<dyn HistoryStore>,
    /// The store's reports on queued appends; `None` for a store that stores at once.
    done_rx: Option<mpsc::Receiver<Done>>,
    /// Once cancelled, departures are not announced (everyone is leaving).
    shutdown: CancellationToken,
    /// Keyed by server-assigned ids, never by client input: the fast hash is safe here.
    conns: HashMap<SessionId, Conn, foldhash::fast::RandomState>,
    /// Folded nick → session.
    nicks: HashMap<String, SessionId>,
    /// Folded room name → room. A room is removed when its last member leaves. Looked up twice
    /// per message: foldhash, seeded at random per map (names are chosen by clients, so not a
    /// fixed seed), costs a fraction of SipHash on a short name.
    rooms: HashMap<String, Room, foldhash::fast::RandomState>,
    /// Per direct conversation ([`crate::history::dm_conv`]), the last `seq` handed out.
    dm_seqs: HashMap<String, u64>,
    next_mid: u64,
    /// Connections whose queue overflowed during the current command.
    lagged: Vec<SessionId>,
    /// Connections with frames staged this turn (maybe repeated, maybe gone).
    dirty: Vec<SessionId>,
    /// Frames staged this turn, for [`MAX_TURN_FRAMES`].
    staged_frames: usize,
    /// The time messages of the command being handled are stamped with: read once per
    /// command (one client's read), as the clock was a thirtieth of the time per message.
    stamp: Option<i64>,
    /// The recipients of the message being delivered (kept to reuse its allocation).
    recipients: Vec<SessionId>,
    /// Messages of one sender into one room not delivered yet (see [`run`]).
    run: Option<run::Run>,
    /// The sizes of the last run's buffers: the next one's first guess.
    run_hint: (usize, usize),
    /// Messages handed to the store, oldest first: reports arrive in this order.
    pending: VecDeque<chat::Pending>,
    /// (sender fold, client id) → position of a pending message (`pending_base` + index).
    pending_ids: HashMap<(String, String), u64>,
    /// The position of `pending[0]`.
    pending_base: u64,
    /// Presence frames waiting for their subject's pending messages (see
    /// [`Hub::deliver_after_pending`]), in the order they were made.
    held: VecDeque<chat::Held>,
    /// Bumped when a store failure rewinds the sequences (see [`crate::history`]).
    epoch: u64,
    /// Open file transfers.
    transfers: transfer::Transfers,
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut sweep = tokio::time::interval(transfer::SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let in_flight = self.pending.len();
            let cmd = tokio::select! {
                // Store reports first: they free room for commands and release acks.
                done = recv_done(&mut self.done_rx) => {
                    match done {
                        Some(done) => self.finish(done),
                        None => self.store_gone(),
                    }
                    self.end_turn();
                    continue;
                }
                // Now and then: drop expired file offers.
                _ = sweep.tick() => {
                    self.expire_transfers();
                    self.end_turn();
                    continue;
                }
                // Sessions' commands, unless too much waits for the store (backpressure).
                cmd = rx.recv(), if in_flight < MAX_IN_FLIGHT => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
            };
            self.command(cmd);
            // The commands queued behind it belong to the same turn: their frames go out with
            // its frames, one queue item per connection.
            let mut handled = 1;
            let mut linger_until = None;
            while handled < MAX_TURN
                && self.staged_frames < MAX_TURN_FRAMES
                && self.pending.len() < MAX_IN_FLIGHT
            {
                let cmd = match rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(_) if self.lingers(linger_until.is_some()) => {
                        // A turn that wakes this many writers for about one frame each waits
                        // a moment for more, so they write several per wake-up (`LINGER`).
                        let until = *linger_until
                            .get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(cmd)) => cmd,
                            Ok(None) | Err(_) => break,
                        }
                    }
                    Err(_) => break,
                };
                self.command(cmd);
                handled += 1;
            }
            self.end_turn();
        }
        self.end_turn();
        // Unblock the writer before the store's drop waits for it to finish the queue.
        drop(self.done_rx.take());
        debug!(in_flight = self.pending.len(), "hub stopped");
    }

    /// Whether the turn waits for more commands before it ends (see [`LINGER`]): it has frames
    /// for many connections but about one each (a trickle of messages into a big room; a burst
    /// already fills its turn, and waiting would only stall a sender that waits for its
    /// deliveries), or it has begun waiting already; and nothing waits for the store.
    fn lingers(&self, begun: bool) -> bool {
        let conns = self.dirty.len();
        conns >= LINGER_CONNS
            && self.pending.is_empty()
            && (begun || self.staged_frames < 2 * conns)
    }

    /// Carries out one command of a session (or of the blocking pool).
    fn command(&mut self, cmd: Command) {
        self.stamp = None;
        let sends = match &cmd {
            Command::Request { msg, .. } => matches!(msg, ClientMsg::Send(_)),
            Command::Requests { .. } => true,
            _ => false,
        };
        if !sends {
            self.deliver_run();
        }
        match cmd {
            Command::Register { conn, hello, reply } => self.hello(conn, hello, reply),
            Command::ServerPassword {
                ip,
                password,
                reply,
            } => {
                let _ = reply.send(self.check_server_password(ip, Some(&password)));
            }
            Command::Verified {
                conn,
                hello,
                reply,
                fold,
                ok,
            } => self.verified(conn, hello, reply, fold, ok),
            Command::Hashed {
                id,
                req,
                fold,
                nick,
                ip,
                hash,
            } => self.hashed(id, req, fold, nick, ip, hash),
            Command::Request { id, msg } => self.request(id, msg),
            Command::Requests { id, msgs } => {
                for msg in msgs {
                    if !matches!(msg, ClientMsg::Send(_)) {
                        self.deliver_run();
                    }
                    self.request(id, msg);
                }
            }
            Command::Lagged { id } => self.mark_lagged(id),
            Command::Leave { id, reason } => {
                if let Some((conn, sharers)) = self.remove(id) {
                    self.announce_quit(id, &conn.nick, &sharers, &reason);
                }
            }
        }
        self.deliver_run();
        self.kick_lagged();
    }

    /// Ends a turn: queues every connection's staged frames; drops those that overflowed
    /// (which stages their `quit` for others, queued in turn).
    fn end_turn(&mut self) {
        self.deliver_run();
        loop {
            let mut dirty = std::mem::take(&mut self.dirty);
            for id in dirty.drain(..) {
                if let Some(conn) = self.conns.get_mut(&id) {
                    let queued = conn.outbox.flush(&conn.out_tx);
                    settle(id, conn, queued, &mut self.lagged);
                }
            }
            self.dirty = dirty;
            self.staged_frames = 0;
            if self.lagged.is_empty() {
                break;
            }
            self.kick_lagged();
        }
    }

    /// Admits a session under its `hello` nick; `authed` is the account it proved.
    fn register(
        &mut self,
        info: ConnInfo,
        hello: Hello,
        authed: Option<String>,
    ) -> Result<String, Refused> {
        let nick = hello.name;
        let resume = hello.resume;
        validate_nick(&nick).map_err(|e| Refused {
            code: ErrorCode::NickInvalid,
            message: format!("nick {nick:?} is invalid: {e}"),
            needs_password: false,
        })?;
        let fold = fold_nick(&nick);
        if self.nicks.contains_key(&fold) {
            return Err(Refused {
                code: ErrorCode::NickTaken,
                message: format!("nick {nick:?} is in use"),
                needs_password: false,
            });
        }
        let id = info.id;
        self.nicks.insert(fold.clone(), id);
        self.conns.insert(
            id,
            Conn {
                peer: info.peer,
                nick: Arc::from(nick.as_str()),
                fold: Arc::from(fold),
                out_tx: info.out_tx,
                kick_tx: Some(info.kick_tx),
                rooms: membership::Membership::default(),
                lagging: false,
                peak_queued: 0,
                outbox: outbox::Outbox::default(),
                batches: info.batches,
                last_room: None,
                origin: None,
                authed: authed.into_iter().collect(),
                dm_peers: VecDeque::new(),
            },
        );
        let rooms = self.resume_rooms(&resume);
        let welcome = Welcome {
            session: id,
            nick: nick.clone(),
            server: concat!("chat-server/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: self.config.limits(),
            rooms: rooms.iter().map(|(name, _)| name.clone()).collect(),
            motd: self.config.motd.clone(),
        };
        self.reply(id, welcome);
        for (name, after) in rooms {
            self.join_room(id, None, &name, after);
        }
        self.transfers_joined(id);
        debug!(
            session = id,
            nick,
            resumed = !resume.is_empty(),
            "registered"
        );
        Ok(nick)
    }

    /// Removes a session from the nick table and its rooms; returns it and who shared a room
    /// (not a large one) or a direct conversation with it.
    fn remove(&mut self, id: SessionId) -> Option<(Conn, BTreeSet<SessionId>)> {
        let mut conn = self.conns.remove(&id)?;
        // What it was sent before it went (an answer, a reason) still goes out.
        let queued = conn.outbox.flush(&conn.out_tx);
        settle(id, &mut conn, queued, &mut Vec::new());
        if self.nicks.get(&*conn.fold) == Some(&id) {
            self.nicks.remove(&*conn.fold);
        }
        self.transfers_left(&conn.fold, &conn.nick);
        let mut sharers = BTreeSet::new();
        let limit = self.config.presence_limit;
        for key in conn.rooms.keys() {
            if let Some(room) = self.rooms.get_mut(key) {
                // A large room is not told of its members' quits.
                let large = room.is_large(limit);
                room.members.remove(&id);
                if !large {
                    sharers.extend(room.members.iter().copied());
                }
                if room.is_idle() {
                    self.rooms.remove(key);
                }
            }
        }
        sharers.extend(
            conn.dm_peers
                .iter()
                .filter_map(|f| self.nicks.get(f).copied()),
        );
        Some((conn, sharers))
    }

    /// Tells the sessions in `sharers` that `subject` (`nick`) quit, after its last messages.
    fn announce_quit(
        &mut self,
        subject: SessionId,
        nick: &str,
        sharers: &BTreeSet<SessionId>,
        reason: &str,
    ) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let event = ServerMsg::Quit(QuitEvent {
            nick: nick.to_owned(),
            reason: Some(fit::clip(reason, fit::MAX_REASON)),
            ts: now_ms(),
        });
        if let Some(frame) = encode(&event) {
            self.deliver_after_pending(subject, sharers.iter().copied().collect(), frame);
        }
    }

    fn mark_lagged(&mut self, id: SessionId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.lagging {
                conn.lagging = true;
                self.lagged.push(id);
            }
        }
    }

    /// Drops every connection that overflowed, kicks its session and tells its rooms. Telling
    /// the rooms may overflow more queues; the loop runs until none is left.
    fn kick_lagged(&mut self) {
        while let Some(id) = self.lagged.pop() {
            // Room names before removal: a room emptied by it disappears. The frames staged
            // before the overflow fit the queue: they go out first and count as delivered.
            let rooms = &self.rooms;
            let seqs: BTreeMap<String, u64> = match self.conns.get_mut(&id) {
                Some(conn) => {
                    let queued = conn.outbox.flush(&conn.out_tx);
                    settle(id, conn, queued, &mut Vec::new());
                    conn.rooms
                        .iter()
                        .map(|(key, seq)| {
                            let name = rooms.get(&**key).map_or(&**key, |r| &*r.name);
                            (name.to_owned(), seq)
                        })
                        .collect()
                }
                None => continue,
            };
            let Some((mut conn, sharers)) = self.remove(id) else {
                continue;
            };
            info!(
                session = id,
                peer = %conn.peer,
                nick = &*conn.nick,
                queued = conn.peak_queued,
                bound = conn.out_tx.max_capacity(),
                ?seqs,
                "outbound queue full: dropping the connection as lagged"
            );
            if let Some(kick) = conn.kick_tx.take() {
                // The session may already be gone; then there is nobody to tell.
                let _ = kick.send(Kick::Lagged { seqs });
            }
            self.announce_quit(id, &conn.nick, &sharers, "lagged");
        }
    }

    /// Stages a frame for one connection, to be queued at the end of the turn (at once for a
    /// connection that takes one frame per item, a text session); a frame that would put more
    /// than its bound in its queue marks it lagged. `seq` records the room sequence this frame
    /// carries, for the lag notice.
    fn deliver(&mut self, to: SessionId, frame: &Bytes, seq: Option<(&str, u64)>) {
        // Whatever a run holds went before this frame.
        if self.run.is_some() {
            self.deliver_run();
        }
        let Some(conn) = self.conns.get_mut(&to) else {
            return;
        };
        if conn.lagging {
            return;
        }
        // The last guard: a frame over the announced limit would make the client drop us.
        let body = frame.len().saturating_sub(HEADER_LEN);
        if body > self.config.max_body as usize {
            let kind = Header::parse(frame).map(|h| h.kind);
            error!(
                session = to,
                body,
                ?kind,
                max_body = self.config.max_body,
                "refusing to queue a frame larger than max_body"
            );
            return;
        }
        let alone = !conn.batches;
        if alone && conn.outbox.is_plain() {
            // A text session's case: the queue holds single frames only, so the channel's own
            // bound is the frame bound.
            match conn.outbox.send_now(&conn.out_tx, frame) {
                outbox::Queued::Sent(_) => {
                    if let Some((key, s)) = seq {
                        if let Some(last) = conn.rooms.last_seq_mut(key) {
                            *last = s;
                        }
                    }
                    let queued = conn.out_tx.frames();
                    conn.peak_queued = conn.peak_queued.max(queued);
                }
                outbox::Queued::Full => {
                    conn.lagging = true;
                    self.lagged.push(to);
                }
                outbox::Queued::Closed | outbox::Queued::Nothing => {}
            }
            return;
        }
        if conn.outbox.staged() > 0 && (alone || !conn.outbox.fits(frame)) {
            // What is staged goes first, to keep the order.
            let queued = conn.outbox.flush(&conn.out_tx);
            settle(to, conn, queued, &mut self.lagged);
            if conn.lagging {
                return;
            }
        }
        if conn.outbox.waiting(&conn.out_tx) >= conn.out_tx.max_capacity() {
            conn.lagging = true;
            self.lagged.push(to);
            return;
        }
        if alone {
            // Queued as it is, shared with the other recipients.
            let queued = conn.outbox.send_now(&conn.out_tx, frame);
            if let (outbox::Queued::Sent(_), Some((key, s))) = (&queued, seq) {
                if let Some(last) = conn.rooms.last_seq_mut(key) {
                    *last = s;
                }
            }
            settle(to, conn, queued, &mut self.lagged);
            return;
        }
        if conn.outbox.staged() == 0 {
            self.dirty.push(to);
        }
        conn.outbox.stage(frame, seq);
        self.staged_frames += 1;
    }

    /// Encodes `msg` for one connection and queues it.
    fn reply(&mut self, to: SessionId, msg: impl Into<ServerMsg>) {
        if let Some(frame) = encode(&msg.into()) {
            self.deliver(to, &frame, None);
        }
    }

    /// Sends an error answering request `req_id`.
    fn refuse(&mut self, to: SessionId, req_id: Option<String>, code: ErrorCode, text: String) {
        debug!(session = to, %code, reason = text, "request refused");
        let text = fit::clip(&text, fit::MAX_ERROR_TEXT);
        self.reply(to, ServerMsg::error(req_id, code, text));
    }
}

/// Books what queuing a connection's staged frames did: the room sequences they carried now
/// count as delivered; a full queue makes it lagged (pushed on `lagged` once).
fn settle(id: SessionId, conn: &mut Conn, queued: outbox::Queued, lagged: &mut Vec<SessionId>) {
    match queued {
        outbox::Queued::Sent(seqs) => {
            for (key, s) in seqs {
                if let Some(last) = conn.rooms.last_seq_mut(&key) {
                    *last = s;
                }
            }
            let waiting = conn.outbox.waiting(&conn.out_tx);
            conn.peak_queued = conn.peak_queued.max(waiting);
        }
        outbox::Queued::Full if !conn.lagging => {
            conn.lagging = true;
            lagged.push(id);
        }
        // The session is closing and will send `Leave`.
        outbox::Queued::Full | outbox::Queued::Closed | outbox::Queued::Nothing => {}
    }
}

/// The store's next report, or never for a store that reports nothing.
async fn recv_done(rx: &mut Option<mpsc::Receiver<Done>>) -> Option<Done> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Encodes a message once; the bytes are then shared by every recipient.
fn encode(msg: &ServerMsg) -> Option<Bytes> {
    match msg.to_frame_bytes() {
        Ok(frame) => Some(frame),
        Err(e) => {
            error!(error = %e, kind = msg.kind(), "cannot encode a server message");
            None
        }
    }
}

impl Hub {
    /// The server receive time for a message of the command being handled ([`now_ms`] when
    /// the command began).
    fn stamp(&mut self) -> i64 {
        *self.stamp.get_or_insert_with(now_ms)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
