//! One driver per protocol, behind [`Driver`]: how to open a session, publish, and cut what the
//! server sends into [`Event`]s. Drivers do no IO; [`connect`] and the modes do it for them, so
//! every protocol is read, counted and timed by the same code.
//!
//! # Layout
//! - [`chat`]: our framed protocol (`hello`/`send`/`message`/`ack`).
//! - [`redis`]: Redis RESP pub/sub (`SUBSCRIBE`, pipelined `PUBLISH`).
//! - [`nats`]: NATS core (`CONNECT`, `SUB`, `PUB`, `PING`/`PONG`).
//! - [`text`]: chat-server's text mode (netcat-style lines on the same port).
//! - [`mod@line`]: plain text lines, as spoken by the zero-logic broadcaster ([`crate::ceiling`]).

pub mod chat;
pub mod line;
pub mod nats;
pub mod redis;
pub mod text;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a connection is for: it decides the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Only receives what is published to the room.
    Subscriber,
    /// Only publishes.
    Publisher,
    /// Receives and publishes (a chat user in `mix`).
    Both,
}

/// One unit of what a server sent, cut by [`Driver::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A published message; the bytes contain its payload (maybe inside a larger body).
    Delivery(&'a [u8]),
    /// A publish was accepted; the number is the receivers the server reports (Redis), or 1.
    Ack(u64),
    /// The server pings: answer with [`Driver::encode_pong`] of these bytes.
    Ping(&'a [u8]),
    /// The answer to our own ping (NATS uses it to confirm a handshake).
    Pong,
    /// A subscription was confirmed (Redis `subscribe` reply).
    Subscribed,
    /// The server reports an error (text or JSON body).
    Error(&'a [u8]),
    /// A control frame of our protocol: kind and body.
    Frame(u32, &'a [u8]),
    /// Anything else (`+OK`, `INFO`, ...).
    Other,
}

/// A protocol: pure functions over bytes.
pub trait Driver: Send + Sync + 'static {
    /// Short name used in reports (`chat`, `redis`, ...).
    fn name(&self) -> &'static str;
    /// The room (channel, subject) used when none is given.
    fn default_room(&self) -> &'static str;
    /// Whether a connection that subscribes and publishes receives its own messages.
    fn echoes_own(&self) -> bool;
    /// Whether a subscribed connection cannot publish (Redis): `mix` then opens two per user.
    fn separate_publisher(&self) -> bool {
        false
    }
    /// Whether a [`Role::Publisher`] connection also receives what others publish to the room
    /// (a chat user is in the room it speaks to; a Redis or NATS publisher subscribes to
    /// nothing).
    fn publisher_hears_room(&self) -> bool {
        true
    }
    /// Whether every publish is answered with an [`Event::Ack`].
    fn acks_publishes(&self) -> bool;
    /// Bytes to send right after connecting.
    fn handshake_start(&self, name: &str, room: &str, role: Role, out: &mut Vec<u8>);
    /// Feeds one event of the handshake; may queue more bytes to send. `state` starts at 0 and
    /// is the driver's to use. `Ok(true)` when the connection is ready (subscribed and, for a
    /// publisher, allowed to publish).
    fn handshake_step(
        &self,
        ev: &Event<'_>,
        room: &str,
        role: Role,
        out: &mut Vec<u8>,
        state: &mut u32,
    ) -> Result<bool>;
    /// Appends the bytes that publish `payload` to `room`; `seq` may name the request.
    fn encode_publish(&self, room: &str, seq: u64, payload: &[u8], out: &mut Vec<u8>);
    /// Cuts the first complete unit off `buf`: `Ok(None)` when more bytes are needed, else the
    /// bytes consumed and the event.
    fn parse<'a>(&self, buf: &'a [u8]) -> Result<Option<(usize, Event<'a>)>>;
    /// Appends the answer to a ping whose event carried `ping`.
    fn encode_pong(&self, ping: &[u8], out: &mut Vec<u8>);
}

/// An open, ready connection and the bytes already read past its handshake.
#[derive(Debug)]
pub struct Conn {
    /// The socket (`TCP_NODELAY` set).
    pub stream: TcpStream,
    /// Bytes read after the handshake completed, not yet parsed.
    pub buf: BytesMut,
}

/// Connects to `addr` and runs the driver's handshake within `limit`.
pub async fn connect<D: Driver + ?Sized>(
    driver: &D,
    addr: SocketAddr,
    name: &str,
    room: &str,
    role: Role,
    limit: Duration,
) -> Result<Conn> {
    tokio::time::timeout(limit, handshake(driver, addr, name, room, role))
        .await
        .with_context(|| format!("{} handshake of {name} timed out", driver.name()))?
}

async fn handshake<D: Driver + ?Sized>(
    driver: &D,
    addr: SocketAddr,
    name: &str,
    room: &str,
    role: Role,
) -> Result<Conn> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut out = Vec::new();
    driver.handshake_start(name, room, role, &mut out);
    let mut buf = BytesMut::with_capacity(4096);
    let mut ready = false;
    let mut state = 0;
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await.context("handshake write")?;
            out.clear();
        }
        if ready {
            return Ok(Conn { stream, buf });
        }
        if stream.read_buf(&mut buf).await.context("handshake read")? == 0 {
            bail!(
                "{} server closed the connection during the handshake",
                driver.name()
            );
        }
        while !ready {
            let Some((used, ev)) = driver.parse(&buf)? else {
                break;
            };
            match ev {
                Event::Ping(p) => driver.encode_pong(p, &mut out),
                Event::Error(e) => {
                    bail!("server error in handshake: {}", String::from_utf8_lossy(e))
                }
                ev => ready = driver.handshake_step(&ev, room, role, &mut out, &mut state)?,
            }
            buf.advance(used);
        }
    }
}

/// Finds `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Parses an ASCII decimal number.
pub(crate) fn parse_dec(digits: &[u8]) -> Result<u64> {
    if digits.is_empty() {
        bail!("empty number");
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            Ok(acc * 10 + u64::from(d - b'0'))
        } else {
            bail!("bad digit {:?} in number", d as char)
        }
    })
}
