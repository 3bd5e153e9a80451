//! The real `chat-server` for the tests that need one: started on a free loopback port with
//! ephemeral history, killed when the test ends, however it ends.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long server start-up may take.
pub const STARTUP: Duration = Duration::from_secs(15);

/// The directory holding this crate's binary (and, after `cargo build --workspace --bins`, the
/// server's).
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chat-tui"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Kills the server when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real server on 127.0.0.1 and waits until it listens; returns it and its port.
pub fn start_server() -> (Server, u16) {
    start_server_with(&[])
}

/// [`start_server`] with more flags (`--tls-cert ...`).
pub fn start_server_with(extra: &[&std::ffi::OsStr]) -> (Server, u16) {
    let path = bin_dir().join("chat-server");
    assert!(
        path.exists(),
        "chat-server binary not found at {}: run `cargo build --workspace --bins` first",
        path.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (start_server_on(port, extra), port)
}

/// [`start_server_with`] on a given port (a server restarted where clients will reconnect).
pub fn start_server_on(port: u16, extra: &[&std::ffi::OsStr]) -> Server {
    let path = bin_dir().join("chat-server");
    // Ephemeral history (tests run in parallel and must not touch the user's data dir),
    // unless the test gives its own data directory.
    let own_store = extra.iter().any(|a| *a == "--data-dir");
    let history: &[&str] = if own_store {
        &["--history", "sqlite"]
    } else {
        &["--history", "memory"]
    };
    let child = Command::new(path)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(history)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + STARTUP;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// Makes the account `nick` with `password` in the store under `data_dir`, as an admin would:
/// `chat-server account add NICK --data-dir DIR` with the password on standard input.
pub fn add_account(data_dir: &std::path::Path, nick: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(bin_dir().join("chat-server"))
        .args(["account", "add", nick, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(
        child.wait().unwrap().success(),
        "chat-server account add failed"
    );
}
