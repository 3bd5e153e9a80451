//! `update(&mut App, Msg) -> Vec<Command>`: every state change, synchronous and without IO.
//!
//! Keys, pastes, network events and ticks come in as [`Msg`]; what the runtime must do in the
//! world (send a message, ring the bell, quit) goes out as [`Command`]s. Server messages are
//! handled in [`crate::receive`]; completion and input history in [`crate::editor`].

use chat_proto::ClientMsg;
use chat_proto::client;
use chat_proto::sanitize::{sanitize_line, sanitize_text};
use tui_input::InputRequest;

use crate::app::{App, BufferKind, ConnState, Delivery, InputMode, Line, LineBody, Outgoing};
use crate::command::{self, COMMANDS, KEYS};
use crate::editor;
use crate::keymap::Action;
use crate::layout::current_panes;
use crate::net::NetEvent;
use crate::pacer::SendPacer;
use crate::receive;
use crate::transfer::{self, FileEvent, FileJob};
use crate::ui::timeline;

/// Inputs with more lines than this ask before they are sent.
pub const CONFIRM_LINES: usize = 5;
/// Rows a mouse wheel step scrolls.
const WHEEL_ROWS: usize = 3;
/// Messages asked for per page of older history.
const OLDER_PAGE: u32 = 50;

/// Everything that can change the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// A key action (from [`crate::keymap::map_key`]).
    Action(Action),
    /// Bracketed paste: inserted literally.
    Paste(String),
    /// Something from the network client.
    Net(NetEvent),
    /// Something from the file IO.
    File(FileEvent),
    /// A second passed (countdowns).
    Tick,
    /// The terminal is now this many columns and rows.
    Resize(u16, u16),
}

/// What the runtime must do after an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send this to the server.
    Send(ClientMsg),
    /// Leave: send `quit` with this reason and exit.
    Quit(Option<String>),
    /// Offline: connect as this nick from the next attempt on (at once if waiting).
    SetNick(String),
    /// Ring the terminal bell.
    Bell,
    /// Repaint every cell (Ctrl-L).
    Redraw,
    /// Draw again (the model changed on a tick).
    Render,
    /// File IO for a transfer.
    File(FileJob),
    /// The answer about an untrusted certificate: pin it and connect, or stay offline.
    TrustCertificate(bool),
    /// A password typed at the prompt, for the next hello (and the reconnects after it).
    SetPassword(crate::net::PasswordFor, crate::net::Secret),
}

/// Applies `msg` to `app`; returns what the runtime must do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Command> {
    let mut out = Vec::new();
    match msg {
        Msg::Action(action) => on_action(app, action, &mut out),
        // The "Send N lines?" prompt is showing: a paste must not change what is asked about.
        // A question is showing: a paste must not change or answer it.
        Msg::Paste(_) if app.mode != InputMode::Normal => {}
        Msg::Paste(text) => {
            app.completion = None;
            let text = text.replace("\r\n", "\n").replace('\r', "\n");
            editor::insert_str(app, &text);
        }
        Msg::Net(event) => on_net(app, event, &mut out),
        Msg::File(event) => transfer::on_file_event(app, event, &mut out),
        Msg::Tick => {
            if matches!(
                app.conn,
                ConnState::Disconnected {
                    retry_at: Some(_),
                    ..
                }
            ) || app.transfers.iter().any(|t| t.state.shows_gauge())
            {
                out.push(Command::Render);
            }
            flush_outbox(app, &mut out);
        }
        Msg::Resize(w, h) => app.size = (w, h),
    }
    out
}

/// Longest answer kept for the trust question: `yes` and some slack for typos.
const MAX_ANSWER: usize = 16;

