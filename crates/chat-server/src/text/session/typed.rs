//! Typed lines to hub requests: commands, messages, and the rate limit on them.

use chat_proto::client::{self, Ban, Join, Kick, ListRooms, Mute, Names, Nick, Part, Topic, Unban};
use chat_proto::sanitize::sanitize_line;
use chat_proto::{ClientMsg, WireMessage};
use tokio::io::AsyncRead;
use tracing::{debug, info};

use super::TextSession;
use crate::text::MAX_LINE;
use crate::text::charset::parse_charset;
use crate::text::close::TextClose;
use crate::text::command::{HELP, Input, parse};
use crate::text::line::Piece;

impl<R: AsyncRead + Unpin> TextSession<R> {
    /// One piece from the line splitter.
    pub(super) async fn piece(&mut self, piece: Piece) -> Result<(), TextClose> {
        match piece {
            Piece::Line(bytes) => self.line(&bytes, true).await,
            Piece::TooLong => {
                let line = format!(
                    "*** error: line longer than {MAX_LINE} bytes; it was not sent (split it up)"
                );
                self.say(&[&line])
            }
        }
    }

    /// A line (or a chunk that ended in silence, `line_end` false): decode, then act on it.
    pub(super) async fn line(&mut self, bytes: &[u8], line_end: bool) -> Result<(), TextClose> {
        let decoded = self.charset.decode(bytes, line_end);
        if let Some(enc) = decoded.switched {
            info!(session = self.id, peer = %self.peer, charset = enc.name(), "charset detected");
            let name = enc.name();
            self.say(&[&format!(
                "*** your text is not UTF-8: this connection now reads and writes {name} (/charset utf-8 to switch back)"
            )])?;
        }
        let text = decoded.text;
        // A password is taken whole, never parsed, and never logged.
        if self.nick.is_none() && self.login.wants_secret() {
            if !self.take_token() {
                return self.say(&["*** error: too many lines; type it again in a moment"]);
            }
            return self.secret(text).await;
        }
        let input = parse(&text);
        if input == Input::Empty {
            if self.nick.is_none() {
                return self.say(&["*** what is your name?"]);
            }
            return Ok(());
        }
        if !self.take_token() {
            let c = &self.config;
            let line = format!(
                "*** error: too many lines (burst {}, then {}/s); this one was not sent",
                c.rate_burst, c.rate_per_sec
            );
            return self.say(&[&line]);
        }
        match self.nick.clone() {
            None => self.before_name(input).await,
            Some(nick) => self.command(input, &nick).await,
        }
    }

