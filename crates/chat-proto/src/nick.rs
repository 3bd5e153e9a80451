//! Nick and room-name rules, and the identity fold that decides when two names are the same.
//!
//! A chat server that lets `аlice` (Cyrillic `а`) or `alice\u{200B}` join next to `alice` lets
//! anyone impersonate anyone. Two layers stop that:
//!
//! - [`validate_nick`] / [`validate_room`] refuse names that cannot be shown honestly: controls,
//!   bidi and invisible characters, whitespace, unassigned or private-use code points, text that
//!   is not in NFC (so the displayed form is the canonical one), and characters with IRC
//!   meanings (`nick:` completion, `*!?` masks, `,` lists).
//! - [`fold_nick`] / [`fold_room`] give the identity key the server compares for uniqueness:
//!   case, compatibility forms (fullwidth `ａｌｉｃｅ`), invisible characters and look-alikes
//!   from other scripts (the Unicode confusables of UTS #39: Cyrillic, Greek, Armenian,
//!   Cherokee...) all fold away, so `ALICE`, `аlice` and `ａｌｉｃｅ` all fold to `alice`.
//!   ASCII is kept as it is: `b0b`, `bob` and `aIice`, `alice` stay distinct, because folding
//!   `0` to `o` or `I` to `l` would refuse many honest names to stop a look-alike every
//!   terminal font draws apart.
//!
//! Over-folding only refuses a name; under-folding allows an impersonation, so when a
//! character has two look-alikes (Greek capital `Η` looks like `H`, small `η` like `n`) the table
//! maps capitals and small letters separately, before case folding.

use std::borrow::Cow;

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::{decompose_compatible, is_combining_mark, is_public_assigned};
use unicode_normalization::is_nfc;
use unicode_width::UnicodeWidthStr;

use crate::sanitize::{MAX_COMBINING, is_unsafe_char, sanitize_line};

/// The widest a nick may be, in terminal columns.
pub const MAX_NICK_COLUMNS: usize = 32;
/// The longest a nick may be in bytes, however narrow its characters.
pub const MAX_NICK_BYTES: usize = 128;
/// The longest a room name may be in bytes, `#` included.
pub const MAX_ROOM_LEN: usize = 50;

/// Characters that IRC habits give a meaning: `nick: ` completion, `nick!user` and `*?` masks,
/// `,` separated lists.
const FORBIDDEN_PUNCT: [char; 5] = [',', ':', '!', '*', '?'];
/// Prefixes a nick may not start with: `#` marks rooms, `@` marks operators.
const RESERVED_PREFIXES: [char; 2] = ['#', '@'];
/// What every room name starts with.
const ROOM_PREFIX: char = '#';

/// Why a nick or room name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty (a room name that is only `#` counts as empty).
    #[error("name is empty")]
    Empty,
    /// The name takes no columns on screen.
    #[error("name is invisible")]
    Invisible,
    /// The name is wider on screen than allowed.
    #[error("name is {columns} columns wide, at most {max} allowed")]
    TooWide {
        /// Columns the name takes.
        columns: usize,
        /// Most columns allowed.
        max: usize,
    },
    /// The name is longer in bytes than allowed.
    #[error("name is {len} bytes long, at most {max} allowed")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// Most bytes allowed.
        max: usize,
    },
    /// The name contains whitespace.
    #[error("name contains whitespace")]
    Whitespace,
    /// The name contains a character names may not use.
    #[error("name contains the forbidden character U+{:04X}", u32::from(*ch))]
    Forbidden {
        /// The first forbidden character.
        ch: char,
    },
    /// A nick starts with a prefix reserved for rooms (`#`) or operators (`@`).
    #[error("nick may not start with '#' or '@'")]
    ReservedPrefix,
    /// A room name does not start with `#`.
    #[error("room name must start with '#'")]
    BadRoomPrefix,
    /// The name is not in Unicode normalization form C.
    #[error("name is not in unicode nfc form")]
    NotNormalized,
    /// One character carries more combining marks than the display keeps.
    #[error("name stacks more than {max} combining marks on one character")]
    TooManyMarks {
        /// Most combining marks kept per character.
        max: usize,
    },
}

