//! The SQLite store on its own: appends through the writer thread, reads, resends, search,
//! failures and epochs, retention, reopening, refusing a damaged file.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chat_proto::server::ChatMessage;

use super::*;
use crate::history::{Appended, HistoryError, Page};

fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: dir.to_owned(),
        sync: SyncMode::Full,
        retention_count: 0,
        retention_days: 0,
        retention_interval: Duration::from_secs(3600),
    }
}

fn record(conv: &str, seq: u64, text: &str) -> Record {
    let msg = ChatMessage {
        mid: seq + 1000 * conv.bytes().map(u64::from).sum::<u64>(),
        room: Some(conv.into()),
        from: "Alice".into(),
        seq,
        ts: crate::hub::now_ms(),
        text: text.into(),
        ..ChatMessage::default()
    };
    Record::new(conv, msg, "alice", Some(format!("{conv}-{seq}")))
}

struct Open {
    store: SqliteStore,
    done: mpsc::Receiver<Done>,
}

fn open(dir: &Path, opts: Option<StoreOptions>) -> Open {
    let mut store = SqliteStore::open(&opts.unwrap_or_else(|| options(dir))).unwrap();
    let done = store.completions().unwrap();
    Open { store, done }
}

impl Open {
    /// Appends and waits for the report covering it.
    fn append(&mut self, r: Record, epoch: u64) -> Result<(), HistoryError> {
        assert_eq!(
            self.store.append(Arc::new(r), epoch).unwrap(),
            Appended::Queued
        );
        let done = self.done.blocking_recv().unwrap();
        assert_eq!(done.count, 1);
        done.result
    }
}

fn seqs(page: &Page) -> Vec<u64> {
    page.messages.iter().map(|m| m.seq).collect()
}

#[test]
fn appends_are_read_back_in_pages_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), None);
        for seq in 1..=10 {
            s.append(record("#r", seq, &format!("m{seq}")), 0).unwrap();
        }
        let page = s.store.before("#r", u64::MAX, 3).unwrap();
        assert_eq!((seqs(&page), page.more), (vec![8, 9, 10], true));
        let page = s.store.after("#r", 7, 5).unwrap();
        assert_eq!((seqs(&page), page.more), (vec![8, 9, 10], false));
        assert_eq!(page.messages[0].text, "m8");
        assert_eq!(page.messages[0].from, "Alice");
    }
    let s = open(dir.path(), None);
    assert_eq!(s.store.last_seq("#r").unwrap(), 10);
    assert_eq!(s.store.last_seq("#other").unwrap(), 0);
    assert_eq!(s.store.last_mid().unwrap(), 10 + 1000 * (35 + 114));
    let sent = s.store.find_sent("alice", "#r-4").unwrap().unwrap();
    assert_eq!(sent.ack(true).seq, 4);
    assert!(sent.ack(true).duplicate);
    assert!(s.store.find_sent("bob", "#r-4").unwrap().is_none());
}

#[test]
fn a_second_server_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path(), None);
    let err = SqliteStore::open(&options(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::InUse(_)), "{err}");
}

#[test]
fn many_queued_appends_are_committed_in_few_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    for seq in 1..=3000 {
        s.store.append(Arc::new(record("#r", seq, "x")), 0).unwrap();
    }
    let (mut reported, mut batches) = (0, 0);
    while reported < 3000 {
        let d = s.done.blocking_recv().unwrap();
        assert!(d.result.is_ok());
        reported += d.count;
        batches += 1;
    }
    assert!(
        batches < 3000 / 2,
        "{batches} batches: appends were grouped"
    );
    assert_eq!(s.store.last_seq("#r").unwrap(), 3000);
}

