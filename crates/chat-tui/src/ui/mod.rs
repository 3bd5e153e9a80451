//! Drawing: a pure function of `&App`.
//!
//! # Layout
//! - [`timeline`]: the messages of the active buffer.
//! - [`bars`]: topic line, status bar, room list and member list.
//! - [`input`]: the input area and the cursor.
//! - [`gauge`]: a progress row per running file transfer.
//! - [`style`]: colours and modifiers.

pub mod bars;
pub mod gauge;
pub mod input;
pub mod style;
pub mod timeline;

use ratatui::Frame;

use crate::app::App;
use crate::layout::panes;

/// Draws the whole screen for `app`. Reads the model only; never changes it.
pub fn draw(app: &App, frame: &mut Frame<'_>) {
    let p = panes(app, frame.area());
    if let Some(area) = p.rooms {
        bars::rooms(app, frame, area);
    }
    bars::topic(app, frame, p.topic);
    timeline::draw(app, frame, p.timeline);
    if let Some(area) = p.members {
        bars::members(app, frame, area);
    }
    if let Some(area) = p.transfers {
        gauge::draw(app, frame, area);
    }
    bars::status(app, frame, p.status);
    input::draw(app, frame, p.input);
}
