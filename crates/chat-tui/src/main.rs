//! `chat-tui --name alice host:6666`: parse flags, read the config, set up logging and the
//! terminal, and hand over to [`chat_tui::run::run`].

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use chat_tui::app::App;
use chat_tui::config::{self, Config};
use chat_tui::files::{self, FilesConfig};
use chat_tui::net::{self, NetConfig};
use chat_tui::run::FileIo;
use chat_tui::terminal::{self, TerminalGuard};
use chat_tui::tls::TlsSettings;
use clap::Parser;
use crossterm::event::EventStream;
use rand::Rng;
use rand::distr::Alphanumeric;

/// A terminal chat client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Server address, `host:port` or `tls://host:port` (default: `server` from the config
    /// file).
    server: Option<String>,
    /// Connect with TLS; a failed handshake never falls back to plaintext. Certificates are
    /// checked against the system's CAs and --ca; an unknown one is shown with its fingerprint
    /// and pinned if you trust it.
    #[arg(long)]
    tls: bool,
    /// PEM file of CA certificates to trust as well as the system's (implies --tls).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// File of pinned server certificates (default: chat/known_hosts in the XDG data
    /// directory).
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Nick to use (default: `name` from the config file, then $USER).
    #[arg(long, short)]
    name: Option<String>,
    /// Capture the mouse for wheel scrolling (hold Shift to select text).
    #[arg(long)]
    mouse: bool,
    /// Never ring the terminal bell.
    #[arg(long)]
    no_bell: bool,
    /// Config file (default: chat/config.toml in the XDG config directory).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log file (default: chat/chat-tui.log in the XDG state directory).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Where received files go (default: the XDG download directory, else ~/Downloads).
    #[arg(long)]
    download_dir: Option<PathBuf>,
    /// Largest file to accept, e.g. `500MiB` (default 1GiB); larger offers are declined.
    #[arg(long)]
    max_download: Option<String>,
    /// Shell command printing the nick's password on its first line (else $CHAT_PASSWORD,
    /// then `password_cmd` from the config file, else it is asked for when the server wants
    /// it). $CHAT_SERVER_PASSWORD is a private server's password (asked for too if missing).
    #[arg(long)]
    password_cmd: Option<String>,
}

/// A non-empty environment variable.
fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Logs go to a file, never to the screen.
fn init_logging(path: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(path) = path.or_else(config::default_log_path) else {
        return Ok(());
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .init();
    Ok(())
}

/// Completes on SIGTERM or SIGHUP.
async fn terminate_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The one crypto provider compiled in, for anything that asks rustls for the default.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let config_path = args.config.clone().or_else(config::default_config_path);
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let name = args
        .name
        .or(config.name.clone())
        .or_else(|| std::env::var("USER").ok())
        .context("no nick: pass --name NICK")?;
    let server = args
        .server
        .or(config.server.clone())
        .context("no server: pass host:port")?;
    let (tls_scheme, server) = config::split_scheme(&server);
    let server = server.to_owned();
    init_logging(args.log_file)?;
    let tls = if args.tls || tls_scheme || args.ca.is_some() {
        let known_hosts = args
            .known_hosts
            .or_else(config::default_known_hosts_path)
            .context("no known-hosts file: pass --known-hosts FILE")?;
        Some(TlsSettings::new(args.ca.as_deref(), true, known_hosts)?)
    } else {
        None
    };
    // Before the terminal is taken over: the command may ask for a passphrase.
    let password = match (&args.password_cmd, env_secret("CHAT_PASSWORD")) {
        (Some(cmd), _) => Some(config::run_password_cmd(cmd).context("--password-cmd")?),
        (None, Some(p)) => Some(p),
        (None, None) => match &config.password_cmd {
            Some(cmd) => Some(config::run_password_cmd(cmd).context("password_cmd")?),
            None => None,
        },
    };
    let server_password = env_secret("CHAT_SERVER_PASSWORD");

    let id_prefix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    let mut app = App::new(name.clone(), server.clone(), id_prefix);
    app.tls = tls.is_some();
    app.tz = jiff::tz::TimeZone::system();
    app.bell = !args.no_bell && config.bell.unwrap_or(true);
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    app.theme.colors = config.colors.unwrap_or(true) && !no_color;
    if let Some(palette) = config.palette()? {
        app.theme.nick_palette = palette;
    }
    let mouse = args.mouse || config.mouse.unwrap_or(false);
    if let Some(max) = args.max_download.as_ref().or(config.max_download.as_ref()) {
        app.max_download = config::parse_size(max).context("--max-download")?;
    }
    let download_dir = args
        .download_dir
        .or(config.download_dir.clone())
        .map(|d| config::expand_home(&d))
        .unwrap_or_else(files::default_download_dir);

    terminal::install_panic_hook();
    let (guard, mut term) = TerminalGuard::enter(mouse).context("cannot set up the terminal")?;
    let (handle, net_rx) = net::spawn(NetConfig {
        addr: server,
        name,
        client: format!("chat-tui/{}", env!("CARGO_PKG_VERSION")),
        password: password.map(net::Secret),
        server_password: server_password.map(net::Secret),
        tls,
    });
    let (files_handle, files_rx) = files::spawn(FilesConfig { download_dir }, handle.chunks());
    let file_io = FileIo {
        handle: files_handle,
        events: files_rx,
    };
    let mut bell = || {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x07");
        let _ = out.flush();
    };
    let result = chat_tui::run::run(
        &mut term,
        &mut app,
        EventStream::new(),
        handle,
        net_rx,
        file_io,
        terminate_signal(),
        &mut bell,
    )
    .await;
    drop(guard);
    tracing::info!("bye");
    result
}
