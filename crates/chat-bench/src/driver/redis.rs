//! Redis pub/sub over RESP: subscribers send `SUBSCRIBE room`, the publisher pipelines
//! `PUBLISH room payload` and gets `:receivers` back for each.
//!
//! Only the reply shapes pub/sub produces are parsed: integers, simple strings, errors, bulk
//! strings and flat arrays of those.

use anyhow::{Result, bail};

use super::{Driver, Event, Role, find, parse_dec};

/// The Redis driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redis;

/// Appends one RESP command made of bulk strings.
fn command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// How every pub/sub message starts, up to the channel's length.
const MESSAGE_PREFIX: &[u8] = b"*3\r\n$7\r\nmessage\r\n$";

/// A decimal length ended by `\r\n` at the start of `b`, and the bytes it took with its `\r\n`.
fn short_len(b: &[u8]) -> Option<(usize, usize)> {
    let mut n = 0usize;
    for (i, &d) in b.iter().enumerate().take(12) {
        match d {
            b'0'..=b'9' => n = n * 10 + usize::from(d - b'0'),
            b'\r' if i > 0 => return (b.len() > i + 1).then_some((n, i + 2)),
            _ => return None,
        }
    }
    None
}

/// The line starting at `pos` (without its `\r\n`) and the position after it.
fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let end = pos + find(buf.get(pos..)?, b"\r\n")?;
    Some((&buf[pos..end], end + 2))
}

/// One array element: a bulk string or an integer's digits, and the position after it.
fn element(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>> {
    let Some((head, next)) = line(buf, pos) else {
        return Ok(None);
    };
    match head.first() {
        Some(b'$') => {
            let len = usize::try_from(parse_dec(&head[1..])?)?;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            Ok(Some((&buf[next..next + len], next + len + 2)))
        }
        Some(b':') | Some(b'+') => Ok(Some((&head[1..], next))),
        _ => bail!(
            "unexpected redis array element {:?}",
            String::from_utf8_lossy(head)
        ),
    }
}

impl Driver for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn default_room(&self) -> &'static str {
        "bench"
    }

    fn echoes_own(&self) -> bool {
        true
    }

    fn separate_publisher(&self) -> bool {
        true
    }

    fn publisher_hears_room(&self) -> bool {
        false
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn handshake_start(&self, _name: &str, room: &str, role: Role, out: &mut Vec<u8>) {
        match role {
            Role::Subscriber | Role::Both => command(&[b"SUBSCRIBE", room.as_bytes()], out),
            // A PING proves the connection is up before the clock starts.
            Role::Publisher => command(&[b"PING"], out),
        }
    }

    fn handshake_step(
        &self,
        ev: &Event<'_>,
        _room: &str,
        _role: Role,
        _out: &mut Vec<u8>,
        _state: &mut u32,
    ) -> Result<bool> {
        Ok(matches!(ev, Event::Subscribed | Event::Pong))
    }

    fn encode_publish(&self, room: &str, _seq: u64, payload: &[u8], out: &mut Vec<u8>) {
        command(&[b"PUBLISH", room.as_bytes(), payload], out);
    }

    fn parse<'a>(&self, buf: &'a [u8]) -> Result<Option<(usize, Event<'a>)>> {
        if let Some(rest) = buf.strip_prefix(MESSAGE_PREFIX) {
            // The hot path: `message`, channel, payload.
            let start = MESSAGE_PREFIX.len();
            let Some((chan_len, after)) = short_len(rest) else {
                return Ok(None);
            };
            let at = start + after + chan_len + 2;
            let Some((len, after)) = buf.get(at + 1..).and_then(short_len) else {
                return Ok(None);
            };
            let body = at + 1 + after;
            if buf.len() < body + len + 2 {
                return Ok(None);
            }
            return Ok(Some((
                body + len + 2,
                Event::Delivery(&buf[body..body + len]),
            )));
        }
        let Some((head, next)) = line(buf, 0) else {
            return Ok(None);
        };
        let ev = match head.first() {
            Some(b':') => Event::Ack(parse_dec(&head[1..])?),
            Some(b'+') if head == b"+PONG" => Event::Pong,
            Some(b'+') => Event::Other,
            Some(b'-') => Event::Error(head),
            Some(b'*') => {
                let count = parse_dec(&head[1..])?;
                let mut pos = next;
                let (mut first, mut last): (&[u8], &[u8]) = (b"", b"");
                for i in 0..count {
                    let Some((el, after)) = element(buf, pos)? else {
                        return Ok(None);
                    };
                    if i == 0 {
                        first = el;
                    }
                    last = el;
                    pos = after;
                }
                let ev = match first {
                    b"message" | b"pmessage" => Event::Delivery(last),
                    b"subscribe" => Event::Subscribed,
                    b"pong" => Event::Pong,
                    _ => Event::Other,
                };
                return Ok(Some((pos, ev)));
            }
            Some(b'$') => match element(buf, 0)? {
                Some((_, after)) => return Ok(Some((after, Event::Other))),
                None => return Ok(None),
            },
            _ => bail!("unexpected redis reply {:?}", String::from_utf8_lossy(head)),
        };
        Ok(Some((next, ev)))
    }

    fn encode_pong(&self, _ping: &[u8], _out: &mut Vec<u8>) {
        // Redis never pings its clients.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_is_a_resp_array_of_bulk_strings() {
        let mut out = Vec::new();
        Redis.encode_publish("bench", 0, b"hi", &mut out);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$2\r\nhi\r\n");
    }

    #[test]
    fn parses_pubsub_replies_and_waits_for_partial_ones() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$4\r\nabcd\r\n";
        assert_eq!(
            Redis.parse(msg).unwrap(),
            Some((msg.len(), Event::Delivery(b"abcd")))
        );
        for cut in 0..msg.len() {
            assert_eq!(Redis.parse(&msg[..cut]).unwrap(), None, "cut at {cut}");
        }
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
        assert_eq!(
            Redis.parse(sub).unwrap(),
            Some((sub.len(), Event::Subscribed))
        );
        assert_eq!(
            Redis.parse(b":100\r\n").unwrap(),
            Some((6, Event::Ack(100)))
        );
        assert_eq!(
            Redis.parse(b"-ERR nope\r\n").unwrap(),
            Some((11, Event::Error(b"-ERR nope")))
        );
        assert_eq!(Redis.parse(b"+PONG\r\n").unwrap(), Some((7, Event::Pong)));
    }
}
