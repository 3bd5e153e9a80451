//! A text client's byte stream cut into lines: telnet commands out, a cap on every line.
//!
//! A line ends at LF, CR LF, CR NUL (telnet's bare carriage return) or a lone CR; the ending is
//! not part of the line. Lines are bytes in the client's charset: decoding happens a line at a
//! time (see [`super::charset`]), and no supported charset uses the bytes 0x0A, 0x0D or 0xFF
//! inside a multi-byte character, so cutting before decoding never splits a character.
//!
//! A line may hold at most `max` bytes. A longer one is reported once as
//! [`Piece::TooLong`] as soon as it passes the cap, and the rest of it is dropped up to the next
//! line ending: the splitter never holds more than `max` bytes, however long the line.
//!
//! Chunk clients send text with no line ending and wait for an answer; the session calls
//! [`LineSplitter::flush`] after a short silence to take what is buffered as a line.

use super::telnet::TelnetFilter;

/// What the splitter found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A line without its ending; may be empty.
    Line(Vec<u8>),
    /// A line passed the cap; its bytes so far were dropped and the rest will be.
    TooLong,
}

/// Cuts a byte stream into [`Piece`]s; its state carries across reads.
#[derive(Debug)]
pub struct LineSplitter {
    telnet: TelnetFilter,
    /// The line so far (at most `max` bytes).
    buf: Vec<u8>,
    max: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    /// The last byte ended a line with CR: an LF or NUL right after it belongs to that ending.
    after_cr: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        LineSplitter {
            telnet: TelnetFilter::default(),
            buf: Vec::new(),
            max,
            discarding: false,
            after_cr: false,
        }
    }

    /// Feeds bytes as they were read; appends what they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Piece>) {
        for &raw in bytes {
            let Some(b) = self.telnet.data(raw) else {
                continue;
            };
            if std::mem::take(&mut self.after_cr) && (b == b'\n' || b == 0) {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if self.discarding {
                        self.discarding = false;
                    } else {
                        out.push(Piece::Line(std::mem::take(&mut self.buf)));
                    }
                }
                _ if self.discarding => {}
                _ if self.buf.len() >= self.max => {
                    self.buf = Vec::new();
                    self.discarding = true;
                    out.push(Piece::TooLong);
                }
                _ => self.buf.push(b),
            }
        }
    }

    /// Whether the peer sent telnet commands (see [`TelnetFilter::spoke_telnet`]).
    pub fn spoke_telnet(&self) -> bool {
        self.telnet.spoke_telnet()
    }

    /// Whether bytes of an unfinished line are waiting (or an over-long one is being dropped).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.discarding
    }

    /// Ends the current line where it is (the peer went quiet): returns it unless it is empty.
    /// An over-long line being dropped ends here too.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        self.discarding = false;
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Piece> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out
    }

    fn line(s: &str) -> Piece {
        Piece::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn every_line_ending_ends_a_line_once() {
        let got = split(100, &[b"a\nb\r\nc\r\0d\re\n\n"]);
        assert_eq!(
            got,
            [
                line("a"),
                line("b"),
                line("c"),
                line("d"),
                line("e"),
                line("")
            ]
        );
    }

    #[test]
    fn a_crlf_split_across_reads_is_one_ending() {
        let got = split(100, &[b"one\r", b"\ntwo\r", b"\0", b"three\n"]);
        assert_eq!(got, [line("one"), line("two"), line("three")]);
    }

    #[test]
    fn a_line_at_the_cap_passes_and_one_byte_more_is_too_long() {
        assert_eq!(split(4, &[b"abcd\n"]), [line("abcd")]);
        let got = split(4, &[b"abcde", b"fgh\nok\n"]);
        assert_eq!(got, [Piece::TooLong, line("ok")]);
    }

    #[test]
    fn an_over_long_line_is_never_buffered_past_the_cap() {
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.push(&[b'x'; 100], &mut out);
            assert!(s.buf.len() <= 8);
        }
        assert_eq!(out, [Piece::TooLong]);
        s.push(b"\nnext\n", &mut out);
        assert_eq!(out, [Piece::TooLong, line("next")]);
    }

    #[test]
    fn flush_takes_an_unfinished_line_and_ends_dropping() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        s.push(b"hi", &mut out);
        assert!(out.is_empty() && s.has_partial());
        assert_eq!(s.flush(), Some(b"hi".to_vec()));
        assert!(!s.has_partial());
        assert_eq!(s.flush(), None);
        s.push(b"toolong", &mut out);
        assert!(s.has_partial());
        assert_eq!(s.flush(), None, "the dropped line yields nothing");
        s.push(b"ok\n", &mut out);
        assert_eq!(out, [Piece::TooLong, line("ok")]);
    }

    #[test]
    fn telnet_commands_never_reach_a_line() {
        let got = split(
            100,
            &[
                &[0xFF, 253, 1, b'h', 0xFF, 250, 24],
                b"junk",
                &[0xFF, 240, b'i', b'\n'],
            ],
        );
        assert_eq!(got, [line("hi")]);
    }
}
