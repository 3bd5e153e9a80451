#![allow(clippy::unwrap_used)]
//! File transfer over real sockets: the real `chat-server` and two clients built from this
//! library (`App` + `update` + `net` + `files`, no terminal), each with its own download
//! directory.
//!
//! Needs the server binary next to this crate's binary: `cargo build --workspace --bins`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chat_tui::app::App;
use chat_tui::files::{self, FilesConfig, FilesHandle};
use chat_tui::keymap::Action;
use chat_tui::net::{self, NetConfig, NetEvent, NetHandle};
use chat_tui::transfer::{Direction, FileEvent, TransferState};
use chat_tui::update::{Command, Msg, update};
use rand::RngCore;
use tokio::sync::mpsc;

use support::start_server;

mod support;

/// A throwaway directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("chat-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client without a terminal: the model, the network and the file IO, wired as `run` does.
struct Client {
    app: App,
    net: NetHandle,
    net_rx: mpsc::Receiver<NetEvent>,
    files: FilesHandle,
    files_rx: mpsc::Receiver<FileEvent>,
    downloads: TempDir,
}

impl Client {
    fn start(name: &str, port: u16) -> Client {
        let downloads = TempDir::new(&format!("{name}-downloads"));
        let (net, net_rx) = net::spawn(NetConfig {
            addr: format!("127.0.0.1:{port}"),
            name: name.into(),
            client: "chat-tui/test".into(),
            ..NetConfig::default()
        });
        let (files, files_rx) = files::spawn(
            FilesConfig {
                download_dir: downloads.0.clone(),
            },
            net.chunks(),
        );
        Client {
            app: App::new(name, "test", format!("t{name}")),
            net,
            net_rx,
            files,
            files_rx,
            downloads,
        }
    }

    fn apply(&mut self, msg: Msg) {
        self.app.now_ms = chat_tui::run::now_ms();
        for c in update(&mut self.app, msg) {
            match c {
                Command::Send(m) => self.net.send(m),
                Command::File(j) => self.files.send(j),
                Command::Quit(r) => self.net.quit(r),
                _ => {}
            }
        }
    }

    fn type_line(&mut self, text: &str) {
        for c in text.chars() {
            self.apply(Msg::Action(Action::Insert(c)));
        }
        self.apply(Msg::Action(Action::Submit));
    }

    /// Handles whatever is waiting; true if anything was.
    fn poll(&mut self) -> bool {
        let mut any = false;
        while let Ok(e) = self.net_rx.try_recv() {
            self.apply(Msg::Net(e));
            any = true;
        }
        while let Ok(e) = self.files_rx.try_recv() {
            self.apply(Msg::File(e));
            any = true;
        }
        any
    }

    fn lines(&self) -> String {
        self.app
            .buffers
            .iter()
            .flat_map(|b| b.lines.iter())
            .map(|l| format!("{:?}\n", l.body))
            .collect()
    }
}

/// Runs both clients until `done` holds, or fails after `within`.
async fn pump(
    a: &mut Client,
    b: &mut Client,
    within: Duration,
    what: &str,
    done: impl Fn(&App, &App) -> bool,
) {
    let deadline = Instant::now() + within;
    let mut last_tick = Instant::now();
    while !done(&a.app, &b.app) {
        assert!(
            Instant::now() < deadline,
            "no {what} within {within:?}\n--- {}:\n{}{:?}\n--- {}:\n{}{:?}",
            a.app.me,
            a.lines(),
            a.app.transfers,
            b.app.me,
            b.lines(),
            b.app.transfers
        );
        let busy = a.poll() | b.poll();
        if last_tick.elapsed() > Duration::from_millis(200) {
            a.apply(Msg::Tick);
            b.apply(Msg::Tick);
            last_tick = Instant::now();
        }
        if !busy {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn random_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn offer_to(app: &App, name: &str) -> Option<u64> {
    app.transfers
        .iter()
        .rfind(|t| {
            t.dir == Direction::Receive && t.name == name && t.state == TransferState::Offered
        })
        .and_then(|t| t.file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_10_mib_file_arrives_byte_identical_and_a_declined_one_leaves_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CHAT_LOG"))
        .with_test_writer()
        .try_init();
    let (_server, port) = start_server();
    let mut alice = Client::start("alice", port);
    let mut bob = Client::start("bob", port);
    let wait = Duration::from_secs(30);
    pump(&mut alice, &mut bob, wait, "connections", |a, b| {
        a.is_connected() && b.is_connected()
    })
    .await;
    let source = TempDir::new("alice-files");
    let (path, data) = random_file(&source.0, "random.bin", 10 << 20);

    alice.type_line(&format!("/send {} bob", path.display()));
    pump(&mut alice, &mut bob, wait, "the offer", |_, b| {
        offer_to(b, "random.bin").is_some()
    })
    .await;
    let file = offer_to(&bob.app, "random.bin").unwrap();
    assert!(
        bob.lines().contains(&format!(
            "alice offers random.bin (10 MiB) — /accept {file} or /decline {file}"
        )),
        "{}",
        bob.lines()
    );
    let started = Instant::now();
    bob.type_line(&format!("/accept {file}"));
    pump(&mut alice, &mut bob, wait, "the whole file", |a, b| {
        a.transfers[0].state == TransferState::Done && b.transfers[0].state == TransferState::Done
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "10 MiB alice → bob in {took:?}: {:.1} MiB/s",
        10.0 / took.as_secs_f64()
    );
    assert_eq!(entries(&bob.downloads.0), vec!["random.bin".to_owned()]);
    let got = std::fs::read(bob.downloads.0.join("random.bin")).unwrap();
    assert!(got == data, "the bytes differ");
    assert!(alice.lines().contains("sent random.bin to bob"));

    // A second offer, declined: nothing new on disk, and alice hears about it.
    let (path, _) = random_file(&source.0, "unwanted.bin", 100_000);
    alice.type_line(&format!("/send {} bob", path.display()));
    pump(&mut alice, &mut bob, wait, "the second offer", |_, b| {
        offer_to(b, "unwanted.bin").is_some()
    })
    .await;
    let file = offer_to(&bob.app, "unwanted.bin").unwrap();
    bob.type_line(&format!("/decline {file}"));
    pump(&mut alice, &mut bob, wait, "the decline", |a, _| {
        a.transfers[1].state == TransferState::Declined
    })
    .await;
    assert_eq!(entries(&bob.downloads.0), vec!["random.bin".to_owned()]);

    // The same name again lands beside the first, never over it.
    alice.type_line(&format!(
        "/send {} bob",
        source.0.join("random.bin").display()
    ));
    pump(&mut alice, &mut bob, wait, "the third offer", |_, b| {
        offer_to(b, "random.bin").is_some()
    })
    .await;
    let file = offer_to(&bob.app, "random.bin").unwrap();
    bob.type_line(&format!("/accept {file}"));
    pump(&mut alice, &mut bob, wait, "the copy", |_, b| {
        b.transfers.last().unwrap().state == TransferState::Done
    })
    .await;
    assert_eq!(
        entries(&bob.downloads.0),
        vec!["random (1).bin".to_owned(), "random.bin".to_owned()]
    );
    alice.net.quit(None);
    bob.net.quit(None);
}
