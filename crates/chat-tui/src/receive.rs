//! What each server message does to the model. Part of `update`: synchronous, no IO.
//!
//! Every string taken from a server message is sanitized here, before it is stored in a line.

use chat_proto::nick::fold_nick;
use chat_proto::sanitize::{sanitize_line, sanitize_text};
use chat_proto::server::{ChatMessage, NoticeCode};
use chat_proto::{ErrorCode, ServerMsg};

use crate::app::{App, BufferKind, Delivery, InputMode, Line, LineBody, MAX_LINES};
use crate::layout::current_panes;
use crate::transfer;
use crate::ui::timeline::{Columns, line_rows};
use crate::update::{Command, flush_outbox, switch_to};

/// How long a message refused for rate waits before it is sent again.
const RATE_RETRY_MS: i64 = 1500;

fn line_str(s: &str) -> String {
    sanitize_line(s).into_owned()
}

/// Whether `text` mentions `nick` as a whole word (case-insensitive).
pub fn mentions(text: &str, nick: &str) -> bool {
    let text = text.to_lowercase();
    let nick = nick.to_lowercase();
    if nick.is_empty() {
        return false;
    }
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(&nick).any(|(at, _)| {
        !is_word(text[..at].chars().next_back()) && !is_word(text[at + nick.len()..].chars().next())
    })
}

/// Queues a `history {after}` page for `room` (paced): catching up after a resume whose
/// replay was capped.
fn queue_gap_page(app: &mut App, room: &str, after: u64) {
    let id = format!("{}-gap-{}", app.id_prefix, app.next_id);
    app.next_id += 1;
    app.requests.push(chat_proto::ClientMsg::History(
        chat_proto::client::History {
            id: Some(id),
            room: room.to_owned(),
            before: None,
            after: Some(after),
            limit: Some(app.limits.history_page),
        },
    ));
}

/// Appends a line to buffer `i`, keeping a scrolled view still and trimming old lines.
pub fn append(app: &mut App, i: usize, line: Line) {
    insert_at(app, i, app.buffers[i].lines.len(), line);
}

/// Inserts a line at `at` in buffer `i`.
fn insert_at(app: &mut App, i: usize, at: usize, line: Line) {
    let at_end = at == app.buffers[i].lines.len();
    if at_end && app.buffers[i].scroll > 0 {
        // Scrolled up: grow the offset by the new rows so the view does not move.
        let width = usize::from(current_panes(app).timeline.width);
        let cols = Columns::new(&app.buffers[i], width);
        let rows = line_rows(app, &line, cols).len();
        let buf = &mut app.buffers[i];
        buf.scroll += rows;
        buf.unseen_below += 1;
    }
    let buf = &mut app.buffers[i];
    buf.lines.insert(at, line);
    if let Some(m) = buf.read_marker.as_mut() {
        if at < *m {
            *m += 1;
        }
    }
    if buf.lines.len() > MAX_LINES {
        let drop = buf.lines.len() - MAX_LINES + MAX_LINES / 10;
        buf.lines.drain(..drop);
        buf.read_marker = buf.read_marker.and_then(|m| m.checked_sub(drop));
        buf.more_before = true;
    }
}

/// Where a message belongs: the server streams each conversation in order, so a live message
/// goes at the end; a history page (older messages, or a gap filled while live ones arrived)
/// goes before the lines that are later than it in both sequence and time (local lines by time
/// alone). Comparing both keeps a renumbered conversation (a restarted server, a DM after a
/// nick change) from sorting new messages among old ones.
enum Placement {
    /// At the end.
    Live,
    /// By sequence and time.
    Page,
}

/// Inserts a numbered message; false when this very message (`seq`, `mid`, `ts`) is loaded.
fn insert_message(app: &mut App, i: usize, line: Line, place: Placement) -> bool {
    let (Some(seq), Some(mid)) = (line.seq, line.mid) else {
        append(app, i, line);
        return true;
    };
    let buf = &app.buffers[i];
    if buf.has_message(seq, mid, line.ts) {
        return false;
    }
    let at = match place {
        Placement::Live => buf.lines.len(),
        Placement::Page => {
            let later = |l: &Line| match l.seq {
                Some(s) => s > seq && l.ts >= line.ts,
                None => l.ts > line.ts,
            };
            buf.lines.len() - buf.lines.iter().rev().take_while(|l| later(l)).count()
        }
    };
    insert_at(app, i, at, line);
    true
}

