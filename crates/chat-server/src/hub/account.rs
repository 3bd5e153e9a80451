//! Accounts: registered nicks with an argon2 password hash, login checks and throttling.
//!
//! The hub owns the table of accounts (folded nick → PHC hash string) and the failure counts;
//! hashing and verifying (tens of milliseconds of CPU) run on tokio's blocking pool, never on
//! the hub, and their outcome comes back to the hub as a [`Command`]. Meanwhile the session
//! waits for its answer as it does for any `hello`.
//!
//! With the SQLite store, accounts live in the same database (`accounts` table, schema
//! version 2) and survive a restart; with `--history memory` they live in memory only.
//!
//! Passwords are never logged: they travel only inside the closures given to the blocking pool
//! and are dropped there.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use chat_proto::ErrorCode;
use chat_proto::nick::fold_nick;
use tracing::warn;

/// Shortest accepted password, in bytes.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password, in bytes: argon2 hashes any length, this bounds the work.
pub const MAX_PASSWORD: usize = 1024;
/// Failed logins per account and per IP address within the window before further attempts
/// are refused unchecked.
pub const MAX_FAILURES: usize = 3;
/// Password hashes computed at once, at most (each takes ~19 MiB and a core for tens of
/// milliseconds): beyond it, logins and registrations are refused with `auth_throttled`.
pub const MAX_HASHING: usize = 8;
/// Of those, at most this many for one client address.
pub const MAX_HASHING_PER_IP: usize = 2;

/// What the hub knows about accounts.
pub(super) struct Accounts {
    /// Folded nick → argon2 PHC string.
    hashes: HashMap<String, String>,
    /// The database the accounts are kept in; `None` keeps them in memory only.
    db: Option<PathBuf>,
    /// Throttle key (`a:fold` or `i:ip`) → times of recent failures, oldest first.
    failures: HashMap<String, VecDeque<Instant>>,
    /// How long a failure counts.
    window: Duration,
    /// Hashes being computed on the blocking pool, per client address (logins), and in all.
    hashing: HashMap<IpAddr, usize>,
    hashing_total: usize,
}

impl Accounts {
    /// Loads the accounts kept in `db` (none when `db` is `None` or unreadable).
    pub(super) fn load(db: Option<PathBuf>, window: Duration) -> Self {
        let hashes = match &db {
            Some(path) => read_all(path).unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the accounts: none are registered");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        Accounts {
            hashes,
            db,
            failures: HashMap::new(),
            window,
            hashing: HashMap::new(),
            hashing_total: 0,
        }
    }

    /// The hash of a registered folded nick.
    pub(super) fn hash_of(&self, fold: &str) -> Option<&str> {
        self.hashes.get(fold).map(String::as_str)
    }

    /// Whether `fold` is registered.
    pub(super) fn is_registered(&self, fold: &str) -> bool {
        self.hashes.contains_key(fold)
    }

    /// Records a new account (already stored by [`store`]).
    pub(super) fn insert(&mut self, fold: String, hash: String) {
        self.hashes.insert(fold, hash);
    }

    /// Says, at start, which `--admin` nicks nobody can log in to yet, and how to fix it.
    pub(super) fn warn_unregistered_admins(&self, admins: &[String], durable: bool) {
        for admin in admins {
            if self.is_registered(&fold_nick(admin)) {
                continue;
            }
            if durable {
                warn!(
                    admin = %admin,
                    "operator nick has no account: nobody can use it until one is made with \
                     `chat-server account add {admin}` (server stopped, same --data-dir)"
                );
            } else {
                warn!(
                    admin = %admin,
                    "operator nick cannot log in with --history memory: operator accounts are \
                     made in the SQLite store with `chat-server account add`"
                );
            }
        }
    }

    /// The database to store new accounts in.
    pub(super) fn db(&self) -> Option<PathBuf> {
        self.db.clone()
    }

    /// Whether the account or the address has failed [`MAX_FAILURES`] times within the window.
    pub(super) fn throttled(&mut self, fold: &str, ip: IpAddr) -> bool {
        self.any_throttled(&[format!("a:{fold}"), format!("i:{ip}")])
    }

    /// Whether the address has failed [`MAX_FAILURES`] times within the window (logins and
    /// server passwords count together).
    pub(super) fn ip_throttled(&mut self, ip: IpAddr) -> bool {
        self.any_throttled(&[format!("i:{ip}")])
    }

