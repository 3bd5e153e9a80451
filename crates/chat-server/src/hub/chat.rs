//! The hub's answers to chat requests: `send` (room and direct), the store's reports on them,
//! and `typing`.
//!
//! Order of operations for a message: stamp it (`mid`, `seq`, `ts`, `from` = the session's
//! nick, never a client field), hand it to the store and go on. When the store reports it
//! committed: ack the sender, then fan the once-encoded `message` out to the others, so the
//! sender's stream has the ack where the others' have the message. Reports come in the order
//! messages were handed over, so each room's messages go out in `seq` order. A message the
//! store refuses gets `store_unavailable` and reaches nobody: nothing is dropped silently.
//!
//! Presence (`joined` to others, `parted`, `quit`, `nick_changed`) of a session with messages
//! still pending is held until they are committed, and any presence behind held presence
//! waits too (`Held`): the others see someone's last words before they see them leave, and
//! see them leave before they see them come back.
//!
//! A resend (same folded nick, same client id) is looked up among the pending messages, then
//! in the store: it gets the original ack with `duplicate: true` and is not delivered again.

use std::sync::Arc;

use bytes::Bytes;
use chat_proto::client::{Send, Typing};
use chat_proto::frame::HEADER_LEN;
use chat_proto::server::TypingEvent;
use chat_proto::{ErrorCode, ServerMsg};
use tracing::{error, warn};

use super::{Hub, SessionId, encode, fit};
use crate::history::{
    Appended, Done, HistoryError, Origin, Record, StoredMessage, dm_conv, same_name,
};
use chat_proto::nick::fold_nick;

/// Direct conversations whose last `seq` the hub caches, at most; beyond it the cache is
/// cleared (but for conversations with messages in flight) and refilled from the store.
const MAX_DM_SEQS: usize = 10_000;

/// Where a pending message goes once committed.
pub(super) enum Target {
    /// To the members of the record's room ([`Record::conv`]).
    Room,
    /// To one session (the recipient when it was sent).
    Direct(SessionId),
}

/// A message handed to the store and not reported yet.
pub(super) struct Pending {
    sender: SessionId,
    /// The hub's epoch when it was handed over.
    epoch: u64,
    record: Arc<Record>,
    /// The `message` frame, encoded once when it was stamped (its size is checked then too).
    frame: Bytes,
    target: Target,
    /// Sessions that resent it meanwhile: they get the duplicate ack once it is committed.
    waiters: Vec<SessionId>,
}

/// A presence frame that goes out once the pending messages up to position `after` are
/// reported (see [`Hub::deliver_after_pending`]).
#[derive(Debug)]
pub(super) struct Held {
    after: u64,
    to: Vec<SessionId>,
    frame: Bytes,
}

impl Hub {
    /// Delivers `frame` (a presence event of `subject`: joined, parted, quit, nick change) to
    /// `to` now, or, while `subject` still has messages waiting for the store or earlier
    /// frames are held, once those are reported: in durable mode a client that sends and
    /// leaves at once is otherwise seen leaving before its last messages arrive. Memory mode
    /// never holds anything.
    pub(super) fn deliver_after_pending(
        &mut self,
        subject: SessionId,
        to: Vec<SessionId>,
        frame: Bytes,
    ) {
        let own = self
            .pending
            .iter()
            .rposition(|p| p.sender == subject)
            .map(|i| self.pending_base + i as u64 + 1);
        let earlier = self.held.back().map(|h| h.after);
        let Some(after) = own.max(earlier) else {
            for t in to {
                self.deliver(t, &frame, None);
            }
            return;
        };
        self.held.push_back(Held { after, to, frame });
    }

    /// Delivers the held frames whose messages have all been reported.
    fn release_held(&mut self) {
        while self
            .held
            .front()
            .is_some_and(|h| h.after <= self.pending_base)
        {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            for &t in &h.to {
                self.deliver(t, &h.frame, None);
            }
        }
    }

