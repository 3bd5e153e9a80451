//! Decoding `send`, the request behind every chat message, without serde on its usual form.
//!
//! Why: the server decodes one `send` per message, and serde_json's derived visitor plus the
//! nesting pre-scan of [`decode_json`] were a fifth of the server's instructions per message.
//! [`fast`] reads the form clients really send (an object of the four known fields, each once,
//! strings with at most the short escapes) and gives up on anything else: an unknown field, a
//! `\u` escape, a number, a duplicate, a missing field, trailing bytes. What it gives up on goes
//! through [`decode_json`] unchanged, so every refusal keeps serde's exact error, and what it
//! accepts is exactly what serde would have made of it (the tests below hold it to that). An
//! accepted body nests one level deep, so the nesting check could never have refused it.

use bytes::{Bytes, BytesMut};

use super::Send;
use crate::error::{EncodeError, MessageError};
use crate::message::{Body, decode_json};

impl Body for Send {
    fn encode_body(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        // As every other JSON body (see `json_body!`): serde into a Vec, then one copy.
        let json = serde_json::to_vec(self)?;
        dst.extend_from_slice(&json);
        Ok(())
    }

    fn decode_body(kind: u32, body: Bytes) -> Result<Self, MessageError> {
        decode_send(kind, &body)
    }

    fn decode_in_place(kind: u32, body: &[u8]) -> Option<Result<Self, MessageError>> {
        Some(decode_send(kind, body))
    }
}

fn decode_send(kind: u32, body: &[u8]) -> Result<Send, MessageError> {
    if let Some(send) = std::str::from_utf8(body).ok().and_then(fast) {
        return Ok(send);
    }
    decode_json(kind, body)
}

