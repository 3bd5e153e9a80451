//! What a line typed by a text user means: a message, or one of the commands the TUI knows.
//!
//! Parsing is pure: [`parse`] turns a line into an [`Input`] and the session carries it out.
//! A line that starts with `/` is a command; `//` sends a line that starts with `/`.
//!
//! Operator commands (`/kick`, `/ban`, `/unban`, `/mute`, `/unmute`, `/topic #room lock`) are
//! parsed for everyone: whether the user may use them is the hub's decision (it answers
//! `forbidden`), so the text dialect holds no second, possibly different, list of operators.
//! Their durations are written like IRC services': `30s`, `10m`, `2h`, `7d`, `1w` or plain
//! seconds; none means permanent.

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
    /// `/topic [#room] lock|unlock` (operators): only operators may change a locked topic.
    TopicLock {
        /// The room, or the current one.
        room: Option<String>,
        /// Lock (true) or unlock.
        lock: bool,
    },
    /// `/kick [#room] nick [reason]` (operators): removes `nick` from a room.
    Kick {
        /// The room, or the current one.
        room: Option<String>,
        /// Who.
        nick: &'a str,
        /// Shown to the room and to the kicked user.
        reason: Option<&'a str>,
    },
    /// `/ban nick|ip [duration] [reason]` (operators).
    Ban {
        /// A nick or an IP address.
        target: &'a str,
        /// Seconds; `None` is permanent.
        secs: Option<u64>,
        /// Shown to the banned user.
        reason: Option<&'a str>,
    },
    /// `/unban nick|ip` (operators).
    Unban(&'a str),
    /// `/mute nick [#room] [duration]` (operators): everywhere when no room is given.
    Mute {
        /// Who.
        nick: &'a str,
        /// Only in this room.
        room: Option<String>,
        /// Seconds; `None` until lifted.
        secs: Option<u64>,
    },
    /// `/unmute nick [#room]` (operators).
    Unmute {
        /// Who.
        nick: &'a str,
        /// The room the mute was for; `None` for an everywhere mute.
        room: Option<String>,
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
    "operators only (others are refused):",
    "  /kick [#room] nick [reason]          remove someone from a room",
    "  /ban nick|ip [duration] [reason]     ban from the server (duration: 30s, 10m, 2h, 7d; none = for good)",
    "  /unban nick|ip                       lift a ban",
    "  /mute nick [#room] [duration]        silence someone (everywhere without a room)",
    "  /unmute nick [#room]                 lift a mute",
    "  /topic [#room] lock|unlock           only operators may change a locked topic",
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
        "topic" if first.starts_with('#') && lock_word(rest).is_some() => Input::TopicLock {
            room: Some(first.to_owned()),
            lock: lock_word(rest) == Some(true),
        },
        "topic" if !first.starts_with('#') && lock_word(args).is_some() => Input::TopicLock {
            room: None,
            lock: lock_word(args) == Some(true),
        },
        "topic" if first.starts_with('#') => Input::Topic {
            room: Some(first.to_owned()),
            text: some(rest),
        },
        "topic" => Input::Topic {
            room: None,
            text: some(args),
        },
        "kick" | "k" => kick(args),
        "ban" => ban(first, rest),
        "unban" if first.is_empty() || !rest.is_empty() => Input::Usage("/unban nick|ip"),
        "unban" => Input::Unban(first),
        "mute" | "silence" => mute(first, rest),
        "unmute" | "unsilence" => unmute(first, rest),
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

/// `/kick [#room] nick [reason]`.
fn kick(args: &str) -> Input<'_> {
    const USAGE: Input<'static> = Input::Usage("/kick [#room] nick [reason]");
    let (room, args) = match args.split_once(char::is_whitespace) {
        Some((room, rest)) if room.starts_with('#') => (Some(room.to_owned()), rest.trim()),
        _ if args.starts_with('#') => return USAGE,
        _ => (None, args),
    };
    let (nick, reason) = args
        .split_once(char::is_whitespace)
        .map_or((args, ""), |(n, r)| (n, r.trim()));
    if nick.is_empty() {
        return USAGE;
    }
    Input::Kick {
        room,
        nick,
        reason: (!reason.is_empty()).then_some(reason),
    }
}

/// `/ban nick|ip [duration] [reason]`: a second word that reads as a duration is one.
fn ban<'a>(target: &'a str, rest: &'a str) -> Input<'a> {
    if target.is_empty() {
        return Input::Usage("/ban nick|ip [duration] [reason]");
    }
    let (word, after) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(w, a)| (w, a.trim()));
    let (secs, reason) = match duration(word) {
        Some(Ok(secs)) => (Some(secs), after),
        Some(Err(())) => return Input::Usage(DURATION_USAGE),
        None => (None, rest),
    };
    Input::Ban {
        target,
        secs,
        reason: (!reason.is_empty()).then_some(reason),
    }
}

