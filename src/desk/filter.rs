//! The lists: one `Filter` (which the JSON query string, the task face's
//! path and XCP's lookups all build), a page of requests, the export, a
//! request's page and the scheduled list.

use crate::error::Result;
use crate::state::State;
use crate::store::accounts::Account;
use crate::store::requests::{self, Annotation, Request};
use crate::store::view::{self, Detail};
use crate::store::Connection;
use crate::App;

pub use crate::store::requests::Filter;

/// Most requests one scheduled list shows.
pub const MAX_SCHEDULED: i64 = 500;

/// Requests with their annotations, and the cursor of the next page.
pub struct Listed {
    pub rows: Vec<Request>,
    pub notes: Vec<(i64, Annotation)>,
    pub next: Option<i64>,
}

/// A page of requests matching `filter`, newest first, after the cursor.
pub fn list(app: &App, filter: Filter, after: Option<i64>, limit: i64) -> Result<Listed> {
    app.db.read(move |conn| {
        let (rows, next) = requests::list(conn, &filter, after, limit)?;
        with_notes(conn, rows, next)
    })
}

fn with_notes(conn: &Connection, rows: Vec<Request>, next: Option<i64>) -> Result<Listed> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let notes = requests::annotations(conn, &ids)?;
    Ok(Listed { rows, notes, next })
}

/// Every request matching `filter` up to `max` (whole pages), newest first.
pub fn export(app: &App, filter: Filter, max: i64) -> Result<Vec<Request>> {
    app.db.read(move |conn| {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (rows, next) = requests::list(conn, &filter, after, requests::MAX_LIMIT)?;
            out.extend(rows);
            match next {
                Some(n) if (out.len() as i64) < max => after = Some(n),
                _ => break,
            }
        }
        Ok(out)
    })
}

/// Request `id`'s page, if the caller may see it.
pub fn get(app: &App, caller: &Account, id: i64) -> Result<Detail> {
    let caller = caller.clone();
    app.db.read(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        view::request_detail(conn, &r, &caller)
    })
}

/// The scheduled list: queued requests matching `filter` whose exec date
/// is still ahead, soonest first (at most `MAX_SCHEDULED`).
pub fn scheduled(app: &App, filter: Filter) -> Result<Listed> {
    let f = Filter {
        states: vec![State::Queued],
        exec_after: Some(app.clock.now()),
        ..filter
    };
    app.db.read(move |conn| {
        let rows = requests::by_exec_date(conn, &f, MAX_SCHEDULED)?;
        with_notes(conn, rows, None)
    })
}
