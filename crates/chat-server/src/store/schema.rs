//! The schema, its migrations, and the checks made before a store is served.
//!
//! `PRAGMA user_version` is the number of migrations applied. Each migration runs in its own
//! transaction together with the version bump, so a crash leaves either the old or the new
//! schema. A store written by a newer server (a version we do not know) is refused.

use rusqlite::Connection;

use super::StoreError;

/// The migrations, oldest first; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
/// Never edit a released migration: add a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: messages, per-conversation counters, full-text index.
    "
    CREATE TABLE messages (
        mid         INTEGER PRIMARY KEY,    -- server-wide message id (the rowid)
        conv        TEXT    NOT NULL,       -- folded room name, or '@a b' for a pair of users
        seq         INTEGER NOT NULL,       -- per conversation, contiguous from 1
        ts          INTEGER NOT NULL,       -- ms since the epoch
        sender      TEXT    NOT NULL,       -- nick as shown
        sender_fold TEXT    NOT NULL,       -- folded nick: identity for resends
        client_id   TEXT,                   -- the send's id, if any
        room        TEXT,                   -- room name as shown, for a room message
        recipient   TEXT,                   -- recipient's nick, for a direct message
        text        TEXT    NOT NULL,
        action      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (conv, seq),
        UNIQUE (sender_fold, client_id)
    );
    CREATE INDEX messages_ts ON messages (ts);
    -- The last seq and mid of every conversation: they survive retention deleting messages.
    CREATE TABLE convs (
        conv     TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_mid INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content = 'messages', content_rowid = 'mid',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.mid, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.mid, old.text);
    END;
    ",
    // 2: accounts (registered nicks with an argon2 hash) and bans.
    "
    CREATE TABLE accounts (
        fold    TEXT PRIMARY KEY,   -- folded nick (chat_proto::nick::fold_nick)
        hash    TEXT NOT NULL,      -- argon2 PHC string; never the password
        created INTEGER NOT NULL    -- ms since the epoch
    ) WITHOUT ROWID;
    CREATE TABLE bans (
        target  TEXT PRIMARY KEY,   -- folded nick, or an IP address
        reason  TEXT,
        until   INTEGER,            -- ms since the epoch; NULL = permanent
        by      TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    // 3: mutes, kept across restarts like bans.
    "
    CREATE TABLE mutes (
        fold    TEXT NOT NULL,      -- folded nick
        room    TEXT,               -- folded room name; NULL = everywhere (direct messages too)
        until   INTEGER,            -- ms since the epoch; NULL = until lifted
        by      TEXT NOT NULL
    );
    -- One mute per nick and place.
    CREATE UNIQUE INDEX mutes_place ON mutes (fold, IFNULL(room, ''));
    ",
    // 4: room topics and their locks, kept while a room is empty and across restarts.
    "
    CREATE TABLE topics (
        room    TEXT PRIMARY KEY,   -- folded room name
        topic   TEXT NOT NULL,      -- empty when cleared
        set_by  TEXT,
        ts      INTEGER,            -- ms since the epoch
        locked  INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    ",
    // 5: the writer indexes each batch's texts for search with one statement, in the batch's
    // transaction. The per-row trigger made FTS5 write its index at every row's statement
    // (a third of the store's time); search sees exactly the committed messages as before.
    "
    DROP TRIGGER messages_fts_insert;
    ",
    // 6: fewer B-trees written per message, since the store thread's CPU limits durable
    // fan-out. The table is rebuilt because a UNIQUE constraint of CREATE TABLE cannot be
    // dropped: `(sender_fold, client_id)` becomes a plain index that leads with the client id
    // (ids differ at once, so comparisons stop at the first column and there is no conflict
    // probe before each insert) and leaves out messages without one; resends are still found
    // by it, and the hub never appends an id it has stored. `(conv, seq)` stays unique: it
    // guards the sequence that history and resume rely on. `messages_ts` is dropped here and
    // kept only while retention by age is on (see `age_index`). The search index is rebuilt
    // with `columnsize=0`: it kept one row per message of token counts, used only for ranking,
    // and search orders by mid.
    "
    CREATE TABLE messages_new (
        mid         INTEGER PRIMARY KEY,    -- server-wide message id (the rowid)
        conv        TEXT    NOT NULL,       -- folded room name, or '@a b' for a pair of users
        seq         INTEGER NOT NULL,       -- per conversation, contiguous from 1
        ts          INTEGER NOT NULL,       -- ms since the epoch
        sender      TEXT    NOT NULL,       -- nick as shown
        sender_fold TEXT    NOT NULL,       -- folded nick: identity for resends
        client_id   TEXT,                   -- the send's id, if any
        room        TEXT,                   -- room name as shown, for a room message
        recipient   TEXT,                   -- recipient's nick, for a direct message
        text        TEXT    NOT NULL,
        action      INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO messages_new
        SELECT mid, conv, seq, ts, sender, sender_fold, client_id, room, recipient, text, action
        FROM messages ORDER BY mid;
    DROP TRIGGER messages_fts_delete;
    DROP TABLE messages_fts;
    DROP TABLE messages;
    ALTER TABLE messages_new RENAME TO messages;
    CREATE UNIQUE INDEX messages_conv_seq ON messages (conv, seq);
    CREATE INDEX messages_sent ON messages (client_id, sender_fold) WHERE client_id IS NOT NULL;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content = 'messages', content_rowid = 'mid',
        tokenize = 'unicode61 remove_diacritics 2', columnsize = 0
    );
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.mid, old.text);
    END;
    ",
];

/// The schema version this build writes.
pub fn current_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Refuses a damaged file: `PRAGMA integrity_check` must answer exactly `ok`.
pub fn check_integrity(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let problems: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
    Err(StoreError::Corrupt(shown.join("; ")))
}

/// Creates `messages_ts` when retention by age is on and drops it when it is off: nothing else
/// reads messages by time, and an index costs a B-tree insert for every message. Turning age
/// retention on builds it at the next start (once, over the whole history).
pub fn age_index(conn: &Connection, wanted: bool) -> rusqlite::Result<()> {
    conn.execute_batch(if wanted {
        "CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts)"
    } else {
        "DROP INDEX IF EXISTS messages_ts"
    })
}

/// Brings the schema up to [`current_version`], one transaction per migration.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let want = current_version();
    if found > want {
        return Err(StoreError::TooNew { found, known: want });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}
