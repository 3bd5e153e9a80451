//! Keys to actions: a pure function, so the bindings are tested without a terminal.
//!
//! The bindings (also listed by `/help`):
//! - Editing: readline keys. Ctrl-A/E or Home/End start/end of line, Ctrl-B/F or Left/Right,
//!   Alt-B/F or Ctrl-Left/Right by word, Ctrl-W kill word back, Alt-D kill word forward,
//!   Ctrl-U kill to start, Ctrl-K kill to end, Ctrl-Y yank, Backspace/Delete.
//! - Enter sends; Alt-Enter, Shift-Enter (where reported) or Ctrl-J inserts a newline.
//! - Up/Down: input history of the buffer. Tab: complete a nick or a `/command`.
//! - PgUp/PgDn scroll; Home/End scroll to top/bottom when the input is empty (Ctrl-Home/End
//!   always).
//! - Alt-1..9 go to buffer 1..9, Ctrl-N/Ctrl-P next/previous buffer, Alt-A next buffer with
//!   activity (mentions first).
//! - F2 or Alt-M toggles the member list. Ctrl-L redraws.
//! - Ctrl-C clears the input, or quits when it is empty; Ctrl-D quits on an empty input.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::InputMode;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Insert a character.
    Insert(char),
    /// Insert a newline into the input.
    Newline,
    /// Send the input.
    Submit,
    /// Delete the grapheme before the cursor.
    Backspace,
    /// Delete the grapheme under the cursor.
    Delete,
    /// Cursor one grapheme left.
    Left,
    /// Cursor one grapheme right.
    Right,
    /// Cursor one word left.
    WordLeft,
    /// Cursor one word right.
    WordRight,
    /// Start of input, or top of the scrollback when the input is empty.
    Home,
    /// End of input, or bottom of the scrollback when the input is empty.
    End,
    /// Cursor to the start of the input.
    LineStart,
    /// Cursor to the end of the input.
    LineEnd,
    /// Kill the word before the cursor.
    KillWordBack,
    /// Kill the word after the cursor.
    KillWordForward,
    /// Kill from the start to the cursor.
    KillToStart,
    /// Kill from the cursor to the end.
    KillToEnd,
    /// Insert the last killed text.
    Yank,
    /// Older input history entry.
    HistoryPrev,
    /// Newer input history entry.
    HistoryNext,
    /// Complete the word before the cursor.
    Complete,
    /// Scroll up a page.
    PageUp,
    /// Scroll down a page.
    PageDown,
    /// Scroll up by a few rows (mouse wheel).
    ScrollUp,
    /// Scroll down by a few rows (mouse wheel).
    ScrollDown,
    /// Scroll to the oldest loaded line.
    ScrollTop,
    /// Scroll to the newest line.
    ScrollBottom,
    /// Next buffer.
    NextBuffer,
    /// Previous buffer.
    PrevBuffer,
    /// Buffer by number (1-based, as shown in the room list).
    GoToBuffer(usize),
    /// Next buffer with activity, mentions first.
    NextActivity,
    /// Show or hide the member list.
    ToggleMembers,
    /// Repaint the whole screen.
    Redraw,
    /// Ctrl-C: clear a non-empty input, quit on an empty one.
    Interrupt,
    /// Ctrl-D: quit on an empty input (delete forward otherwise).
    Eof,
    /// Answer yes to a question.
    Confirm,
    /// Answer no to a question / leave a mode.
    Cancel,
}

