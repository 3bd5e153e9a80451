//! `chat-tui`: a full-duplex terminal client for the chat server.
//!
//! The Elm architecture: [`app::App`] is plain data, [`update::update`] changes it
//! synchronously without IO and returns [`update::Command`]s for the runtime, [`ui::draw`]
//! is a pure function of `&App`, and keys map to actions through the pure
//! [`keymap::map_key`]. The network is a handle plus an event receiver ([`net`]), and
//! [`run::run`] joins terminal events, network events and a tick in one `select!` loop that is
//! generic over the ratatui backend, so tests drive the real loop on `TestBackend`.
//!
//! **Architecture Invariant:** nothing from the network reaches the terminal raw: every string
//! from a server message is sanitized (`chat_proto::sanitize`) before it is stored for display.
//!
//! # Layout
//! - [`app`]: the model (buffers, lines, outbox, connection state).
//! - [`update`]: `Msg` → state change + `Command`s; [`receive`] handles server messages,
//!   [`editor`] input history, paste and completion, [`command`] parses `/commands`.
//! - [`keymap`]: keys to actions.
//! - [`layout`]: pane geometry and grapheme-aware wrapping, shared by drawing and scrolling.
//! - [`transfer`]: file transfers as data and their state machine; [`filename`] makes
//!   offered names safe; [`files`] does their IO (hashing, chunks, `.part` files).
//! - [`ui`]: drawing the screen.
//! - [`net`]: the network client (reconnect, resume, backoff).
//! - [`tls`]: TLS trust: CA roots, the pin check, handshake failures in words;
//!   [`known_hosts`] keeps the pinned certificates.
//! - [`pacer`]: client-side flood control that keeps the outbox in order.
//! - [`terminal`]: raw mode / alternate screen set up and restored in one place.
//! - [`run`]: the main loop.
//! - [`config`]: the TOML config file.

pub mod app;
pub mod command;
pub mod config;
pub mod editor;
pub mod filename;
pub mod files;
pub mod keymap;
pub mod known_hosts;
pub mod layout;
pub mod net;
pub mod pacer;
pub mod receive;
pub mod run;
pub mod terminal;
pub mod tls;
pub mod transfer;
pub mod ui;
pub mod update;