/// Checks that `nick` is a valid nick.
///
/// A nick is 1 to [`MAX_NICK_COLUMNS`] columns and at most [`MAX_NICK_BYTES`] bytes, in NFC,
/// with no whitespace, no control, bidi, invisible, unassigned or private-use character, none
/// of `, : ! * ?` (nor a compatibility form of them), and does not start with `#` or `@`.
pub fn validate_nick(nick: &str) -> Result<(), NameError> {
    if nick.is_empty() {
        return Err(NameError::Empty);
    }
    if nick.len() > MAX_NICK_BYTES {
        return Err(NameError::TooLong {
            len: nick.len(),
            max: MAX_NICK_BYTES,
        });
    }
    if nick.chars().next().is_some_and(|c| {
        compat_chars(c)
            .first()
            .is_some_and(|d| RESERVED_PREFIXES.contains(d))
    }) {
        return Err(NameError::ReservedPrefix);
    }
    check_body(nick)?;
    let columns = nick.width();
    if columns > MAX_NICK_COLUMNS {
        return Err(NameError::TooWide {
            columns,
            max: MAX_NICK_COLUMNS,
        });
    }
    Ok(())
}

/// Checks that `name` is a valid room name.
///
/// A room name is `#` followed by at least one character, 2 to [`MAX_ROOM_LEN`] bytes in all;
/// what follows the `#` obeys the nick character rules (see [`validate_nick`]).
pub fn validate_room(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let Some(rest) = name.strip_prefix(ROOM_PREFIX) else {
        return Err(NameError::BadRoomPrefix);
    };
    if rest.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_ROOM_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_ROOM_LEN,
        });
    }
    check_body(rest)
}

/// The identity key of a nick: two nicks with the same key are the same user.
///
/// Compatibility decomposition (NFKD: fullwidth and other compatibility forms become plain),
/// then look-alikes (UTS #39 confusables for everything outside ASCII, see [`prototype`]), then
/// lowercase, repeated until nothing changes (for what lowercasing exposed), then dropping
/// default-ignorable characters, then NFC. The result is stable: folding it again changes
/// nothing.
pub fn fold_nick(nick: &str) -> String {
    if nick.is_ascii() {
        // Nothing to decompose, map or drop: the common case, on every message's room name.
        return nick.to_ascii_lowercase();
    }
    let mut folded = fold_round(nick);
    for _ in 1..FOLD_ROUNDS {
        let again = fold_round(&folded);
        if again == folded {
            break;
        }
        folded = again;
    }
    folded
        .chars()
        .filter(|&c| !is_default_ignorable(c))
        .nfc()
        .collect()
}

/// The identity key of a room name; the same fold as [`fold_nick`].
pub fn fold_room(name: &str) -> String {
    fold_nick(name)
}

/// The checks nicks and the part of a room name after `#` share.
fn check_body(body: &str) -> Result<(), NameError> {
    for c in body.chars() {
        if c.is_whitespace() {
            return Err(NameError::Whitespace);
        }
        if is_forbidden_char(c) {
            return Err(NameError::Forbidden { ch: c });
        }
        // `¨` decomposes to a space and a mark, `：` to `:`: judge what the fold will see.
        let compat = compat_chars(c);
        if compat
            .iter()
            .any(|d| d.is_whitespace() || FORBIDDEN_PUNCT.contains(d))
        {
            return Err(NameError::Forbidden { ch: c });
        }
    }
    if let Some(first) = body.chars().next().filter(|&c| is_combining_mark(c)) {
        // It would stack onto whatever is drawn before the name.
        return Err(NameError::Forbidden { ch: first });
    }
    if !is_nfc(body) {
        return Err(NameError::NotNormalized);
    }
    if let Cow::Owned(_) = sanitize_line(body) {
        // Every other reason to change it was refused above: only the mark cap is left.
        return Err(NameError::TooManyMarks { max: MAX_COMBINING });
    }
    if body.width() == 0 {
        return Err(NameError::Invisible);
    }
    Ok(())
}

