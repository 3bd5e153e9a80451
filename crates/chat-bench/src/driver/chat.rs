//! Our framed protocol (PROTOCOL.md): `hello` → `welcome` → join burst; `send` → `ack` for the
//! sender and `message` for every other member; `ping` answered by `pong` with the same token.
//!
//! The handshake uses `chat-proto`'s typed messages; the hot path does not: a `send` is written
//! straight into the output buffer and a `message` is only cut by its header, the marker being
//! found in its body by a substring search, so the load tool spends its time on the socket and
//! not on JSON.

use anyhow::{Context, Result, bail};
use chat_proto::client::{Hello, Join};
use chat_proto::frame::{HEADER_LEN, Header, VERSION};
use chat_proto::{ClientMsg, WireMessage, kind};
use serde::Deserialize;

use super::{Driver, Event, Role};

/// Largest frame body the parser accepts (history pages can be large; 16 MiB is plenty).
const MAX_BODY: usize = 16 << 20;

/// The chat driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chat;

/// The one field of a `history_page` the handshake needs.
#[derive(Deserialize)]
struct PageRoom {
    room: String,
}

fn push_frame(msg: &ClientMsg, out: &mut Vec<u8>) {
    let mut buf = bytes::BytesMut::new();
    // Our own small messages always encode.
    if msg.encode_frame(&mut buf).is_ok() {
        out.extend_from_slice(&buf);
    }
}

impl Driver for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn default_room(&self) -> &'static str {
        "#lobby"
    }

    fn echoes_own(&self) -> bool {
        false
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn handshake_start(&self, name: &str, _room: &str, _role: Role, out: &mut Vec<u8>) {
        push_frame(
            &ClientMsg::Hello(Hello {
                name: name.to_owned(),
                client: Some(concat!("chat-bench/", env!("CARGO_PKG_VERSION")).to_owned()),
                ..Hello::default()
            }),
            out,
        );
    }

    fn handshake_step(
        &self,
        ev: &Event<'_>,
        room: &str,
        _role: Role,
        out: &mut Vec<u8>,
        _state: &mut u32,
    ) -> Result<bool> {
        match *ev {
            Event::Frame(kind::WELCOME, _) if !room.eq_ignore_ascii_case("#lobby") => {
                push_frame(
                    &ClientMsg::Join(Join {
                        id: Some("bench-join".to_owned()),
                        room: room.to_owned(),
                    }),
                    out,
                );
                Ok(false)
            }
            // The join burst ends with the room's history page.
            Event::Frame(kind::HISTORY_PAGE, body) => {
                let page: PageRoom =
                    serde_json::from_slice(body).context("history_page without a room")?;
                Ok(page.room.eq_ignore_ascii_case(room))
            }
            _ => Ok(false),
        }
    }

    fn encode_publish(&self, room: &str, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&kind::SEND.to_be_bytes());
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(b"\",\"to\":");
        // Room names are plain, but quoting through serde_json keeps the frame valid JSON anyway.
        if serde_json::to_writer(&mut *out, room).is_err() {
            out.extend_from_slice(b"\"\"");
        }
        // The payload is JSON-safe ASCII by construction (see `payload`).
        out.extend_from_slice(b",\"text\":\"");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\"}");
        let body_len = u32::try_from(out.len() - start - HEADER_LEN).unwrap_or(u32::MAX);
        out[start + 4..start + 8].copy_from_slice(&body_len.to_be_bytes());
    }

    fn parse<'a>(&self, buf: &'a [u8]) -> Result<Option<(usize, Event<'a>)>> {
        let Some(header) = Header::parse(buf) else {
            return Ok(None);
        };
        if header.version != VERSION {
            bail!("chat frame with version {}", header.version);
        }
        let len = usize::try_from(header.body_len)?;
        if len > MAX_BODY {
            bail!("chat frame body of {len} bytes");
        }
        let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let ev = match header.kind {
            kind::MESSAGE => Event::Delivery(body),
            kind::ACK => Event::Ack(1),
            kind::PING => Event::Ping(body),
            kind::PONG => Event::Pong,
            kind::ERROR => Event::Error(body),
            k => Event::Frame(k, body),
        };
        Ok(Some((HEADER_LEN + len, ev)))
    }

    fn encode_pong(&self, ping: &[u8], out: &mut Vec<u8>) {
        // `ping` and `pong` have the same body shape: echoing the body echoes the token.
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&u32::try_from(ping.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&kind::PONG.to_be_bytes());
        out.extend_from_slice(ping);
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::client::Send;
    use tokio_util::codec::Decoder;

    use super::*;

    /// What the server's codec makes of our bytes.
    fn server_decode(bytes: &[u8]) -> ClientMsg {
        let mut codec = chat_proto::ServerCodec::new(1 << 20);
        let mut buf = bytes::BytesMut::from(bytes);
        let msg = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert!(buf.is_empty(), "one whole frame");
        msg
    }

    #[test]
    fn hand_written_send_is_what_the_protocol_crate_decodes() {
        let mut out = Vec::new();
        Chat.encode_publish("#bench", 42, b"~cb1abc...", &mut out);
        assert_eq!(
            server_decode(&out),
            ClientMsg::Send(Send {
                id: Some("42".into()),
                to: "#bench".into(),
                text: "~cb1abc...".into(),
                action: false,
            })
        );
    }

    #[test]
    fn pong_echoes_the_ping_token() {
        let mut out = Vec::new();
        Chat.encode_pong(br#"{"token":"t1"}"#, &mut out);
        match server_decode(&out) {
            ClientMsg::Pong(p) => assert_eq!(p.token.as_deref(), Some("t1")),
            other => panic!("not a pong: {other:?}"),
        }
    }

    #[test]
    fn parse_cuts_server_frames_by_their_header() {
        let msg = chat_proto::ServerMsg::Message(chat_proto::server::ChatMessage {
            mid: 1,
            room: Some("#lobby".into()),
            from: "p".into(),
            seq: 1,
            text: "hello".into(),
            ..Default::default()
        });
        let bytes = msg.to_frame_bytes().unwrap();
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes);
        let (used, ev) = Chat.parse(&two).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert!(matches!(ev, Event::Delivery(body) if body.ends_with(br#""text":"hello"}"#)));
        assert_eq!(Chat.parse(&bytes[..bytes.len() - 1]).unwrap(), None);
    }
}
