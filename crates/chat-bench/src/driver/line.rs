//! Plain text lines: every line a client writes goes to every other client.
//!
//! This is what the zero-logic broadcaster ([`crate::ceiling`]) speaks: the server writes `OK`
//! once the connection is registered, then relays lines. The chat server's own text mode does
//! not exist yet; when it does, this driver grows its `JOIN`/`PRIVMSG`-style handshake here.

use anyhow::Result;

use super::{Driver, Event, Role};

/// The text-line driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Line;

impl Driver for Line {
    fn name(&self) -> &'static str {
        "line"
    }

    fn default_room(&self) -> &'static str {
        "all"
    }

    fn echoes_own(&self) -> bool {
        false
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn handshake_start(&self, _name: &str, _room: &str, _role: Role, _out: &mut Vec<u8>) {}

    fn handshake_step(
        &self,
        ev: &Event<'_>,
        _room: &str,
        _role: Role,
        _out: &mut Vec<u8>,
        _state: &mut u32,
    ) -> Result<bool> {
        Ok(matches!(ev, Event::Frame(0, b"OK")))
    }

    fn encode_publish(&self, _room: &str, _seq: u64, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(payload);
        out.push(b'\n');
    }

    fn parse<'a>(&self, buf: &'a [u8]) -> Result<Option<(usize, Event<'a>)>> {
        let Some(end) = memchr::memchr(b'\n', buf) else {
            return Ok(None);
        };
        let text = &buf[..end];
        let ev = if text == b"OK" {
            Event::Frame(0, text)
        } else {
            Event::Delivery(text)
        };
        Ok(Some((end + 1, ev)))
    }

    fn encode_pong(&self, _ping: &[u8], _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_newline() {
        assert_eq!(Line.parse(b"abc").unwrap(), None);
        assert_eq!(
            Line.parse(b"abc\ndef").unwrap(),
            Some((4, Event::Delivery(b"abc")))
        );
        assert_eq!(
            Line.parse(b"OK\n").unwrap(),
            Some((3, Event::Frame(0, b"OK")))
        );
    }
}
