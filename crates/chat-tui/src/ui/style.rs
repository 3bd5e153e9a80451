//! Colours and text styles. Meaning is always carried by a modifier too (bold, reverse,
//! underline, dim), so it survives `NO_COLOR` and monochrome terminals.

use chat_proto::nick::fold_nick;
use ratatui::style::{Color, Modifier, Style};

use crate::app::Theme;

/// FNV-1a, 64 bits: a stable hash, so a nick has the same colour in every run and client.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The style of a nick: a colour from the palette by stable hash; bold when it is ours.
pub fn nick(theme: &Theme, nick: &str, own: bool) -> Style {
    let mut style = Style::default();
    if theme.colors && !theme.nick_palette.is_empty() {
        let len = theme.nick_palette.len() as u64;
        let i = usize::try_from(fnv1a(fold_nick(nick).as_bytes()) % len).unwrap_or(0);
        style = style.fg(theme.nick_palette[i]);
    }
    if own {
        style = style.add_modifier(Modifier::BOLD);
    }
    style
}

/// Timestamps and the column separator.
pub fn dim(theme: &Theme) -> Style {
    colored(
        theme,
        Style::default().add_modifier(Modifier::DIM),
        Color::DarkGray,
    )
}

/// Text of a message that mentions us.
pub fn mention(theme: &Theme) -> Style {
    colored(
        theme,
        Style::default().add_modifier(Modifier::BOLD),
        Color::Yellow,
    )
}

/// Errors and hints.
pub fn error(theme: &Theme) -> Style {
    colored(
        theme,
        Style::default().add_modifier(Modifier::BOLD),
        Color::Red,
    )
}

/// Information lines (joins, topics, answers).
pub fn info(theme: &Theme) -> Style {
    colored(
        theme,
        Style::default().add_modifier(Modifier::DIM),
        Color::Cyan,
    )
}

/// Bars: status bar, topic line, markers.
pub fn bar(theme: &Theme) -> Style {
    if theme.colors {
        Style::default().bg(Color::Blue).fg(Color::White)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

/// Adds a foreground colour when colours are on.
fn colored(theme: &Theme, style: Style, color: Color) -> Style {
    if theme.colors { style.fg(color) } else { style }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_colour_is_stable_and_case_blind() {
        let theme = Theme::default();
        assert_eq!(nick(&theme, "Alice", false), nick(&theme, "alice", false));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn own_nick_is_bold_even_without_colours() {
        let theme = Theme {
            colors: false,
            ..Theme::default()
        };
        let s = nick(&theme, "me", true);
        assert!(s.add_modifier.contains(Modifier::BOLD));
        assert_eq!(s.fg, None);
    }
}