    fn any_throttled(&mut self, keys: &[String]) -> bool {
        let now = Instant::now();
        let window = self.window;
        keys.iter().any(|key| {
            self.failures.get_mut(key).is_some_and(|times| {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                times.len() >= MAX_FAILURES
            })
        })
    }

    /// Reserves a place for one hash computation for `ip`: [`MAX_HASHING_PER_IP`] at a time
    /// per address, and [`MAX_HASHING`] in all. False when there is none.
    pub(super) fn start_hashing(&mut self, ip: IpAddr) -> bool {
        let mine = self.hashing.entry(ip).or_default();
        if self.hashing_total >= MAX_HASHING || *mine >= MAX_HASHING_PER_IP {
            if *mine == 0 {
                self.hashing.remove(&ip);
            }
            return false;
        }
        *mine += 1;
        self.hashing_total += 1;
        true
    }

    /// Frees the place taken by [`Self::start_hashing`].
    pub(super) fn done_hashing(&mut self, ip: IpAddr) {
        if let Some(mine) = self.hashing.get_mut(&ip) {
            *mine -= 1;
            self.hashing_total -= 1;
            if *mine == 0 {
                self.hashing.remove(&ip);
            }
        }
    }

    /// Counts a failed login against the account and the address.
    pub(super) fn failed(&mut self, fold: &str, ip: IpAddr) {
        self.count_failure(&[format!("a:{fold}"), format!("i:{ip}")]);
    }

    /// Counts a wrong server password against the address.
    pub(super) fn ip_failed(&mut self, ip: IpAddr) {
        self.count_failure(&[format!("i:{ip}")]);
    }

    fn count_failure(&mut self, keys: &[String]) {
        let now = Instant::now();
        for key in keys.iter().cloned() {
            let times = self.failures.entry(key).or_default();
            times.push_back(now);
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
        // Bounded: forget keys whose failures have all expired once the table grows.
        if self.failures.len() > 100_000 {
            let window = self.window;
            self.failures
                .retain(|_, t| t.back().is_some_and(|t| now.duration_since(*t) < window));
        }
    }
}

/// Why a password is not acceptable for `register`, if it is not.
pub fn check_password(password: &str) -> Result<(), (ErrorCode, String)> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        let text = format!("a password has {MIN_PASSWORD} to {MAX_PASSWORD} bytes");
        return Err((ErrorCode::BadRequest, text));
    }
    Ok(())
}

/// Hashes a password with argon2id (default parameters, random salt). Blocking: ~10-50 ms.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash`. Blocking: ~10-50 ms.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether `got` is the server password `want` (any, or none, when the server has none).
/// The hub checks every `hello` with it; a text session also checks the password its user
/// types first, to answer at once.
pub fn server_password_ok(want: Option<&str>, got: Option<&str>) -> bool {
    want.is_none_or(|want| got.is_some_and(|got| same_secret(got, want)))
}

/// Compares two secrets without stopping at the first difference.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn read_all(path: &Path) -> rusqlite::Result<HashMap<String, String>> {
    let conn = open(path)?;
    let mut stmt = conn.prepare("SELECT fold, hash FROM accounts")?;
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

/// Stores a new account; fails if the nick is already registered. Blocking.
pub(super) fn store(path: &Path, fold: &str, hash: &str) -> rusqlite::Result<()> {
    let conn = open(path)?;
    conn.execute(
        "INSERT INTO accounts (fold, hash, created) VALUES (?1, ?2, ?3)",
        rusqlite::params![fold, hash, super::now_ms()],
    )?;
    Ok(())
}

