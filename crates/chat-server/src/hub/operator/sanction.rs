//! Bans and mutes in force, kept in the SQLite store (or in memory with `--history memory`).
//!
//! The `bans` table came with the accounts (schema version 2), `mutes` with version 3. Each
//! set of sanctions is loaded once when the hub starts, and every change is written to the
//! database *before* it takes effect in memory, so what an operator was told ("X is muted")
//! survives a restart. Expired entries are ignored when checked and pruned from the database
//! at load. The writes run on the hub's task as one short statement or transaction: operators
//! act rarely, so this is accepted rather than routed through the blocking pool.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_proto::nick::fold_nick;
use tracing::warn;

use super::super::now_ms;

/// One ban.
#[derive(Debug, Clone)]
struct BanEntry {
    reason: Option<String>,
    /// Ms since the epoch; `None` = permanent.
    until: Option<i64>,
}

/// The bans in force: target (folded nick or IP address text) → ban.
pub(in crate::hub) struct Bans {
    map: HashMap<String, BanEntry>,
    db: Option<PathBuf>,
}

impl Bans {
    /// Loads the bans kept in `db` (none when `db` is `None` or unreadable).
    pub(in crate::hub) fn load(db: Option<PathBuf>) -> Self {
        let map = match &db {
            Some(path) => read_bans(path).unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the bans: none are in force");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        Bans { map, db }
    }

    /// What a user banned by nick `fold` or address `ip` reads, if a ban is in force now.
    pub(in crate::hub) fn find(&mut self, fold: &str, ip: IpAddr) -> Option<String> {
        let now = now_ms();
        self.map.retain(|_, b| b.until.is_none_or(|u| u > now));
        [fold.to_owned(), ip.to_string()]
            .iter()
            .find_map(|k| self.map.get(k))
            .map(|b| ban_text(b.reason.as_deref(), b.until))
    }

    /// Stores and enforces a ban on `key` (see [`ban_key`]); replaces an earlier one.
    pub(in crate::hub) fn set(
        &mut self,
        key: &str,
        reason: Option<String>,
        until: Option<i64>,
        by: &str,
    ) -> rusqlite::Result<()> {
        if let Some(path) = &self.db {
            open(path)?.execute(
                "INSERT OR REPLACE INTO bans (target, reason, until, by) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![key, reason, until, by],
            )?;
        }
        self.map.insert(key.to_owned(), BanEntry { reason, until });
        Ok(())
    }

    /// Lifts the ban on `key`; whether there was one.
    pub(in crate::hub) fn lift(&mut self, key: &str) -> rusqlite::Result<bool> {
        if let Some(path) = &self.db {
            open(path)?.execute("DELETE FROM bans WHERE target = ?1", [key])?;
        }
        Ok(self.map.remove(key).is_some())
    }
}

/// A ban's key: an IP address as parsed (`::ffff:a.b.c.d` as `a.b.c.d`, the form peers are
/// recorded in), else the folded nick.
pub(in crate::hub) fn ban_key(target: &str) -> String {
    match target.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => fold_nick(target),
    }
}

/// Until when a sanction lasts, in words: `until 2026-11-22 06:10 UTC`, or `permanently`.
pub(in crate::hub) fn until_text(until: Option<i64>) -> String {
    match until.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(ts) => format!("until {}", ts.strftime("%Y-%m-%d %H:%M UTC")),
        None => "permanently".to_owned(),
    }
}

/// What a banned user reads: until when (UTC, to the minute) and why.
pub(in crate::hub) fn ban_text(reason: Option<&str>, until: Option<i64>) -> String {
    let when = until_text(until);
    match reason {
        Some(r) => format!("you are banned {when}: {r}"),
        None => format!("you are banned {when}"),
    }
}

/// A mute: in which folded room (`None` = everywhere, direct messages included) and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MuteEntry {
    room: Option<String>,
    /// Ms since the epoch; `None` = until lifted.
    until: Option<i64>,
}

/// The mutes in force: folded nick → its mutes (at most one per room, and one for everywhere).
pub(in crate::hub) struct Mutes {
    map: HashMap<String, Vec<MuteEntry>>,
    db: Option<PathBuf>,
}

