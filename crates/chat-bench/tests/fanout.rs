//! A tiny fan-out (3 subscribers × 200 messages) through every driver, against a server made
//! in the test (ceiling, mini Redis, mini NATS) or the real `chat-server` binary when it has
//! been built next to this test: delivered must equal published × subscribers.

// Test helpers (not `#[test]` functions themselves) unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_bench::cli::{Common, FanoutArgs, IdleArgs, LatencyArgs, MixArgs, Proto, SlowArgs};
use chat_bench::driver::{Driver, chat::Chat, line::Line, nats::Nats, redis::Redis, text::Text};
use std::sync::Arc;

use bytes::BytesMut;
use chat_bench::mode::{self, Bench, fanout, idle, latency, mix, slow};
use chat_bench::payload::{Marker, now_ns};
use chat_bench::receiver;
use support::{Wire, broker};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const SUBS: usize = 3;
const MESSAGES: u64 = 200;

fn common(proto: Proto, addr: SocketAddr) -> Common {
    Common {
        proto,
        addr,
        room: None,
        size: 64,
        timeout: 8.0,
        concurrency: 16,
        server_pid: None,
        json: false,
        threads: None,
    }
}

async fn tiny_fanout<D: Driver>(driver: D, proto: Proto, addr: SocketAddr) {
    fanout_of(driver, proto, addr, SUBS, MESSAGES, 16, 1).await;
}

/// Four publishers at once: every subscriber gets each one's messages, in each one's order.
async fn fanout_from_four<D: Driver>(driver: D, proto: Proto, addr: SocketAddr) {
    fanout_of(driver, proto, addr, SUBS, MESSAGES, 16, 4).await;
}

async fn fanout_of<D: Driver>(
    driver: D,
    proto: Proto,
    addr: SocketAddr,
    subs: usize,
    messages: u64,
    window: u64,
    publishers: u32,
) {
    let bench = Bench::new(driver, common(proto, addr)).unwrap();
    let args = FanoutArgs {
        common: bench.common.clone(),
        subs,
        messages,
        publishers,
        window,
    };
    let report = fanout::run(&bench, &args).await.unwrap();
    assert_eq!(report.failure, None, "{}", report.line());
    assert_eq!(report.publishers, u64::from(publishers));
    assert_eq!(report.published, messages);
    assert_eq!(
        report.delivered,
        messages * subs as u64,
        "{}",
        report.line()
    );
    assert_eq!(report.latency.count, messages * subs as u64);
}

async fn tiny_mix<D: Driver>(driver: D, proto: Proto, addr: SocketAddr) {
    let bench = Bench::new(driver, common(proto, addr)).unwrap();
    let args = MixArgs {
        common: bench.common.clone(),
        users: 4,
        rate: 50.0,
        duration: 0.4,
    };
    let report = mix::run(&bench, &args).await.unwrap();
    assert_eq!(report.failure, None, "{}", report.line());
    assert_eq!(report.published, 4 * 20);
    assert_eq!(report.delivered, report.expected, "{}", report.line());
}

async fn ceiling() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(chat_bench::ceiling::run(listener, CancellationToken::new()));
    addr
}

#[tokio::test]
async fn latency_samples_the_probes_on_their_own_thread_and_counts_everyone() {
    let addr = ceiling().await;
    let bench = Bench::new(Line, common(Proto::Line, addr)).unwrap();
    let args = LatencyArgs {
        common: bench.common.clone(),
        subs: 5,
        rate: 500.0,
        duration: 0.2,
        probes: 2,
    };
    let report = latency::run(&bench, &args).await.unwrap();
    assert_eq!(report.failure, None, "{}", report.line());
    assert_eq!(report.published, 100);
    assert_eq!(report.delivered, 5 * 100, "{}", report.line());
    assert_eq!(
        report.latency.count,
        2 * 100,
        "only the probes sample latency"
    );
}

#[tokio::test]
async fn line_fanout_through_the_ceiling_delivers_everything() {
    tiny_fanout(Line, Proto::Line, ceiling().await).await;
}

#[tokio::test]
async fn redis_fanout_delivers_everything() {
    tiny_fanout(Redis, Proto::Redis, broker(Wire::Resp).await).await;
}

#[tokio::test]
async fn nats_fanout_delivers_everything() {
    tiny_fanout(Nats, Proto::Nats, broker(Wire::Nats).await).await;
}

#[tokio::test]
async fn fanout_from_several_publishers_delivers_everything() {
    fanout_from_four(Line, Proto::Line, ceiling().await).await;
    fanout_from_four(Redis, Proto::Redis, broker(Wire::Resp).await).await;
    fanout_from_four(Nats, Proto::Nats, broker(Wire::Nats).await).await;
}

#[tokio::test]
async fn mix_counts_everyone_elses_messages() {
    tiny_mix(Line, Proto::Line, ceiling().await).await;
    tiny_mix(Redis, Proto::Redis, broker(Wire::Resp).await).await;
    tiny_mix(Nats, Proto::Nats, broker(Wire::Nats).await).await;
}