#[test]
fn a_full_disk_refuses_the_batch_and_what_was_queued_behind_it_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    s.append(record("#r", 1, "before"), 0).unwrap();
    let control = s.store.control().unwrap();
    control.set_max_page_count(1);
    // A text larger than the pages the migrations left free, so the pages run out at once.
    let big = "y".repeat(200_000);
    let failed = s.append(record("#r", 2, &big), 0).unwrap_err();
    assert!(failed.to_string().contains("full"), "{failed}");
    // Queued before the hub heard of the failure: same epoch, refused unwritten even though
    // the disk has room again.
    control.set_max_page_count(1 << 30);
    assert!(s.append(record("#r", 3, "stale"), 0).is_err());
    // The next epoch is written.
    s.append(record("#r", 2, "after"), 1).unwrap();
    let page = s.store.after("#r", 0, 10).unwrap();
    let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "after"]);
}

#[test]
fn retention_keeps_the_newest_per_room_and_the_sequence_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.retention_count = 5;
    let mut s = open(dir.path(), Some(opts));
    for seq in 1..=12 {
        s.append(record("#r", seq, "x"), 0).unwrap();
    }
    s.append(record("#q", 1, "x"), 0).unwrap();
    let deleted = s.store.control().unwrap().enforce_retention();
    assert_eq!(deleted, 7);
    let page = s.store.after("#r", 0, 100).unwrap();
    assert_eq!(seqs(&page), vec![8, 9, 10, 11, 12]);
    assert_eq!(seqs(&s.store.after("#q", 0, 10).unwrap()), vec![1]);
    assert_eq!(s.store.last_seq("#r").unwrap(), 12);
    // The full-text index forgot the deleted messages too.
    assert_eq!(s.store.search("#r", "x", 100).unwrap().messages.len(), 5);
}

#[test]
fn retention_by_count_reads_only_the_old_range_of_each_room() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), None);
    let plan = |sql: &str| -> Vec<String> {
        let mut stmt = s
            .store
            .read
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        stmt.query_map([5, 10], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let steps = plan(writer::RETENTION_BY_COUNT);
    assert!(
        steps
            .iter()
            .any(|s| s.contains("SEARCH m USING COVERING INDEX messages_conv_seq")),
        "{steps:?}"
    );
    assert!(!steps.iter().any(|s| s.starts_with("SCAN m")), "{steps:?}");
}

#[test]
fn retention_by_age_deletes_old_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.retention_days = 7;
    let mut s = open(dir.path(), Some(opts));
    let mut old = record("#r", 1, "old");
    old.msg.ts -= 8 * 86_400_000;
    s.append(old, 0).unwrap();
    s.append(record("#r", 2, "new"), 0).unwrap();
    assert_eq!(s.store.control().unwrap().enforce_retention(), 1);
    assert_eq!(seqs(&s.store.after("#r", 0, 10).unwrap()), vec![2]);
}

#[test]
fn search_matches_words_in_one_room_and_never_parses_user_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    let texts = [
        "tokio select is neat",
        "I like Tokio",
        "select * from users",
        "naïve café",
        "\"quoted\" OR NEAR(x) words*",
    ];
    for (i, t) in texts.iter().enumerate() {
        s.append(record("#r", i as u64 + 1, t), 0).unwrap();
    }
    s.append(record("#other", 1, "tokio select elsewhere"), 0)
        .unwrap();
    let hits = |q: &str| seqs(&s.store.search("#r", q, 10).unwrap());
    assert_eq!(hits("tokio select"), vec![1]);
    assert_eq!(hits("TOKIO"), vec![1, 2]);
    assert_eq!(hits("cafe naive"), vec![4], "diacritics folded");
    for hostile in [
        "\"",
        "OR",
        "NEAR(",
        "*",
        "a\" OR \"b",
        "col:x",
        "^x",
        "-x",
        "(((",
        "AND",
    ] {
        assert!(s.store.search("#r", hostile, 10).is_ok(), "{hostile:?}");
    }
    assert_eq!(hits("NEAR(x) words*"), vec![5]);
    let page = s.store.search("#r", "select", 1).unwrap();
    assert_eq!(
        (seqs(&page), page.more),
        (vec![3], true),
        "newest first, then more"
    );
}