/// A key while the trust question is asked: only the word `yes` and Enter pins the
/// certificate; any other answer, Esc or Ctrl-C refuses it.
fn on_trust_answer(app: &mut App, action: Action, out: &mut Vec<Command>) {
    match action {
        Action::Insert(c) if app.answer.chars().count() < MAX_ANSWER => app.answer.push(c),
        Action::Backspace => {
            app.answer.pop();
        }
        Action::Submit if app.answer.trim().eq_ignore_ascii_case("yes") => {
            app.mode = InputMode::Normal;
            app.answer.clear();
            push_local(
                app,
                0,
                LineBody::Info("certificate pinned; connecting".to_owned()),
            );
            out.push(Command::TrustCertificate(true));
        }
        Action::Submit | Action::Cancel | Action::Interrupt | Action::Eof => {
            let typed = !app.answer.trim().is_empty();
            app.mode = InputMode::Normal;
            app.answer.clear();
            let hint = if typed {
                " (only the word yes trusts it)"
            } else {
                ""
            };
            push_local(
                app,
                0,
                LineBody::Error(format!(
                    "certificate not trusted{hint}: chat-tui stays offline (Ctrl-C to quit)"
                )),
            );
            out.push(Command::TrustCertificate(false));
        }
        _ => {}
    }
}

/// Longest password kept while typed (the server accepts at most 1024 bytes).
const MAX_PASSWORD_CHARS: usize = 1024;

/// A key at the password prompt: Enter sends the password with a new hello; Esc (or Ctrl-C)
/// leaves the prompt, so another nick can be chosen with `/nick`.
fn on_password_answer(
    app: &mut App,
    which: crate::net::PasswordFor,
    action: Action,
    out: &mut Vec<Command>,
) {
    match action {
        Action::Insert(c) if app.answer.chars().count() < MAX_PASSWORD_CHARS => app.answer.push(c),
        Action::Backspace => {
            app.answer.pop();
        }
        Action::Submit if !app.answer.is_empty() => {
            app.mode = InputMode::Normal;
            let password = crate::net::Secret(std::mem::take(&mut app.answer));
            push_local(app, 0, LineBody::Info("logging in…".to_owned()));
            out.push(Command::SetPassword(which, password));
        }
        Action::Submit => {}
        Action::Cancel | Action::Interrupt | Action::Eof => {
            app.mode = InputMode::Normal;
            app.answer.clear();
            push_local(
                app,
                0,
                LineBody::Info(
                    "no password given: /nick another name to connect, /quit to leave".to_owned(),
                ),
            );
        }
        _ => {}
    }
}

fn on_action(app: &mut App, action: Action, out: &mut Vec<Command>) {
    if app.mode == InputMode::TrustCertificate {
        return on_trust_answer(app, action, out);
    }
    if let InputMode::Password(which) = app.mode {
        return on_password_answer(app, which, action, out);
    }
    if action != Action::Complete {
        app.completion = None;
    }
    let empty = app.input.value().is_empty();
    let req = |app: &mut App, r: InputRequest| {
        app.input.handle(r);
    };
    match action {
        Action::Insert(c) => req(app, InputRequest::InsertChar(c)),
        Action::Newline => req(app, InputRequest::InsertChar('\n')),
        Action::Backspace => req(app, InputRequest::DeletePrevChar),
        Action::Delete => req(app, InputRequest::DeleteNextChar),
        Action::Left => req(app, InputRequest::GoToPrevChar),
        Action::Right => req(app, InputRequest::GoToNextChar),
        Action::WordLeft => req(app, InputRequest::GoToPrevWord),
        Action::WordRight => req(app, InputRequest::GoToNextWord),
        Action::LineStart => req(app, InputRequest::GoToStart),
        Action::LineEnd => req(app, InputRequest::GoToEnd),
        Action::KillWordBack => req(app, InputRequest::DeletePrevWord),
        Action::KillWordForward => req(app, InputRequest::DeleteNextWord),
        Action::KillToStart => req(app, InputRequest::DeleteFromStart),
        Action::KillToEnd => req(app, InputRequest::DeleteTillEnd),
        Action::Yank => req(app, InputRequest::Yank),
        Action::Home if empty => scroll_top(app, out),
        Action::Home => req(app, InputRequest::GoToStart),
        Action::End if empty => scroll_bottom(app),
        Action::End => req(app, InputRequest::GoToEnd),
        Action::HistoryPrev => editor::history_prev(app),
        Action::HistoryNext => editor::history_next(app),
        Action::Complete => editor::complete(app),
        Action::Submit => {
            if app.input.value().split('\n').count() > CONFIRM_LINES {
                app.mode = InputMode::ConfirmSend;
            } else {
                submit(app, out);
            }
        }
        Action::Confirm => {
            app.mode = InputMode::Normal;
            submit(app, out);
        }
        Action::Cancel => app.mode = InputMode::Normal,
        Action::PageUp => scroll_up(app, page(app), out),
        Action::PageDown => scroll_down(app, page(app)),
        Action::ScrollUp => scroll_up(app, WHEEL_ROWS, out),
        Action::ScrollDown => scroll_down(app, WHEEL_ROWS),
        Action::ScrollTop => scroll_top(app, out),
        Action::ScrollBottom => scroll_bottom(app),
        Action::NextBuffer => {
            let n = app.buffers.len();
            switch_to(app, (app.active + 1) % n);
        }
        Action::PrevBuffer => {
            let n = app.buffers.len();
            switch_to(app, (app.active + n - 1) % n);
        }
        Action::GoToBuffer(k) => {
            if k >= 1 && k <= app.buffers.len() {
                switch_to(app, k - 1);
            }
        }
        Action::NextActivity => {
            if let Some(i) = next_activity(app) {
                switch_to(app, i);
            }
        }
        Action::ToggleMembers => app.show_members = !app.show_members,
        Action::Redraw => out.push(Command::Redraw),
        Action::Interrupt if !empty => {
            app.input = tui_input::Input::default();
            app.active_buffer_mut().history.pos = None;
        }
        Action::Interrupt => quit(app, None, out),
        Action::Eof if empty => quit(app, None, out),
        Action::Eof => req(app, InputRequest::DeleteNextChar),
    }
}

