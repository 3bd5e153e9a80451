//! The one-row bars (topic, status) and the side lists (rooms, members).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::app::{App, BufferKind, ConnState};
use crate::layout::{text_width, truncate};
use crate::ui::style;
use crate::ui::timeline::shown;

/// The line above the timeline: buffer name and topic.
pub fn topic(app: &App, frame: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let buf = app.active_buffer();
    let text = match &buf.kind {
        BufferKind::Server => format!(" {} — type /help", shown(&app.server)),
        BufferKind::Room(name) if buf.topic.is_empty() => format!(" {}", shown(name)),
        BufferKind::Room(name) => format!(" {} — {}", shown(name), buf.topic),
        BufferKind::Dm(nick) => format!(" {} (direct messages)", shown(nick)),
    };
    let text = truncate(&text, usize::from(area.width));
    let pad = usize::from(area.width).saturating_sub(text_width(&text));
    frame.render_widget(
        Paragraph::new(TextLine::from(format!("{text}{}", " ".repeat(pad))))
            .style(style::bar(&app.theme)),
        area,
    );
}

/// The status bar: connection, server, buffer, activity, `-- more --`.
pub fn status(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let bar = style::bar(theme);
    let conn = match &app.conn {
        ConnState::Connecting { attempt: 1 } => "connecting…".to_owned(),
        ConnState::Connecting { attempt } => format!("connecting… (try {attempt})"),
        ConnState::Connected => "connected".to_owned(),
        ConnState::Disconnected {
            retry_at: Some(at), ..
        } => {
            let secs = ((at - app.now_ms).max(0) + 999) / 1000;
            format!("offline, retry in {secs}s")
        }
        ConnState::Disconnected { retry_at: None, .. } => "offline".to_owned(),
    };
    let conn_style = if app.is_connected() {
        bar
    } else {
        bar.add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    };
    let buf = app.active_buffer();
    let mut spans = vec![
        Span::styled(format!("[{conn}]"), conn_style),
        Span::styled(
            format!(" {} ", shown(buf.kind.label())),
            bar.add_modifier(Modifier::BOLD),
        ),
    ];
    if buf.scroll > 0 {
        spans.push(Span::styled(
            "-- more --",
            bar.add_modifier(Modifier::REVERSED),
        ));
        spans.push(Span::styled(" ", bar));
    }
    let pending = app.outbox.len();
    if pending > 0 {
        spans.push(Span::styled(format!("⧗{pending} pending "), bar));
    }
    let active: Vec<String> = app
        .buffers
        .iter()
        .enumerate()
        .filter(|(i, b)| *i != app.active && b.has_activity())
        .map(|(i, b)| {
            if b.mentions > 0 {
                format!("{}:{}({}!)", i + 1, shown(b.kind.label()), b.mentions)
            } else {
                format!("{}:{}({})", i + 1, shown(b.kind.label()), b.unread)
            }
        })
        .collect();
    if !active.is_empty() {
        let (unread, mentions) = app.activity_totals();
        spans.push(Span::styled(
            format!("[act {unread}, {mentions}!: {}] ", active.join(" ")),
            bar.add_modifier(if mentions > 0 {
                Modifier::BOLD
            } else {
                Modifier::empty()
            }),
        ));
    }
    spans.push(Span::styled(shown(&app.server), bar));
    if app.tls {
        spans.push(Span::styled(" tls", bar));
    }
    if let ConnState::Disconnected { reason, .. } = &app.conn {
        spans.push(Span::styled(format!(" ({reason})"), bar));
    }
    let used: usize = spans.iter().map(|s| text_width(&s.content)).sum();
    spans.push(Span::styled(
        " ".repeat(usize::from(area.width).saturating_sub(used)),
        bar,
    ));
    frame.render_widget(Paragraph::new(TextLine::from(spans)), area);
}

/// The room list: numbered buffers with activity counts.
pub fn rooms(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let inner_w = usize::from(area.width.saturating_sub(1));
    let lines: Vec<TextLine<'static>> = app
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let count = if i == app.active {
                String::new()
            } else if b.mentions > 0 {
                format!(" {}!", b.mentions)
            } else if b.unread > 0 {
                format!(" {}", b.unread)
            } else {
                String::new()
            };
            let num = if i < 9 {
                format!("{} ", i + 1)
            } else {
                "  ".to_owned()
            };
            let name_w = inner_w.saturating_sub(num.len() + count.len());
            let name = truncate(&shown(b.kind.label()), name_w);
            let mut st = Style::default();
            if i == app.active {
                st = st.add_modifier(Modifier::REVERSED);
            } else if b.mentions > 0 {
                st = style::mention(theme).add_modifier(Modifier::UNDERLINED);
            } else if b.unread > 0 {
                st = st.add_modifier(Modifier::BOLD);
            } else if matches!(b.kind, BufferKind::Room(_)) && !b.joined {
                st = style::dim(theme);
            }
            let pad = name_w.saturating_sub(text_width(&name));
            TextLine::from(Span::styled(
                format!("{num}{name}{count}{}", " ".repeat(pad)),
                st,
            ))
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::RIGHT)
                .border_style(style::dim(theme)),
        ),
        area,
    );
}

/// The member list of the active room.
pub fn members(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = &app.theme;
    let buf = app.active_buffer();
    let w = usize::from(area.width.saturating_sub(2));
    let mut lines = vec![TextLine::from(Span::styled(
        format!(
            " {} users",
            buf.member_count.map_or(buf.members.len(), |c| c as usize)
        ),
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    lines.extend(buf.members.iter().map(|m| {
        TextLine::from(vec![
            Span::raw(" "),
            Span::styled(truncate(&shown(m), w), style::nick(theme, m, app.is_me(m))),
        ])
    }));
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::LEFT)
                .border_style(style::dim(theme)),
        ),
        area,
    );
}
