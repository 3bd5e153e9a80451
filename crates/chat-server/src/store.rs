//! The durable store: SQLite (bundled) in WAL mode, one writer thread with group commit.
//!
//! ```text
//!  hub task ── append (try_send, bounded) ──▶ writer thread ── BEGIN; INSERT ×N; COMMIT (fsync)
//!     ▲                                          │
//!     └──────── Done {count, result} (bounded) ◀─┘     the hub acks and broadcasts on Done
//!  hub task ── reads (join bursts, history, search, resends) ──▶ its own read connection
//! ```
//!
//! The writer thread owns the write connection. It takes whatever appends are queued (waiting
//! a couple of milliseconds for more, up to [`MAX_BATCH`]), writes them in one transaction and
//! commits; with `synchronous=FULL` the commit returns once the WAL is on disk. Then it reports
//! the batch to the hub, which acks and broadcasts in order. So many messages share one fsync
//! and the hub never waits for the disk. Between batches the thread enforces retention.
//!
//! The hub reads through a second connection: WAL lets it read committed data while the writer
//! writes. Those reads run on the hub's task; they are indexed and bounded (a page, a search of
//! at most `history_page` rows), which is what lets a join burst be read in the same turn as the
//! member is added (no gap, no duplicate with the live stream).
//!
//! **Architecture Invariant:** the hub only `try_send`s to the writer and never waits for it;
//! the writer waits on the completion channel, which the hub always drains. No cycle waits.
//!
//! At open: an exclusive lock file (one server per data directory), `PRAGMA integrity_check`
//! (a damaged store is refused with [`StoreError::Corrupt`]), and the schema migrations.
//!
//! # Layout
//! - this file: [`SqliteStore`] (open, reads), [`StoreOptions`], [`StoreError`], [`StoreControl`].
//! - `schema`: the migrations and the integrity check.
//! - `writer`: the writer thread: batches, commits, failure epochs, retention.

mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use chat_proto::server::ChatMessage;
use clap::ValueEnum;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::mpsc;

use crate::history::{Appended, Done, HistoryError, HistoryStore, Page, Record, search_words};

pub use schema::{MIGRATIONS, current_version};

/// Most appends committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Appends queued to the writer at most; the hub stops taking requests well before.
pub const WRITE_QUEUE: usize = 8192;
/// Batch reports queued to the hub at most.
const DONE_QUEUE: usize = 1024;
/// Longest a search may run on the hub's task; past it the matches found so far are returned
/// with `more`.
const SEARCH_BUDGET: Duration = Duration::from_millis(30);
/// The database file inside the data directory.
pub const DB_FILE: &str = "chat.db";

/// SQLite's `synchronous` setting for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// Every commit waits for the disk: an acked message survives a power cut.
    Full,
    /// WAL commits are not synced: survives a crash of the server, maybe not a power cut.
    Normal,
}

impl SyncMode {
    fn pragma(self) -> &'static str {
        match self {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The data directory; created if missing. The database is `chat.db` inside it.
    pub dir: PathBuf,
    /// SQLite `synchronous`.
    pub sync: SyncMode,
    /// Messages kept per conversation (0: no limit).
    pub retention_count: u64,
    /// Days a message is kept (0: forever).
    pub retention_days: u32,
    /// How often the writer enforces retention.
    pub retention_interval: Duration,
}

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an SQLite database at all.
    #[error(
        "{path} is not a chat store (not an SQLite database): move it away or restore a backup"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// `PRAGMA integrity_check` found damage.
    #[error(
        "the store is corrupt (integrity check: {0}); refusing to serve it: restore a backup or move it away"
    )]
    Corrupt(String),
    /// The schema version is newer than this build knows.
    #[error(
        "the store has schema version {found}, this server knows up to {known}: use a newer server"
    )]
    TooNew {
        /// `user_version` found.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// Another server holds the data directory.
    #[error("the data directory {0} is in use by another chat-server")]
    InUse(PathBuf),
    /// The writer thread could not be started.
    #[error("cannot start the store writer thread: {0}")]
    Thread(std::io::Error),
}

/// What the writer thread is asked to do.
enum Job {
    /// Store a record (epoch: see [`crate::history`]).
    Append(Record, u64),
    /// Set `PRAGMA max_page_count` on the write connection (tests: a full disk).
    MaxPageCount(u64),
    /// Enforce retention now, then report on the sender.
    Retention(std::sync::mpsc::Sender<usize>),
    /// Commit what is queued before this, then stop (a [`StoreControl`] may still hold a sender,
    /// so the queue closing is not enough).
    Stop,
}

/// The SQLite store: a read connection for the hub, and the writer thread's queue.
pub struct SqliteStore {
    read: Connection,
    path: PathBuf,
    /// Dropping it lets the writer finish the queue and stop.
    jobs: Option<SyncSender<Job>>,
    done_rx: Option<mpsc::Receiver<Done>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// A side door to the writer, for tests and operations: simulate a full disk, run retention.
#[derive(Debug, Clone)]
pub struct StoreControl {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Append(r, e) => write!(f, "Append({}#{}, epoch {e})", r.conv, r.msg.seq),
            Job::MaxPageCount(n) => write!(f, "MaxPageCount({n})"),
            Job::Retention(_) => f.write_str("Retention"),
            Job::Stop => f.write_str("Stop"),
        }
    }
}

