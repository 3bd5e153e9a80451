//! `chat-bench`: a load generator that measures chat-server, Redis pub/sub, NATS and a
//! zero-logic broadcaster with the same code.
//!
//! Every protocol is a [`driver::Driver`]: pure functions that open a session, encode a publish
//! and cut the server's bytes into events. Everything else — connecting thousands of clients,
//! reading, counting, checking order, timing — is shared, so the figures differ only by the
//! server under test. Each payload carries a [`payload::Marker`] (publisher, sequence, send
//! time); latencies go into an HDR histogram ([`measure::Recorder`]).
//!
//! **Invariant:** a run that loses, duplicates or reorders a message, or whose connection closes
//! unexpectedly, reports a failure and the binary exits non-zero; figures of a failed run are
//! never printed as a success.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`payload`]: the marker inside every message.
//! - [`measure`]: the latency histogram, the delivery check and the report.
//! - [`driver`]: one driver per protocol, and the shared handshake.
//! - [`receiver`]: opening many connections and the receive loop.
//! - [`window`]: closed-loop flow control (messages in flight).
//! - [`mode`]: fanout, latency, mix, idle and slow.
//! - [`ceiling`]: the zero-logic line broadcaster.

pub mod ceiling;
pub mod cli;
pub mod driver;
pub mod measure;
pub mod mode;
pub mod payload;
pub mod receiver;
pub mod window;
