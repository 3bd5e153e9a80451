//! A row per running file transfer: direction, name, bar, percent, bytes, speed and ETA.
//! Drawn from `App` alone (the speed is bytes over time since the run started).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::Paragraph;

use crate::app::App;
use crate::layout::{MAX_GAUGE_ROWS, text_width, truncate};
use crate::transfer::{Direction, Transfer, TransferState, human_size};
use crate::ui::style;
use crate::ui::timeline::shown;

/// Cells of the bar, at most.
const BAR: usize = 20;
/// Columns the name keeps before the bar shrinks.
const HEAD_MIN: usize = 18;

/// `1:05`, `12s`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}:{:02}", secs / 60, secs % 60),
        _ => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

/// The text of one gauge row, without the bar: (before the bar, after it).
pub fn row_text(t: &Transfer, now_ms: i64) -> (String, String) {
    let id = t.file.map(|f| format!("#{f} ")).unwrap_or_default();
    let head = match t.dir {
        Direction::Send => format!("↑ {id}{} → {}", t.name, shown(&t.peer)),
        Direction::Receive => format!("↓ {id}{} ← {}", t.name, shown(&t.peer)),
    };
    let mut tail = format!(
        "{:>3}% {}/{}",
        t.percent(),
        human_size(t.offset),
        human_size(t.size)
    );
    match &t.state {
        TransferState::Interrupted => tail.push_str(" interrupted, resumes on reconnect"),
        TransferState::Paused => tail.push_str(" paused, the other side is offline"),
        TransferState::Verifying => tail.push_str(" checking SHA-256…"),
        _ => {
            if let Some(speed) = t.speed(now_ms) {
                tail.push_str(&format!(" {}/s", human_size(speed as u64)));
            }
            if let Some(eta) = t.eta_secs(now_ms) {
                tail.push_str(&format!(" ETA {}", duration(eta)));
            }
        }
    }
    (head, tail)
}

/// Draws the gauges into `area`, one row each, newest last.
pub fn draw(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let width = usize::from(area.width);
    let running: Vec<&Transfer> = app
        .transfers
        .iter()
        .filter(|t| t.state.shows_gauge())
        .collect();
    let skip = running.len().saturating_sub(usize::from(MAX_GAUGE_ROWS));
    let lines: Vec<TextLine<'static>> = running[skip..]
        .iter()
        .map(|t| {
            let (head, tail) = row_text(t, app.now_ms);
            // The name gets at least HEAD_MIN columns; the bar shrinks (or goes) first.
            let tail = truncate(&tail, width.saturating_sub(HEAD_MIN + 2));
            let tail_w = text_width(&tail);
            let bar_w = width.saturating_sub(HEAD_MIN + tail_w + 3).min(BAR);
            let bar_w = if bar_w < 5 { 0 } else { bar_w };
            let filled = usize::try_from(t.percent()).unwrap_or(100) * bar_w / 100;
            let bar = format!("{}{}", "█".repeat(filled), "░".repeat(bar_w - filled));
            let room = width.saturating_sub(bar_w + tail_w + 2 + usize::from(bar_w > 0));
            let head = truncate(&head, room);
            let pad = room.saturating_sub(text_width(&head));
            let bar_style = if t.state == TransferState::Interrupted {
                style::dim(&app.theme)
            } else {
                style::bar(&app.theme)
            };
            TextLine::from(vec![
                Span::styled(head, style::dim(&app.theme).remove_modifier(Modifier::DIM)),
                Span::raw(" ".repeat(pad + 1)),
                Span::styled(bar, bar_style),
                Span::raw(if bar_w > 0 { " " } else { "" }),
                Span::raw(tail),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}
