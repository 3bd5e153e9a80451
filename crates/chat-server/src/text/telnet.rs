//! Telnet's in-band commands, filtered out of a text client's byte stream.
//!
//! A telnet client may send commands between the characters a person types: `IAC` (0xFF)
//! followed by a command byte, `IAC WILL|WONT|DO|DONT option` to negotiate, and
//! `IAC SB ... IAC SE` to carry option data (the terminal type, the window size). None of that is
//! text, so [`TelnetFilter`] drops all of it and passes the data bytes on; `IAC IAC` is a literal
//! 0xFF. It answers nothing: a client that gets no answer to `DO`/`WILL` keeps its defaults (line
//! at a time, local echo), which is what a chat wants. The filter keeps no buffer, so a long
//! subnegotiation costs nothing.
//!
//! The one thing the server ever says in telnet is about echo while a password is typed:
//! [`WILL_ECHO`] (the client stops showing what is typed) and then [`WONT_ECHO`], and only to a
//! client that sent a telnet command itself ([`TelnetFilter::spoke_telnet`]): to netcat those
//! bytes would be garbage on the screen.
//!
//! 0xFF never occurs in UTF-8, GBK, Big5 or Shift_JIS text, so filtering is safe for every
//! charset a text client may choose.

/// "Interpret as command": starts every telnet command.
pub const IAC: u8 = 0xFF;
/// Ends a subnegotiation (after `IAC`).
const SE: u8 = 240;
/// Starts a subnegotiation.
const SB: u8 = 250;
/// `WILL`, `WONT`, `DO`, `DONT` (251..=254): each is followed by one option byte.
const WILL: u8 = 251;
const WONT: u8 = 252;
const DONT: u8 = 254;
/// The echo option.
const ECHO: u8 = 1;

/// "The server echoes": a telnet client stops echoing what is typed (a password).
pub const WILL_ECHO: [u8; 3] = [IAC, WILL, ECHO];
/// "The server does not echo": the client echoes again.
pub const WONT_ECHO: [u8; 3] = [IAC, WONT, ECHO];

/// Where the filter is within a command.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Plain data.
    #[default]
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`: the next byte is the option.
    Negotiation,
    /// Inside `IAC SB ...`.
    Sub,
    /// After `IAC` inside a subnegotiation.
    SubIac,
}

/// Drops telnet commands from a byte stream; its state carries across reads.
#[derive(Debug, Default, Clone)]
pub struct TelnetFilter {
    state: State,
    /// A telnet command (other than an escaped 0xFF) was seen.
    spoke: bool,
}

impl TelnetFilter {
    /// The data byte `byte` stands for, or `None` when it is part of a command.
    pub fn data(&mut self, byte: u8) -> Option<u8> {
        let (next, out) = match (self.state, byte) {
            (State::Data, IAC) => (State::Iac, None),
            (State::Data, b) => (State::Data, Some(b)),
            (State::Iac, IAC) => (State::Data, Some(IAC)),
            (State::Iac, SB) => (State::Sub, None),
            (State::Iac, WILL..=DONT) => (State::Negotiation, None),
            // NOP, AYT, IP, GA and the other two-byte commands.
            (State::Iac, _) | (State::Negotiation, _) => (State::Data, None),
            (State::Sub, IAC) => (State::SubIac, None),
            (State::Sub, _) => (State::Sub, None),
            (State::SubIac, SE) => (State::Data, None),
            // `IAC IAC` inside a subnegotiation is an escaped 0xFF; anything else is malformed:
            // stay in the subnegotiation until a proper `IAC SE`.
            (State::SubIac, _) => (State::Sub, None),
        };
        if self.state == State::Iac && byte != IAC {
            self.spoke = true;
        }
        self.state = next;
        out
    }

    /// Whether the peer sent a telnet command: it is a telnet client and understands
    /// [`WILL_ECHO`].
    pub fn spoke_telnet(&self) -> bool {
        self.spoke
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = TelnetFilter::default();
        chunks
            .iter()
            .flat_map(|c| c.iter())
            .filter_map(|&b| f.data(b))
            .collect()
    }

    #[test]
    fn negotiation_and_subnegotiation_are_dropped() {
        // IAC DO ECHO, IAC WILL TTYPE, IAC SB TTYPE IS "xterm" IAC SE, IAC NOP.
        let mut input = vec![IAC, 253, 1, b'h', IAC, WILL, 24, b'i'];
        input.extend([IAC, SB, 24, 0]);
        input.extend(b"xterm");
        input.extend([IAC, SE, b'!', IAC, 241, b'\n']);
        assert_eq!(filter(&[&input]), b"hi!\n");
    }

    #[test]
    fn iac_iac_is_a_literal_ff() {
        assert_eq!(filter(&[&[b'a', IAC, IAC, b'b']]), [b'a', 0xFF, b'b']);
    }

    #[test]
    fn only_a_real_command_marks_a_telnet_client() {
        let mut f = TelnetFilter::default();
        for &b in b"plain text" {
            f.data(b);
        }
        f.data(IAC);
        f.data(IAC);
        assert!(!f.spoke_telnet(), "an escaped 0xFF is data");
        f.data(IAC);
        f.data(241);
        assert!(f.spoke_telnet());
    }

    #[test]
    fn a_command_split_across_reads_is_still_dropped() {
        let got = filter(&[
            b"ab",
            &[IAC],
            &[WILL],
            &[31, b'c', IAC, SB],
            b"zz",
            &[IAC],
            &[SE, b'd'],
        ]);
        assert_eq!(got, b"abcd");
    }

    #[test]
    fn an_escaped_ff_inside_a_subnegotiation_does_not_end_it() {
        let got = filter(&[&[IAC, SB, 31, IAC, IAC, 5, IAC, SE, b'x']]);
        assert_eq!(got, b"x");
    }
}