fn quit(app: &mut App, reason: Option<String>, out: &mut Vec<Command>) {
    app.quit = true;
    out.push(Command::Quit(reason));
}

/// The buffer to jump to with Alt-A: the next one with mentions, else with unread messages.
fn next_activity(app: &App) -> Option<usize> {
    let n = app.buffers.len();
    let order = (1..n).map(|k| (app.active + k) % n);
    order
        .clone()
        .find(|&i| app.buffers[i].mentions > 0)
        .or_else(|| order.clone().find(|&i| app.buffers[i].unread > 0))
}

/// Makes buffer `i` active; the buffer left gets an unread marker for when we come back.
pub fn switch_to(app: &mut App, i: usize) {
    if i == app.active || i >= app.buffers.len() {
        return;
    }
    let old = app.active_buffer_mut();
    old.read_marker = Some(old.lines.len());
    old.history.pos = None;
    app.active = i;
    let new = app.active_buffer_mut();
    new.unread = 0;
    new.mentions = 0;
}

/// Rows of a page: the timeline height less one row of overlap.
fn page(app: &App) -> usize {
    usize::from(current_panes(app).timeline.height)
        .saturating_sub(1)
        .max(1)
}

/// The largest useful scroll offset of the active buffer.
fn max_scroll(app: &App) -> usize {
    let p = current_panes(app);
    let total = timeline::total_rows(app, app.active_buffer(), usize::from(p.timeline.width));
    total.saturating_sub(usize::from(p.timeline.height))
}

fn scroll_up(app: &mut App, rows: usize, out: &mut Vec<Command>) {
    let max = max_scroll(app);
    let buf = app.active_buffer_mut();
    buf.scroll = (buf.scroll + rows).min(max);
    if buf.scroll >= max {
        request_older(app, out);
    }
}

fn scroll_down(app: &mut App, rows: usize) {
    let buf = app.active_buffer_mut();
    buf.scroll = buf.scroll.saturating_sub(rows);
    if buf.scroll == 0 {
        buf.unseen_below = 0;
    }
}

fn scroll_top(app: &mut App, out: &mut Vec<Command>) {
    let max = max_scroll(app);
    app.active_buffer_mut().scroll = max;
    request_older(app, out);
}

fn scroll_bottom(app: &mut App) {
    let buf = app.active_buffer_mut();
    buf.scroll = 0;
    buf.unseen_below = 0;
}

/// At the top of what is loaded: ask the server for the page before it.
fn request_older(app: &mut App, out: &mut Vec<Command>) {
    if !app.is_connected() {
        return;
    }
    let id = format!("{}-older-{}", app.id_prefix, app.next_id);
    let buf = app.active_buffer_mut();
    let (BufferKind::Room(room), Some(before)) = (&buf.kind, buf.oldest_seq()) else {
        return;
    };
    if !buf.more_before || buf.loading_older || before <= 1 {
        return;
    }
    buf.loading_older = true;
    out.push(Command::Send(ClientMsg::History(client::History {
        id: Some(id),
        room: room.clone(),
        before: Some(before),
        after: None,
        limit: Some(OLDER_PAGE),
    })));
    app.next_id += 1;
}

