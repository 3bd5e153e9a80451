//! The real binary, killed with SIGKILL at random moments while clients send ~1,000 msg/s:
//! no acknowledged message may be lost or stored twice, each room's sequence stays contiguous,
//! and every client sees every message of its rooms exactly once (resume fills the gaps).
//!
//! Also: the binary refuses to start on a damaged store.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_proto::client::{Hello, Join, Send};
use chat_proto::{ClientCodec, ClientMsg, ErrorCode, ServerMsg};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};
use tokio_util::codec::Framed;

const CLIENTS: usize = 4;
/// Per client; 4 clients make ~1,000 messages a second.
const SEND_EVERY: Duration = Duration::from_millis(4);
const CYCLES: usize = 10;
const ROOMS: [&str; 2] = ["#lobby", "#crash"];

/// A tiny xorshift, so the kill moments differ from run to run without a dependency.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(addr: SocketAddr, dir: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--bind", &addr.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .args(["--rate-burst", "100000", "--rate-per-sec", "100000"])
        .args(["--resume-max", "100000", "--outbound-queue", "100000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// What one client saw.
#[derive(Default, Debug)]
struct Seen {
    /// Messages it created (each sent, and resent until acked).
    created: u64,
    /// `send` frames written, resends included.
    sends: u64,
    /// Not yet acked: number → (room, id).
    unacked: BTreeMap<u64, (String, String)>,
    /// id → (room, seq) from the acks.
    acked: HashMap<String, (String, u64)>,
    /// Duplicate acks received (resends of messages that had been stored).
    duplicate_acks: u64,
    /// Per room, every seq delivered to it (pages, messages, its own acks).
    seqs: BTreeMap<String, BTreeSet<u64>>,
    /// Deliveries of a seq it already had.
    delivered_twice: Vec<(String, u64)>,
    /// Acks for an id that disagree with an earlier ack.
    conflicting_acks: Vec<String>,
    /// Errors other than `store_unavailable`.
    errors: Vec<String>,
    connections: u64,
}

impl Seen {
    fn deliver(&mut self, room: &str, seq: u64) {
        if !self.seqs.entry(room.to_owned()).or_default().insert(seq) {
            self.delivered_twice.push((room.to_owned(), seq));
        }
    }

    fn last(&self) -> BTreeMap<String, u64> {
        self.seqs
            .iter()
            .filter_map(|(r, s)| s.last().map(|&l| (r.clone(), l)))
            .collect()
    }
}

/// One client: connects (retrying while the server is down), resumes, resends what was not
/// acked, sends a new message every `SEND_EVERY` until `stop_new`, and ends once everything is
/// acked and it has seen each room up to `targets`.
async fn client(
    nick: String,
    addr: SocketAddr,
    stop_new: Arc<AtomicBool>,
    mut targets: watch::Receiver<Option<BTreeMap<String, u64>>>,
) -> Seen {
    let mut seen = Seen::default();
    let mut first = true;
    loop {
        let Ok(stream) = TcpStream::connect(addr).await else {
            sleep(Duration::from_millis(10)).await;
            continue;
        };
        stream.set_nodelay(true).unwrap();
        seen.connections += 1;
        let mut framed = Framed::new(stream, ClientCodec::new(256 << 20));
        let resume = if first { BTreeMap::new() } else { seen.last() };
        let hello = Hello {
            name: nick.clone(),
            resume,
            ..Hello::default()
        };
        if framed.send(ClientMsg::Hello(hello)).await.is_err() {
            continue;
        }
        if first {
            let join = Join {
                id: None,
                room: ROOMS[1].into(),
            };
            if framed.send(ClientMsg::Join(join)).await.is_err() {
                continue;
            }
            first = false;
        }
        // Resend everything not acked, in order, with the same ids.
        let resend: Vec<(String, String)> = seen.unacked.values().cloned().collect();
        let mut broken = false;
        for (room, id) in resend {
            seen.sends += 1;
            if framed.send(say(&room, &id)).await.is_err() {
                broken = true;
                break;
            }
        }
        if broken {
            continue;
        }
        let mut tick = interval(SEND_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let done = seen.unacked.is_empty()
                && targets.borrow().as_ref().is_some_and(|t| {
                    t.iter()
                        .all(|(r, &s)| seen.seqs.get(r).and_then(|x| x.last()) >= Some(&s))
                });
            if done {
                return seen;
            }
            tokio::select! {
                // A new message, while the test still wants new ones.
                _ = tick.tick(), if !stop_new.load(Ordering::Relaxed) => {
                    let n = seen.created;
                    seen.created += 1;
                    let room = ROOMS[(n % 2) as usize].to_owned();
                    let id = format!("{nick}-{n}");
                    seen.unacked.insert(n, (room.clone(), id.clone()));
                    seen.sends += 1;
                    if framed.send(say(&room, &id)).await.is_err() {
                        break;
                    }
                }
                // The targets were published: check whether we are done.
                _ = targets.changed() => {}
                // A frame, or the server went away.
                frame = framed.next() => match frame {
                    Some(Ok(Ok(msg))) => {
                        if let Some(again) = handle(&nick, &mut seen, msg) {
                            seen.sends += 1;
                            if framed.send(say(&again.0, &again.1)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Ok(Err(e))) => seen.errors.push(format!("bad frame: {e}")),
                    Some(Err(_)) | None => break,
                },
            }
        }
    }
}

fn say(room: &str, id: &str) -> ClientMsg {
    ClientMsg::Send(Send {
        id: Some(id.to_owned()),
        to: room.to_owned(),
        text: id.to_owned(),
        action: false,
    })
}

/// Records one frame; returns a message to send again now (refused by a failing store).
fn handle(nick: &str, seen: &mut Seen, msg: ServerMsg) -> Option<(String, String)> {
    match msg {
        ServerMsg::History(page) => {
            for m in page.messages {
                seen.deliver(&page.room, m.seq);
            }
        }
        ServerMsg::Message(m) => {
            if let Some(room) = &m.room {
                seen.deliver(room, m.seq);
            }
        }
        ServerMsg::Ack(a) => {
            let id = a.id.unwrap_or_default();
            let room = a.room.unwrap_or_default();
            let n: u64 = id
                .strip_prefix(&format!("{nick}-"))
                .and_then(|n| n.parse().ok())
                .unwrap();
            seen.unacked.remove(&n);
            if a.duplicate {
                seen.duplicate_acks += 1;
            } else {
                seen.deliver(&room, a.seq);
            }
            if let Some(prev) = seen.acked.insert(id.clone(), (room.clone(), a.seq)) {
                if prev != (room, a.seq) {
                    seen.conflicting_acks.push(id);
                }
            }
        }
        ServerMsg::Error(e) if e.code == ErrorCode::StoreUnavailable => {
            let id = e.id?;
            let n: u64 = id.strip_prefix(&format!("{nick}-"))?.parse().ok()?;
            return seen.unacked.get(&n).cloned();
        }
        ServerMsg::Error(e) => seen.errors.push(format!("{}: {}", e.code, e.message)),
        _ => {}
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9_and_every_room_stays_contiguous() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = start_server(addr, &data, &log);

    let stop_new = Arc::new(AtomicBool::new(false));
    let (targets_tx, targets_rx) = watch::channel(None);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        tasks.push(tokio::spawn(client(
            format!("c{i}"),
            addr,
            stop_new.clone(),
            targets_rx.clone(),
        )));
    }

    // Kill -9 at random moments, restart on the same directory and port at once.
    let kills = AtomicU64::new(0);
    let mut rng = Rng::new();
    for _ in 0..CYCLES {
        sleep(Duration::from_millis(800 + rng.below(1500))).await;
        server.kill().unwrap();
        server.wait().unwrap();
        kills.fetch_add(1, Ordering::Relaxed);
        server = start_server(addr, &data, &log);
    }
    sleep(Duration::from_millis(500)).await;
    stop_new.store(true, Ordering::Relaxed);

    // Wait until every client has every message acked, then tell them where the rooms end.
    let mut results = Vec::new();
    let publish = async {
        loop {
            sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(50) {
                panic!("clients did not finish; server log: {}", log.display());
            }
            // Targets: the highest acked seq per room, known once nothing is unacked anywhere.
            // The clients hold their state, so ask the store instead: everything acked is in it.
            let conn = rusqlite::Connection::open(data.join("chat.db")).unwrap();
            let mut t = BTreeMap::new();
            for room in ROOMS {
                let last: u64 = conn
                    .query_row(
                        "SELECT coalesce(max(seq), 0) FROM messages WHERE conv = ?1",
                        [room],
                        |r| r.get(0),
                    )
                    .unwrap();
                t.insert(room.to_owned(), last);
            }
            let _ = targets_tx.send(Some(t));
        }
    };
    let join_all = async {
        for task in tasks {
            results.push(task.await.unwrap());
        }
    };
    tokio::select! {
        () = join_all => {}
        () = publish => unreachable!(),
    }
    let elapsed = started.elapsed();
    server.kill().unwrap();
    server.wait().unwrap();

    // Every client: nothing unacked, no conflicting ack, nothing delivered twice, no gap.
    let mut acked_all: HashMap<String, (String, u64)> = HashMap::new();
    let (mut created, mut sends, mut dups, mut conns) = (0, 0, 0, 0);
    for (i, seen) in results.iter().enumerate() {
        assert!(seen.unacked.is_empty(), "c{i}: {:?}", seen.unacked);
        assert!(
            seen.conflicting_acks.is_empty(),
            "c{i}: {:?}",
            seen.conflicting_acks
        );
        assert!(
            seen.delivered_twice.is_empty(),
            "c{i}: {:?}",
            seen.delivered_twice
        );
        assert!(seen.errors.is_empty(), "c{i}: {:?}", seen.errors);
        for (room, seqs) in &seen.seqs {
            let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
            assert_eq!(
                seqs.len() as u64,
                hi - lo + 1,
                "c{i}: a gap in {room} between {lo} and {hi}"
            );
        }
        created += seen.created;
        sends += seen.sends;
        dups += seen.duplicate_acks;
        conns += seen.connections;
        acked_all.extend(seen.acked.clone());
    }
    assert_eq!(acked_all.len() as u64, created, "every message was acked");

    // The store: one row per message, seqs 1..=N per room, each where its ack said.
    let conn = rusqlite::Connection::open(data.join("chat.db")).unwrap();
    let mut stored: HashMap<String, (String, u64)> = HashMap::new();
    let mut per_room: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT client_id, conv, seq, text FROM messages ORDER BY conv, seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, room, seq, text) = row.unwrap();
        assert_eq!(id, text);
        assert!(
            stored.insert(id.clone(), (room.clone(), seq)).is_none(),
            "{id} stored twice"
        );
        per_room.entry(room).or_default().push(seq);
    }
    for (room, seqs) in &per_room {
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, &want, "{room} is contiguous from 1");
    }
    assert_eq!(
        stored, acked_all,
        "the store holds exactly the acked messages, where acked"
    );
    for seen in &results {
        for (room, seqs) in &seen.seqs {
            assert_eq!(
                seqs.last().copied(),
                per_room[room].last().copied(),
                "{room}: saw the end"
            );
        }
    }
    eprintln!(
        "crash test: {CLIENTS} clients, {} kill -9 cycles, {created} messages created, {sends} \
         sends (resends included), {} acked, {dups} duplicate acks, {conns} connections, \
         rooms {:?}, {:.1} s",
        kills.load(Ordering::Relaxed),
        acked_all.len(),
        per_room
            .iter()
            .map(|(r, s)| (r.clone(), s.len()))
            .collect::<Vec<_>>(),
        elapsed.as_secs_f64()
    );
}

/// Runs the binary on `dir` and returns its exit status and stderr (it must not start).
fn run_to_exit(dir: &PathBuf) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status, err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server started on a damaged store");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_binary_refuses_a_damaged_store_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    std::fs::write(
        data.join("chat.db"),
        b"this is not a database, just text ".repeat(300),
    )
    .unwrap();
    let (status, err) = run_to_exit(&data);
    assert!(!status.success());
    assert!(err.contains("cannot open the message store"), "{err}");
    assert!(err.contains("not a chat store"), "{err}");
}

#[tokio::test]
async fn two_servers_never_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut first = start_server(addr, &data, &dir.path().join("log"));
    // Wait until it serves, so it holds the directory.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline);
        sleep(Duration::from_millis(20)).await;
    }
    let (status, err) = timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || run_to_exit(&data)),
    )
    .await
    .unwrap()
    .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!status.success());
    assert!(err.contains("in use by another chat-server"), "{err}");
}
