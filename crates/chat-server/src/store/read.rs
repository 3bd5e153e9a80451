//! The hub's reads: pages of a conversation, resend look-ups, counters and search.
//!
//! They run on the hub's task over the read connection (WAL: they see every committed batch
//! and never wait for the writer). All are indexed and bounded; search also has a time budget.

use chat_proto::server::ChatMessage;
use std::sync::Arc;
use std::sync::mpsc::TrySendError;

use rusqlite::{OptionalExtension, Row, params};
use tokio::sync::mpsc;

use super::{Job, SEARCH_BUDGET, SqliteStore};
use crate::history::{Appended, Done, HistoryError, HistoryStore, Page, Record, search_words};

impl SqliteStore {
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

/// The columns of a message row, in the order [`message_from_row`] reads them.
const COLUMNS: &str = "mid, seq, ts, sender, room, recipient, text, action";

/// The resend look-up, made for every new client id: a literal, so there is no formatting per
/// call, and `client_id = ?2` lets SQLite use the partial index `messages_sent`.
pub(super) const FIND_SENT: &str = "SELECT mid, seq, ts, sender, room, recipient, text, action, \
     conv FROM messages WHERE client_id = ?2 AND sender_fold = ?1";

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

impl HistoryStore for SqliteStore {
    fn db_path(&self) -> Option<std::path::PathBuf> {
        Some(self.path().to_owned())
    }

    fn append(&mut self, record: Arc<Record>, epoch: u64) -> Result<Appended, HistoryError> {
        let Some(jobs) = &self.jobs else {
            return Err(HistoryError::Unavailable("the store is closed".into()));
        };
        // Into the filter before the writer can commit it, so a look-up never misses it.
        if let (Some(sent), Some(id)) = (&mut self.sent, &record.client_id) {
            sent.insert(record.sender_fold(), id);
        }
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
        if self
            .sent
            .as_ref()
            .is_some_and(|f| !f.may_contain(sender_fold, client_id))
        {
            return Ok(None);
        }
        let mut stmt = self.read.prepare_cached(FIND_SENT).map_err(unavailable)?;
        stmt.query_row([sender_fold, client_id], |row| {
            let msg = message_from_row(row)?;
            let conv: String = row.get(8)?;
            Ok(Record::new(
                &conv,
                msg,
                sender_fold,
                Some(client_id.to_owned()),
            ))
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
