//! The input area: the text being typed (multi-line, wrapped), or a question.

use chat_proto::sanitize::sanitize_line;
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, InputMode};
use crate::layout::{text_width, wrap_hard_line};
use crate::ui::style;

/// The prompt before the first input row.
const PROMPT: &str = "> ";

/// How one line of input is shown: pasted control characters become visible symbols.
pub fn visible(line: &str) -> String {
    sanitize_line(line).into_owned()
}

/// Draws the input (or the question) into `area` and places the cursor.
pub fn draw(app: &App, frame: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    if app.mode != InputMode::Normal {
        let q = if let InputMode::Password(which) = app.mode {
            let whose = match which {
                crate::net::PasswordFor::Nick => format!("password for {}", sanitize_line(&app.me)),
                crate::net::PasswordFor::Server => "server password".to_owned(),
            };
            format!("{whose}: {}", "*".repeat(app.answer.chars().count()))
        } else if app.mode == InputMode::TrustCertificate {
            format!(
                "Trust this certificate for {}? Type yes and Enter to pin it and connect, \
                 anything else refuses: {}",
                sanitize_line(&app.server),
                sanitize_line(&app.answer)
            )
        } else {
            let n = app.input.value().split('\n').count();
            format!("Send {n} lines? (y: send, n/Esc: keep editing)")
        };
        frame.render_widget(
            Paragraph::new(TextLine::from(Span::styled(
                q,
                Style::default().add_modifier(Modifier::REVERSED),
            ))),
            area,
        );
        return;
    }
    let width = usize::from(area.width.saturating_sub(2)).max(1);
    // A password being typed shows as stars (one per char, so the cursor math holds).
    let masked = crate::command::mask_typed(app.input.value());
    let value = masked.as_str();
    // Which row and column the cursor lands on, counting in chars of the raw value.
    let cursor_chars = app.input.cursor();
    let mut rows: Vec<String> = Vec::new();
    let mut cursor_pos = (0usize, 0usize);
    let mut seen = 0usize;
    for hard in value.split('\n') {
        let len = hard.chars().count();
        let wrapped = wrap_hard_line(&visible(hard), width);
        if cursor_chars >= seen && cursor_chars <= seen + len {
            let before: String = hard.chars().take(cursor_chars - seen).collect();
            let col = text_width(&visible(&before));
            // Find the wrapped row holding that column.
            let mut acc = 0;
            let mut placed = false;
            for (i, r) in wrapped.iter().enumerate() {
                let w = text_width(r);
                if col <= acc + w && (col < acc + w || i + 1 == wrapped.len()) {
                    cursor_pos = (rows.len() + i, col - acc);
                    placed = true;
                    break;
                }
                acc += w;
            }
            if !placed {
                cursor_pos = (rows.len() + wrapped.len() - 1, 0);
            }
        }
        seen += len + 1;
        rows.extend(wrapped);
    }
    let height = usize::from(area.height);
    let first = (cursor_pos.0 + 1).saturating_sub(height);
    let lines: Vec<TextLine<'static>> = rows
        .into_iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, r)| {
            let prompt = if i == 0 { PROMPT } else { "  " };
            TextLine::from(vec![
                Span::styled(prompt, style::dim(&app.theme)),
                Span::raw(r),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
    let x = area.x
        + u16::try_from(2 + cursor_pos.1)
            .unwrap_or(u16::MAX)
            .min(area.width.saturating_sub(1));
    let y = area.y + u16::try_from(cursor_pos.0 - first).unwrap_or(0);
    frame.set_cursor_position(Position::new(x, y));
}
