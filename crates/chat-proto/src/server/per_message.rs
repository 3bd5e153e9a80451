//! The two bodies a server sends for every chat message, `message` and `ack`, encoded by hand.
//!
//! Why: they are the server's hot path (one `message` per message, shared by every recipient,
//! and one `ack`), and serde's derived serializer spent more on its generic machinery than on
//! the bytes. The output is byte for byte what the derived `Serialize` writes (same field order,
//! same omissions, `serde_json`'s own escaping for every string); the tests below hold it to
//! that. Decoding is unchanged (serde).

use bytes::{Bytes, BytesMut};

use super::{Ack, ChatMessage, Timestamp};
use crate::error::{EncodeError, MessageError};
use crate::frame::{HEADER_LEN, VERSION};
use crate::kind;
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

/// Appends a JSON string with `serde_json`'s escaping. serde_json escapes `"`, `\` and the
/// control characters below U+0020, nothing else: a string without them is copied as it is
/// (the common case, and the hot one), any other goes through serde_json itself.
fn string(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    if plain(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(&mut *out, s)?;
    Ok(())
}

/// Whether `s` needs no escaping in JSON, as serde_json escapes (see [`string`]).
fn plain(s: &str) -> bool {
    // A reduction without an early exit, so the compiler checks many bytes at a time.
    !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Whether two optional strings are equal; the same string (the usual case: a message and its
/// ack both borrow the stored room name) without comparing its bytes.
fn same_str(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The frame header for a body of `body_len` bytes (`TooLarge` beyond the 32-bit field).
fn header(kind: u32, body_len: usize) -> Result<[u8; HEADER_LEN], EncodeError> {
    let body_len = u32::try_from(body_len).map_err(|_| EncodeError::TooLarge)?;
    let mut h = [0; HEADER_LEN];
    h[0..4].copy_from_slice(&VERSION.to_be_bytes());
    h[4..8].copy_from_slice(&body_len.to_be_bytes());
    h[8..12].copy_from_slice(&kind.to_be_bytes());
    Ok(h)
}

/// Appends a string that [`plain`] passed: quoted, as it is.
fn plain_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Appends an integer as `serde_json` writes it (with the same formatter, itoa).
fn int<N: itoa::Integer>(out: &mut Vec<u8>, n: N) -> Result<(), EncodeError> {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    Ok(())
}

/// A message's three numbers, formatted as serde_json writes them (itoa): once for both the
/// `message` and the `ack`, which carry the same ones.
#[derive(Clone, Copy)]
struct Numbers<'a> {
    mid: &'a str,
    seq: &'a str,
    ts: &'a str,
}

impl<'a> Numbers<'a> {
    fn of(bufs: &'a mut [itoa::Buffer; 3], mid: u64, seq: u64, ts: Timestamp) -> Self {
        let [a, b, c] = bufs;
        Numbers {
            mid: a.format(mid),
            seq: b.format(seq),
            ts: c.format(ts),
        }
    }
}

/// A `message` by reference: the fields of a [`ChatMessage`] wherever they are kept (the
/// server keeps the names it shares between messages once), encoded without copying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// See [`ChatMessage::mid`].
    pub mid: u64,
    /// See [`ChatMessage::room`].
    pub room: Option<&'a str>,
    /// See [`ChatMessage::to`].
    pub to: Option<&'a str>,
    /// See [`ChatMessage::from`].
    pub from: &'a str,
    /// See [`ChatMessage::seq`].
    pub seq: u64,
    /// See [`ChatMessage::ts`].
    pub ts: Timestamp,
    /// See [`ChatMessage::text`].
    pub text: &'a str,
    /// See [`ChatMessage::action`].
    pub action: bool,
}

impl<'a> From<&'a ChatMessage> for MessageRef<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        MessageRef {
            mid: m.mid,
            room: m.room.as_deref(),
            to: m.to.as_deref(),
            from: &m.from,
            seq: m.seq,
            ts: m.ts,
            text: &m.text,
            action: m.action,
        }
    }
}