/// The compatibility decomposition of one character.
fn compat_chars(c: char) -> Vec<char> {
    let mut out = Vec::with_capacity(1);
    decompose_compatible(c, |d| out.push(d));
    out
}

/// Characters no name may contain, whitespace aside.
fn is_forbidden_char(c: char) -> bool {
    is_unsafe_char(c)
        || is_default_ignorable(c)
        || is_other_format(c)
        || is_blank_lookalike(c)
        || !is_public_assigned(c)
}

/// `Default_Ignorable_Code_Point`: characters a renderer may draw as nothing.
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

/// Format characters (general category Cf) that are not default-ignorable: prepended
/// concatenation marks and other layout controls that have no place in a name.
fn is_other_format(c: char) -> bool {
    matches!(
        c,
        '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1345F}'
    )
}

/// Letters that draw as blank space without being whitespace.
fn is_blank_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2800}' | '\u{3164}' | '\u{FFA0}' | '\u{115F}' | '\u{1160}'
    )
}

/// How many times [`fold_nick`] repeats look-alike mapping and lowercasing: mapping a small
/// letter can expose a capital prototype and lowercasing can expose a new look-alike; real
/// text settles in two rounds, the bound keeps hostile input cheap.
const FOLD_ROUNDS: usize = 4;

/// One round of the fold: compatibility decomposition, look-alikes, lowercase.
fn fold_round(s: &str) -> String {
    s.nfkd()
        .flat_map(prototype)
        .flat_map(char::to_lowercase)
        .collect()
}

/// The UTS #39 confusable prototype of one character, for characters outside ASCII.
///
/// ASCII is left alone: UTS #39 maps `0` to `O`, `1` and `I` to `l` and `rn` to `m`, look-alikes
/// in proportional fonts that every terminal font draws apart, and folding them would refuse
/// honest names (`b0b`, `ali`) to stop impersonations nobody can make on screen. Letters from
/// other scripts (Cyrillic `а`, Greek `ο`, Armenian `օ`, Cherokee `Ꭺ`...) draw the same as Latin
/// ones in every font, so they fold. UTS #39 maps look-alikes of capital `I` to `l`; since case
/// folding sends `I` to `i`, a capital that looks like `I` folds to `i` too, so that `ALІCE`
/// (Cyrillic `І`) meets `ALICE`.
fn prototype(c: char) -> std::vec::IntoIter<char> {
    if c.is_ascii() {
        return vec![c].into_iter();
    }
    if let Some(latin) = classic_lookalike(c) {
        return vec![latin].into_iter();
    }
    let mut buf = [0; 4];
    let proto: Vec<char> = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
    if proto == ['l'] && c.is_uppercase() {
        return vec!['i'].into_iter();
    }
    proto.into_iter()
}