/// The buffer a chat message belongs to: its room, or the other side of a DM.
fn message_buffer(app: &mut App, m: &ChatMessage) -> usize {
    match (&m.room, &m.to) {
        (Some(room), _) => app.buffer_for(room),
        (None, Some(to)) if app.is_me(&m.from) => app.buffer_for(to),
        _ => app.buffer_for(&m.from),
    }
}

/// A delivered (or replayed) chat message as a line.
fn chat_line(app: &App, m: &ChatMessage) -> Line {
    let own = app.is_me(&m.from);
    let text = sanitize_text(&m.text).into_owned();
    let mention = !own && mentions(&text, &app.me);
    Line {
        ts: m.ts,
        seq: Some(m.seq),
        mid: Some(m.mid),
        body: LineBody::Chat {
            from: line_str(&m.from),
            text,
            action: m.action,
            own,
            mention,
            delivery: Delivery::Acked,
            id: None,
        },
    }
}

/// A live message: stored, counted as unread, maybe a bell.
fn on_message(app: &mut App, m: ChatMessage, out: &mut Vec<Command>) {
    let i = message_buffer(app, &m);
    let line = chat_line(app, &m);
    let (own, mention) = match &line.body {
        LineBody::Chat { own, mention, .. } => (*own, *mention),
        _ => (false, false),
    };
    if !insert_message(app, i, line, Placement::Live) {
        return;
    }
    let direct = matches!(app.buffers[i].kind, BufferKind::Dm(_));
    if i != app.active && !own {
        let buf = &mut app.buffers[i];
        buf.unread += 1;
        if mention || direct {
            buf.mentions += 1;
        }
    }
    if app.bell && !own && (mention || direct) {
        out.push(Command::Bell);
    }
}

/// Adds `nick` to a collapsed join/part line at the end of buffer `i`, or starts one.
fn membership(app: &mut App, i: usize, nick: &str, joined: bool, ts: i64) {
    let nick = line_str(nick);
    if let Some(Line {
        body: LineBody::Membership {
            joined: j,
            parted: p,
        },
        ts: last_ts,
        ..
    }) = app.buffers[i].lines.last_mut()
    {
        if ts - *last_ts < 10 * 60 * 1000 {
            if joined {
                j.push(nick)
            } else {
                p.push(nick)
            }
            *last_ts = ts;
            return;
        }
    }
    let (j, p) = if joined {
        (vec![nick], vec![])
    } else {
        (vec![], vec![nick])
    };
    append(
        app,
        i,
        Line {
            ts,
            seq: None,
            mid: None,
            body: LineBody::Membership {
                joined: j,
                parted: p,
            },
        },
    );
}

fn info(app: &mut App, i: usize, ts: i64, text: String) {
    append(
        app,
        i,
        Line {
            ts,
            seq: None,
            mid: None,
            body: LineBody::Info(text),
        },
    );
}

fn error(app: &mut App, i: usize, ts: i64, text: String) {
    append(
        app,
        i,
        Line {
            ts,
            seq: None,
            mid: None,
            body: LineBody::Error(text),
        },
    );
}

/// Removes `nick` from a member list; true when it was there.
fn remove_member(members: &mut Vec<String>, nick: &str) -> bool {
    let key = fold_nick(nick);
    let before = members.len();
    members.retain(|m| fold_nick(m) != key);
    members.len() != before
}