impl MessageRef<'_> {
    /// The message as an owned [`ChatMessage`].
    pub fn to_message(&self) -> ChatMessage {
        ChatMessage {
            mid: self.mid,
            room: self.room.map(str::to_owned),
            to: self.to.map(str::to_owned),
            from: self.from.to_owned(),
            seq: self.seq,
            ts: self.ts,
            text: self.text.to_owned(),
            action: self.action,
        }
    }
}

impl ChatMessage {
    /// See [`MessageRef::to_frames_with_ack`].
    pub fn to_frames_with_ack(&self, ack: &AckRef<'_>) -> Result<(Bytes, Bytes), EncodeError> {
        MessageRef::from(self).to_frames_with_ack(ack)
    }

    /// See [`MessageRef::append_frames_with_ack`].
    pub fn append_frames_with_ack(
        &self,
        ack: &AckRef<'_>,
        messages: &mut Vec<u8>,
        acks: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        MessageRef::from(self).append_frames_with_ack(ack, messages, acks)
    }

    /// See [`MessageRef::to_message_frame`].
    pub fn to_message_frame(&self) -> Result<Bytes, EncodeError> {
        MessageRef::from(self).to_message_frame()
    }

    /// See [`MessageRef::append_message_frame`].
    pub fn append_message_frame(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        MessageRef::from(self).append_message_frame(out)
    }
}

