//! Making untrusted text safe to put on a terminal.
//!
//! Every nick, topic and message body comes from another user, and a terminal obeys what it
//! prints: `ESC [2J` clears the screen, `ESC ]52;` writes the clipboard, `ESC ]8;` plants a
//! hyperlink, a right-to-left override reorders what follows, and ten thousand combining marks
//! turn one cell into a smear across the screen. The terminal client runs everything through
//! this module before drawing it, and the server does the same before it writes other users'
//! text to raw-text (netcat / telnet) clients.
//!
//! # What changes
//! - C0 controls (U+0000–U+001F) become their Control Pictures symbol (U+2400 + code, so ESC
//!   becomes `␛` and NUL `␀`), and DEL becomes `␡` (U+2421). C1 controls (U+0080–U+009F),
//!   bidi controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the line and
//!   paragraph separators (U+2028, U+2029) become `�` (U+FFFD).
//! - Escape sequences: every terminal sequence (CSI, OSC, DCS, PM, APC, SOS, and the
//!   single-character ones) needs an ESC or a C1 introducer, so replacing the introducer
//!   neutralises the whole sequence. The rest of it is kept as inert text, with any control
//!   inside it replaced too, so a reader can see that someone sent `␛[2J`. No parser is needed,
//!   and none can be fooled by a sequence it does not know.
//! - Invisible format characters that hide or split content are **dropped**, not replaced:
//!   soft hyphen U+00AD, U+180E, U+200B, U+200C, U+2060–U+2065, U+206A–U+206F, U+FEFF,
//!   U+FFF9–U+FFFB, U+1BCA0–U+1BCA3, U+1D173–U+1D17A and the tag characters U+E0001 and
//!   U+E0020–U+E007F (which can smuggle hidden ASCII; the England, Scotland and Wales flags
//!   therefore show as a plain black flag). A placeholder would turn every pasted soft hyphen
//!   into noise, and dropping them cannot hide anything.
//! - The zero width joiner U+200D is kept only where it joins the next character into the
//!   same grapheme cluster (emoji ZWJ sequences such as 👩‍💻, Indic half forms); a joiner that
//!   joins nothing is dropped.
//! - Each grapheme cluster keeps at most [`MAX_COMBINING`] combining characters (combining
//!   marks, joiners and other zero-width extenders); the rest are dropped.
//! - [`sanitize_line`] shows `\n` as `␊`, `\r` as `␍` and a tab as one space.
//!   [`sanitize_text`] keeps `\n` as a line break, turns `\r\n` into `\n`, shows a lone `\r`
//!   as `␍`, and expands a tab to four spaces (fixed, not to a tab stop: the column a line
//!   starts at is the renderer's business).
//!
//! Both functions are idempotent and return the input borrowed when nothing changes.

use std::borrow::Cow;

use unicode_normalization::char::is_combining_mark;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthChar;

/// The most combining characters one grapheme cluster keeps; the rest are dropped.
pub const MAX_COMBINING: usize = 4;

/// Shown instead of C1 controls, bidi controls and line/paragraph separators.
const REPLACEMENT: char = '\u{FFFD}';
/// Shown instead of DEL (SYMBOL FOR DELETE).
const DEL_PICTURE: char = '\u{2421}';
/// The zero width joiner, kept only where it joins.
const ZWJ: char = '\u{200D}';
/// What a tab becomes in a message body.
const TEXT_TAB: &str = "    ";

/// Makes text safe for a single-line display: nicks, room names, topics, error text.
///
/// Line breaks are shown as `␊` / `␍` symbols and a tab becomes one space. Returns the input
/// borrowed when nothing changes.
pub fn sanitize_line(input: &str) -> Cow<'_, str> {
    sanitize(input, Mode::Line)
}

