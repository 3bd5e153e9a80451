//! Server configuration: every limit is a command-line flag and a `CHAT_*` environment variable.
//!
//! [`Config::default`] and the clap defaults are the same values (a test checks it), so tests can
//! start from `Config::default()` and shrink only the durations they care about.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_proto::Limits;
use chat_proto::limits::{
    DEFAULT_HISTORY_ON_JOIN, DEFAULT_HISTORY_PAGE, DEFAULT_MAX_BODY, DEFAULT_MAX_TEXT,
};
use clap::Parser;

pub use crate::history::HistoryKind;
pub use crate::store::SyncMode;

/// Everything the server can be told at start-up.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "A real-time chat server: rooms, nicks, direct messages, history.",
    long_about = "A real-time chat server speaking the chat wire protocol (PROTOCOL.md) over TCP.\n\n\
        Every limit below can also be set with the environment variable shown. Durations take \
        a unit: 500ms, 10s, 2m (a bare number means seconds).\n\n\
        Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=chat_server=debug) to choose how much."
)]
pub struct Config {
    /// Address to listen on (use 0.0.0.0:6666 to serve a LAN).
    #[arg(long, env = "CHAT_BIND", default_value = "127.0.0.1:6666")]
    pub bind: SocketAddr,

    /// PEM certificate chain (leaf first) to serve TLS on the same port as plaintext; needs
    /// --tls-key.
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse plaintext connections: framed clients get `tls_required`, text clients one line,
    /// and a connection that stays silent is closed at the TLS handshake deadline.
    #[arg(long, env = "CHAT_TLS_ONLY", requires = "tls_cert")]
    pub tls_only: bool,

    /// Time a TLS connection has, from accept, to finish its handshake (with --tls-only, every
    /// connection).
    #[arg(long, env = "CHAT_TLS_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// A private server: `hello` must carry this `server_password` (text clients are asked for
    /// it before their name).
    #[arg(long, env = "CHAT_SERVER_PASSWORD", hide_env_values = true)]
    pub server_password: Option<String>,

