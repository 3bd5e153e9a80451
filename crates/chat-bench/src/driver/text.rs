//! chat-server's text mode: the same port, a first line that is the name, then every line is a
//! message for the current room and `/join`, `/names` are commands. Messages arrive rendered as
//! `HH:MM #room <nick> text`; the sender's own message comes back as nothing (its ack renders
//! no line), like the framed protocol.
//!
//! Ready: after the name (and `/join` for a room other than `#lobby`) we ask `/names room`. Its
//! answer is queued after the join burst, history included, so the second `*** in room (`
//! line marks the end of everything the join sent: no old message is mistaken for a new one.

use anyhow::{Result, bail};

use super::{Driver, Event, Role};

/// The text-mode driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Text;

impl Driver for Text {
    fn name(&self) -> &'static str {
        "text"
    }

    fn default_room(&self) -> &'static str {
        "#lobby"
    }

    fn echoes_own(&self) -> bool {
        false
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn handshake_start(&self, name: &str, room: &str, _role: Role, out: &mut Vec<u8>) {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        if !room.eq_ignore_ascii_case("#lobby") {
            out.extend_from_slice(format!("/join {room}\n").as_bytes());
        }
        out.extend_from_slice(format!("/names {room}\n").as_bytes());
    }

    fn handshake_step(
        &self,
        ev: &Event<'_>,
        room: &str,
        _role: Role,
        _out: &mut Vec<u8>,
        state: &mut u32,
    ) -> Result<bool> {
        if let Event::Frame(_, line) = ev {
            if line.starts_with(format!("*** in {room} (").as_bytes()) {
                *state += 1;
            } else if line.starts_with(b"*** error:") {
                bail!("text mode refused us: {}", String::from_utf8_lossy(line));
            }
        }
        Ok(*state >= 2)
    }

    fn encode_publish(&self, _room: &str, _seq: u64, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(payload);
        out.push(b'\n');
    }

    fn parse<'a>(&self, buf: &'a [u8]) -> Result<Option<(usize, Event<'a>)>> {
        let Some(end) = memchr::memchr(b'\n', buf) else {
            return Ok(None);
        };
        let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
        let ev = if line.starts_with(b"*** error:") {
            Event::Error(line)
        } else if line.starts_with(b"***") {
            Event::Frame(0, line)
        } else {
            // `HH:MM #room <nick> text`: the marker search finds the payload inside.
            Event::Delivery(line)
        };
        Ok(Some((end + 1, ev)))
    }

    fn encode_pong(&self, _ping: &[u8], _out: &mut Vec<u8>) {
        // The server does not ping text clients (it has an idle timeout instead).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_waits_for_the_answer_to_names() {
        let mut out = Vec::new();
        Text.handshake_start("bob", "#bench", Role::Subscriber, &mut out);
        assert_eq!(out, b"bob\n/join #bench\n/names #bench\n");
        let (mut state, mut none) = (0, Vec::new());
        let mut step = |line: &'static [u8]| {
            let (_, ev) = Text.parse(line).unwrap().unwrap();
            Text.handshake_step(&ev, "#bench", Role::Subscriber, &mut none, &mut state)
                .unwrap()
        };
        assert!(!step(b"*** welcome, bob! you are in #lobby\r\n"));
        assert!(!step(b"*** in #lobby (3): a, b, bob\r\n"));
        assert!(!step(b"*** in #bench (1): bob\r\n"));
        assert!(!step(b"12:00 #bench <old> ~cb1 from history\r\n"));
        assert!(step(b"*** in #bench (1): bob\r\n"));
    }

    #[test]
    fn message_lines_are_deliveries_and_errors_are_errors() {
        assert_eq!(
            Text.parse(b"12:34 #lobby <p> ~cb1xyz\r\nrest").unwrap(),
            Some((26, Event::Delivery(b"12:34 #lobby <p> ~cb1xyz")))
        );
        assert!(matches!(
            Text.parse(b"*** error: too fast\n").unwrap(),
            Some((_, Event::Error(_)))
        ));
    }
}