/// Adds a local line (hint, help, answer) to buffer `i`.
pub fn push_local(app: &mut App, i: usize, body: LineBody) {
    let ts = app.now_ms;
    receive::append(
        app,
        i,
        Line {
            ts,
            seq: None,
            mid: None,
            body,
        },
    );
}

fn hint(app: &mut App, text: impl Into<String>) {
    let i = app.active;
    push_local(app, i, LineBody::Error(text.into()));
}

fn info(app: &mut App, text: impl Into<String>) {
    let i = app.active;
    push_local(app, i, LineBody::Info(text.into()));
}

/// Sends (or queues) what was typed.
fn submit(app: &mut App, out: &mut Vec<Command>) {
    let text = app.input.value().to_owned();
    if text.trim().is_empty() {
        return;
    }
    let parsed = command::parse(&text);
    let body = match &parsed {
        command::Input::Text(body) | command::Input::Me(body) => Some(body),
        command::Input::Msg {
            text: Some(body), ..
        } => Some(body),
        _ => None,
    };
    if let Some(body) = body {
        let max = app.limits.max_text as usize;
        if body.len() > max {
            hint(
                app,
                format!(
                    "message too long: {} bytes, the server takes {max}",
                    body.len()
                ),
            );
            return;
        }
    }
    editor::remember(app, &command::for_history(&text));
    app.input = tui_input::Input::default();
    run_input(app, parsed, out);
}

/// Whether the session is open; a hint otherwise.
fn online(app: &mut App, what: &str) -> bool {
    if app.is_connected() {
        return true;
    }
    hint(
        app,
        format!("not connected: {what} needs the server, try again once connected"),
    );
    false
}

/// The room of the active buffer, or a hint.
fn active_room(app: &mut App, what: &str) -> Option<String> {
    match &app.active_buffer().kind {
        BufferKind::Room(r) => Some(r.clone()),
        _ => {
            hint(app, format!("{what} works in a room"));
            None
        }
    }
}