#[test]
fn fts_queries_quote_every_word() {
    assert_eq!(
        fts_query("a \"b\" OR c*").unwrap(),
        "\"a\" \"b\" \"or\" \"c\""
    );
    assert_eq!(fts_query(" *** "), None);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![b'x'; 8192]).unwrap();
    let err = SqliteStore::open(&options(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("not a chat store"), "{err}");
}

#[test]
fn a_damaged_database_fails_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), None);
        for seq in 1..=400 {
            s.store
                .append(Arc::new(record("#r", seq, &"z".repeat(500))), 0)
                .unwrap();
        }
        let mut n = 0;
        while n < 400 {
            n += s.done.blocking_recv().unwrap().count;
        }
    }
    // Checkpointed into chat.db on close; scribble over pages in the middle of the file.
    let path = dir.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 40_000, "{} bytes", bytes.len());
    for b in &mut bytes[12_000..36_000] {
        *b = 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = SqliteStore::open(&options(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn a_store_from_a_newer_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), None));
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", current_version() + 1)
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&options(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
}

#[test]
fn search_returns_the_newest_matches_of_its_room_among_many_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    let mut small = 0;
    for i in 1..=3000u64 {
        let (conv, seq) = if i % 300 == 0 {
            small += 1;
            ("#small", small)
        } else {
            ("#big", i - small)
        };
        let mut r = record(conv, seq, "common words here");
        r.msg.mid = i;
        r.client_id = Some(format!("c{i}"));
        s.store.append(Arc::new(r), 0).unwrap();
    }
    let mut n = 0;
    while n < 3000 {
        n += s.done.blocking_recv().unwrap().count;
    }
    let page = s.store.search("#small", "common", 50).unwrap();
    assert_eq!(seqs(&page), (1..=10).collect::<Vec<_>>());
    assert!(!page.more);
    let page = s.store.search("#big", "COMMON here", 5).unwrap();
    assert_eq!(seqs(&page), (2986..=2990).collect::<Vec<_>>());
    assert!(page.more);
}

#[test]
fn a_version_2_store_gains_the_mutes_and_topics_tables_and_keeps_its_accounts_and_bans() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A store as the previous release left it: migrations 1 and 2, an account and a ban.
        let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &schema::MIGRATIONS[..2] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 2).unwrap();
        tx.execute(
            "INSERT INTO accounts (fold, hash, created) VALUES ('root', '$argon2id$x', 1)",
            [],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO bans (target, reason, until, by) VALUES ('eve', 'spam', NULL, 'root')",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(&options(dir.path())).unwrap();
    let conn = Connection::open(store.path()).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, current_version());
    let ban: String = conn
        .query_row("SELECT reason FROM bans WHERE target = 'eve'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(ban, "spam");
    let accounts: u32 = conn
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(accounts, 1);
    // One mute per nick and place: everywhere (NULL) and per room are distinct places.
    let insert = "INSERT INTO mutes (fold, room, until, by) VALUES (?1, ?2, NULL, 'root')";
    conn.execute(insert, rusqlite::params!["eve", None::<String>])
        .unwrap();
    conn.execute(insert, rusqlite::params!["eve", "#lobby"])
        .unwrap();
    assert!(
        conn.execute(insert, rusqlite::params!["eve", None::<String>])
            .is_err()
    );
    let topics: u32 = conn
        .query_row("SELECT count(*) FROM topics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(topics, 0);
}

#[test]
fn a_version_4_store_still_finds_its_old_messages_and_indexes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Migrations 1 to 4: the search index was kept by a trigger, row by row.
        let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &schema::MIGRATIONS[..4] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 4).unwrap();
        tx.execute(
            "INSERT INTO messages (mid, conv, seq, ts, sender, sender_fold, text) \
             VALUES (1, '#r', 1, 1, 'Alice', 'alice', 'an old rendezvous')",
            [],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO convs (conv, last_seq, last_mid) VALUES ('#r', 1, 1)",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut s = open(dir.path(), None);
    let mut new = record("#r", 2, "a new rendezvous");
    new.msg.mid = 2;
    s.append(new, 0).unwrap();
    let mut other = record("#r", 3, "something else");
    other.msg.mid = 3;
    s.append(other, 0).unwrap();
    assert_eq!(
        seqs(&s.store.search("#r", "rendezvous", 10).unwrap()),
        [1, 2]
    );
    assert_eq!(seqs(&s.store.search("#r", "new", 10).unwrap()), [2]);
    assert_eq!(seqs(&s.store.search("#r", "else", 10).unwrap()), [3]);
    assert_eq!(s.store.last_seq("#r").unwrap(), 3);
}

