//! What a line typed by a text user means: a message, or one of the commands the TUI knows.
//!
//! Parsing is pure: [`parse`] turns a line into an [`Input`] and the session carries it out.
//! A line that starts with `/` is a command; `//` sends a line that starts with `/`.

/// One typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Nothing to do (an empty or blank line).
    Empty,
    /// Text for the current room.
    Say(&'a str),
    /// `/nick name`
    Nick(&'a str),
    /// `/join #room` (the `#` may be left out).
    Join(String),
    /// `/part [#room] [reason]`
    Part {
        /// The room, or the current one.
        room: Option<String>,
        /// Told to the room.
        reason: Option<&'a str>,
    },
    /// `/msg nick text` (or `/msg #room text`).
    Msg {
        /// A nick or a room.
        to: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `/me text`: an action in the current room.
    Me(&'a str),
    /// `/names [#room]` or `/who [#room]`.
    Names(Option<String>),
    /// `/topic [#room] [text]`: show or set.
    Topic {
        /// The room, or the current one.
        room: Option<String>,
        /// The new topic; `None` shows it.
        text: Option<&'a str>,
    },
    /// `/rooms` or `/list`.
    Rooms,
    /// `/quit [reason]`.
    Quit(Option<&'a str>),
    /// `/help`.
    Help,
    /// `/charset [name]`: show or change this connection's charset.
    Charset(Option<&'a str>),
    /// `/register password`: reserve the current name with a password.
    Register(&'a str),
    /// `/login name password`: the name and its password in one line (before a name).
    Login {
        /// The registered name.
        name: &'a str,
        /// Its password.
        password: &'a str,
    },
    /// A command used wrongly: how to use it.
    Usage(&'static str),
    /// A command nobody knows.
    Unknown(&'a str),
}

/// The lines `/help` prints.
pub const HELP: &[&str] = &[
    "type a line and press Enter to talk in the current room; commands:",
    "  /join #room         join (or create) a room and talk there",
    "  /part [#room]       leave a room (the current one by default)",
    "  /msg nick text      a private message (also /msg #room text)",
    "  /me text            an action: * you text",
    "  /nick name          change your name",
    "  /names [#room]      who is in a room (also /who)",
    "  /topic [text]       show or set the current room's topic",
    "  /rooms              list the rooms (also /list)",
    "  /charset [name]     show or set your charset: utf-8, gbk, gb18030, big5, shift_jis, ...",
    "  /register password  reserve your name: later logins need the password",
    "  /login name pass    log in to a registered name in one line (before choosing a name)",
    "  /quit [reason]      leave the server",
    "  //text              send a line that starts with /",
];

/// Understands one line (already decoded, line ending removed).
pub fn parse<'a>(line: &'a str) -> Input<'a> {
    if line.trim().is_empty() {
        return Input::Empty;
    }
    let Some(command) = line.strip_prefix('/') else {
        return Input::Say(line);
    };
    if command.starts_with('/') {
        return Input::Say(command);
    }
    let command = command.trim();
    let (name, args) = command
        .split_once(char::is_whitespace)
        .map_or((command, ""), |(n, a)| (n, a.trim()));
    let (first, rest) = args
        .split_once(char::is_whitespace)
        .map_or((args, ""), |(f, r)| (f, r.trim()));
    let some = |s: &'a str| (!s.is_empty()).then_some(s);
    match name.to_ascii_lowercase().as_str() {
        "nick" | "name" if first.is_empty() || !rest.is_empty() => Input::Usage("/nick newname"),
        "nick" | "name" => Input::Nick(first),
        "join" | "j" if first.is_empty() => Input::Usage("/join #room"),
        "join" | "j" => Input::Join(room_name(first)),
        "part" | "leave" if first.starts_with('#') => Input::Part {
            room: Some(first.to_owned()),
            reason: some(rest),
        },
        "part" | "leave" => Input::Part {
            room: None,
            reason: some(args),
        },
        "msg" | "query" | "m" if first.is_empty() || rest.is_empty() => {
            Input::Usage("/msg nick text")
        }
        "msg" | "query" | "m" => Input::Msg {
            to: first,
            text: rest,
        },
        "me" if args.is_empty() => Input::Usage("/me text"),
        "me" => Input::Me(args),
        "names" | "who" => Input::Names(some(first).map(room_name)),
        "topic" if first.starts_with('#') => Input::Topic {
            room: Some(first.to_owned()),
            text: some(rest),
        },
        "topic" => Input::Topic {
            room: None,
            text: some(args),
        },
        "rooms" | "list" => Input::Rooms,
        "quit" | "exit" | "bye" => Input::Quit(some(args)),
        "help" | "?" | "commands" => Input::Help,
        "charset" | "encoding" | "enc" => Input::Charset(some(first)),
        "register" if args.is_empty() => Input::Usage("/register password"),
        "register" => Input::Register(args),
        "login" if first.is_empty() || rest.is_empty() => Input::Usage("/login name password"),
        "login" => Input::Login {
            name: first,
            password: rest,
        },
        _ => Input::Unknown(name),
    }
}

/// `rust` → `#rust`; a name that has its `#` stays as it is.
fn room_name(name: &str) -> String {
    if name.starts_with('#') {
        name.to_owned()
    } else {
        format!("#{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_messages_and_double_slash_escapes() {
        assert_eq!(parse("hello there"), Input::Say("hello there"));
        assert_eq!(
            parse("//join is a command"),
            Input::Say("/join is a command")
        );
        assert_eq!(parse("   "), Input::Empty);
        assert_eq!(parse(""), Input::Empty);
    }

    #[test]
    fn commands_take_their_arguments() {
        assert_eq!(parse("/nick bob"), Input::Nick("bob"));
        assert_eq!(parse("/nick"), Input::Usage("/nick newname"));
        assert_eq!(parse("/nick two words"), Input::Usage("/nick newname"));
        assert_eq!(parse("/join rust"), Input::Join("#rust".into()));
        assert_eq!(parse("/JOIN #Rust"), Input::Join("#Rust".into()));
        assert_eq!(parse("/join"), Input::Usage("/join #room"));
        assert_eq!(
            parse("/msg bob  hi there "),
            Input::Msg {
                to: "bob",
                text: "hi there"
            }
        );
        assert_eq!(parse("/msg bob"), Input::Usage("/msg nick text"));
        assert_eq!(parse("/me waves"), Input::Me("waves"));
        assert_eq!(parse("/who"), Input::Names(None));
        assert_eq!(parse("/names rust"), Input::Names(Some("#rust".into())));
        assert_eq!(parse("/rooms"), Input::Rooms);
        assert_eq!(parse("/list"), Input::Rooms);
        assert_eq!(parse("/quit"), Input::Quit(None));
        assert_eq!(parse("/quit see you"), Input::Quit(Some("see you")));
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/charset"), Input::Charset(None));
        assert_eq!(parse("/charset gbk"), Input::Charset(Some("gbk")));
        assert_eq!(parse("/frobnicate x"), Input::Unknown("frobnicate"));
        assert_eq!(
            parse("/register correct horse"),
            Input::Register("correct horse")
        );
        assert_eq!(parse("/register"), Input::Usage("/register password"));
        assert_eq!(
            parse("/login alice correct horse"),
            Input::Login {
                name: "alice",
                password: "correct horse"
            }
        );
        assert_eq!(parse("/login alice"), Input::Usage("/login name password"));
    }

    #[test]
    fn part_and_topic_take_an_optional_room() {
        assert_eq!(
            parse("/part"),
            Input::Part {
                room: None,
                reason: None
            }
        );
        assert_eq!(
            parse("/part #rust bye all"),
            Input::Part {
                room: Some("#rust".into()),
                reason: Some("bye all")
            }
        );
        assert_eq!(
            parse("/part gone fishing"),
            Input::Part {
                room: None,
                reason: Some("gone fishing")
            }
        );
        assert_eq!(
            parse("/topic"),
            Input::Topic {
                room: None,
                text: None
            }
        );
        assert_eq!(
            parse("/topic #rust all about rust"),
            Input::Topic {
                room: Some("#rust".into()),
                text: Some("all about rust")
            }
        );
        assert_eq!(
            parse("/topic all about rust"),
            Input::Topic {
                room: None,
                text: Some("all about rust")
            }
        );
    }
}
