//! `chat-server account ...`: accounts made on the server's own machine, for operators.
//!
//! An `--admin` nick is an operator only when its owner logs in with the account's password.
//! If such an account could be registered over the network, whoever connected first after the
//! server started (or after the flag was added) would own the operator nick. So the hub refuses
//! `register` for admin nicks, and their accounts are made here, by someone with a shell on the
//! server and access to its data directory, the way `prosodyctl adduser` or `ejabberdctl
//! register` work.
//!
//! The commands open the store like the server does (same data directory, same migrations, same
//! lock: one server per directory), so they run while the server is stopped; the server reads
//! its accounts when it starts. Ordinary users register themselves with `/register`; these
//! commands work for any nick, to reset a lost password or remove an account.

use std::io::BufRead;

use anyhow::{Context, bail};
use chat_proto::nick::{fold_nick, validate_nick};
use clap::Subcommand;

use crate::Config;
use crate::history::HistoryKind;
use crate::hub::{check_password, hash_password};
use crate::store::{SqliteStore, StoreOptions};

/// What `chat-server account` can do.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AccountAction {
    /// Registers NICK (an operator's nick, or anyone's). The password is asked twice on a
    /// terminal, else read from the first line of standard input.
    Add {
        /// The nick to register.
        nick: String,
    },
    /// Sets a new password for NICK (asked or read as for `add`).
    Passwd {
        /// The registered nick.
        nick: String,
    },
    /// Removes NICK's account: the nick is free to anyone again.
    Del {
        /// The registered nick.
        nick: String,
    },
    /// Lists the registered nicks (folded, as they are compared), oldest first.
    List,
}

/// Where the password of `add` and `passwd` comes from.
pub enum PasswordSource<'a> {
    /// Asked on the terminal, without echo, twice.
    Terminal,
    /// The first line of this reader (a pipe, a file, a test).
    Lines(&'a mut dyn BufRead),
}

/// Runs `action` on the store `config` names; returns what to tell the user.
pub fn run(
    config: &Config,
    action: &AccountAction,
    password: PasswordSource<'_>,
) -> anyhow::Result<String> {
    if config.history == HistoryKind::Memory {
        bail!(
            "with --history memory there is no store to keep accounts in: \
             accounts are made in the SQLite store (--data-dir)"
        );
    }
    let dir = crate::store::data_dir(config)?;
    let opts = StoreOptions {
        dir: dir.clone(),
        sync: config.sync,
        retention_count: config.retention_count,
        retention_days: config.retention_days,
        retention_interval: config.retention_interval,
    };
    // Creates and migrates the database if needed, and holds the directory's lock while we
    // write: a running server is told about, not raced.
    let store = SqliteStore::open(&opts).with_context(|| {
        format!(
            "cannot open the store in {} (stop the server using it first)",
            dir.display()
        )
    })?;
    let db = rusqlite::Connection::open(store.path())?;
    let admin = |nick: &str| {
        config
            .admins
            .iter()
            .any(|a| fold_nick(a) == fold_nick(nick))
    };
    let message = match action {
        AccountAction::Add { nick } => {
            let fold = checked_fold(nick)?;
            if exists(&db, &fold)? {
                bail!("{nick} is already registered (use `account passwd` to change its password)");
            }
            let hash = new_hash(password)?;
            db.execute(
                "INSERT INTO accounts (fold, hash, created) VALUES (?1, ?2, ?3)",
                rusqlite::params![fold, hash, now_ms()],
            )?;
            let role = if admin(nick) {
                " (an --admin nick)"
            } else {
                ""
            };
            format!("registered {nick}{role}; the server reads it when it starts")
        }
        AccountAction::Passwd { nick } => {
            let fold = checked_fold(nick)?;
            if !exists(&db, &fold)? {
                bail!("{nick} is not registered (use `account add`)");
            }
            let hash = new_hash(password)?;
            db.execute(
                "UPDATE accounts SET hash = ?2 WHERE fold = ?1",
                rusqlite::params![fold, hash],
            )?;
            format!("new password set for {nick}; the server reads it when it starts")
        }
        AccountAction::Del { nick } => {
            let fold = checked_fold(nick)?;
            let n = db.execute("DELETE FROM accounts WHERE fold = ?1", [&fold])?;
            if n == 0 {
                bail!("{nick} is not registered");
            }
            format!("removed the account of {nick}; the server forgets it when it starts")
        }
        AccountAction::List => list(&db, &admin)?,
    };
    drop(db);
    drop(store);
    Ok(message)
}