/// Maps a key to an action, given what keys mean now. Key releases map to nothing.
pub fn map_key(key: KeyEvent, mode: &InputMode) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);

    if matches!(mode, InputMode::TrustCertificate | InputMode::Password(_)) {
        // The answer is typed in full, like ssh's "(yes/no)": a stray `y` pins nothing.
        return match key.code {
            KeyCode::Char('c' | 'd') if ctrl => Some(Action::Cancel),
            KeyCode::Char(c) if !ctrl && !alt => Some(Action::Insert(c)),
            KeyCode::Backspace => Some(Action::Backspace),
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Esc => Some(Action::Cancel),
            _ => None,
        };
    }
    if *mode == InputMode::ConfirmSend {
        return match key.code {
            KeyCode::Char('y' | 'Y') | KeyCode::Enter => Some(Action::Confirm),
            KeyCode::Char('c') if ctrl => Some(Action::Cancel),
            KeyCode::Char('n' | 'N') | KeyCode::Esc => Some(Action::Cancel),
            _ => None,
        };
    }

    use Action::*;
    let action = match key.code {
        KeyCode::Enter if alt || shift => Newline,
        KeyCode::Enter => Submit,
        KeyCode::Char('j') if ctrl => Newline,
        KeyCode::Char('a') if ctrl => LineStart,
        KeyCode::Char('e') if ctrl => LineEnd,
        KeyCode::Char('b') if ctrl => Left,
        KeyCode::Char('f') if ctrl => Right,
        KeyCode::Char('w') if ctrl => KillWordBack,
        KeyCode::Char('u') if ctrl => KillToStart,
        KeyCode::Char('k') if ctrl => KillToEnd,
        KeyCode::Char('y') if ctrl => Yank,
        KeyCode::Char('n') if ctrl => NextBuffer,
        KeyCode::Char('p') if ctrl => PrevBuffer,
        KeyCode::Char('l') if ctrl => Redraw,
        KeyCode::Char('c') if ctrl => Interrupt,
        KeyCode::Char('d') if ctrl => Eof,
        KeyCode::Char('h') if ctrl => Backspace,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char('b') if alt => WordLeft,
        KeyCode::Char('f') if alt => WordRight,
        KeyCode::Char('d') if alt => KillWordForward,
        KeyCode::Char('a') if alt => NextActivity,
        KeyCode::Char('m') if alt => ToggleMembers,
        KeyCode::Char(c @ '1'..='9') if alt => GoToBuffer(c as usize - '0' as usize),
        KeyCode::Char(_) if alt => return None,
        KeyCode::Char(c) => Insert(c),
        KeyCode::Backspace if ctrl || alt => KillWordBack,
        KeyCode::Backspace => Backspace,
        KeyCode::Delete => Delete,
        KeyCode::Left if ctrl || alt => WordLeft,
        KeyCode::Right if ctrl || alt => WordRight,
        KeyCode::Left => Left,
        KeyCode::Right => Right,
        KeyCode::Home if ctrl => ScrollTop,
        KeyCode::End if ctrl => ScrollBottom,
        KeyCode::Home => Home,
        KeyCode::End => End,
        KeyCode::Up => HistoryPrev,
        KeyCode::Down => HistoryNext,
        KeyCode::PageUp => PageUp,
        KeyCode::PageDown => PageDown,
        KeyCode::Tab => Complete,
        KeyCode::F(2) => ToggleMembers,
        KeyCode::Esc => Cancel,
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn readline_keys_map_to_editing_actions() {
        let m = InputMode::Normal;
        let c = KeyModifiers::CONTROL;
        assert_eq!(
            map_key(key(KeyCode::Char('a'), c), &m),
            Some(Action::LineStart)
        );
        assert_eq!(
            map_key(key(KeyCode::Char('w'), c), &m),
            Some(Action::KillWordBack)
        );
        assert_eq!(map_key(key(KeyCode::Char('y'), c), &m), Some(Action::Yank));
        assert_eq!(
            map_key(key(KeyCode::Char('b'), KeyModifiers::ALT), &m),
            Some(Action::WordLeft)
        );
    }

    #[test]
    fn alt_enter_and_shift_enter_insert_a_newline() {
        let m = InputMode::Normal;
        assert_eq!(
            map_key(key(KeyCode::Enter, KeyModifiers::ALT), &m),
            Some(Action::Newline)
        );
        assert_eq!(
            map_key(key(KeyCode::Enter, KeyModifiers::SHIFT), &m),
            Some(Action::Newline)
        );
        assert_eq!(
            map_key(key(KeyCode::Enter, KeyModifiers::NONE), &m),
            Some(Action::Submit)
        );
    }

    #[test]
    fn alt_digits_select_buffers() {
        let m = InputMode::Normal;
        assert_eq!(
            map_key(key(KeyCode::Char('3'), KeyModifiers::ALT), &m),
            Some(Action::GoToBuffer(3))
        );
    }

    #[test]
    fn the_trust_question_takes_a_typed_answer() {
        let m = InputMode::TrustCertificate;
        assert_eq!(
            map_key(KeyEvent::from(KeyCode::Char('y')), &m),
            Some(Action::Insert('y'))
        );
        assert_eq!(
            map_key(KeyEvent::from(KeyCode::Enter), &m),
            Some(Action::Submit)
        );
        assert_eq!(
            map_key(KeyEvent::from(KeyCode::Esc), &m),
            Some(Action::Cancel)
        );
        assert_eq!(
            map_key(key(KeyCode::Char('c'), KeyModifiers::CONTROL), &m),
            Some(Action::Cancel)
        );
    }

    #[test]
    fn confirm_mode_only_knows_yes_and_no() {
        let m = InputMode::ConfirmSend;
        assert_eq!(
            map_key(key(KeyCode::Char('y'), KeyModifiers::NONE), &m),
            Some(Action::Confirm)
        );
        assert_eq!(
            map_key(key(KeyCode::Esc, KeyModifiers::NONE), &m),
            Some(Action::Cancel)
        );
        assert_eq!(
            map_key(key(KeyCode::Char('x'), KeyModifiers::NONE), &m),
            None
        );
    }

    #[test]
    fn key_release_is_ignored() {
        let mut k = key(KeyCode::Char('x'), KeyModifiers::NONE);
        k.kind = KeyEventKind::Release;
        assert_eq!(map_key(k, &InputMode::Normal), None);
    }
}
