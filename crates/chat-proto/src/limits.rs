//! Limits: the defaults both sides agree on, and the set a server announces in `welcome`.

use serde::{Deserialize, Serialize};

/// Largest body accepted before the handshake completes (the `hello` frame must fit).
pub const PRE_HANDSHAKE_MAX_BODY: u32 = 4 * 1024;
/// Default largest body after the handshake.
pub const DEFAULT_MAX_BODY: u32 = 64 * 1024;
/// Default largest chat message text in bytes.
pub const DEFAULT_MAX_TEXT: u32 = 16 * 1024;
/// Largest client-chosen request id in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Default number of messages sent with a join (and the default page size).
pub const DEFAULT_HISTORY_ON_JOIN: u32 = 50;
/// Default cap on one history page.
pub const DEFAULT_HISTORY_PAGE: u32 = 200;
/// Largest topic in bytes.
pub const MAX_TOPIC_LEN: usize = 512;

/// The limits a server enforces for a session, announced in `welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame body in bytes.
    pub max_body: u32,
    /// Largest chat message text in bytes.
    pub max_text: u32,
    /// Token bucket size: messages that may be sent in a burst.
    pub rate_burst: u32,
    /// Token bucket refill: messages per second, sustained.
    pub rate_per_sec: f64,
    /// Largest history page the server returns.
    pub history_page: u32,
    /// Seconds of silence after which the server pings.
    pub ping_interval_secs: u32,
    /// Largest file that may be offered, in bytes.
    pub max_file_size: u64,
}

// Limits holds one f64 that is never NaN in practice; equality is still meaningful for tests.
impl Eq for Limits {}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: DEFAULT_MAX_BODY,
            max_text: DEFAULT_MAX_TEXT,
            rate_burst: 10,
            rate_per_sec: 5.0,
            history_page: DEFAULT_HISTORY_PAGE,
            ping_interval_secs: 30,
            max_file_size: 1 << 30,
        }
    }
}
