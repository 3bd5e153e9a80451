//! Logging in from a text client, one question at a time: a private server's password, the
//! name, and the password of a registered name.
//!
//! A netcat user answers prompts:
//!
//! ```text
//! *** this server is private: type its password and press Enter     (--server-password only)
//! *** what is your name? type it and press Enter
//! alice
//! *** alice is registered: type its password and press Enter
//! ```
//!
//! or logs in with one line, `/login alice password` (for scripts). The checks are the hub's:
//! the name and the password travel in the same `hello` a framed client sends, so the argon2
//! verification (off the hub), the throttling (3 failures a minute per account and per address),
//! bans and the nick fold (case variants and look-alikes are one account) apply unchanged. Only
//! the server password is asked of the hub on its own first (throttled per address like a
//! login), so that a wrong one is answered before the name is asked; `hello` carries it again.
//!
//! A wrong password asks for it again, with the same prompt (and echo off again on telnet),
//! because the user's next line is usually the password once more: taken as a name it would
//! be shown to every room. The ways out are an empty line or `/nick other` (a new name),
//! `/login name password` (what a script sends), and `/quit`. When the hub's throttle refuses
//! a try, the connection closes, for the same reason.
//!
//! A line typed while a password is expected is never shown to anyone, logged or kept (only
//! the ways out above are recognised in it): it goes into `hello` and is dropped. A telnet
//! client (one that sent a telnet command, see [`crate::text::telnet`]) is asked not to echo
//! it while typed (`IAC WILL ECHO`, then `IAC WONT ECHO`); netcat shows it as typed, which is
//! why TLS exists.

use bytes::Bytes;
use chat_proto::ErrorCode;
use chat_proto::client::Hello;
use chat_proto::sanitize::sanitize_line;
use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info};

use super::TextSession;
use crate::config::Config;
use crate::hub::ConnInfo;
use crate::text::close::TextClose;
use crate::text::command::{HELP, Input, parse};
use crate::text::telnet::{WILL_ECHO, WONT_ECHO};

/// What a text client that has no name yet is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Login {
    /// A private server's password (the first thing asked on a `--server-password` server).
    ServerPassword,
    /// A name.
    Name,
    /// The password of the registered `name` the user just typed.
    Password {
        /// The name as typed.
        name: String,
    },
}

impl Login {
    /// The first question on this server.
    pub(super) fn first(config: &Config) -> Self {
        if config.server_password.is_some() {
            Login::ServerPassword
        } else {
            Login::Name
        }
    }

    /// Whether the next line is a password (taken as it is, never as a command).
    pub(super) fn wants_secret(&self) -> bool {
        matches!(self, Login::ServerPassword | Login::Password { .. })
    }
}

impl<R: AsyncRead + Unpin> TextSession<R> {
    /// The first prompt: the greeting (for a peer that waits to be spoken to) and, on a private
    /// server, the question for its password.
    pub(super) fn start(&mut self, greet: bool) -> Result<(), TextClose> {
        let version = env!("CARGO_PKG_VERSION");
        let welcome = format!("*** welcome to chat-server {version} (text mode)");
        match (&self.login, greet) {
            (Login::ServerPassword, true) => self.say(&[
                &welcome,
                "*** this server is private: type its password and press Enter",
            ]),
            (Login::ServerPassword, false) => {
                self.say(&["*** this server is private: type its password and press Enter"])
            }
            (_, true) => self.say(&[&welcome, "*** what is your name? type it and press Enter"]),
            (_, false) => Ok(()),
        }
    }

    /// A line typed where a password is expected: the server's, or a registered name's.
    pub(super) async fn secret(&mut self, secret: String) -> Result<(), TextClose> {
        self.echo(true)?;
        match std::mem::replace(&mut self.login, Login::Name) {
            Login::ServerPassword => {
                if secret.trim() == "/quit" {
                    return Err(TextClose::Quit("quit".to_owned()));
                }
                let checked = self
                    .hub
                    .check_server_password(self.peer.ip(), secret.clone())
                    .await
                    .map_err(|_| TextClose::HubGone)?;
                let refused = match checked {
                    Ok(()) => {
                        self.server_password = Some(secret);
                        return self.say(&["*** what is your name? type it and press Enter"]);
                    }
                    Err(refused) => refused,
                };
                info!(session = self.id, peer = %self.peer, code = %refused.code, "server password refused");
                self.login = Login::ServerPassword;
                let line = if refused.code == ErrorCode::AuthThrottled {
                    format!("*** error: {}", sanitize_line(&refused.message))
                } else {
                    "*** error: wrong server password; type it again".to_owned()
                };
                self.say(&[&line])?;
                self.echo(false)
            }
            Login::Password { .. } if secret.trim().is_empty() => {
                self.say(&["*** no password given; choose a name:"])
            }
            // The ways out besides an empty line; any other line is the password.
            Login::Password { name } => match parse(&secret) {
                Input::Nick(other) => {
                    let other = other.to_owned();
                    self.register(&other, None).await
                }
                Input::Login { name, password } => {
                    let (name, password) = (name.to_owned(), password.to_owned());
                    self.register(&name, Some(password)).await
                }
                Input::Quit(reason) => Err(TextClose::Quit(reason.unwrap_or("quit").to_owned())),
                _ => self.register(&name, Some(secret)).await,
            },
            Login::Name => Ok(()),
        }
    }

