//! One text connection: the name prompt, the read `select!`, commands to hub requests, frames
//! from the hub to lines.
//!
//! The hub sees a text session exactly like a framed one: it registers with a bounded queue
//! for pre-encoded frames and sends [`chat_proto::ClientMsg`] requests. The session takes a frame off that
//! queue only when the writer's queue has room, decodes it, renders it as lines in the
//! connection's charset and queues those bytes for the writer ([`crate::writer`], the same task
//! framed sessions use). So when the client does not read, the writer stalls, its queue fills,
//! the hub's queue for this connection fills, and the hub drops the connection as lagged, the
//! same rule as for every other client.
//!
//! **Invariant:** no cycle of bounded channels that can wait. The session awaits only the hub's
//! request queue; the hub only `try_send`s to the session; the session only `try_send`s to the
//! writer and takes from the hub's queue only while the writer's queue has room.
//!
//! # Layout
//! - this file: the state, its `select!` loop, frames from the hub to lines, closing.
//! - `login`: before the name: a private server's password, the name, a registered name's
//!   password, `/login`.
//! - `typed`: typed lines to requests: commands, messages, the rate limit.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_proto::frame::{HEADER_LEN, Header};
use chat_proto::{ServerMsg, WireMessage};
use jiff::tz::TimeZone;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::MAX_LINE;
use super::charset::Charset;
use super::close::TextClose;
use super::line::{LineSplitter, Piece};
use super::render::{View, render};
use crate::config::Config;
use crate::hub::{HubHandle, Kick, SessionId};
use crate::queue::{self, TrySendError};
use crate::rate::TokenBucket;
use crate::writer::{self, Finish, Item, WriterExit};

mod login;
mod typed;

use login::Login;

/// Entries (each the lines of one frame or one answer) queued for the writer.
const WRITER_QUEUE: usize = 32;
/// Bytes asked for per read.
const READ_CHUNK: usize = 4096;
/// Longest that lines typed right after the name wait for the welcome's rooms to be joined.
const SETTLE_MAX: Duration = Duration::from_secs(2);

/// Just registered: lines wait until the rooms the welcome announced are joined, so a line
/// sent right behind the name (a pasted block, a client that sends its name and a message at
/// once) goes to `#lobby` instead of bouncing off "you are in no room".
#[derive(Debug)]
struct Settling {
    /// The welcome's rooms not joined yet; `None` until the welcome is read.
    rooms: Option<Vec<String>>,
    /// Lines go on after this even if a join never came (it was refused, say).
    until: Instant,
}

/// A text session's state besides its writer.
struct TextSession<R> {
    id: SessionId,
    peer: SocketAddr,
    config: Arc<Config>,
    hub: HubHandle,
    rd: R,
    lines: LineSplitter,
    charset: Charset,
    tz: TimeZone,
    /// The hub's queue for this connection: a clone goes to the hub on registration; we keep
    /// one so a refused name can try again.
    out_tx: queue::Sender,
    /// Frames from the hub (one per item: a text session does not batch); drained only while
    /// `text_tx` has room.
    out_rx: queue::Receiver,
    /// Rendered, encoded lines for the writer; only this session sends on it.
    text_tx: queue::Sender,
    /// The nick, once registered.
    nick: Option<String>,
    /// Before registration: what the next line answers.
    login: Login,
    /// A private server's password, once typed right: it goes in every `hello`.
    server_password: Option<String>,
    /// A telnet client was asked not to echo (a password is being typed).
    echo_off: bool,
    /// Fires if the hub drops us as lagged; `None` before registration.
    kick_rx: Option<oneshot::Receiver<Kick>>,
    /// Rooms we are in, in the order joined; the last one joined is the default target.
    rooms: Vec<String>,
    /// Where a plain line goes.
    current: Option<String>,
    bucket: TokenBucket,
    name_deadline: Instant,
    idle_deadline: Instant,
    /// When bytes last arrived (a chunk line ends after a silence from here).
    last_read: Instant,
    /// Lines refused by the rate limit.
    rate_refused: u64,
    /// Lines read and not yet handled. While any wait (for a rate token, or their turn) the
    /// socket is not read: a client over the rate is slowed down by TCP, not refused, so a
    /// pasted block arrives whole and in order.
    pending: VecDeque<Piece>,
    /// When the next pending line may be handled (a rate token is due).
    next_line_at: Instant,
    /// Times a client had to wait for the rate limit.
    throttled: u64,
    /// Right after registration, until the welcome's rooms are joined.
    settling: Option<Settling>,
}