/// Look-alikes this fold has always mapped, checked before UTS #39, which draws some of them
/// differently (Greek `τ` is a small capital `ᴛ` there, `χ` is no `x`) or maps a capital `I`
/// look-alike to `l`. Capitals and small letters separately, to lowercase Latin letters.
fn classic_lookalike(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic capitals.
        'А' => 'a',
        'В' => 'b',
        'С' => 'c',
        'Е' => 'e',
        'Һ' => 'h',
        'Н' => 'h',
        'І' => 'i',
        'Ј' => 'j',
        'К' => 'k',
        'Ӏ' => 'l',
        'М' => 'm',
        'О' => 'o',
        'Р' => 'p',
        'Ԛ' => 'q',
        'Ѕ' => 's',
        'Т' => 't',
        'Ԝ' => 'w',
        'Х' => 'x',
        'У' | 'Ү' => 'y',
        // Cyrillic small letters.
        'а' => 'a',
        'в' => 'b',
        'с' => 'c',
        'ԁ' => 'd',
        'е' => 'e',
        'һ' | 'н' => 'h',
        'і' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'ӏ' => 'l',
        'м' => 'm',
        'о' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' => 't',
        'ԝ' => 'w',
        'х' => 'x',
        'у' | 'ү' => 'y',
        // Greek capitals.
        'Α' => 'a',
        'Β' => 'b',
        'Ε' => 'e',
        'Η' => 'h',
        'Ι' => 'i',
        'Κ' => 'k',
        'Μ' => 'm',
        'Ν' => 'n',
        'Ο' => 'o',
        'Ρ' => 'p',
        'Τ' => 't',
        'Χ' => 'x',
        'Υ' => 'y',
        'Ζ' => 'z',
        // Greek small letters.
        'α' => 'a',
        'ι' => 'i',
        'κ' => 'k',
        'η' => 'n',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'ν' => 'v',
        'χ' => 'x',
        'γ' => 'y',
        // Latin letters that look like plainer ones.
        'ı' => 'i',
        'ɑ' => 'a',
        'ɡ' => 'g',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_and_international_nicks_are_accepted() {
        let thirty_two = "abcdefghijklmnopqrstuvwxyz_01234";
        assert_eq!(thirty_two.width(), 32);
        let cjk_16 = "漢字漢字漢字漢字漢字漢字漢字漢字";
        assert_eq!(cjk_16.width(), 32);
        for nick in [
            "alice", "bob_42", "李雷", "Zoë", "émile", "a", "o'neil", "x-y", "Ωmega", "café♥",
            thirty_two, cjk_16,
        ] {
            assert_eq!(validate_nick(nick), Ok(()), "{nick}");
        }
    }

    #[test]
    fn empty_nick_is_refused() {
        assert_eq!(validate_nick(""), Err(NameError::Empty));
    }

    #[test]
    fn nick_of_33_columns_is_refused() {
        let nick = "a".repeat(33);
        assert_eq!(
            validate_nick(&nick),
            Err(NameError::TooWide {
                columns: 33,
                max: 32
            })
        );
    }

    #[test]
    fn nick_of_17_cjk_chars_is_refused() {
        let nick = "漢".repeat(17);
        assert_eq!(
            validate_nick(&nick),
            Err(NameError::TooWide {
                columns: 34,
                max: 32
            })
        );
    }

    #[test]
    fn narrow_but_long_nick_is_refused_by_bytes() {
        let nick = "é".repeat(65);
        assert!(matches!(
            validate_nick(&nick),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn whitespace_anywhere_is_refused() {
        for nick in [
            "al ice",
            "alice ",
            " alice",
            "a\tb",
            "a\u{A0}b",
            "a\u{3000}b",
        ] {
            assert_eq!(validate_nick(nick), Err(NameError::Whitespace), "{nick:?}");
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for (nick, ch) in [
            ("alice\u{200B}", '\u{200B}'),
            ("al\u{200D}ice", '\u{200D}'),
            ("\u{FEFF}alice", '\u{FEFF}'),
            ("alice\u{202E}", '\u{202E}'),
            ("a\u{2066}b", '\u{2066}'),
            ("a\u{1b}[31m", '\u{1b}'),
            ("a\u{0}", '\u{0}'),
            ("a\u{9B}", '\u{9B}'),
            ("a\u{AD}b", '\u{AD}'),
            ("x\u{3164}", '\u{3164}'),
            ("x\u{2800}", '\u{2800}'),
            ("a\u{E0041}", '\u{E0041}'),
            ("a\u{FE0F}", '\u{FE0F}'),
            ("a\u{E000}", '\u{E000}'),
            ("a\u{0378}", '\u{0378}'),
        ] {
            assert_eq!(
                validate_nick(nick),
                Err(NameError::Forbidden { ch }),
                "{nick:?}"
            );
        }
    }

    #[test]
    fn irc_punctuation_is_refused() {
        for (nick, ch) in [
            ("a,b", ','),
            ("a:b", ':'),
            ("a!b", '!'),
            ("a*", '*'),
            ("a?", '?'),
            ("a\u{FF1A}b", '\u{FF1A}'),
            ("a\u{A8}", '\u{A8}'),
        ] {
            assert_eq!(
                validate_nick(nick),
                Err(NameError::Forbidden { ch }),
                "{nick:?}"
            );
        }
    }

    #[test]
    fn room_and_operator_prefixes_are_refused() {
        for nick in ["#x", "@op", "\u{FF03}x", "\u{FE6B}op"] {
            assert_eq!(
                validate_nick(nick),
                Err(NameError::ReservedPrefix),
                "{nick}"
            );
        }
    }

    #[test]
    fn decomposed_nick_is_refused() {
        assert_eq!(validate_nick("e\u{301}mile"), Err(NameError::NotNormalized));
    }

    #[test]
    fn leading_combining_mark_is_refused() {
        assert_eq!(
            validate_nick("\u{301}a"),
            Err(NameError::Forbidden { ch: '\u{301}' })
        );
    }

    #[test]
    fn zalgo_nick_is_refused() {
        let nick = format!("x{}", "\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}");
        assert_eq!(
            validate_nick(&nick),
            Err(NameError::TooManyMarks { max: MAX_COMBINING })
        );
    }

    #[test]
    fn zero_width_nick_is_refused() {
        assert_eq!(validate_nick("\u{1161}"), Err(NameError::Invisible));
    }

    #[test]
    fn impersonations_fold_to_the_same_identity() {
        for nick in [
            "alice",
            "Alice",
            "ALICE",
            "\u{430}lice",
            "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
            "alice\u{200B}",
            "\u{410}LICE",
            "\u{391}LICE",
            "al\u{456}ce",
            "al\u{131}ce",
            "AL\u{406}CE",
            "\u{1D41A}lice",
            "\u{251}lice",
            "a\u{2113}ice",
            "al\u{2170}ce",
        ] {
            assert_eq!(fold_nick(nick), "alice", "{nick:?}");
        }
    }

    #[test]
    fn lookalikes_from_other_scripts_fold_through_the_unicode_confusables() {
        // Armenian օ and ս, Cherokee Ꭺ Ꮃ Ꭼ, Lisu ꓮ, Latin ʀ-like small capitals aside: what
        // the old hand table did not know and every font draws like the Latin letter.
        assert_eq!(fold_nick("b\u{585}b"), "bob");
        assert_eq!(fold_nick("\u{57D}ma"), "uma");
        assert_eq!(fold_nick("\u{13AA}\u{13B3}\u{13AC}"), "awe");
        assert_eq!(fold_nick("\u{A4EE}nna"), "anna");
        assert_eq!(fold_nick("\u{2C9F}tto"), "otto");
    }

    #[test]
    fn ascii_lookalikes_stay_apart_because_terminal_fonts_draw_them_apart() {
        assert_ne!(fold_nick("aIice"), fold_nick("alice"));
        assert_ne!(fold_nick("barn"), fold_nick("bam"));
    }

    #[test]
    fn cyrillic_and_greek_lookalike_words_fold_to_latin() {
        assert_eq!(fold_nick("\u{441}\u{43E}\u{440}\u{435}"), "cope");
        assert_eq!(fold_nick("\u{422}\u{41E}\u{41C}"), "tom");
        assert_eq!(fold_nick("\u{397}\u{391}\u{39D}\u{39A}"), "hank");
        assert_eq!(fold_nick("\u{3C4}\u{3B1}\u{3C7}\u{3B9}"), "taxi");
        assert_eq!(fold_nick("\u{3BD}\u{3BF}\u{3C4}"), "vot");
    }

    #[test]
    fn diacritics_survive_the_fold() {
        assert_eq!(fold_nick("Zoë"), "zoë");
        assert_eq!(fold_nick("Z\u{43E}\u{308}"), "zö");
        assert_ne!(fold_nick("zoe"), fold_nick("zoë"));
    }

    #[test]
    fn digits_are_not_folded_into_letters() {
        assert_ne!(fold_nick("b0b"), fold_nick("bob"));
        assert_ne!(fold_nick("a1ice"), fold_nick("alice"));
    }

    #[test]
    fn rooms_are_accepted() {
        for room in ["#rust", "#a", "##meta", "#李雷", "#café"] {
            assert_eq!(validate_room(room), Ok(()), "{room}");
        }
        let longest = format!("#{}", "r".repeat(MAX_ROOM_LEN - 1));
        assert_eq!(validate_room(&longest), Ok(()));
    }

    #[test]
    fn bad_rooms_are_refused() {
        assert_eq!(validate_room(""), Err(NameError::Empty));
        assert_eq!(validate_room("#"), Err(NameError::Empty));
        assert_eq!(validate_room("rust"), Err(NameError::BadRoomPrefix));
        assert_eq!(validate_room("\u{FF03}rust"), Err(NameError::BadRoomPrefix));
        assert_eq!(validate_room("#a b"), Err(NameError::Whitespace));
        assert_eq!(validate_room("#a,b"), Err(NameError::Forbidden { ch: ',' }));
        assert_eq!(
            validate_room("#a\u{1b}"),
            Err(NameError::Forbidden { ch: '\u{1b}' })
        );
        assert_eq!(validate_room("#e\u{301}"), Err(NameError::NotNormalized));
        let too_long = format!("#{}", "r".repeat(MAX_ROOM_LEN));
        assert_eq!(
            validate_room(&too_long),
            Err(NameError::TooLong { len: 51, max: 50 })
        );
    }

    #[test]
    fn room_fold_matches_nick_fold() {
        assert_eq!(fold_room("#Rust"), "#rust");
        assert_eq!(fold_room("#C\u{43E}de"), fold_room("#code"));
        assert_eq!(fold_room("\u{FF03}rust"), "#rust");
    }

    #[test]
    fn forbidden_character_message_names_the_code_point() {
        let err = NameError::Forbidden { ch: '\u{200B}' };
        assert_eq!(
            err.to_string(),
            "name contains the forbidden character U+200B"
        );
    }

    /// Nick-shaped strings drawn from the scripts the fold cares about.
    fn nickish() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            4 => prop::char::range('a', 'z'),
            2 => prop::char::range('A', 'Z'),
            1 => prop::char::range('0', '9'),
            1 => prop::sample::select(vec!['_', '-', '\'', '.', '|', '[', ']']),
            2 => prop::char::range('\u{400}', '\u{4FF}'),
            2 => prop::char::range('\u{370}', '\u{3FF}'),
            1 => prop::char::range('\u{FF01}', '\u{FF5E}'),
            1 => prop::char::range('\u{C0}', '\u{24F}'),
            1 => prop::char::range('\u{300}', '\u{36F}'),
            1 => prop::char::range('\u{1E00}', '\u{1FFF}'),
            1 => prop::char::range('\u{4E00}', '\u{4E80}'),
            1 => prop::char::range('\u{531}', '\u{58F}'),
            1 => prop::char::range('\u{13A0}', '\u{13FF}'),
            1 => prop::char::range('\u{A4D0}', '\u{A4FF}'),
            1 => any::<char>(),
        ];
        prop::collection::vec(ch, 1..20).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn fold_of_a_valid_nick_is_stable_and_plain(nick in nickish()) {
            prop_assume!(validate_nick(&nick).is_ok());
            let folded = fold_nick(&nick);
            prop_assert!(!folded.is_empty());
            prop_assert_eq!(fold_nick(&folded), folded.clone());
            prop_assert!(!folded.chars().any(|c| c.is_ascii_uppercase()));
            prop_assert!(!folded.chars().any(|c| c.is_whitespace() || is_unsafe_char(c)));
            prop_assert_eq!(fold_nick(&nick.to_ascii_uppercase()), folded);
        }

        #[test]
        fn valid_nick_displays_unchanged(nick in nickish()) {
            prop_assume!(validate_nick(&nick).is_ok());
            prop_assert!(matches!(sanitize_line(&nick), Cow::Borrowed(_)));
        }

        #[test]
        fn fold_of_any_string_is_stable(input in any::<String>()) {
            let folded = fold_nick(&input);
            prop_assert_eq!(fold_nick(&folded), folded);
        }

        #[test]
        fn validate_never_panics(input in any::<String>()) {
            let _ = validate_nick(&input);
            let _ = validate_room(&input);
        }
    }
}