    /// An operator's nick (repeatable). Only a session that logged in with the nick's password
    /// may kick, ban, mute and lock topics; the account is made on the server with
    /// `chat-server account add NICK` (admin nicks cannot be registered over the network).
    #[arg(
        long = "admin",
        env = "CHAT_ADMINS",
        value_delimiter = ',',
        global = true
    )]
    pub admins: Vec<String>,

    /// How long a failed login counts towards throttling (3 failures per account and per IP).
    #[arg(long, env = "CHAT_AUTH_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub auth_window: Duration,

    /// Message of the day, sent in `welcome`.
    #[arg(long, env = "CHAT_MOTD")]
    pub motd: Option<String>,

    /// Largest frame body in bytes after the handshake (4 KiB before it, fixed).
    #[arg(long, env = "CHAT_MAX_BODY", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: u32,

    /// Largest chat message text in bytes.
    #[arg(long, env = "CHAT_MAX_TEXT", default_value_t = DEFAULT_MAX_TEXT)]
    pub max_text: u32,

    /// Rate limit: requests a connection may send in a burst.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = 10)]
    pub rate_burst: u32,

    /// Rate limit: requests per second, sustained.
    #[arg(long, env = "CHAT_RATE_PER_SEC", default_value_t = 5.0)]
    pub rate_per_sec: f64,

    /// Messages of history sent with a join.
    #[arg(long, env = "CHAT_HISTORY_ON_JOIN", default_value_t = DEFAULT_HISTORY_ON_JOIN)]
    pub history_on_join: u32,

    /// Largest history page a client may ask for.
    #[arg(long, env = "CHAT_HISTORY_PAGE", default_value_t = DEFAULT_HISTORY_PAGE)]
    pub history_page: u32,

    /// Messages kept per room by the in-memory history.
    #[arg(long, env = "CHAT_HISTORY_KEEP", default_value_t = 1000)]
    pub history_keep: usize,

    /// Where messages are kept: `sqlite` (durable, in --data-dir) or `memory` (lost on exit).
    /// Registered accounts live in the same place: with `memory` they are lost on exit too.
    #[arg(long, env = "CHAT_HISTORY", value_enum, default_value_t = HistoryKind::Sqlite, global = true)]
    pub history: HistoryKind,

    /// Directory of the durable store (`chat.db`) [default: the XDG data dir, e.g.
    /// ~/.local/share/chat]. One server per directory.
    #[arg(long, env = "CHAT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// SQLite `synchronous`: `full` (an ack means the message is on disk) or `normal`
    /// (faster; survives a server crash, a power cut may lose the last acked messages).
    #[arg(long, env = "CHAT_SYNC", value_enum, default_value_t = SyncMode::Full)]
    pub sync: SyncMode,

    /// Messages kept per room by the durable store; older ones are deleted (0: no limit).
    #[arg(long, env = "CHAT_RETENTION_COUNT", default_value_t = 100_000)]
    pub retention_count: u64,

    /// Days a message is kept by the durable store (0: forever).
    #[arg(long, env = "CHAT_RETENTION_DAYS", default_value_t = 0)]
    pub retention_days: u32,

    /// How often the retention limits are enforced.
    #[arg(long, env = "CHAT_RETENTION_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// Most missed messages replayed per room on resume; a `more_history` notice says the rest.
    #[arg(long, env = "CHAT_RESUME_MAX", default_value_t = 500)]
    pub resume_max: u32,

    /// Frames queued per connection before it counts as lagged and is disconnected.
    #[arg(long, env = "CHAT_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,

    /// Requests queued to the hub before readers wait (backpressure).
    #[arg(long, env = "CHAT_HUB_QUEUE", default_value_t = 4096)]
    pub hub_queue: usize,

    /// Concurrent connections from one IP address.
    #[arg(long, env = "CHAT_MAX_CONNS_PER_IP", default_value_t = 16)]
    pub max_conns_per_ip: usize,

    /// Concurrent connections in total.
    #[arg(long, env = "CHAT_MAX_CONNS", default_value_t = 10_000)]
    pub max_conns: usize,

    /// Rooms one user may be in at once.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_USER", default_value_t = 100)]
    pub max_rooms_per_user: usize,

    /// Largest file that may be offered, in bytes (0: no file transfer).
    #[arg(long, env = "CHAT_MAX_FILE_SIZE", default_value_t = 1 << 30)]
    pub max_file_size: u64,

    /// Transfers one user may have open at once: offers it sends, and offers it receives.
    #[arg(long, env = "CHAT_MAX_TRANSFERS_PER_USER", default_value_t = 4)]
    pub max_transfers_per_user: usize,

    /// Time a file offer can be accepted (and a paused transfer resumed).
    #[arg(long, env = "CHAT_FILE_OFFER_TTL", default_value = "10m", value_parser = parse_duration)]
    pub file_offer_ttl: Duration,

    /// Time a new connection has to send `hello`.
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Silence after which the server pings a client.
    #[arg(long, env = "CHAT_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// Unanswered pings after which a client is closed as idle.
    #[arg(long, env = "CHAT_MAX_MISSED_PONGS", default_value_t = 2)]
    pub max_missed_pongs: u32,

    /// Time a frame has to arrive completely once its first byte is in (slowloris guard).
    #[arg(long, env = "CHAT_FRAME_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub frame_timeout: Duration,

    /// A socket write that makes no progress this long ends the connection as lagged.
    #[arg(long, env = "CHAT_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Time allowed to flush a closing connection's queue and its last error.
    #[arg(long, env = "CHAT_CLOSE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub close_timeout: Duration,

    /// Longest graceful shutdown: after this, remaining connections are dropped.
    #[arg(long, env = "CHAT_SHUTDOWN_TIMEOUT", default_value = "4s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Time a new connection has to send its first byte before it is taken for a text client
    /// (netcat, telnet) and greeted.
    #[arg(long, env = "CHAT_DETECT_TIMEOUT", default_value = "300ms", value_parser = parse_duration)]
    pub detect_timeout: Duration,

    /// Default charset of text clients (utf-8, gbk, gb18030, big5, shift_jis, ...); each can
    /// change it with /charset.
    #[arg(long, env = "CHAT_TEXT_ENCODING", default_value = "utf-8", value_parser = crate::text::charset::parse_charset)]
    pub text_encoding: &'static encoding_rs::Encoding,

    /// Time a text client has to give its name.
    #[arg(long, env = "CHAT_TEXT_NAME_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub text_name_timeout: Duration,

    /// A text client that types nothing this long is disconnected (text clients cannot answer
    /// pings).
    #[arg(long, env = "CHAT_TEXT_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub text_idle_timeout: Duration,

    /// Silence after which text without a line ending counts as a line (clients that send a
    /// chunk and wait for the answer).
    #[arg(long, env = "CHAT_TEXT_CHUNK_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub text_chunk_timeout: Duration,

    /// Members above which a room is large: its members' joins, parts, quits and nick changes
    /// are not announced to it, and its join burst's `name_list` gives only the count (`names`
    /// still lists it). Joining is then O(1) per join instead of O(room) (0: no limit).
    #[arg(long, env = "CHAT_PRESENCE_LIMIT", default_value_t = 1000)]
    pub presence_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 6666)),
            tls_cert: None,
            tls_key: None,
            tls_only: false,
            tls_handshake_timeout: Duration::from_secs(5),
            server_password: None,
            admins: Vec::new(),
            auth_window: Duration::from_secs(60),
            motd: None,
            max_body: DEFAULT_MAX_BODY,
            max_text: DEFAULT_MAX_TEXT,
            rate_burst: 10,
            rate_per_sec: 5.0,
            history_on_join: DEFAULT_HISTORY_ON_JOIN,
            history_page: DEFAULT_HISTORY_PAGE,
            history_keep: 1000,
            history: HistoryKind::Sqlite,
            data_dir: None,
            sync: SyncMode::Full,
            retention_count: 100_000,
            retention_days: 0,
            retention_interval: Duration::from_secs(60),
            resume_max: 500,
            outbound_queue: 1024,
            hub_queue: 4096,
            max_conns_per_ip: 16,
            max_conns: 10_000,
            max_rooms_per_user: 100,
            max_file_size: 1 << 30,
            max_transfers_per_user: 4,
            file_offer_ttl: Duration::from_secs(10 * 60),
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            max_missed_pongs: 2,
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(4),
            detect_timeout: Duration::from_millis(300),
            text_encoding: encoding_rs::UTF_8,
            text_name_timeout: Duration::from_secs(60),
            text_idle_timeout: Duration::from_secs(30 * 60),
            text_chunk_timeout: Duration::from_millis(500),
            presence_limit: 1000,
        }
    }
}

