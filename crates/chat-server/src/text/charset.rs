//! A text connection's charset: its bytes to Rust strings and back, with encoding_rs.
//!
//! Every connection starts with the server's default (`--text-encoding`, UTF-8 unless told
//! otherwise) and may switch with `/charset`. Decoding uses one streaming [`Decoder`] per line:
//! a piece that ends without a line ending (a chunk client went quiet) is decoded with
//! `last = false`, so a character cut in half by the silence is finished by the next piece
//! instead of turning into two replacement characters.
//!
//! Detection: while a connection still has the UTF-8 default and nobody chose, the first line
//! with a non-ASCII byte decides. If it is not valid UTF-8 but is valid GB18030, the connection
//! switches to GBK (encoding_rs decodes GBK and GB18030 alike; GBK's encoder writes only the
//! two-byte forms a legacy Windows client can show) and the session says so.
//!
//! Encoding never writes `&#...;`: encoding_rs's replacing encoder produces numeric character
//! references for characters the charset lacks, so [`Charset::encode_line`] uses the encoder
//! without replacement and writes `?` for each such character itself.

use encoding_rs::{Decoder, DecoderResult, EncoderResult, Encoding, GBK, UTF_8};

/// Labels Windows users know that the WHATWG standard does not list.
const ALIASES: [(&str, &str); 5] = [
    ("cp936", "gbk"),
    ("cp950", "big5"),
    ("cp932", "shift_jis"),
    ("cp949", "euc-kr"),
    ("cp65001", "utf-8"),
];

/// The charset for `label` (`gbk`, `gb18030`, `big5`, `shift_jis`, `utf-8`, `latin1`, ...).
///
/// Only charsets in which ASCII is ASCII are accepted: commands, line endings and telnet
/// commands are read as ASCII bytes before decoding, which UTF-16 and ISO-2022-JP break.
pub fn parse_charset(label: &str) -> Result<&'static Encoding, String> {
    let label = label.trim();
    let lower = label.to_ascii_lowercase();
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower.as_str(), |(_, name)| name);
    match Encoding::for_label(name.as_bytes()) {
        Some(enc) if enc.is_ascii_compatible() => Ok(enc),
        Some(enc) => Err(format!(
            "{} cannot be used for text connections (ASCII must stay ASCII)",
            enc.name()
        )),
        None => Err(format!(
            "unknown charset {label:?} (try utf-8, gbk, gb18030, big5, shift_jis, euc-kr, latin1)"
        )),
    }
}

/// Whether `bytes` is well formed in `encoding`; unless `last`, it may end inside a character.
fn is_valid(encoding: &'static Encoding, bytes: &[u8], last: bool) -> bool {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let room = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    let mut text = String::with_capacity(room);
    let (result, _) = decoder.decode_to_string_without_replacement(bytes, &mut text, last);
    matches!(result, DecoderResult::InputEmpty)
}

/// What [`Charset::decode`] made of a piece of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text (malformed bytes become U+FFFD).
    pub text: String,
    /// Set when detection switched the connection to this charset just now.
    pub switched: Option<&'static Encoding>,
}

/// One connection's charset and decoder state.
pub struct Charset {
    encoding: &'static Encoding,
    /// Decodes the current line; replaced at every line end.
    decoder: Decoder,
    /// The decoder holds no part of a character: it was fed only ASCII since it was made.
    fresh: bool,
    /// Detection may still switch the charset.
    detecting: bool,
}

impl std::fmt::Debug for Charset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charset")
            .field("encoding", &self.encoding.name())
            .field("detecting", &self.detecting)
            .finish_non_exhaustive()
    }
}

impl Charset {
    /// A connection's charset, starting from the server default; detection is on only when the
    /// default is UTF-8.
    pub fn new(default: &'static Encoding) -> Self {
        Charset {
            encoding: default,
            decoder: default.new_decoder_without_bom_handling(),
            fresh: true,
            detecting: default == UTF_8,
        }
    }

    /// The charset in use.
    pub fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    /// Switches to `encoding` (the user chose: detection stops). Bytes of an unfinished
    /// character are dropped.
    pub fn set(&mut self, encoding: &'static Encoding) {
        self.encoding = encoding;
        self.decoder = encoding.new_decoder_without_bom_handling();
        self.fresh = true;
        self.detecting = false;
    }

    /// Decodes a piece of a line. `line_end` says the line ended after it; otherwise bytes of an
    /// unfinished character wait for the next piece.
    pub fn decode(&mut self, bytes: &[u8], line_end: bool) -> Decoded {
        let mut switched = None;
        if self.detecting && self.fresh && !bytes.is_ascii() {
            self.detecting = false;
            if !is_valid(UTF_8, bytes, line_end) && is_valid(GBK, bytes, line_end) {
                self.set(GBK);
                switched = Some(GBK);
            }
        }
        // ASCII never leaves half a character waiting in the decoder.
        self.fresh = self.fresh && bytes.is_ascii();
        let mut text = String::new();
        let mut rest = bytes;
        loop {
            let room = self
                .decoder
                .max_utf8_buffer_length(rest.len())
                .unwrap_or(rest.len().saturating_mul(3))
                .max(16);
            text.reserve(room);
            let (result, read, _) = self.decoder.decode_to_string(rest, &mut text, line_end);
            rest = &rest[read..];
            if let encoding_rs::CoderResult::InputEmpty = result {
                break;
            }
        }
        if line_end {
            self.decoder = self.encoding.new_decoder_without_bom_handling();
            self.fresh = true;
        }
        Decoded { text, switched }
    }

