//! Set-ups shared by the account and operator tests: a store that already holds accounts, and a
//! server whose operator `root` is logged in.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use chat_proto::ServerMsg;
use chat_proto::client::Hello;
use chat_server::config::HistoryKind;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Client, TestServer, test_config};

/// The password of every account these tests create.
pub const SECRET: &str = "Zebra-Quartz-7781-secret";

/// A data directory whose store already holds the accounts `nicks`, all with `password`.
pub fn store_with_accounts(nicks: &[&str], password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let opts = chat_server::store::StoreOptions {
        dir: dir.path().to_owned(),
        sync: chat_server::config::SyncMode::Normal,
        retention_count: 1000,
        retention_days: 0,
        retention_interval: std::time::Duration::from_secs(60),
    };
    let path = {
        let store = chat_server::store::SqliteStore::open(&opts).unwrap();
        store.path().to_owned()
    };
    let db = rusqlite::Connection::open(path).unwrap();
    for nick in nicks {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        db.execute(
            "INSERT INTO accounts (fold, hash, created) VALUES (?1, ?2, 0)",
            rusqlite::params![chat_proto::nick::fold_nick(nick), hash],
        )
        .unwrap();
    }
    dir
}

/// Sends `hello` for `nick` (with `password`) and returns the answer.
pub async fn hello(c: &mut Client, nick: &str, password: Option<&str>) -> ServerMsg {
    c.nick = nick.to_owned();
    c.send(chat_proto::ClientMsg::Hello(Hello {
        name: nick.into(),
        password: password.map(str::to_owned),
        ..Hello::default()
    }))
    .await;
    c.recv().await
}

/// The config of a server on `dir` (SQLite) whose admin is `root`.
pub fn operator_config(dir: &tempfile::TempDir) -> chat_server::Config {
    let mut config = test_config();
    config.history = HistoryKind::Sqlite;
    config.data_dir = Some(dir.path().to_owned());
    config.admins = vec!["root".into()];
    config.handshake_timeout = std::time::Duration::from_secs(30);
    config
}

/// A server whose admin `root` is registered, and `root` logged in (keep the directory alive).
pub async fn operator_server() -> (TestServer, Client, tempfile::TempDir) {
    let dir = store_with_accounts(&["root"], SECRET);
    let server = TestServer::start(operator_config(&dir)).await;
    let root = login_root(server.addr).await;
    (server, root, dir)
}

/// Logs `root` in with its password and reads its `#lobby` burst.
pub async fn login_root(addr: SocketAddr) -> Client {
    let mut root = Client::connect(addr).await;
    let answer = hello(&mut root, "root", Some(SECRET)).await;
    assert!(matches!(answer, ServerMsg::Welcome(_)), "{answer:?}");
    root.expect_burst("#lobby").await;
    root
}

/// A connection to `addr` from the local address `from` (any of 127.0.0.0/8 is loopback on
/// Linux), so a test can play users on different hosts.
pub async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}
