//! The durable store: SQLite (bundled) in WAL mode, one writer thread with group commit.
//!
//! ```text
//!  hub task ── append (try_send, bounded) ──▶ writer thread ── BEGIN; INSERT ×N; COMMIT (fsync)
//!     ▲                                          │
//!     └──────── Done {count, result} (bounded) ◀─┘     the hub acks and broadcasts on Done
//!  hub task ── reads (join bursts, history, search, resends) ──▶ its own read connection
//! ```
//!
//! The writer thread owns the write connection. It takes whatever appends are queued (never
//! waiting for more, up to [`MAX_BATCH`]), writes them in one transaction (multi-row INSERTs,
//! the search index in one statement) and commits; with `synchronous=FULL` the commit returns
//! once the WAL is on disk. Then it reports the batch to the hub, which acks and broadcasts in
//! order. So many messages share one fsync and the hub never waits for the disk. Between
//! batches the thread enforces retention.
//!
//! Each message costs the writer a row, two index entries (`(conv, seq)`, unique, for pages
//! and resume; `(client_id, sender_fold)` for resends) and its search terms; `messages_ts`
//! exists only while retention by age is on. The hub's resend look-up for every new client id
//! is answered by a Bloom filter (`sent`) unless the pair may be stored.
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
//! - this file: [`SqliteStore`] (open, appends, close), [`StoreOptions`], [`StoreError`],
//!   [`StoreControl`].
//! - `read`: the hub's reads (pages, resends, search) and the FTS query builder.
//! - `schema`: the migrations and the integrity check.
//! - `sent`: the filter that spares most resend look-ups a query.
//! - `writer`: the writer thread: batches, commits, failure epochs, retention.

mod read;
mod schema;
mod sent;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::ValueEnum;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use crate::history::{Done, HistoryStore, Record};

pub use read::fts_query;
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
    Append(Arc<Record>, u64),
    /// Set `PRAGMA max_page_count` on the write connection (tests: a full disk).
    MaxPageCount(u64),
    /// Enforce retention now, then report on the sender.
    Retention(std::sync::mpsc::Sender<usize>),
    /// Wait until the sender is dropped (tests: several appends queued before the writer
    /// takes them, so that they form one batch).
    #[cfg(test)]
    Hold(std::sync::mpsc::Receiver<()>),
    /// Commit what is queued before this, then stop (a [`StoreControl`] may still hold a sender,
    /// so the queue closing is not enough).
    Stop,
}

/// The SQLite store: a read connection for the hub, and the writer thread's queue.
pub struct SqliteStore {
    read: Connection,
    /// The (sender, client id) pairs the store may hold; `None`: too many, always query.
    sent: Option<sent::SentFilter>,
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
            Job::Append(r, e) => write!(f, "Append({}#{}, epoch {e})", r.conv(), r.msg.seq),
            Job::MaxPageCount(n) => write!(f, "MaxPageCount({n})"),
            Job::Retention(_) => f.write_str("Retention"),
            #[cfg(test)]
            Job::Hold(_) => f.write_str("Hold"),
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

    /// Holds the writer until the returned sender is dropped: what is queued meanwhile is
    /// taken as one batch.
    #[cfg(test)]
    pub fn hold(&self) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = self.jobs.send(Job::Hold(rx));
        tx
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
        private_dir(&opts.dir).map_err(|source| StoreError::Dir {
            path: opts.dir.clone(),
            source,
        })?;
        let lock = lock_dir(&opts.dir)?;
        let path = opts.dir.join(DB_FILE);
        private_file(&path).map_err(|source| StoreError::Dir {
            path: path.clone(),
            source,
        })?;
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
        schema::age_index(&write, opts.retention_days > 0)?;
        let read = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        read.busy_timeout(Duration::from_secs(2))?;
        read.pragma_update(None, "query_only", true)?;
        let sent = sent::SentFilter::load(&read, sent::MAX_KEYS_AT_OPEN)?;
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
            sent,
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

/// Holds the data directory for this process: an SQLite lock file in exclusive mode, whose
/// lock the OS drops when the process ends (even on `kill -9`).
/// Creates the data directory (and its parents) readable by its owner only: it holds the
/// history, and the accounts' password hashes. An existing directory others can read is left
/// as it is, with a warning.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777),
                "the data directory is open to other users: chmod 700 it");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates the database file readable and writable by its owner only (SQLite gives its WAL
/// and shared-memory files the same mode); warns about an existing one others can read.
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(db = %path.display(), mode = format!("{:o}", mode & 0o777),
                "the database is readable by other users: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

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

#[cfg(test)]
mod tests;

/// The data directory `config` names: `--data-dir`, else the XDG data directory.
pub fn data_dir(config: &crate::Config) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    match &config.data_dir {
        Some(dir) => Ok(dir.clone()),
        None => directories::ProjectDirs::from("", "", "chat")
            .map(|d| d.data_dir().to_owned())
            .context("no home directory to keep the store in: pass --data-dir"),
    }
}

/// Opens the store `config` asks for: SQLite in `--data-dir` (default: the XDG data
/// directory), or memory.
pub fn open_configured(config: &crate::Config) -> anyhow::Result<Box<dyn HistoryStore>> {
    use anyhow::Context;
    match config.history {
        crate::history::HistoryKind::Memory => Ok(Box::new(crate::history::MemoryHistory::new(
            config.history_keep,
        ))),
        crate::history::HistoryKind::Sqlite => {
            let dir = data_dir(config)?;
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