impl MessageRef<'_> {
    /// The `message` frame and the `ack` its sender gets (`ack`, which must carry this
    /// message's `mid`, `room`, `to`, `seq` and `ts`), both exactly as
    /// [`MessageRef::to_message_frame`] and [`AckRef::to_frame`] make them; in the usual case
    /// the numbers they share are formatted once.
    pub fn to_frames_with_ack(&self, ack: &AckRef<'_>) -> Result<(Bytes, Bytes), EncodeError> {
        let (mut message, mut acked) = (Vec::new(), Vec::new());
        self.append_frames_with_ack(ack, &mut message, &mut acked)?;
        Ok((Bytes::from(message), Bytes::from(acked)))
    }

    /// Appends this message's `message` frame to `messages` and its sender's `ack` to `acks`,
    /// exactly as [`MessageRef::to_frames_with_ack`] makes them: the server gathers the
    /// frames of consecutive messages into one buffer for all their recipients. On an error
    /// neither buffer is changed.
    pub fn append_frames_with_ack(
        &self,
        ack: &AckRef<'_>,
        messages: &mut Vec<u8>,
        acks: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let (m0, a0) = (messages.len(), acks.len());
        let done = self.write_frames_with_ack(ack, messages, acks);
        if done.is_err() {
            messages.truncate(m0);
            acks.truncate(a0);
        }
        done
    }

    /// [`MessageRef::append_frames_with_ack`], but an error may leave a partial frame.
    fn write_frames_with_ack(
        &self,
        ack: &AckRef<'_>,
        messages: &mut Vec<u8>,
        acks: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let same = ack.mid == self.mid
            && ack.seq == self.seq
            && ack.ts == self.ts
            && same_str(ack.room, self.room)
            && same_str(ack.to, self.to);
        if !(same && self.is_plain() && ack.id.is_none_or(plain)) {
            self.append_message_frame(messages)?;
            return ack.append_frame(acks);
        }
        let mut bufs = [
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        ];
        let n = Numbers::of(&mut bufs, self.mid, self.seq, self.ts);
        self.append_plain_message_frame(&n, messages)?;
        ack.append_plain_frame(&n, acks)
    }

    /// Appends the JSON body to `out`.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let first = &mut true;
        out.push(b'{');
        key(out, first, "mid");
        int(out, self.mid)?;
        if let Some(room) = self.room {
            key(out, first, "room");
            string(out, room)?;
        }
        if let Some(to) = self.to {
            key(out, first, "to");
            string(out, to)?;
        }
        key(out, first, "from");
        string(out, self.from)?;
        key(out, first, "seq");
        int(out, self.seq)?;
        key(out, first, "ts");
        int(out, self.ts)?;
        key(out, first, "text");
        string(out, self.text)?;
        if self.action {
            key(out, first, "action");
            out.extend_from_slice(b"true");
        }
        out.push(b'}');
        Ok(())
    }

    /// The whole `message` frame (header and body), built in one buffer that becomes the
    /// frame without a copy: the server encodes each message once, for all its recipients.
    ///
    /// When no string needs escaping (the usual case), the body's length is known before a
    /// byte is written: the buffer is allocated at its exact size, the header written first,
    /// and the fields appended as constant pieces and copies, with no field separator logic.
    pub fn to_message_frame(&self) -> Result<Bytes, EncodeError> {
        let mut out = Vec::new();
        self.append_message_frame(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Appends the `message` frame to `out`, exactly as [`MessageRef::to_message_frame`]
    /// makes it. On an error `out` is unchanged.
    pub fn append_message_frame(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if !self.is_plain() {
            let start = out.len();
            out.reserve(HEADER_LEN + 96 + self.from.len() + self.text.len());
            out.extend_from_slice(&[0; HEADER_LEN]);
            let done = self
                .write_json(out)
                .and_then(|()| fill_header(out, start, kind::MESSAGE));
            if done.is_err() {
                out.truncate(start);
            }
            return done;
        }
        let mut bufs = [
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        ];
        self.append_plain_message_frame(&Numbers::of(&mut bufs, self.mid, self.seq, self.ts), out)
    }

    /// Whether no string of the message needs escaping.
    fn is_plain(&self) -> bool {
        plain(self.from)
            && plain(self.text)
            && self.room.is_none_or(plain)
            && self.to.is_none_or(plain)
    }

    /// Appends the `message` frame of a message that [`MessageRef::is_plain`], its numbers
    /// formatted; only a body beyond 4 GiB fails, before anything is written.
    fn append_plain_message_frame(
        &self,
        n: &Numbers<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let (room, to) = (self.room, self.to);
        let Numbers { mid, seq, ts } = *n;
        const MID: &[u8] = b"{\"mid\":";
        const ROOM: &[u8] = b",\"room\":";
        const TO: &[u8] = b",\"to\":";
        const FROM: &[u8] = b",\"from\":";
        const SEQ: &[u8] = b",\"seq\":";
        const TS: &[u8] = b",\"ts\":";
        const TEXT: &[u8] = b",\"text\":";
        const ACTION: &[u8] = b",\"action\":true";
        let body_len = MID.len()
            + mid.len()
            + room.map_or(0, |r| ROOM.len() + r.len() + 2)
            + to.map_or(0, |t| TO.len() + t.len() + 2)
            + FROM.len()
            + self.from.len()
            + 2
            + SEQ.len()
            + seq.len()
            + TS.len()
            + ts.len()
            + TEXT.len()
            + self.text.len()
            + 2
            + if self.action { ACTION.len() } else { 0 }
            + 1;
        let start = out.len();
        let h = header(kind::MESSAGE, body_len)?;
        out.reserve(HEADER_LEN + body_len);
        out.extend_from_slice(&h);
        out.extend_from_slice(MID);
        out.extend_from_slice(mid.as_bytes());
        if let Some(room) = room {
            out.extend_from_slice(ROOM);
            plain_string(out, room);
        }
        if let Some(to) = to {
            out.extend_from_slice(TO);
            plain_string(out, to);
        }
        out.extend_from_slice(FROM);
        plain_string(out, self.from);
        out.extend_from_slice(SEQ);
        out.extend_from_slice(seq.as_bytes());
        out.extend_from_slice(TS);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(TEXT);
        plain_string(out, self.text);
        if self.action {
            out.extend_from_slice(ACTION);
        }
        out.push(b'}');
        debug_assert_eq!(out.len() - start, HEADER_LEN + body_len);
        Ok(())
    }
}

impl Body for ChatMessage {
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let mut out = Vec::with_capacity(96 + self.text.len());
        MessageRef::from(self).write_json(&mut out)?;
        dst.extend_from_slice(&out);
        Ok(())
    }

    fn decode_body(kind: u32, body: Bytes) -> Result<Self, MessageError> {
        decode_json(kind, &body)
    }

    fn decode_in_place(kind: u32, body: &[u8]) -> Option<Result<Self, MessageError>> {
        Some(decode_json(kind, body))
    }
}

