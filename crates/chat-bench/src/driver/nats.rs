//! NATS core: `CONNECT {"verbose":false}`, `SUB subject sid`, `PUB subject len`, and `PONG`
//! for every server `PING`. A handshake ends with our own `PING`: its `PONG` proves the server
//! has processed the `SUB` before it.

use anyhow::{Result, bail};

use super::{Driver, Event, Role, find, parse_dec};

/// The NATS driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nats;

impl Driver for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn default_room(&self) -> &'static str {
        "bench"
    }

    fn echoes_own(&self) -> bool {
        // We connect with "echo":false.
        false
    }

    fn publisher_hears_room(&self) -> bool {
        false
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn handshake_start(&self, name: &str, room: &str, role: Role, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "CONNECT {{\"verbose\":false,\"pedantic\":false,\"echo\":false,\"name\":\"{name}\"}}\r\n"
            )
            .as_bytes(),
        );
        if role != Role::Publisher {
            out.extend_from_slice(format!("SUB {room} 1\r\n").as_bytes());
        }
        out.extend_from_slice(b"PING\r\n");
    }

    fn handshake_step(
        &self,
        ev: &Event<'_>,
        _room: &str,
        _role: Role,
        _out: &mut Vec<u8>,
        _state: &mut u32,
    ) -> Result<bool> {
        Ok(matches!(ev, Event::Pong))
    }

    fn encode_publish(&self, room: &str, _seq: u64, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"PUB ");
        out.extend_from_slice(room.as_bytes());
        out.push(b' ');
        out.extend_from_slice(payload.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    fn parse<'a>(&self, buf: &'a [u8]) -> Result<Option<(usize, Event<'a>)>> {
        let Some(end) = find(buf, b"\r\n") else {
            return Ok(None);
        };
        let head = &buf[..end];
        let next = end + 2;
        if head.starts_with(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let len_digits = head.rsplit(|&b| b == b' ').next().unwrap_or_default();
            let len = usize::try_from(parse_dec(len_digits)?)?;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            return Ok(Some((
                next + len + 2,
                Event::Delivery(&buf[next..next + len]),
            )));
        }
        let ev = match head {
            b"PING" => Event::Ping(b""),
            b"PONG" => Event::Pong,
            b"+OK" => Event::Other,
            _ if head.starts_with(b"-ERR") => Event::Error(head),
            _ if head.starts_with(b"INFO ") => Event::Other,
            _ => bail!("unexpected nats line {:?}", String::from_utf8_lossy(head)),
        };
        Ok(Some((next, ev)))
    }

    fn encode_pong(&self, _ping: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"PONG\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_msg_and_waits_for_its_payload() {
        let msg = b"MSG bench 1 4\r\nabcd\r\n";
        assert_eq!(
            Nats.parse(msg).unwrap(),
            Some((msg.len(), Event::Delivery(b"abcd")))
        );
        for cut in 0..msg.len() {
            assert_eq!(Nats.parse(&msg[..cut]).unwrap(), None, "cut at {cut}");
        }
        let with_reply = b"MSG bench 1 inbox.1 2\r\nhi\r\n";
        assert_eq!(
            Nats.parse(with_reply).unwrap(),
            Some((with_reply.len(), Event::Delivery(b"hi")))
        );
    }

    #[test]
    fn parses_control_lines() {
        assert_eq!(
            Nats.parse(b"PING\r\n").unwrap(),
            Some((6, Event::Ping(b"")))
        );
        assert_eq!(Nats.parse(b"PONG\r\n").unwrap(), Some((6, Event::Pong)));
        assert_eq!(
            Nats.parse(b"-ERR 'Slow Consumer'\r\n").unwrap(),
            Some((22, Event::Error(b"-ERR 'Slow Consumer'")))
        );
        assert!(Nats.parse(b"WHAT\r\n").is_err());
    }

    #[test]
    fn publish_has_the_payload_length() {
        let mut out = Vec::new();
        Nats.encode_publish("bench", 0, b"abc", &mut out);
        assert_eq!(out, b"PUB bench 3\r\nabc\r\n");
    }
}
