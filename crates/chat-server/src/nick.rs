//! Nick and room-name rules (PROTOCOL.md section 11), and the identity fold for uniqueness.
//!
//! `chat_proto::nick` is meant to own these rules but is still a placeholder, so the server
//! carries them here with the same names (`validate_nick`, `fold_nick`); when the protocol
//! crate gains them, this module shrinks to a re-export.
//!
//! Two names are the same identity when their [`fold_nick`] is equal, so `Alice`, `ALICE`,
//! fullwidth `ａｌｉｃｅ` and `аlice` (Cyrillic `а`) are one nick, and `#Rust` and `#rust` one
//! room.

use unicode_normalization::UnicodeNormalization;
use unicode_width::UnicodeWidthStr;

/// Widest nick in display columns (East Asian wide characters count 2).
pub const MAX_NICK_COLUMNS: usize = 32;
/// Longest nick in bytes: bounds the zero-width characters a nick may carry.
pub const MAX_NICK_BYTES: usize = 128;
/// Longest room name in bytes, `#` included.
pub const MAX_ROOM_BYTES: usize = 50;

/// Why a nick or room name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing visible: no characters, or only zero-width ones.
    #[error("name is empty")]
    Empty,
    /// Wider than [`MAX_NICK_COLUMNS`].
    #[error("name is wider than {max} columns")]
    TooWide {
        /// The limit.
        max: usize,
    },
    /// Longer than the byte limit.
    #[error("name is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Contains a space or other whitespace.
    #[error("name contains whitespace")]
    Whitespace,
    /// Contains a control, format, invisible or bidi character.
    #[error("name contains an invisible or control character (U+{0:04X})")]
    Invisible(u32),
    /// Contains one of `,` `:` `!` `*` `?`.
    #[error("name contains the reserved character {0:?}")]
    Reserved(char),
    /// A nick starting with `#` or `@`.
    #[error("nick must not start with {0:?}")]
    BadStart(char),
    /// A room name not starting with `#`.
    #[error("room name must start with '#'")]
    NotARoom,
    /// Not in Unicode NFC form.
    #[error("name is not in unicode nfc form")]
    NotNfc,
}

/// Checks a nick against the rules; the nick is used as given when it passes.
pub fn validate_nick(nick: &str) -> Result<(), NameError> {
    if let Some(c) = nick.chars().next().filter(|c| matches!(c, '#' | '@')) {
        return Err(NameError::BadStart(c));
    }
    validate_chars(nick, MAX_NICK_BYTES, MAX_NICK_COLUMNS)
}

/// The identity of a nick: equal folds mean the same user.
///
/// NFKC, lowercase, NFKC again, Cyrillic and Greek look-alikes mapped to Latin letters, and
/// default-ignorable characters removed.
pub fn fold_nick(nick: &str) -> String {
    let lowered: String = nick.nfkc().collect::<String>().to_lowercase();
    lowered
        .nfkc()
        .filter(|&c| !is_default_ignorable(c))
        .map(lookalike)
        .collect()
}

/// Checks a room name (`#` then 1 to 49 bytes under the nick character rules).
pub fn validate_room(room: &str) -> Result<(), NameError> {
    let Some(rest) = room.strip_prefix('#') else {
        return Err(NameError::NotARoom);
    };
    validate_chars(rest, MAX_ROOM_BYTES - 1, MAX_ROOM_BYTES)
}

/// The identity of a room name: `#` and the fold of the rest.
pub fn fold_room(room: &str) -> String {
    fold_nick(room)
}

fn validate_chars(name: &str, max_bytes: usize, max_columns: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max_bytes {
        return Err(NameError::TooLong { max: max_bytes });
    }
    for c in name.chars() {
        if c.is_whitespace() {
            return Err(NameError::Whitespace);
        }
        if chat_proto::sanitize::is_unsafe_char(c) || is_default_ignorable(c) || is_blank(c) {
            return Err(NameError::Invisible(u32::from(c)));
        }
        if matches!(c, ',' | ':' | '!' | '*' | '?') {
            return Err(NameError::Reserved(c));
        }
    }
    if !unicode_normalization::is_nfc(name) {
        return Err(NameError::NotNfc);
    }
    match name.width() {
        0 => Err(NameError::Empty),
        w if w > max_columns => Err(NameError::TooWide { max: max_columns }),
        _ => Ok(()),
    }
}

/// Unicode default-ignorable code points: invisible wherever they appear.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Visible-width characters that draw nothing.
fn is_blank(c: char) -> bool {
    matches!(c, '\u{2800}' | '\u{3000}')
}

/// Maps common Cyrillic and Greek look-alikes (already lowercased) to Latin letters.
fn lookalike(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' | 'ӏ' => 'i',
        'ј' | 'ϳ' => 'j',
        'κ' | 'к' => 'k',
        'м' => 'm',
        'η' | 'п' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonations_fold_to_the_same_identity() {
        let alice = fold_nick("alice");
        for nick in ["Alice", "ALICE", "ａｌｉｃｅ", "аlice", "ΑLICE"] {
            assert_eq!(fold_nick(nick), alice, "{nick}");
        }
        assert_ne!(fold_nick("alicia"), alice);
    }

    #[test]
    fn invisible_and_spaced_nicks_are_invalid() {
        for nick in [
            "",
            "alice ",
            " alice",
            "al ice",
            "alice\u{200b}",
            "\u{200b}",
            "alice\u{202e}",
            "a\tb",
            "a\u{1b}[2J",
            "#alice",
            "@alice",
            "a,b",
            "a:b",
            "\u{3164}",
            "e\u{301}",
        ] {
            assert!(validate_nick(nick).is_err(), "{nick:?}");
        }
    }

    #[test]
    fn nick_width_counts_columns_not_bytes() {
        assert!(validate_nick("李雷").is_ok());
        assert!(validate_nick(&"a".repeat(32)).is_ok());
        assert_eq!(
            validate_nick(&"a".repeat(33)),
            Err(NameError::TooWide { max: 32 })
        );
        assert!(validate_nick(&"李".repeat(16)).is_ok());
        assert!(validate_nick(&"李".repeat(17)).is_err());
        assert!(
            validate_nick("ａｌｉｃｅ").is_ok(),
            "valid alone, taken by fold"
        );
    }

    #[test]
    fn room_names_need_a_hash_and_fold_like_nicks() {
        assert!(validate_room("#rust").is_ok());
        assert_eq!(validate_room("rust"), Err(NameError::NotARoom));
        assert_eq!(validate_room("#"), Err(NameError::Empty));
        assert!(validate_room("#a b").is_err());
        assert!(validate_room(&format!("#{}", "a".repeat(49))).is_ok());
        assert!(validate_room(&format!("#{}", "a".repeat(50))).is_err());
        assert_eq!(fold_room("#Rust"), fold_room("#rust"));
    }
}
