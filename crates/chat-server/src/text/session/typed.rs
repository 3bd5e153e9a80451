//! Typed lines to hub requests: the name, commands, messages, and the rate limit on them.

use chat_proto::client::{self, Hello, Join, ListRooms, Names, Nick, Part, Topic};
use chat_proto::sanitize::sanitize_line;
use chat_proto::{ClientMsg, WireMessage};
use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info};

use super::TextSession;
use crate::hub::ConnInfo;
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

    /// A line before registration: a name, or one of the few commands that need none.
    async fn before_name(&mut self, input: Input<'_>) -> Result<(), TextClose> {
        match input {
            Input::Say(name) | Input::Nick(name) => self.register(name.trim()).await,
            Input::Quit(reason) => Err(TextClose::Quit(reason.unwrap_or("quit").to_owned())),
            Input::Help => self.say(HELP),
            Input::Charset(label) => self.charset(label),
            _ => self.say(&["*** choose a name first: type it and press Enter"]),
        }
    }

    /// Asks the hub for the nick; on success the welcome and `#lobby` arrive as frames.
    async fn register(&mut self, name: &str) -> Result<(), TextClose> {
        let (kick_tx, kick_rx) = oneshot::channel();
        let conn = ConnInfo {
            id: self.id,
            peer: self.peer,
            out_tx: self.out_tx.clone(),
            kick_tx,
            // It renders what it takes off its queue frame by frame.
            batches: false,
        };
        let hello = Hello {
            name: name.to_owned(),
            client: Some("text".to_owned()),
            ..Hello::default()
        };
        match self.hub.register(conn, hello).await {
            Ok(Ok(nick)) => {
                info!(session = self.id, peer = %self.peer, nick, charset = self.charset.encoding().name(), "text client registered");
                self.nick = Some(nick);
                self.kick_rx = Some(kick_rx);
                self.idle_deadline = Instant::now() + self.config.text_idle_timeout;
                Ok(())
            }
            Ok(Err(refused)) => {
                debug!(session = self.id, reason = %refused, "name refused");
                let line = format!("*** error: {}", refused.message);
                self.say(&[&line, "*** choose another name:"])
            }
            Err(_) => Err(TextClose::HubGone),
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
            Input::Rooms => ClientMsg::ListRooms(ListRooms { id: None }),
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
    fn charset(&mut self, label: Option<&str>) -> Result<(), TextClose> {
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
