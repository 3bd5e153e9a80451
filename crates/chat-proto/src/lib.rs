//! The `chat` wire protocol: frames, typed messages, limits and errors.
//!
//! This crate owns no socket and no runtime: it turns bytes into messages and back, so the
//! server, the terminal client, the fuzzer and tests all share exactly one definition of the
//! wire. `PROTOCOL.md` at the repository root is the human-readable specification of the same.
//!
//! Three layers for every inbound byte, each with its own function and error:
//! bytes → [`frame::Frame`] (header checked before any allocation, [`FrameError`]) →
//! typed message ([`MessageError`]).
//!
//! # Layout
//! - [`frame`]: the 12-byte header and the frame splitter.
//! - [`kind`]: the kind registry (header `kind` numbers).
//! - [`message`]: how a message becomes a body ([`message::Body`], [`message::WireMessage`]).
//! - [`client`]: messages a client sends ([`ClientMsg`]).
//! - [`server`]: messages a server sends ([`ServerMsg`]).
//! - [`codec`]: the tokio-util codec built from the layers above.
//! - [`error`]: framing and message errors, and the wire error codes.
//! - [`limits`]: default limits and the set announced in `welcome`.
//! - [`nick`]: nick and room-name rules, and the identity fold for uniqueness.
//! - [`sanitize`]: making untrusted text safe to put on a terminal.
#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
pub mod error;
pub mod frame;
pub mod kind;
pub mod limits;
pub mod message;
pub mod nick;
pub mod sanitize;
pub mod server;

pub use client::ClientMsg;
pub use codec::{ClientCodec, MessageCodec, ServerCodec};
pub use error::{EncodeError, ErrorCode, FrameError, MessageError};
pub use limits::Limits;
pub use message::WireMessage;
pub use server::ServerMsg;
