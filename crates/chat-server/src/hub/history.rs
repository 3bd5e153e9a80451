//! The hub's answers to reads of a room's messages: `history` pages and `search`.
//!
//! Both are bounded by what the hub has broadcast (`Room::last_seq`): a message the store has
//! committed but the hub has not yet announced reaches the reader live, not in a page too.

use chat_proto::ErrorCode;
use chat_proto::client::{History, Search};
use chat_proto::server::{ChatMessage, HistoryPage, SearchResults};
use tracing::warn;

use super::{Hub, SessionId, fit};
use crate::history::{HistoryError, Page, search_words};

impl Hub {
    pub(super) fn history(&mut self, id: SessionId, m: History) {
        let Some(key) = self.member_room(id, &m.id, &m.room) else {
            return;
        };
        if m.before.is_some() && m.after.is_some() {
            let text = "give before or after, not both".to_owned();
            return self.refuse(id, m.id, ErrorCode::BadRequest, text);
        }
        if m.limit == Some(0) {
            let text = "limit must be at least 1".to_owned();
            return self.refuse(id, m.id, ErrorCode::BadRequest, text);
        }
        let n = m
            .limit
            .unwrap_or(self.config.history_on_join)
            .min(self.config.history_page) as usize;
        let committed = self.rooms.get(&*key).map_or(0, |r| r.last_seq());
        let page = match (m.before, m.after) {
            (Some(before), _) => self.history.before(&key, before.min(committed + 1), n),
            (_, Some(after)) => self
                .history
                .after(&key, after, n)
                .map(|p| committed_only(p, committed)),
            _ => self.history.before(&key, committed + 1, n),
        };
        let room = self.rooms.get(&*key).map_or(m.room, |r| r.name.to_string());
        // A forward page keeps its oldest messages; the others keep the newest.
        let keep_newest = m.after.is_none();
        match page {
            Ok(Page { messages, more }) => {
                let page = self.fit_page(m.id, room, messages, more, keep_newest);
                self.reply(id, page);
            }
            Err(e) => {
                warn!(error = %e, room, "history store failed");
                self.refuse(id, m.id, ErrorCode::StoreUnavailable, e.to_string());
            }
        }
    }

    pub(super) fn search(&mut self, id: SessionId, m: Search) {
        let Some(key) = self.member_room(id, &m.id, &m.room) else {
            return;
        };
        if m.query.len() > fit::MAX_QUERY {
            let text = format!("the query is longer than {} bytes", fit::MAX_QUERY);
            return self.refuse(id, m.id, ErrorCode::BadRequest, text);
        }
        if search_words(&m.query).is_empty() {
            let text = "the query has no word to search for".to_owned();
            return self.refuse(id, m.id, ErrorCode::BadRequest, text);
        }
        if m.limit == Some(0) {
            let text = "limit must be at least 1".to_owned();
            return self.refuse(id, m.id, ErrorCode::BadRequest, text);
        }
        let n = m
            .limit
            .unwrap_or(self.config.history_on_join)
            .min(self.config.history_page) as usize;
        let committed = self.rooms.get(&*key).map_or(0, |r| r.last_seq());
        let room = self.rooms.get(&*key).map_or(m.room, |r| r.name.to_string());
        match self.history.search(&key, &m.query, n) {
            Ok(mut page) => {
                page.messages.retain(|msg| msg.seq <= committed);
                let mut results = SearchResults {
                    id: m.id,
                    room,
                    query: m.query,
                    messages: Vec::new(),
                    more: true,
                };
                let budget = fit::array_budget(self.config.max_body, &results);
                let cut = fit::fit_messages(&mut page.messages, budget, true);
                results.messages = page.messages;
                results.more = page.more || cut;
                self.reply(id, results);
            }
            Err(HistoryError::Unavailable(e)) => {
                warn!(error = %e, room, "search failed");
                self.refuse(id, m.id, ErrorCode::StoreUnavailable, e);
            }
        }
    }
}

impl Hub {
    /// A `history_page` of `messages`, cut to fit `max_body` (then `more` is true).
    pub(super) fn fit_page(
        &self,
        id: Option<String>,
        room: String,
        mut messages: Vec<ChatMessage>,
        more: bool,
        keep_newest: bool,
    ) -> HistoryPage {
        let mut page = HistoryPage {
            id,
            room,
            messages: Vec::new(),
            more: true,
        };
        let budget = fit::array_budget(self.config.max_body, &page);
        let cut = fit::fit_messages(&mut messages, budget, keep_newest);
        page.messages = messages;
        page.more = more || cut;
        page
    }
}

/// Drops from a forward page the messages the hub has not broadcast yet (they arrive live);
/// then nothing more is waiting beyond the page.
pub(super) fn committed_only(mut page: Page, committed: u64) -> Page {
    page.messages.retain(|m| m.seq <= committed);
    page.more = page.more && page.messages.last().is_some_and(|m| m.seq < committed);
    page
}
