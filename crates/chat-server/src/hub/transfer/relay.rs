//! The data path of a transfer: chunks relayed within the window, acks, `file_done`.
//!
//! A chunk goes to every active leg expecting its offset, only if it ends within
//! [`WINDOW`] bytes of that leg's last ack and the leg has fewer than
//! [`Transfers::max_frames`] unacknowledged chunks; otherwise the sender gets `file_refused`.
//! The chunk is encoded once and the same bytes are queued to every receiver.

use chat_proto::ServerMsg;
use chat_proto::client::FileAck;
use chat_proto::message::{FileChunk, FileDone};
use chat_proto::server::FileProgress;
use tracing::info;

use super::{LegState, Transfers, WINDOW};
use crate::hub::{Hub, SessionId, encode};

impl Hub {
    /// Relays a chunk to every leg expecting its offset, within the window.
    pub(in crate::hub) fn file_chunk(&mut self, id: SessionId, c: FileChunk) {
        let Some((_, fold)) = self.who(id) else {
            return;
        };
        let max_frames = Transfers::max_frames(
            self.config.outbound_queue,
            self.config.max_transfers_per_user,
        );
        let file = c.file;
        let len = c.data.len() as u64;
        let Some(t) = self.transfers.map.get_mut(&file) else {
            return self.file_refuse(id, None, format!("no file {file} (unknown or expired)"));
        };
        if t.from_fold != fold {
            return self.file_refuse(id, None, format!("you are not sending file {file}"));
        }
        let end = c.offset.saturating_add(len);
        if len == 0 || end > t.size {
            let text = format!(
                "chunk {}..{end} is empty or past the size {}",
                c.offset, t.size
            );
            return self.file_refuse(id, None, text);
        }
        if t.legs.values().any(|l| l.state == LegState::Paused)
            && t.legs.values().all(|l| l.state != LegState::Active)
        {
            // In flight when the receiver left; it will ask again from what it stored.
            return;
        }
        let mut wanted = Vec::new();
        let mut expected = Vec::new();
        for (leg_fold, leg) in &t.legs {
            if leg.state != LegState::Active {
                continue;
            }
            if leg.next != c.offset {
                expected.push(leg.next);
                continue;
            }
            if end > leg.acked.max(leg.base) + WINDOW || leg.inflight.len() >= max_frames {
                let text = format!(
                    "chunk {}..{end} of file {file} is beyond the window ({WINDOW} bytes, \
                     {max_frames} chunks past the last ack at {})",
                    c.offset, leg.acked
                );
                return self.file_refuse(id, None, text);
            }
            wanted.push(leg_fold.clone());
        }
        if wanted.is_empty() {
            let text = if expected.is_empty() {
                format!("file {file} is not accepted (yet)")
            } else {
                expected.sort_unstable();
                format!(
                    "chunk of file {file} at offset {}: expected {expected:?}",
                    c.offset
                )
            };
            return self.file_refuse(id, None, text);
        }
        let mut to = Vec::with_capacity(wanted.len());
        for leg_fold in &wanted {
            if let Some(leg) = t.legs.get_mut(leg_fold) {
                leg.next = end;
                leg.inflight.push_back(end);
            }
            if let Some(s) = self.nicks.get(leg_fold) {
                to.push(*s);
            }
        }
        if let Some(frame) = encode(&ServerMsg::FileChunk(c)) {
            for s in to {
                self.deliver(s, &frame, None);
            }
        }
    }

    /// The receiver stored data up to an offset: frees window, tells the sender.
    pub(in crate::hub) fn file_ack(&mut self, id: SessionId, m: FileAck) {
        let Some((_, fold)) = self.who(id) else {
            return;
        };
        let Some(t) = self.transfers.map.get_mut(&m.file) else {
            return self.file_refuse(id, None, format!("no file {} (unknown or expired)", m.file));
        };
        let Some(leg) = t.legs.get_mut(&fold) else {
            return self.file_refuse(id, None, format!("you do not receive file {}", m.file));
        };
        if m.offset > leg.next {
            let text = format!(
                "ack at {} is past what was relayed ({})",
                m.offset, leg.next
            );
            return self.file_refuse(id, None, text);
        }
        if m.offset <= leg.acked {
            return;
        }
        leg.acked = m.offset;
        while leg.inflight.front().is_some_and(|&e| e <= m.offset) {
            leg.inflight.pop_front();
        }
        let complete = leg.done_sent && leg.acked == t.size;
        if complete {
            leg.state = LegState::Complete;
        }
        let from = t.from_fold.clone();
        let low = t.lowest_ack().unwrap_or(m.offset);
        let progress = (low != t.progress).then(|| {
            t.progress = low;
            FileProgress {
                file: m.file,
                offset: low,
            }
        });
        let progress = progress.or_else(|| {
            complete.then_some(FileProgress {
                file: m.file,
                offset: m.offset,
            })
        });
        if let Some(p) = progress {
            self.send_to_fold(&from, p);
        }
        if complete {
            self.file_finished(m.file);
        }
    }

    /// A direct transfer whose receiver has every byte is over.
    fn file_finished(&mut self, file: u64) {
        if self.transfers.map.get(&file).is_some_and(|t| !t.room) {
            self.transfers.map.remove(&file);
            info!(file, "file transfer complete");
        }
    }

    pub(in crate::hub) fn file_done(&mut self, id: SessionId, m: FileDone) {
        let Some((_, fold)) = self.who(id) else {
            return;
        };
        let Some(t) = self.transfers.map.get_mut(&m.file) else {
            return self.file_refuse(id, None, format!("no file {} (unknown or expired)", m.file));
        };
        if t.from_fold != fold {
            return self.file_refuse(id, None, format!("you are not sending file {}", m.file));
        }
        let size = t.size;
        let mut to = Vec::new();
        let mut complete = false;
        for (leg_fold, leg) in &mut t.legs {
            if leg.state == LegState::Active && leg.next == size && !leg.done_sent {
                leg.done_sent = true;
                if leg.acked == size {
                    leg.state = LegState::Complete;
                    complete = true;
                }
                to.extend(self.nicks.get(leg_fold).copied());
            }
        }
        if to.is_empty() {
            let text = format!("file {}: no receiver has all {size} bytes relayed", m.file);
            return self.file_refuse(id, None, text);
        }
        let file = m.file;
        if let Some(frame) = encode(&ServerMsg::FileDone(m)) {
            for s in to {
                self.deliver(s, &frame, None);
            }
        }
        if complete {
            self.file_finished(file);
        }
    }
}
