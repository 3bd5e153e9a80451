//! The writer thread: the only code that writes the database.
//!
//! It waits for an append, takes what else is queued (up to [`MAX_BATCH`]), writes the batch in
//! one transaction and commits, then reports it to the hub with one [`Done`]. It never waits
//! for more: what arrives during a commit is the next batch (group commit), so a batch is as
//! large as the load makes it and a lone message is committed at once. Between batches, and at least every retention interval, it enforces
//! retention in small chunks so a large purge never holds up appends for long.
//!
//! A failed batch raises `min_epoch` past its epoch: the appends queued behind it, which the
//! hub sent before it heard of the failure, are then refused without being written, so a
//! room's sequence never gets a hole (see [`crate::history`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Job, MAX_BATCH, StoreOptions};
use crate::history::{Done, HistoryError, Record};

/// Deletes up to `?2` messages beyond the newest `?1` of their conversation. CROSS JOIN keeps
/// SQLite from scanning the whole `(conv, seq)` index (it chose that plan for the plain JOIN):
/// for each conversation only the range of its old messages is read.
pub(super) const RETENTION_BY_COUNT: &str = "DELETE FROM messages WHERE mid IN \
     (SELECT m.mid FROM convs c CROSS JOIN messages m \
      ON m.conv = c.conv AND m.seq <= c.last_seq - ?1 LIMIT ?2)";

/// Messages deleted per retention transaction.
const RETENTION_CHUNK: usize = 2000;

/// The thread's state.
pub(super) struct Writer {
    conn: Connection,
    /// Holds the data directory's lock for as long as the thread runs.
    _lock: Connection,
    retention_count: u64,
    retention_days: u32,
    retention_interval: Duration,
    /// Appends with an older epoch are refused without being written.
    min_epoch: u64,
    /// The text of each multi-row INSERT, one per [`INSERT_ROWS`] (the statement cache is keyed
    /// by it, so it is built once).
    insert_sql: Vec<String>,
}

impl Writer {
    pub(super) fn new(conn: Connection, lock: Connection, opts: &StoreOptions) -> Self {
        Writer {
            conn,
            _lock: lock,
            retention_count: opts.retention_count,
            retention_days: opts.retention_days,
            retention_interval: opts.retention_interval.max(Duration::from_millis(10)),
            min_epoch: 0,
            insert_sql: INSERT_ROWS.iter().map(|&rows| insert_sql(rows)).collect(),
        }
    }

    /// Runs until the job queue closes, committing every append that was queued.
    pub(super) fn run(mut self, jobs: &Receiver<Job>, done: &mpsc::Sender<Done>) {
        let mut next_retention = Instant::now() + self.retention_interval;
        loop {
            let wait = next_retention.saturating_duration_since(Instant::now());
            let first = match jobs.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    let deleted = self.retention_chunk();
                    // More to delete: come back soon, after the appends that queued meanwhile.
                    next_retention = Instant::now()
                        + if deleted == RETENTION_CHUNK {
                            Duration::from_millis(50)
                        } else {
                            self.retention_interval
                        };
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = Vec::new();
            let mut stop = self.take(first, &mut batch);
            while !stop && batch.len() < MAX_BATCH {
                let Ok(job) = jobs.try_recv() else {
                    break;
                };
                stop = self.take(job, &mut batch);
            }
            self.write(batch, done);
            if stop {
                break;
            }
        }
        debug!("store writer stopped");
    }

