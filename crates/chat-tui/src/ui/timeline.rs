//! The timeline: `HH:MM  nick │ text`, nick column right-aligned, wrapped rows indented
//! under the text column, an unread marker, and a "new messages below" bar while scrolled.

use chat_proto::sanitize::sanitize_line;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, Buffer, Delivery, Line, LineBody};
use crate::layout::{MAX_NICK_COLUMN, text_width, truncate, wrap};
use crate::ui::style;

/// Columns of `HH:MM` plus the two spaces after it.
const TIME_COLUMNS: usize = 7;
/// The separator between the nick column and the text.
const SEPARATOR: &str = " │ ";

/// `HH:MM` of a timestamp in `tz`.
pub fn clock(ts_ms: i64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(ts_ms) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("%H:%M").to_string(),
        Err(_) => "--:--".to_owned(),
    }
}

/// What the nick column shows for a line, and whether it is a sender's nick.
fn nick_cell(line: &Line) -> (&str, bool) {
    match &line.body {
        LineBody::Chat {
            from,
            action: false,
            ..
        } => (from, true),
        LineBody::Chat { action: true, .. } => ("*", false),
        LineBody::Membership { joined, .. } if !joined.is_empty() => ("-->", false),
        LineBody::Membership { .. } => ("<--", false),
        LineBody::Info(_) => ("--", false),
        LineBody::Error(_) => ("!!", false),
    }
}

/// Width of the nick column for a buffer: the widest nick, capped.
pub fn nick_column(buf: &Buffer, area_width: usize) -> usize {
    let widest = buf
        .lines
        .iter()
        .map(|l| text_width(nick_cell(l).0))
        .max()
        .unwrap_or(0)
        .max(3);
    widest.min(MAX_NICK_COLUMN).min(area_width / 4).max(1)
}

/// Geometry of the timeline columns.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// Width of the nick column.
    pub nick: usize,
    /// Width of the text column.
    pub text: usize,
    /// Whether the time column is shown (dropped when very narrow).
    pub time: bool,
}

impl Columns {
    /// Columns for `buf` in an area `width` wide.
    pub fn new(buf: &Buffer, width: usize) -> Self {
        let nick = nick_column(buf, width);
        let time = width >= 40;
        let fixed = nick + SEPARATOR.len() - 2 + if time { TIME_COLUMNS } else { 0 };
        Columns {
            nick,
            text: width.saturating_sub(fixed).max(4),
            time,
        }
    }

    fn indent(&self) -> usize {
        self.nick + if self.time { TIME_COLUMNS } else { 0 }
    }
}

/// The text of a line (without the nick column) and its style.
fn body_text(app: &App, line: &Line) -> (String, Style) {
    let theme = &app.theme;
    match &line.body {
        LineBody::Chat {
            from,
            text,
            action,
            mention,
            delivery,
            ..
        } => {
            let mut s = if *action {
                format!("{from} {text}")
            } else {
                text.clone()
            };
            let mut st = if *mention {
                style::mention(theme)
            } else {
                Style::default()
            };
            match delivery {
                Delivery::Pending => {
                    s.push_str(" ⧗");
                    st = st.add_modifier(Modifier::DIM);
                }
                Delivery::Failed(why) => {
                    s.push_str(" ✗ ");
                    s.push_str(why);
                    st = st.add_modifier(Modifier::CROSSED_OUT);
                }
                Delivery::Acked => {}
            }
            if *action {
                st = st.add_modifier(Modifier::ITALIC);
            }
            (s, st)
        }
        LineBody::Membership { joined, parted } => {
            let mut parts = Vec::new();
            if !joined.is_empty() {
                parts.push(format!("{} joined", joined.join(", ")));
            }
            if !parted.is_empty() {
                parts.push(format!("{} left", parted.join(", ")));
            }
            (parts.join("; "), style::info(theme))
        }
        LineBody::Info(text) => (text.clone(), style::info(theme)),
        LineBody::Error(text) => (text.clone(), style::error(theme)),
    }
}

