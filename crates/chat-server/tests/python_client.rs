//! PROTOCOL.md is complete enough to write a client from: the standard-library Python client in
//! `examples/python`, written from the document alone, joins and chats with a Rust client.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;

use chat_proto::ServerMsg;
use support::{Client, TestServer, bounded, test_config};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn the_python_reference_client_chats_with_a_rust_client() {
    let server = TestServer::start(test_config()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/python/chat_client.py"
    );
    bounded(20, async {
        let mut bob = Client::login(server.addr, "bob").await;
        let mut python = Command::new("python3")
            .arg(script)
            .arg(server.addr.to_string())
            .args(["--name", "pyalice", "--say", "hello from python, 你好"])
            .args(["--wait-for", "hello from rust", "--timeout", "10"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (CI installs it)");
        let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();

        // The Python client's hello and message reach bob with the server-assigned sender.
        let joined = bob
            .recv_until(|m| match m {
                ServerMsg::Joined(j) => Some(j),
                _ => None,
            })
            .await;
        assert_eq!(joined.nick, "pyalice");
        let msg = bob.recv_message().await;
        assert_eq!(msg.from, "pyalice");
        assert_eq!(msg.text, "hello from python, 你好");

        // Its ack printed, then bob's answer arrives on its screen.
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.starts_with("ack seq=");
            seen.push(line);
            if done {
                break;
            }
        }
        bob.say("#lobby", "hello from rust", "b1").await;
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line);
        }
        let status = python.wait().await.unwrap();
        assert!(status.success(), "python client failed; output: {seen:#?}");
        assert!(
            seen.iter().any(|l| l == "#lobby <bob> hello from rust"),
            "python output: {seen:#?}"
        );
    })
    .await;
    server.stop().await;
}