    /// Control jobs are carried out at once; appends join the batch. True for [`Job::Stop`].
    fn take(&mut self, job: Job, batch: &mut Vec<(Arc<Record>, u64)>) -> bool {
        match job {
            Job::Stop => return true,
            Job::Append(record, epoch) => batch.push((record, epoch)),
            Job::MaxPageCount(pages) => {
                match self
                    .conn
                    .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                        r.get::<_, i64>(0)
                    }) {
                    Ok(now) => info!(pages = now, "store max_page_count set"),
                    Err(e) => warn!(error = %e, "cannot set max_page_count"),
                }
            }
            #[cfg(test)]
            Job::Hold(release) => {
                let _ = release.recv();
            }
            Job::Retention(reply) => {
                let mut total = 0;
                loop {
                    let n = self.retention_chunk();
                    total += n;
                    if n < RETENTION_CHUNK {
                        break;
                    }
                }
                let _ = reply.send(total);
            }
        }
        false
    }

    /// Writes one batch and reports it: first the stale appends (refused unwritten), then the
    /// rest in one transaction.
    fn write(&mut self, batch: Vec<(Arc<Record>, u64)>, done: &mpsc::Sender<Done>) {
        if batch.is_empty() {
            return;
        }
        // Epochs never decrease along the queue, so the stale ones are a prefix.
        let stale = batch
            .iter()
            .take_while(|(_, e)| *e < self.min_epoch)
            .count();
        if stale > 0 {
            report(
                done,
                Done {
                    count: stale,
                    result: Err(HistoryError::Unavailable(
                        "the store failed a moment ago; send again".into(),
                    )),
                },
            );
        }
        let live = &batch[stale..];
        if live.is_empty() {
            return;
        }
        let result = self.commit(live).map_err(|e| {
            let epoch = live.iter().map(|(_, e)| *e).max().unwrap_or(0);
            self.min_epoch = self.min_epoch.max(epoch + 1);
            warn!(error = %e, messages = live.len(), "store commit failed; messages refused");
            HistoryError::Unavailable(e.to_string())
        });
        report(
            done,
            Done {
                count: live.len(),
                result,
            },
        );
    }

    fn commit(&mut self, batch: &[(Arc<Record>, u64)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut counter = tx.prepare_cached(
                "INSERT INTO convs (conv, last_seq, last_mid) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (conv) DO UPDATE SET \
                 last_seq = max(last_seq, excluded.last_seq), \
                 last_mid = max(last_mid, excluded.last_mid)",
            )?;
            // The rows go in by multi-row statements of INSERT_ROWS[k] rows, largest first: a
            // statement's start and end (cursors opened, the VM halted) cost as much as a row.
            let mut rest = batch;
            for (rows, sql) in INSERT_ROWS.iter().zip(&self.insert_sql) {
                while rest.len() >= *rows {
                    let (chunk, after) = rest.split_at(*rows);
                    insert_rows(&tx, sql, chunk)?;
                    rest = after;
                }
            }
            // Each conversation's counters once per batch, at its last message of the batch.
            let mut last: HashMap<&str, (u64, u64)> = HashMap::new();
            for (r, _) in batch {
                let m = &r.msg;
                let entry = last.entry(r.conv()).or_insert((m.seq, m.mid));
                *entry = (entry.0.max(m.seq), entry.1.max(m.mid));
            }
            for (conv, (seq, mid)) in last {
                counter.execute(params![conv, seq, mid])?;
            }
            // The batch's texts into the search index in one statement: FTS5 writes its index
            // once per statement, so one per row was most of the cost of a commit.
            index_texts(&tx, batch)?;
        }
        tx.commit()
    }

    /// Deletes at most one chunk of messages beyond the retention limits; returns how many.
    fn retention_chunk(&mut self) -> usize {
        let mut deleted = 0;
        if self.retention_count > 0 {
            deleted += self.delete(
                RETENTION_BY_COUNT,
                self.retention_count.min(i64::MAX as u64) as i64,
            );
        }
        if self.retention_days > 0 && deleted < RETENTION_CHUNK {
            let cutoff = crate::hub::now_ms() - i64::from(self.retention_days) * 86_400_000;
            deleted += self.delete(
                "DELETE FROM messages WHERE mid IN \
                 (SELECT mid FROM messages WHERE ts < ?1 LIMIT ?2)",
                cutoff,
            );
        }
        if deleted > 0 {
            info!(deleted, "retention: old messages deleted");
        }
        deleted
    }

    fn delete(&mut self, sql: &str, bound: i64) -> usize {
        let run = |conn: &mut Connection| -> rusqlite::Result<usize> {
            let tx = conn.transaction()?;
            let n = tx.execute(sql, params![bound, RETENTION_CHUNK])?;
            tx.commit()?;
            Ok(n)
        };
        run(&mut self.conn).unwrap_or_else(|e| {
            warn!(error = %e, "retention failed; will try again");
            0
        })
    }
}