fn run_input(app: &mut App, input: command::Input, out: &mut Vec<Command>) {
    use command::Input as I;
    match input {
        I::Text(text) => match app.active_buffer().kind.target() {
            Some(to) => {
                let to = to.to_owned();
                send_message(app, to, text, false, out);
            }
            None => hint(
                app,
                "this is the server buffer: /join #room or /msg nick to talk",
            ),
        },
        I::Me(text) => match app.active_buffer().kind.target() {
            Some(to) => {
                let to = to.to_owned();
                send_message(app, to, text, true, out);
            }
            None => hint(app, "/me works in a room or a direct conversation"),
        },
        I::Help => {
            info(app, "commands:");
            for (name, what) in COMMANDS {
                info(app, format!("  {name} {what}"));
            }
            info(app, "keys:");
            for k in KEYS {
                info(app, format!("  {k}"));
            }
        }
        I::Join(room) => {
            if online(app, "/join") {
                // The buffer opens when the server says `joined`; a refusal leaves none behind.
                if let Some(i) = app.find_buffer(&room).filter(|&i| app.buffers[i].joined) {
                    switch_to(app, i);
                    return;
                }
                queue_join(app, room, true);
                flush_outbox(app, out);
            }
        }
        I::Part { room, reason } => {
            let room = match room {
                Some(r) => r,
                None => match app.active_buffer().kind.clone() {
                    BufferKind::Room(r) => r,
                    BufferKind::Dm(_) => {
                        close_active(app);
                        return;
                    }
                    BufferKind::Server => {
                        hint(
                            app,
                            "/part works in a room (or closes a direct conversation)",
                        );
                        return;
                    }
                },
            };
            if online(app, "/part") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Part(client::Part {
                    id: Some(id),
                    room,
                    reason,
                })));
            }
        }
        I::Nick(nick) if !app.is_connected() => {
            // Offline (a refused nick, or between attempts): the name for the next attempt.
            if let Err(e) = chat_proto::nick::validate_nick(&nick) {
                hint(app, format!("cannot use that nick: {e}"));
                return;
            }
            let shown = sanitize_line(&nick).into_owned();
            info(app, format!("connecting as {shown}"));
            app.me = nick.clone();
            out.push(Command::SetNick(nick));
        }
        I::Nick(nick) => {
            if online(app, "/nick") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Nick(client::Nick {
                    id: Some(id),
                    nick,
                })));
            }
        }
        I::Register(password) => {
            if online(app, "/register") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Register(client::Register {
                    id: Some(id),
                    password,
                })));
                info(app, "registering your nick…");
            }
        }
        I::Msg { to, text } => {
            let i = app.buffer_for(&to);
            switch_to(app, i);
            if let Some(text) = text {
                send_message(app, to, text, false, out);
            }
        }
        I::Names => {
            if let Some(room) = active_room(app, "/names") {
                if online(app, "/names") {
                    let id = format!("{}-names-{}", app.id_prefix, app.next_id);
                    app.next_id += 1;
                    out.push(Command::Send(ClientMsg::Names(client::Names {
                        id: Some(id),
                        room,
                    })));
                }
            }
        }
        I::Topic(text) => {
            let Some(room) = active_room(app, "/topic") else {
                return;
            };
            if text.is_none() {
                let topic = app.active_buffer().topic.clone();
                if topic.is_empty() {
                    info(app, "no topic is set");
                } else {
                    info(app, format!("topic: {topic}"));
                }
                return;
            }
            if online(app, "/topic") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Topic(client::Topic {
                    id: Some(id),
                    room,
                    topic: text,
                    lock: None,
                })));
            }
        }
        I::Kick { room, nick, reason } => {
            let room = match room {
                Some(room) => room,
                None => match active_room(app, "/kick") {
                    Some(room) => room,
                    None => return,
                },
            };
            if online(app, "/kick") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Kick(client::Kick {
                    id: Some(id),
                    room,
                    nick,
                    reason,
                })));
            }
        }
        I::Ban {
            target,
            duration_secs,
            reason,
        } => {
            if online(app, "/ban") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Ban(client::Ban {
                    id: Some(id),
                    target,
                    duration_secs,
                    reason,
                })));
            }
        }
        I::Unban(target) => {
            if online(app, "/unban") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Unban(client::Unban {
                    id: Some(id),
                    target,
                })));
            }
        }
        I::Mute {
            nick,
            room,
            duration_secs,
        } => {
            if online(app, "/mute") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Mute(client::Mute {
                    id: Some(id),
                    nick,
                    room,
                    duration_secs,
                })));
            }
        }
        I::LockTopic(lock) => {
            let Some(room) = active_room(app, if lock { "/lock" } else { "/unlock" }) else {
                return;
            };
            if online(app, "/lock") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::Topic(client::Topic {
                    id: Some(id),
                    room,
                    topic: None,
                    lock: Some(lock),
                })));
            }
        }
        I::Rooms => {
            if online(app, "/rooms") {
                let id = app.new_message_id();
                out.push(Command::Send(ClientMsg::ListRooms(client::ListRooms {
                    id: Some(id),
                })));
            }
        }
        I::Search(query) => {
            if let Some(room) = active_room(app, "/search") {
                if online(app, "/search") {
                    let id = format!("{}-search-{}", app.id_prefix, app.next_id);
                    app.next_id += 1;
                    out.push(Command::Send(ClientMsg::Search(client::Search {
                        id: Some(id),
                        room,
                        query,
                        limit: None,
                    })));
                }
            }
        }
        I::SendFile { path, to } => {
            let to = match to.or_else(|| app.active_buffer().kind.target().map(str::to_owned)) {
                Some(to) => to,
                None => {
                    hint(
                        app,
                        "/send path nick|#room (this buffer has no one to send to)",
                    );
                    return;
                }
            };
            if online(app, "/send") {
                transfer::start_send(app, path, to, out);
            }
        }
        I::Accept(file) => {
            if online(app, "/accept") {
                transfer::accept(app, file, out);
            }
        }
        I::Decline(file) => {
            if online(app, "/decline") {
                transfer::decline(app, file, out);
            }
        }
        I::CancelFile(file) => transfer::cancel(app, file, out),
        I::Files => transfer::list(app),
        I::Clear => {
            let buf = app.active_buffer_mut();
            buf.lines.clear();
            buf.scroll = 0;
            buf.unseen_below = 0;
            buf.read_marker = None;
        }
        I::Quit(reason) => quit(app, reason, out),
        I::Usage(usage) => hint(app, format!("usage: {usage}")),
        I::Unknown(name) => {
            let name = sanitize_line(&name).into_owned();
            hint(
                app,
                format!(
                    "unknown command /{name} (not sent): /help lists commands, //{name} sends it as text"
                ),
            );
        }
    }
}

