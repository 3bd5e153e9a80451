//! Room topics and their locks, kept while the room is empty and across restarts.
//!
//! A room lives in the hub only while someone is in it, but its topic is the room's, not its
//! members': IRC networks keep it with services, and users expect to find it again the next
//! morning. So every topic change (text or lock) is written here, and a room that comes back to
//! life takes its topic from here. With the SQLite store the topics are in the same database
//! (`topics` table, schema version 4); with `--history memory` they live as long as the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_proto::message::Timestamp;
use tracing::warn;

use crate::room::Room;

/// A room's topic, as last set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct SavedTopic {
    /// The text; empty when cleared.
    pub topic: String,
    /// Who set it.
    pub by: Option<String>,
    /// When.
    pub ts: Option<Timestamp>,
    /// Only operators may change it.
    pub locked: bool,
}

/// The topics of every room that ever had one: folded room name → topic.
pub(super) struct Topics {
    map: HashMap<String, SavedTopic>,
    db: Option<PathBuf>,
}

impl Topics {
    /// Loads the topics kept in `db` (none when `db` is `None` or unreadable).
    pub(super) fn load(db: Option<PathBuf>) -> Self {
        let map = match &db {
            Some(path) => read_topics(path).unwrap_or_else(|e| {
                warn!(error = %e, "cannot read the room topics: rooms start without one");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        Topics { map, db }
    }

    /// Gives a room that is created again (folded name `key`) its topic and lock.
    pub(super) fn restore(&self, key: &str, room: &mut Room) {
        if let Some(saved) = self.map.get(key) {
            room.topic.clone_from(&saved.topic);
            room.topic_by.clone_from(&saved.by);
            room.topic_ts = saved.ts;
            room.topic_locked = saved.locked;
        }
    }

    /// Keeps the topic and lock `room` (folded name `key`) has now.
    pub(super) fn save(&mut self, key: &str, room: &Room) {
        let saved = SavedTopic {
            topic: room.topic.clone(),
            by: room.topic_by.clone(),
            ts: room.topic_ts,
            locked: room.topic_locked,
        };
        if let Some(path) = &self.db {
            if let Err(e) = write_topic(path, key, &saved) {
                warn!(error = %e, room = key, "cannot store the topic: kept until the server stops");
            }
        }
        self.map.insert(key.to_owned(), saved);
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn read_topics(path: &Path) -> rusqlite::Result<HashMap<String, SavedTopic>> {
    let conn = open(path)?;
    let mut stmt = conn.prepare("SELECT room, topic, set_by, ts, locked FROM topics")?;
    stmt.query_map([], |row| {
        Ok((
            row.get(0)?,
            SavedTopic {
                topic: row.get(1)?,
                by: row.get(2)?,
                ts: row.get(3)?,
                locked: row.get(4)?,
            },
        ))
    })?
    .collect()
}

fn write_topic(path: &Path, key: &str, saved: &SavedTopic) -> rusqlite::Result<()> {
    open(path)?.execute(
        "INSERT INTO topics (room, topic, set_by, ts, locked) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (room) DO UPDATE SET topic = ?2, set_by = ?3, ts = ?4, locked = ?5",
        rusqlite::params![key, saved.topic, saved.by, saved.ts, saved.locked],
    )?;
    Ok(())
}
