//! The payload every driver publishes: a marker with the publisher, sequence and send time,
//! padded to the requested size.
//!
//! The marker is printable ASCII with no quote, backslash or newline, so the same bytes are a
//! valid JSON string (chat `text`), a RESP bulk string, a NATS payload and a text line. Receivers
//! find it with a substring search, so it may sit anywhere in what a server delivers (inside a
//! chat `message` body, for example):
//!
//! ```text
//! ~cb1 PPPPPPPP SSSSSSSSSSSSSSSS TTTTTTTTTTTTTTTT ....padding....
//!  tag  publisher  sequence          send time (ns since the process clock started)
//! ```
//!
//! (without the spaces: every number is fixed-width lowercase hex).

use std::sync::LazyLock;
use std::time::Instant;

use memchr::memmem;

/// The tag that opens every marker.
pub const MAGIC: &[u8; 4] = b"~cb1";
/// Length of the whole marker: tag, 8 + 16 + 16 hex digits.
pub const MARKER_LEN: usize = MAGIC.len() + 8 + 16 + 16;
/// The byte that pads a payload after its marker.
const PAD: u8 = b'.';

static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(MAGIC));
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds on the process-wide monotonic clock that marker timestamps use.
///
/// Publisher and subscribers live in one process, so one clock serves both ends.
pub fn now_ns() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Starts the process clock (call once before the first measurement, so it never starts late).
pub fn start_clock() {
    LazyLock::force(&EPOCH);
}

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Which publisher sent it (0 when there is one).
    pub publisher: u32,
    /// The publisher's sequence number, from 0.
    pub seq: u64,
    /// When it was (scheduled to be) sent, in [`now_ns`] units.
    pub sent_ns: u64,
}

impl Marker {
    /// Appends a payload of `size` bytes (at least [`MARKER_LEN`]) carrying this marker.
    pub fn write(&self, size: usize, out: &mut Vec<u8>) {
        out.reserve(size.max(MARKER_LEN));
        out.extend_from_slice(MAGIC);
        push_hex(out, u64::from(self.publisher), 8);
        push_hex(out, self.seq, 16);
        push_hex(out, self.sent_ns, 16);
        out.resize(out.len() + size.saturating_sub(MARKER_LEN), PAD);
    }

    /// Finds and decodes the first marker in `bytes`, or `None` if there is none.
    pub fn find(bytes: &[u8]) -> Option<Marker> {
        let start = if bytes.starts_with(MAGIC) {
            0
        } else {
            FINDER.find(bytes)?
        };
        let digits = bytes.get(start + MAGIC.len()..start + MARKER_LEN)?;
        Some(Marker {
            publisher: u32::try_from(parse_hex(&digits[..8])?).ok()?,
            seq: parse_hex(&digits[8..24])?,
            sent_ns: parse_hex(&digits[24..40])?,
        })
    }
}

fn push_hex(out: &mut Vec<u8>, value: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..width).rev() {
        // The mask keeps the index below 16.
        out.push(DIGITS[((value >> (4 * i)) & 0xf) as usize]);
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(m: Marker, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        m.write(size, &mut out);
        out
    }

    #[test]
    fn marker_round_trips_at_the_start() {
        let m = Marker {
            publisher: 7,
            seq: 123_456_789,
            sent_ns: u64::MAX - 5,
        };
        let p = payload(m, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(Marker::find(&p), Some(m));
    }

    #[test]
    fn payload_is_never_shorter_than_the_marker() {
        let m = Marker {
            publisher: 0,
            seq: 1,
            sent_ns: 2,
        };
        assert_eq!(payload(m, 10).len(), MARKER_LEN);
        assert_eq!(payload(m, 1024).len(), 1024);
    }

    #[test]
    fn marker_is_found_inside_a_chat_message_body() {
        let m = Marker {
            publisher: 3,
            seq: 42,
            sent_ns: 99,
        };
        let text = String::from_utf8(payload(m, 64)).unwrap();
        let body = serde_json::json!({"mid": 1, "room": "#lobby", "from": "p0", "seq": 42,
            "ts": 1, "text": text});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(Marker::find(&bytes), Some(m));
    }

    #[test]
    fn payload_is_plain_json_safe_ascii() {
        let p = payload(
            Marker {
                publisher: u32::MAX,
                seq: u64::MAX,
                sent_ns: 0,
            },
            100,
        );
        assert!(
            p.iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        );
    }

    #[test]
    fn truncated_or_corrupt_marker_is_not_decoded() {
        let p = payload(
            Marker {
                publisher: 1,
                seq: 2,
                sent_ns: 3,
            },
            64,
        );
        assert_eq!(Marker::find(&p[..MARKER_LEN - 1]), None);
        let mut bad = p.clone();
        bad[10] = b'G';
        assert_eq!(Marker::find(&bad), None);
        assert_eq!(Marker::find(b"no marker here"), None);
    }
}