/// The `send` in `json` if it has the usual form (see the module docs); `None` leaves the
/// decision, and the error, to serde.
pub(crate) fn fast(json: &str) -> Option<Send> {
    let mut p = Cursor {
        s: json,
        b: json.as_bytes(),
        i: 0,
    };
    let (mut id, mut to, mut text, mut action) = (None, None, None, None);
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if p.eat(b'}').is_none() {
        loop {
            let key = p.field()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            // A duplicate field is a serde error: give up (`replace` finds the first value).
            match key {
                Field::Id => {
                    let v = if p.literal(b"null") {
                        None
                    } else {
                        Some(p.string()?)
                    };
                    if id.replace(v).is_some() {
                        return None;
                    }
                }
                Field::To => {
                    if to.replace(p.string()?).is_some() {
                        return None;
                    }
                }
                Field::Text => {
                    if text.replace(p.string()?).is_some() {
                        return None;
                    }
                }
                Field::Action => {
                    let v = if p.literal(b"true") {
                        true
                    } else if p.literal(b"false") {
                        false
                    } else {
                        return None;
                    };
                    if action.replace(v).is_some() {
                        return None;
                    }
                }
            }
            p.ws();
            if p.eat(b',').is_some() {
                p.ws();
                continue;
            }
            p.eat(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    Some(Send {
        id: id.flatten(),
        to: to?,
        text: text?,
        action: action.unwrap_or(false),
    })
}

/// The fields of a `send`.
enum Field {
    Id,
    To,
    Text,
    Action,
}

/// A position in the body being read.
struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Whether a byte ends the plain run of a JSON string: its closing quote, an escape, or a
/// control character (which JSON forbids raw in a string).
fn special(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// The length of the run of plain bytes at the start of `b`.
///
/// Eight bytes at a time (the rest of the body follows a string, so a chunk rarely fits in
/// it): the classic word tricks mark each byte below 0x20, or equal to `"` or `\`, in its high
/// bit. A mark can be wrong only above a right one (a borrow runs upwards), so the lowest
/// mark, the first byte in memory, is exact.
fn plain_len(b: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut n = 0;
    while let Some(word) = b.get(n..n + 8) {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let quote = has_zero(x ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
        let marks = (control | quote | backslash) & HIGH;
        if marks != 0 {
            return n + (marks.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + b[n..]
        .iter()
        .position(|&c| special(c))
        .unwrap_or(b.len() - n)
}

impl<'a> Cursor<'a> {
    /// Skips JSON whitespace (exactly the four bytes serde_json skips).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// Takes `c` if it is next.
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// Takes `lit` if it is next.
    fn literal(&mut self, lit: &[u8]) -> bool {
        let hit = self.b[self.i..].starts_with(lit);
        if hit {
            self.i += lit.len();
        }
        hit
    }

    /// One of the four field names, quotes and all; `None` for any other name, or one spelled
    /// with an escape (serde would unescape it first).
    fn field(&mut self) -> Option<Field> {
        let rest = &self.b[self.i..];
        let (field, len) = if rest.starts_with(b"\"id\"") {
            (Field::Id, 4)
        } else if rest.starts_with(b"\"to\"") {
            (Field::To, 4)
        } else if rest.starts_with(b"\"text\"") {
            (Field::Text, 6)
        } else if rest.starts_with(b"\"action\"") {
            (Field::Action, 8)
        } else {
            return None;
        };
        self.i += len;
        Some(field)
    }

    /// A string value; only the short escapes are taken (`\u` gives up).
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut start = self.i;
        self.i += plain_len(&self.b[start..]);
        if self.eat(b'"').is_some() {
            // The usual case: no escape at all. The cut is at ASCII bytes, so within the str.
            return self.s.get(start..self.i - 1).map(str::to_owned);
        }
        let mut out = String::new();
        loop {
            out.push_str(self.s.get(start..self.i)?);
            match self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    let c = match self.b.get(self.i + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return None,
                    };
                    out.push(c);
                    self.i += 2;
                }
                // A raw control character: serde refuses it.
                _ => return None,
            }
            start = self.i;
            self.i += plain_len(&self.b[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kind;

    /// What the serde path makes of `json`.
    fn serde(json: &str) -> Result<Send, MessageError> {
        decode_json(kind::SEND, json.as_bytes())
    }

    /// The fast path may give up, but what it accepts serde accepts as the same `send`.
    fn agree(json: &str) -> Result<Option<Send>, TestCaseError> {
        let fast = fast(json);
        if let Some(f) = &fast {
            let s = serde(json);
            prop_assert!(
                s.as_ref().ok() == Some(f),
                "{json:?}: fast {f:?}, serde {s:?}"
            );
        }
        Ok(fast)
    }

    #[test]
    fn the_usual_forms_take_the_fast_path() {
        let usual = [
            r##"{"id":"42","to":"#bench","text":"~cb1abc..."}"##,
            r##"{"to":"#r","text":"hi"}"##,
            r##" { "id" : null , "to" : "bob" , "text" : "a\"b\\c\/d\n\t\r\b\f" , "action" : true } "##,
            r##"{"text":"李雷 😀","action":false,"to":"#r","id":""}"##,
            "{\"to\":\"#r\",\"text\":\"x\"}\n",
        ];
        for json in usual {
            assert!(agree(json).unwrap().is_some(), "{json}");
        }
        let sends = [
            Send {
                id: Some("c1".into()),
                to: "#lobby".into(),
                text: "quote \" backslash \\ newline \n tab \t".into(),
                action: true,
            },
            Send::default(),
        ];
        for s in sends {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(fast(&json), Some(s), "{json}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let other = [
            r##"{"to":"#r"}"##,
            r##"{"to":"#r","text":"a","text":"b"}"##,
            r##"{"id":null,"id":"x","to":"#r","text":"a"}"##,
            r##"{"to":"#r","text":"a","x":1}"##,
            r##"{"to":"#r","text":"\u0041"}"##,
            r##"{"to":"#r","text":"a",}"##,
            r##"{"to":"#r","text":"a"} x"##,
            r##"{"to":"#r","text":"a"}{}"##,
            r##"{"to":"#r","text":null}"##,
            r##"{"to":"#r","text":"a","action":1}"##,
            r##"{"to":"#r","text":"a","action":truex}"##,
            r##"{"t\u006f":"#r","text":"a"}"##,
            "{\"to\":\"#r\",\"text\":\"raw \u{1} control\"}",
            "\u{a0}{\"to\":\"#r\",\"text\":\"a\"}",
            r##"["#r","a"]"##,
            r##"{"to":"#r","text":"a"#,
            r##"{"to":"#r","text":"a\"#,
            r##"{"to":"#r","text":"a\x"}"##,
            "",
            "{",
        ];
        for json in other {
            assert_eq!(agree(json).unwrap(), None, "{json}");
        }
    }

    /// Pieces of `send` bodies, right and wrong, for the token soup below.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "\n",
        "\t",
        "\u{a0}",
        "\"id\"",
        "\"to\"",
        "\"text\"",
        "\"action\"",
        "\"x\"",
        "\"#r\"",
        "\"a b\"",
        "\"\"",
        "\"\\n\"",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"\\/\"",
        "\"\\u0041\"",
        "\"\\ud800\"",
        "\"\\q\"",
        "\"\u{1}\"",
        "\"é😀\"",
        "null",
        "true",
        "false",
        "tru",
        "1",
        "-0.5",
        "\"",
        "\\",
    ];

    proptest! {
        #[test]
        fn plain_len_finds_the_first_special_byte(
            b in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x21, 0x1fu8..=0x23, 0x5bu8..=0x5d, any::<u8>()],
                0..40,
            ),
            plain_prefix in "[ -!#-\\[\\]-~]{0,20}",
        ) {
            let mut b2 = plain_prefix.into_bytes();
            b2.extend_from_slice(&b);
            for b in [&b, &b2] {
                let naive = b.iter().position(|&c| special(c)).unwrap_or(b.len());
                prop_assert_eq!(plain_len(b), naive, "{:?}", b);
            }
        }

        #[test]
        fn token_soup_is_decoded_as_serde_would(
            picks in proptest::collection::vec(0..PIECES.len(), 0..24)
        ) {
            let json: String = picks.iter().map(|&i| PIECES[i]).collect();
            agree(&json)?;
        }

        #[test]
        fn well_formed_sends_are_decoded_as_serde_would(
            id in proptest::option::of("\\PC{0,8}"),
            to in "[#a-z]{0,8}",
            text in "\\PC*|[\\x00-\\x7f]*",
            action: bool,
            spaced: bool,
        ) {
            let s = Send { id, to, text, action };
            let json = if spaced {
                serde_json::to_string_pretty(&s).unwrap()
            } else {
                serde_json::to_string(&s).unwrap()
            };
            let fast = agree(&json)?;
            // Without a control character but the short-escape ones, serde's output is
            // always the usual form.
            let short = |t: &str| t.chars().all(|c| c >= ' ' || "\n\t\r\u{8}\u{c}".contains(c));
            if short(&s.text) && s.id.as_deref().is_none_or(short) {
                prop_assert_eq!(fast, Some(s));
            }
        }

        #[test]
        fn any_text_in_a_send_is_decoded_as_serde_would(json in "\\{[ -~]{0,40}\\}") {
            agree(&json)?;
        }
    }
}