#[test]
fn a_version_5_store_keeps_its_messages_searchable_and_its_resends_found() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Migrations 1 to 5: UNIQUE (sender_fold, client_id), messages_ts, FTS with docsizes.
        let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &schema::MIGRATIONS[..5] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 5).unwrap();
        tx.execute_batch(
            "INSERT INTO messages (mid, conv, seq, ts, sender, sender_fold, client_id, room, text) \
             VALUES (1, '#r', 1, 1, 'Alice', 'alice', 'c1', '#R', 'an old rendezvous'), \
                    (2, '#r', 2, 2, 'Bob', 'bob', NULL, '#R', 'no id here');
             INSERT INTO messages_fts (rowid, text) SELECT mid, text FROM messages;
             INSERT INTO convs (conv, last_seq, last_mid) VALUES ('#r', 2, 2);",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut s = open(dir.path(), None);
    let sent = s.store.find_sent("alice", "c1").unwrap().unwrap();
    assert_eq!((&**sent.conv(), sent.msg.seq), ("#r", 1));
    assert_eq!(sent.origin.room.as_deref(), Some("#R"));
    assert!(s.store.find_sent("bob", "c1").unwrap().is_none());
    let plan: String = s
        .store
        .read
        .query_row(
            &format!("EXPLAIN QUERY PLAN {}", read::FIND_SENT),
            ["a", "b"],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("messages_sent"), "{plan}");
    assert_eq!(seqs(&s.store.search("#r", "rendezvous", 10).unwrap()), [1]);
    assert_eq!(seqs(&s.store.after("#r", 0, 10).unwrap()), [1, 2]);
    let mut new = record("#r", 3, "a new rendezvous");
    new.msg.mid = 3;
    s.append(new, 0).unwrap();
    assert_eq!(
        seqs(&s.store.search("#r", "rendezvous", 10).unwrap()),
        [1, 3]
    );
    assert_eq!(
        s.store.find_sent("alice", "#r-3").unwrap().unwrap().msg.seq,
        3
    );
    // A seq that is taken still refuses the batch: pages and resume rely on it.
    let mut twin = record("#r", 3, "same seq");
    twin.msg.mid = 4;
    assert!(s.append(twin, 0).is_err());
    drop(s);
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let (docsize, ts_index): (u32, u32) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE name = 'messages_fts_docsize'), \
                    count(*) FILTER (WHERE name = 'messages_ts') FROM sqlite_master",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (docsize, ts_index),
        (0, 0),
        "no per-message docsize, no ts index"
    );
}

#[test]
fn the_time_index_is_kept_only_while_retention_by_age_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let has_index = |dir: &Path| -> bool {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'messages_ts'",
            [],
            |r| r.get::<_, u32>(0),
        )
        .unwrap()
            == 1
    };
    drop(open(dir.path(), None));
    assert!(!has_index(dir.path()));
    let mut opts = options(dir.path());
    opts.retention_days = 7;
    let s = open(dir.path(), Some(opts));
    assert!(has_index(dir.path()));
    let plan: String = s
        .store
        .read
        .query_row(
            "EXPLAIN QUERY PLAN SELECT mid FROM messages WHERE ts < 5 LIMIT 10",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("messages_ts"), "{plan}");
    drop(s);
    drop(open(dir.path(), None));
    assert!(!has_index(dir.path()));
}

