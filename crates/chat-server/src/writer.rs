//! The per-connection writer task: the only code that writes to a client's socket.
//!
//! It owns the receiving end of the connection's bounded outbound queue. Every frame in the
//! queue is already encoded (`Bytes`, shared with the other recipients of a broadcast). On each
//! wake-up it takes everything queued (`try_recv` until empty) and writes it with vectored
//! writes, so a burst of frames costs one syscall, not one per frame.
//!
//! A write that makes no progress for `write_timeout` ends the task with [`WriterExit::Stalled`]:
//! the session then closes the connection as lagged. To close, the session sends a [`Finish`]:
//! the writer completes the frame it is in the middle of (never a torn frame), flushes what is
//! still queued, appends the finishing frames (an `error`, a `notice`) and shuts its half of the
//! socket down, all within the finish timeout.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

/// Slices per vectored write (well under every platform's `IOV_MAX`).
const MAX_IOV: usize = 512;

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
    mut rx: mpsc::Receiver<Bytes>,
    finish_rx: oneshot::Receiver<Finish>,
    write_timeout: Duration,
) -> WriterExit
where
    W: AsyncWrite + Unpin,
{
    let mut finish_rx = Some(finish_rx);
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    // A finish that arrived mid-write, and the deadline it set.
    let mut finishing: Option<(Finish, Instant)> = None;
    loop {
        if let Some((finish, deadline)) = finishing.take() {
            return finish_up(wr, rx, batch, finish.frames, deadline).await;
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
            // Frames to send: take everything queued and write it in one go.
            frame = rx.recv() => match frame {
                Some(first) => {
                    batch.push_back(first);
                    while let Ok(more) = rx.try_recv() {
                        batch.push_back(more);
                    }
                    if let Err(exit) =
                        write_batch(&mut wr, &mut batch, write_timeout, &mut finish_rx, &mut finishing).await
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

/// Writes the whole batch, watching for a finish. A finish that arrives mid-batch does not cut
/// the batch (that could tear a frame); it only shortens the deadline.
async fn write_batch<W: AsyncWrite + Unpin>(
    wr: &mut W,
    batch: &mut VecDeque<Bytes>,
    stall: Duration,
    finish_rx: &mut Option<oneshot::Receiver<Finish>>,
    finishing: &mut Option<(Finish, Instant)>,
) -> Result<(), WriterExit> {
    while !batch.is_empty() {
        let slices: Vec<IoSlice<'_>> = batch
            .iter()
            .take(MAX_IOV)
            .map(|b| IoSlice::new(b))
            .collect();
        let deadline = finishing.as_ref().map(|(_, d)| *d);
        let step = tokio::select! {
            // Progress on the socket.
            res = wr.write_vectored(&slices) => Step::Wrote(res),
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
        drop(slices);
        match step {
            Step::Wrote(Ok(0)) => return Err(WriterExit::Failed(io::ErrorKind::WriteZero.into())),
            Step::Wrote(Ok(n)) => advance(batch, n),
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

/// Writes what is left of the batch, everything still queued and the finishing frames, then
/// shuts the write half down; all before `deadline`.
async fn finish_up<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Bytes>,
    mut batch: VecDeque<Bytes>,
    frames: Vec<Bytes>,
    deadline: Instant,
) -> WriterExit {
    // Refuse further frames, then take what was queued before the refusal.
    rx.close();
    while let Ok(more) = rx.try_recv() {
        batch.push_back(more);
    }
    batch.extend(frames);
    let written = timeout_at(deadline, async {
        while !batch.is_empty() {
            let slices: Vec<IoSlice<'_>> = batch
                .iter()
                .take(MAX_IOV)
                .map(|b| IoSlice::new(b))
                .collect();
            let n = wr.write_vectored(&slices).await?;
            drop(slices);
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            advance(&mut batch, n);
        }
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

/// Drops `n` written bytes from the front of the batch.
fn advance(batch: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = batch.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            batch.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
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
    fn advance_drops_whole_and_partial_frames() {
        let mut batch: VecDeque<Bytes> = frames(3).into();
        advance(&mut batch, 4);
        assert_eq!(batch.len(), 2);
        assert_eq!(&batch[0][..], b"1]");
        advance(&mut batch, 3);
        assert_eq!(batch.len(), 1);
        assert_eq!(&batch[0][..], b"2]");
        advance(&mut batch, 2);
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn queued_frames_and_finishing_frames_arrive_in_order() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (tx, rx) = mpsc::channel(16);
        let (finish_tx, finish_rx) = oneshot::channel();
        for f in frames(5) {
            tx.try_send(f).unwrap();
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

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_stalls_the_writer() {
        // A 64-byte pipe that nobody reads: the first write fills it, the next never progresses.
        let (_client, server) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let (_finish_tx, finish_rx) = oneshot::channel();
        let task = tokio::spawn(run(server, rx, finish_rx, Duration::from_secs(10)));
        tx.send(Bytes::from(vec![b'x'; 1000])).await.unwrap();
        let started = Instant::now();
        let exit = task.await.unwrap();
        assert!(matches!(exit, WriterExit::Stalled), "{exit:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
