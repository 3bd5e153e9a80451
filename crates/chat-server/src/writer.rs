//! The per-connection writer task: the only code that writes to a client's socket.
//!
//! It owns the receiving end of the connection's bounded outbound queue of [`Item`]s: a frame,
//! or the frames of one hub turn. Every frame is already encoded (`Bytes`, shared with the other
//! recipients of a broadcast). On each wake-up it takes what is queued (`try_recv`, up to 64
//! KiB; the rest of a large item waits for the next write), copies the small frames into one
//! contiguous buffer and writes it, so a burst of frames costs one syscall with one or two
//! slices, not one syscall or one slice per frame. The buffer lives only while there is
//! something to write: an idle connection holds none. A write the socket takes at once arms no
//! timer; only a write that has to wait is watched by the stall timeout.
//!
//! A write that makes no progress for `write_timeout` ends the task with [`WriterExit::Stalled`]:
//! the session then closes the connection as lagged. To close, the session sends a [`Finish`]:
//! the writer completes the frame it is in the middle of (never a torn frame), flushes what is
//! still queued, appends the finishing frames (an `error`, a `notice`) and shuts its half of the
//! socket down, all within the finish timeout.

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::{Buf, Bytes};
use chat_proto::frame::{HEADER_LEN, Header};
use futures::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use crate::queue;

/// One item of a connection's outbound queue: a frame, or the frames the hub produced for this
/// connection in one turn. Frames are shared (`Bytes`) with their other recipients: a turn's
/// frames travel as handles, never copied into a buffer of the connection's own. A buffer of a
/// turn may hold several whole frames back to back (a run of consecutive messages into one
/// room, encoded into one buffer for all its recipients: see `hub::run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// One frame.
    One(Bytes),
    /// Buffers of whole frames, in order.
    Many {
        /// The buffers, each one frame or several.
        bufs: Vec<Bytes>,
        /// Frames in all of them.
        frames: usize,
    },
}

impl Item {
    /// An item of one frame per buffer.
    pub fn many(frames: Vec<Bytes>) -> Self {
        Item::Many {
            frames: frames.len(),
            bufs: frames,
        }
    }

    /// The frames, in order, each its own buffer (a buffer of several is split, not copied).
    pub fn into_frames(self) -> Vec<Bytes> {
        match self {
            Item::One(frame) => vec![frame],
            Item::Many { bufs, frames } if frames == bufs.len() => bufs,
            Item::Many { bufs, frames } => {
                let mut out = Vec::with_capacity(frames);
                for buf in bufs {
                    split_frames(buf, &mut out);
                }
                out
            }
        }
    }

    /// How many frames it carries.
    pub fn frames(&self) -> usize {
        match self {
            Item::One(_) => 1,
            Item::Many { frames, .. } => *frames,
        }
    }
}

/// Appends the whole frames back to back in `buf` to `out`, each its own buffer (not copied).
pub fn split_frames(mut buf: Bytes, out: &mut Vec<Bytes>) {
    while let Some(h) = Header::parse(&buf) {
        let len = (HEADER_LEN + h.body_len as usize).min(buf.len());
        out.push(buf.split_to(len));
    }
}

impl From<Bytes> for Item {
    fn from(frame: Bytes) -> Self {
        Item::One(frame)
    }
}

/// How the session asks the writer to end the connection.
#[derive(Debug)]
pub struct Finish {
    /// Frames to write after everything already queued (e.g. a fatal `error`).
    pub frames: Vec<Bytes>,
    /// Time allowed for the queue, the frames and the shutdown together.
    pub timeout: Duration,
}

/// Why the writer ended.
#[derive(Debug)]
pub enum WriterExit {
    /// Everything queued and the finishing frames were written; the write half is shut down.
    Finished,
    /// The finish timeout passed before everything was written.
    FinishTimedOut,
    /// A write made no progress within the write timeout: the peer is not reading.
    Stalled,
    /// The socket failed.
    Failed(io::Error),
    /// The session dropped both its queue sender and its finish sender.
    Abandoned,
}

/// What woke the writer while it was writing or waiting.
enum Step {
    Wrote(io::Result<usize>),
    Stalled,
    FinishDue,
    FinishArrived(Option<Finish>),
}

