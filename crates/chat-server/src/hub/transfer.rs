//! File transfer: offers, accepts and the relay of chunks (PROTOCOL.md section 9).
//!
//! The hub keeps each transfer as plain data ([`Transfers`]) and relays the sender's chunks
//! to the receivers' outbound queues as they come: it never holds file data itself. Flow
//! control is credit-based: a chunk is relayed only while it ends within [`WINDOW`] bytes of
//! the receiver's last `file_ack` and the receiver has fewer than [`Transfers::max_frames`]
//! unacknowledged chunks queued. So file data ahead of a chat message in a receiver's queue is
//! bounded, and a transfer can never get a receiver dropped as lagged: with at most
//! `max_transfers_per_user` legs per receiver, chunks fill at most half of its queue.
//!
//! Sides are nicks (folded), not connections: a transfer survives the reconnect of either
//! side until the offer expires. A departure pauses the transfer (the other side gets a
//! `notice`); a receiver resumes with `file_accept` at its stored offset, and a returning
//! sender is sent the offer again and a `file_accepted` per receiver waiting for data.
//!
//! A room offer may be accepted by several members: each is a leg with its own position, and
//! a chunk is relayed to every leg expecting that offset (a sender that answers each
//! `file_accepted` by sending from its offset serves them all).
//!
//! # Layout
//! - this file: the transfers as plain data, offers, accept/decline/cancel, expiry, and what
//!   a departure or a return does.
//! - `relay`: the data path: chunks within the window, acks, `file_done`.

mod relay;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chat_proto::client::{FileAccept, FileCancel, FileDecline, FileOffer};
use chat_proto::nick::fold_nick;
use chat_proto::server::{
    FileAccepted, FileCancelled, FileDeclined, FileOffered, Notice, NoticeCode,
};
use chat_proto::{ErrorCode, ServerMsg};
use tokio::time::Instant;
use tracing::{debug, info};

use super::{Hub, SessionId, encode, now_ms};

/// Bytes a sender may have relayed beyond a receiver's last `file_ack`.
pub const WINDOW: u64 = 512 * 1024;

/// Longest file name in an offer, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// How often the hub drops expired offers.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Most unacknowledged chunks per leg, whatever the queue bound.
const MAX_FRAMES: usize = 64;

/// Every open transfer, by id.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    /// The last id handed out (0 before the first: see [`Transfers::next_id`]).
    last_id: u64,
    map: HashMap<u64, Transfer>,
}

/// One offer and its receivers.
#[derive(Debug)]
struct Transfer {
    from: String,
    from_fold: String,
    /// The `to` of the offer: a nick or a `#room`.
    to: String,
    /// The folded room (room offers) or nick (direct offers) the offer went to.
    to_key: String,
    room: bool,
    name: String,
    size: u64,
    sha256: String,
    /// `expires` as announced (ms since the epoch) and as a deadline.
    expires: i64,
    deadline: Instant,
    /// Folded receiver nick → its leg.
    legs: HashMap<String, Leg>,
    /// The last offset sent to the sender in `file_progress`.
    progress: u64,
}

/// One receiver of a transfer.
#[derive(Debug)]
struct Leg {
    nick: String,
    /// The offset the next relayed chunk must start at.
    next: u64,
    /// Everything before this offset is stored by the receiver.
    acked: u64,
    /// End offsets of relayed chunks not yet acknowledged.
    inflight: VecDeque<u64>,
    /// The offset of the last `file_accepted` the sender got: the window counts from here
    /// or from `acked`, whichever is further (a returning sender starts from `next`).
    base: u64,
    state: LegState,
    done_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Accepted; the receiver is connected.
    Active,
    /// The receiver disconnected; it may accept again to resume.
    Paused,
    /// Every byte stored and `file_done` relayed.
    Complete,
}

impl Transfers {
    /// A new transfer id, unique across server runs too: the first id of a run is the start
    /// time in seconds shifted left by 16 bits, so a client that still remembers the transfers
    /// of an earlier run never mistakes a new offer for an old one. Stays below 2^53, so every
    /// JSON implementation reads it exactly.
    fn next_id(&mut self) -> u64 {
        if self.last_id == 0 {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs());
            self.last_id = secs.min(1 << 36) << 16;
        }
        self.last_id += 1;
        self.last_id
    }

    /// Unacknowledged chunks allowed per leg: at most half of a receiver's queue for all the
    /// legs it may have at once.
    fn max_frames(queue: usize, per_user: usize) -> usize {
        (queue / (2 * per_user.max(1))).clamp(1, MAX_FRAMES)
    }
}

