//! Pinned certificates, like ssh's `known_hosts`: one `host:port sha256 FINGERPRINT` per line.
//!
//! A server whose certificate no trusted CA signed (self-signed, a private CA) can still be
//! used safely if the user checks its fingerprint once: chat-tui shows the SHA-256 fingerprint
//! of the leaf certificate, and on a yes appends a line here. Later connections accept that
//! certificate and only that one; another certificate for the same `host:port` is refused
//! loudly, with the file and line to edit if the change is expected.
//!
//! The file is read afresh for every connection, so an edit takes effect at the next attempt.
//! Lines that do not parse are skipped (and reported by [`KnownHosts::parse`]), as ssh does: one
//! bad line must not hide the pins after it.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 of a DER certificate, shown as colon-separated upper-case hex (as openssl's
/// `x509 -fingerprint -sha256` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate in DER.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// Colon-separated hex, either case (with or without colons).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{text:?} is not a SHA-256 fingerprint"));
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("{text:?} is not a SHA-256 fingerprint"))?;
        }
        Ok(Fingerprint(bytes))
    }
}

/// One pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `host:port`, as given to chat-tui.
    pub server: String,
    /// The pinned leaf certificate.
    pub fingerprint: Fingerprint,
    /// 1-based line number in the file (for the "edit line N" advice).
    pub line: usize,
}

/// What the file says about a certificate a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No pin for this server.
    Unknown,
    /// The pinned certificate.
    Match,
    /// Another certificate than the pinned one.
    Mismatch(Pin),
}

/// The pins of one known-hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KnownHosts {
    /// The file they came from (and where new pins go).
    pub path: PathBuf,
    /// In file order.
    pub pins: Vec<Pin>,
}

impl KnownHosts {
    /// Parses the file's text: the pins, and the 1-based numbers of lines that did not parse.
    /// Blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> (Vec<Pin>, Vec<usize>) {
        let mut pins = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pin = match fields.as_slice() {
                [server, algo, fp] if algo.eq_ignore_ascii_case("sha256") => {
                    fp.parse().ok().map(|fingerprint| Pin {
                        server: (*server).to_owned(),
                        fingerprint,
                        line: i + 1,
                    })
                }
                _ => None,
            };
            match pin {
                Some(pin) => pins.push(pin),
                None => bad.push(i + 1),
            }
        }
        (pins, bad)
    }

    /// Reads `path`; a missing file has no pins.
    pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let (pins, bad) = Self::parse(&text);
        for line in bad {
            tracing::warn!(file = %path.display(), line, "known-hosts line skipped: not `host:port sha256 FINGERPRINT`");
        }
        Ok(KnownHosts {
            path: path.to_owned(),
            pins,
        })
    }

    /// The first pin for `server` (compared by [`server_key`]: `Chat.Example.org.:6666` is
    /// `chat.example.org:6666`).
    pub fn find(&self, server: &str) -> Option<&Pin> {
        let key = server_key(server);
        self.pins.iter().find(|p| server_key(&p.server) == key)
    }

    /// What the pins say about `presented` for `server`.
    pub fn check(&self, server: &str, presented: Fingerprint) -> Check {
        match self.find(server) {
            None => Check::Unknown,
            Some(pin) if pin.fingerprint == presented => Check::Match,
            Some(pin) => Check::Mismatch(pin.clone()),
        }
    }

    /// Appends a pin for `server` to the file at `path` (created, with its directory, if
    /// missing).
    pub fn add(path: &Path, server: &str, fingerprint: Fingerprint) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let new = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if new {
            writeln!(
                file,
                "# chat-tui pinned certificates: host:port sha256 fingerprint (one per line)"
            )?;
        }
        writeln!(file, "{} sha256 {fingerprint}", server_key(server))?;
        file.sync_all()
    }
}

