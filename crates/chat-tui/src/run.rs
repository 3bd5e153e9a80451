//! The main loop: one `select!` over terminal events, network events and (only while a
//! countdown is on screen) a one-second tick. It draws only after something changed, so an
//! idle client sleeps in `select!` and uses no CPU.

use std::io;
use std::time::Duration;

use crossterm::event::{Event, MouseEventKind};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::app::App;
use crate::files::FilesHandle;
use crate::keymap::{Action, map_key};
use crate::net::{NetEvent, NetHandle};
use crate::transfer::FileEvent;
use crate::ui;
use crate::update::{Command, Msg, update};

/// Most network events handled before the screen is drawn again.
const EVENT_BATCH: usize = 256;

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Turns a terminal event into a model message.
pub fn event_msg(app: &App, event: Event) -> Option<Msg> {
    match event {
        Event::Key(key) => map_key(key, &app.mode).map(Msg::Action),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => Some(Msg::Action(Action::ScrollUp)),
            MouseEventKind::ScrollDown => Some(Msg::Action(Action::ScrollDown)),
            _ => None,
        },
        Event::FocusGained | Event::FocusLost => None,
    }
}

/// The file IO: a handle for jobs and the receiver of its reports.
#[derive(Debug)]
pub struct FileIo {
    /// Takes jobs.
    pub handle: FilesHandle,
    /// Reports.
    pub events: mpsc::Receiver<FileEvent>,
}

/// Runs the client until the user quits, the terminal's event stream ends, or `shutdown`
/// completes (SIGTERM). `bell` rings the terminal bell.
#[allow(clippy::too_many_arguments)]
pub async fn run<B, E, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut events: E,
    net: NetHandle,
    mut net_rx: mpsc::Receiver<NetEvent>,
    files: FileIo,
    shutdown: S,
    bell: &mut dyn FnMut(),
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    E: Stream<Item = io::Result<Event>> + Unpin,
    S: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let size = terminal.size()?;
    app.size = (size.width, size.height);
    app.now_ms = now_ms();
    terminal.draw(|f| ui::draw(app, f))?;
    let mut net_open = true;
    let FileIo {
        handle: files,
        events: mut files_rx,
    } = files;
    loop {
        let countdown = app.needs_tick();
        let msgs: Vec<Msg> = tokio::select! {
            // A key, paste, mouse wheel or resize; the stream ends when the terminal goes away.
            event = events.next() => match event {
                Some(Ok(event)) => event_msg(app, event).into_iter().collect(),
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            // Network events: take every one already waiting, then draw once.
            event = net_rx.recv(), if net_open => match event {
                Some(first) => {
                    let mut batch = vec![Msg::Net(first)];
                    while batch.len() < EVENT_BATCH {
                        match net_rx.try_recv() {
                            Ok(e) => batch.push(Msg::Net(e)),
                            Err(_) => break,
                        }
                    }
                    batch
                }
                None => {
                    net_open = false;
                    Vec::new()
                }
            },
            // Reports of the file IO (hashes, stored data, finished downloads).
            Some(event) = files_rx.recv() => {
                let mut batch = vec![Msg::File(event)];
                while batch.len() < EVENT_BATCH {
                    match files_rx.try_recv() {
                        Ok(e) => batch.push(Msg::File(e)),
                        Err(_) => break,
                    }
                }
                batch
            }
            // The reconnect countdown and rate-limit retries; no tick otherwise.
            _ = tick.tick(), if countdown => vec![Msg::Tick],
            // SIGTERM / SIGHUP: leave like /quit.
            () = &mut shutdown => {
                net.quit(Some("terminated".to_owned()));
                break;
            }
        };
        app.now_ms = now_ms();
        let mut render = false;
        for msg in msgs {
            render |= msg != Msg::Tick;
            for command in update(app, msg) {
                match command {
                    Command::Send(m) => net.send(m),
                    Command::Quit(reason) => net.quit(reason),
                    Command::SetNick(nick) => net.set_nick(nick),
                    Command::Bell => bell(),
                    Command::Redraw => {
                        terminal.clear()?;
                        render = true;
                    }
                    Command::Render => render = true,
                    Command::File(job) => files.send(job),
                    Command::TrustCertificate(trust) => net.trust_certificate(trust),
                    Command::SetPassword(which, password) => net.set_password(which, password),
                }
            }
        }
        if app.quit {
            break;
        }
        if render {
            terminal.draw(|f| ui::draw(app, f))?;
        }
    }
    Ok(())
}
