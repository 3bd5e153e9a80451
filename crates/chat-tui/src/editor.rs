//! Input editing beyond single keys: inserting pasted text, per-buffer input history, and Tab
//! completion of nicks and `/commands`.

use chat_proto::nick::fold_nick;
use tui_input::Input;

use crate::app::{App, BufferKind, Completion, LineBody};
use crate::command::COMMANDS;

/// Most entries kept in one buffer's input history.
const MAX_HISTORY: usize = 200;

/// Replaces the input with `value`, the cursor at char index `cursor`.
fn set_input(app: &mut App, value: String, cursor: usize) {
    app.input = Input::new(value).with_cursor(cursor);
}

/// Inserts `text` at the cursor, literally.
pub fn insert_str(app: &mut App, text: &str) {
    let value = app.input.value();
    let cursor = app.input.cursor();
    let byte = value
        .char_indices()
        .nth(cursor)
        .map_or(value.len(), |(b, _)| b);
    let mut new = String::with_capacity(value.len() + text.len());
    new.push_str(&value[..byte]);
    new.push_str(text);
    new.push_str(&value[byte..]);
    set_input(app, new, cursor + text.chars().count());
}

/// Records a submitted input in the active buffer's history.
pub fn remember(app: &mut App, text: &str) {
    let h = &mut app.active_buffer_mut().history;
    h.pos = None;
    h.draft.clear();
    if h.entries.last().map(String::as_str) != Some(text) {
        h.entries.push(text.to_owned());
        if h.entries.len() > MAX_HISTORY {
            h.entries.remove(0);
        }
    }
}

/// Up: the previous history entry (the text being typed is kept for Down).
pub fn history_prev(app: &mut App) {
    let current = app.input.value().to_owned();
    let h = &mut app.active_buffer_mut().history;
    if h.entries.is_empty() {
        return;
    }
    let pos = match h.pos {
        None => {
            h.draft = current;
            h.entries.len() - 1
        }
        Some(0) => return,
        Some(p) => p - 1,
    };
    h.pos = Some(pos);
    let text = h.entries[pos].clone();
    let len = text.chars().count();
    set_input(app, text, len);
}

/// Down: the next history entry, and finally the text that was being typed.
pub fn history_next(app: &mut App) {
    let h = &mut app.active_buffer_mut().history;
    let Some(p) = h.pos else { return };
    let text = if p + 1 < h.entries.len() {
        h.pos = Some(p + 1);
        h.entries[p + 1].clone()
    } else {
        h.pos = None;
        std::mem::take(&mut h.draft)
    };
    let len = text.chars().count();
    set_input(app, text, len);
}

/// Nicks worth completing in the active buffer: recent speakers first, then members.
fn nick_candidates(app: &App) -> Vec<String> {
    let buf = app.active_buffer();
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !app.is_me(n) && !out.iter().any(|o| fold_nick(o) == fold_nick(n)) {
            out.push(n.to_owned());
        }
    };
    if let BufferKind::Dm(nick) = &buf.kind {
        push(nick);
    }
    for line in buf.lines.iter().rev().take(200) {
        if let LineBody::Chat {
            from, own: false, ..
        } = &line.body
        {
            push(from);
        }
    }
    let mut members = buf.members.clone();
    members.sort_by_key(|m| m.to_lowercase());
    for m in &members {
        push(m);
    }
    out
}

/// Tab: completes the word before the cursor, or cycles to the next candidate.
pub fn complete(app: &mut App) {
    let chars: Vec<char> = app.input.value().chars().collect();
    let cursor = app.input.cursor();
    if let Some(c) = app.completion.take() {
        if c.candidates.is_empty() {
            return;
        }
        let index = (c.index + 1) % c.candidates.len();
        let next = &c.candidates[index];
        let mut new: String = chars[..c.start].iter().collect();
        new.push_str(next);
        let end = (c.start + c.inserted).min(chars.len());
        new.extend(&chars[end..]);
        let len = next.chars().count();
        set_input(app, new, c.start + len);
        app.completion = Some(Completion {
            index,
            inserted: len,
            ..c
        });
        return;
    }
    let start = chars[..cursor]
        .iter()
        .rposition(|c| c.is_whitespace())
        .map_or(0, |p| p + 1);
    let word: String = chars[start..cursor].iter().collect();
    if word.is_empty() {
        return;
    }
    let lower = word.to_lowercase();
    let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
        COMMANDS
            .iter()
            .filter(|(name, _)| name.starts_with(&lower))
            .map(|(name, _)| format!("{name} "))
            .collect()
    } else {
        let suffix = if start == 0 { ": " } else { " " };
        nick_candidates(app)
            .into_iter()
            .filter(|n| n.to_lowercase().starts_with(&lower))
            .map(|n| format!("{n}{suffix}"))
            .collect()
    };
    let Some(first) = candidates.first() else {
        return;
    };
    let mut new: String = chars[..start].iter().collect();
    new.push_str(first);
    new.extend(&chars[cursor..]);
    let len = first.chars().count();
    set_input(app, new, start + len);
    app.completion = Some(Completion {
        candidates,
        index: 0,
        start,
        inserted: len,
    });
}
