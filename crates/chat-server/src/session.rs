//! One session per peer: handshake, the read loop, rate limit, pings and the slowloris guard.
//!
//! The session owns the read half and a [`crate::writer`] task owns the write half.
//! Everything for the client — the hub's broadcasts and answers, the session's own errors and
//! pongs — goes through one bounded outbound queue, so the client sees one ordered stream.
//! Requests about shared state go to the hub and the session waits if the hub is busy (that
//! backpressure stops only this reader).
//!
//! A session ends for exactly one [`Close`] reason; it then tells the hub (so its rooms hear a
//! `quit`), asks the writer to flush and write any final `error`/`notice`, reads and discards
//! input until the peer closes or the close timeout passes (so unread input cannot turn our
//! last frames into a reset), and logs one line with the reason.
//!
//! # Layout
//! - this file: the session state, its `select!` loop and request handling.
//! - `close`: the reasons a session ends, and what each says to the peer and its rooms.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chat_proto::client::Hello;
use chat_proto::limits::{MAX_ID_LEN, PRE_HANDSHAKE_MAX_BODY};
use chat_proto::message::{Ping, Pong};
use chat_proto::{ClientMsg, ErrorCode, FrameError, ServerMsg, WireMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::Config;
use crate::hub::{ConnInfo, HubHandle, Kick, SessionId, now_ms};
use crate::queue::{self, TrySendError};
use crate::rate::TokenBucket;
use crate::reader::FrameReader;
use crate::writer::{self, Finish, Item, WriterExit};

mod close;
pub use close::Close;

/// File chunks and acks a connection may send in a burst.
const FILE_BURST: u32 = 1024;

/// File chunks and acks per second, sustained (512 MiB/s in 64 KiB chunks).
const FILE_PER_SEC: f64 = 8192.0;

/// A session's state besides its writer.
struct Session<R> {
    id: SessionId,
    peer: SocketAddr,
    config: Arc<Config>,
    hub: HubHandle,
    reader: FrameReader<R>,
    /// Our end of the outbound queue (the hub holds a clone once registered).
    out_tx: queue::Sender,
    /// The nick, once `welcome` was sent.
    nick: Option<String>,
    /// Fires if the hub drops us as lagged; `None` before registration.
    kick_rx: Option<oneshot::Receiver<Kick>>,
    bucket: TokenBucket,
    /// File chunks and acks: not chat, so not in `bucket`; over it the reader waits.
    file_bucket: TokenBucket,
    handshake_deadline: Instant,
    next_ping: Instant,
    pings_unanswered: u32,
    /// Requests refused by the rate limit.
    rate_refused: u64,
    /// Frames refused as malformed or of unknown kind.
    bad_frames: u64,
    /// `send`s decoded from the current read and not yet handed to the hub (see
    /// [`Session::batch_send`]); empty between reads.
    sends: Vec<ClientMsg>,
    /// Text bytes in `sends`.
    sends_bytes: usize,
}

/// Most `send`s handed to the hub as one command.
const MAX_SENDS: usize = 32;
/// Most text bytes handed to the hub as one command, so a command slot of the hub's queue holds
/// no more than one frame of the largest size would.
const MAX_SENDS_BYTES: usize = 64 * 1024;

/// Serves one connection until it closes. `id` is unique while the server runs.
///
/// The writer task starts at once; the returned future is the session's read loop. Not an
/// `async fn`: its arguments would stay in the future's state beside the session built from
/// them, and an idle connection's task would be that much larger.
pub fn run<R, W>(
    id: SessionId,
    peer: SocketAddr,
    (rd, wr): (R, W),
    hub: HubHandle,
    config: Arc<Config>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = queue::channel(config.outbound_queue);
    let (finish_tx, finish_rx) = oneshot::channel();
    let mut writer = tokio::spawn(writer::run(wr, out_rx, finish_rx, config.write_timeout));
    let now = Instant::now();
    let mut session = Session {
        id,
        peer,
        reader: FrameReader::new(rd, PRE_HANDSHAKE_MAX_BODY),
        out_tx,
        nick: None,
        kick_rx: None,
        bucket: TokenBucket::new(config.rate_burst, config.rate_per_sec),
        file_bucket: TokenBucket::new(FILE_BURST, FILE_PER_SEC),
        handshake_deadline: now + config.handshake_timeout,
        next_ping: now + config.ping_interval,
        pings_unanswered: 0,
        rate_refused: 0,
        bad_frames: 0,
        sends: Vec::new(),
        sends_bytes: 0,
        hub,
        config,
    };
    // Only borrowed inside: a value moved out of an `async` block's capture is stored twice.
    async move {
        let close = session.serve(&mut writer, &shutdown).await;
        // Boxed: the closing state is allocated only when the connection ends, so an idle
        // session's task is no larger than its read loop.
        let closing = Box::pin(session.close(close, finish_tx, writer));
        closing.await;
    }
}

impl<R: AsyncRead + Unpin> Session<R> {
    /// The read loop: one `select!` over everything that can happen to a connection.
    async fn serve(
        &mut self,
        writer: &mut JoinHandle<WriterExit>,
        shutdown: &CancellationToken,
    ) -> Close {
        // One timer for the three deadlines (hello, slow frame, ping). It is moved earlier when
        // a deadline comes closer, never later: a ping deadline pushed back by every frame
        // would otherwise re-arm the timer on every read. When it fires early, the deadlines
        // are checked and it is set to the next one.
        let timer = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(timer);
        loop {
            let due = self.next_deadline();
            if due < timer.deadline() {
                timer.as_mut().reset(due);
            }
            tokio::select! {
                // The server is stopping: tell the client, flush, close.
                () = shutdown.cancelled() => return Close::Shutdown,
                // The hub dropped us: our queue overflowed, or an operator banned us.
                kick = async {
                    match self.kick_rx.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if self.kick_rx.is_some() => match kick {
                    Ok(Kick::Lagged { seqs }) => return Close::Lagged { seqs },
                    Ok(Kick::Banned { text }) => return Close::Banned { text },
                    // The hub let go of us without a kick: it is stopping; shutdown follows.
                    Err(_) => self.kick_rx = None,
                },
                // The writer ended on its own: a write stalled or failed.
                exit = &mut *writer => {
                    return Close::Writer(exit.unwrap_or_else(|e| WriterExit::Failed(io::Error::other(e))));
                }
                // Bytes from the peer: handle every complete frame they finish.
                read = self.reader.read_more() => match read {
                    Ok(0) => return Close::PeerClosed,
                    Ok(_) => {
                        // Boxed: handling may wait on the hub with a request in hand, and an
                        // idle session's task should not be sized for that.
                        if let Err(close) = Box::pin(self.handle_frames()).await {
                            return close;
                        }
                        // Let the hub and the writers carry this read's frames out before
                        // reading more: on one core the session would otherwise decode a whole
                        // window of messages before the first went out (closed-loop fan-out to
                        // 10 and 100 subscribers: +10 % and +20 %).
                        tokio::task::yield_now().await;
                    }
                    Err(e) => return Close::Io(e),
                },
                // A deadline (maybe): see which one passed.
                () = &mut timer => {
                    let now = Instant::now();
                    if self.nick.is_none() && now >= self.handshake_deadline {
                        // No `hello` in time.
                        let t = self.config.handshake_timeout;
                        return Close::fatal(ErrorCode::HandshakeTimeout, format!("no accepted hello within {t:?}"));
                    }
                    if self.frame_deadline().is_some_and(|d| now >= d) {
                        // A frame began but did not complete in time (slowloris).
                        let t = self.config.frame_timeout;
                        return Close::fatal(ErrorCode::SlowFrame, format!("a frame took longer than {t:?} to arrive"));
                    }
                    timer.as_mut().reset(self.next_deadline());
                    if now < self.next_ping {
                        continue;
                    }
                    // Silence: ping, or give up once enough pings went unanswered.
                    if self.pings_unanswered >= self.config.max_missed_pongs {
                        let n = self.pings_unanswered;
                        return Close::fatal(ErrorCode::IdleTimeout, format!("no answer to {n} pings"));
                    }
                    self.pings_unanswered += 1;
                    self.next_ping = now + self.config.ping_interval;
                    timer.as_mut().reset(self.next_deadline());
                    let ping = Ping { token: Some(now_ms().to_string()) };
                    if let Err(close) = Box::pin(self.push(ServerMsg::Ping(ping))).await {
                        return close;
                    }
                }
            }
        }
    }

    /// When a partly received frame must be complete, if one is.
    fn frame_deadline(&self) -> Option<Instant> {
        self.reader
            .partial_since()
            .map(|t| t + self.config.frame_timeout)
    }

    /// The nearest of the deadlines the read loop watches: the ping, a partial frame's, and
    /// (before `hello` is accepted) the handshake's.
    fn next_deadline(&self) -> Instant {
        let mut due = self.next_ping;
        if let Some(frame) = self.frame_deadline() {
            due = due.min(frame);
        }
        if self.nick.is_none() {
            due = due.min(self.handshake_deadline);
        }
        due
    }

    /// Handles every complete frame in the read buffer. The `send`s among them go to the hub
    /// together (in order with everything else the session does), and the clock is read once.
    async fn handle_frames(&mut self) -> Result<(), Close> {
        let now = Instant::now();
        let handled = self.handle_each_frame(now).await;
        // What was decoded before an error or a `quit` is still carried out.
        let flushed = self.flush_sends().await;
        handled.and(flushed)
    }

    async fn handle_each_frame(&mut self, now: Instant) -> Result<(), Close> {
        loop {
            let item = match self.reader.next_message() {
                Ok(Some(item)) => item,
                Ok(None) => return Ok(()),
                Err(e) => return Err(frame_error(&e)),
            };
            // Any whole frame shows the peer is alive.
            self.pings_unanswered = 0;
            self.next_ping = now + self.config.ping_interval;
            match item {
                Ok(msg) => self.handle(msg, now).await?,
                Err(e) => {
                    self.bad_frames += 1;
                    debug!(session = self.id, peer = %self.peer, error = %e, "bad frame refused");
                    // Counts toward the rate limit, but is always answered: a refusal
                    // costs us little, and a client that floods without reading lags out.
                    let _ = self.take_token(now);
                    self.push(ServerMsg::error(None, e.code(), e.to_string()))
                        .await?;
                }
            }
        }
    }

    /// Keeps a `send` for the hub, to go with the others of this read; hands them over when
    /// there are enough.
    async fn batch_send(&mut self, msg: ClientMsg) -> Result<(), Close> {
        if let ClientMsg::Send(send) = &msg {
            self.sends_bytes += send.text.len();
        }
        self.sends.push(msg);
        if self.sends.len() >= MAX_SENDS || self.sends_bytes >= MAX_SENDS_BYTES {
            self.flush_sends().await?;
        }
        Ok(())
    }

    /// Hands the kept `send`s to the hub: one command for all of them.
    async fn flush_sends(&mut self) -> Result<(), Close> {
        self.sends_bytes = 0;
        let sent = match self.sends.len() {
            0 => return Ok(()),
            1 => match self.sends.pop() {
                Some(msg) => self.hub.request(self.id, msg).await,
                None => Ok(()),
            },
            _ => {
                let msgs = std::mem::take(&mut self.sends);
                self.hub.requests(self.id, msgs).await
            }
        };
        sent.map_err(|_| Close::HubGone)
    }

    /// Takes a rate token; on refusal counts it (and logs the first refusal).
    fn take_token(&mut self, now: Instant) -> bool {
        if self.bucket.try_take_at(now) {
            return true;
        }
        self.rate_refused += 1;
        if self.rate_refused == 1 {
            info!(session = self.id, peer = %self.peer, nick = ?self.nick, "rate limit reached; refusing requests");
        }
        false
    }

    async fn handle(&mut self, msg: ClientMsg, now: Instant) -> Result<(), Close> {
        if !matches!(msg, ClientMsg::Send(_)) {
            // The hub gets the `send`s before anything else of this read, so whatever the hub
            // answers comes after their acks (in memory mode; in durable mode an ack waits for
            // its commit). A frame of our own (`pong`, `rate_limited`) goes on the queue at
            // once and can overtake acks the hub has not yet staged: every answer carries its
            // request's id, and PROTOCOL.md §8 says to match by it.
            self.flush_sends().await?;
        }
        match msg {
            ClientMsg::Ping(Ping { token }) => {
                return self.push(ServerMsg::Pong(Pong { token })).await;
            }
            // Its arrival already reset the idle clock.
            ClientMsg::Pong(_) => return Ok(()),
            // File data and its acks are bounded by the transfer window, not the chat rate;
            // their own bucket slows this reader down rather than refusing (which would break
            // the transfer).
            ClientMsg::FileChunk(_) | ClientMsg::FileAck(_) if self.nick.is_some() => {
                let wait = self.file_bucket.time_to_token();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let _ = self.file_bucket.try_take();
                return self
                    .hub
                    .request(self.id, msg)
                    .await
                    .map_err(|_| Close::HubGone);
            }
            _ => {}
        }
        let req_id = msg.request_id().map(str::to_owned);
        if !self.take_token(now) {
            let c = &self.config;
            let text = format!(
                "too many requests (burst {}, then {}/s); not carried out",
                c.rate_burst, c.rate_per_sec
            );
            debug!(session = self.id, "request refused: rate limited");
            return self
                .push(ServerMsg::error(req_id, ErrorCode::RateLimited, text))
                .await;
        }
        if req_id.as_ref().is_some_and(|r| r.len() > MAX_ID_LEN) {
            let text = format!("request id is longer than {MAX_ID_LEN} bytes");
            return self
                .push(ServerMsg::error(None, ErrorCode::BadRequest, text))
                .await;
        }
        match msg {
            // Boxed: a once-per-connection path kept out of every idle session's state.
            ClientMsg::Hello(hello) => Box::pin(self.hello(hello)).await,
            ClientMsg::Quit(q) => Err(Close::Quit(q.reason.unwrap_or_else(|| "quit".into()))),
            _ if self.nick.is_none() => {
                let text = "send hello first";
                self.push(ServerMsg::error(req_id, ErrorCode::HandshakeRequired, text))
                    .await
            }
            ClientMsg::Send(_) => self.batch_send(msg).await,
            ClientMsg::Typing(_)
            | ClientMsg::Join(_)
            | ClientMsg::Part(_)
            | ClientMsg::Nick(_)
            | ClientMsg::Topic(_)
            | ClientMsg::ListRooms(_)
            | ClientMsg::Names(_)
            | ClientMsg::History(_)
            | ClientMsg::Search(_)
            | ClientMsg::FileOffer(_)
            | ClientMsg::FileAccept(_)
            | ClientMsg::FileDecline(_)
            | ClientMsg::FileChunk(_)
            | ClientMsg::FileDone(_)
            | ClientMsg::FileCancel(_)
            | ClientMsg::FileAck(_)
            | ClientMsg::Register(_)
            | ClientMsg::Kick(_)
            | ClientMsg::Ban(_)
            | ClientMsg::Unban(_)
            | ClientMsg::Mute(_) => self
                .hub
                .request(self.id, msg)
                .await
                .map_err(|_| Close::HubGone),
            ClientMsg::Ping(_) | ClientMsg::Pong(_) => Ok(()),
        }
    }

    /// Asks the hub for the nick; on success the hub has queued `welcome` and the join burst.
    async fn hello(&mut self, hello: Hello) -> Result<(), Close> {
        if self.nick.is_some() {
            let text = "hello was already accepted on this connection";
            return self
                .push(ServerMsg::error(None, ErrorCode::HandshakeRequired, text))
                .await;
        }
        let (kick_tx, kick_rx) = oneshot::channel();
        let conn = ConnInfo {
            id: self.id,
            peer: self.peer,
            out_tx: self.out_tx.clone(),
            kick_tx,
            batches: true,
        };
        match self.hub.register(conn, hello).await {
            Ok(Ok(nick)) => {
                self.reader.set_max_body(self.config.max_body);
                self.nick = Some(nick);
                self.kick_rx = Some(kick_rx);
                Ok(())
            }
            Ok(Err(refused)) => {
                debug!(session = self.id, peer = %self.peer, reason = %refused, "hello refused");
                // A banned nick or address is not asked again: the error is the last frame.
                if refused.code.is_fatal() {
                    return Err(Close::fatal(refused.code, refused.message));
                }
                self.push(ServerMsg::error(None, refused.code, refused.message))
                    .await
            }
            Err(_) => Err(Close::HubGone),
        }
    }

    /// Queues a frame of our own (after the `send`s before it have gone to the hub, not
    /// necessarily after their acks). Never waits for the client: a
    /// full queue means it is not reading.
    async fn push(&mut self, msg: ServerMsg) -> Result<(), Close> {
        self.flush_sends().await?;
        let frame = match msg.to_frame_bytes() {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(error = %e, kind = msg.kind(), "cannot encode a server message");
                return Ok(());
            }
        };
        // Never more than the limit we announce: the client would drop the connection.
        let body = frame.len().saturating_sub(chat_proto::frame::HEADER_LEN);
        if body > self.config.max_body as usize {
            tracing::error!(
                body,
                kind = msg.kind(),
                "refusing to queue a frame larger than max_body"
            );
            return Ok(());
        }
        match self.out_tx.try_send(Item::One(frame)) {
            Ok(()) => Ok(()),
            // Registered: the hub knows what was queued, so it does the lag disconnect and
            // kicks us with the sequence numbers. Not yet registered: nothing to report.
            Err(TrySendError::Full(_)) if self.nick.is_some() => {
                self.hub.lagged(self.id).await.map_err(|_| Close::HubGone)
            }
            Err(TrySendError::Full(_)) => Err(Close::Lagged {
                seqs: BTreeMap::new(),
            }),
            // The writer is gone; its own exit is reported by the select loop.
            Err(TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Ends the session: hub, final frames, writer, input drain, one log line.
    async fn close(
        &mut self,
        close: Close,
        finish_tx: oneshot::Sender<Finish>,
        writer: JoinHandle<WriterExit>,
    ) {
        // The hub already dropped a lagged or banned session; everyone else leaves here.
        if self.nick.is_some()
            && !matches!(
                close,
                Close::Lagged { .. } | Close::Banned { .. } | Close::HubGone
            )
        {
            let _ = self.hub.leave(self.id, close.quit_reason()).await;
        }
        let frames: Vec<Bytes> = close
            .final_frames()
            .iter()
            .filter_map(|m| m.to_frame_bytes().ok())
            .collect();
        let grace = self.config.close_timeout;
        let exit = if let Close::Writer(_) = close {
            None
        } else {
            let _ = finish_tx.send(Finish {
                frames,
                timeout: grace,
            });
            let exit = timeout(grace + grace / 2, writer).await;
            Some(match exit {
                Ok(Ok(exit)) => exit,
                Ok(Err(e)) => WriterExit::Failed(io::Error::other(e)),
                Err(_) => WriterExit::FinishTimedOut,
            })
        };
        if matches!(exit, Some(WriterExit::Finished)) && !matches!(close, Close::PeerClosed) {
            // Our side is shut down; wait (briefly) for the peer to close its side.
            let _ = timeout(grace, self.reader.discard_to_end()).await;
        }
        info!(
            session = self.id,
            peer = %self.peer,
            nick = self.nick.as_deref().unwrap_or("-"),
            reason = %close,
            writer = ?exit,
            rate_refused = self.rate_refused,
            bad_frames = self.bad_frames,
            "connection closed"
        );
    }
}

/// A broken stream: tell the peer why, then close.
fn frame_error(e: &FrameError) -> Close {
    Close::fatal(e.code(), e.to_string())
}

#[cfg(test)]
mod tests;