#[test]
fn a_batch_of_several_rooms_is_indexed_once_each_and_counts_every_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    // Queued together: the writer takes them as one batch.
    for seq in 1..=20 {
        for room in ["#a", "#b"] {
            let r = record(room, seq, &format!("word{seq} in {}", &room[1..]));
            assert_eq!(s.store.append(Arc::new(r), 0).unwrap(), Appended::Queued);
        }
    }
    let mut reported = 0;
    while reported < 40 {
        let done = s.done.blocking_recv().unwrap();
        assert!(done.result.is_ok());
        reported += done.count;
    }
    assert_eq!(s.store.last_seq("#a").unwrap(), 20);
    assert_eq!(s.store.last_seq("#b").unwrap(), 20);
    assert_eq!(seqs(&s.store.search("#a", "word7", 10).unwrap()), [7]);
    assert_eq!(seqs(&s.store.search("#b", "b", 50).unwrap()).len(), 20);
}

#[test]
fn a_batch_goes_in_by_multi_row_statements_and_a_bad_row_refuses_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    let control = s.store.control().unwrap();
    // One batch of 103 = 3 × 32 + 4 + 2 + 1: every statement size, every row kept.
    let hold = control.hold();
    for seq in 1..=103 {
        let r = record("#r", seq, &format!("row{seq} text"));
        assert_eq!(s.store.append(Arc::new(r), 0).unwrap(), Appended::Queued);
    }
    drop(hold);
    let done = s.done.blocking_recv().unwrap();
    assert_eq!((done.count, done.result.is_ok()), (103, true));
    let page = s.store.after("#r", 0, 200).unwrap();
    assert_eq!(seqs(&page), (1..=103).collect::<Vec<_>>());
    assert_eq!(page.messages[102].text, "row103 text");
    for seq in [1, 32, 33, 97, 101, 103] {
        let word = format!("row{seq}");
        assert_eq!(seqs(&s.store.search("#r", &word, 10).unwrap()), [seq]);
        let sent = s.store.find_sent("alice", &format!("#r-{seq}")).unwrap();
        assert_eq!(sent.unwrap().msg.seq, seq);
    }
    // A batch whose last (37th) row repeats a seq: the whole batch is refused, none of it kept.
    let hold = control.hold();
    for seq in 104..=140 {
        let mut r = record("#r", if seq == 140 { 50 } else { seq }, "late");
        r.msg.mid += 1000;
        r.client_id = Some(format!("late-{seq}"));
        s.store.append(Arc::new(r), 0).unwrap();
    }
    drop(hold);
    let done = s.done.blocking_recv().unwrap();
    assert_eq!((done.count, done.result.is_err()), (37, true));
    assert_eq!(s.store.last_seq("#r").unwrap(), 103);
    assert!(s.store.find_sent("alice", "late-104").unwrap().is_none());
    assert!(
        s.store
            .search("#r", "late", 10)
            .unwrap()
            .messages
            .is_empty()
    );
    // The next epoch is written.
    let mut r = record("#r", 104, "after");
    r.msg.mid += 1000;
    s.append(r, 1).unwrap();
    assert_eq!(s.store.last_seq("#r").unwrap(), 104);
}

/// Both integrity checks pass: SQLite's own, and FTS5's against the content table (rank 1),
/// which fails if any row is missing from the index or indexed twice.
fn assert_intact(path: &Path) {
    let conn = Connection::open(path).unwrap();
    schema::check_integrity(&conn).unwrap();
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap();
}

