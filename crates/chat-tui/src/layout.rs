//! Geometry shared by drawing and scrolling: where the panes go, and how text wraps.
//!
//! Widths are display columns measured per grapheme cluster, the same way ratatui measures
//! them when it fills cells, so wrapped CJK and emoji text stays aligned.

use ratatui::layout::Rect;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::app::{App, InputMode};

/// Below this many columns the room list and member list are hidden.
pub const NARROW: u16 = 60;
/// Width of the room list.
pub const ROOMS_WIDTH: u16 = 16;
/// Width of the member list.
pub const MEMBERS_WIDTH: u16 = 16;
/// Most rows the input grows to.
pub const MAX_INPUT_ROWS: u16 = 5;
/// Most transfer gauges shown at once.
pub const MAX_GAUGE_ROWS: u16 = 3;
/// Widest the nick column gets; longer nicks are cut with `…`.
pub const MAX_NICK_COLUMN: usize = 12;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// Room list, when wide enough.
    pub rooms: Option<Rect>,
    /// Topic line above the timeline.
    pub topic: Rect,
    /// The timeline.
    pub timeline: Rect,
    /// Member list, when shown and wide enough.
    pub members: Option<Rect>,
    /// One row per running file transfer, below the timeline.
    pub transfers: Option<Rect>,
    /// Status bar.
    pub status: Rect,
    /// Input.
    pub input: Rect,
}

/// Splits `area` into panes for `app` (the input height depends on what is typed).
pub fn panes(app: &App, area: Rect) -> Panes {
    let input_rows = input_rows(app, area.width).min(MAX_INPUT_ROWS);
    let input_rows = input_rows.min(area.height.saturating_sub(2)).max(1);
    let main_h = area.height.saturating_sub(input_rows + 1);
    let input = Rect::new(area.x, area.y + main_h + 1, area.width, input_rows);
    let status = Rect::new(area.x, area.y + main_h, area.width, 1.min(area.height));
    let wide = area.width >= NARROW;
    let mut x = area.x;
    let mut width = area.width;
    let rooms = if wide {
        let r = Rect::new(x, area.y, ROOMS_WIDTH, main_h);
        x += ROOMS_WIDTH;
        width -= ROOMS_WIDTH;
        Some(r)
    } else {
        None
    };
    let members = if wide && app.show_members && app.active_buffer().kind.target().is_some() {
        let buf = app.active_buffer();
        let has_members = !buf.members.is_empty() || buf.member_count.is_some();
        if has_members && width > MEMBERS_WIDTH + 20 {
            width -= MEMBERS_WIDTH;
            Some(Rect::new(x + width, area.y, MEMBERS_WIDTH, main_h))
        } else {
            None
        }
    } else {
        None
    };
    let topic = Rect::new(x, area.y, width, 1.min(main_h));
    let mut timeline = Rect::new(x, area.y + topic.height, width, main_h - topic.height);
    let gauges = u16::try_from(
        app.transfers
            .iter()
            .filter(|t| t.state.shows_gauge())
            .count(),
    )
    .unwrap_or(u16::MAX)
    .min(MAX_GAUGE_ROWS);
    let transfers = if gauges > 0 && timeline.height > gauges + 2 {
        timeline.height -= gauges;
        Some(Rect::new(x, timeline.y + timeline.height, width, gauges))
    } else {
        None
    };
    Panes {
        rooms,
        topic,
        timeline,
        members,
        transfers,
        status,
        input,
    }
}

/// The panes for the terminal size the app last saw.
pub fn current_panes(app: &App) -> Panes {
    panes(app, Rect::new(0, 0, app.size.0, app.size.1))
}

/// Rows the input needs at `width` (before capping).
pub fn input_rows(app: &App, width: u16) -> u16 {
    if app.mode != InputMode::Normal {
        return 1;
    }
    let text_width = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = app
        .input
        .value()
        .split('\n')
        .map(|l| wrap_hard_line(&crate::ui::input::visible(l), text_width).len())
        .sum();
    u16::try_from(rows).unwrap_or(u16::MAX)
}

/// Display width of one grapheme cluster, as ratatui counts it when it fills cells.
pub fn grapheme_width(g: &str) -> usize {
    if g.len() == 1 {
        1
    } else {
        g.width()
            + g.chars()
                .filter(|c| matches!(c, '\u{FF9E}' | '\u{FF9F}'))
                .count()
    }
}

/// Display width of a string, as ratatui counts it.
pub fn text_width(s: &str) -> usize {
    s.graphemes(true).map(grapheme_width).sum()
}

/// Wraps text to `width` columns: `\n` breaks lines, words move to the next row when they do
/// not fit, and a word wider than a row is split between grapheme clusters.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    text.split('\n')
        .flat_map(|line| wrap_hard_line(line, width))
        .collect()
}

/// Wraps one line without `\n`. Always returns at least one (maybe empty) row.
pub fn wrap_hard_line(line: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut row_w = 0;
    for word in line.split_word_bounds() {
        let w = text_width(word);
        if row_w + w <= width {
            row.push_str(word);
            row_w += w;
            continue;
        }
        if word.chars().all(char::is_whitespace) {
            // Whitespace at a break is dropped rather than carried to the next row.
            rows.push(std::mem::take(&mut row));
            row_w = 0;
            continue;
        }
        if w <= width && row_w > 0 {
            rows.push(std::mem::take(&mut row));
            row.push_str(word);
            row_w = w;
            continue;
        }
        for g in word.graphemes(true) {
            let gw = grapheme_width(g);
            if row_w + gw > width && row_w > 0 {
                rows.push(std::mem::take(&mut row));
                row_w = 0;
            }
            row.push_str(g);
            row_w += gw;
        }
    }
    rows.push(row);
    rows
}

/// Cuts `s` to at most `width` columns, ending with `…` when something was cut.
pub fn truncate(s: &str, width: usize) -> String {
    if text_width(s) <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut w = 0;
    for g in s.graphemes(true) {
        let gw = grapheme_width(g);
        if w + gw + 1 > width {
            break;
        }
        out.push_str(g);
        w += gw;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_between_words() {
        assert_eq!(wrap("hello big world", 9), vec!["hello big", "world"]);
    }

    #[test]
    fn wrap_splits_long_words_between_graphemes() {
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn wrap_counts_cjk_as_two_columns() {
        let rows = wrap("漢字漢字漢字", 5);
        assert_eq!(rows, vec!["漢字", "漢字", "漢字"]);
        for r in rows {
            assert!(text_width(&r) <= 5);
        }
    }

    #[test]
    fn wrap_keeps_emoji_zwj_sequences_whole() {
        let rows = wrap("👩‍💻👩‍💻👩‍💻", 4);
        assert_eq!(rows, vec!["👩‍💻👩‍💻", "👩‍💻"]);
    }

    #[test]
    fn wrap_keeps_newlines_as_rows() {
        assert_eq!(wrap("a\n\nb", 10), vec!["a", "", "b"]);
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abcdefgh", 5), "abcd…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
