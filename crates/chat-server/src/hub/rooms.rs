//! The hub's answers to room and presence requests: join (and resume), part, nick, topic,
//! names, rooms; and the dispatch of every request.
//!
//! Each handler validates, changes the hub's state, then queues frames: the event once-encoded
//! for every recipient, and the answer (with the request's `id`) for the requester. Refusals
//! are `error` frames carrying the request's `id`.
//!
//! Reads of a room's messages are bounded by what the hub has seen committed (`Room::last_seq`):
//! a message the store has written but the hub has not yet broadcast is left out of pages, and
//! reaches the reader live instead. A join reads its page in the same turn that adds the
//! member, so between the page and the live stream there is neither a gap nor an overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chat_proto::client::{Join, Part, Topic};
use chat_proto::limits::MAX_TOPIC_LEN;
use chat_proto::server::{
    HistoryPage, Joined, NameList, NickChanged, Notice, NoticeCode, Parted, RoomList, RoomSummary,
};
use chat_proto::{ClientMsg, ErrorCode, ServerMsg, WireMessage};
use tracing::{debug, warn};

use super::history::committed_only;
use super::{Hub, LOBBY, SessionId, encode, fit, now_ms};
use crate::history::Page;
use crate::room::Room;
use chat_proto::nick::{fold_nick, fold_room, validate_nick, validate_room};

impl Hub {
    /// Carries out one request of a registered session.
    pub(super) fn request(&mut self, id: SessionId, msg: ClientMsg) {
        if self.conns.get(&id).is_none_or(|c| c.lagging) {
            return;
        }
        match msg {
            ClientMsg::Send(m) => self.send(id, m),
            ClientMsg::Typing(m) => self.typing(id, m),
            ClientMsg::Join(Join { id: req, room }) => self.join(id, req, &room),
            ClientMsg::Part(m) => self.part(id, m),
            ClientMsg::Nick(m) => self.change_nick(id, m.id, m.nick),
            ClientMsg::Topic(m) => self.topic(id, m),
            ClientMsg::ListRooms(m) => self.list_rooms(id, m.id),
            ClientMsg::Names(m) => self.names(id, m.id, &m.room),
            ClientMsg::History(m) => self.history(id, m),
            ClientMsg::Search(m) => self.search(id, m),
            ClientMsg::FileOffer(m) => self.file_offer(id, m),
            ClientMsg::FileAccept(m) => self.file_accept(id, m),
            ClientMsg::FileDecline(m) => self.file_decline(id, m),
            ClientMsg::FileChunk(m) => self.file_chunk(id, m),
            ClientMsg::FileDone(m) => self.file_done(id, m),
            ClientMsg::FileCancel(m) => self.file_cancel(id, m),
            ClientMsg::FileAck(m) => self.file_ack(id, m),
            ClientMsg::Register(m) => self.register_nick(id, m),
            ClientMsg::Kick(m) => self.kick(id, m),
            ClientMsg::Ban(m) => self.ban(id, m),
            ClientMsg::Unban(m) => self.unban(id, m),
            ClientMsg::Mute(m) => self.mute(id, m),
            // By kind only: a request may carry a secret (a password), never logged.
            other => debug!(
                session = id,
                kind = other.kind(),
                "request the hub does not handle"
            ),
        }
    }

    /// The folded room key if the session is in that room, else a `not_in_room` refusal.
    pub(super) fn member_room(
        &mut self,
        id: SessionId,
        req: &Option<String>,
        room: &str,
    ) -> Option<Arc<str>> {
        if !self.in_room(id, req, room) {
            return None;
        }
        let (_, key) = self.conns.get(&id)?.last_room.as_ref()?;
        Some(Arc::clone(key))
    }