/// Runs the writer until the session finishes it or the socket fails or stalls.
pub async fn run<W>(
    mut wr: W,
    mut rx: queue::Receiver,
    finish_rx: oneshot::Receiver<Finish>,
    write_timeout: Duration,
) -> WriterExit
where
    W: AsyncWrite + Unpin,
{
    let mut finish_rx = Some(finish_rx);
    let mut batch = Outbox::default();
    // A finish that arrived mid-write, and the deadline it set.
    let mut finishing: Option<(Finish, Instant)> = None;
    loop {
        if let Some((finish, deadline)) = finishing.take() {
            // Boxed: only a closing connection needs this state.
            return Box::pin(finish_up(wr, rx, batch, finish.frames, deadline)).await;
        }
        if batch.has_taken() {
            // Frames of an item taken before that did not fit the last write go first.
            batch.refill(&mut rx);
            let write = write(
                &mut wr,
                &mut batch,
                write_timeout,
                &mut finish_rx,
                &mut finishing,
            );
            if let Err(exit) = write.await {
                return exit;
            }
            continue;
        }
        let Some(finish_wait) = finish_rx.as_mut() else {
            return WriterExit::Abandoned;
        };
        tokio::select! {
            // A finish takes priority over more frames: the session is closing.
            biased;
            // The session closes the connection (or vanished, when the sender was dropped).
            finish = finish_wait => {
                finish_rx = None;
                match finish {
                    Ok(f) => {
                        let deadline = Instant::now() + f.timeout;
                        finishing = Some((f, deadline));
                    }
                    Err(_) => return WriterExit::Abandoned,
                }
            }
            // Frames to send: take what is queued (up to one write's worth) and write it.
            item = rx.recv() => match item {
                Some(first) => {
                    batch.fill(first, &mut rx);
                    if let Err(exit) =
                        write(&mut wr, &mut batch, write_timeout, &mut finish_rx, &mut finishing).await
                    {
                        return exit;
                    }
                }
                // Every sender is gone; the session always finishes first, so this is an abort.
                None => return WriterExit::Abandoned,
            },
        }
    }
}

/// Bytes of queued frames copied into one buffer for one write; a frame that does not fit
/// goes out as a second slice of the same write, and the rest waits in the queue.
const COALESCE_MAX: usize = 64 * 1024;
/// Frames larger than this are never copied: they go out as their own slice.
const COPY_MAX: usize = 16 * 1024;

