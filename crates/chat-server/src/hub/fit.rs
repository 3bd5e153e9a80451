//! Keeping every frame the server sends within the `max_body` it announces.
//!
//! A client drops a connection whose frame is larger than the limit it was told, so a frame
//! over it would lock that client out (and a stored message in a join burst would lock out
//! everyone). So: a `send` whose relayed `message` would not fit is refused, pages stop early
//! with `more: true`, long lists are capped with a marker, reasons and error texts are cut,
//! and [`super::Hub::deliver`] refuses whatever still slips through.

use bytes::BytesMut;
use chat_proto::message::Body;
use chat_proto::server::{ChatMessage, RoomSummary};
use tracing::warn;

/// Bytes of `max_body` kept free around one message, so that any message that was accepted
/// also fits in a page (the `history_page` wrapper, the room name and an `id`, escaped).
pub const PAGE_HEADROOM: usize = 1024;

/// Longest `parted` / `quit_event` reason relayed, in bytes.
pub const MAX_REASON: usize = 256;

/// Longest error text sent, in bytes (error texts quote user input).
pub const MAX_ERROR_TEXT: usize = 512;

/// Longest search query accepted, in bytes (the answer echoes it).
pub const MAX_QUERY: usize = 1024;

/// Bytes left for the one array of `empty` (a page or list with an empty array), so that the
/// whole body stays within `max_body`.
pub fn array_budget(max_body: u32, empty: &impl Body) -> usize {
    let mut buf = BytesMut::new();
    if empty.encode_body(&mut buf).is_err() {
        return 0;
    }
    // The empty body already holds the array's `[]`.
    (max_body as usize).saturating_sub(buf.len()) + 2
}

/// `s` cut to at most `max` bytes, at a character boundary (with `…` when cut).
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Bytes of `s` as a JSON string, quotes included (serde_json's escaping).
pub fn json_str_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// Bytes of one message's JSON body.
pub fn message_len(m: &ChatMessage) -> usize {
    let mut buf = BytesMut::new();
    match m.encode_body(&mut buf) {
        Ok(()) => buf.len(),
        Err(_) => usize::MAX,
    }
}

/// Trims `messages` (increasing `seq`) so their JSON array fits in `budget` bytes: keeps the
/// newest (`keep_newest`) or the oldest. Returns true if any was left out. A message that
/// alone does not fit (stored before this limit existed) has its text replaced by a marker.
pub fn fit_messages(messages: &mut Vec<ChatMessage>, budget: usize, keep_newest: bool) -> bool {
    let mut lens: Vec<usize> = Vec::with_capacity(messages.len());
    for m in messages.iter_mut() {
        let mut len = message_len(m);
        if len + 2 > budget {
            warn!(
                mid = m.mid,
                len, "a stored message is too large to relay; its text is replaced"
            );
            m.text = format!("[message of {} bytes too large to relay]", m.text.len());
            len = message_len(m);
        }
        lens.push(len);
    }
    // `[` and `]`, and a comma before every element but the first.
    let mut used = 2;
    let mut kept = 0;
    let order: Box<dyn Iterator<Item = &usize>> = if keep_newest {
        Box::new(lens.iter().rev())
    } else {
        Box::new(lens.iter())
    };
    for &len in order {
        let add = len + usize::from(kept > 0);
        if used + add > budget {
            break;
        }
        used += add;
        kept += 1;
    }
    let dropped = messages.len() - kept;
    if dropped == 0 {
        return false;
    }
    if keep_newest {
        messages.drain(..dropped);
    } else {
        messages.truncate(kept);
    }
    true
}

/// Caps a member list to `budget` bytes of JSON array; when cut, the last entry is a marker
/// (`… N more`, never a valid nick: it has spaces). Returns how many were left out.
pub fn fit_names(members: &mut Vec<String>, budget: usize) -> usize {
    let marker_room = 64;
    let total: usize = 2 + members.iter().map(|n| json_str_len(n) + 1).sum::<usize>();
    if total <= budget {
        return 0;
    }
    let mut used = 2 + marker_room;
    let mut kept = 0;
    for n in members.iter() {
        let add = json_str_len(n) + 1;
        if used + add > budget {
            break;
        }
        used += add;
        kept += 1;
    }
    let left = members.len() - kept;
    members.truncate(kept);
    members.push(format!(
        "… {left} more (the list is too long for one frame)"
    ));
    left
}

/// Bytes of one room's JSON object.
fn summary_len(r: &RoomSummary) -> usize {
    // {"name":…,"members":…,"topic":…}
    8 + json_str_len(&r.name) + 11 + r.members.to_string().len() + 9 + json_str_len(&r.topic) + 1
}

/// Caps a room list to `budget` bytes of JSON array; when cut, the last entry is a marker
/// whose name (`…`) is not a room name. Returns how many were left out.
pub fn fit_rooms(rooms: &mut Vec<RoomSummary>, budget: usize) -> usize {
    let marker_room = 160;
    let total: usize = 2 + rooms.iter().map(|r| summary_len(r) + 1).sum::<usize>();
    if total <= budget {
        return 0;
    }
    let mut used = 2 + marker_room;
    let mut kept = 0;
    for r in rooms.iter() {
        let add = summary_len(r) + 1;
        if used + add > budget {
            break;
        }
        used += add;
        kept += 1;
    }
    let left = rooms.len() - kept;
    rooms.truncate(kept);
    rooms.push(RoomSummary {
        name: "…".to_owned(),
        members: 0,
        topic: format!("{left} more rooms not listed (the list is too long for one frame)"),
    });
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_str_len_matches_serde() {
        for s in [
            "",
            "abc",
            "a\"b\\c",
            "\u{1}\u{1f}\n\t",
            "世界",
            "\u{7f}\u{2028}",
        ] {
            let mut buf = BytesMut::new();
            let m = ChatMessage {
                text: s.to_owned(),
                ..ChatMessage::default()
            };
            m.encode_body(&mut buf).unwrap();
            let empty = ChatMessage::default();
            assert_eq!(
                message_len(&m) - message_len(&empty),
                json_str_len(s) - 2,
                "{s:?}"
            );
        }
    }

    #[test]
    fn clip_cuts_at_a_char_boundary() {
        let s = "é".repeat(200);
        let c = clip(&s, 256);
        assert!(c.len() <= 256);
        assert!(c.ends_with('…'));
        assert_eq!(clip("short", 256), "short");
    }

    #[test]
    fn pages_keep_the_newest_that_fit() {
        let mut msgs: Vec<ChatMessage> = (1..=5)
            .map(|seq| ChatMessage {
                seq,
                text: "x".repeat(16 * 1024),
                ..ChatMessage::default()
            })
            .collect();
        assert!(fit_messages(&mut msgs, 60 * 1024, true));
        assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
    }
}
