//! The tokio-util codec both ends use: bytes → frame → typed message, and back.
//!
//! [`MessageCodec<In, Out>`] decodes `In` and encodes `Out`: the server uses
//! [`ServerCodec`] (reads [`ClientMsg`], writes [`ServerMsg`]), the client uses [`ClientCodec`].
//!
//! A decoder `Err` ends a `Framed` stream, so only framing errors (bad version, oversize, I/O)
//! are `Err`. A bad body inside a well-formed frame is yielded as `Ok(Some(Err(..)))`: the
//! connection answers with an error and goes on.

use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::client::ClientMsg;
use crate::error::{EncodeError, FrameError, MessageError};
use crate::frame::{FrameDecoder, HEADER_LEN};
use crate::message::WireMessage;
use crate::server::ServerMsg;

/// The server's codec: decodes client messages, encodes server messages.
pub type ServerCodec = MessageCodec<ClientMsg, ServerMsg>;
/// The client's codec: decodes server messages, encodes client messages.
pub type ClientCodec = MessageCodec<ServerMsg, ClientMsg>;

/// Typed codec over [`FrameDecoder`].
#[derive(Debug)]
pub struct MessageCodec<In, Out> {
    frames: FrameDecoder,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> MessageCodec<In, Out> {
    /// A codec whose decoder accepts bodies up to `max_body` bytes.
    pub fn new(max_body: u32) -> Self {
        MessageCodec {
            frames: FrameDecoder::new(max_body),
            _types: PhantomData,
        }
    }

    /// The current body limit of the decoder.
    pub fn max_body(&self) -> u32 {
        self.frames.max_body()
    }

    /// Changes the decoder's body limit (raise it once the handshake is done).
    pub fn set_max_body(&mut self, max_body: u32) {
        self.frames.set_max_body(max_body);
    }
}

impl<In, Out> Clone for MessageCodec<In, Out> {
    fn clone(&self) -> Self {
        MessageCodec {
            frames: self.frames.clone(),
            _types: PhantomData,
        }
    }
}

impl<In: WireMessage, Out> Decoder for MessageCodec<In, Out> {
    type Item = Result<In, MessageError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        let Some(header) = self.frames.whole_frame(src)? else {
            return Ok(None);
        };
        // Nearly every body is read where it lies; only a binary one is cut off as `Bytes`.
        let end = HEADER_LEN + header.body_len as usize;
        let in_place = src
            .get(HEADER_LEN..end)
            .and_then(|body| In::decode_in_place(header.kind, body));
        if let Some(msg) = in_place {
            src.advance(end);
            return Ok(Some(msg));
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(header.body_len as usize).freeze();
        Ok(Some(In::decode(header.kind, body)))
    }
}

impl<In, Out: WireMessage> Encoder<&Out> for MessageCodec<In, Out> {
    type Error = EncodeError;

    fn encode(&mut self, item: &Out, dst: &mut BytesMut) -> Result<(), EncodeError> {
        item.encode_frame(dst)
    }
}

impl<In, Out: WireMessage> Encoder<Out> for MessageCodec<In, Out> {
    type Error = EncodeError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), EncodeError> {
        item.encode_frame(dst)
    }
}

/// Pre-encoded frames (from [`WireMessage::to_frame_bytes`]) pass through unchanged, so one
/// encoding can be shared by every recipient of a broadcast.
impl<In, Out> Encoder<Bytes> for MessageCodec<In, Out> {
    type Error = EncodeError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}
