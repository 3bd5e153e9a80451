//! Turning an offered file name (untrusted, chosen by the sender) into a name that is safe to
//! create inside the download directory, and picking one that does not exist yet. Pure: the
//! caller says which names are taken.
//!
//! **Invariant:** [`sanitize_file_name`] returns one non-empty path component: no separator,
//! not `.` or `..`, no leading dot, no control, bidi or invisible character, at most
//! [`MAX_NAME_BYTES`] bytes. Joined to the download directory it stays inside it.

/// Longest sanitized name in bytes, so that `name (999).part` fits a 255-byte file name.
pub const MAX_NAME_BYTES: usize = 200;

/// Longest extension kept whole when a long name is cut.
const MAX_EXT_BYTES: usize = 16;

/// The name used when nothing usable is left.
const FALLBACK: &str = "file";

/// Characters that are never part of a saved name: format controls and bidi overrides
/// (they disguise an extension), and characters Windows and shells treat specially.
fn replaced(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{061C}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | ':'
                | '*'
                | '?'
                | '"'
                | '<'
                | '>'
                | '|'
        )
}

/// A safe file name for `raw`: its last path component (either separator), with unsafe
/// characters replaced by `_`, leading dots and spaces and trailing dots and spaces removed,
/// cut to [`MAX_NAME_BYTES`] at a character boundary (keeping a short extension).
pub fn sanitize_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| if replaced(c) { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let name = cut(trimmed, MAX_NAME_BYTES);
    if name.is_empty() {
        FALLBACK.to_owned()
    } else {
        name
    }
}

/// `name` in at most `max` bytes, cut at a char boundary; a short extension survives the cut.
fn cut(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = split_ext(name);
    let ext = if ext.len() <= MAX_EXT_BYTES { ext } else { "" };
    let room = max - ext.len();
    let mut end = room.min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    let stem = stem[..end].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    format!("{stem}{ext}")
}

/// `notes.txt` → (`notes`, `.txt`); a name without a dot (or only a leading one) has no
/// extension.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(at) if at > 0 => name.split_at(at),
        _ => (name, ""),
    }
}

/// The `n`-th candidate for `name`: itself, then `name (1).ext`, `name (2).ext`, ...
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    let (stem, ext) = split_ext(name);
    format!("{stem} ({n}){ext}")
}

/// Suffix of a file being received.
pub const PART_SUFFIX: &str = ".part";

/// The first candidate for `name` such that neither it nor its `.part` is taken.
pub fn unique_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    (0..)
        .map(|n| numbered(name, n))
        .find(|c| !taken(c) && !taken(&format!("{c}{PART_SUFFIX}")))
        .unwrap_or_else(|| FALLBACK.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::{Component, Path};

    use super::*;

    /// The sanitized name is one normal component, so joining it stays in the directory.
    fn assert_inside(raw: &str) -> String {
        let name = sanitize_file_name(raw);
        let dir = Path::new("/home/bob/Downloads");
        let joined = dir.join(&name);
        assert_eq!(joined.parent(), Some(dir), "{raw:?} → {name:?}");
        let comps: Vec<_> = Path::new(&name).components().collect();
        assert!(
            matches!(comps.as_slice(), [Component::Normal(_)]),
            "{raw:?} → {name:?}"
        );
        assert!(!name.is_empty() && !name.starts_with('.'), "{raw:?}");
        assert!(name.len() <= MAX_NAME_BYTES, "{raw:?}");
        assert!(!name.chars().any(replaced), "{raw:?} → {name:?}");
        name
    }

    #[test]
    fn traversal_keeps_only_the_last_component() {
        assert_eq!(assert_inside("../../etc/passwd"), "passwd");
        assert_eq!(assert_inside("/etc/passwd"), "passwd");
        assert_eq!(assert_inside("C:\\x"), "x");
        assert_eq!(assert_inside("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(assert_inside("C:x"), "C_x");
    }

    #[test]
    fn dots_and_empty_names_become_a_plain_name() {
        for raw in ["", ".", "..", "...", "/", "a/..", "a/.", "   ", "./"] {
            assert_eq!(assert_inside(raw), "file", "{raw:?}");
        }
        assert_eq!(assert_inside(".bashrc"), "bashrc");
        assert_eq!(assert_inside("..hidden"), "hidden");
    }

    #[test]
    fn control_nul_and_bidi_characters_are_replaced() {
        assert_eq!(assert_inside("a\0b.txt"), "a_b.txt");
        assert_eq!(assert_inside("a\x1b[31mred.txt"), "a_[31mred.txt");
        assert_eq!(assert_inside("line\nbreak\r.txt"), "line_break_.txt");
        assert_eq!(assert_inside("\u{7f}del\u{85}.txt"), "_del_.txt");
        // "photo_gpj.exe" shown reversed as "photo_exe.jpg" without the override.
        assert_eq!(assert_inside("photo_\u{202E}gpj.exe"), "photo__gpj.exe");
        assert_eq!(assert_inside("a\u{2066}b\u{200F}c"), "a_b_c");
    }

    #[test]
    fn very_long_names_are_cut_at_a_char_boundary_keeping_the_extension() {
        let name = assert_inside(&format!("{}.txt", "a".repeat(10_000)));
        assert!(name.ends_with(".txt") && name.len() <= MAX_NAME_BYTES);
        let name = assert_inside(&"界".repeat(10_000));
        assert!(name.chars().all(|c| c == '界'));
        let name = assert_inside(&format!("{}.tar.gz", "é".repeat(5_000)));
        assert!(name.ends_with(".gz"), "{name}");
        assert!(assert_inside(&format!("x.{}", "y".repeat(10_000))).len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn unicode_names_survive() {
        assert_eq!(assert_inside("Résumé 履歴書.pdf"), "Résumé 履歴書.pdf");
    }

    #[test]
    fn collisions_get_a_number_before_the_extension() {
        let taken: HashSet<&str> = ["notes.txt", "notes (1).txt.part", "README"].into();
        let is = |n: &str| taken.contains(n);
        assert_eq!(unique_name("notes.txt", is), "notes (2).txt");
        assert_eq!(unique_name("README", is), "README (1)");
        assert_eq!(unique_name("new.txt", is), "new.txt");
        assert_eq!(numbered("archive.tar.gz", 3), "archive.tar (3).gz");
    }
}
