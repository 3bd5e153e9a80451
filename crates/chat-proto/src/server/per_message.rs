//! The two bodies a server sends for every chat message, `message` and `ack`, encoded by hand.
//!
//! Why: they are the server's hot path (one `message` per message, shared by every recipient,
//! and one `ack`), and serde's derived serializer spent more on its generic machinery than on
//! the bytes. The output is byte for byte what the derived `Serialize` writes (same field order,
//! same omissions, `serde_json`'s own escaping for every string); the tests below hold it to
//! that. Decoding is unchanged (serde).

use bytes::{Bytes, BytesMut};

use super::{Ack, ChatMessage};
use crate::error::{EncodeError, MessageError};
use crate::message::{Body, decode_json};

/// Appends `"name":` (or `,"name":`) to `out`; `name` is a plain ASCII field name.
fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends a JSON string with `serde_json`'s escaping.
fn string(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    serde_json::to_writer(&mut *out, s)?;
    Ok(())
}

/// Appends an integer as `serde_json` writes it.
fn int<N: serde::Serialize>(out: &mut Vec<u8>, n: N) -> Result<(), EncodeError> {
    serde_json::to_writer(&mut *out, &n)?;
    Ok(())
}

impl Body for ChatMessage {
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let mut out = Vec::with_capacity(96 + self.text.len());
        let first = &mut true;
        out.push(b'{');
        key(&mut out, first, "mid");
        int(&mut out, self.mid)?;
        if let Some(room) = &self.room {
            key(&mut out, first, "room");
            string(&mut out, room)?;
        }
        if let Some(to) = &self.to {
            key(&mut out, first, "to");
            string(&mut out, to)?;
        }
        key(&mut out, first, "from");
        string(&mut out, &self.from)?;
        key(&mut out, first, "seq");
        int(&mut out, self.seq)?;
        key(&mut out, first, "ts");
        int(&mut out, self.ts)?;
        key(&mut out, first, "text");
        string(&mut out, &self.text)?;
        if self.action {
            key(&mut out, first, "action");
            out.extend_from_slice(b"true");
        }
        out.push(b'}');
        dst.extend_from_slice(&out);
        Ok(())
    }

    fn decode_body(kind: u32, body: Bytes) -> Result<Self, MessageError> {
        decode_json(kind, &body)
    }
}

impl Body for Ack {
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let mut out = Vec::with_capacity(96);
        let first = &mut true;
        out.push(b'{');
        if let Some(id) = &self.id {
            key(&mut out, first, "id");
            string(&mut out, id)?;
        }
        key(&mut out, first, "mid");
        int(&mut out, self.mid)?;
        if let Some(room) = &self.room {
            key(&mut out, first, "room");
            string(&mut out, room)?;
        }
        if let Some(to) = &self.to {
            key(&mut out, first, "to");
            string(&mut out, to)?;
        }
        key(&mut out, first, "seq");
        int(&mut out, self.seq)?;
        key(&mut out, first, "ts");
        int(&mut out, self.ts)?;
        if self.duplicate {
            key(&mut out, first, "duplicate");
            out.extend_from_slice(b"true");
        }
        out.push(b'}');
        dst.extend_from_slice(&out);
        Ok(())
    }

    fn decode_body(kind: u32, body: Bytes) -> Result<Self, MessageError> {
        decode_json(kind, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_hand<B: Body>(b: &B) -> Vec<u8> {
        let mut buf = BytesMut::new();
        b.encode_body(&mut buf).unwrap();
        buf.to_vec()
    }

    const AWKWARD: [&str; 6] = [
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "control \u{1} \n \t \u{7f} \u{1b}[31m",
        "unicode 李雷 😀 \u{2028}\u{2029}",
        "\u{feff}bom and \u{200b} zero width",
    ];

    #[test]
    fn a_message_is_encoded_exactly_as_serde_would() {
        for text in AWKWARD {
            for (room, to) in [(Some("#r"), None), (None, Some("bob")), (None, None)] {
                for action in [false, true] {
                    let m = ChatMessage {
                        mid: u64::MAX,
                        room: room.map(Into::into),
                        to: to.map(Into::into),
                        from: text.into(),
                        seq: 7,
                        ts: -1,
                        text: text.into(),
                        action,
                    };
                    assert_eq!(by_hand(&m), serde_json::to_vec(&m).unwrap(), "{m:?}");
                }
            }
        }
    }

    #[test]
    fn an_ack_is_encoded_exactly_as_serde_would() {
        for id in AWKWARD.iter().map(|s| Some((*s).to_owned())).chain([None]) {
            for (room, to) in [(Some("#r"), None), (None, Some("bob")), (None, None)] {
                for duplicate in [false, true] {
                    let a = Ack {
                        id: id.clone(),
                        mid: 0,
                        room: room.map(Into::into),
                        to: to.map(Into::into),
                        seq: u64::MAX,
                        ts: i64::MIN,
                        duplicate,
                    };
                    assert_eq!(by_hand(&a), serde_json::to_vec(&a).unwrap(), "{a:?}");
                }
            }
        }
    }
}