/// The fold of `nick`, if it is a valid nick.
fn checked_fold(nick: &str) -> anyhow::Result<String> {
    validate_nick(nick).with_context(|| format!("{nick:?} is not a valid nick"))?;
    Ok(fold_nick(nick))
}

fn exists(db: &rusqlite::Connection, fold: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE fold = ?1)",
        [fold],
        |r| r.get(0),
    )
}

fn list(db: &rusqlite::Connection, admin: &dyn Fn(&str) -> bool) -> anyhow::Result<String> {
    let mut stmt = db.prepare("SELECT fold FROM accounts ORDER BY created, fold")?;
    let folds: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if folds.is_empty() {
        return Ok("no accounts".to_owned());
    }
    let lines: Vec<String> = folds
        .iter()
        .map(|f| {
            if admin(f) {
                format!("{f} (admin)")
            } else {
                f.clone()
            }
        })
        .collect();
    Ok(lines.join("\n"))
}

/// Reads a new password from `source`, checks it, and hashes it.
fn new_hash(source: PasswordSource<'_>) -> anyhow::Result<String> {
    let password = match source {
        PasswordSource::Terminal => {
            let first = rpassword::prompt_password("password: ")?;
            let again = rpassword::prompt_password("again: ")?;
            if first != again {
                bail!("the two passwords differ");
            }
            first
        }
        PasswordSource::Lines(input) => {
            let mut line = String::new();
            input
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    check_password(&password).map_err(|(_, text)| anyhow::anyhow!(text))?;
    hash_password(&password).map_err(|e| anyhow::anyhow!(e))
}

fn now_ms() -> i64 {
    crate::hub::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: Some(dir.to_owned()),
            admins: vec!["root".into()],
            ..Config::default()
        }
    }

    fn add(config: &Config, nick: &str, password: &str) -> anyhow::Result<String> {
        let mut input = std::io::Cursor::new(format!("{password}\n"));
        let action = AccountAction::Add { nick: nick.into() };
        run(config, &action, PasswordSource::Lines(&mut input))
    }

    #[test]
    fn accounts_are_added_listed_changed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        assert!(
            add(&config, "Root", "correct horse")
                .unwrap()
                .contains("admin")
        );
        add(&config, "bob", "battery staple").unwrap();
        let listed = run(&config, &AccountAction::List, PasswordSource::Terminal).unwrap();
        assert_eq!(listed, "root (admin)\nbob");
        // Taken in any case; too short a password is refused before anything is written.
        assert!(add(&config, "ROOT", "another one").is_err());
        assert!(add(&config, "carol", "short").is_err());
        let mut input = std::io::Cursor::new("a new password\n");
        let passwd = AccountAction::Passwd {
            nick: "root".into(),
        };
        run(&config, &passwd, PasswordSource::Lines(&mut input)).unwrap();
        let del = AccountAction::Del { nick: "bob".into() };
        run(&config, &del, PasswordSource::Terminal).unwrap();
        assert!(run(&config, &del, PasswordSource::Terminal).is_err());
        let listed = run(&config, &AccountAction::List, PasswordSource::Terminal).unwrap();
        assert_eq!(listed, "root (admin)");
    }

    #[test]
    fn memory_history_has_no_store_for_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            history: HistoryKind::Memory,
            ..config(dir.path())
        };
        let err = add(&config, "root", "correct horse").unwrap_err();
        assert!(err.to_string().contains("--history memory"), "{err}");
    }
}