/// Queues a `join` (sent through the pacer) and remembers it until it is answered.
pub fn queue_join(app: &mut App, room: String, by_user: bool) {
    let id = format!("{}-join-{}", app.id_prefix, app.next_id);
    app.next_id += 1;
    app.joins.push(crate::app::PendingJoin {
        id: id.clone(),
        room: room.clone(),
        by_user,
    });
    app.requests
        .push(ClientMsg::Join(client::Join { id: Some(id), room }));
}

/// Closes the active direct-message buffer.
fn close_active(app: &mut App) {
    let i = app.active;
    if i == 0 {
        return;
    }
    app.buffers.remove(i);
    app.active = i.min(app.buffers.len() - 1);
}

/// Creates a message with a fresh client id, shows it as pending, and sends it if online.
fn send_message(app: &mut App, to: String, text: String, action: bool, out: &mut Vec<Command>) {
    let id = app.new_message_id();
    let i = app.buffer_for(&to);
    let line = Line {
        ts: app.now_ms,
        seq: None,
        mid: None,
        body: LineBody::Chat {
            from: sanitize_line(&app.me).into_owned(),
            text: sanitize_text(&text).into_owned(),
            action,
            own: true,
            mention: false,
            delivery: Delivery::Pending,
            id: Some(id.clone()),
        },
    };
    receive::append(app, i, line);
    let buf = &mut app.buffers[i];
    buf.scroll = 0;
    buf.unseen_below = 0;
    let item = Outgoing {
        id,
        to,
        text,
        action,
        sent_on: None,
        retry_at: None,
    };
    app.outbox.push(item);
    flush_outbox(app, out);
}

/// Sends what the outbox holds for this connection, strictly in order, as fast as the pacer
/// allows (with the ids the messages were created with).
///
/// An item waiting out a `rate_limited` pause, or for a token, holds back every item after it:
/// lines arrive in the order they were typed.
pub fn flush_outbox(app: &mut App, out: &mut Vec<Command>) {
    if !app.is_connected() {
        return;
    }
    let (now, generation) = (app.now_ms, app.generation);
    // Requests first: a join must precede the messages to its room.
    while !app.requests.is_empty() {
        if !app.pacer.try_take(now) {
            return;
        }
        out.push(Command::Send(app.requests.remove(0)));
    }
    for item in &mut app.outbox {
        if item.sent_on == Some(generation) {
            continue;
        }
        if item.retry_at.is_some_and(|at| at > now) || !app.pacer.try_take(now) {
            break;
        }
        item.retry_at = None;
        item.sent_on = Some(generation);
        out.push(Command::Send(send_msg(item)));
    }
}

/// The `send` for an outbox item: always with the id it was created with.
pub fn send_msg(item: &Outgoing) -> ClientMsg {
    ClientMsg::Send(client::Send {
        id: Some(item.id.clone()),
        to: item.to.clone(),
        text: item.text.clone(),
        action: item.action,
    })
}