/// Applies one server message.
pub fn server_msg(app: &mut App, msg: ServerMsg, out: &mut Vec<Command>) {
    let now = app.now_ms;
    match msg {
        ServerMsg::Message(m) => on_message(app, m, out),
        ServerMsg::Ack(ack) => {
            let Some(id) = ack.id else { return };
            app.outbox.retain(|o| o.id != id);
            for buf in &mut app.buffers {
                if let Some(line) = buf
                    .lines
                    .iter_mut()
                    .rev()
                    .find(|l| matches!(&l.body, LineBody::Chat { id: Some(x), .. } if *x == id))
                {
                    line.ts = ack.ts;
                    line.seq = Some(ack.seq);
                    line.mid = Some(ack.mid);
                    if let LineBody::Chat { delivery, .. } = &mut line.body {
                        *delivery = Delivery::Acked;
                    }
                    break;
                }
            }
        }
        ServerMsg::Error(e) if transfer::on_error(app, &e, out) => {}
        ServerMsg::Error(e) => {
            let code = e.code.as_str();
            let text = line_str(&e.message);
            let join =
                e.id.as_ref()
                    .and_then(|id| app.joins.iter().position(|j| &j.id == id));
            if let Some(k) = join {
                let j = app.joins.remove(k);
                let room = line_str(&j.room);
                let i = match app.find_buffer(&j.room) {
                    Some(i) => {
                        app.buffers[i].joined = false;
                        i
                    }
                    None => app.active,
                };
                error(app, i, now, format!("cannot join {room}: {code}: {text}"));
                return;
            }
            let failed =
                e.id.as_ref()
                    .and_then(|id| app.outbox.iter().position(|o| &o.id == id));
            if let (Some(k), ErrorCode::RateLimited) = (failed, e.code) {
                // Not refused, only too early: it stays pending and goes again in a moment,
                // and so does everything sent after it, so the order stays as typed. (One of
                // those the server already took comes back as a `duplicate` ack.)
                app.outbox[k].retry_at = Some(now + RATE_RETRY_MS);
                for item in &mut app.outbox[k..] {
                    item.sent_on = None;
                }
                return;
            }
            if let Some(k) = failed {
                let item = app.outbox.remove(k);
                for buf in &mut app.buffers {
                    for line in buf.lines.iter_mut().rev() {
                        if let LineBody::Chat {
                            id: Some(x),
                            delivery,
                            ..
                        } = &mut line.body
                        {
                            if *x == item.id {
                                *delivery = Delivery::Failed(format!("{code}: {text}"));
                            }
                        }
                    }
                }
                return;
            }
            let i = app.active;
            error(app, i, now, format!("{code}: {text}"));
            if e.code == ErrorCode::NickInvalid && !app.is_connected() {
                let hint = "choose another nick with /nick newname to connect".to_owned();
                error(app, i, now, hint);
            }
            if e.code == ErrorCode::Banned {
                let hint = "banned: not reconnecting; /nick newname tries again (if only the nick was banned), /quit leaves".to_owned();
                error(app, i, now, hint);
            }
            if e.code == ErrorCode::AuthFailed && !app.is_connected() {
                // The server names a missing or wrong server password in its text; anything
                // else refused at hello is the nick's own password.
                let which = if text.contains("server password") {
                    crate::net::PasswordFor::Server
                } else {
                    crate::net::PasswordFor::Nick
                };
                let hint = match which {
                    crate::net::PasswordFor::Server => {
                        "type the server's password below and press Enter (Esc: cancel; $CHAT_SERVER_PASSWORD gives it at start)"
                    }
                    crate::net::PasswordFor::Nick => {
                        "type the nick's password below and press Enter (Esc: /nick another name instead; $CHAT_PASSWORD or --password-cmd give it at start)"
                    }
                };
                error(app, i, now, hint.to_owned());
                app.mode = InputMode::Password(which);
                app.answer.clear();
            }
        }
        ServerMsg::Notice(n)
            if n.code == NoticeCode::Info && transfer::on_paused_notice(app, &n.text) => {}
        ServerMsg::Notice(n) => {
            let text = line_str(&n.text);
            let text = match n.code {
                NoticeCode::ShuttingDown => format!("server shutting down: {text}"),
                NoticeCode::Lagged => format!("fell behind, reconnecting: {text}"),
                _ => text,
            };
            info(app, 0, now, text.clone());
            if app.active != 0 {
                let i = app.active;
                info(app, i, now, text);
            }
            if n.code == NoticeCode::MoreHistory {
                for (room, after) in &n.seqs {
                    queue_gap_page(app, room, *after);
                }
                flush_outbox(app, out);
            }
        }
        ServerMsg::Joined(j) => {
            let i = app.buffer_for(&j.room);
            if app.is_me(&j.nick) {
                let key = chat_proto::nick::fold_room(&j.room);
                let asked = app
                    .joins
                    .iter()
                    .position(|p| chat_proto::nick::fold_room(&p.room) == key);
                if let Some(k) = asked {
                    if app.joins.remove(k).by_user {
                        switch_to(app, i);
                    }
                }
                if !app.buffers[i].joined {
                    app.buffers[i].joined = true;
                    let room = line_str(&j.room);
                    info(app, i, j.ts, format!("you joined {room}"));
                }
                return;
            }
            let buf = &mut app.buffers[i];
            if !buf
                .members
                .iter()
                .any(|m| fold_nick(m) == fold_nick(&j.nick))
            {
                buf.members.push(j.nick.clone());
                buf.members.sort_by_key(|m| m.to_lowercase());
            }
            membership(app, i, &j.nick, true, j.ts);
        }
        ServerMsg::Parted(p) => {
            let Some(i) = app.find_buffer(&p.room) else {
                return;
            };
            if app.is_me(&p.nick) {
                let buf = &mut app.buffers[i];
                buf.joined = false;
                buf.members.clear();
                buf.member_count = None;
                let room = line_str(&p.room);
                let text = match &p.reason {
                    // An operator's kick says so ("kicked by root: spam"): show it, loudly.
                    Some(reason) if reason.starts_with("kicked by ") => {
                        let text = format!("you were {} (from {room})", line_str(reason));
                        error(app, i, p.ts, text.clone());
                        if i != 0 {
                            error(app, 0, p.ts, text);
                        }
                        return;
                    }
                    _ => format!("you left {room}"),
                };
                info(app, i, p.ts, text);
                return;
            }
            remove_member(&mut app.buffers[i].members, &p.nick);
            match &p.reason {
                Some(reason) if !reason.is_empty() => {
                    let text = format!("{} left ({})", line_str(&p.nick), line_str(reason));
                    info(app, i, p.ts, text);
                }
                _ => membership(app, i, &p.nick, false, p.ts),
            }
        }
        ServerMsg::Quit(q) => {
            for i in 0..app.buffers.len() {
                if remove_member(&mut app.buffers[i].members, &q.nick) {
                    match &q.reason {
                        // "quit" is what a plain disconnect says: not worth a line of its own.
                        Some(reason) if !reason.is_empty() && reason != "quit" => {
                            let text = format!("{} left ({})", line_str(&q.nick), line_str(reason));
                            info(app, i, q.ts, text);
                        }
                        _ => membership(app, i, &q.nick, false, q.ts),
                    }
                }
            }
        }
        ServerMsg::NickChanged(n) => {
            let me = app.is_me(&n.old);
            if me {
                app.me = n.new.clone();
            }
            let text = if me {
                format!("you are now known as {}", line_str(&n.new))
            } else {
                format!("{} is now known as {}", line_str(&n.old), line_str(&n.new))
            };
            for i in 0..app.buffers.len() {
                let buf = &mut app.buffers[i];
                let was_member = remove_member(&mut buf.members, &n.old);
                if was_member {
                    buf.members.push(n.new.clone());
                    buf.members.sort_by_key(|m| m.to_lowercase());
                }
                if buf.kind == BufferKind::Dm(n.old.clone()) {
                    buf.kind = BufferKind::Dm(n.new.clone());
                }
                if was_member || me || buf.kind.is(&n.new) {
                    info(app, i, n.ts, text.clone());
                }
            }
        }
        ServerMsg::Topic(t) => {
            let i = app.buffer_for(&t.room);
            let topic = line_str(&t.topic);
            let buf = &mut app.buffers[i];
            // A topic re-sent in a join burst (after a reconnect) is news only when it differs
            // and was set after the one we know; a bare re-send (no setter, no time) is not.
            let newer = t.set_by.is_some() && t.ts.is_some_and(|ts| Some(ts) > buf.topic_ts);
            let changed = buf.topic != topic && newer;
            let lock_changed = buf.topic_locked != t.locked;
            buf.topic_locked = t.locked;
            let unchanged_text = buf.topic == topic;
            buf.topic = topic.clone();
            if t.ts.is_some() {
                buf.topic_ts = t.ts;
            }
            let (joined, has_lines) = (buf.joined, !buf.lines.is_empty());
            if lock_changed && (joined || t.id.is_some()) {
                let text = if t.locked {
                    "the topic is locked: only operators may change it"
                } else {
                    "the topic is unlocked"
                };
                info(app, i, now, text.to_owned());
                if unchanged_text {
                    return;
                }
            }
            if t.id.is_some() || (changed && joined && has_lines) {
                let by = t
                    .set_by
                    .as_deref()
                    .map(line_str)
                    .unwrap_or_else(|| "someone".into());
                let text = if topic.is_empty() {
                    format!("{by} cleared the topic")
                } else {
                    format!("{by} set the topic: {topic}")
                };
                info(app, i, t.ts.unwrap_or(now), text);
            }
        }
        ServerMsg::RoomList(list) => {
            let i = app.active;
            info(app, i, now, format!("{} rooms:", list.rooms.len()));
            for r in &list.rooms {
                let topic = line_str(&r.topic);
                info(
                    app,
                    i,
                    now,
                    format!("  {} ({}) {topic}", line_str(&r.name), r.members),
                );
            }
        }
        ServerMsg::Names(n) => {
            let i = app.buffer_for(&n.room);
            app.buffers[i].members = n.members.clone();
            app.buffers[i].member_count = n.count;
            let asked =
                n.id.as_deref()
                    .is_some_and(|id| id.starts_with(&format!("{}-names-", app.id_prefix)));
            if asked {
                let names: Vec<String> = n.members.iter().map(|m| line_str(m)).collect();
                let count = n.count.map_or(names.len(), |c| c as usize);
                info(app, i, now, format!("{count} users: {}", names.join(", ")));
            }
        }
        ServerMsg::History(page) => {
            if page.id.is_none() {
                transfer::on_burst_page(app, &page.room, out);
            }
            let i = app.buffer_for(&page.room);
            let older = page
                .id
                .as_deref()
                .is_some_and(|id| id.starts_with(&format!("{}-older-", app.id_prefix)));
            let gap = page
                .id
                .as_deref()
                .is_some_and(|id| id.starts_with(&format!("{}-gap-", app.id_prefix)));
            if let (true, true, Some(last)) = (gap, page.more, page.messages.last()) {
                queue_gap_page(app, &page.room, last.seq);
                flush_outbox(app, out);
            }
            let was_empty = app.buffers[i].oldest_seq().is_none();
            for m in &page.messages {
                let line = chat_line(app, m);
                insert_message(app, i, line, Placement::Page);
            }
            let buf = &mut app.buffers[i];
            if older {
                buf.loading_older = false;
                buf.more_before = page.more;
            } else if was_empty {
                buf.more_before = page.more;
            }
        }
        ServerMsg::SearchResults(r) => {
            // Shown as information lines, not as messages: they are copies of old messages,
            // out of order with the timeline and never counted as unread.
            let i = app.find_buffer(&r.room).unwrap_or(app.active);
            let query = line_str(&r.query);
            let more = if r.more { ", more exist" } else { "" };
            let head = format!(
                "search \"{query}\": {} result{}{more}",
                r.messages.len(),
                if r.messages.len() == 1 { "" } else { "s" }
            );
            info(app, i, now, head);
            for m in &r.messages {
                let when = jiff::Timestamp::from_millisecond(m.ts)
                    .map(|t| {
                        t.to_zoned(app.tz.clone())
                            .strftime("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default();
                let text = sanitize_text(&m.text).replace('\n', " ");
                let line = format!("  [{when}] #{} <{}> {text}", m.seq, line_str(&m.from));
                info(app, i, now, line);
            }
        }
        ServerMsg::FileOffered(o) => transfer::on_offered(app, o, out),
        ServerMsg::FileAccepted(a) => transfer::on_accepted(app, a, out),
        ServerMsg::FileDeclined(d) => transfer::on_declined(app, d),
        ServerMsg::FileCancelled(c) => transfer::on_cancelled(app, c, out),
        ServerMsg::FileProgress(p) => transfer::on_progress(app, p, out),
        ServerMsg::FileChunk(c) => transfer::on_chunk(app, c, out),
        ServerMsg::FileDone(d) => transfer::on_done(app, d, out),
        ServerMsg::Typing(_) | ServerMsg::Welcome(_) | ServerMsg::Ping(_) | ServerMsg::Pong(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_needs_a_whole_word() {
        assert!(mentions("hey alice, look", "alice"));
        assert!(mentions("ALICE: hi", "alice"));
        assert!(!mentions("malice aforethought", "alice"));
        assert!(!mentions("alice_2 said", "alice"));
    }
}
