//! The optional config file, `chat/config.toml` in the XDG config directory.
//!
//! ```toml
//! name = "alice"
//! server = "chat.example.org:6666"  # tls://chat.example.org:6666 connects with TLS
//! bell = true
//! mouse = false
//! colors = true                      # false: bold/reverse/underline only
//! nick_colors = ["red", "green", "#ff8800"]
//! download_dir = "~/Downloads/chat"  # default: the XDG download directory
//! max_download = "1GiB"              # larger offers are declined
//! password_cmd = "pass show chat"    # prints the nick's password (first line)
//! ```
//! Command-line flags override the file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ratatui::style::Color;
use serde::Deserialize;

/// What the config file may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Nick.
    pub name: Option<String>,
    /// `host:port`.
    pub server: Option<String>,
    /// Ring the bell on mentions and direct messages.
    pub bell: Option<bool>,
    /// Capture the mouse (wheel scrolling; disables the terminal's own selection).
    pub mouse: Option<bool>,
    /// Use colours.
    pub colors: Option<bool>,
    /// Palette for nick colours (names like `red`, or `#rrggbb`).
    pub nick_colors: Option<Vec<String>>,
    /// Where received files go.
    pub download_dir: Option<PathBuf>,
    /// Largest file accepted (`500MiB`, `2G`, or bytes).
    pub max_download: Option<String>,
    /// A shell command whose first line of output is the nick's password.
    pub password_cmd: Option<String>,
}

impl Config {
    /// Parses config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        toml::from_str(text).context("invalid config")
    }

    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The nick palette, if one is configured; unknown colour names are an error.
    pub fn palette(&self) -> anyhow::Result<Option<Vec<Color>>> {
        let Some(names) = &self.nick_colors else {
            return Ok(None);
        };
        names
            .iter()
            .map(|n| {
                n.parse::<Color>()
                    .map_err(|_| anyhow::anyhow!("unknown colour {n:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Some)
    }
}

/// A size such as `1048576`, `512KiB`, `500M` or `2GiB` (binary units).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => anyhow::bail!("invalid size unit in {text:?}"),
    };
    n.checked_mul(1 << shift)
        .with_context(|| format!("size too large: {text:?}"))
}

/// Runs `cmd` with `sh -c`; the first line of its output is the password. The password is not
/// put in the error.
pub fn run_password_cmd(cmd: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run the password command")?;
    if !out.status.success() {
        anyhow::bail!("the password command failed ({})", out.status);
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| anyhow::anyhow!("the password command printed invalid UTF-8"))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        anyhow::bail!("the password command printed no password");
    }
    Ok(first.to_owned())
}

/// `~/x` → `$HOME/x`.
pub fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => directories::BaseDirs::new()
            .map(|b| b.home_dir().join(rest))
            .unwrap_or_else(|| path.to_path_buf()),
        Err(_) => path.to_path_buf(),
    }
}

/// The project directories (`chat`), if a home directory is known.
fn dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "chat")
}

/// `~/.config/chat/config.toml` (or the platform's equivalent).
pub fn default_config_path() -> Option<PathBuf> {
    dirs().map(|d| d.config_dir().join("config.toml"))
}

/// `~/.local/share/chat/known_hosts` (or the platform's equivalent): pinned certificates.
pub fn default_known_hosts_path() -> Option<PathBuf> {
    dirs().map(|d| d.data_dir().join("known_hosts"))
}

/// A server address with an optional `tls://` in front: whether TLS was asked for, and
/// `host:port`.
pub fn split_scheme(server: &str) -> (bool, &str) {
    match server.strip_prefix("tls://") {
        Some(rest) => (true, rest),
        None => (false, server),
    }
}

/// `~/.local/state/chat/chat-tui.log` (or the platform's equivalent).
pub fn default_log_path() -> Option<PathBuf> {
    let d = dirs()?;
    let dir = d.state_dir().unwrap_or_else(|| d.data_local_dir());
    Some(dir.join("chat-tui.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_every_field() {
        let c = Config::parse(
            "name = \"alice\"\nserver = \"h:1\"\nbell = false\nmouse = true\ncolors = false\nnick_colors = [\"red\", \"#00ff00\"]\n",
        )
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("alice"));
        assert_eq!(c.bell, Some(false));
        assert_eq!(c.palette().unwrap().unwrap().len(), 2);
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("2 parsecs").is_err());
    }

    #[test]
    fn the_password_is_the_first_line_of_the_commands_output() {
        assert_eq!(
            run_password_cmd("printf 'hunter22\\nsecond\\n'").unwrap(),
            "hunter22"
        );
        assert!(run_password_cmd("exit 3").is_err());
        assert!(run_password_cmd("true").is_err());
        let c = Config::parse("password_cmd = \"pass show chat\"").unwrap();
        assert_eq!(c.password_cmd.as_deref(), Some("pass show chat"));
    }

    #[test]
    fn a_tls_scheme_asks_for_tls() {
        assert_eq!(
            split_scheme("tls://chat.example.org:6697"),
            (true, "chat.example.org:6697")
        );
        assert_eq!(split_scheme("127.0.0.1:6666"), (false, "127.0.0.1:6666"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::parse("nmae = \"x\"").is_err());
    }
}