/// Makes a message body safe for display, keeping `\n` as a line break.
///
/// `\r\n` becomes `\n`, a lone `\r` is shown as `␍` and a tab becomes four spaces; everything
/// else follows [`sanitize_line`]. The output may contain `\n`, which the caller must turn
/// into a line break rather than print into a cell.
pub fn sanitize_text(input: &str) -> Cow<'_, str> {
    sanitize(input, Mode::Text)
}

/// Whether `c` must never reach a terminal cell as it is.
///
/// True for C0 controls (including `\n` and `\t`), DEL, C1 controls, bidi controls, the line
/// and paragraph separators, and the invisible format characters this module drops. False for
/// the zero width joiner, which is kept where it joins a grapheme cluster.
pub fn is_unsafe_char(c: char) -> bool {
    is_control(c) || is_bidi_control(c) || is_line_separator(c) || is_invisible_format(c)
}

/// Which line-break rules apply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One line: line breaks are shown as symbols.
    Line,
    /// A message body: `\n` stays a line break.
    Text,
}

/// What one input character becomes.
enum Replacement {
    /// Kept as it is.
    Keep,
    /// Removed.
    Drop,
    /// Replaced by one character.
    Char(char),
    /// Replaced by a string.
    Str(&'static str),
}

fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{2060}'..='\u{2065}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Decides what `c` becomes; `next` is the character after it, for `\r\n`.
fn replacement(c: char, next: Option<char>, mode: Mode) -> Replacement {
    match c {
        '\n' if mode == Mode::Text => Replacement::Keep,
        '\r' if mode == Mode::Text && next == Some('\n') => Replacement::Drop,
        '\t' => match mode {
            Mode::Line => Replacement::Char(' '),
            Mode::Text => Replacement::Str(TEXT_TAB),
        },
        '\u{0}'..='\u{1F}' => {
            // The Control Pictures block mirrors C0 one to one from U+2400.
            Replacement::Char(char::from_u32(0x2400 + u32::from(c)).unwrap_or(REPLACEMENT))
        }
        '\u{7F}' => Replacement::Char(DEL_PICTURE),
        _ if is_invisible_format(c) => Replacement::Drop,
        _ if is_unsafe_char(c) => Replacement::Char(REPLACEMENT),
        _ => Replacement::Keep,
    }
}

fn sanitize(input: &str, mode: Mode) -> Cow<'_, str> {
    let (replaced, may_need_capping) = replace_unsafe(input, mode);
    if !may_need_capping {
        return replaced;
    }
    match cap_combining(&replaced) {
        Some(capped) => Cow::Owned(capped),
        None => replaced,
    }
}

/// First stage: replaces or drops unsafe characters. Borrowed when there are none.
///
/// The same scan tells whether the second stage has anything to look at: with no joiner and
/// at most [`MAX_COMBINING`] zero-width characters in the whole string, no cluster can break a
/// rule, so common text is checked in one pass.
fn replace_unsafe(input: &str, mode: Mode) -> (Cow<'_, str>, bool) {
    let mut chars = input.char_indices().peekable();
    let mut out: Option<String> = None;
    let mut extenders = 0;
    let mut has_joiner = false;
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let action = replacement(c, next, mode);
        if let Replacement::Keep = action {
            if !c.is_ascii() {
                has_joiner |= c == ZWJ;
                extenders += usize::from(is_extender(c, false));
            }
            if let Some(out) = out.as_mut() {
                out.push(c);
            }
            continue;
        }
        let out = out.get_or_insert_with(|| {
            let mut s = String::with_capacity(input.len() + 16);
            s.push_str(&input[..i]);
            s
        });
        match action {
            Replacement::Keep | Replacement::Drop => {}
            Replacement::Char(r) => out.push(r),
            Replacement::Str(r) => out.push_str(r),
        }
    }
    let may_need_capping = has_joiner || extenders > MAX_COMBINING;
    match out {
        Some(out) => (Cow::Owned(out), may_need_capping),
        None => (Cow::Borrowed(input), may_need_capping),
    }
}