fn on_net(app: &mut App, event: NetEvent, out: &mut Vec<Command>) {
    match event {
        NetEvent::Connecting { attempt } => app.conn = ConnState::Connecting { attempt },
        NetEvent::Connected(welcome) => {
            let first = app.generation == 0;
            app.conn = ConnState::Connected;
            app.generation += 1;
            app.me = welcome.nick.clone();
            app.limits = welcome.limits.clone();
            let server = sanitize_line(&welcome.server).into_owned();
            let nick = sanitize_line(&welcome.nick).into_owned();
            push_local(
                app,
                0,
                LineBody::Info(format!("connected to {server} as {nick}")),
            );
            if let Some(motd) = &welcome.motd {
                let motd = sanitize_text(motd).into_owned();
                push_local(app, 0, LineBody::Info(motd));
            }
            let mut rooms = Vec::new();
            for room in &welcome.rooms {
                rooms.push(app.buffer_for(room));
            }
            // Requests of the last connection are void; rooms we were in that the server did
            // not restore are joined again (paced, with ids).
            app.requests.clear();
            app.joins.clear();
            let lost: Vec<String> = app
                .buffers
                .iter()
                .enumerate()
                .filter(|(i, b)| b.joined && !rooms.contains(i))
                .filter_map(|(_, b)| match &b.kind {
                    BufferKind::Room(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            for room in lost {
                if let Some(i) = app.find_buffer(&room) {
                    app.buffers[i].joined = false;
                }
                queue_join(app, room, false);
            }
            if first && app.active == 0 {
                if let Some(&i) = rooms.first() {
                    switch_to(app, i);
                }
            }
            if !first {
                for i in 1..app.buffers.len() {
                    if matches!(app.buffers[i].kind, BufferKind::Room(_)) {
                        push_local(app, i, LineBody::Info("reconnected".to_owned()));
                    }
                }
            }
            // Everything not yet sent on this connection goes now (paced, in order), with its
            // original id.
            app.pacer = SendPacer::new(&app.limits, app.now_ms);
            for item in &mut app.outbox {
                item.retry_at = None;
            }
            flush_outbox(app, out);
            if !first {
                transfer::on_reconnected(app, &welcome.rooms, out);
            }
        }
        NetEvent::Disconnected { reason, retry_in } => {
            app.reannounce = None;
            let was_connected = app.is_connected();
            let reason = sanitize_line(&reason).into_owned();
            let retry_at =
                retry_in.map(|d| app.now_ms + i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            if was_connected {
                for i in 0..app.buffers.len() {
                    if i == 0 || matches!(app.buffers[i].kind, BufferKind::Room(_)) {
                        push_local(app, i, LineBody::Error(format!("disconnected: {reason}")));
                    }
                }
            }
            for buf in &mut app.buffers {
                buf.loading_older = false;
            }
            transfer::on_disconnected(app);
            app.conn = ConnState::Disconnected { reason, retry_at };
        }
        NetEvent::UntrustedCertificate {
            server,
            fingerprint,
        } => {
            let server = sanitize_line(&server).into_owned();
            let lines = [
                format!(
                    "the TLS certificate of {server} is not signed by a CA this client trusts \
                     (self-signed, or an unknown CA)"
                ),
                format!("SHA-256 fingerprint: {fingerprint}"),
                "compare it with the server's own (openssl x509 -noout -fingerprint -sha256 -in \
                 cert.pem) before you trust it; with a CA file, --ca connects without asking"
                    .to_owned(),
            ];
            for line in lines {
                push_local(app, 0, LineBody::Error(line));
            }
            switch_to(app, 0);
            app.mode = InputMode::TrustCertificate;
            // Only what is typed after the question appears answers it.
            app.answer.clear();
            app.conn = ConnState::Disconnected {
                reason: "certificate not trusted yet".to_owned(),
                retry_at: None,
            };
        }
        NetEvent::CertificateChanged {
            server,
            pinned,
            presented,
            file,
            line,
        } => {
            let server = sanitize_line(&server).into_owned();
            let file = sanitize_line(&file.display().to_string()).into_owned();
            let lines = [
                format!("WARNING: THE TLS CERTIFICATE OF {server} HAS CHANGED. NOT CONNECTING."),
                "someone may be intercepting this connection (man-in-the-middle), or the server \
                 got a new certificate"
                    .to_owned(),
                format!("pinned:    SHA-256 {pinned}"),
                format!("presented: SHA-256 {presented}"),
                format!(
                    "if the change is expected, delete line {line} of {file} and start chat-tui again"
                ),
            ];
            for text in lines {
                push_local(app, 0, LineBody::Error(text));
            }
            switch_to(app, 0);
            app.conn = ConnState::Disconnected {
                reason: "certificate changed: not connecting".to_owned(),
                retry_at: None,
            };
        }
        NetEvent::Message(msg) => receive::server_msg(app, msg, out),
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
