//! `chat-server`: parse the command line, set up logging, bind, and run until SIGINT/SIGTERM;
//! or, with `account ...`, manage the accounts in the store and exit.

/// mimalloc, not the system's malloc: faster for the fan-out's many small buffers, which one
/// thread allocates and another frees (see bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::Context;
use chat_server::Config;
use chat_server::accounts_cmd::{self, AccountAction, PasswordSource};
use clap::{Parser, Subcommand};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Listen backlog: at least 1024 pending connections.
const BACKLOG: i32 = 1024;

/// The command line: the server's flags, and what to do instead of serving, if anything.
#[derive(Debug, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "A real-time chat server: rooms, nicks, direct messages, history.",
    long_about = "A real-time chat server speaking the chat wire protocol (PROTOCOL.md) over TCP.\n\n\
        Every limit below can also be set with the environment variable shown. Durations take \
        a unit: 500ms, 10s, 2m (a bare number means seconds).\n\n\
        Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=chat_server=debug) to choose how much.",
    args_conflicts_with_subcommands = false
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to run instead of the server.
#[derive(Debug, Subcommand)]
enum Command {
    /// Manage accounts in the store (while the server is stopped): `--admin` nicks can only
    /// be registered this way.
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
}

fn main() -> std::process::ExitCode {
    // The one crypto provider compiled in, for anything that asks rustls for the default.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let Cli { config, command } = Cli::parse();
    if let Some(Command::Account { action }) = command {
        return account(&config, &action);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Start-up errors (a port in use, an unreadable TLS key) as one readable line.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `chat-server account ...`: prints the outcome, or the error, as one line.
fn account(config: &Config, action: &AccountAction) -> std::process::ExitCode {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let source = if std::io::stdin().is_terminal() {
        PasswordSource::Terminal
    } else {
        PasswordSource::Lines(&mut lines)
    };
    match accounts_cmd::run(config, action, source) {
        Ok(message) => {
            println!("{message}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logging, bind, and the server until a signal.
async fn serve(config: Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    let listener =
        bind(config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
    chat_server::run(listener, config, shutdown_signal()).await
}

/// A listening socket with `SO_REUSEADDR` and a large backlog.
fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into())?)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