/// An `ack` by reference: what the server sends the sender of every message, encoded from the
/// stored message's fields without copying them into an [`Ack`] first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRef<'a> {
    /// See [`Ack::id`].
    pub id: Option<&'a str>,
    /// See [`Ack::mid`].
    pub mid: u64,
    /// See [`Ack::room`].
    pub room: Option<&'a str>,
    /// See [`Ack::to`].
    pub to: Option<&'a str>,
    /// See [`Ack::seq`].
    pub seq: u64,
    /// See [`Ack::ts`].
    pub ts: Timestamp,
    /// See [`Ack::duplicate`].
    pub duplicate: bool,
}

impl<'a> From<&'a Ack> for AckRef<'a> {
    fn from(a: &'a Ack) -> Self {
        AckRef {
            id: a.id.as_deref(),
            mid: a.mid,
            room: a.room.as_deref(),
            to: a.to.as_deref(),
            seq: a.seq,
            ts: a.ts,
            duplicate: a.duplicate,
        }
    }
}

impl AckRef<'_> {
    /// Appends the JSON body to `out`.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let first = &mut true;
        out.push(b'{');
        if let Some(id) = self.id {
            key(out, first, "id");
            string(out, id)?;
        }
        key(out, first, "mid");
        int(out, self.mid)?;
        if let Some(room) = self.room {
            key(out, first, "room");
            string(out, room)?;
        }
        if let Some(to) = self.to {
            key(out, first, "to");
            string(out, to)?;
        }
        key(out, first, "seq");
        int(out, self.seq)?;
        key(out, first, "ts");
        int(out, self.ts)?;
        if self.duplicate {
            key(out, first, "duplicate");
            out.extend_from_slice(b"true");
        }
        out.push(b'}');
        Ok(())
    }

    /// The whole `ack` frame (header and body), in one buffer that becomes the frame; like
    /// [`MessageRef::to_message_frame`], sized exactly and written in constant pieces when no
    /// string needs escaping.
    pub fn to_frame(&self) -> Result<Bytes, EncodeError> {
        let mut out = Vec::new();
        self.append_frame(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Appends the `ack` frame to `out`, exactly as [`AckRef::to_frame`] makes it. On an error
    /// `out` is unchanged.
    pub fn append_frame(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if !self.is_plain() {
            let start = out.len();
            out.reserve(HEADER_LEN + 96);
            out.extend_from_slice(&[0; HEADER_LEN]);
            let done = self
                .write_json(out)
                .and_then(|()| fill_header(out, start, kind::ACK));
            if done.is_err() {
                out.truncate(start);
            }
            return done;
        }
        let mut bufs = [
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        ];
        self.append_plain_frame(&Numbers::of(&mut bufs, self.mid, self.seq, self.ts), out)
    }

    /// Whether no string of the ack needs escaping.
    fn is_plain(&self) -> bool {
        self.id.is_none_or(plain) && self.room.is_none_or(plain) && self.to.is_none_or(plain)
    }

    /// Appends the `ack` frame of an ack that [`AckRef::is_plain`], its numbers formatted; only
    /// a body beyond 4 GiB fails, before anything is written.
    fn append_plain_frame(&self, n: &Numbers<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let Numbers { mid, seq, ts } = *n;
        const ID: &[u8] = b"{\"id\":";
        const ID_MID: &[u8] = b",\"mid\":";
        const MID: &[u8] = b"{\"mid\":";
        const ROOM: &[u8] = b",\"room\":";
        const TO: &[u8] = b",\"to\":";
        const SEQ: &[u8] = b",\"seq\":";
        const TS: &[u8] = b",\"ts\":";
        const DUPLICATE: &[u8] = b",\"duplicate\":true";
        let body_len = self
            .id
            .map_or(MID.len(), |id| ID.len() + id.len() + 2 + ID_MID.len())
            + mid.len()
            + self.room.map_or(0, |r| ROOM.len() + r.len() + 2)
            + self.to.map_or(0, |t| TO.len() + t.len() + 2)
            + SEQ.len()
            + seq.len()
            + TS.len()
            + ts.len()
            + if self.duplicate { DUPLICATE.len() } else { 0 }
            + 1;
        let start = out.len();
        let h = header(kind::ACK, body_len)?;
        out.reserve(HEADER_LEN + body_len);
        out.extend_from_slice(&h);
        match self.id {
            Some(id) => {
                out.extend_from_slice(ID);
                plain_string(out, id);
                out.extend_from_slice(ID_MID);
            }
            None => out.extend_from_slice(MID),
        }
        out.extend_from_slice(mid.as_bytes());
        if let Some(room) = self.room {
            out.extend_from_slice(ROOM);
            plain_string(out, room);
        }
        if let Some(to) = self.to {
            out.extend_from_slice(TO);
            plain_string(out, to);
        }
        out.extend_from_slice(SEQ);
        out.extend_from_slice(seq.as_bytes());
        out.extend_from_slice(TS);
        out.extend_from_slice(ts.as_bytes());
        if self.duplicate {
            out.extend_from_slice(DUPLICATE);
        }
        out.push(b'}');
        debug_assert_eq!(out.len() - start, HEADER_LEN + body_len);
        Ok(())
    }
}

impl Body for Ack {
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let mut out = Vec::with_capacity(96);
        AckRef::from(self).write_json(&mut out)?;
        dst.extend_from_slice(&out);
        Ok(())
    }

    fn decode_body(kind: u32, body: Bytes) -> Result<Self, MessageError> {
        decode_json(kind, &body)
    }

    fn decode_in_place(kind: u32, body: &[u8]) -> Option<Result<Self, MessageError>> {
        Some(decode_json(kind, body))
    }
}