#[tokio::test]
async fn idle_connections_stay_open_and_report_memory() {
    let mut c = common(Proto::Line, ceiling().await);
    c.server_pid = Some(std::process::id()); // the ceiling runs in this process
    let bench = Bench::new(Line, c).unwrap();
    let args = IdleArgs {
        common: bench.common.clone(),
        conns: 20,
        settle: 0.1,
    };
    let report = idle::run(&bench, &args).await.unwrap();
    assert_eq!(report.failure, None, "{}", report.line());
    assert!(
        report.extra.contains_key("rss_per_conn_kb"),
        "{}",
        report.line()
    );
}

#[tokio::test]
async fn slow_mode_reports_the_stalled_subscriber() {
    let bench = Bench::new(Redis, common(Proto::Redis, broker(Wire::Resp).await)).unwrap();
    let args = SlowArgs {
        common: bench.common.clone(),
        subs: 2,
        messages: 200,
        window: 16,
    };
    let report = slow::run(&bench, &args).await.unwrap();
    assert_eq!(report.failure, None, "{}", report.line());
    assert_eq!(report.delivered, 400);
    // The mini broker buffers without limit, so the stalled one gets everything late.
    assert_eq!(report.extra["stalled_received"], 200, "{}", report.line());
}

/// A socket pair: the test writes `server`'s side, the receiver reads the other.
async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
    let (client, server) = tokio::join!(client, listener.accept());
    (client.unwrap(), server.unwrap().0)
}

async fn receive_lines(seqs: &[u64], expect: u64) -> receiver::Outcome {
    let (client, mut server) = pair().await;
    let mut out = Vec::new();
    for &seq in seqs {
        let mut p = Vec::new();
        Marker {
            publisher: 0,
            seq,
            sent_ns: now_ns(),
        }
        .write(64, &mut p);
        Line.encode_publish("all", seq, &p, &mut out);
    }
    server.write_all(&out).await.unwrap();
    drop(server);
    let (rd, wr) = client.into_split();
    let shared = mode::shared(Vec::new());
    let expect = receiver::Expect {
        deliveries: expect,
        acks: 0,
        publishers: 1,
        own: None,
        batch_wait: None,
        flow: false,
        acks_flow: false,
        own_thread: false,
    };
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    receiver::receive(&Line, 0, rd, BytesMut::new(), wr, expect, &shared).await
}

#[tokio::test]
async fn a_gap_in_sequences_fails_the_receiver() {
    let out = receive_lines(&[0, 1, 3], 3).await;
    assert_eq!(out.delivered, 3);
    let why = out.failure.unwrap();
    assert!(why.contains("seq 3 arrived when 2 was due"), "{why}");
}

#[tokio::test]
async fn an_unexpected_close_fails_the_receiver() {
    let out = receive_lines(&[0, 1], 5).await;
    assert_eq!(out.delivered, 2);
    let why = out.failure.unwrap();
    assert!(
        why.contains("closed by the server after 2 deliveries"),
        "{why}"
    );
}

/// The real server, built next to this test binary by `cargo test --workspace`.
struct ChatServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real server binary; a test that cannot find it fails rather than passing unseen.
fn chat_server_binary() -> PathBuf {
    // target/debug/deps/fanout-HASH → target/debug/chat-server
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("chat-server");
    assert!(
        path.exists(),
        "chat-server binary not found at {}: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

fn start_chat_server(path: &PathBuf) -> ChatServer {
    let mut child = Command::new(path)
        // Memory history: the durable default would share a data directory with other servers.
        .args([
            "--bind",
            "127.0.0.1:0",
            "--history",
            "memory",
            "--rate-burst",
            "100000",
        ])
        .args(["--rate-per-sec", "100000", "--max-conns-per-ip", "1000"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Find the address in the `listening` log line, then keep draining the pipe.
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains("listening") {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let addr = addr
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("chat-server logs its listening address")
        .parse()
        .unwrap();
    ChatServer { child, addr }
}

#[tokio::test]
async fn chat_fanout_against_the_real_server_delivers_everything() {
    let server = start_chat_server(&chat_server_binary());
    tiny_fanout(Chat, Proto::Chat, server.addr).await;
    fanout_from_four(Chat, Proto::Chat, server.addr).await;
    tiny_mix(Chat, Proto::Chat, server.addr).await;
}

#[tokio::test]
async fn text_mode_fanout_against_the_real_server_delivers_everything() {
    let server = start_chat_server(&chat_server_binary());
    tiny_fanout(Text, Proto::Text, server.addr).await;
    tiny_mix(Text, Proto::Text, server.addr).await;
}

/// The CI smoke run of issue 8: our server, 100 subscribers, a couple of seconds at most; proves
/// the chat driver works at a real fan-out. No timing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_chat_fanout_to_100_subscribers_delivers_everything() {
    let server = start_chat_server(&chat_server_binary());
    fanout_of(Chat, Proto::Chat, server.addr, 100, 2_000, 500, 1).await;
}