    /// Appends `line` in this charset and a CR LF to `out`; a character the charset cannot
    /// represent becomes `?`.
    pub fn encode_line(&self, line: &str, out: &mut Vec<u8>) {
        if self.encoding == UTF_8 {
            out.extend_from_slice(line.as_bytes());
        } else {
            let mut encoder = self.encoding.new_encoder();
            let mut rest = line;
            loop {
                let room = encoder
                    .max_buffer_length_from_utf8_without_replacement(rest.len())
                    .unwrap_or(rest.len().saturating_mul(4))
                    .max(16);
                out.reserve(room);
                let (result, read) =
                    encoder.encode_from_utf8_to_vec_without_replacement(rest, out, true);
                rest = &rest[read..];
                match result {
                    EncoderResult::InputEmpty => break,
                    EncoderResult::OutputFull => {}
                    EncoderResult::Unmappable(_) => out.push(b'?'),
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use encoding_rs::{BIG5, GB18030, SHIFT_JIS};

    use super::*;

    fn gbk(s: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = GBK.encode(s);
        assert!(!unmappable);
        bytes.into_owned()
    }

    #[test]
    fn labels_and_aliases_resolve_and_non_ascii_charsets_are_refused() {
        assert_eq!(parse_charset("GBK"), Ok(GBK));
        assert_eq!(parse_charset("cp936"), Ok(GBK));
        assert_eq!(parse_charset(" gb18030 "), Ok(GB18030));
        assert_eq!(parse_charset("big5"), Ok(BIG5));
        assert_eq!(parse_charset("sjis"), Ok(SHIFT_JIS));
        assert_eq!(parse_charset("utf8"), Ok(UTF_8));
        assert!(parse_charset("utf-16le").is_err());
        assert!(parse_charset("iso-2022-jp").is_err());
        assert!(parse_charset("klingon").is_err());
    }

    #[test]
    fn a_character_split_between_pieces_decodes_once_whole() {
        let mut c = Charset::new(GBK);
        let bytes = gbk("你好");
        let first = c.decode(&bytes[..3], false);
        let second = c.decode(&bytes[3..], true);
        assert_eq!(first.text + &second.text, "你好");
    }

    #[test]
    fn a_line_that_ends_mid_character_shows_a_replacement() {
        let mut c = Charset::new(GBK);
        let bytes = gbk("你");
        assert_eq!(c.decode(&bytes[..1], true).text, "\u{FFFD}");
        assert_eq!(
            c.decode(&bytes, true).text,
            "你",
            "the next line starts clean"
        );
    }

    #[test]
    fn a_first_non_ascii_line_in_gbk_switches_to_gbk() {
        let mut c = Charset::new(UTF_8);
        assert_eq!(
            c.decode(b"bob", true).switched,
            None,
            "ASCII decides nothing"
        );
        let got = c.decode(&gbk("张三"), true);
        assert_eq!(got.switched, Some(GBK));
        assert_eq!(got.text, "张三");
        assert_eq!(c.encoding(), GBK);
    }

    #[test]
    fn detection_works_on_chunks_after_an_ascii_chunk_and_mid_character() {
        // A homework client: an ASCII name as a chunk, then GBK text cut inside a character.
        let mut c = Charset::new(UTF_8);
        assert_eq!(c.decode(b"homer", false).switched, None);
        let bytes = gbk("大家好");
        let first = c.decode(&bytes[..3], false);
        assert_eq!(first.switched, Some(GBK));
        let rest = c.decode(&bytes[3..], false);
        assert_eq!(first.text + &rest.text, "大家好");
    }

    #[test]
    fn a_first_non_ascii_line_in_utf8_keeps_utf8_for_good() {
        let mut c = Charset::new(UTF_8);
        assert_eq!(c.decode("张三".as_bytes(), true).switched, None);
        let later = c.decode(&gbk("张三"), true);
        assert_eq!(later.switched, None);
        assert_eq!(c.encoding(), UTF_8);
    }

    #[test]
    fn no_detection_after_a_choice_or_with_another_default() {
        let mut c = Charset::new(UTF_8);
        c.set(UTF_8);
        assert_eq!(c.decode(&gbk("张三"), true).switched, None);
        let mut c = Charset::new(BIG5);
        assert_eq!(c.decode(&gbk("张三"), true).switched, None);
    }

    #[test]
    fn unmappable_characters_become_question_marks_not_references() {
        let c = Charset::new(GBK);
        let mut out = Vec::new();
        c.encode_line("好 😀 ok", &mut out);
        let mut want = gbk("好 ");
        want.extend_from_slice(b"? ok\r\n");
        assert_eq!(out, want);
        assert!(!out.windows(2).any(|w| w == b"&#"));
    }

    #[test]
    fn utf8_is_written_as_it_is() {
        let c = Charset::new(UTF_8);
        let mut out = Vec::new();
        c.encode_line("😀 é", &mut out);
        assert_eq!(out, "😀 é\r\n".as_bytes());
    }

    #[test]
    fn gb18030_represents_what_gbk_cannot() {
        let mut c = Charset::new(UTF_8);
        c.set(GB18030);
        let mut out = Vec::new();
        c.encode_line("😀", &mut out);
        assert_eq!(out.len(), 4 + 2, "a four-byte GB18030 sequence");
        let mut back = Charset::new(GB18030);
        assert_eq!(back.decode(&out[..4], true).text, "😀");
    }
}