/// Serves one text connection until it closes. `greet` asks for a name at once (the peer
/// has said nothing yet, so it is waiting for us).
pub async fn run<R, W>(
    id: SessionId,
    peer: SocketAddr,
    (rd, wr): (R, W),
    hub: HubHandle,
    config: Arc<Config>,
    shutdown: CancellationToken,
    greet: bool,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = queue::channel(config.outbound_queue);
    let (text_tx, text_rx) = queue::channel(WRITER_QUEUE);
    let (finish_tx, finish_rx) = oneshot::channel();
    let mut writer = tokio::spawn(writer::run(wr, text_rx, finish_rx, config.write_timeout));
    let now = Instant::now();
    let mut session = TextSession {
        id,
        peer,
        rd,
        lines: LineSplitter::new(MAX_LINE),
        charset: Charset::new(config.text_encoding),
        tz: TimeZone::system(),
        out_tx,
        out_rx,
        text_tx,
        nick: None,
        login: Login::first(&config),
        server_password: None,
        echo_off: false,
        kick_rx: None,
        rooms: Vec::new(),
        current: None,
        bucket: TokenBucket::new(config.rate_burst, config.rate_per_sec),
        name_deadline: now + config.text_name_timeout,
        idle_deadline: now + config.text_idle_timeout,
        last_read: now,
        rate_refused: 0,
        pending: VecDeque::new(),
        next_line_at: now,
        throttled: 0,
        settling: None,
        hub,
        config,
    };
    debug!(session = id, %peer, greet, "text session");
    let close = match session.start(greet) {
        Ok(()) => session.serve(&mut writer, &shutdown).await,
        Err(close) => close,
    };
    session.close(close, finish_tx, writer).await;
}