/// `/mute nick [#room] [duration]`.
fn mute<'a>(nick: &'a str, rest: &'a str) -> Input<'a> {
    const USAGE: Input<'static> = Input::Usage("/mute nick [#room] [duration]");
    if nick.is_empty() {
        return USAGE;
    }
    let mut words = rest.split_whitespace();
    let mut room = None;
    let mut secs = None;
    let mut next = words.next();
    if let Some(word) = next.filter(|w| w.starts_with('#')) {
        room = Some(word.to_owned());
        next = words.next();
    }
    if let Some(word) = next {
        match duration(word) {
            Some(Ok(s)) => secs = Some(s),
            Some(Err(())) => return Input::Usage(DURATION_USAGE),
            None => return USAGE,
        }
    }
    if words.next().is_some() {
        return USAGE;
    }
    Input::Mute { nick, room, secs }
}

/// `/unmute nick [#room]`.
fn unmute<'a>(nick: &'a str, rest: &'a str) -> Input<'a> {
    match rest {
        _ if nick.is_empty() => Input::Usage("/unmute nick [#room]"),
        "" => Input::Unmute { nick, room: None },
        room if room.starts_with('#') && !room.contains(char::is_whitespace) => Input::Unmute {
            nick,
            room: Some(room.to_owned()),
        },
        _ => Input::Usage("/unmute nick [#room]"),
    }
}

/// What a duration that did not parse says.
const DURATION_USAGE: &str =
    "a duration is a positive number of seconds, or with a unit: 30s, 10m, 2h, 7d, 1w";

/// `lock` or `unlock` (any case), alone.
fn lock_word(word: &str) -> Option<bool> {
    match word.to_ascii_lowercase().as_str() {
        "lock" => Some(true),
        "unlock" => Some(false),
        _ => None,
    }
}

