//! The hub's answers to chat requests: `send` (room and direct) and `typing`.
//!
//! Order of operations for a room message: stamp it (`mid`, `seq`, `ts`, `from` = the
//! session's nick, never a client field), append it to history, ack the sender, then fan the
//! once-encoded `message` out to every other member. A refused message gets an `error` with
//! its `id` and reaches nobody: nothing is dropped silently.

use chat_proto::client::{Send, Typing};
use chat_proto::server::{Ack, ChatMessage, TypingEvent};
use chat_proto::{ErrorCode, ServerMsg};
use tracing::warn;

use super::{Hub, RECENT_SENDS, SessionId, encode, now_ms};
use chat_proto::nick::fold_nick;

impl Hub {
    /// Accepts a chat message: stamp, store, ack the sender, then fan out to the others.
    pub(super) fn send(&mut self, id: SessionId, m: Send) {
        let max_text = self.config.max_text as usize;
        if m.text.is_empty() || m.text.len() > max_text {
            let text = format!("text must be 1 to {max_text} bytes");
            return self.refuse(id, m.id, ErrorCode::TextInvalid, text);
        }
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if let Some(req) = &m.id {
            if let Some((_, ack)) = conn.recent.iter().find(|(r, _)| r == req) {
                let ack = Ack {
                    duplicate: true,
                    ..ack.clone()
                };
                return self.reply(id, ack);
            }
        }
        let from = conn.nick.clone();
        let from_fold = conn.fold.clone();
        if m.to.starts_with('#') {
            self.send_to_room(id, from, m);
        } else {
            self.send_direct(id, from, from_fold, m);
        }
    }

    fn send_to_room(&mut self, id: SessionId, from: String, m: Send) {
        let Some(key) = self.member_room(id, &m.id, &m.to) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&key) else {
            return;
        };
        let seq = room.take_seq();
        let msg = ChatMessage {
            mid: self.next_mid,
            room: Some(room.name.clone()),
            to: None,
            from,
            seq,
            ts: now_ms(),
            text: m.text,
            action: m.action,
        };
        if let Err(e) = self.history.append(&key, &msg) {
            room.untake_seq(seq);
            warn!(error = %e, room = room.name, "history store failed; message refused");
            return self.refuse(id, m.id, ErrorCode::StoreUnavailable, e.to_string());
        }
        self.next_mid += 1;
        let others: Vec<SessionId> = room.members.iter().copied().filter(|&s| s != id).collect();
        let ack = Ack {
            id: m.id,
            mid: msg.mid,
            room: msg.room.clone(),
            to: None,
            seq,
            ts: msg.ts,
            duplicate: false,
        };
        self.ack(id, ack, Some(&key));
        if let Some(frame) = encode(&ServerMsg::Message(msg)) {
            for to in others {
                self.deliver(to, &frame, Some((&key, seq)));
            }
        }
    }

    fn send_direct(&mut self, id: SessionId, from: String, from_fold: String, m: Send) {
        let to_fold = fold_nick(&m.to);
        let Some(target) = self.nicks.get(&to_fold).copied() else {
            let text = format!("nobody called {:?} is online", m.to);
            return self.refuse(id, m.id, ErrorCode::NoSuchNick, text);
        };
        let Some(to_nick) = self.conns.get(&target).map(|c| c.nick.clone()) else {
            return;
        };
        let pair = if from_fold <= to_fold {
            (from_fold, to_fold)
        } else {
            (to_fold, from_fold)
        };
        let seq = self.dm_seqs.entry(pair).or_insert(0);
        *seq += 1;
        let msg = ChatMessage {
            mid: self.next_mid,
            room: None,
            to: Some(to_nick),
            from,
            seq: *seq,
            ts: now_ms(),
            text: m.text,
            action: m.action,
        };
        self.next_mid += 1;
        let ack = Ack {
            id: m.id,
            mid: msg.mid,
            room: None,
            to: msg.to.clone(),
            seq: msg.seq,
            ts: msg.ts,
            duplicate: false,
        };
        self.ack(id, ack, None);
        if target != id {
            self.reply(target, ServerMsg::Message(msg));
        }
    }

    /// Queues the sender's ack (in its stream where the others get the message) and remembers
    /// its id so a resend is not delivered twice.
    fn ack(&mut self, id: SessionId, ack: Ack, room_key: Option<&str>) {
        let seq = ack.seq;
        if let Some(req) = &ack.id {
            if let Some(conn) = self.conns.get_mut(&id) {
                if conn.recent.len() == RECENT_SENDS {
                    conn.recent.pop_front();
                }
                conn.recent.push_back((req.clone(), ack.clone()));
            }
        }
        if let Some(frame) = encode(&ServerMsg::Ack(ack)) {
            self.deliver(id, &frame, room_key.map(|k| (k, seq)));
        }
    }

    pub(super) fn typing(&mut self, id: SessionId, m: Typing) {
        let Some(from) = self.conns.get(&id).map(|c| c.nick.clone()) else {
            return;
        };
        let (room, to): (Option<String>, Vec<SessionId>) = if m.to.starts_with('#') {
            let Some(key) = self.member_room(id, &None, &m.to) else {
                return;
            };
            let Some(room) = self.rooms.get(&key) else {
                return;
            };
            let others = room.members.iter().copied().filter(|&s| s != id);
            (Some(room.name.clone()), others.collect())
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