impl Mutes {
    /// Loads the mutes kept in `db` and prunes the expired ones there (none when `db` is `None`
    /// or unreadable).
    pub(in crate::hub) fn load(db: Option<PathBuf>) -> Self {
        let map = match &db {
            Some(path) => read_mutes(path, now_ms()).unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the mutes: none are in force");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        Mutes { map, db }
    }

    /// Whether `fold` is muted in the folded room `room` (for `None`: in direct messages).
    pub(in crate::hub) fn applies(&mut self, fold: &str, room: Option<&str>) -> bool {
        // Checked for every message: with nobody muted nothing is hashed, and the clock is read
        // only for someone who has a mute.
        if self.map.is_empty() {
            return false;
        }
        let Some(mutes) = self.map.get_mut(fold) else {
            return false;
        };
        let now = now_ms();
        mutes.retain(|m| m.until.is_none_or(|u| u > now));
        let muted = mutes
            .iter()
            .any(|m| m.room.is_none() || m.room.as_deref() == room);
        if mutes.is_empty() {
            self.map.remove(fold);
        }
        muted
    }

    /// Whether any mute, in a room or everywhere, is in force for `fold`.
    pub(in crate::hub) fn any(&mut self, fold: &str) -> bool {
        let Some(mutes) = self.map.get_mut(fold) else {
            return false;
        };
        let now = now_ms();
        mutes.retain(|m| m.until.is_none_or(|u| u > now));
        if mutes.is_empty() {
            self.map.remove(fold);
            return false;
        }
        true
    }

    /// Stores and enforces a mute of `fold` in `room` (or everywhere); replaces the earlier
    /// one for the same place. `until: None` lasts until lifted.
    pub(in crate::hub) fn set(
        &mut self,
        fold: &str,
        room: Option<String>,
        until: Option<i64>,
        by: &str,
    ) -> rusqlite::Result<()> {
        if let Some(path) = &self.db {
            let mut conn = open(path)?;
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM mutes WHERE fold = ?1 AND room IS ?2",
                rusqlite::params![fold, room],
            )?;
            tx.execute(
                "INSERT INTO mutes (fold, room, until, by) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![fold, room, until, by],
            )?;
            tx.commit()?;
        }
        let entries = self.map.entry(fold.to_owned()).or_default();
        entries.retain(|e| e.room != room);
        entries.push(MuteEntry { room, until });
        Ok(())
    }

    /// Lifts the mute of `fold` in `room` (or the one for everywhere).
    pub(in crate::hub) fn lift(&mut self, fold: &str, room: Option<&str>) -> rusqlite::Result<()> {
        if let Some(path) = &self.db {
            open(path)?.execute(
                "DELETE FROM mutes WHERE fold = ?1 AND room IS ?2",
                rusqlite::params![fold, room],
            )?;
        }
        if let Some(entries) = self.map.get_mut(fold) {
            entries.retain(|e| e.room.as_deref() != room);
            if entries.is_empty() {
                self.map.remove(fold);
            }
        }
        Ok(())
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn read_bans(path: &Path) -> rusqlite::Result<HashMap<String, BanEntry>> {
    let conn = open(path)?;
    let mut stmt = conn.prepare("SELECT target, reason, until FROM bans")?;
    stmt.query_map([], |row| {
        Ok((
            row.get(0)?,
            BanEntry {
                reason: row.get(1)?,
                until: row.get(2)?,
            },
        ))
    })?
    .collect()
}

/// The mutes in force at `now`, after deleting the expired ones.
fn read_mutes(path: &Path, now: i64) -> rusqlite::Result<HashMap<String, Vec<MuteEntry>>> {
    let conn = open(path)?;
    conn.execute(
        "DELETE FROM mutes WHERE until IS NOT NULL AND until <= ?1",
        [now],
    )?;
    let mut stmt = conn.prepare("SELECT fold, room, until FROM mutes")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            MuteEntry {
                room: row.get(1)?,
                until: row.get(2)?,
            },
        ))
    })?;
    let mut map: HashMap<String, Vec<MuteEntry>> = HashMap::new();
    for row in rows {
        let (fold, entry) = row?;
        map.entry(fold).or_default().push(entry);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_says_until_when_in_utc_or_permanently() {
        // 2026-11-22 06:10:30 UTC.
        let until = 1_795_327_830_000;
        assert_eq!(
            ban_text(Some("spam"), Some(until)),
            "you are banned until 2026-11-22 06:10 UTC: spam"
        );
        assert_eq!(ban_text(None, None), "you are banned permanently");
    }

    #[test]
    fn in_memory_mutes_apply_per_room_or_everywhere_and_expire() {
        let mut m = Mutes::load(None);
        m.set("eve", Some("#rust".into()), None, "root").unwrap();
        assert!(m.applies("eve", Some("#rust")));
        assert!(!m.applies("eve", Some("#lobby")));
        assert!(!m.applies("eve", None));
        m.set("eve", None, Some(now_ms() - 1), "root").unwrap();
        assert!(!m.applies("eve", None), "expired");
        m.set("eve", None, Some(now_ms() + 60_000), "root").unwrap();
        assert!(m.applies("eve", Some("#lobby")));
        m.lift("eve", None).unwrap();
        assert!(!m.applies("eve", Some("#lobby")));
        assert!(m.applies("eve", Some("#rust")));
    }
}