impl StoreControl {
    /// Sets `PRAGMA max_page_count` on the write connection: a value at or below the current
    /// size makes every write fail with "database or disk is full"; a large one lifts it.
    pub fn set_max_page_count(&self, pages: u64) {
        let _ = self.jobs.send(Job::MaxPageCount(pages));
    }

    /// Enforces retention now; returns how many messages were deleted.
    pub fn enforce_retention(&self) -> usize {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.jobs.send(Job::Retention(tx)).is_err() {
            return 0;
        }
        rx.recv().unwrap_or(0)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `opts.dir`, checks and migrates it, and starts
    /// the writer thread.
    pub fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&opts.dir).map_err(|source| StoreError::Dir {
            path: opts.dir.clone(),
            source,
        })?;
        let lock = lock_dir(&opts.dir)?;
        let path = opts.dir.join(DB_FILE);
        let mut write = Connection::open(&path)?;
        let not_db = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                StoreError::NotADatabase { path: path.clone() }
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Sqlite(e),
        };
        write.busy_timeout(Duration::from_secs(5))?;
        let mode: String = write
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(not_db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "the store is not in WAL mode");
        }
        write.pragma_update(None, "synchronous", opts.sync.pragma())?;
        schema::check_integrity(&write).map_err(|e| match e {
            StoreError::Sqlite(e) => not_db(e),
            other => other,
        })?;
        schema::migrate(&mut write)?;
        let read = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        read.busy_timeout(Duration::from_secs(2))?;
        read.pragma_update(None, "query_only", true)?;
        let (jobs, jobs_rx) = std::sync::mpsc::sync_channel(WRITE_QUEUE);
        let (done_tx, done_rx) = mpsc::channel(DONE_QUEUE);
        let worker = writer::Writer::new(write, lock, opts);
        let thread = std::thread::Builder::new()
            .name("chat-store".into())
            .spawn(move || worker.run(&jobs_rx, &done_tx))
            .map_err(StoreError::Thread)?;
        tracing::info!(path = %path.display(), sync = ?opts.sync, "store opened");
        Ok(SqliteStore {
            read,
            path,
            jobs: Some(jobs),
            done_rx: Some(done_rx),
            thread: Some(thread),
        })
    }

    /// A handle for tests and operations (see [`StoreControl`]).
    pub fn control(&self) -> Option<StoreControl> {
        self.jobs.clone().map(|jobs| StoreControl { jobs })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn page(
        &self,
        sql: &str,
        conv: &str,
        bound: u64,
        n: usize,
        newest: bool,
    ) -> Result<Page, HistoryError> {
        let mut stmt = self.read.prepare_cached(sql).map_err(unavailable)?;
        let rows = stmt
            .query_map(params![conv, bound, n.saturating_add(1)], message_from_row)
            .map_err(unavailable)?;
        let mut messages: Vec<ChatMessage> = rows.collect::<Result<_, _>>().map_err(unavailable)?;
        let more = messages.len() > n;
        messages.truncate(n);
        if newest {
            messages.reverse();
        }
        Ok(Page { messages, more })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The completion channel goes first so a writer blocked on it is released; then the
        // writer commits what is queued and stops.
        self.done_rx = None;
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(Job::Stop);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

/// The columns of a message row, in the order [`message_from_row`] reads them.
const COLUMNS: &str = "mid, seq, ts, sender, room, recipient, text, action";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        mid: row.get(0)?,
        seq: row.get(1)?,
        ts: row.get(2)?,
        from: row.get(3)?,
        room: row.get(4)?,
        to: row.get(5)?,
        text: row.get(6)?,
        action: row.get(7)?,
    })
}

fn unavailable(e: rusqlite::Error) -> HistoryError {
    HistoryError::Unavailable(e.to_string())
}

/// The search query in FTS5 syntax: every word a quoted string (so nothing the user types is
/// read as FTS syntax), all required. `None` when there is no word.
pub fn fts_query(query: &str) -> Option<String> {
    let words = search_words(query);
    if words.is_empty() {
        return None;
    }
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    Some(quoted.join(" "))
}