    /// Accepts a chat message: stamp it and hand it to the store (or answer a resend).
    pub(super) fn send(&mut self, id: SessionId, m: Send) {
        let max_text = self.config.max_text as usize;
        if m.text.is_empty() || m.text.len() > max_text {
            let text = format!("text must be 1 to {max_text} bytes");
            return self.refuse(id, m.id, ErrorCode::TextInvalid, text);
        }
        if let Some(req) = &m.id {
            if self.answer_resend(id, req) {
                return;
            }
        }
        if m.to.starts_with('#') {
            self.send_to_room(id, m);
        } else {
            self.send_direct(id, m);
        }
    }

    /// If `req` was already accepted from this session's nick, answers with the original ack
    /// (now, or when it is committed) and returns true.
    fn answer_resend(&mut self, id: SessionId, req: &str) -> bool {
        let Some(conn) = self.conns.get(&id) else {
            return true;
        };
        let fold: &str = &conn.fold;
        // Only a store that queues has pending messages: with none (always, in memory mode)
        // the owned key is not even built.
        if !self.pending_ids.is_empty() {
            let key = (fold.to_owned(), req.to_owned());
            if let Some(&pos) = self.pending_ids.get(&key) {
                let i = usize::try_from(pos - self.pending_base).unwrap_or(usize::MAX);
                if let Some(p) = self.pending.get_mut(i) {
                    p.waiters.push(id);
                    return true;
                }
            }
        }
        match self.history.find_sent(fold, req) {
            Ok(Some(record)) => {
                self.reply(id, record.ack(true));
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(error = %e, "store lookup failed; message refused");
                self.refuse(
                    id,
                    Some(req.to_owned()),
                    ErrorCode::StoreUnavailable,
                    e.to_string(),
                );
                true
            }
        }
    }