/// What one wake-up writes: small frames copied into one contiguous buffer (so a burst of
/// ~150-byte frames is one slice, not hundreds), then at most one frame sent as it is (a lone
/// frame, a large one, or the one that did not fit). `buf[pos..]` and then `tail` are unwritten.
/// Frames of a taken item that did not fit this write wait in `taken` for the next one.
///
/// The buffer is allocated for the burst at hand and freed once it is written, so an idle
/// connection keeps no write buffer.
#[derive(Debug, Default)]
struct Outbox {
    buf: Vec<u8>,
    pos: usize,
    tail: Option<Bytes>,
    taken: Option<std::vec::IntoIter<Bytes>>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && self.tail.is_none()
    }

    /// Whether frames taken from the queue wait for the next write.
    fn has_taken(&self) -> bool {
        self.taken.as_ref().is_some_and(|t| t.len() > 0)
    }

    /// Whether another frame may join this write.
    fn has_room(&self) -> bool {
        self.tail.is_none() && self.buf.len() < COALESCE_MAX
    }

    /// Appends a frame: copied if small and it fits, else as the tail (which closes the outbox).
    fn push(&mut self, frame: Bytes) {
        debug_assert!(self.has_room());
        if frame.len() <= COPY_MAX && self.buf.len() + frame.len() <= COALESCE_MAX {
            self.buf.extend_from_slice(&frame);
        } else {
            self.tail = Some(frame);
        }
    }

    /// The next frame to write: from the item being taken apart, else from the queue.
    fn next_frame(&mut self, rx: &mut queue::Receiver) -> Option<Bytes> {
        if let Some(taken) = self.taken.as_mut() {
            if let Some(frame) = taken.next() {
                return Some(frame);
            }
            self.taken = None;
        }
        match rx.try_recv().ok()? {
            Item::One(frame) => Some(frame),
            Item::Many { bufs, .. } => {
                let mut frames = bufs.into_iter();
                let first = frames.next();
                self.taken = Some(frames);
                first
            }
        }
    }

    /// Takes `first` and whatever else is queued, up to one write's worth.
    fn fill(&mut self, first: Item, rx: &mut queue::Receiver) {
        debug_assert!(!self.has_taken(), "an item is taken apart before the next");
        match first {
            Item::One(frame) => self.fill_from(Some(frame), rx),
            Item::Many { bufs, .. } => {
                self.taken = Some(bufs.into_iter());
                self.fill_from(None, rx);
            }
        }
    }

    /// Takes the frames waiting in `taken`, then what is queued, up to one write's worth.
    fn refill(&mut self, rx: &mut queue::Receiver) {
        self.fill_from(None, rx);
    }

    /// Takes `first` (if given), the frames waiting in `taken`, then what is queued, up to one
    /// write's worth. A lone frame is not copied at all.
    fn fill_from(&mut self, first: Option<Bytes>, rx: &mut queue::Receiver) {
        debug_assert!(
            self.is_empty(),
            "filled only once the last batch is written"
        );
        let Some(first) = first.or_else(|| self.next_frame(rx)) else {
            return;
        };
        // A large frame, or a lone one, goes out as it is, without a copy.
        if first.len() > COPY_MAX {
            self.tail = Some(first);
            return;
        }
        let Some(second) = self.next_frame(rx) else {
            self.tail = Some(first);
            return;
        };
        // Room for the frames waiting now (counted in frames, each taken as large as the larger
        // of the first two), so the buffer is allocated once for this burst: growing it by
        // doubling copied it over and over, most of the writer's time at 1000 subscribers.
        let waiting = self.taken.as_ref().map_or(0, ExactSizeIterator::len) + rx.frames();
        let queued =
            first.len() + second.len() + waiting.saturating_mul(first.len().max(second.len()));
        self.buf.reserve(queued.min(COALESCE_MAX));
        // `first` is small, so there is room for `second` after it (copied or as the tail).
        self.push(first);
        self.push(second);
        while self.has_room() {
            match self.next_frame(rx) {
                Some(more) => self.push(more),
                None => break,
            }
        }
    }

    /// The unwritten bytes, at most two slices.
    fn slices(&self) -> ([IoSlice<'_>; 2], usize) {
        let head = &self.buf[self.pos..];
        let tail = self.tail.as_deref().unwrap_or(&[]);
        match (head.is_empty(), tail.is_empty()) {
            (false, false) => ([IoSlice::new(head), IoSlice::new(tail)], 2),
            (false, true) => ([IoSlice::new(head), IoSlice::new(&[])], 1),
            (true, _) => ([IoSlice::new(tail), IoSlice::new(&[])], 1),
        }
    }

    /// Drops `n` written bytes from the front; frees the buffer once everything is written.
    fn advance(&mut self, mut n: usize) {
        let head = self.buf.len() - self.pos;
        if n < head {
            self.pos += n;
            return;
        }
        n -= head;
        self.pos = self.buf.len();
        if let Some(tail) = self.tail.as_mut() {
            tail.advance(n.min(tail.len()));
            if tail.is_empty() {
                self.tail = None;
            }
        }
        if self.is_empty() {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// Appends bytes that must go out after everything else (when finishing): no size limit.
    fn extend(&mut self, frame: &[u8]) {
        if let Some(tail) = self.tail.take() {
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.extend_from_slice(&tail);
        }
        self.buf.extend_from_slice(frame);
    }
}

/// Writes the whole batch: at once while the socket takes it (the common case, no timer, no
/// allocation), else waiting on the socket, watching for a finish. The waiting state is boxed:
/// an idle writer's task is sized for its idle state, not for a write in progress.
async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    batch: &mut Outbox,
    stall: Duration,
    finish_rx: &mut Option<oneshot::Receiver<Finish>>,
    finishing: &mut Option<(Finish, Instant)>,
) -> Result<(), WriterExit> {
    while !batch.is_empty() {
        let (slices, used) = batch.slices();
        match wr.write_vectored(&slices[..used]).now_or_never() {
            Some(Ok(0)) => return Err(WriterExit::Failed(io::ErrorKind::WriteZero.into())),
            Some(Ok(n)) => batch.advance(n),
            Some(Err(e)) => return Err(WriterExit::Failed(e)),
            None => return Box::pin(write_batch(wr, batch, stall, finish_rx, finishing)).await,
        }
    }
    match wr.flush().now_or_never() {
        Some(res) => res.map_err(WriterExit::Failed),
        None => Box::pin(write_batch(wr, batch, stall, finish_rx, finishing)).await,
    }
}

/// Writes the whole batch, watching for a finish. A finish that arrives mid-batch does not cut
/// the batch (that could tear a frame); it only shortens the deadline.
async fn write_batch<W: AsyncWrite + Unpin>(
    wr: &mut W,
    batch: &mut Outbox,
    stall: Duration,
    finish_rx: &mut Option<oneshot::Receiver<Finish>>,
    finishing: &mut Option<(Finish, Instant)>,
) -> Result<(), WriterExit> {
    while !batch.is_empty() {
        let (slices, used) = batch.slices();
        let deadline = finishing.as_ref().map(|(_, d)| *d);
        let step = tokio::select! {
            // Progress on the socket.
            res = wr.write_vectored(&slices[..used]) => Step::Wrote(res),
            // No progress for the whole write timeout: the peer stopped reading.
            () = sleep(stall) => Step::Stalled,
            // The finish deadline passed while the batch was still going out.
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Step::FinishDue,
            // The session asked to finish: keep writing, but against its deadline.
            f = async {
                match finish_rx.as_mut() {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            }, if finish_rx.is_some() => Step::FinishArrived(f),
        };
        match step {
            Step::Wrote(Ok(0)) => return Err(WriterExit::Failed(io::ErrorKind::WriteZero.into())),
            Step::Wrote(Ok(n)) => batch.advance(n),
            Step::Wrote(Err(e)) => return Err(WriterExit::Failed(e)),
            Step::Stalled => return Err(WriterExit::Stalled),
            Step::FinishDue => return Err(WriterExit::FinishTimedOut),
            Step::FinishArrived(f) => {
                *finish_rx = None;
                match f {
                    Some(f) => {
                        let deadline = Instant::now() + f.timeout;
                        *finishing = Some((f, deadline));
                    }
                    None => return Err(WriterExit::Abandoned),
                }
            }
        }
    }
    match timeout_at(Instant::now() + stall, wr.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriterExit::Failed(e)),
        Err(_) => Err(WriterExit::Stalled),
    }
}

/// Writes the whole batch, with no timeout of its own.
async fn write_all<W: AsyncWrite + Unpin>(wr: &mut W, batch: &mut Outbox) -> io::Result<()> {
    while !batch.is_empty() {
        let (slices, used) = batch.slices();
        let n = wr.write_vectored(&slices[..used]).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        batch.advance(n);
    }
    Ok(())
}

/// Writes what is left of the batch, everything still queued and the finishing frames, then
/// shuts the write half down; all before `deadline`.
async fn finish_up<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: queue::Receiver,
    mut batch: Outbox,
    frames: Vec<Bytes>,
    deadline: Instant,
) -> WriterExit {
    // Refuse further frames; what was queued before the refusal still goes out, one write's
    // worth at a time (copying the whole queue could hold thousands of shared broadcast frames
    // per connection), then the finishing frames (a few small ones, copied).
    rx.close();
    let written = timeout_at(deadline, async {
        loop {
            write_all(&mut wr, &mut batch).await?;
            batch.refill(&mut rx);
            if batch.is_empty() {
                break;
            }
        }
        for frame in &frames {
            batch.extend(frame);
        }
        write_all(&mut wr, &mut batch).await?;
        wr.flush().await?;
        wr.shutdown().await
    })
    .await;
    match written {
        Ok(Ok(())) => WriterExit::Finished,
        Ok(Err(e)) => WriterExit::Failed(e),
        Err(_) => WriterExit::FinishTimedOut,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn frames(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(format!("[{i}]"))).collect()
    }

    #[test]
    fn the_outbox_coalesces_in_order_and_frees_its_buffer() {
        let (tx, mut rx) = queue::channel(16);
        for f in frames(3) {
            tx.try_send(f.into()).unwrap();
        }
        let mut batch = Outbox::default();
        let first = rx.try_recv().unwrap();
        batch.fill(first, &mut rx);
        let (slices, used) = batch.slices();
        assert_eq!(used, 1);
        assert_eq!(&*slices[0], b"[0][1][2]");
        batch.advance(4);
        let (slices, _) = batch.slices();
        assert_eq!(&*slices[0], b"1][2]");
        batch.advance(5);
        assert!(batch.is_empty());
        assert_eq!(batch.buf.capacity(), 0, "no buffer kept while idle");

        // A lone frame is written as it is; a large one goes after the small ones.
        batch.fill(Bytes::from_static(b"solo").into(), &mut rx);
        assert_eq!(batch.buf.capacity(), 0);
        assert_eq!(&*batch.slices().0[0], b"solo");
        batch.advance(4);
        tx.try_send(Bytes::from(vec![b'x'; COPY_MAX + 1]).into())
            .unwrap();
        tx.try_send(Bytes::from_static(b"after").into()).unwrap();
        batch.fill(Bytes::from_static(b"small").into(), &mut rx);
        let (slices, used) = batch.slices();
        assert_eq!(used, 2);
        assert_eq!(&*slices[0], b"small");
        assert_eq!(slices[1].len(), COPY_MAX + 1);
        assert_eq!(
            rx.try_recv().unwrap(),
            Item::One(Bytes::from_static(b"after")),
            "waits its turn"
        );
        batch.advance(3);
        batch.advance(COPY_MAX + 3);
        assert!(batch.is_empty());

        // A large frame first: it goes alone and nothing queued behind it is taken yet.
        tx.try_send(Bytes::from_static(b"next").into()).unwrap();
        batch.fill(Bytes::from(vec![b'y'; COPY_MAX + 1]).into(), &mut rx);
        assert_eq!(batch.slices().1, 1);
        assert_eq!(batch.slices().0[0].len(), COPY_MAX + 1);
        batch.advance(COPY_MAX + 1);
        assert!(batch.is_empty());
        assert_eq!(
            rx.try_recv().unwrap(),
            Item::One(Bytes::from_static(b"next"))
        );
    }

    #[test]
    fn an_item_larger_than_one_write_goes_out_over_several_in_order() {
        let (tx, mut rx) = queue::channel(16);
        // 100 frames of 1 KiB in one item: more than one write's worth.
        let item: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 1024])).collect();
        tx.try_send(Bytes::from_static(b"after").into()).unwrap();
        let mut batch = Outbox::default();
        batch.fill(Item::many(item), &mut rx);
        let mut written = Vec::new();
        loop {
            let (slices, used) = batch.slices();
            let n: usize = slices[..used].iter().map(|s| s.len()).sum();
            for s in &slices[..used] {
                written.extend_from_slice(s);
            }
            batch.advance(n);
            if !batch.has_taken() && rx.is_empty() {
                break;
            }
            assert!(written.len() <= 100 * 1024, "the next item waits its turn");
            batch.refill(&mut rx);
        }
        let mut expected: Vec<u8> = (0..100u8).flat_map(|i| vec![i; 1024]).collect();
        expected.extend_from_slice(b"after");
        assert_eq!(written.len(), expected.len());
        assert!(written == expected, "every frame once, in order");
    }

    #[tokio::test]
    async fn queued_frames_and_finishing_frames_arrive_in_order() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (tx, rx) = queue::channel(16);
        let (finish_tx, finish_rx) = oneshot::channel();
        let mut all = frames(5).into_iter();
        tx.try_send(Item::many(all.by_ref().take(3).collect()))
            .unwrap();
        for f in all {
            tx.try_send(f.into()).unwrap();
        }
        let task = tokio::spawn(run(server, rx, finish_rx, Duration::from_secs(1)));
        finish_tx
            .send(Finish {
                frames: vec![Bytes::from_static(b"<bye>")],
                timeout: Duration::from_secs(1),
            })
            .unwrap();
        let exit = task.await.unwrap();
        assert!(matches!(exit, WriterExit::Finished), "{exit:?}");
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "[0][1][2][3][4]<bye>");
    }

    #[tokio::test]
    async fn a_turn_larger_than_one_write_arrives_whole_and_in_order_before_what_follows() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (tx, rx) = queue::channel(256);
        let (finish_tx, finish_rx) = oneshot::channel();
        // 200 frames of 1 KiB in one item: three writes' worth; then a lone frame.
        let turn: Vec<Bytes> = (0..200u32)
            .map(|i| Bytes::from(format!("<{i:04}>").repeat(1024 / 6)))
            .collect();
        let expected: Vec<u8> = turn.iter().flat_map(|f| f.to_vec()).collect();
        tx.try_send(Item::many(turn)).unwrap();
        tx.try_send(Bytes::from_static(b"<after>").into()).unwrap();
        let task = tokio::spawn(run(server, rx, finish_rx, Duration::from_secs(5)));
        let mut client = client;
        let mut got = vec![0u8; expected.len() + 7];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got))
            .await
            .expect("every byte arrives")
            .unwrap();
        assert!(
            got[..expected.len()] == expected[..],
            "the turn, whole and in order"
        );
        assert_eq!(&got[expected.len()..], b"<after>");
        finish_tx
            .send(Finish {
                frames: Vec::new(),
                timeout: Duration::from_secs(1),
            })
            .unwrap();
        assert!(matches!(task.await.unwrap(), WriterExit::Finished));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_stalls_the_writer() {
        // A 64-byte pipe that nobody reads: the first write fills it, the next never progresses.
        let (_client, server) = tokio::io::duplex(64);
        let (tx, rx) = queue::channel(16);
        let (_finish_tx, finish_rx) = oneshot::channel();
        let task = tokio::spawn(run(server, rx, finish_rx, Duration::from_secs(10)));
        tx.try_send(Bytes::from(vec![b'x'; 1000]).into()).unwrap();
        let started = Instant::now();
        let exit = task.await.unwrap();
        assert!(matches!(exit, WriterExit::Stalled), "{exit:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