#[test]
fn gapless_and_gapped_batches_are_both_found_by_search_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    let control = s.store.control().unwrap();
    // A batch of consecutive mids (indexed by their range), then one with holes between its
    // mids (indexed by their list).
    let batches: [Vec<u64>; 2] = [(101..=150).collect(), (151..=250).step_by(3).collect()];
    let mut seq = 0;
    for mids in &batches {
        let hold = control.hold();
        for &mid in mids {
            seq += 1;
            let mut r = record("#r", seq, &format!("word{mid} shared"));
            r.msg.mid = mid;
            s.store.append(Arc::new(r), 0).unwrap();
        }
        drop(hold);
        let done = s.done.blocking_recv().unwrap();
        assert_eq!((done.count, done.result.is_ok()), (mids.len(), true));
    }
    for &mid in batches.iter().flatten() {
        let page = s.store.search("#r", &format!("word{mid}"), 10).unwrap();
        assert_eq!(page.messages.len(), 1, "word{mid}");
        assert_eq!(page.messages[0].mid, mid);
    }
    let all = s.store.search("#r", "shared", 1000).unwrap();
    assert_eq!(all.messages.len(), seq as usize, "each message once");
    drop(s);
    assert_intact(&dir.path().join(DB_FILE));
}

#[cfg(unix)]
#[test]
fn the_store_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("chat");
    let mut s = open(&dir, None);
    s.append(record("#lobby", 1, "hello"), 1).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "data directory");
    assert_eq!(mode(&dir.join(DB_FILE)), 0o600, "database");
    let wal = dir.join(format!("{DB_FILE}-wal"));
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600, "write-ahead log");
}

/// Appends queued while the writer is held go in as one batch each, and every one is then found
/// by its client id. Also a fixed workload for measuring the writer (in a release build under
/// callgrind): `STORE_WORKLOAD_MESSAGES` appends (default 600; 20,000 for a measurement) shaped
/// like the load tool's, queued `STORE_WORKLOAD_BATCH` at a time (default 128), each looked up
/// first as the hub does; `STORE_WORKLOAD_WORDS=1` for texts of ordinary words.
#[test]
fn appends_queued_while_the_writer_is_held_commit_as_one_batch() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = var("STORE_WORKLOAD_MESSAGES", 600);
    let batch = var("STORE_WORKLOAD_BATCH", 128).max(1);
    let words = var("STORE_WORKLOAD_WORDS", 0) != 0;
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), None);
    let control = s.store.control().unwrap();
    let (mut seq, mut commits) = (0, 0);
    while seq < n {
        let hold = control.hold();
        let mut queued = 0;
        while queued < batch && seq < n {
            seq += 1;
            let text = if words {
                format!("message {seq} about the {} topic of the day", seq % 97)
            } else {
                format!(
                    "~cb100000000{seq:016x}{:016x}....................",
                    seq * 7919
                )
            };
            let mut r = record("#bench", seq, &text);
            r.msg.mid = seq;
            let origin = Arc::make_mut(&mut r.origin);
            origin.from = "p".into();
            origin.sender_fold = "p".into();
            r.client_id = Some(seq.to_string());
            // The hub looks every new client id up before appending (a resend?).
            assert!(s.store.find_sent("p", &seq.to_string()).unwrap().is_none());
            s.store.append(Arc::new(r), 0).unwrap();
            queued += 1;
        }
        drop(hold);
        while queued > 0 {
            let d = s.done.blocking_recv().unwrap();
            assert!(d.result.is_ok());
            queued -= d.count as u64;
            commits += 1;
        }
    }
    assert_eq!(commits, n.div_ceil(batch), "one commit per held batch");
    for id in [1, n / 2, n] {
        let found = s.store.find_sent("p", &id.to_string()).unwrap();
        assert_eq!(found.map(|r| r.msg.seq), Some(id), "message {id} stored");
    }
}