    fn send_to_room(&mut self, id: SessionId, m: Send) {
        if !self.in_room(id, &m.id, &m.to) {
            return;
        }
        let ts = self.stamp();
        let mid = self.next_mid;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((_, key)) = &conn.last_room else {
            return;
        };
        if self.mutes.applies(&conn.fold, Some(key)) {
            let text = format!("you are muted in {}", m.to);
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        let Some(room) = self.rooms.get_mut(&**key) else {
            return;
        };
        let origin = reuse_origin(
            &mut conn.origin,
            key,
            Some(&room.name),
            None,
            &conn.nick,
            &conn.fold,
        );
        let record = Record {
            origin,
            msg: StoredMessage {
                mid,
                seq: room.take_seq(),
                ts,
                text: m.text,
                action: m.action,
            },
            client_id: m.id,
        };
        self.next_mid += 1;
        self.submit(id, Arc::new(record), Target::Room);
    }

    fn send_direct(&mut self, id: SessionId, m: Send) {
        if self.muted(id, None) {
            let text = "you are muted".to_owned();
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        let to_fold = fold_nick(&m.to);
        let Some(target) = self.nicks.get(&to_fold).copied() else {
            let text = format!("nobody called {:?} is online", m.to);
            return self.refuse(id, m.id, ErrorCode::NoSuchNick, text);
        };
        let Some(to_nick) = self.conns.get(&target).map(|c| Arc::clone(&c.nick)) else {
            return;
        };
        let Some(from_fold) = self.conns.get(&id).map(|c| Arc::clone(&c.fold)) else {
            return;
        };
        let conv = dm_conv(&from_fold, &to_fold);
        let last = match self.dm_seqs.get(&conv) {
            Some(&last) => last,
            None => match self.history.last_seq(&conv) {
                Ok(last) => last,
                Err(e) => {
                    warn!(error = %e, "store lookup failed; message refused");
                    return self.refuse(id, m.id, ErrorCode::StoreUnavailable, e.to_string());
                }
            },
        };
        if self.dm_seqs.len() >= MAX_DM_SEQS {
            // Forget the cached sequences but those with messages in flight: the others are
            // read back from the store when next needed.
            let in_flight: std::collections::HashSet<&str> = self
                .pending
                .iter()
                .map(|p| p.record.conv().as_ref())
                .collect();
            self.dm_seqs.retain(|c, _| in_flight.contains(c.as_str()));
        }
        let ts = self.stamp();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        self.dm_seqs.insert(conv.clone(), last + 1);
        let conv: Arc<str> = conv.into();
        let origin = reuse_origin(
            &mut conn.origin,
            &conv,
            None,
            Some(&to_nick),
            &conn.nick,
            &from_fold,
        );
        let record = Record {
            origin,
            msg: StoredMessage {
                mid: self.next_mid,
                seq: last + 1,
                ts,
                text: m.text,
                action: m.action,
            },
            client_id: m.id,
        };
        self.next_mid += 1;
        self.submit(id, Arc::new(record), Target::Direct(target));
    }

    /// Hands a stamped message to the store; it is acked and delivered when committed.
    fn submit(&mut self, sender: SessionId, record: Arc<Record>, target: Target) {
        // Escaping can make a text within `max_text` a `message` over `max_body` (a control
        // character takes 6 bytes); such a frame would lock its readers out, so refuse it.
        // The headroom keeps every accepted message small enough for a history page too.
        let at_once = self.pending.is_empty() && self.history.stores_at_once();
        if at_once {
            if let Target::Room = target {
                return self.store_in_run(sender, record);
            }
        }
        // Stored at once, the message is acked at once: its ack is encoded with its frame (they
        // share their numbers). Otherwise the ack waits for the commit.
        let (frame, ack) = if at_once {
            frames_with_ack(&record)
        } else {
            (message_frame(&record), None)
        };
        let len = frame
            .as_ref()
            .map_or(usize::MAX, |f| f.len().saturating_sub(HEADER_LEN));
        let max = (self.config.max_body as usize).saturating_sub(fit::PAGE_HEADROOM);
        let Some(frame) = frame.filter(|_| len <= max) else {
            self.give_back(record.msg.seq, record.conv(), &target, true);
            let text = format!(
                "text too long once encoded: the relayed message would be {len} bytes, \
                 over the limit of {max} (control characters count 6 bytes each)"
            );
            return self.refuse(
                sender,
                record.client_id.clone(),
                ErrorCode::TextInvalid,
                text,
            );
        };
        if at_once {
            return self.store_now(sender, record, frame, ack, target);
        }
        let appended = match self.history.append(record.clone(), self.epoch) {
            Ok(appended) => appended,
            Err(e) => {
                // Nothing after it was handed over: its seq is simply given back.
                self.give_back(record.msg.seq, record.conv(), &target, true);
                warn!(error = %e, conv = &**record.conv(), "store refused a message");
                let text = e.to_string();
                return self.refuse(
                    sender,
                    record.client_id.clone(),
                    ErrorCode::StoreUnavailable,
                    text,
                );
            }
        };
        if let Some(req) = &record.client_id {
            let pos = self.pending_base + self.pending.len() as u64;
            self.pending_ids
                .insert((record.sender_fold().to_string(), req.clone()), pos);
        }
        self.pending.push_back(Pending {
            sender,
            epoch: self.epoch,
            record,
            frame,
            target,
            waiters: Vec::new(),
        });
        if appended == Appended::Stored {
            self.finish(Done {
                count: 1,
                result: Ok(()),
            });
        }
    }

    /// The memory store's path for a room message, with nothing pending: stored as it is
    /// handed over, so acked and delivered at once, without a copy of it or a pending entry;
    /// its frames join the sender's run into the room (see [`super::run`]).
    fn store_in_run(&mut self, sender: SessionId, record: Arc<Record>) {
        let max = (self.config.max_body as usize).saturating_sub(fit::PAGE_HEADROOM);
        let run = self.run_for(sender, record.conv());
        let mark = run.mark();
        let ack = record.ack_ref(false);
        let encoded =
            record
                .message_ref()
                .append_frames_with_ack(&ack, &mut run.messages, &mut run.acks);
        let len = match encoded {
            Ok(()) => run.body_len_since(mark),
            Err(e) => {
                error!(error = %e, "cannot encode a message");
                usize::MAX
            }
        };
        let seq = record.msg.seq;
        if len > max {
            run.undo(mark);
            self.give_back(seq, record.conv(), &Target::Room, true);
            let text = format!(
                "text too long once encoded: the relayed message would be {len} bytes, \
                 over the limit of {max} (control characters count 6 bytes each)"
            );
            return self.refuse(
                sender,
                record.client_id.clone(),
                ErrorCode::TextInvalid,
                text,
            );
        }
        // Looked up before the store takes the record (and its name with it).
        let room = self.rooms.get_mut(&**record.conv());
        // The store takes the record; a refusal gives back its client id.
        match self.history.store_now(record, self.epoch) {
            Ok(()) => {
                if let Some(run) = self.run.as_mut() {
                    run.add(mark, seq);
                }
                if let Some(room) = room {
                    room.commit(seq);
                }
                self.end_run_if_full();
            }
            Err((e, client_id)) => {
                // The run is into this room (`run_for` made it above and the store cannot end
                // it), so its key is the room's: taking it here spares every stored message a
                // count of the key.
                let key = self.run.as_mut().map(|run| {
                    run.undo(mark);
                    Arc::clone(run.key())
                });
                if let Some(key) = key {
                    self.give_back(seq, &key, &Target::Room, true);
                }
                warn!(error = %e, "store refused a message");
                let text = e.to_string();
                self.refuse(sender, client_id, ErrorCode::StoreUnavailable, text);
            }
        }
    }

    /// The memory store's path for a direct message, with nothing pending: the message is
    /// stored as it is handed over, so it is acked and delivered at once, without a copy of it
    /// or a pending entry.
    fn store_now(
        &mut self,
        sender: SessionId,
        record: Arc<Record>,
        frame: Bytes,
        ack: Option<Bytes>,
        target: Target,
    ) {
        let seq = record.msg.seq;
        let conv = Arc::clone(record.conv());
        // The store takes the record; a refusal gives back its client id.
        match self.history.store_now(record, self.epoch) {
            Ok(()) => self.fan_out(sender, ack, None, &[], target, &conv, &frame, seq),
            Err((e, client_id)) => {
                self.give_back(seq, &conv, &target, true);
                warn!(error = %e, "store refused a message");
                let text = e.to_string();
                self.refuse(sender, client_id, ErrorCode::StoreUnavailable, text);
            }
        }
    }

    /// The store's report on the oldest `done.count` pending messages.
    pub(super) fn finish(&mut self, done: Done) {
        let mut rewound = false;
        for _ in 0..done.count {
            let Some(p) = self.pending.pop_front() else {
                error!(
                    count = done.count,
                    "the store reported more messages than were pending"
                );
                break;
            };
            self.pending_base += 1;
            if let Some(req) = &p.record.client_id {
                self.pending_ids
                    .remove(&(p.record.sender_fold().to_string(), req.clone()));
            }
            match &done.result {
                Ok(()) => self.committed(p),
                Err(e) => {
                    // Only the first failure of an epoch rewinds; the messages queued behind
                    // it were refused unwritten and their seqs are above the rewind point.
                    let rewind = p.epoch == self.epoch;
                    rewound |= rewind;
                    self.give_back(p.record.msg.seq, p.record.conv(), &p.target, rewind);
                    let text = e.to_string();
                    let req = p.record.client_id.clone();
                    for s in std::iter::once(p.sender).chain(p.waiters) {
                        let code = ErrorCode::StoreUnavailable;
                        self.refuse(s, req.clone(), code, text.clone());
                    }
                }
            }
            // Right after the message it waited for, before the next one of the batch.
            self.release_held();
        }
        if rewound {
            self.epoch += 1;
        }
    }

    /// The store's writer is gone: everything pending fails, and so will every later send.
    pub(super) fn store_gone(&mut self) {
        error!("the store writer stopped; messages can no longer be accepted");
        self.done_rx = None;
        let count = self.pending.len();
        let gone = HistoryError::Unavailable("the store writer stopped".into());
        self.finish(Done {
            count,
            result: Err(gone),
        });
    }

    /// A refused message's sequence number `seq` goes back (with `rewind`) and its room may go;
    /// `conv` is its conversation (used for a direct one).
    fn give_back(&mut self, seq: u64, conv: &str, target: &Target, rewind: bool) {
        match target {
            Target::Room => {
                if let Some(room) = self.rooms.get_mut(conv) {
                    room.refuse(seq, rewind);
                    if room.is_idle() {
                        self.rooms.remove(conv);
                    }
                }
            }
            Target::Direct(_) if rewind => {
                if let Some(last) = self.dm_seqs.get_mut(conv) {
                    *last = (*last).min(seq - 1);
                }
            }
            Target::Direct(_) => {}
        }
    }

    /// A message is on disk: ack the sender (and any resender), then deliver it. A room
    /// message nobody resent joins its sender's run into the room (see [`super::run`]).
    fn committed(&mut self, p: Pending) {
        if let (Target::Room, true) = (&p.target, p.waiters.is_empty()) {
            let seq = p.record.msg.seq;
            let key = p.record.conv();
            let run = self.run_for(p.sender, key);
            let mark = run.mark();
            run.messages.extend_from_slice(&p.frame);
            let ack = p.record.ack_ref(false).append_frame(&mut run.acks);
            if let Err(e) = ack {
                error!(error = %e, "cannot encode an ack");
            }
            run.add(mark, seq);
            if let Some(room) = self.rooms.get_mut(&**key) {
                room.commit(seq);
            }
            return self.end_run_if_full();
        }
        let ack = ack_frame(&p.record, false);
        let dup = if p.waiters.is_empty() {
            None
        } else {
            ack_frame(&p.record, true)
        };
        let seq = p.record.msg.seq;
        let conv = p.record.conv();
        self.fan_out(
            p.sender, ack, dup, &p.waiters, p.target, conv, &p.frame, seq,
        );
    }

    /// Acks a stored message to its sender (`dup` to those who resent it), then delivers its
    /// `frame` to the target; `conv` is its conversation.
    #[allow(clippy::too_many_arguments)]
    fn fan_out(
        &mut self,
        sender: SessionId,
        ack: Option<Bytes>,
        dup: Option<Bytes>,
        waiters: &[SessionId],
        target: Target,
        conv: &str,
        frame: &Bytes,
        seq: u64,
    ) {
        let room_key = match &target {
            Target::Room => Some(conv),
            Target::Direct(_) => None,
        };
        if let Some(ack) = &ack {
            self.deliver(sender, ack, room_key.map(|k| (k, seq)));
        }
        if let Some(dup) = &dup {
            for &w in waiters {
                self.deliver(w, dup, None);
            }
        }
        match target {
            Target::Room => {
                let key = conv;
                let Some(room) = self.rooms.get_mut(key) else {
                    return;
                };
                room.commit(seq);
                // A reused list: no allocation per message.
                let mut others = std::mem::take(&mut self.recipients);
                others.clear();
                others.extend(room.members.iter().copied().filter(|&s| s != sender));
                if room.is_idle() {
                    self.rooms.remove(key);
                }
                for &to in &others {
                    self.deliver(to, frame, Some((key, seq)));
                }
                self.recipients = others;
            }
            Target::Direct(target) => {
                if target != sender {
                    self.deliver(target, frame, None);
                    self.remember_dm_peers(sender, target);
                }
            }
        }
    }

    /// Each side of a direct conversation hears the other's nick changes and quit from now on.
    fn remember_dm_peers(&mut self, a: SessionId, b: SessionId) {
        let folds = (
            self.conns.get(&a).map(|c| c.fold.clone()),
            self.conns.get(&b).map(|c| c.fold.clone()),
        );
        if let (Some(fa), Some(fb)) = folds {
            if let Some(c) = self.conns.get_mut(&a) {
                c.add_dm_peer(&fb);
            }
            if let Some(c) = self.conns.get_mut(&b) {
                c.add_dm_peer(&fa);
            }
        }
    }

    /// Carries out one `typing`.
    pub(super) fn typing(&mut self, id: SessionId, m: Typing) {
        let Some(from) = self.conns.get(&id).map(|c| c.nick.to_string()) else {
            return;
        };
        let (room, to): (Option<String>, Vec<SessionId>) = if m.to.starts_with('#') {
            let Some(key) = self.member_room(id, &None, &m.to) else {
                return;
            };
            let Some(room) = self.rooms.get(&*key) else {
                return;
            };
            let others = room.members.iter().copied().filter(|&s| s != id);
            (Some(room.name.to_string()), others.collect())
        } else {
            match self.nicks.get(&fold_nick(&m.to)) {
                Some(&target) => (None, vec![target]),
                None => {
                    let text = format!("nobody called {:?} is online", m.to);
                    return self.refuse(id, None, ErrorCode::NoSuchNick, text);
                }
            }
        };
        let event = ServerMsg::Typing(TypingEvent {
            room,
            from,
            active: m.active,
        });
        if let Some(frame) = encode(&event) {
            for s in to {
                self.deliver(s, &frame, None);
            }
        }
    }
}

/// The names of a session's next message: those of its last one (`cached`) if they are the
/// same, else new ones, which `cached` then keeps. The usual case is the very same shared
/// strings, so they are compared by pointer first; a nick change or a re-created room brings
/// new ones.
fn reuse_origin(
    cached: &mut Option<Arc<Origin>>,
    conv: &Arc<str>,
    room: Option<&Arc<str>>,
    to: Option<&Arc<str>>,
    from: &Arc<str>,
    sender_fold: &Arc<str>,
) -> Arc<Origin> {
    let same_opt = |a: Option<&Arc<str>>, b: Option<&Arc<str>>| match (a, b) {
        (Some(a), Some(b)) => same_name(a, b),
        (a, b) => a.is_none() && b.is_none(),
    };
    if let Some(o) = cached.as_ref().filter(|o| {
        same_name(&o.conv, conv)
            && same_opt(o.room.as_ref(), room)
            && same_opt(o.to.as_ref(), to)
            && same_name(&o.from, from)
            && same_name(&o.sender_fold, sender_fold)
    }) {
        return Arc::clone(o);
    }
    let o = Arc::new(Origin {
        conv: Arc::clone(conv),
        room: room.cloned(),
        to: to.cloned(),
        from: Arc::clone(from),
        sender_fold: Arc::clone(sender_fold),
    });
    *cached = Some(Arc::clone(&o));
    o
}

/// A `message` frame, encoded from the stamped message without a copy of it.
fn message_frame(record: &Record) -> Option<Bytes> {
    record
        .message_ref()
        .to_message_frame()
        .map_err(|e| error!(error = %e, "cannot encode a message"))
        .ok()
}

/// A message's `message` frame and its sender's `ack`, encoded together.
fn frames_with_ack(record: &Record) -> (Option<Bytes>, Option<Bytes>) {
    match record
        .message_ref()
        .to_frames_with_ack(&record.ack_ref(false))
    {
        Ok((frame, ack)) => (Some(frame), Some(ack)),
        // Each on its own then, so that one failing does not take the other with it.
        Err(_) => (message_frame(record), ack_frame(record, false)),
    }
}

/// The `ack` frame of a stored message, encoded from its fields without a copy of them.
fn ack_frame(record: &Record, duplicate: bool) -> Option<Bytes> {
    record
        .ack_ref(duplicate)
        .to_frame()
        .map_err(|e| error!(error = %e, "cannot encode an ack"))
        .ok()
}