/// Fills in the header of the frame that begins at `out[start..]` (its first [`HEADER_LEN`]
/// bytes, the body after them).
fn fill_header(out: &mut [u8], start: usize, kind: u32) -> Result<(), EncodeError> {
    let h = header(kind, out.len() - start - HEADER_LEN)?;
    out[start..start + HEADER_LEN].copy_from_slice(&h);
    Ok(())
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

    proptest::proptest! {
        #[test]
        fn any_message_is_encoded_exactly_as_serde_would(
            text in "\\PC*|[\\x00-\\x7f]*",
            from in "[a-z\"\\\\]{0,8}",
            mid: u64,
            seq: u64,
            ts: i64,
        ) {
            let m = ChatMessage {
                mid,
                room: Some("#r".into()),
                to: None,
                from,
                seq,
                ts,
                text,
                action: false,
            };
            proptest::prop_assert_eq!(by_hand(&m), serde_json::to_vec(&m).unwrap());
        }
    }

    #[test]
    fn the_one_buffer_frames_are_the_generic_frames() {
        use crate::message::WireMessage;
        use crate::server::ServerMsg;
        let m = ChatMessage {
            mid: 3,
            room: Some("#r".into()),
            from: "alice".into(),
            seq: 2,
            ts: 1,
            text: AWKWARD[3].into(),
            ..ChatMessage::default()
        };
        let generic = ServerMsg::Message(m.clone()).to_frame_bytes().unwrap();
        assert_eq!(m.to_message_frame().unwrap(), generic);
        let a = Ack {
            id: Some("c1".into()),
            mid: 3,
            room: Some("#r".into()),
            to: None,
            seq: 2,
            ts: 1,
            duplicate: true,
        };
        let generic = ServerMsg::Ack(a.clone()).to_frame_bytes().unwrap();
        assert_eq!(AckRef::from(&a).to_frame().unwrap(), generic);
    }

    proptest::proptest! {
        #[test]
        fn any_message_frame_is_the_generic_frame(
            text in "\\PC*|[\\x00-\\x7f]{0,8}",
            from in "[a-z\"\\\\]{0,8}",
            place in proptest::option::of("[#a-z\\x01]{0,8}"),
            direct: bool,
            mid: u64,
            seq: u64,
            ts: i64,
            action: bool,
        ) {
            use crate::message::WireMessage;
            use crate::server::ServerMsg;
            let (room, to) = if direct { (None, place) } else { (place, None) };
            let m = ChatMessage { mid, room, to, from, seq, ts, text, action };
            let generic = ServerMsg::Message(m.clone()).to_frame_bytes().unwrap();
            let frame = m.to_message_frame().unwrap();
            proptest::prop_assert_eq!(&frame[HEADER_LEN..], &serde_json::to_vec(&m).unwrap()[..]);
            proptest::prop_assert_eq!(frame, generic);
        }

        #[test]
        fn any_ack_frame_is_the_generic_frame(
            id in proptest::option::of("\\PC{0,8}|[\\x00-\\x7f]{0,8}"),
            place in proptest::option::of("[#a-z\"\\x01]{0,8}"),
            direct: bool,
            mid: u64,
            seq: u64,
            ts: i64,
            duplicate: bool,
        ) {
            use crate::message::WireMessage;
            use crate::server::ServerMsg;
            let (room, to) = if direct { (None, place) } else { (place, None) };
            let a = Ack { id, mid, room, to, seq, ts, duplicate };
            let generic = ServerMsg::Ack(a.clone()).to_frame_bytes().unwrap();
            let frame = AckRef::from(&a).to_frame().unwrap();
            proptest::prop_assert_eq!(&frame[HEADER_LEN..], &serde_json::to_vec(&a).unwrap()[..]);
            proptest::prop_assert_eq!(frame, generic);
        }
    }

    proptest::proptest! {
        #[test]
        fn frames_with_ack_are_the_two_frames(
            text in "\\PC{0,8}|[\\x00-\\x7f]{0,8}",
            place in proptest::option::of("[#a-z\"\\x01]{0,8}"),
            id in proptest::option::of("[a-z0-9\\\\]{0,8}"),
            direct: bool,
            mid: u64,
            seq: u64,
            ts: i64,
            other_seq: bool,
            duplicate: bool,
        ) {
            let (room, to) = if direct { (None, place) } else { (place, None) };
            let m = ChatMessage { mid, room, to, from: "al".into(), seq, ts, text, action: false };
            let a = Ack {
                id,
                mid,
                room: m.room.clone(),
                to: m.to.clone(),
                seq: if other_seq { seq ^ 1 } else { seq },
                ts,
                duplicate,
            };
            let a = AckRef::from(&a);
            let pair = m.to_frames_with_ack(&a).unwrap();
            proptest::prop_assert_eq!(pair, (m.to_message_frame().unwrap(), a.to_frame().unwrap()));
        }

        #[test]
        fn appended_frames_follow_what_the_buffers_held(
            text in "\\PC{0,8}|[\\x00-\\x7f]{0,8}",
            room in proptest::option::of("[#a-z\"\\x01]{0,8}"),
            mid: u64,
            seq: u64,
        ) {
            let m = ChatMessage { mid, room, to: None, from: "al".into(), seq, ts: 1, text, action: true };
            let a = Ack { id: None, mid, room: m.room.clone(), to: None, seq, ts: 1, duplicate: false };
            let a = AckRef::from(&a);
            let (mut messages, mut acks) = (b"before".to_vec(), b"earlier".to_vec());
            m.append_frames_with_ack(&a, &mut messages, &mut acks).unwrap();
            m.append_message_frame(&mut messages).unwrap();
            a.append_frame(&mut acks).unwrap();
            let (frame, ack) = (m.to_message_frame().unwrap(), a.to_frame().unwrap());
            proptest::prop_assert_eq!(messages, [&b"before"[..], &frame, &frame].concat());
            proptest::prop_assert_eq!(acks, [&b"earlier"[..], &ack, &ack].concat());
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