    /// Whether the session is in that room (its folded key then in the session's
    /// `last_room`), else a `not_in_room` refusal: [`Hub::member_room`] without taking a
    /// count of the key, for a `send`.
    pub(super) fn in_room(&mut self, id: SessionId, req: &Option<String>, room: &str) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        if let Some((spelled, key)) = &conn.last_room {
            if spelled == room && conn.rooms.contains(key) {
                return true;
            }
        }
        let key: Arc<str> = Arc::from(fold_room(room));
        if conn.rooms.contains(&key) {
            conn.last_room = Some((room.to_owned(), key));
            true
        } else {
            let text = format!("you are not in {room}");
            self.refuse(id, req.clone(), ErrorCode::NotInRoom, text);
            false
        }
    }

    /// The rooms a `hello` puts a session in, each with the `seq` to resume after: the valid
    /// rooms of `resume` (at most `max_rooms_per_user`), or `#lobby` when there are none.
    pub(super) fn resume_rooms(
        &self,
        resume: &BTreeMap<String, u64>,
    ) -> Vec<(String, Option<u64>)> {
        let mut folds = BTreeSet::new();
        let rooms: Vec<(String, Option<u64>)> = resume
            .iter()
            .filter(|(name, _)| validate_room(name).is_ok() && folds.insert(fold_room(name)))
            .take(self.config.max_rooms_per_user)
            .map(|(name, &seq)| (name.clone(), Some(seq)))
            .collect();
        if rooms.is_empty() {
            vec![(LOBBY.to_owned(), None)]
        } else {
            rooms
        }
    }

    /// Joins a room (creating it) and sends the join burst; re-joining resends the burst.
    pub(super) fn join(&mut self, id: SessionId, req: Option<String>, name: &str) {
        self.join_room(id, req, name, None);
    }

    /// [`Hub::join`]; with `resume`, the burst's page holds the messages after that `seq`
    /// instead of the newest ones (and a `more_history` notice follows if they did not fit).
    pub(super) fn join_room(
        &mut self,
        id: SessionId,
        req: Option<String>,
        name: &str,
        resume: Option<u64>,
    ) {
        if let Err(e) = validate_room(name) {
            let text = format!("room name {name:?} is invalid: {e}");
            return self.refuse(id, req, ErrorCode::RoomInvalid, text);
        }
        let key = fold_room(name);
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let nick = conn.nick.clone();
        let already = conn.rooms.contains(&key);
        if !already && conn.rooms.len() >= self.config.max_rooms_per_user {
            let text = format!("you are in too many rooms (at most {})", conn.rooms.len());
            return self.refuse(id, req, ErrorCode::BadRequest, text);
        }
        if !self.rooms.contains_key(&key) {
            match self.history.last_seq(&key) {
                Ok(last) => {
                    let mut room = Room::new(name.to_owned(), last);
                    self.topics.restore(&key, &mut room);
                    self.rooms.insert(key.clone(), room);
                }
                Err(e) => {
                    warn!(error = %e, room = name, "history store failed");
                    return self.refuse(id, req, ErrorCode::StoreUnavailable, e.to_string());
                }
            }
        }
        let Some(room) = self.rooms.get_mut(&key) else {
            return;
        };
        let joined = ServerMsg::Joined(Joined {
            room: room.name.to_string(),
            nick: nick.to_string(),
            ts: now_ms(),
        });
        if !already {
            room.members.insert(id);
        }
        // A large room hears of nobody's join: the joiner alone gets its `joined`.
        let recipients: Vec<SessionId> = if already || room.is_large(self.config.presence_limit) {
            vec![id]
        } else {
            room.members.iter().copied().collect()
        };
        let last_seq = room.last_seq();
        let topic = room.topic_info(None);
        let room_name = room.name.to_string();
        // Read in this same turn, bounded by what was broadcast: see the module docs.
        let page = match resume {
            Some(after) if after <= last_seq => {
                let cap = self.config.resume_max.max(1) as usize;
                self.history
                    .after(&key, after, cap)
                    .map(|page| committed_only(page, last_seq))
            }
            _ => {
                let n = self.config.history_on_join as usize;
                self.history.before(&key, last_seq + 1, n)
            }
        };
        // Within `max_body`: a replay keeps its oldest messages, a plain join the newest.
        let page = page.map(|p| {
            let fitted = self.fit_page(
                None,
                room_name.clone(),
                p.messages,
                p.more,
                resume.is_none(),
            );
            Page {
                messages: fitted.messages,
                more: fitted.more,
            }
        });
        // With a capped replay, the client has everything up to the page's end.
        let delivered = match (&page, resume) {
            (Ok(p), Some(_)) if p.more => p.messages.last().map_or(last_seq, |m| m.seq),
            _ => last_seq,
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.rooms.insert(&key, delivered);
        }
        if let Some(frame) = encode(&joined) {
            // The joiner's burst goes out now and in order; the others' `joined` keeps its
            // place behind any held `parted`/`quit` (a nick that quits and comes straight
            // back is seen leaving, then joining).
            let (own, others): (Vec<SessionId>, Vec<SessionId>) =
                recipients.into_iter().partition(|&to| to == id);
            for to in own {
                self.deliver(to, &frame, None);
            }
            self.deliver_after_pending(id, others, frame);
        }
        self.reply(id, topic);
        let names = self.name_list(req, room_name.clone(), &key, true);
        self.reply(id, names);
        match page {
            Ok(Page { messages, more }) => {
                let replay_capped = resume.is_some() && more;
                self.reply(
                    id,
                    HistoryPage {
                        id: None,
                        room: room_name.clone(),
                        messages,
                        more,
                    },
                );
                if replay_capped {
                    let text = format!(
                        "more messages were missed in {room_name} than one page holds: \
                         page forward with history after {delivered}"
                    );
                    self.reply(
                        id,
                        Notice {
                            code: NoticeCode::MoreHistory,
                            text,
                            seqs: BTreeMap::from([(room_name, delivered)]),
                            id: None,
                        },
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, room = room_name, "history store failed");
                self.refuse(id, None, ErrorCode::StoreUnavailable, e.to_string());
            }
        }
    }

    fn part(&mut self, id: SessionId, m: Part) {
        let Some(key) = self.member_room(id, &m.id, &m.room) else {
            return;
        };
        let Some(nick) = self.conns.get(&id).map(|c| c.nick.to_string()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&*key) else {
            return;
        };
        let event = ServerMsg::Parted(Parted {
            room: room.name.to_string(),
            nick,
            reason: m.reason.map(|r| fit::clip(&r, fit::MAX_REASON)),
            ts: now_ms(),
        });
        // A large room hears of nobody's part: the one leaving alone gets its `parted`.
        let members: Vec<SessionId> = if room.is_large(self.config.presence_limit) {
            vec![id]
        } else {
            room.members.iter().copied().collect()
        };
        room.members.remove(&id);
        if room.is_idle() {
            self.rooms.remove(&*key);
        }
        if let Some(frame) = encode(&event) {
            self.deliver_after_pending(id, members, frame);
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.rooms.remove(&key);
        }
    }

    fn change_nick(&mut self, id: SessionId, req: Option<String>, new: String) {
        if let Err(e) = validate_nick(&new) {
            let text = format!("nick {new:?} is invalid: {e}");
            return self.refuse(id, req, ErrorCode::NickInvalid, text);
        }
        let fold = fold_nick(&new);
        let same_person = self.conns.get(&id).is_some_and(|c| *c.fold == *fold);
        if !same_person && self.muted_anywhere(id) {
            let text = "you are muted: your nick cannot change until the mute is lifted".to_owned();
            return self.refuse(id, req, ErrorCode::Forbidden, text);
        }
        if self.nicks.get(&fold).is_some_and(|&owner| owner != id) {
            let text = format!("nick {new:?} is in use");
            return self.refuse(id, req, ErrorCode::NickTaken, text);
        }
        let ip = self.conns.get(&id).map(|c| c.peer.ip());
        if let Some(text) = ip.and_then(|ip| self.bans.find(&fold, ip)) {
            return self.refuse(id, req, ErrorCode::Forbidden, text);
        }
        if !self.may_use(id, &fold) {
            let text = format!("nick {new:?} is registered: log in with it in hello");
            return self.refuse(id, req, ErrorCode::AuthFailed, text);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut conn.nick, Arc::from(new.as_str())).to_string();
        let old_fold = std::mem::replace(&mut conn.fold, Arc::from(fold.as_str()));
        let peers: Vec<String> = conn.dm_peers.iter().cloned().collect();
        self.nicks.remove(&*old_fold);
        self.nicks.insert(fold.clone(), id);
        // DM partners keep hearing about this user under its new name.
        for peer in peers {
            if let Some(p) = self.nicks.get(&peer).and_then(|s| self.conns.get_mut(s)) {
                if let Some(slot) = p.dm_peers.iter_mut().find(|f| **f == *old_fold) {
                    slot.clone_from(&fold);
                }
            }
        }
        let mut to = self.sharers(id);
        to.insert(id);
        let event = ServerMsg::NickChanged(NickChanged {
            old,
            new,
            ts: now_ms(),
        });
        if let Some(frame) = encode(&event) {
            // After the messages sent under the old nick, as presence always is.
            self.deliver_after_pending(id, to.into_iter().collect(), frame);
        }
    }

    fn topic(&mut self, id: SessionId, m: Topic) {
        let Some(key) = self.member_room(id, &m.id, &m.room) else {
            return;
        };
        let admin = self.is_admin(id);
        let locked = self.rooms.get(&*key).is_some_and(|r| r.topic_locked);
        if m.lock.is_some() && !admin {
            let text = "only operators may lock a topic".to_owned();
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        if m.topic.is_some() && !admin && self.muted(id, Some(&key)) {
            let text = format!(
                "you are muted in {}: the topic is not yours to change",
                m.room
            );
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        if m.topic.is_some() && locked && !admin {
            let text = "the topic is locked: only operators may change it".to_owned();
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        if let Some(lock) = m.lock {
            if let Some(room) = self.rooms.get_mut(&*key) {
                room.topic_locked = lock;
                self.topics.save(&key, room);
            }
            if m.topic.is_none() {
                // A lock change alone: everyone in the room sees the new state.
                let Some(room) = self.rooms.get(&*key) else {
                    return;
                };
                let event = ServerMsg::Topic(room.topic_info(None));
                let answer = room.topic_info(m.id);
                let others: Vec<SessionId> =
                    room.members.iter().copied().filter(|&s| s != id).collect();
                if let Some(frame) = encode(&event) {
                    for to in others {
                        self.deliver(to, &frame, None);
                    }
                }
                return self.reply(id, answer);
            }
        }
        let Some(text) = m.topic else {
            if let Some(info) = self.rooms.get(&*key).map(|r| r.topic_info(m.id)) {
                self.reply(id, info);
            }
            return;
        };
        if text.len() > MAX_TOPIC_LEN {
            let why = format!("topic is longer than {MAX_TOPIC_LEN} bytes");
            return self.refuse(id, m.id, ErrorCode::BadRequest, why);
        }
        if text.chars().any(chat_proto::sanitize::is_unsafe_char) {
            let why = "topic contains control or invisible characters".to_owned();
            return self.refuse(id, m.id, ErrorCode::BadRequest, why);
        }
        let Some(setter) = self.conns.get(&id).map(|c| c.nick.to_string()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&*key) else {
            return;
        };
        room.topic = text;
        room.topic_by = Some(setter);
        room.topic_ts = Some(now_ms());
        self.topics.save(&key, room);
        let event = ServerMsg::Topic(room.topic_info(None));
        let answer = room.topic_info(m.id);
        let others: Vec<SessionId> = room.members.iter().copied().filter(|&s| s != id).collect();
        if let Some(frame) = encode(&event) {
            for to in others {
                self.deliver(to, &frame, None);
            }
        }
        self.reply(id, answer);
    }

    fn list_rooms(&mut self, id: SessionId, req: Option<String>) {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .map(|r| RoomSummary {
                name: r.name.to_string(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
                topic: r.topic.clone(),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        let mut list = RoomList {
            id: req,
            rooms: Vec::new(),
        };
        let budget = fit::array_budget(self.config.max_body, &list);
        let left = fit::fit_rooms(&mut rooms, budget);
        if left > 0 {
            warn!(left, "room list capped to fit max_body");
        }
        list.rooms = rooms;
        self.reply(id, list);
    }

    fn names(&mut self, id: SessionId, req: Option<String>, room: &str) {
        let key = fold_room(room);
        let Some(name) = self.rooms.get(&key).map(|r| r.name.to_string()) else {
            let text = format!("there is no room {room}");
            return self.refuse(id, req, ErrorCode::NotInRoom, text);
        };
        let names = self.name_list(req, name, &key, false);
        self.reply(id, names);
    }

    /// A room's `name_list`, capped (with a marker entry) to fit `max_body`. A large room's
    /// list carries its `count`, and in a join `burst` only that: listing every member to every
    /// joiner is what made joining a big room O(room) per join.
    fn name_list(&self, req: Option<String>, room: String, key: &str, burst: bool) -> NameList {
        let count = self
            .rooms
            .get(key)
            .filter(|r| r.is_large(self.config.presence_limit))
            .map(|r| u32::try_from(r.members.len()).unwrap_or(u32::MAX));
        let mut list = NameList {
            id: req,
            room,
            members: Vec::new(),
            count,
        };
        if burst && count.is_some() {
            return list;
        }
        let mut members = self.member_nicks(key);
        let budget = fit::array_budget(self.config.max_body, &list);
        let left = fit::fit_names(&mut members, budget);
        if left > 0 {
            warn!(room = list.room, left, "name list capped to fit max_body");
        }
        list.members = members;
        list
    }

    /// Everyone sharing at least one room with `id` that is not large, and its online
    /// direct-message partners (not `id` itself): the audience of its nick changes and its quit.
    pub(super) fn sharers(&self, id: SessionId) -> BTreeSet<SessionId> {
        let mut out = BTreeSet::new();
        if let Some(conn) = self.conns.get(&id) {
            let limit = self.config.presence_limit;
            for key in conn.rooms.keys() {
                // A large room is not told of its members' presence.
                if let Some(room) = self.rooms.get(key).filter(|r| !r.is_large(limit)) {
                    out.extend(room.members.iter().copied().filter(|&s| s != id));
                }
            }
            out.extend(
                conn.dm_peers
                    .iter()
                    .filter_map(|f| self.nicks.get(f).copied())
                    .filter(|&s| s != id),
            );
        }
        out
    }

    /// A room's member nicks, sorted case-insensitively.
    fn member_nicks(&self, key: &str) -> Vec<String> {
        let Some(room) = self.rooms.get(key) else {
            return Vec::new();
        };
        let mut members: Vec<(&str, &str)> = room
            .members
            .iter()
            .filter_map(|s| self.conns.get(s))
            .map(|c| (&*c.fold, &*c.nick))
            .collect();
        members.sort_unstable();
        members.into_iter().map(|(_, n)| n.to_owned()).collect()
    }
}