/// Indexes the texts of a batch that was just inserted, in one statement. The hub numbers
/// messages server-wide, so a batch's mids are nearly always consecutive: then the rows are
/// read by a range of the table's own key, with nothing to build or parse. Otherwise (a gap
/// left by a refused batch, a test) the list of mids is walked (CROSS JOIN fixes that order:
/// `mid IN (list)` made SQLite copy the list into a temporary B-tree first).
fn index_texts(tx: &Connection, batch: &[(Arc<Record>, u64)]) -> rusqlite::Result<()> {
    let (Some((first, _)), Some((last, _))) = (batch.first(), batch.last()) else {
        return Ok(());
    };
    let (first, last) = (first.msg.mid, last.msg.mid);
    if gapless(batch) {
        let mut index = tx.prepare_cached(
            "INSERT INTO messages_fts (rowid, text) SELECT mid, text FROM messages \
             WHERE mid BETWEEN ?1 AND ?2",
        )?;
        index.execute(params![first, last])?;
        return Ok(());
    }
    let mut mids = String::with_capacity(batch.len() * 12 + 2);
    mids.push('[');
    for (i, (r, _)) in batch.iter().enumerate() {
        if i > 0 {
            mids.push(',');
        }
        let _ = write!(mids, "{}", r.msg.mid);
    }
    mids.push(']');
    let mut index = tx.prepare_cached(
        "INSERT INTO messages_fts (rowid, text) SELECT m.mid, m.text \
         FROM json_each(?1) AS j CROSS JOIN messages AS m ON m.mid = j.value",
    )?;
    index.execute([mids])?;
    Ok(())
}

/// True when the batch's mids are consecutive and increasing: then `BETWEEN first AND last`
/// selects exactly its rows (mids are unique, and every one of the range is in the batch).
fn gapless(batch: &[(Arc<Record>, u64)]) -> bool {
    let Some((first, _)) = batch.first() else {
        return true;
    };
    let first = first.msg.mid;
    batch
        .iter()
        .zip(0u64..)
        .all(|((r, _), i)| first.checked_add(i) == Some(r.msg.mid))
}

/// The sizes of the multi-row INSERTs a batch is cut into, largest first; the last must be 1.
const INSERT_ROWS: [usize; 6] = [32, 16, 8, 4, 2, 1];

/// `INSERT OR ROLLBACK` of `rows` messages. OR ROLLBACK: a statement of several rows that
/// could fail half-way would otherwise keep a statement journal (a copy of every page it
/// changes); a failure rolls the whole transaction back instead, and the batch is refused as
/// before.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR ROLLBACK INTO messages \
         (mid, conv, seq, ts, sender, sender_fold, client_id, room, recipient, text, action) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

/// Binds and runs one multi-row INSERT (see [`insert_sql`]).
fn insert_rows(tx: &Connection, sql: &str, chunk: &[(Arc<Record>, u64)]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut i = 0;
    let mut bind = |stmt: &mut rusqlite::CachedStatement<'_>, v: &dyn rusqlite::ToSql| {
        i += 1;
        stmt.raw_bind_parameter(i, v)
    };
    for (r, _) in chunk {
        let (m, o) = (&r.msg, &*r.origin);
        bind(&mut stmt, &m.mid)?;
        bind(&mut stmt, &o.conv)?;
        bind(&mut stmt, &m.seq)?;
        bind(&mut stmt, &m.ts)?;
        bind(&mut stmt, &o.from)?;
        bind(&mut stmt, &o.sender_fold)?;
        bind(&mut stmt, &r.client_id)?;
        bind(&mut stmt, &o.room)?;
        bind(&mut stmt, &o.to)?;
        bind(&mut stmt, &m.text)?;
        bind(&mut stmt, &m.action)?;
    }
    stmt.raw_execute()?;
    Ok(())
}

/// Reports a batch to the hub. Blocks while the hub's queue is full (the hub always drains it);
/// if the hub is gone there is nobody to tell.
fn report(done: &mpsc::Sender<Done>, d: Done) {
    let _ = done.blocking_send(d);
}