impl Transfer {
    fn offered(&self, id: Option<String>, file: u64) -> FileOffered {
        FileOffered {
            id,
            file,
            from: self.from.clone(),
            to: self.to.clone(),
            name: self.name.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
            expires: self.expires,
        }
    }

    fn lowest_ack(&self) -> Option<u64> {
        self.legs
            .values()
            .filter(|l| l.state == LegState::Active)
            .map(|l| l.acked)
            .min()
    }
}

/// Whether `s` is 64 lowercase hex digits.
fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Hub {
    fn file_refuse(&mut self, id: SessionId, req: Option<String>, text: String) {
        self.refuse(id, req, ErrorCode::FileRefused, text);
    }

    /// The session's nick and folded nick.
    fn who(&self, id: SessionId) -> Option<(String, String)> {
        self.conns
            .get(&id)
            .map(|c| (c.nick.to_string(), c.fold.to_string()))
    }

    /// The session now holding a folded nick.
    fn online(&self, fold: &str) -> Option<SessionId> {
        self.nicks.get(fold).copied()
    }

    fn send_to_fold(&mut self, fold: &str, msg: impl Into<ServerMsg>) {
        if let Some(to) = self.online(fold) {
            self.reply(to, msg);
        }
    }

    /// Whether the folded nick may accept transfer `t`.
    fn may_receive(&self, t: &Transfer, id: SessionId, fold: &str) -> bool {
        if fold == t.from_fold {
            return false;
        }
        if t.room {
            self.conns
                .get(&id)
                .is_some_and(|c| c.rooms.contains(&t.to_key))
        } else {
            fold == t.to_key
        }
    }

    pub(super) fn file_offer(&mut self, id: SessionId, m: FileOffer) {
        let Some((nick, fold)) = self.who(id) else {
            return;
        };
        let max = self.config.max_file_size;
        if max == 0 {
            return self.file_refuse(id, m.id, "this server does not relay files".into());
        }
        if m.size > max {
            let text = format!("file of {} bytes is larger than {max} bytes", m.size);
            return self.file_refuse(id, m.id, text);
        }
        if m.name.is_empty() || m.name.len() > MAX_NAME_LEN {
            let text = format!("file name must be 1 to {MAX_NAME_LEN} bytes");
            return self.file_refuse(id, m.id, text);
        }
        if !is_sha256(&m.sha256) {
            let text = "sha256 must be 64 lowercase hex digits".to_owned();
            return self.file_refuse(id, m.id, text);
        }
        let cap = self.config.max_transfers_per_user;
        let open = self
            .transfers
            .map
            .values()
            .filter(|t| t.from_fold == fold)
            .count();
        if open >= cap {
            let text = format!("you have {open} offers open (at most {cap})");
            return self.file_refuse(id, m.id, text);
        }
        let (room, to_key, recipients) = if m.to.starts_with('#') {
            let Some(key) = self.member_room(id, &m.id, &m.to) else {
                return;
            };
            let members = self.rooms.get(&*key).map(|r| {
                r.members
                    .iter()
                    .copied()
                    .filter(|&s| s != id)
                    .collect::<Vec<_>>()
            });
            if self.muted(id, Some(&key)) {
                let text = format!("you are muted in {}", m.to);
                return self.refuse(id, m.id, ErrorCode::Forbidden, text);
            }
            (true, key.to_string(), members.unwrap_or_default())
        } else {
            if self.muted(id, None) {
                return self.refuse(id, m.id, ErrorCode::Forbidden, "you are muted".to_owned());
            }
            let to_fold = fold_nick(&m.to);
            match self.online(&to_fold) {
                Some(s) if s != id => (false, to_fold, vec![s]),
                Some(_) => {
                    let text = "you cannot send a file to yourself".to_owned();
                    return self.file_refuse(id, m.id, text);
                }
                None => {
                    let text = format!("nobody is online as {}", m.to);
                    return self.refuse(id, m.id, ErrorCode::NoSuchNick, text);
                }
            }
        };
        let ttl = self.config.file_offer_ttl;
        let file = self.transfers.next_id();
        let t = Transfer {
            from: nick,
            from_fold: fold,
            to: m.to,
            to_key,
            room,
            name: m.name,
            size: m.size,
            sha256: m.sha256,
            expires: now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            deadline: Instant::now() + ttl,
            legs: HashMap::new(),
            progress: 0,
        };
        info!(
            file,
            from = t.from,
            to = t.to,
            size = t.size,
            "file offered"
        );
        let event = ServerMsg::FileOffered(t.offered(None, file));
        let copy = t.offered(m.id, file);
        self.transfers.map.insert(file, t);
        if let Some(frame) = encode(&event) {
            for to in recipients {
                self.deliver(to, &frame, None);
            }
        }
        self.reply(id, copy);
    }

    pub(super) fn file_accept(&mut self, id: SessionId, m: FileAccept) {
        let Some((nick, fold)) = self.who(id) else {
            return;
        };
        let cap = self.config.max_transfers_per_user;
        let receiving = self
            .transfers
            .map
            .iter()
            .filter(|&(&f, t)| {
                f != m.file
                    && t.legs
                        .get(&fold)
                        .is_some_and(|l| l.state != LegState::Complete)
            })
            .count();
        let Some(t) = self.transfers.map.get(&m.file) else {
            return self.file_refuse(id, None, format!("no file {} (unknown or expired)", m.file));
        };
        if !self.may_receive(t, id, &fold) {
            return self.file_refuse(id, None, format!("file {} is not offered to you", m.file));
        }
        if Instant::now() >= t.deadline {
            return self.file_refuse(id, None, format!("the offer of file {} expired", m.file));
        }
        if m.offset > t.size {
            let text = format!("offset {} is past the size {}", m.offset, t.size);
            return self.file_refuse(id, None, text);
        }
        if receiving >= cap {
            let text = format!("you receive {receiving} files already (at most {cap})");
            return self.file_refuse(id, None, text);
        }
        let Some(t) = self.transfers.map.get_mut(&m.file) else {
            return;
        };
        t.legs.insert(
            fold,
            Leg {
                nick: nick.clone(),
                next: m.offset,
                acked: m.offset,
                base: m.offset,
                inflight: VecDeque::new(),
                state: LegState::Active,
                done_sent: false,
            },
        );
        t.progress = t.lowest_ack().unwrap_or(m.offset);
        let from = t.from_fold.clone();
        debug!(file = m.file, by = nick, offset = m.offset, "file accepted");
        let accepted = FileAccepted {
            file: m.file,
            by: nick,
            offset: m.offset,
        };
        self.send_to_fold(&from, accepted);
    }

    pub(super) fn file_decline(&mut self, id: SessionId, m: FileDecline) {
        let Some((nick, fold)) = self.who(id) else {
            return;
        };
        let Some(t) = self.transfers.map.get(&m.file) else {
            return self.file_refuse(id, None, format!("no file {} (unknown or expired)", m.file));
        };
        if !self.may_receive(t, id, &fold) {
            return self.file_refuse(id, None, format!("file {} is not offered to you", m.file));
        }
        let from = t.from_fold.clone();
        if t.room {
            if let Some(t) = self.transfers.map.get_mut(&m.file) {
                t.legs.remove(&fold);
            }
        } else {
            self.transfers.map.remove(&m.file);
        }
        debug!(file = m.file, by = nick, "file declined");
        let declined = FileDeclined {
            file: m.file,
            by: nick,
        };
        self.send_to_fold(&from, declined);
    }

    pub(super) fn file_cancel(&mut self, id: SessionId, m: FileCancel) {
        let Some((nick, fold)) = self.who(id) else {
            return;
        };
        let Some(t) = self.transfers.map.get(&m.file) else {
            return self.file_refuse(id, None, format!("no file {} (unknown or expired)", m.file));
        };
        let reason = m
            .reason
            .map(|r| super::fit::clip(&r, super::fit::MAX_REASON));
        let event = FileCancelled {
            file: m.file,
            by: nick,
            reason,
        };
        if t.from_fold == fold || !t.room {
            if t.from_fold != fold && !self.may_receive(t, id, &fold) {
                return self.file_refuse(id, None, format!("file {} is not yours", m.file));
            }
            // The whole transfer ends: everyone who heard of it hears that.
            self.drop_transfer(m.file, event);
        } else if let Some(t) = self.transfers.map.get_mut(&m.file) {
            if t.legs.remove(&fold).is_none() {
                return self.file_refuse(id, None, format!("you do not receive file {}", m.file));
            }
            let from = t.from_fold.clone();
            self.send_to_fold(&from, event.clone());
            self.reply(id, event);
        }
    }

    /// Removes a transfer and sends `event` to its sender and every recipient online.
    fn drop_transfer(&mut self, file: u64, event: FileCancelled) {
        let Some(t) = self.transfers.map.remove(&file) else {
            return;
        };
        let mut to: Vec<SessionId> = if t.room {
            self.rooms
                .get(&t.to_key)
                .map(|r| r.members.iter().copied().collect())
                .unwrap_or_default()
        } else {
            self.online(&t.to_key).into_iter().collect()
        };
        to.extend(t.legs.keys().filter_map(|f| self.online(f)));
        to.extend(self.online(&t.from_fold));
        to.sort_unstable();
        to.dedup();
        if let Some(frame) = encode(&ServerMsg::FileCancelled(event)) {
            for s in to {
                self.deliver(s, &frame, None);
            }
        }
    }

    /// Drops offers past their expiry, unless data is flowing between two connected sides.
    pub(super) fn expire_transfers(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .transfers
            .map
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .filter(|(_, t)| {
                let sender = self.nicks.contains_key(&t.from_fold);
                !(sender
                    && t.legs
                        .iter()
                        .any(|(f, l)| l.state == LegState::Active && self.nicks.contains_key(f)))
            })
            .map(|(&f, _)| f)
            .collect();
        for file in expired {
            debug!(file, "file offer expired");
            let event = FileCancelled {
                file,
                by: "server".into(),
                reason: Some("expired".into()),
            };
            self.drop_transfer(file, event);
        }
    }

    /// A nick left: pause its transfers and tell the other sides.
    pub(super) fn transfers_left(&mut self, fold: &str, nick: &str) {
        let mut notices: Vec<(String, String)> = Vec::new();
        for (file, t) in &mut self.transfers.map {
            if t.from_fold == fold {
                for (f, l) in &t.legs {
                    if l.state == LegState::Active {
                        let text = format!(
                            "{nick} disconnected: file {file} ({}) is paused until they return",
                            t.name
                        );
                        notices.push((f.clone(), text));
                    }
                }
            }
            if let Some(leg) = t.legs.get_mut(fold) {
                if leg.state == LegState::Active {
                    leg.state = LegState::Paused;
                    let text = format!(
                        "{nick} disconnected: file {file} ({}) is paused; it resumes if they \
                         accept it again before it expires",
                        t.name
                    );
                    notices.push((t.from_fold.clone(), text));
                }
            }
        }
        if self.shutdown.is_cancelled() {
            return;
        }
        for (to, text) in notices {
            let notice = Notice {
                code: NoticeCode::Info,
                text: super::fit::clip(&text, super::fit::MAX_ERROR_TEXT),
                seqs: Default::default(),
                id: None,
            };
            self.send_to_fold(&to, notice);
        }
    }

    /// A nick (re)connected: repeat the offers it may accept, and to a returning sender its
    /// offers and where each waiting receiver wants data from.
    pub(super) fn transfers_joined(&mut self, id: SessionId) {
        let Some((_, fold)) = self.who(id) else {
            return;
        };
        let mut files: Vec<u64> = self.transfers.map.keys().copied().collect();
        files.sort_unstable();
        let mut out: Vec<ServerMsg> = Vec::new();
        for file in files {
            let Some(t) = self.transfers.map.get_mut(&file) else {
                continue;
            };
            if t.from_fold == fold {
                out.push(t.offered(None, file).into());
                for (f, l) in &mut t.legs {
                    if l.state == LegState::Active && self.nicks.contains_key(f) {
                        l.base = l.next;
                        out.push(
                            FileAccepted {
                                file,
                                by: l.nick.clone(),
                                offset: l.next,
                            }
                            .into(),
                        );
                    }
                }
                continue;
            }
            let Some(t) = self.transfers.map.get(&file) else {
                continue;
            };
            if self.may_receive(t, id, &fold) {
                out.push(t.offered(None, file).into());
            }
        }
        for msg in out {
            self.reply(id, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_must_be_lowercase_hex() {
        assert!(is_sha256(&"a".repeat(64)));
        assert!(!is_sha256(&"A".repeat(64)));
        assert!(!is_sha256(&"a".repeat(63)));
        assert!(!is_sha256(&"g".repeat(64)));
    }

    #[test]
    fn chunks_never_fill_more_than_half_a_queue() {
        assert_eq!(Transfers::max_frames(1024, 4), 64);
        assert_eq!(Transfers::max_frames(64, 4), 8);
        assert_eq!(Transfers::max_frames(1, 4), 1);
        assert!(Transfers::max_frames(100, 4) * 4 <= 50);
    }

    #[test]
    fn window_is_well_under_the_default_queue() {
        let frames = Transfers::max_frames(1024, 4);
        assert!(frames * 4 * 2 <= 1024);
    }
}

#[cfg(test)]
mod id_tests {
    use super::Transfers;

    #[test]
    fn ids_start_from_the_clock_so_a_restarted_server_never_reuses_them() {
        let mut t = Transfers::default();
        let first = t.next_id();
        assert!(
            first > 1 << 40,
            "seeded from the start time, not 1: {first}"
        );
        assert!(first < 1 << 53, "exact in every JSON implementation");
        assert_eq!(t.next_id(), first + 1);
    }
}
