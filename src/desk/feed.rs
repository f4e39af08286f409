//! What the desk tells its users besides requests: the notification FIFO,
//! the event feed, XCP's order events, the mail outbox, the portfolio, and
//! the simulated registry's rules.

use crate::error::{Error, Result};
use crate::registry::simulated::{self, Rule};
use crate::store::accounts::Account;
use crate::store::domains::{self, Domain};
use crate::store::lifecycle::{self, DomainEvent};
use crate::store::notifications::{self, Mail, Notification, ReadStatus};
use crate::store::order_events::{self, OrderEvent};
use crate::store::requests::{self, Annotation, FeedEntry, Request};
use crate::App;

use super::{own_scope, require_operator};

/// The caller's oldest unread notification.
pub fn next_notification(app: &App, caller: &Account) -> Result<Option<Notification>> {
    let id = caller.id;
    app.db
        .read(move |conn| notifications::oldest_unread(conn, id))
}

/// Marks the caller's notification `id` read.
pub fn read_notification(app: &App, caller: &Account, id: i64) -> Result<()> {
    let (account, now) = (caller.id, app.clock.now());
    app.db
        .write(move |conn| notifications::mark_read(conn, account, id, now))
}

/// A page of the caller's notifications, and the cursor of the next.
pub fn notifications(
    app: &App,
    caller: &Account,
    status: ReadStatus,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<Notification>, Option<i64>)> {
    let account = caller.id;
    app.db
        .read(move |conn| notifications::list(conn, account, status, after, limit))
}

/// Where a feed that wants only what happens from now on starts.
pub fn latest_event(app: &App, caller: &Account) -> Result<i64> {
    let account = own_scope(caller);
    app.db
        .read(move |conn| requests::latest_transition(conn, account))
}

/// Up to `limit` transitions after `after`, oldest first.
pub fn events(app: &App, caller: &Account, after: i64, limit: i64) -> Result<Vec<FeedEntry>> {
    let account = own_scope(caller);
    app.db
        .read(move |conn| requests::feed(conn, after, account, limit))
}

/// An event the XCP face polls: an order's status change, or a domain's
/// lifecycle event.
pub enum XcpEvent {
    Order(OrderEvent),
    Domain(DomainEvent),
}

impl XcpEvent {
    fn created_at(&self) -> i64 {
        match self {
            XcpEvent::Order(e) => e.created_at,
            XcpEvent::Domain(e) => e.created_at,
        }
    }
}

/// The caller's oldest unacknowledged events, order and domain events
/// together (up to `limit`), and how many are unacknowledged in all.
pub fn order_events(app: &App, caller: &Account, limit: i64) -> Result<(Vec<XcpEvent>, i64)> {
    let id = caller.id;
    app.db.read(move |conn| {
        let mut events: Vec<XcpEvent> = order_events::unacked(conn, id, limit)?
            .into_iter()
            .map(XcpEvent::Order)
            .chain(
                lifecycle::unacked_events(conn, id, limit)?
                    .into_iter()
                    .map(XcpEvent::Domain),
            )
            .collect();
        // Stable: at the same time, order events first.
        events.sort_by_key(XcpEvent::created_at);
        events.truncate(usize::try_from(limit).unwrap_or(0));
        let total =
            order_events::count_unacked(conn, id)? + lifecycle::count_unacked_events(conn, id)?;
        Ok((events, total))
    })
}

/// Acknowledges the caller's event `event_id`: it is not polled again.
pub fn ack_order_event(app: &App, caller: &Account, event_id: String) -> Result<()> {
    let (id, now) = (caller.id, app.clock.now());
    app.db.write(move |conn| {
        if lifecycle::ack_event(conn, id, &event_id, now)? {
            return Ok(());
        }
        order_events::ack(conn, id, &event_id, now)
    })
}

/// The mail outbox, newest first (operators only).
pub fn mail(app: &App, caller: &Account, request_id: Option<i64>, limit: i64) -> Result<Vec<Mail>> {
    require_operator(caller)?;
    app.db
        .read(move |conn| notifications::mail(conn, request_id, limit))
}

/// Sends a sent or failed message of the outbox again (operators).
pub fn resend_mail(app: &App, caller: &Account, id: i64) -> Result<()> {
    require_operator(caller)?;
    app.db
        .write(move |conn| crate::store::notifications::resend_mail(conn, id))
}

/// What the desk knows of a name for the caller.
pub enum NameLookup {
    /// In the portfolio.
    Held(Domain),
    /// Not held, but an order for it is open.
    Ordered(Request, Vec<(i64, Annotation)>),
}

/// The caller's domain `name`, or their open order for it.
pub fn domain(app: &App, caller: &Account, name: String) -> Result<NameLookup> {
    let caller = caller.clone();
    app.db.read(move |conn| {
        if let Some(d) = domains::by_name(conn, &name)? {
            if caller.is_operator() || d.account_id == caller.id {
                return Ok(NameLookup::Held(d));
            }
        }
        match requests::open_order(conn, caller.id, &name)? {
            Some(r) => {
                let notes = requests::annotations(conn, &[r.id])?;
                Ok(NameLookup::Ordered(r, notes))
            }
            None => Err(Error::not_found(format!("domain {name}"))),
        }
    })
}

/// The simulated registry's rules (operators only).
pub fn rules(app: &App, caller: &Account) -> Result<Vec<Rule>> {
    require_operator(caller)?;
    app.db.read(simulated::load_rules)
}

/// Replaces the simulated registry's rules (operators only).
pub fn set_rules(app: &App, caller: &Account, rules: Vec<Rule>) -> Result<()> {
    require_operator(caller)?;
    app.db
        .write(move |conn| simulated::save_rules(conn, &rules))
}
