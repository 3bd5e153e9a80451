//! Reading a peer's byte stream into messages, and knowing when a frame started.
//!
//! This is `FramedRead` by hand, for one reason: the slowloris guard needs to know when the
//! first byte of an incomplete frame arrived, and `FramedRead` hides partial reads inside its
//! `poll_next`. Here the session reads (cancel-safe), then takes every complete frame, and
//! [`FrameReader::partial_since`] says since when an incomplete one has been waiting.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Poll, ready};

use bytes::BytesMut;
use chat_proto::{ClientMsg, FrameError, MessageError, ServerCodec};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// Bytes asked for per read. The session yields after each read's frames (see `session`), so
/// this is also how much a busy publisher's messages go through the hub at a time: 4 KiB cost
/// a read per ~45 messages, 64 KiB delayed the first delivery; 16 KiB measured best (closed-loop
/// fan-out to 1 and 10 subscribers +8 % over 8 KiB).
const READ_CHUNK: usize = 16 * 1024;
/// Above this, an emptied buffer is given back rather than kept for the next read.
const KEEP_MAX: usize = 1024;

/// The read half of a connection and its undecoded bytes.
#[derive(Debug)]
pub struct FrameReader<R> {
    rd: R,
    buf: BytesMut,
    codec: ServerCodec,
    /// When the incomplete frame now waiting in `buf` began to arrive; `None` when `buf` is
    /// empty.
    partial_since: Option<Instant>,
    /// When the last read returned bytes.
    last_read: Instant,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader whose decoder accepts bodies up to `max_body` bytes.
    pub fn new(rd: R, max_body: u32) -> Self {
        FrameReader {
            rd,
            buf: BytesMut::new(),
            codec: ServerCodec::new(max_body),
            partial_since: None,
            last_read: Instant::now(),
        }
    }

    /// Reads whatever the peer sent next; `Ok(0)` is end of stream. Cancel-safe.
    ///
    /// An idle connection holds no read buffer: when nothing is buffered the read goes into a
    /// stack buffer and only the bytes that arrived are copied in (all of them are taken by
    /// [`FrameReader::next_message`] unless a frame is incomplete). Mid-frame, the read goes
    /// straight into the buffer.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        let n = if self.buf.is_empty() {
            std::future::poll_fn(|cx| {
                let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut rb = ReadBuf::uninit(&mut stack);
                ready!(Pin::new(&mut self.rd).poll_read(cx, &mut rb))?;
                self.buf.extend_from_slice(rb.filled());
                Poll::Ready(Ok::<_, io::Error>(rb.filled().len()))
            })
            .await?
        } else {
            self.buf.reserve(READ_CHUNK);
            self.rd.read_buf(&mut self.buf).await?
        };
        if n > 0 {
            self.last_read = Instant::now();
            self.partial_since.get_or_insert(self.last_read);
        }
        Ok(n)
    }

    /// The next complete frame as a message (or a per-frame error); `Ok(None)` when no whole
    /// frame is buffered. `Err` means the stream cannot be resynchronised.
    pub fn next_message(&mut self) -> Result<Option<Result<ClientMsg, MessageError>>, FrameError> {
        let item = self.codec.decode(&mut self.buf)?;
        if self.buf.is_empty() && self.buf.capacity() > KEEP_MAX {
            // Whatever frames were cut from it keep their bytes; we keep nothing while idle.
            self.buf = BytesMut::new();
        }
        if item.is_some() {
            // The rest of the buffer (if any) is a new frame: at the latest it started arriving
            // with the last read.
            self.partial_since = (!self.buf.is_empty()).then_some(self.last_read);
        }
        Ok(item)
    }

    /// Since when an incomplete frame has been waiting, if one is.
    pub fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }

    /// Raises (or lowers) the body limit, e.g. once the handshake is done.
    pub fn set_max_body(&mut self, max_body: u32) {
        self.codec.set_max_body(max_body);
    }

    /// Reads and discards until end of stream; used while closing so our last frames are not
    /// lost to a reset caused by unread input.
    pub async fn discard_to_end(&mut self) {
        let mut scratch = [0u8; 4096];
        while let Ok(n) = self.rd.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::message::Ping;
    use chat_proto::{ClientCodec, ClientMsg};
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::Encoder;

    use super::*;

    fn ping_frame() -> BytesMut {
        let mut buf = BytesMut::new();
        ClientCodec::new(1024)
            .encode(ClientMsg::Ping(Ping::default()), &mut buf)
            .unwrap();
        buf
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_frame_is_timed_from_its_first_byte() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server, 1024);
        let frame = ping_frame();
        client.write_all(&frame[..5]).await.unwrap();
        let first = Instant::now();
        reader.read_more().await.unwrap();
        assert!(reader.next_message().unwrap().is_none());
        assert_eq!(reader.partial_since(), Some(first));

        tokio::time::advance(std::time::Duration::from_secs(3)).await;
        client.write_all(&frame[5..8]).await.unwrap();
        reader.read_more().await.unwrap();
        assert_eq!(
            reader.partial_since(),
            Some(first),
            "more bytes do not reset the clock"
        );

        client.write_all(&frame[8..]).await.unwrap();
        reader.read_more().await.unwrap();
        assert!(matches!(
            reader.next_message().unwrap(),
            Some(Ok(ClientMsg::Ping(_)))
        ));
        assert_eq!(reader.partial_since(), None, "complete: no frame pending");

        // A frame and the start of the next in one read: the next is timed from that read.
        tokio::time::advance(std::time::Duration::from_secs(3)).await;
        let mut two = ping_frame();
        two.extend_from_slice(&frame[..4]);
        client.write_all(&two).await.unwrap();
        reader.read_more().await.unwrap();
        assert!(reader.next_message().unwrap().is_some());
        assert_eq!(reader.partial_since(), Some(Instant::now()));
    }
}