    /// A line before registration: a name, or one of the few commands that need none.
    pub(super) async fn before_name(&mut self, input: Input<'_>) -> Result<(), TextClose> {
        match input {
            Input::Say(name) | Input::Nick(name) => self.register(name.trim(), None).await,
            Input::Login { name, password } => self.register(name, Some(password.to_owned())).await,
            Input::Quit(reason) => Err(TextClose::Quit(reason.unwrap_or("quit").to_owned())),
            Input::Help => self.say(HELP),
            Input::Charset(label) => self.charset(label),
            Input::Usage(usage) => self.say(&[&format!("*** usage: {usage}")]),
            _ => self.say(&["*** choose a name first: type it and press Enter"]),
        }
    }

    /// Asks the hub for the nick (with the password, if one was typed); on success the welcome
    /// and `#lobby` arrive as frames.
    async fn register(&mut self, name: &str, password: Option<String>) -> Result<(), TextClose> {
        let (kick_tx, kick_rx) = oneshot::channel();
        let conn = ConnInfo {
            id: self.id,
            peer: self.peer,
            out_tx: self.out_tx.clone(),
            kick_tx,
            // It renders what it takes off its queue frame by frame.
            batches: false,
        };
        let tried_password = password.is_some();
        let hello = Hello {
            name: name.to_owned(),
            client: Some("text".to_owned()),
            password,
            server_password: self.server_password.clone(),
            ..Hello::default()
        };
        match self.hub.register(conn, hello).await {
            Ok(Ok(nick)) => {
                info!(session = self.id, peer = %self.peer, nick, charset = self.charset.encoding().name(), "text client registered");
                self.nick = Some(nick);
                self.kick_rx = Some(kick_rx);
                self.settling = Some(super::Settling {
                    rooms: None,
                    until: Instant::now() + super::SETTLE_MAX,
                });
                self.idle_deadline = Instant::now() + self.config.text_idle_timeout;
                Ok(())
            }
            // A banned nick or address is not asked again.
            Ok(Err(refused)) if refused.code.is_fatal() => Err(TextClose::Banned(refused.message)),
            Ok(Err(refused)) if refused.needs_password => {
                let shown = sanitize_line(name).into_owned();
                self.login = Login::Password {
                    name: name.to_owned(),
                };
                self.say(&[&format!(
                    "*** {shown} is registered: type its password and press Enter"
                )])?;
                self.echo(false)
            }
            // A wrong password: the prompt asks again (the next line must not become a name,
            // which everyone would see) until the throttle says stop.
            Ok(Err(refused)) if tried_password && refused.code == ErrorCode::AuthFailed => {
                let shown = sanitize_line(name).into_owned();
                self.login = Login::Password {
                    name: name.to_owned(),
                };
                self.say(&[
                    &format!("*** error: {}", sanitize_line(&refused.message)),
                    &format!(
                        "*** type the password of {shown} again (an empty line or /nick other to choose another name)"
                    ),
                ])?;
                self.echo(false)
            }
            // Throttled after a password was typed: close rather than go back to the name
            // prompt, where the user's next try at the password would become a public name.
            Ok(Err(refused)) if tried_password && refused.code == ErrorCode::AuthThrottled => {
                info!(session = self.id, peer = %self.peer, "login throttled; closing");
                Err(TextClose::LoginThrottled(refused.message))
            }
            Ok(Err(refused)) => {
                debug!(session = self.id, reason = %refused, "name refused");
                let line = format!("*** error: {}", sanitize_line(&refused.message));
                let next = if tried_password {
                    "*** type the name again to retry, or choose another one:"
                } else {
                    "*** choose another name:"
                };
                self.say(&[&line, next])
            }
            Err(_) => Err(TextClose::HubGone),
        }
    }

    /// Turns a telnet client's local echo off (`on` false) while a password is typed, and back
    /// on after, with the line break its Enter did not show. Nothing for other clients.
    fn echo(&mut self, on: bool) -> Result<(), TextClose> {
        if !self.lines.spoke_telnet() || self.echo_off != on {
            return Ok(());
        }
        self.echo_off = !on;
        let mut bytes = if on { WONT_ECHO } else { WILL_ECHO }.to_vec();
        if on {
            self.charset.encode_line("", &mut bytes);
        }
        self.raw(Bytes::from(bytes))
    }
}