/// How a server is named in the file: one spelling per server, whatever was typed. An IP
/// address in its canonical form (`[::1]:6666`, `::ffff:10.0.0.1` as `10.0.0.1`), a host name
/// in lowercase without its final dot, the port as a plain number.
pub fn server_key(server: &str) -> String {
    if let Ok(addr) = server.parse::<std::net::SocketAddr>() {
        return std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string();
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse::<u16>().ok()),
        _ => (server, None),
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    match port {
        Some(port) => format!("{host}:{port}"),
        None => server.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_has_one_key_however_it_is_typed() {
        for typed in [
            "chat.example.org:6666",
            "Chat.Example.ORG:6666",
            "chat.example.org.:06666",
        ] {
            assert_eq!(server_key(typed), "chat.example.org:6666", "{typed}");
        }
        assert_eq!(server_key("[::1]:6666"), "[::1]:6666");
        assert_eq!(server_key("[0:0:0:0:0:0:0:1]:6666"), "[::1]:6666");
        assert_eq!(server_key("[::ffff:10.0.0.1]:6666"), "10.0.0.1:6666");
        assert_eq!(server_key("10.0.0.1:6666"), "10.0.0.1:6666");
    }

    #[test]
    fn a_pin_is_found_under_another_spelling_of_its_server() {
        let (pins, _) = KnownHosts::parse(&format!("Chat.Example.org:6666 sha256 {}", fp(1)));
        let hosts = KnownHosts {
            path: PathBuf::new(),
            pins,
        };
        assert_eq!(hosts.check("chat.example.org.:6666", fp(1)), Check::Match);
        assert!(matches!(
            hosts.check("CHAT.example.org:6666", fp(2)),
            Check::Mismatch(_)
        ));
        assert_eq!(hosts.check("chat.example.org:6667", fp(1)), Check::Unknown);
    }

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint([byte; 32])
    }

    #[test]
    fn fingerprints_print_as_colon_hex_and_parse_back() {
        let f = Fingerprint::of(b"certificate");
        let text = f.to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        assert!(text.chars().all(|c| c == ':' || c.is_ascii_hexdigit()));
        assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
        assert_eq!(text.to_lowercase().parse::<Fingerprint>().unwrap(), f);
        assert_eq!(text.replace(':', "").parse::<Fingerprint>().unwrap(), f);
        assert!("AB:CD".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn parsing_skips_comments_and_reports_bad_lines() {
        let text = format!(
            "# pins\n\nchat.example.org:6666 sha256 {}\nnonsense\n127.0.0.1:7000 SHA256 {}\nx:1 md5 {}\n",
            fp(1),
            fp(2),
            fp(3)
        );
        let (pins, bad) = KnownHosts::parse(&text);
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[0].server, "chat.example.org:6666");
        assert_eq!(pins[0].line, 3);
        assert_eq!(pins[1].fingerprint, fp(2));
        assert_eq!(pins[1].line, 5);
        assert_eq!(bad, vec![4, 6]);
    }

    #[test]
    fn check_tells_unknown_match_and_mismatch_with_its_line() {
        let (pins, _) = KnownHosts::parse(&format!("# c\nh:1 sha256 {}\n", fp(7)));
        let known = KnownHosts {
            path: PathBuf::from("known_hosts"),
            pins,
        };
        assert_eq!(known.check("other:1", fp(7)), Check::Unknown);
        assert_eq!(known.check("h:1", fp(7)), Check::Match);
        match known.check("h:1", fp(8)) {
            Check::Mismatch(pin) => {
                assert_eq!(pin.fingerprint, fp(7));
                assert_eq!(pin.line, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(known.find("h:2").is_none(), "the port is part of the name");
    }

    #[test]
    fn added_pins_are_found_after_loading() {
        let dir = std::env::temp_dir().join(format!("chat-known-hosts-{}", std::process::id()));
        let path = dir.join("sub").join("known_hosts");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            KnownHosts::load(&path).unwrap().pins.is_empty(),
            "missing file"
        );
        KnownHosts::add(&path, "a:1", fp(1)).unwrap();
        KnownHosts::add(&path, "b:2", fp(2)).unwrap();
        let known = KnownHosts::load(&path).unwrap();
        assert_eq!(known.check("a:1", fp(1)), Check::Match);
        assert_eq!(known.check("b:2", fp(2)), Check::Match);
        assert_eq!(
            known.find("b:2").unwrap().line,
            3,
            "after the header comment"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