/// A duration in seconds: `None` if `word` does not look like one (it is a reason then),
/// `Err` if it looks like one but is zero or too large.
pub fn duration(word: &str) -> Option<Result<u64, ()>> {
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, unit) = word.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hr" | "hrs" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    // Longer than a century is a typo, not a ban length.
    const MAX: u64 = 100 * 365 * 86_400;
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|&s| s > 0 && s <= MAX)
            .ok_or(()),
    )
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
    fn durations_read_like_irc_services() {
        assert_eq!(duration("30"), Some(Ok(30)));
        assert_eq!(duration("30s"), Some(Ok(30)));
        assert_eq!(duration("10m"), Some(Ok(600)));
        assert_eq!(duration("2h"), Some(Ok(7200)));
        assert_eq!(duration("7d"), Some(Ok(604_800)));
        assert_eq!(duration("1W"), Some(Ok(604_800)));
        assert_eq!(duration("0"), Some(Err(())));
        assert_eq!(duration("0m"), Some(Err(())));
        assert_eq!(duration("99999999999999999999d"), Some(Err(())));
        assert_eq!(duration("1000000d"), Some(Err(())));
        // Not durations: words of a reason.
        assert_eq!(duration("spam"), None);
        assert_eq!(duration("10x"), None);
        assert_eq!(duration("m10"), None);
        assert_eq!(duration(""), None);
    }

    #[test]
    fn kick_takes_a_room_a_nick_and_a_reason() {
        assert_eq!(
            parse("/kick #rust mallory spam, again"),
            Input::Kick {
                room: Some("#rust".into()),
                nick: "mallory",
                reason: Some("spam, again")
            }
        );
        assert_eq!(
            parse("/kick mallory"),
            Input::Kick {
                room: None,
                nick: "mallory",
                reason: None
            }
        );
        assert_eq!(parse("/kick"), Input::Usage("/kick [#room] nick [reason]"));
        assert_eq!(
            parse("/kick #rust"),
            Input::Usage("/kick [#room] nick [reason]")
        );
    }

    #[test]
    fn ban_reads_a_duration_only_where_one_is() {
        assert_eq!(
            parse("/ban mallory 2h flooding #lobby"),
            Input::Ban {
                target: "mallory",
                secs: Some(7200),
                reason: Some("flooding #lobby")
            }
        );
        assert_eq!(
            parse("/ban 10.0.0.9"),
            Input::Ban {
                target: "10.0.0.9",
                secs: None,
                reason: None
            }
        );
        assert_eq!(
            parse("/ban mallory spam bot"),
            Input::Ban {
                target: "mallory",
                secs: None,
                reason: Some("spam bot")
            }
        );
        assert_eq!(parse("/ban mallory 0"), Input::Usage(DURATION_USAGE));
        assert_eq!(
            parse("/ban"),
            Input::Usage("/ban nick|ip [duration] [reason]")
        );
        assert_eq!(parse("/unban 10.0.0.9"), Input::Unban("10.0.0.9"));
        assert_eq!(parse("/unban"), Input::Usage("/unban nick|ip"));
        assert_eq!(parse("/unban a b"), Input::Usage("/unban nick|ip"));
    }

    #[test]
    fn mute_takes_an_optional_room_and_duration() {
        assert_eq!(
            parse("/mute mallory"),
            Input::Mute {
                nick: "mallory",
                room: None,
                secs: None
            }
        );
        assert_eq!(
            parse("/mute mallory #rust 10m"),
            Input::Mute {
                nick: "mallory",
                room: Some("#rust".into()),
                secs: Some(600)
            }
        );
        assert_eq!(
            parse("/mute mallory 30s"),
            Input::Mute {
                nick: "mallory",
                room: None,
                secs: Some(30)
            }
        );
        assert_eq!(parse("/mute mallory 0"), Input::Usage(DURATION_USAGE));
        assert_eq!(
            parse("/mute mallory because"),
            Input::Usage("/mute nick [#room] [duration]")
        );
        assert_eq!(
            parse("/mute mallory #rust 10m extra"),
            Input::Usage("/mute nick [#room] [duration]")
        );
        assert_eq!(
            parse("/unmute mallory"),
            Input::Unmute {
                nick: "mallory",
                room: None
            }
        );
        assert_eq!(
            parse("/unmute mallory #rust"),
            Input::Unmute {
                nick: "mallory",
                room: Some("#rust".into())
            }
        );
        assert_eq!(parse("/unmute"), Input::Usage("/unmute nick [#room]"));
    }

    #[test]
    fn topic_lock_and_unlock_are_words_alone() {
        assert_eq!(
            parse("/topic #rust lock"),
            Input::TopicLock {
                room: Some("#rust".into()),
                lock: true
            }
        );
        assert_eq!(
            parse("/topic UNLOCK"),
            Input::TopicLock {
                room: None,
                lock: false
            }
        );
        // A topic that merely starts with the word is a topic.
        assert_eq!(
            parse("/topic lock the doors"),
            Input::Topic {
                room: None,
                text: Some("lock the doors")
            }
        );
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
