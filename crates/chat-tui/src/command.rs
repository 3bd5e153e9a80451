//! What a line of input means: a message, or a `/command`. Pure parsing, no state.

/// Every command, for `/help` and Tab completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/help", "this help"),
    ("/join", "#room: join (or create) a room"),
    (
        "/part",
        "[#room] [reason]: leave a room (or close a direct-message buffer)",
    ),
    ("/nick", "name: change your nick"),
    (
        "/msg",
        "nick|#room [text]: open a direct conversation, and send text",
    ),
    ("/query", "nick: open a direct conversation"),
    ("/me", "text: send an action (\"* alice waves\")"),
    ("/names", "list the members of this room (also /who)"),
    ("/who", "list the members of this room"),
    ("/topic", "[text]: show the topic, or set it"),
    ("/rooms", "list the rooms on the server"),
    ("/search", "words: search this room's history"),
    ("/clear", "clear this buffer's screen"),
    ("/quit", "[reason]: leave"),
];

/// The key bindings, for `/help`.
pub const KEYS: &[&str] = &[
    "Enter send · Alt-Enter/Shift-Enter/Ctrl-J newline · Tab complete nick or /command",
    "Up/Down input history · Ctrl-A/E B/F W U K Y, Alt-B/F/D readline editing",
    "PgUp/PgDn scroll · Home/End top/bottom (input empty) · Ctrl-Home/End always",
    "Alt-1..9 buffer · Ctrl-N/Ctrl-P next/prev · Alt-A next with activity",
    "F2 or Alt-M member list · Ctrl-L redraw · Ctrl-C clear input / quit · Ctrl-D quit",
    "//text sends text starting with a slash",
];

/// A parsed line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Plain text to send to the active buffer.
    Text(String),
    /// `/help`.
    Help,
    /// `/join #room`.
    Join(String),
    /// `/part [#room] [reason]`.
    Part {
        /// Room to leave; the active one when absent.
        room: Option<String>,
        /// Reason shown to the room.
        reason: Option<String>,
    },
    /// `/nick name`.
    Nick(String),
    /// `/msg target [text]` or `/query target`.
    Msg {
        /// Nick or room.
        to: String,
        /// Text to send, if any.
        text: Option<String>,
    },
    /// `/me text`.
    Me(String),
    /// `/names` or `/who`.
    Names,
    /// `/topic [text]`.
    Topic(Option<String>),
    /// `/rooms`.
    Rooms,
    /// `/search words`.
    Search(String),
    /// `/clear`.
    Clear,
    /// `/quit [reason]`.
    Quit(Option<String>),
    /// A command with missing arguments: the usage hint to show.
    Usage(&'static str),
    /// Not a command we know.
    Unknown(String),
}

/// Parses one submitted input. `//text` is the text `/text`.
pub fn parse(line: &str) -> Input {
    if let Some(rest) = line.strip_prefix("//") {
        return Input::Text(format!("/{rest}"));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Input::Text(line.to_owned());
    };
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (first, tail) = match args.split_once(char::is_whitespace) {
        Some((f, t)) => (f, t.trim_start()),
        None => (args, ""),
    };
    match name.to_lowercase().as_str() {
        "help" | "h" => Input::Help,
        "join" | "j" if first.is_empty() => Input::Usage("/join #room"),
        "join" | "j" => Input::Join(room_name(first)),
        "part" | "leave" | "close" => {
            if first.starts_with('#') {
                Input::Part {
                    room: Some(first.to_owned()),
                    reason: opt(tail),
                }
            } else {
                Input::Part {
                    room: None,
                    reason: opt(args),
                }
            }
        }
        "nick" if first.is_empty() => Input::Usage("/nick newname"),
        "nick" => Input::Nick(first.to_owned()),
        "msg" | "query" | "q" if first.is_empty() => Input::Usage("/msg nick [text]"),
        "msg" | "query" | "q" => Input::Msg {
            to: first.to_owned(),
            text: opt(tail),
        },
        "me" if args.is_empty() => Input::Usage("/me text"),
        "me" => Input::Me(args.to_owned()),
        "names" | "who" => Input::Names,
        "topic" => Input::Topic(opt(args)),
        "rooms" | "list" => Input::Rooms,
        "search" | "grep" if args.is_empty() => Input::Usage("/search words"),
        "search" | "grep" => Input::Search(args.to_owned()),
        "clear" => Input::Clear,
        "quit" | "exit" => Input::Quit(opt(args)),
        _ => Input::Unknown(name.to_owned()),
    }
}

/// `rust` → `#rust`; `#rust` stays.
fn room_name(s: &str) -> String {
    if s.starts_with('#') {
        s.to_owned()
    } else {
        format!("#{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_slash_sends_a_literal_slash() {
        assert_eq!(parse("//shrug"), Input::Text("/shrug".into()));
    }

    #[test]
    fn unknown_commands_are_recognised_not_sent() {
        assert_eq!(parse("/frobnicate x"), Input::Unknown("frobnicate".into()));
    }

    #[test]
    fn msg_takes_a_target_and_optional_text() {
        assert_eq!(
            parse("/msg bob hi there"),
            Input::Msg {
                to: "bob".into(),
                text: Some("hi there".into())
            }
        );
        assert_eq!(
            parse("/query bob"),
            Input::Msg {
                to: "bob".into(),
                text: None
            }
        );
    }

    #[test]
    fn join_adds_the_hash() {
        assert_eq!(parse("/join rust"), Input::Join("#rust".into()));
        assert_eq!(parse("/join"), Input::Usage("/join #room"));
    }

    #[test]
    fn part_with_room_and_reason() {
        assert_eq!(
            parse("/part #rust bye all"),
            Input::Part {
                room: Some("#rust".into()),
                reason: Some("bye all".into())
            }
        );
    }
}
