//! The decoder fuzz check, shared by the cargo-fuzz target and the corpus replay test
//! (`crates/chat-proto/tests/fuzz_corpus.rs`).
//!
//! Input: the first byte picks a read size (1-256 bytes), the rest is the byte stream. Both
//! codecs decode it once in a single read and once in reads of that size; neither may panic, and
//! both readings must agree (split invariance on arbitrary, mostly hostile, input).

use bytes::BytesMut;
use chat_proto::codec::{ClientCodec, ServerCodec};
use tokio_util::codec::Decoder;

/// What one decode step produced, in a comparable form.
fn outcomes<D: Decoder>(mut codec: D, stream: &[u8], read_size: usize) -> Vec<String>
where
    D::Item: std::fmt::Debug,
    D::Error: std::fmt::Display,
{
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(read_size.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => out.push(format!("{item:?}")),
                Ok(None) => break,
                Err(e) => {
                    // A framing error ends the stream, as it ends the connection.
                    out.push(format!("fatal: {e}"));
                    return out;
                }
            }
            assert!(buf.capacity() <= stream.len() + 64 * 1024 + 4096);
        }
    }
    out
}

/// Runs the check on one fuzz input. Panics on a violated property.
pub fn check(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(first) + 1;
    let max = 64 * 1024;
    assert_eq!(
        outcomes(ServerCodec::new(max), stream, stream.len()),
        outcomes(ServerCodec::new(max), stream, read_size),
    );
    assert_eq!(
        outcomes(ClientCodec::new(max), stream, stream.len()),
        outcomes(ClientCodec::new(max), stream, read_size),
    );
}