impl super::Hub {
    /// A `hello`: checks the server password and, for a registered nick, its password (off the
    /// hub); then admits the session. The answer goes on `reply`.
    pub(super) fn hello(
        &mut self,
        conn: super::ConnInfo,
        hello: super::Hello,
        reply: tokio::sync::oneshot::Sender<Result<String, super::Refused>>,
    ) {
        let refuse = |code: ErrorCode, message: String| {
            Err(super::Refused {
                code,
                message,
                needs_password: false,
            })
        };
        if let Err(refused) =
            self.check_server_password(conn.peer.ip(), hello.server_password.as_deref())
        {
            let _ = reply.send(Err(refused));
            return;
        }
        let fold = chat_proto::nick::fold_nick(&hello.name);
        if let Some(text) = self.bans.find(&fold, conn.peer.ip()) {
            // Fatal: the session closes after telling the client.
            let _ = reply.send(refuse(ErrorCode::Banned, text));
            return;
        }
        let Some(hash) = self.accounts.hash_of(&fold).map(str::to_owned) else {
            // The session may have gone meanwhile; then it will send `Leave`.
            let _ = reply.send(self.register(conn, hello, None));
            return;
        };
        let ip = conn.peer.ip();
        if self.accounts.throttled(&fold, ip) {
            let text = "too many failed logins: try again in a minute".to_owned();
            let _ = reply.send(refuse(ErrorCode::AuthThrottled, text));
            return;
        }
        let Some(password) = hello.password.clone() else {
            let text = format!(
                "nick {:?} is registered: hello needs its password",
                hello.name
            );
            let _ = reply.send(Err(super::Refused {
                code: ErrorCode::AuthFailed,
                message: text,
                needs_password: true,
            }));
            return;
        };
        if !self.accounts.start_hashing(ip) {
            let text = "too many logins at once: try again shortly".to_owned();
            let _ = reply.send(refuse(ErrorCode::AuthThrottled, text));
            return;
        }
        let tx = self.self_tx.clone();
        tokio::task::spawn_blocking(move || {
            let ok = verify_password(&hash, &password);
            drop(password);
            if let Some(tx) = tx.upgrade() {
                let cmd = super::Command::Verified {
                    conn,
                    hello,
                    reply,
                    fold,
                    ok,
                };
                // The hub stopped: the session learns it from the dropped reply.
                let _ = tx.blocking_send(cmd);
            }
        });
    }

    /// The outcome of a `hello` password check.
    pub(super) fn verified(
        &mut self,
        conn: super::ConnInfo,
        hello: super::Hello,
        reply: tokio::sync::oneshot::Sender<Result<String, super::Refused>>,
        fold: String,
        ok: bool,
    ) {
        self.accounts.done_hashing(conn.peer.ip());
        // A ban may have come while the password was checked.
        let banned = self.bans.find(&fold, conn.peer.ip());
        let answer = if let Some(message) = banned {
            Err(super::Refused {
                code: ErrorCode::Banned,
                message,
                needs_password: false,
            })
        } else if ok {
            self.register(conn, hello, Some(fold))
        } else {
            self.accounts.failed(&fold, conn.peer.ip());
            tracing::info!(peer = %conn.peer, nick = hello.name, "wrong password");
            Err(super::Refused {
                code: ErrorCode::AuthFailed,
                message: format!("wrong password for {:?}", hello.name),
                needs_password: false,
            })
        };
        let _ = reply.send(answer);
    }

    /// Whether `fold` is one of the `--admin` nicks, whose accounts are made on the server only.
    fn is_admin_nick(&self, fold: &str) -> bool {
        self.config.admins.iter().any(|a| fold_nick(a) == fold)
    }

    /// Checks a private server's password from `ip`: 3 wrong ones a minute from an address,
    /// like failed logins, and it is refused unchecked (`auth_throttled`).
    pub(super) fn check_server_password(
        &mut self,
        ip: IpAddr,
        got: Option<&str>,
    ) -> Result<(), super::Refused> {
        let Some(want) = self.config.server_password.as_deref() else {
            return Ok(());
        };
        let refuse = |code: ErrorCode, message: &str| super::Refused {
            code,
            message: message.to_owned(),
            needs_password: false,
        };
        if self.accounts.ip_throttled(ip) {
            let text = "too many wrong passwords from your address: try again in a minute";
            return Err(refuse(ErrorCode::AuthThrottled, text));
        }
        if server_password_ok(Some(want), got) {
            return Ok(());
        }
        self.accounts.ip_failed(ip);
        Err(refuse(
            ErrorCode::AuthFailed,
            "this server needs its server password in hello",
        ))
    }

    /// Whether session `id` may take the nick folded to `fold` (registered nicks need a login).
    pub(super) fn may_use(&self, id: super::SessionId, fold: &str) -> bool {
        !self.accounts.is_registered(fold)
            || self.conns.get(&id).is_some_and(|c| c.authed.contains(fold))
    }