/// The screen rows of one line.
pub fn line_rows(app: &App, line: &Line, cols: Columns) -> Vec<TextLine<'static>> {
    let theme = &app.theme;
    let (text, text_style) = body_text(app, line);
    let wrapped = wrap(&text, cols.text);
    let (nick, is_nick) = nick_cell(line);
    let nick = truncate(nick, cols.nick);
    let pad = cols.nick.saturating_sub(text_width(&nick));
    let nick_style = match &line.body {
        LineBody::Chat {
            from, own, mention, ..
        } if is_nick => {
            let s = style::nick(theme, from, *own);
            if *mention {
                s.add_modifier(Modifier::REVERSED)
            } else {
                s
            }
        }
        LineBody::Error(_) => style::error(theme),
        _ => style::dim(theme),
    };
    let mut rows = Vec::with_capacity(wrapped.len());
    for (i, part) in wrapped.into_iter().enumerate() {
        let mut spans = Vec::with_capacity(5);
        if i == 0 {
            if cols.time {
                spans.push(Span::styled(
                    format!("{}  ", clock(line.ts, &app.tz)),
                    style::dim(theme),
                ));
            }
            spans.push(Span::raw(" ".repeat(pad)));
            spans.push(Span::styled(nick.clone(), nick_style));
        } else {
            spans.push(Span::raw(" ".repeat(cols.indent())));
        }
        spans.push(Span::styled(SEPARATOR, style::dim(theme)));
        spans.push(Span::styled(part, text_style));
        rows.push(TextLine::from(spans));
    }
    rows
}

/// The unread marker row.
fn marker_row(app: &App, width: usize) -> TextLine<'static> {
    let label = " unread ";
    let side = width.saturating_sub(label.len()) / 2;
    TextLine::from(Span::styled(
        format!(
            "{}{label}{}",
            "─".repeat(side),
            "─".repeat(width.saturating_sub(side + label.len()))
        ),
        style::error(&app.theme).remove_modifier(Modifier::BOLD),
    ))
}

/// Every row of a buffer, oldest first, or only the newest `limit` rows.
pub fn rows(app: &App, buf: &Buffer, width: usize, limit: Option<usize>) -> Vec<TextLine<'static>> {
    let cols = Columns::new(buf, width);
    let mut out: Vec<TextLine<'static>> = Vec::new();
    for (i, line) in buf.lines.iter().enumerate().rev() {
        let mut rs = line_rows(app, line, cols);
        rs.reverse();
        out.extend(rs);
        if buf.read_marker == Some(i) {
            out.push(marker_row(app, width));
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    out.reverse();
    out
}

/// How many rows a buffer's timeline has at `width`.
pub fn total_rows(app: &App, buf: &Buffer, width: usize) -> usize {
    rows(app, buf, width, None).len()
}

/// Draws the active buffer's timeline into `area`.
pub fn draw(app: &App, frame: &mut Frame<'_>, area: Rect) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let buf = app.active_buffer();
    let height = usize::from(area.height);
    let width = usize::from(area.width);
    let all = rows(app, buf, width, Some(height + buf.scroll));
    let scroll = buf.scroll.min(all.len().saturating_sub(height));
    let end = all.len() - scroll;
    let start = end.saturating_sub(height);
    let mut visible: Vec<TextLine<'static>> = all[start..end].to_vec();
    // Bottom-anchored: pad above so the newest line sits just over the status bar.
    let pad = height.saturating_sub(visible.len());
    let mut lines = vec![TextLine::default(); pad];
    lines.append(&mut visible);
    if scroll > 0 && buf.unseen_below > 0 {
        let n = buf.unseen_below;
        let label = format!(
            " ↓ {n} new message{} below (End) ",
            if n == 1 { "" } else { "s" }
        );
        if let Some(last) = lines.last_mut() {
            *last = TextLine::from(Span::styled(
                label,
                style::bar(&app.theme).add_modifier(Modifier::BOLD),
            ));
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// A sanitized name for display.
pub fn shown(name: &str) -> String {
    sanitize_line(name).into_owned()
}