/// Holds the data directory for this process: an SQLite lock file in exclusive mode, whose
/// lock the OS drops when the process ends (even on `kill -9`).
fn lock_dir(dir: &Path) -> Result<Connection, StoreError> {
    let lock = Connection::open(dir.join("chat.lock"))?;
    // Fail at once rather than wait for the other server.
    lock.busy_timeout(Duration::ZERO)?;
    lock.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    match lock.execute_batch("BEGIN EXCLUSIVE") {
        Ok(()) => Ok(lock),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            Err(StoreError::InUse(dir.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

impl HistoryStore for SqliteStore {
    fn append(&mut self, record: Record, epoch: u64) -> Result<Appended, HistoryError> {
        let Some(jobs) = &self.jobs else {
            return Err(HistoryError::Unavailable("the store is closed".into()));
        };
        match jobs.try_send(Job::Append(record, epoch)) {
            Ok(()) => Ok(Appended::Queued),
            Err(TrySendError::Full(_)) => Err(HistoryError::Unavailable(
                "the store is too far behind".into(),
            )),
            Err(TrySendError::Disconnected(_)) => {
                Err(HistoryError::Unavailable("the store writer stopped".into()))
            }
        }
    }

    fn completions(&mut self) -> Option<mpsc::Receiver<Done>> {
        self.done_rx.take()
    }

    fn before(&self, conv: &str, before: u64, n: usize) -> Result<Page, HistoryError> {
        let before = before.min(i64::MAX as u64);
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE conv = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        );
        self.page(&sql, conv, before, n, true)
    }

    fn after(&self, conv: &str, after: u64, n: usize) -> Result<Page, HistoryError> {
        let after = after.min(i64::MAX as u64);
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE conv = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
        );
        self.page(&sql, conv, after, n, false)
    }

    fn last_seq(&self, conv: &str) -> Result<u64, HistoryError> {
        let mut stmt = self
            .read
            .prepare_cached("SELECT last_seq FROM convs WHERE conv = ?1")
            .map_err(unavailable)?;
        let seq: Option<u64> = stmt
            .query_row([conv], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        Ok(seq.unwrap_or(0))
    }

    fn last_mid(&self) -> Result<u64, HistoryError> {
        self.read
            .query_row("SELECT coalesce(max(last_mid), 0) FROM convs", [], |r| {
                r.get(0)
            })
            .map_err(unavailable)
    }

    fn find_sent(
        &self,
        sender_fold: &str,
        client_id: &str,
    ) -> Result<Option<Record>, HistoryError> {
        let sql = format!(
            "SELECT {COLUMNS}, conv FROM messages WHERE sender_fold = ?1 AND client_id = ?2"
        );
        let mut stmt = self.read.prepare_cached(&sql).map_err(unavailable)?;
        stmt.query_row([sender_fold, client_id], |row| {
            Ok(Record {
                msg: message_from_row(row)?,
                conv: row.get(8)?,
                sender_fold: sender_fold.to_owned(),
                client_id: Some(client_id.to_owned()),
            })
        })
        .optional()
        .map_err(unavailable)
    }

    fn search(&self, conv: &str, query: &str, n: usize) -> Result<Page, HistoryError> {
        let Some(fts) = fts_query(query) else {
            return Ok(Page::default());
        };
        // Newest first by the index's own rowid (the mid, which grows with seq within a
        // conversation), so the scan stops after `n + 1` matches in this room. A query whose
        // matches are mostly in other rooms could still scan long: the budget bounds it.
        let sql = "SELECT m.mid, m.seq, m.ts, m.sender, m.room, m.recipient, m.text, m.action \
                   FROM messages_fts JOIN messages m ON m.mid = messages_fts.rowid \
                   WHERE messages_fts MATCH ?1 AND m.conv = ?2 \
                   ORDER BY messages_fts.rowid DESC LIMIT ?3";
        let deadline = std::time::Instant::now() + SEARCH_BUDGET;
        self.read
            .progress_handler(1000, Some(move || std::time::Instant::now() > deadline));
        let found = (|| {
            let mut stmt = self.read.prepare_cached(sql)?;
            let rows = stmt.query_map(params![fts, conv, n.saturating_add(1)], message_from_row)?;
            let mut messages = Vec::new();
            let mut cut_short = false;
            for row in rows {
                match row {
                    Ok(m) => messages.push(m),
                    Err(e)
                        if e.sqlite_error_code()
                            == Some(rusqlite::ErrorCode::OperationInterrupted) =>
                    {
                        cut_short = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((messages, cut_short))
        })();
        self.read.progress_handler(0, None::<fn() -> bool>);
        let (mut messages, cut_short) = found.map_err(unavailable)?;
        let more = cut_short || messages.len() > n;
        messages.truncate(n);
        messages.reverse();
        Ok(Page { messages, more })
    }
}

#[cfg(test)]
mod tests;

/// Opens the store `config` asks for: SQLite in `--data-dir` (default: the XDG data
/// directory), or memory.
pub fn open_configured(config: &crate::Config) -> anyhow::Result<Box<dyn HistoryStore>> {
    use anyhow::Context;
    match config.history {
        crate::history::HistoryKind::Memory => Ok(Box::new(crate::history::MemoryHistory::new(
            config.history_keep,
        ))),
        crate::history::HistoryKind::Sqlite => {
            let dir = match &config.data_dir {
                Some(dir) => dir.clone(),
                None => directories::ProjectDirs::from("", "", "chat")
                    .map(|d| d.data_dir().to_owned())
                    .context("no home directory to keep the store in: pass --data-dir")?,
            };
            let opts = StoreOptions {
                dir: dir.clone(),
                sync: config.sync,
                retention_count: config.retention_count,
                retention_days: config.retention_days,
                retention_interval: config.retention_interval,
            };
            let store = SqliteStore::open(&opts)
                .with_context(|| format!("cannot open the message store in {}", dir.display()))?;
            Ok(Box::new(store))
        }
    }
}