impl<R: AsyncRead + Unpin> TextSession<R> {
    /// The read loop: one `select!` over everything that can happen to a text connection.
    async fn serve(
        &mut self,
        writer: &mut JoinHandle<WriterExit>,
        shutdown: &CancellationToken,
    ) -> TextClose {
        let mut scratch = vec![0u8; READ_CHUNK];
        loop {
            // A partial line after pending ones waits for them (and for more bytes).
            let chunk_deadline = (self.lines.has_partial() && self.pending.is_empty())
                .then(|| self.last_read + self.config.text_chunk_timeout);
            let reading = self.pending.is_empty();
            let registered = self.nick.is_some();
            let writer_has_room = self.text_tx.capacity() > 0;
            let line_due = self.next_line_due();
            tokio::select! {
                // The server is stopping: say so, flush, close.
                () = shutdown.cancelled() => return TextClose::Shutdown,
                // The hub dropped us: our queue overflowed, or an operator banned us.
                kick = async {
                    match self.kick_rx.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if self.kick_rx.is_some() => match kick {
                    Ok(Kick::Lagged { .. }) => return TextClose::Lagged,
                    Ok(Kick::Banned { text }) => return TextClose::Banned(text),
                    // The hub let go of us without a kick: it is stopping; shutdown follows.
                    Err(_) => self.kick_rx = None,
                },
                // The writer ended on its own: a write stalled or failed.
                exit = &mut *writer => {
                    return TextClose::Writer(exit.unwrap_or_else(|e| WriterExit::Failed(io::Error::other(e))));
                }
                // Bytes from the peer, once every line read before is handled: queue the lines
                // they finish.
                read = self.rd.read(&mut scratch), if reading => match read {
                    Ok(0) => return TextClose::PeerClosed,
                    Ok(n) => {
                        self.last_read = Instant::now();
                        self.idle_deadline = self.last_read + self.config.text_idle_timeout;
                        let mut pieces = Vec::new();
                        self.lines.push(&scratch[..n], &mut pieces);
                        self.pending.extend(pieces);
                    }
                    Err(e) => return TextClose::Io(e),
                },
                // The next line read, one per turn (so the hub's frames to us keep flowing),
                // when the rate limit has a token for it (and the first rooms are joined).
                () = sleep_until(line_due), if !reading => {
                    if let Err(close) = self.next_pending().await {
                        return close;
                    }
                }
                // A frame from the hub, taken only when the writer has room: otherwise it waits
                // in the hub's queue, where an overflow makes the hub drop us as lagged.
                item = self.out_rx.recv(), if writer_has_room => match item {
                    Some(item) => {
                        for frame in item.into_frames() {
                            if let Err(close) = self.frame(&frame) {
                                return close;
                            }
                        }
                    }
                    // We hold a sender, so this cannot happen; treat it like a stopped hub.
                    None => return TextClose::HubGone,
                },
                // Text without a line ending, then silence: a chunk client waits for an answer.
                () = sleep_until(chunk_deadline.unwrap_or(self.last_read)), if chunk_deadline.is_some() => {
                    if let Some(bytes) = self.lines.flush() {
                        if let Err(close) = self.line(&bytes, false).await {
                            return close;
                        }
                    }
                }
                // No name in time.
                () = sleep_until(self.name_deadline), if !registered => return TextClose::NameTimeout,
                // Nothing typed for the idle timeout (text clients cannot answer pings).
                () = sleep_until(self.idle_deadline), if registered => return TextClose::Idle,
            }
        }
    }

    /// When the next pending line may be handled: its rate token, and after a registration the
    /// joins of the welcome's rooms (or [`SETTLE_MAX`]).
    fn next_line_due(&self) -> Instant {
        match &self.settling {
            Some(settling) => settling.until.max(self.next_line_at),
            None => self.next_line_at,
        }
    }

    /// Handles the oldest pending line if the rate limit allows; else sets when to try again.
    async fn next_pending(&mut self) -> Result<(), TextClose> {
        let wait = self.bucket.time_to_token();
        if !wait.is_zero() {
            self.throttled += 1;
            if self.throttled == 1 {
                info!(session = self.id, peer = %self.peer, nick = ?self.nick, "rate limit reached; reading more slowly");
            }
            self.next_line_at = Instant::now() + wait;
            return Ok(());
        }
        let Some(piece) = self.pending.pop_front() else {
            return Ok(());
        };
        // Still typing, as far as the idle clock goes.
        self.idle_deadline = Instant::now() + self.config.text_idle_timeout;
        if self.pending.is_empty() {
            // Reading resumes now: a partial line's silence counts from here.
            self.last_read = Instant::now();
        }
        self.piece(piece).await
    }

    /// A frame the hub queued for us: follow what it says about us, then show it.
    fn frame(&mut self, frame: &Bytes) -> Result<(), TextClose> {
        let Some(msg) = decode_frame(frame) else {
            warn!(session = self.id, "cannot decode a frame from the hub");
            return Ok(());
        };
        let mut lines = Vec::new();
        let me = self.nick.clone().unwrap_or_default();
        render(
            &msg,
            View {
                me: &me,
                tz: &self.tz,
            },
            &mut lines,
        );
        self.follow(&msg, &me, &mut lines);
        if lines.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.say(&refs)
    }

    /// Keeps our nick, rooms and current room in step with what the hub says; appends a line
    /// when where our lines go changed without our asking.
    fn follow(&mut self, msg: &ServerMsg, me: &str, lines: &mut Vec<String>) {
        match msg {
            ServerMsg::Welcome(w) => {
                self.nick = Some(w.nick.clone());
                if let Some(settling) = &mut self.settling {
                    settling.rooms = Some(w.rooms.clone());
                }
            }
            ServerMsg::Joined(j) if j.nick == me => {
                if !self.rooms.contains(&j.room) {
                    self.rooms.push(j.room.clone());
                }
                self.current = Some(j.room.clone());
                if let Some(Settling {
                    rooms: Some(rooms), ..
                }) = &mut self.settling
                {
                    rooms.retain(|r| !r.eq_ignore_ascii_case(&j.room));
                }
            }
            ServerMsg::Parted(p) if p.nick == me => {
                self.rooms.retain(|r| r != &p.room);
                if self.current.as_ref() == Some(&p.room) {
                    self.current = self.rooms.last().cloned();
                    lines.push(match &self.current {
                        Some(room) => format!("*** your lines go to {room} now"),
                        None => "*** you are in no room now: /join #room".to_owned(),
                    });
                }
            }
            ServerMsg::NickChanged(n) if n.old == me => self.nick = Some(n.new.clone()),
            _ => {}
        }
        if matches!(&self.settling, Some(Settling { rooms: Some(r), .. }) if r.is_empty()) {
            self.settling = None;
        }
    }

    /// Queues lines for the client, in its charset. Never waits: a full queue means the client
    /// is not reading.
    fn say(&mut self, lines: &[&str]) -> Result<(), TextClose> {
        let bytes = self.encode(lines);
        self.raw(bytes)
    }

    /// Queues bytes as they are (telnet commands). Never waits, like [`Self::say`].
    fn raw(&mut self, bytes: Bytes) -> Result<(), TextClose> {
        match self.text_tx.try_send(Item::One(bytes)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(TextClose::Lagged),
            // The writer is gone; its own exit is reported by the select loop.
            Err(TrySendError::Closed(_)) => Ok(()),
        }
    }

    fn encode(&self, lines: &[&str]) -> Bytes {
        let mut out = Vec::new();
        for line in lines {
            self.charset.encode_line(line, &mut out);
        }
        Bytes::from(out)
    }

    /// Ends the session: hub, last lines, writer, input drain, one log line.
    async fn close(
        mut self,
        close: TextClose,
        finish_tx: oneshot::Sender<Finish>,
        writer: JoinHandle<WriterExit>,
    ) {
        // A session the hub dropped as lagged is already gone there; leaving again is harmless.
        // A banned one must not leave again: its rooms heard "banned" already.
        if self.nick.is_some() && !matches!(close, TextClose::HubGone | TextClose::Banned(_)) {
            let _ = self.hub.leave(self.id, close.quit_reason()).await;
        }
        let mut last = Vec::new();
        // What the hub queued before we stopped reading it (not for a client that lags).
        if !matches!(close, TextClose::Lagged | TextClose::Writer(_)) {
            let me = self.nick.clone().unwrap_or_default();
            let mut lines = Vec::new();
            let frames =
                std::iter::from_fn(|| self.out_rx.try_recv().ok()).flat_map(Item::into_frames);
            for frame in frames {
                if let Some(msg) = decode_frame(&frame) {
                    let view = View {
                        me: &me,
                        tz: &self.tz,
                    };
                    render(&msg, view, &mut lines);
                }
            }
            for line in &lines {
                self.charset.encode_line(line, &mut last);
            }
        }
        let c = &self.config;
        if let Some(line) = close.last_line(c.text_name_timeout, c.text_idle_timeout) {
            self.charset.encode_line(&line, &mut last);
        }
        let grace = self.config.close_timeout;
        let exit = if let TextClose::Writer(_) = close {
            None
        } else {
            let _ = finish_tx.send(Finish {
                frames: vec![Bytes::from(last)],
                timeout: grace,
            });
            let exit = timeout(grace + grace / 2, writer).await;
            Some(match exit {
                Ok(Ok(exit)) => exit,
                Ok(Err(e)) => WriterExit::Failed(io::Error::other(e)),
                Err(_) => WriterExit::FinishTimedOut,
            })
        };
        if matches!(exit, Some(WriterExit::Finished)) && !matches!(close, TextClose::PeerClosed) {
            // Our side is shut down; wait (briefly) for the peer to close its side, so unread
            // input cannot turn our last lines into a reset.
            let mut scratch = [0u8; 4096];
            let _ = timeout(grace, async {
                while let Ok(n) = self.rd.read(&mut scratch).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        info!(
            session = self.id,
            peer = %self.peer,
            nick = self.nick.as_deref().unwrap_or("-"),
            charset = self.charset.encoding().name(),
            reason = %close,
            writer = ?exit,
            rate_refused = self.rate_refused,
            throttled = self.throttled,
            "text connection closed"
        );
    }
}

/// One frame the hub encoded, back to a message. The hub's frames are whole and well formed.
fn decode_frame(frame: &Bytes) -> Option<ServerMsg> {
    let header = Header::parse(frame)?;
    ServerMsg::decode(header.kind, frame.slice(HEADER_LEN..)).ok()
}