/// Whether `c` counts against [`MAX_COMBINING`]; `first` says it opens its grapheme cluster.
fn is_extender(c: char, first: bool) -> bool {
    is_combining_mark(c) || c == ZWJ || (!first && c.width() == Some(0))
}

/// Second stage: enforces [`MAX_COMBINING`] and drops joiners that join nothing.
///
/// Returns `None` when nothing changes. Dropping a character can move a cluster boundary (a
/// dropped virama no longer links two consonants, and the joiner before the second one is left
/// joining nothing), so the pass repeats until nothing changes: the result is a fixed point,
/// which is what keeps sanitizing idempotent. Every repeat removes at least one character, so
/// the loop ends.
fn cap_combining(s: &str) -> Option<String> {
    let mut capped: Option<String> = None;
    loop {
        let current = capped.as_deref().unwrap_or(s);
        match cap_once(current) {
            Some(next) => capped = Some(next),
            None => return capped,
        }
    }
}

/// One pass of [`cap_combining`] over the grapheme clusters of `s`.
fn cap_once(s: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for (start, cluster) in s.grapheme_indices(true) {
        let mut kept = 0;
        let mut chars = cluster.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let keep = if c == ZWJ {
                // A joiner must join: the next character in this cluster must be a base.
                let joins = chars.peek().is_some_and(|&(_, n)| !is_extender(n, false));
                joins && kept < MAX_COMBINING
            } else if is_extender(c, i == 0) {
                kept < MAX_COMBINING
            } else {
                true
            };
            if keep {
                if is_extender(c, i == 0) {
                    kept += 1;
                }
                if let Some(out) = out.as_mut() {
                    out.push(c);
                }
            } else if out.is_none() {
                let mut fresh = String::with_capacity(s.len());
                fresh.push_str(&s[..start + i]);
                out = Some(fresh);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ESC: &str = "\u{1b}";

    /// Hostile payloads: (name, input).
    fn hostile_payloads() -> Vec<(&'static str, String)> {
        let zalgo = format!("a{}", "\u{301}".repeat(10_000));
        let zwj_spam = format!("x{}y", "\u{200D}".repeat(10_000));
        let many_params = format!("{ESC}[{}m", "1;".repeat(5_000));
        vec![
            ("csi clear screen", format!("{ESC}[2J")),
            ("csi cursor home", format!("{ESC}[H")),
            ("csi device status report", format!("{ESC}[6n")),
            ("csi many params", many_params),
            ("csi private mode alt screen", format!("{ESC}[?1049h")),
            ("csi sgr hidden text", format!("{ESC}[8msecret{ESC}[0m")),
            ("csi erase line then cr", format!("safe\r{ESC}[2Kfake")),
            ("osc 0 title with bel", format!("{ESC}]0;pwned\u{7}")),
            ("osc 2 title with st", format!("{ESC}]2;pwned{ESC}\\")),
            (
                "osc 8 hyperlink",
                format!("{ESC}]8;;https://evil.example{ESC}\\click{ESC}]8;;{ESC}\\"),
            ),
            ("osc 52 clipboard", format!("{ESC}]52;c;cm0gLXJmIH4=\u{7}")),
            ("osc 4 palette", format!("{ESC}]4;1;rgb:ff/00/00{ESC}\\")),
            ("dcs", format!("{ESC}P1$r0m{ESC}\\")),
            ("dcs sixel", format!("{ESC}Pq#0;2;0;0;0#0~~{ESC}\\")),
            ("apc", format!("{ESC}_Gf=100;AAAA{ESC}\\")),
            ("pm", format!("{ESC}^privacy{ESC}\\")),
            ("sos", format!("{ESC}Xstart of string{ESC}\\")),
            ("esc c full reset", format!("{ESC}c")),
            ("esc 7 save cursor", format!("{ESC}7")),
            ("esc charset g0 line drawing", format!("{ESC}(0")),
            ("c1 csi", "\u{9B}2J".to_owned()),
            ("c1 osc", "\u{9D}0;title\u{9C}".to_owned()),
            ("c1 dcs", "\u{90}q\u{9C}".to_owned()),
            ("c1 nel", "line\u{85}next".to_owned()),
            ("c1 apc pm sos", "\u{9F}a\u{9E}b\u{98}c".to_owned()),
            ("bel", "ding\u{7}\u{7}\u{7}".to_owned()),
            (
                "backspace overwrite",
                "admin\u{8}\u{8}\u{8}\u{8}\u{8}guest".to_owned(),
            ),
            (
                "carriage return overwrite",
                "I owe you $100\rI owe you $1".to_owned(),
            ),
            ("lone esc at end", format!("bye{ESC}")),
            ("esc esc", format!("{ESC}{ESC}[2J")),
            ("nul", "nu\u{0}ll".to_owned()),
            ("del", "de\u{7F}l".to_owned()),
            ("vertical tab", "a\u{B}b".to_owned()),
            ("form feed", "a\u{C}b".to_owned()),
            ("shift out and in", "\u{E}x\u{F}".to_owned()),
            ("every c0", (0u8..0x20).map(char::from).collect()),
            ("every c1", ('\u{80}'..='\u{9F}').collect()),
            ("rlo filename", "invoice\u{202E}fdp.exe".to_owned()),
            ("lro", "\u{202D}abc".to_owned()),
            ("pdf", "abc\u{202C}".to_owned()),
            ("lre rle", "\u{202A}x\u{202B}y".to_owned()),
            ("isolates", "\u{2066}a\u{2067}b\u{2068}c\u{2069}".to_owned()),
            ("lrm rlm alm", "\u{200E}\u{200F}\u{061C}".to_owned()),
            ("zalgo 10000 marks", zalgo),
            ("zwj spam", zwj_spam),
            ("zwsp spam", "a\u{200B}\u{200B}\u{200B}b".to_owned()),
            ("bom and word joiner", "\u{FEFF}a\u{2060}b".to_owned()),
            ("soft hyphen", "pay\u{AD}pal".to_owned()),
            ("mongolian vowel separator", "a\u{180E}b".to_owned()),
            (
                "tag smuggling",
                "hi\u{E0001}\u{E0068}\u{E0069}\u{E007F}".to_owned(),
            ),
            ("line separator", "a\u{2028}b\u{2029}c".to_owned()),
            (
                "interlinear annotation",
                "\u{FFF9}a\u{FFFA}b\u{FFFB}".to_owned(),
            ),
            ("cjk with csi", format!("你好{ESC}[31m世界")),
            ("emoji with osc", format!("👩‍💻{ESC}]0;x\u{7}🎉")),
            (
                "hangul jamo spam",
                format!("\u{1100}{}", "\u{1161}".repeat(1_000)),
            ),
            (
                "marks on esc picture",
                format!("{ESC}{}", "\u{308}".repeat(50)),
            ),
            ("crlf injection", "ok\r\nPRIVMSG #x :spoof\r\n".to_owned()),
            ("tab", "a\tb".to_owned()),
        ]
    }

    fn assert_safe(name: &str, out: &str, allow_newline: bool) {
        for c in out.chars() {
            let allowed = allow_newline && c == '\n';
            assert!(
                allowed || !is_unsafe_char(c),
                "{name}: unsafe char U+{:04X} in output {out:?}",
                u32::from(c)
            );
        }
    }

    fn assert_capped(name: &str, out: &str) {
        for g in out.graphemes(true) {
            let extenders = g
                .chars()
                .enumerate()
                .filter(|&(i, c)| is_extender(c, i == 0))
                .count();
            assert!(
                extenders <= MAX_COMBINING,
                "{name}: cluster {g:?} not capped"
            );
        }
    }

    #[test]
    fn hostile_payloads_come_out_safe_as_a_line() {
        let payloads = hostile_payloads();
        assert!(payloads.len() >= 50);
        for (name, input) in &payloads {
            let out = sanitize_line(input);
            assert_safe(name, &out, false);
            assert_capped(name, &out);
            assert!(!out.contains(ESC), "{name}: ESC survived");
        }
    }

    #[test]
    fn hostile_payloads_come_out_safe_as_text() {
        for (name, input) in &hostile_payloads() {
            let out = sanitize_text(input);
            assert_safe(name, &out, true);
            assert_capped(name, &out);
            assert!(!out.contains('\r'), "{name}: CR survived");
        }
    }

    #[test]
    fn hostile_payloads_are_idempotent() {
        for (name, input) in &hostile_payloads() {
            let once = sanitize_line(input);
            assert_eq!(sanitize_line(&once), once, "{name}: line");
            let once = sanitize_text(input);
            assert_eq!(sanitize_text(&once), once, "{name}: text");
        }
    }

    #[test]
    fn csi_clear_screen_becomes_visible() {
        assert_eq!(sanitize_line("\u{1b}[2J"), "␛[2J");
    }

    #[test]
    fn csi_device_status_report_becomes_visible() {
        assert_eq!(sanitize_line("\u{1b}[6n"), "␛[6n");
    }

    #[test]
    fn osc_title_with_bel_shows_both_controls() {
        assert_eq!(sanitize_line("\u{1b}]0;pwned\u{7}"), "␛]0;pwned␇");
    }

    #[test]
    fn osc_hyperlink_with_string_terminator_is_inert() {
        let input = "\u{1b}]8;;https://e.example\u{1b}\\click\u{1b}]8;;\u{1b}\\";
        assert_eq!(
            sanitize_line(input),
            "␛]8;;https://e.example␛\\click␛]8;;␛\\"
        );
    }

    #[test]
    fn c1_csi_becomes_replacement_character() {
        assert_eq!(sanitize_line("\u{9B}2J"), "\u{FFFD}2J");
    }

    #[test]
    fn nul_bel_del_become_control_pictures() {
        assert_eq!(sanitize_line("\u{0}\u{7}\u{7F}"), "␀␇␡");
    }

    #[test]
    fn lone_esc_at_end_becomes_visible() {
        assert_eq!(sanitize_line("bye\u{1b}"), "bye␛");
    }

    #[test]
    fn bidi_override_becomes_replacement_character() {
        assert_eq!(
            sanitize_line("invoice\u{202E}fdp.exe"),
            "invoice\u{FFFD}fdp.exe"
        );
    }

    #[test]
    fn invisible_format_characters_are_dropped() {
        assert_eq!(sanitize_line("pay\u{AD}pa\u{200B}l\u{FEFF}"), "paypal");
    }

    #[test]
    fn zalgo_keeps_only_max_combining_marks() {
        let input = format!("a{}b", "\u{301}".repeat(10_000));
        let expected = format!("a{}b", "\u{301}".repeat(MAX_COMBINING));
        assert_eq!(sanitize_line(&input), expected);
    }

    #[test]
    fn zwj_spam_is_dropped() {
        let input = format!("x{}y", "\u{200D}".repeat(10_000));
        assert_eq!(sanitize_line(&input), "xy");
    }

    #[test]
    fn cjk_and_emoji_survive_borrowed() {
        let input = "你好, 世界 👩‍💻 👨‍👩‍👧‍👦 🇫🇷 👍🏽 ❤️ Zoë e\u{301}";
        assert!(matches!(sanitize_line(input), Cow::Borrowed(s) if s == input));
        assert!(matches!(sanitize_text(input), Cow::Borrowed(s) if s == input));
    }

    #[test]
    fn cjk_and_emoji_survive_next_to_escapes() {
        let input = "你好\u{1b}[31m👩‍💻";
        assert_eq!(sanitize_line(input), "你好␛[31m👩‍💻");
    }

    #[test]
    fn line_shows_line_breaks_as_symbols() {
        assert_eq!(sanitize_line("a\nb\r\nc\rd\te"), "a␊b␍␊c␍d e");
    }

    #[test]
    fn text_keeps_newlines_and_folds_crlf() {
        assert_eq!(sanitize_text("a\nb\r\nc\rd\te"), "a\nb\nc␍d    e");
    }

    #[test]
    fn text_keeps_plain_multiline_borrowed() {
        let input = "line one\nline two\n";
        assert!(matches!(sanitize_text(input), Cow::Borrowed(_)));
    }

    #[test]
    fn joiner_before_a_mark_is_dropped() {
        assert_eq!(sanitize_line("😀\u{200D}\u{301}😀"), "😀\u{301}😀");
    }

    #[test]
    fn long_extender_chains_stay_capped_and_idempotent() {
        let unit = "😀\u{301}\u{301}\u{301}\u{200D}\u{301}";
        let input = format!("{unit}{unit}{unit}😀\u{301}\u{301}\u{301}\u{301}");
        let out = sanitize_line(&input);
        assert_capped("chain", &out);
        assert_eq!(sanitize_line(&out), out);
    }

    #[test]
    fn is_unsafe_char_covers_the_documented_sets() {
        for c in [
            '\0', '\n', '\t', '\u{1b}', '\u{7F}', '\u{85}', '\u{9B}', '\u{202E}',
        ] {
            assert!(is_unsafe_char(c), "U+{:04X}", u32::from(c));
        }
        for c in ['a', ' ', '␛', '\u{FFFD}', '你', '👩', '\u{200D}', '\u{301}'] {
            assert!(!is_unsafe_char(c), "U+{:04X}", u32::from(c));
        }
    }

    /// Strings biased towards the characters this module exists for.
    fn hostile_string() -> impl Strategy<Value = String> {
        let hostile_char = prop_oneof![
            4 => prop::char::range('\u{0}', '\u{1F}'),
            2 => Just('\u{1b}'),
            2 => prop::char::range('\u{7F}', '\u{9F}'),
            2 => prop::sample::select(vec![
                '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}',
                '\u{2069}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{AD}',
                '\u{2028}', '\u{E0041}',
            ]),
            3 => prop::char::range('\u{300}', '\u{36F}'),
            2 => Just('\u{200D}'),
            2 => prop::sample::select(vec!['😀', '👩', '💻', '🇫', '🇷', '🏽', '\u{FE0F}', '\u{1161}']),
            4 => prop::char::range(' ', '~'),
            1 => any::<char>(),
        ];
        prop::collection::vec(hostile_char, 0..48).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn any_string_comes_out_safe_and_idempotent(input in any::<String>()) {
            let line = sanitize_line(&input);
            prop_assert!(line.chars().all(|c| !is_unsafe_char(c)));
            prop_assert_eq!(sanitize_line(&line), line.clone());
            let text = sanitize_text(&input);
            prop_assert!(text.chars().all(|c| c == '\n' || !is_unsafe_char(c)));
            prop_assert_eq!(sanitize_text(&text), text.clone());
        }

        #[test]
        fn hostile_string_comes_out_safe_capped_and_idempotent(input in hostile_string()) {
            let line = sanitize_line(&input);
            prop_assert!(line.chars().all(|c| !is_unsafe_char(c)));
            assert_capped("line", &line);
            prop_assert_eq!(sanitize_line(&line), line.clone());
            let text = sanitize_text(&input);
            prop_assert!(text.chars().all(|c| c == '\n' || !is_unsafe_char(c)));
            assert_capped("text", &text);
            prop_assert_eq!(sanitize_text(&text), text.clone());
        }

        #[test]
        fn printable_ascii_is_borrowed_unchanged(input in "[ -~]*") {
            prop_assert!(matches!(sanitize_line(&input), Cow::Borrowed(s) if s == input));
            prop_assert!(matches!(sanitize_text(&input), Cow::Borrowed(s) if s == input));
        }
    }
}
