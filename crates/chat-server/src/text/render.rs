//! Server messages as lines a person reads in netcat or telnet.
//!
//! [`render`] is pure: a [`ServerMsg`] (decoded from the frame the hub queued) becomes zero or
//! more lines, without line endings and not yet encoded. Chat looks like
//! `[12:34] #lobby <alice> text`; everything else the server says starts with `***`. Times are
//! the server's local time (its `TZ`), hours and minutes.
//!
//! Everything another user chose — nicks, room names, message text, topics, reasons — goes
//! through `chat_proto::sanitize` first, so escape sequences and control characters reach the
//! client's terminal only as visible symbols (`␛[2J`). A message with line breaks becomes
//! several lines, each with the same prefix, so nobody can fake a line from someone else.

use std::borrow::Cow;

use chat_proto::ServerMsg;
use chat_proto::sanitize::{sanitize_line, sanitize_text};
use chat_proto::server::ChatMessage;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Where to render: who "you" are and which clock to show.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Our nick ("" before the welcome).
    pub me: &'a str,
    /// The time zone for `[HH:MM]`.
    pub tz: &'a TimeZone,
}

/// Appends the lines `msg` shows as; many kinds (acks, typing) show as nothing.
pub fn render(msg: &ServerMsg, view: View<'_>, out: &mut Vec<String>) {
    let clock = |ts: i64| clock(ts, view.tz);
    match msg {
        ServerMsg::Welcome(w) => {
            out.push(format!(
                "*** welcome, {}! type a line to talk, /help lists the commands",
                sanitize_line(&w.nick),
            ));
            if let Some(motd) = &w.motd {
                for line in sanitize_text(motd).lines() {
                    out.push(format!("*** {line}"));
                }
            }
        }
        ServerMsg::Error(e) => out.push(format!("*** error: {}", sanitize_line(&e.message))),
        ServerMsg::Notice(n) => out.push(format!("*** {}", sanitize_line(&n.text))),
        ServerMsg::Message(m) => message(m, view, out),
        ServerMsg::Joined(j) if j.nick == view.me => out.push(format!(
            "{} *** you joined {}; your lines go there now",
            clock(j.ts),
            sanitize_line(&j.room)
        )),
        ServerMsg::Joined(j) => out.push(format!(
            "{} *** {} joined {}",
            clock(j.ts),
            sanitize_line(&j.nick),
            sanitize_line(&j.room)
        )),
        // The hub tells a kicked user with the `parted` the room hears, reason "kicked by op[:
        // why]". On our own part that reason is a kick (or one we typed, fooling only us); for
        // others it stays "left (kicked by ...)", since anyone may type any part reason.
        ServerMsg::Parted(p) if p.nick == view.me && kicked_by(p.reason.as_deref()).is_some() => {
            let by = kicked_by(p.reason.as_deref()).unwrap_or_default();
            out.push(format!(
                "{} *** you were kicked from {} by {}",
                clock(p.ts),
                sanitize_line(&p.room),
                sanitize_line(by)
            ));
        }
        ServerMsg::Parted(p) => {
            let who = if p.nick == view.me {
                Cow::Borrowed("you")
            } else {
                sanitize_line(&p.nick)
            };
            out.push(format!(
                "{} *** {who} left {}{}",
                clock(p.ts),
                sanitize_line(&p.room),
                reason(p.reason.as_deref())
            ));
        }
        ServerMsg::NickChanged(n) if n.old == view.me => out.push(format!(
            "{} *** you are now known as {}",
            clock(n.ts),
            sanitize_line(&n.new)
        )),
        ServerMsg::NickChanged(n) => out.push(format!(
            "{} *** {} is now known as {}",
            clock(n.ts),
            sanitize_line(&n.old),
            sanitize_line(&n.new)
        )),
        ServerMsg::Quit(q) => out.push(format!(
            "{} *** {} quit{}",
            clock(q.ts),
            sanitize_line(&q.nick),
            reason(q.reason.as_deref())
        )),
        ServerMsg::Topic(t) if t.topic.is_empty() => out.push(format!(
            "*** {} has no topic{}",
            sanitize_line(&t.room),
            locked(t.locked)
        )),
        ServerMsg::Topic(t) => out.push(format!(
            "*** topic of {}: {}{}{}",
            sanitize_line(&t.room),
            sanitize_line(&t.topic),
            t.set_by
                .as_deref()
                .map(|by| format!(" (set by {})", sanitize_line(by)))
                .unwrap_or_default(),
            locked(t.locked)
        )),
        ServerMsg::RoomList(list) if list.rooms.is_empty() => out.push("*** no rooms".into()),
        ServerMsg::RoomList(list) => {
            let n = list.rooms.len();
            let s = if n == 1 { "" } else { "s" };
            out.push(format!("*** {n} room{s}:"));
            for r in &list.rooms {
                let topic = if r.topic.is_empty() {
                    String::new()
                } else {
                    format!(": {}", sanitize_line(&r.topic))
                };
                out.push(format!(
                    "***   {} ({} in it){topic}",
                    sanitize_line(&r.name),
                    r.members
                ));
            }
        }
        ServerMsg::Names(n) => {
            let names: Vec<Cow<'_, str>> = n.members.iter().map(|m| sanitize_line(m)).collect();
            out.push(format!(
                "*** in {} ({}): {}",
                sanitize_line(&n.room),
                n.count.map_or(names.len(), |c| c as usize),
                names.join(", ")
            ));
        }
        ServerMsg::History(h) if !h.messages.is_empty() => {
            let n = h.messages.len();
            let s = if n == 1 { "" } else { "s" };
            out.push(format!(
                "*** the last {n} message{s} in {}:",
                sanitize_line(&h.room)
            ));
            for m in &h.messages {
                message(m, view, out);
            }
        }
        ServerMsg::FileOffered(f) if f.from != view.me => out.push(format!(
            "*** {} offers the file {} ({} bytes) to {}; text clients cannot accept files",
            sanitize_line(&f.from),
            sanitize_line(&f.name),
            f.size,
            sanitize_line(&f.to)
        )),
        ServerMsg::History(_)
        | ServerMsg::Ack(_)
        | ServerMsg::Typing(_)
        | ServerMsg::Ping(_)
        | ServerMsg::Pong(_)
        | ServerMsg::SearchResults(_)
        | ServerMsg::FileOffered(_)
        | ServerMsg::FileAccepted(_)
        | ServerMsg::FileDeclined(_)
        | ServerMsg::FileCancelled(_)
        | ServerMsg::FileProgress(_)
        | ServerMsg::FileChunk(_)
        | ServerMsg::FileDone(_) => {}
    }
}

