//! The command line: one subcommand per mode, options common to all of them.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for chat-server, Redis pub/sub, NATS and the zero-logic broadcaster.
#[derive(Debug, Parser)]
#[command(name = "chat-bench", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Closed loop: one publisher, N subscribers, at most W messages in flight; delivered msg/s.
    Fanout(FanoutArgs),
    /// Open loop at a fixed rate; latency from the scheduled send time (no coordinated omission).
    Latency(LatencyArgs),
    /// N users in one room, each publishing R msg/s and receiving everyone else's.
    Mix(MixArgs),
    /// N idle connections: time to connect and join, server RSS per connection.
    Idle(IdleArgs),
    /// Fan-out with one subscriber that stops reading: the others' throughput, server memory,
    /// and what happened to the stalled one.
    Slow(SlowArgs),
    /// Run the zero-logic line broadcaster (the ceiling) until interrupted or --for elapses.
    Ceiling(CeilingArgs),
}

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// chat-server's framed protocol.
    Chat,
    /// chat-server's text mode (lines, same port).
    Text,
    /// Redis RESP pub/sub.
    Redis,
    /// NATS core.
    Nats,
    /// Plain text lines (the ceiling broadcaster).
    Line,
}

/// Options every load mode takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Protocol of the server under test.
    #[arg(long, value_enum, default_value = "chat")]
    pub proto: Proto,
    /// Server address (loopback).
    #[arg(long, default_value = "127.0.0.1:6666")]
    pub addr: SocketAddr,
    /// Room / channel / subject (default: `#lobby` for chat, `bench` for Redis and NATS).
    #[arg(long)]
    pub room: Option<String>,
    /// Payload bytes per message (at least the 44-byte marker).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// The whole run must finish within this many seconds, or it fails.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Handshakes in progress at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Server process id, to read its memory from /proc/PID/status.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as one JSON object instead of one line.
    #[arg(long)]
    pub json: bool,
    /// Worker threads of the load tool (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `fanout` options.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Subscribers.
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    /// Messages to publish, in all (split evenly between the publishers).
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Publishers, each on its own connection, publishing at the same time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub publishers: u32,
    /// Most messages in flight (published but not yet received by every subscriber), in all;
    /// each publisher gets an equal share.
    /// Keep it below the chat server's `--outbound-queue` (frames per connection).
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
}

/// `latency` options.
#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Subscribers.
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    /// Messages per second, on a fixed schedule.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Subscribers that sample latency (reading at once); the rest read in batches.
    #[arg(long, default_value_t = 10)]
    pub probes: usize,
}

/// `mix` options.
#[derive(Debug, Clone, Args)]
pub struct MixArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Users, each publishing and receiving.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Messages per second each user publishes.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

/// `idle` options.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Connections to open and join.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Seconds to wait after the last join before reading the server's memory.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

/// `slow` options.
#[derive(Debug, Clone, Args)]
pub struct SlowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Subscribers that keep reading (the stalled one comes on top).
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    /// Messages to publish in each phase (with and without the stalled subscriber).
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Most messages in flight to the reading subscribers.
    /// Keep it below the chat server's `--outbound-queue` (frames per connection).
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
}

/// `ceiling` options.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub bind: SocketAddr,
    /// Stop after this many seconds (the broadcaster never runs unbounded).
    #[arg(long = "for", default_value_t = 3600.0)]
    pub run_for: f64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}