impl Config {
    /// The limits announced to clients in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body: self.max_body,
            max_text: self.max_text,
            rate_burst: self.rate_burst,
            rate_per_sec: self.rate_per_sec,
            history_page: self.history_page,
            ping_interval_secs: u32::try_from(self.ping_interval.as_secs()).unwrap_or(u32::MAX),
            max_file_size: self.max_file_size,
        }
    }
}

/// Parses `500ms`, `10s`, `2m` or a bare number of seconds (fractions allowed: `0.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 500ms, 10s or 2m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_defaults_match_config_default() {
        let parsed = Config::try_parse_from(["chat-server"]).unwrap();
        // The environment may set CHAT_* variables; compare only when it does not.
        if std::env::vars().all(|(k, _)| !k.starts_with("CHAT_")) {
            assert_eq!(parsed, Config::default());
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_override_defaults() {
        let c = Config::try_parse_from([
            "chat-server",
            "--bind",
            "127.0.0.1:0",
            "--rate-burst",
            "3",
            "--frame-timeout",
            "250ms",
        ])
        .unwrap();
        assert_eq!(c.rate_burst, 3);
        assert_eq!(c.frame_timeout, Duration::from_millis(250));
        assert_eq!(c.bind.port(), 0);
    }

    #[test]
    fn a_tls_handshake_has_five_seconds_by_default() {
        assert_eq!(
            Config::default().tls_handshake_timeout,
            Duration::from_secs(5)
        );
        let c = Config::try_parse_from([
            "chat-server",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
            "--tls-only",
            "--tls-handshake-timeout",
            "300ms",
        ])
        .unwrap();
        assert!(c.tls_only);
        assert_eq!(c.tls_cert, Some(PathBuf::from("cert.pem")));
        assert_eq!(c.tls_handshake_timeout, Duration::from_millis(300));
    }

    #[test]
    fn tls_flags_need_both_files() {
        assert!(Config::try_parse_from(["chat-server", "--tls-cert", "cert.pem"]).is_err());
        assert!(Config::try_parse_from(["chat-server", "--tls-key", "key.pem"]).is_err());
        assert!(Config::try_parse_from(["chat-server", "--tls-only"]).is_err());
    }
}
