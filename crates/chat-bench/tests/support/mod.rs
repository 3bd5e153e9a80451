//! Tiny in-test pub/sub servers for the Redis and NATS drivers: just enough of each protocol
//! (subscribe, publish, ping) to run a fan-out, with no external process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Which protocol the mini broker speaks.
#[derive(Debug, Clone, Copy)]
pub enum Wire {
    Resp,
    Nats,
}

type Subs = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Bytes>)>>>>;

/// Starts a broker on a free loopback port; it lives as long as the test's runtime.
pub async fn broker(wire: Wire) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let subs: Subs = Arc::default();
    tokio::spawn(async move {
        for id in 0.. {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            stream.set_nodelay(true).unwrap();
            let (mut rd, mut wr) = stream.into_split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
            });
            if let Wire::Nats = wire {
                let _ = tx.send(Bytes::from_static(b"INFO {\"server_id\":\"test\"}\r\n"));
            }
            let subs = Arc::clone(&subs);
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                while rd.read_buf(&mut buf).await.unwrap_or(0) > 0 {
                    while let Some((used, cmd)) = command(wire, &buf) {
                        handle(wire, id, cmd, &tx, &subs);
                        buf.advance(used);
                    }
                }
                // Gone: unsubscribe everywhere, as a real broker does.
                for list in subs.lock().unwrap().values_mut() {
                    list.retain(|(sub, _)| *sub != id);
                }
            });
        }
    });
    addr
}

/// One parsed command: its words, the last one being the payload for a publish.
fn command(wire: Wire, buf: &[u8]) -> Option<(usize, Vec<Vec<u8>>)> {
    let line_end = |from: usize| {
        buf.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<usize>().ok();
    let end = line_end(0)?;
    match wire {
        Wire::Resp => {
            let count = num(&buf[1..end])?;
            let (mut pos, mut words) = (end + 2, Vec::new());
            for _ in 0..count {
                let e = line_end(pos)?;
                let len = num(&buf[pos + 1..e])?;
                let word = buf.get(e + 2..e + 2 + len)?.to_vec();
                buf.get(e + 3 + len)?;
                words.push(word);
                pos = e + 4 + len;
            }
            Some((pos, words))
        }
        Wire::Nats => {
            let mut words: Vec<Vec<u8>> = buf[..end]
                .split(|&b| b == b' ')
                .map(<[u8]>::to_vec)
                .collect();
            if words[0] != b"PUB" {
                return Some((end + 2, words));
            }
            let len = num(words.last()?)?;
            let payload = buf.get(end + 2..end + 2 + len)?.to_vec();
            buf.get(end + 3 + len)?;
            words.push(payload);
            Some((end + 4 + len, words))
        }
    }
}

fn handle(wire: Wire, id: u64, cmd: Vec<Vec<u8>>, tx: &mpsc::UnboundedSender<Bytes>, subs: &Subs) {
    let name = String::from_utf8_lossy(&cmd[0]).to_uppercase();
    let reply = |b: Vec<u8>| {
        let _ = tx.send(Bytes::from(b));
    };
    match (wire, name.as_str()) {
        (_, "SUBSCRIBE") | (_, "SUB") => {
            let chan = String::from_utf8_lossy(&cmd[1]).into_owned();
            subs.lock()
                .unwrap()
                .entry(chan.clone())
                .or_default()
                .push((id, tx.clone()));
            if let Wire::Resp = wire {
                reply(
                    format!(
                        "*3\r\n$9\r\nsubscribe\r\n${}\r\n{chan}\r\n:1\r\n",
                        chan.len()
                    )
                    .into_bytes(),
                );
            }
        }
        (_, "PUBLISH") | (_, "PUB") => {
            let chan = String::from_utf8_lossy(&cmd[1]).into_owned();
            let payload = cmd.last().unwrap();
            let mut msg = match wire {
                Wire::Resp => format!(
                    "*3\r\n$7\r\nmessage\r\n${}\r\n{chan}\r\n${}\r\n",
                    chan.len(),
                    payload.len()
                ),
                Wire::Nats => format!("MSG {chan} 1 {}\r\n", payload.len()),
            }
            .into_bytes();
            msg.extend_from_slice(payload);
            msg.extend_from_slice(b"\r\n");
            let msg = Bytes::from(msg);
            let subs = subs.lock().unwrap();
            let receivers = subs.get(&chan).map(Vec::as_slice).unwrap_or_default();
            for (sub_id, sub) in receivers {
                // NATS clients connect with echo off: never send a publisher its own message.
                if *sub_id != id {
                    let _ = sub.send(msg.clone());
                }
            }
            if let Wire::Resp = wire {
                reply(format!(":{}\r\n", receivers.len()).into_bytes());
            }
        }
        (Wire::Resp, "PING") => reply(b"+PONG\r\n".to_vec()),
        (Wire::Nats, "PING") => reply(b"PONG\r\n".to_vec()),
        _ => {}
    }
}
