//! A text-mode client for the tests: raw bytes over a real socket, lines decoded in a charset.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use encoding_rs::{Encoding, UTF_8};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one line may take before the test fails.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// One netcat-like client.
pub struct TextClient {
    pub stream: Box<dyn crate::support::Io>,
    /// Bytes read and not yet returned as lines.
    buf: Vec<u8>,
    /// Every byte the server ever sent us.
    pub raw: Vec<u8>,
    /// What lines are decoded from and encoded to.
    pub charset: &'static Encoding,
    /// For failure messages.
    pub name: String,
}

impl TextClient {
    /// Connects and sends nothing.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.unwrap())
    }

    pub fn over(stream: TcpStream) -> Self {
        stream.set_nodelay(true).unwrap();
        Self::over_io(Box::new(stream))
    }

    /// A text client over any stream (TLS in the TLS tests).
    pub fn over_io(stream: Box<dyn crate::support::Io>) -> Self {
        TextClient {
            stream,
            buf: Vec::new(),
            raw: Vec::new(),
            charset: UTF_8,
            name: "text".into(),
        }
    }

    /// Connects, gives `nick` at once (no greeting asked for) and reads up to the `#lobby`
    /// member list of the join burst.
    pub async fn login(addr: SocketAddr, nick: &str) -> Self {
        let mut c = Self::connect(addr).await;
        c.name = nick.to_owned();
        c.send_line(nick).await;
        c.line_with(&format!("*** welcome, {nick}!")).await;
        c.line_with("*** in #lobby").await;
        c
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Writes `text` in our charset, then CR LF.
    pub async fn send_line(&mut self, text: &str) {
        let mut bytes = self.encode(text);
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes).await;
    }

    /// `text` in our charset.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = self.charset.encode(text);
        assert!(
            !unmappable,
            "{text:?} is not representable in {}",
            self.charset.name()
        );
        bytes.into_owned()
    }

    /// The next line, decoded, without its CR LF; `None` at end of stream.
    pub async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                let (text, _) = self.charset.decode_without_bom_handling(&line);
                if std::env::var_os("TEXT_TRACE").is_some() {
                    eprintln!("{} < {text}", self.name);
                }
                return Some(text.into_owned());
            }
            let mut chunk = [0u8; 8192];
            let read = timeout(LINE_TIMEOUT, self.stream.read(&mut chunk)).await;
            match read {
                Ok(Ok(0) | Err(_)) => return None,
                Ok(Ok(n)) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.raw.extend_from_slice(&chunk[..n]);
                }
                Err(_) => panic!(
                    "{}: no line within {LINE_TIMEOUT:?}; pending {:?}",
                    self.name,
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// The next line; the connection must still be open.
    pub async fn line(&mut self) -> String {
        match self.next_line().await {
            Some(line) => line,
            None => panic!("{}: connection closed", self.name),
        }
    }

    /// Skips lines until one contains `needle`; returns it.
    pub async fn line_with(&mut self, needle: &str) -> String {
        let mut skipped = Vec::new();
        loop {
            match self.next_line().await {
                Some(line) if line.contains(needle) => return line,
                Some(line) => skipped.push(line),
                None => panic!("{}: closed before {needle:?}; got {skipped:#?}", self.name),
            }
        }
    }

    /// Reads until the server closes; returns the lines on the way.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(line) = self.next_line().await {
            got.push(line);
        }
        got
    }
}

/// `[HH:MM] ` at the start of a line.
pub fn has_clock(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() >= 8
        && b[0] == b'['
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b':'
        && b[4..6].iter().all(u8::is_ascii_digit)
        && &b[6..8] == b"] "
}