    /// `register`: hashes (and stores) off the hub; [`Self::hashed`] answers.
    pub(super) fn register_nick(&mut self, id: super::SessionId, m: chat_proto::client::Register) {
        if let Err((code, text)) = check_password(&m.password) {
            return self.refuse(id, m.id, code, text);
        }
        let Some((nick, fold, ip)) = self
            .conns
            .get(&id)
            .map(|c| (c.nick.to_string(), c.fold.to_string(), c.peer.ip()))
        else {
            return;
        };
        if self.accounts.is_registered(&fold) {
            let text = format!("nick {nick} is already registered");
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        if self.is_admin_nick(&fold) {
            // Else the first to connect after the server starts would own the operator nick.
            let text = format!(
                "{nick} is an operator nick: its account is made on the server with \
                 `chat-server account add {nick}`"
            );
            return self.refuse(id, m.id, ErrorCode::Forbidden, text);
        }
        if !self.accounts.start_hashing(ip) {
            let text = "too many registrations at once: try again shortly".to_owned();
            return self.refuse(id, m.id, ErrorCode::AuthThrottled, text);
        }
        let db = self.accounts.db();
        let tx = self.self_tx.clone();
        let password = m.password;
        let req = m.id;
        tokio::task::spawn_blocking(move || {
            let hash = hash_password(&password).and_then(|hash| match &db {
                Some(path) => store(path, &fold, &hash)
                    .map(|()| hash)
                    .map_err(|e| format!("cannot store the account: {e}")),
                None => Ok(hash),
            });
            drop(password);
            if let Some(tx) = tx.upgrade() {
                let cmd = super::Command::Hashed {
                    id,
                    req,
                    fold,
                    nick,
                    ip,
                    hash,
                };
                let _ = tx.blocking_send(cmd);
            }
        });
    }

    /// A `register` hashed and stored: the nick is now the session's account.
    pub(super) fn hashed(
        &mut self,
        id: super::SessionId,
        req: Option<String>,
        fold: String,
        nick: String,
        ip: IpAddr,
        hash: Result<String, String>,
    ) {
        self.accounts.done_hashing(ip);
        let hash = match hash {
            Ok(hash) => hash,
            Err(e) => {
                warn!(error = e, "register failed");
                let code = if self.accounts.is_registered(&fold) {
                    ErrorCode::Forbidden
                } else {
                    ErrorCode::StoreUnavailable
                };
                return self.refuse(id, req, code, format!("nick {nick} was not registered"));
            }
        };
        if self.accounts.is_registered(&fold) {
            let text = format!("nick {nick} is already registered");
            return self.refuse(id, req, ErrorCode::Forbidden, text);
        }
        self.accounts.insert(fold.clone(), hash);
        tracing::info!(session = id, nick, "nick registered");
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.authed.insert(fold);
        }
        let notice = chat_proto::server::Notice {
            code: chat_proto::server::NoticeCode::Info,
            text: format!("nick {nick} is now registered"),
            seqs: std::collections::BTreeMap::new(),
            id: req,
        };
        self.reply(id, notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!hash.contains("correct horse"));
    }

    #[test]
    fn the_fourth_failure_within_the_window_is_throttled() {
        let mut a = Accounts::load(None, Duration::from_secs(60));
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..MAX_FAILURES {
            assert!(!a.throttled("alice", ip));
            a.failed("alice", ip);
        }
        assert!(a.throttled("alice", ip));
        // The address is throttled for every account, the account from every address.
        assert!(a.throttled("bob", ip));
        assert!(a.throttled("alice", IpAddr::from([10, 0, 0, 1])));
        assert!(!a.throttled("bob", IpAddr::from([10, 0, 0, 1])));
    }

    #[test]
    fn hashing_is_bounded_per_address_and_in_all() {
        let mut a = Accounts::load(None, Duration::from_secs(60));
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        for _ in 0..MAX_HASHING_PER_IP {
            assert!(a.start_hashing(ip(0)));
        }
        assert!(!a.start_hashing(ip(0)));
        for n in MAX_HASHING_PER_IP..MAX_HASHING {
            assert!(a.start_hashing(ip(u8::try_from(n).unwrap())));
        }
        assert!(!a.start_hashing(ip(200)));
        a.done_hashing(ip(0));
        assert!(a.start_hashing(ip(200)));
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
