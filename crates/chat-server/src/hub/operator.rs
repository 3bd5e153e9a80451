//! Operators (`--admin NICK`): kick, ban, unban, mute, and locked topics.
//!
//! An operator is a session whose current nick is one of the configured admin nicks *and* which
//! logged in to that nick's account (see `account`): an admin nick nobody registered, or used
//! without its password, has no powers. Everyone else gets `forbidden`.
//!
//! Bans (a folded nick or an IP address, with an optional expiry) and mutes (a folded nick, in a
//! room or everywhere, with an optional expiry) are kept by `sanction`: in the SQLite store, or
//! in memory with `--history memory`. Bans are checked at `hello` and at `nick` changes; mutes at
//! every `send`. A ban also disconnects every matching user online, like IRC's K-line: the hub
//! drops the connection, its rooms hear `quit` "banned", and its session is kicked
//! ([`super::Kick::Banned`]) so it writes `error banned` after what is queued and closes. An
//! operator cannot ban its own nick or address.
//!
//! # Layout
//! - this file: who is an operator, and the operator requests.
//! - `sanction`: the bans and mutes in force, and how they are kept.

mod sanction;

use chat_proto::client::{Ban, Kick, Mute, Unban};
use chat_proto::nick::{fold_nick, fold_room};
use chat_proto::server::{Notice, NoticeCode, Parted, QuitEvent};
use chat_proto::{ErrorCode, ServerMsg};
use tracing::{info, warn};

pub(super) use sanction::{Bans, Mutes};
use sanction::{ban_key, ban_text};

use super::{Hub, SessionId, encode, fit, now_ms};

impl Hub {
    /// Whether session `id` is an operator now.
    pub(super) fn is_admin(&self, id: SessionId) -> bool {
        self.conns.get(&id).is_some_and(|c| {
            c.authed.contains(&*c.fold)
                && self.config.admins.iter().any(|a| *fold_nick(a) == *c.fold)
        })
    }

    /// Refuses a non-operator; true if `id` may act.
    fn operator(&mut self, id: SessionId, req: &Option<String>) -> bool {
        if self.is_admin(id) {
            return true;
        }
        let text = "only operators may do that".to_owned();
        self.refuse(id, req.clone(), ErrorCode::Forbidden, text);
        false
    }

    fn op_nick(&self, id: SessionId) -> String {
        self.conns
            .get(&id)
            .map(|c| c.nick.to_string())
            .unwrap_or_default()
    }

    fn info(&mut self, id: SessionId, req: Option<String>, text: String) {
        let notice = Notice {
            code: NoticeCode::Info,
            text,
            seqs: std::collections::BTreeMap::new(),
            id: req,
        };
        self.reply(id, notice);
    }

    /// Whether `id` is muted in the folded room `room` (or, for `None`, for direct messages).
    pub(super) fn muted(&mut self, id: SessionId, room: Option<&str>) -> bool {
        match self.conns.get(&id) {
            Some(c) => self.mutes.applies(&c.fold, room),
            None => false,
        }
    }

    /// Whether any mute is in force for `id`'s nick: such a user keeps that nick, or the mute
    /// would stay behind with the old name.
    pub(super) fn muted_anywhere(&mut self, id: SessionId) -> bool {
        match self.conns.get(&id) {
            Some(c) => self.mutes.any(&c.fold),
            None => false,
        }
    }

    /// `kick`: the user leaves the room, which hears `parted` with the reason.
    pub(super) fn kick(&mut self, id: SessionId, m: Kick) {
        if !self.operator(id, &m.id) {
            return;
        }
        let key = fold_room(&m.room);
        let target = self.nicks.get(&fold_nick(&m.nick)).copied();
        let (Some(target), Some(room)) = (target, self.rooms.get_mut(&key)) else {
            let text = format!("{} is not in {}", m.nick, m.room);
            return self.refuse(id, m.id, ErrorCode::NotInRoom, text);
        };
        if !room.members.contains(&target) {
            let text = format!("{} is not in {}", m.nick, m.room);
            return self.refuse(id, m.id, ErrorCode::NotInRoom, text);
        }
        let by = self.op_nick(id);
        let nick = self
            .conns
            .get(&target)
            .map(|c| c.nick.to_string())
            .unwrap_or_default();
        let Some(room) = self.rooms.get_mut(&key) else {
            return;
        };
        let reason = match &m.reason {
            Some(r) => format!("kicked by {by}: {r}"),
            None => format!("kicked by {by}"),
        };
        let event = ServerMsg::Parted(Parted {
            room: room.name.to_string(),
            nick: nick.to_string(),
            reason: Some(fit::clip(&reason, fit::MAX_REASON)),
            ts: now_ms(),
        });
        let members: Vec<SessionId> = room.members.iter().copied().collect();
        room.members.remove(&target);
        if room.is_idle() {
            self.rooms.remove(&key);
        }
        if let Some(frame) = encode(&event) {
            // After the kicked one's messages still with the store, as a part would be.
            self.deliver_after_pending(target, members, frame);
        }
        if let Some(conn) = self.conns.get_mut(&target) {
            conn.rooms.remove(&key);
        }
        info!(by, nick, room = m.room, "kicked");
    }