    /// A line from a registered user.
    async fn command(&mut self, input: Input<'_>, nick: &str) -> Result<(), TextClose> {
        let request = match input {
            Input::Empty => return Ok(()),
            Input::Say(text) => match self.current.clone() {
                Some(room) => ClientMsg::Send(send(room, text, false)),
                None => return self.say(&["*** you are in no room: /join #room first"]),
            },
            Input::Me(text) => match self.current.clone() {
                Some(room) => ClientMsg::Send(send(room, text, true)),
                None => return self.say(&["*** you are in no room: /join #room first"]),
            },
            Input::Msg { to, text } => ClientMsg::Send(send(to.to_owned(), text, false)),
            Input::Nick(new) => ClientMsg::Nick(Nick {
                id: None,
                nick: new.to_owned(),
            }),
            Input::Join(room) => ClientMsg::Join(Join { id: None, room }),
            Input::Part { room, reason } => match room.or_else(|| self.current.clone()) {
                Some(room) => ClientMsg::Part(Part {
                    id: None,
                    room,
                    reason: reason.map(str::to_owned),
                }),
                None => return self.say(&["*** you are in no room"]),
            },
            Input::Names(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => ClientMsg::Names(Names { id: None, room }),
                None => return self.say(&["*** which room? /names #room"]),
            },
            Input::Topic { room, text } => match room.or_else(|| self.current.clone()) {
                Some(room) => ClientMsg::Topic(Topic {
                    id: None,
                    room,
                    topic: text.map(str::to_owned),
                    lock: None,
                }),
                None => return self.say(&["*** which room? /topic #room [text]"]),
            },
            Input::TopicLock { room, lock } => match room.or_else(|| self.current.clone()) {
                Some(room) => ClientMsg::Topic(Topic {
                    id: None,
                    room,
                    topic: None,
                    lock: Some(lock),
                }),
                None => return self.say(&["*** which room? /topic #room lock|unlock"]),
            },
            Input::Kick { room, nick, reason } => match room.or_else(|| self.current.clone()) {
                Some(room) => ClientMsg::Kick(Kick {
                    id: None,
                    room,
                    nick: nick.to_owned(),
                    reason: reason.map(str::to_owned),
                }),
                None => return self.say(&["*** which room? /kick #room nick [reason]"]),
            },
            Input::Ban {
                target,
                secs,
                reason,
            } => ClientMsg::Ban(Ban {
                id: None,
                target: target.to_owned(),
                duration_secs: secs,
                reason: reason.map(str::to_owned),
            }),
            Input::Unban(target) => ClientMsg::Unban(Unban {
                id: None,
                target: target.to_owned(),
            }),
            Input::Mute { nick, room, secs } => ClientMsg::Mute(Mute {
                id: None,
                nick: nick.to_owned(),
                room,
                duration_secs: secs,
            }),
            // A zero length lifts a mute (PROTOCOL.md).
            Input::Unmute { nick, room } => ClientMsg::Mute(Mute {
                id: None,
                nick: nick.to_owned(),
                room,
                duration_secs: Some(0),
            }),
            Input::Rooms => ClientMsg::ListRooms(ListRooms { id: None }),
            Input::Register(password) => ClientMsg::Register(client::Register {
                id: None,
                password: password.to_owned(),
            }),
            Input::Login { .. } => {
                return self.say(&[
                    "*** you are logged in already; /quit and reconnect to log in as someone else",
                ]);
            }
            Input::Quit(reason) => {
                return Err(TextClose::Quit(reason.unwrap_or("quit").to_owned()));
            }
            Input::Help => return self.say(HELP),
            Input::Charset(label) => return self.charset(label),
            Input::Usage(usage) => return self.say(&[&format!("*** usage: {usage}")]),
            Input::Unknown(name) => {
                let name = sanitize_line(name);
                return self.say(&[&format!("*** unknown command /{name}; /help lists them")]);
            }
        };
        debug!(
            session = self.id,
            nick,
            kind = request.kind(),
            "text request"
        );
        self.hub
            .request(self.id, request)
            .await
            .map_err(|_| TextClose::HubGone)
    }

    /// `/charset`: shows or changes this connection's charset.
    pub(super) fn charset(&mut self, label: Option<&str>) -> Result<(), TextClose> {
        let Some(label) = label else {
            let name = self.charset.encoding().name();
            return self.say(&[&format!(
                "*** this connection uses {name}; /charset utf-8|gbk|gb18030|big5|shift_jis|... changes it"
            )]);
        };
        match parse_charset(label) {
            Ok(enc) => {
                self.charset.set(enc);
                debug!(session = self.id, charset = enc.name(), "charset chosen");
                self.say(&[&format!("*** this connection now uses {}", enc.name())])
            }
            Err(why) => {
                let why = sanitize_line(&why).into_owned();
                self.say(&[&format!("*** error: {why}")])
            }
        }
    }

    /// Takes a rate token; on refusal counts it (and logs the first refusal).
    fn take_token(&mut self) -> bool {
        if self.bucket.try_take() {
            return true;
        }
        self.rate_refused += 1;
        if self.rate_refused == 1 {
            info!(session = self.id, peer = %self.peer, nick = ?self.nick, "rate limit reached; refusing lines");
        }
        false
    }
}

/// A `send` request with no id (text clients do not resend).
fn send(to: String, text: &str, action: bool) -> client::Send {
    client::Send {
        id: None,
        to,
        text: text.to_owned(),
        action,
    }
}