/// A chat message: one line per line of its text, each with the whole prefix.
fn message(m: &ChatMessage, view: View<'_>, out: &mut Vec<String>) {
    let from = sanitize_line(&m.from);
    let place = match &m.room {
        Some(room) => sanitize_line(room).into_owned(),
        None => "(private)".to_owned(),
    };
    let prefix = if m.action {
        format!("{} {place} * {from} ", clock(m.ts, view.tz))
    } else {
        format!("{} {place} <{from}> ", clock(m.ts, view.tz))
    };
    let text = sanitize_text(&m.text);
    for line in text.split('\n') {
        out.push(format!("{prefix}{line}"));
    }
}

/// What a topic line adds when only operators may change the topic.
fn locked(locked: bool) -> &'static str {
    if locked {
        " [locked: only operators may change it]"
    } else {
        ""
    }
}

/// `op: why` of the hub's kick reason `kicked by op: why`.
fn kicked_by(reason: Option<&str>) -> Option<&str> {
    reason?.strip_prefix("kicked by ")
}

/// ` (reason)`, or nothing.
fn reason(reason: Option<&str>) -> String {
    match reason {
        Some(r) if !r.is_empty() => format!(" ({})", sanitize_line(r)),
        _ => String::new(),
    }
}

/// `[HH:MM]` of a Unix time in milliseconds, in `tz`.
pub fn clock(ts_ms: i64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(ts_ms) {
        Ok(t) => t.to_zoned(tz.clone()).strftime("[%H:%M]").to_string(),
        Err(_) => "[--:--]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::server::{
        HistoryPage, Joined, NameList, NickChanged, Parted, QuitEvent, TopicInfo,
    };

    use super::*;

    /// 2026-11-22 12:34:56 UTC.
    const TS: i64 = 1_795_350_896_000;

    fn lines(msg: ServerMsg, me: &str) -> Vec<String> {
        let tz = TimeZone::UTC;
        let mut out = Vec::new();
        render(&msg, View { me, tz: &tz }, &mut out);
        out
    }

    fn chat(room: Option<&str>, from: &str, text: &str, action: bool) -> ChatMessage {
        ChatMessage {
            mid: 1,
            room: room.map(str::to_owned),
            to: room.is_none().then(|| "me".to_owned()),
            from: from.into(),
            seq: 1,
            ts: TS,
            text: text.into(),
            action,
        }
    }

    #[test]
    fn chat_lines_show_time_room_and_sender() {
        let m = chat(Some("#lobby"), "alice", "hi", false);
        assert_eq!(
            lines(ServerMsg::Message(m), "me"),
            ["[12:34] #lobby <alice> hi"]
        );
        let m = chat(Some("#lobby"), "alice", "waves", true);
        assert_eq!(
            lines(ServerMsg::Message(m), "me"),
            ["[12:34] #lobby * alice waves"]
        );
        let m = chat(None, "bob", "psst", false);
        assert_eq!(
            lines(ServerMsg::Message(m), "me"),
            ["[12:34] (private) <bob> psst"]
        );
    }

    #[test]
    fn escape_sequences_are_neutralised_and_every_line_is_prefixed() {
        let m = chat(
            Some("#lobby"),
            "mallory",
            "\x1b[2Jclear\n\x1b]52;c;AAAA\x07\r\nfake <alice> hi\u{202E}",
            false,
        );
        let got = lines(ServerMsg::Message(m), "me");
        assert_eq!(
            got,
            [
                "[12:34] #lobby <mallory> ␛[2Jclear",
                "[12:34] #lobby <mallory> ␛]52;c;AAAA␇",
                "[12:34] #lobby <mallory> fake <alice> hi\u{FFFD}",
            ]
        );
        assert!(got.iter().all(|l| !l.chars().any(|c| c.is_control())));
    }

    #[test]
    fn presence_events_name_you_or_them() {
        let joined = |nick: &str| {
            ServerMsg::Joined(Joined {
                room: "#rust".into(),
                nick: nick.into(),
                ts: TS,
            })
        };
        assert_eq!(
            lines(joined("me"), "me"),
            ["[12:34] *** you joined #rust; your lines go there now"]
        );
        assert_eq!(lines(joined("bob"), "me"), ["[12:34] *** bob joined #rust"]);
        let parted = ServerMsg::Parted(Parted {
            room: "#rust".into(),
            nick: "bob".into(),
            reason: Some("bye".into()),
            ts: TS,
        });
        assert_eq!(lines(parted, "me"), ["[12:34] *** bob left #rust (bye)"]);
        let kicked = |nick: &str| {
            ServerMsg::Parted(Parted {
                room: "#rust".into(),
                nick: nick.into(),
                reason: Some("kicked by root: spam\x1b[2J".into()),
                ts: TS,
            })
        };
        assert_eq!(
            lines(kicked("me"), "me"),
            ["[12:34] *** you were kicked from #rust by root: spam\u{241b}[2J"]
        );
        assert_eq!(
            lines(kicked("bob"), "me"),
            ["[12:34] *** bob left #rust (kicked by root: spam\u{241b}[2J)"]
        );
        let quit = ServerMsg::Quit(QuitEvent {
            nick: "bob".into(),
            reason: Some("lagged".into()),
            ts: TS,
        });
        assert_eq!(lines(quit, "me"), ["[12:34] *** bob quit (lagged)"]);
        let nick = ServerMsg::NickChanged(NickChanged {
            old: "me".into(),
            new: "you2".into(),
            ts: TS,
        });
        assert_eq!(lines(nick, "me"), ["[12:34] *** you are now known as you2"]);
    }

    #[test]
    fn topics_names_and_history_read_as_sentences() {
        let topic = ServerMsg::Topic(TopicInfo {
            room: "#rust".into(),
            topic: "crabs".into(),
            set_by: Some("alice".into()),
            ..TopicInfo::default()
        });
        assert_eq!(
            lines(topic, "me"),
            ["*** topic of #rust: crabs (set by alice)"]
        );
        let none = ServerMsg::Topic(TopicInfo {
            room: "#rust".into(),
            ..TopicInfo::default()
        });
        assert_eq!(lines(none, "me"), ["*** #rust has no topic"]);
        let locked = ServerMsg::Topic(TopicInfo {
            room: "#rust".into(),
            topic: "crabs".into(),
            locked: true,
            ..TopicInfo::default()
        });
        assert_eq!(
            lines(locked, "me"),
            ["*** topic of #rust: crabs [locked: only operators may change it]"]
        );
        let names = ServerMsg::Names(NameList {
            id: None,
            room: "#rust".into(),
            members: vec!["alice".into(), "me".into()],
            count: None,
        });
        assert_eq!(lines(names, "me"), ["*** in #rust (2): alice, me"]);
        let history = ServerMsg::History(HistoryPage {
            id: None,
            room: "#rust".into(),
            messages: vec![chat(Some("#rust"), "alice", "earlier", false)],
            more: false,
        });
        assert_eq!(
            lines(history, "me"),
            [
                "*** the last 1 message in #rust:",
                "[12:34] #rust <alice> earlier"
            ]
        );
        let empty = ServerMsg::History(HistoryPage::default());
        assert!(lines(empty, "me").is_empty());
    }

    #[test]
    fn file_offers_show_as_a_line_text_clients_cannot_accept() {
        let offer = chat_proto::server::FileOffered {
            file: 7,
            from: "alice".into(),
            to: "#rust".into(),
            name: "notes\u{1b}[2J.txt".into(),
            size: 12,
            ..Default::default()
        };
        let got = lines(ServerMsg::FileOffered(offer.clone()), "me");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("*** alice offers the file notes"),
            "{got:?}"
        );
        assert!(got[0].ends_with("(12 bytes) to #rust; text clients cannot accept files"));
        assert!(!got[0].contains('\u{1b}'));
        assert!(lines(ServerMsg::FileOffered(offer), "alice").is_empty());
    }

    #[test]
    fn welcome_and_room_lists_read_as_sentences() {
        let welcome = ServerMsg::Welcome(chat_proto::server::Welcome {
            nick: "carol".into(),
            motd: Some("be nice\n\x1b[31mred".into()),
            ..Default::default()
        });
        assert_eq!(
            lines(welcome, "carol"),
            [
                "*** welcome, carol! type a line to talk, /help lists the commands",
                "*** be nice",
                "*** ␛[31mred",
            ]
        );
        let list = ServerMsg::RoomList(chat_proto::server::RoomList {
            id: None,
            rooms: vec![chat_proto::server::RoomSummary {
                name: "#lobby".into(),
                members: 3,
                topic: String::new(),
            }],
        });
        assert_eq!(lines(list, "me"), ["*** 1 room:", "***   #lobby (3 in it)"]);
    }

    #[test]
    fn the_clock_uses_the_given_zone() {
        let tz = TimeZone::fixed(jiff::tz::offset(8));
        assert_eq!(clock(TS, &tz), "[20:34]");
        assert_eq!(clock(TS, &TimeZone::UTC), "[12:34]");
    }
}