    /// `ban`: recorded (and stored), and every online match is dropped.
    pub(super) fn ban(&mut self, id: SessionId, m: Ban) {
        if !self.operator(id, &m.id) {
            return;
        }
        let key = ban_key(&m.target);
        let covers_self = self
            .conns
            .get(&id)
            .is_some_and(|c| *c.fold == *key || c.peer.ip().to_string() == key);
        if covers_self {
            let text = format!("{} is you: a ban would lock you out", m.target);
            return self.refuse(id, m.id, ErrorCode::BadRequest, text);
        }
        let until = m.duration_secs.map(|s| {
            now_ms().saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
        });
        let reason = m.reason.map(|r| fit::clip(&r, fit::MAX_REASON));
        let by = self.op_nick(id);
        if let Err(e) = self.bans.set(&key, reason.clone(), until, &by) {
            warn!(error = %e, "cannot store a ban");
            let text = "the ban could not be stored".to_owned();
            return self.refuse(id, m.id, ErrorCode::StoreUnavailable, text);
        }
        info!(by, target = key, "banned");
        let text = ban_text(reason.as_deref(), until);
        let victims: Vec<SessionId> = self
            .conns
            .iter()
            .filter(|(_, c)| *c.fold == *key || c.peer.ip().to_string() == key)
            .map(|(&s, _)| s)
            .collect();
        for victim in victims {
            let Some((mut conn, sharers)) = self.remove(victim) else {
                continue;
            };
            info!(session = victim, peer = %conn.peer, nick = &*conn.nick, "disconnecting a banned user");
            // The session writes the `banned` error after what is queued, then closes.
            if let Some(kick) = conn.kick_tx.take() {
                let _ = kick.send(super::Kick::Banned { text: text.clone() });
            }
            self.announce_banned(&conn.nick, &sharers);
        }
        self.info(id, m.id, format!("{} is banned", m.target));
    }

    fn announce_banned(&mut self, nick: &str, sharers: &std::collections::BTreeSet<SessionId>) {
        let event = ServerMsg::Quit(QuitEvent {
            nick: nick.to_owned(),
            reason: Some("banned".to_owned()),
            ts: now_ms(),
        });
        if let Some(frame) = encode(&event) {
            for &to in sharers {
                self.deliver(to, &frame, None);
            }
        }
    }

    /// `unban`: lifts a ban.
    pub(super) fn unban(&mut self, id: SessionId, m: Unban) {
        if !self.operator(id, &m.id) {
            return;
        }
        let key = ban_key(&m.target);
        let was = match self.bans.lift(&key) {
            Ok(was) => was,
            Err(e) => {
                warn!(error = %e, "cannot remove a ban");
                let text = "the ban could not be lifted".to_owned();
                return self.refuse(id, m.id, ErrorCode::StoreUnavailable, text);
            }
        };
        let text = if was {
            format!("{} is no longer banned", m.target)
        } else {
            format!("{} was not banned", m.target)
        };
        self.info(id, m.id, text);
    }

    /// `mute`: the user's sends (in a room, or everywhere) are refused until it expires.
    pub(super) fn mute(&mut self, id: SessionId, m: Mute) {
        if !self.operator(id, &m.id) {
            return;
        }
        let fold = fold_nick(&m.nick);
        let room = m.room.as_deref().map(fold_room);
        let by = self.op_nick(id);
        let until = m.duration_secs.map(|s| {
            now_ms().saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
        });
        let stored = if m.duration_secs == Some(0) {
            self.mutes.lift(&fold, room.as_deref())
        } else {
            self.mutes.set(&fold, room, until, &by)
        };
        if let Err(e) = stored {
            warn!(error = %e, "cannot store a mute");
            let text = "the mute could not be stored".to_owned();
            return self.refuse(id, m.id, ErrorCode::StoreUnavailable, text);
        }
        let lifted = m.duration_secs == Some(0);
        let text = if lifted {
            info!(by, nick = fold, "unmuted");
            format!("{} is no longer muted", m.nick)
        } else {
            info!(by, nick = fold, "muted");
            format!("{} is muted", m.nick)
        };
        self.info(id, m.id, text);
        // The muted user hears it now, not at their next bounced line.
        if let Some(&target) = self.nicks.get(&fold).filter(|&&t| t != id) {
            let place = m
                .room
                .as_deref()
                .map_or("everywhere".to_owned(), |r| format!("in {r}"));
            let text = if lifted {
                format!("{by} lifted your mute {place}")
            } else {
                let when = match until {
                    Some(_) => sanction::until_text(until),
                    None => "until an operator lifts it".to_owned(),
                };
                format!("you are muted {place} by {by} {when}")
            };
            self.info(target, None, text);
        }
    }
}
