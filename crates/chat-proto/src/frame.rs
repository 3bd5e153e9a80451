//! The byte layout of one frame, and nothing else.
//!
//! TCP delivers a byte stream with no message boundaries: one read may hold half a frame or several
//! frames glued together. Every frame therefore starts with a fixed 12-byte header (the course
//! material's `struct.pack("!3I", version, len(body), kind)`), big-endian:
//!
//! ```text
//! +----------------+----------------+----------------+------------------+
//! | version: u32   | body_len: u32  | kind: u32      | body (body_len)  |
//! +----------------+----------------+----------------+------------------+
//! ```
//!
//! [`FrameDecoder`] checks the version and the declared length as soon as the header is in,
//! *before* it reserves a single byte for the body, and it never reserves the declared length up
//! front: the buffer grows only by what actually arrives. A partial frame is not an error: it is
//! `Ok(None)` until the rest arrives.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::error::FrameError;

/// The only protocol version this crate speaks.
pub const VERSION: u32 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 12;

/// The parsed 12-byte header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version; always [`VERSION`] on the wire today.
    pub version: u32,
    /// Length of the body in bytes, not counting the header.
    pub body_len: u32,
    /// Message kind (see [`crate::kind`]).
    pub kind: u32,
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes of `bytes`, or `None` if too short.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let raw: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let word = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        Some(Header {
            version: word(0),
            body_len: word(4),
            kind: word(8),
        })
    }

    /// Appends the 12 header bytes to `dst`.
    pub fn write(&self, dst: &mut BytesMut) {
        dst.put_u32(self.version);
        dst.put_u32(self.body_len);
        dst.put_u32(self.kind);
    }
}

/// One complete frame: a kind and its raw body, not yet interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message kind from the header.
    pub kind: u32,
    /// The body bytes (JSON for most kinds, a binary layout for file chunks).
    pub body: Bytes,
}

impl Frame {
    /// Encodes this frame (header and body) into `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        let body_len = u32::try_from(self.body.len()).map_err(|_| FrameError::TooLarge {
            len: u64::try_from(self.body.len()).unwrap_or(u64::MAX),
            max: u32::MAX,
        })?;
        dst.reserve(HEADER_LEN + self.body.len());
        Header {
            version: VERSION,
            body_len,
            kind: self.kind,
        }
        .write(dst);
        dst.extend_from_slice(&self.body);
        Ok(())
    }
}

/// Splits a byte stream into [`Frame`]s, refusing hostile headers before allocating.
///
/// Errors from this decoder are framing errors: the stream cannot be resynchronised after them,
/// so the connection must end.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_body: u32,
}

impl FrameDecoder {
    /// A decoder that accepts bodies of at most `max_body` bytes.
    pub fn new(max_body: u32) -> Self {
        FrameDecoder { max_body }
    }

    /// The largest body this decoder accepts.
    pub fn max_body(&self) -> u32 {
        self.max_body
    }

    /// Changes the body limit, e.g. from the pre-handshake limit to the session limit.
    pub fn set_max_body(&mut self, max_body: u32) {
        self.max_body = max_body;
    }

    /// The header of the frame at the start of `src` once the whole frame is there (`src`
    /// holds at least [`HEADER_LEN`] + `body_len` bytes), `None` before; the same checks as
    /// [`Decoder::decode`], which is this plus cutting the frame off.
    pub fn whole_frame(&self, src: &[u8]) -> Result<Option<Header>, FrameError> {
        let Some(header) = Header::parse(src) else {
            return Ok(None);
        };
        if header.version != VERSION {
            return Err(FrameError::UnsupportedVersion {
                version: header.version,
            });
        }
        if header.body_len > self.max_body {
            return Err(FrameError::TooLarge {
                len: u64::from(header.body_len),
                max: self.max_body,
            });
        }
        // Widening u32 -> usize cannot fail on the 32/64-bit targets we support.
        if src.len() < HEADER_LEN + header.body_len as usize {
            // Deliberately no `reserve(body_len)`: a peer that announces 64 KiB and sends nothing
            // must not cost us 64 KiB. The buffer grows with the bytes that really arrive.
            return Ok(None);
        }
        Ok(Some(header))
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = self.whole_frame(src)? else {
            return Ok(None);
        };
        src.advance(HEADER_LEN);
        let body = src.split_to(header.body_len as usize).freeze();
        Ok(Some(Frame {
            kind: header.kind,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(version: u32, len: u32, kind: u32) -> BytesMut {
        let mut b = BytesMut::new();
        Header {
            version,
            body_len: len,
            kind,
        }
        .write(&mut b);
        b
    }

    #[test]
    fn header_is_big_endian_version_len_kind() {
        let b = header_bytes(1, 5, 10);
        assert_eq!(&b[..], &[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 10]);
    }

    #[test]
    fn decode_waits_for_split_header() {
        let mut dec = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1, 0][..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 5, "a partial header is kept, not consumed");
    }

    #[test]
    fn decode_waits_for_split_body() {
        let mut dec = FrameDecoder::new(64);
        let mut buf = header_bytes(1, 4, 7);
        buf.extend_from_slice(b"ab");
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"cd");
        let frame = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.kind, 7);
        assert_eq!(&frame.body[..], b"abcd");
        assert!(buf.is_empty());
    }

    #[test]
    fn decode_splits_glued_frames() {
        let mut dec = FrameDecoder::new(64);
        let mut buf = BytesMut::new();
        for (kind, body) in [(1u32, &b"x"[..]), (2, b""), (3, b"yz")] {
            Frame {
                kind,
                body: Bytes::copy_from_slice(body),
            }
            .encode(&mut buf)
            .unwrap();
        }
        let kinds: Vec<u32> = std::iter::from_fn(|| dec.decode(&mut buf).unwrap())
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, vec![1, 2, 3]);
    }

    #[test]
    fn oversize_header_is_refused_before_any_allocation() {
        for len in [64 * 1024 + 1, 1u32 << 31, u32::MAX] {
            let mut dec = FrameDecoder::new(64 * 1024);
            let mut buf = header_bytes(1, len, 10);
            let cap_before = buf.capacity();
            let err = dec.decode(&mut buf).unwrap_err();
            assert!(
                matches!(err, FrameError::TooLarge { len: l, max: 65536 } if l == u64::from(len)),
                "{err}"
            );
            assert_eq!(
                buf.capacity(),
                cap_before,
                "no reservation for a refused frame"
            );
            assert!(buf.capacity() < 1024);
        }
    }

    #[test]
    fn declared_length_is_not_reserved_up_front() {
        let mut dec = FrameDecoder::new(64 * 1024);
        let mut buf = header_bytes(1, 64 * 1024, 10);
        buf.extend_from_slice(b"{");
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
    }

    #[test]
    fn unsupported_version_is_refused() {
        let mut dec = FrameDecoder::new(64);
        let mut buf = header_bytes(2, 0, 1);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::UnsupportedVersion { version: 2 })
        ));
    }

    #[test]
    fn limit_can_be_raised_after_handshake() {
        let mut dec = FrameDecoder::new(4);
        let mut buf = header_bytes(1, 8, 1);
        buf.extend_from_slice(b"12345678");
        assert!(dec.decode(&mut buf.clone()).is_err());
        dec.set_max_body(8);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().body.len(), 8);
    }
}
