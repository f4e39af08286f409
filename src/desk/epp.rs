//! What the EPP face needs of the desk beyond the other faces' use cases:
//! its TLS material, a domain as `info` shows it to any account, the
//! transaction ids of the work requests it places and the wait for their
//! end, the restore report of RFC 3915, and the poll queue (the
//! notification FIFO) with its count and what each message is about.

use std::time::{Duration, Instant};

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::state::{Operation, State};
use crate::store::accounts::{self, Account};
use crate::store::domains::{self, Domain};
use crate::store::epp::{self, Tls, Transaction};
use crate::store::notifications::{self, Notification};
use crate::store::requests::{self, Filter, NewRequest, Request};
use crate::store::transition::Who;

use super::orders;
use crate::App;

/// The kept TLS material, or `make`'s, kept (a restart serves the same).
pub fn tls(app: &App, make: impl FnOnce() -> Result<Tls>) -> Result<Tls> {
    if let Some(kept) = app.db.read(epp::tls)? {
        return Ok(kept);
    }
    let made = make()?;
    let now = app.clock.now();
    app.db.write(move |conn| epp::keep_tls(conn, &made, now))
}

/// The test CA's certificate (PEM), when regdesk made one.
pub fn ca_pem(app: &App) -> Result<Option<String>> {
    Ok(app.db.read(epp::tls)?.map(|t| t.ca_cert))
}

/// A domain of the portfolio and its sponsor's name, whoever holds it:
/// the face decides what each caller may see.
pub fn domain(app: &App, name: String) -> Result<Option<(Domain, String)>> {
    app.db.read(move |conn| {
        let Some(d) = domains::by_name(conn, &name)? else {
            return Ok(None);
        };
        let sponsor = accounts::get(conn, d.account_id)?.name;
        Ok(Some((d, sponsor)))
    })
}

/// The name of account `id` (the sponsor an object's info shows).
pub fn account_name(app: &App, id: i64) -> Result<String> {
    app.db.read(move |conn| Ok(accounts::get(conn, id)?.name))
}

/// Which of `names` some account holds.
pub fn held(app: &App, names: Vec<String>) -> Result<Vec<bool>> {
    app.db.read(move |conn| {
        names
            .iter()
            .map(|n| Ok(domains::by_name(conn, n)?.is_some()))
            .collect()
    })
}

/// Creates and submits `new` for the caller, through EPP (its history says
/// so), keeping the transaction ids of the command that placed it.
pub fn place(app: &App, caller: &Account, new: NewRequest, t: Transaction) -> Result<Request> {
    let (owner, now) = (caller.clone(), app.clock.now());
    let r = app.db.write(move |conn| {
        let (r, _) = orders::open_by(conn, &new, &Who::account(&owner), Some("epp"), now)?;
        epp::record(conn, r.id, &t, now)?;
        Ok(r)
    })?;
    app.ticker.wake();
    Ok(r)
}

/// Keeps the transaction ids of the command that placed `request_id`
/// through another use case (a transfer between accounts).
pub fn remember(app: &App, request_id: i64, t: Transaction) -> Result<()> {
    let now = app.clock.now();
    app.db
        .write(move |conn| epp::record(conn, request_id, &t, now))
}

/// Marks request `request_id`'s command answered 1001: its end is told
/// with the command's transaction ids.
pub fn mark_pending(app: &App, request_id: i64) -> Result<()> {
    app.db
        .write(move |conn| epp::mark_pending(conn, request_id))
}

/// Whether a request has come as far as it goes without someone acting:
/// ended, back with its owner, or waiting for an operator's review.
fn settled(r: &Request) -> bool {
    r.state.is_terminal() || matches!(r.state, State::Incomplete | State::Review)
}

/// Request `id` once it has settled or `wait` has passed, whichever comes
/// first: woken by each tick's end rather than reading in a loop.
pub fn wait(app: &App, id: i64, wait: Duration) -> Result<Request> {
    let deadline = Instant::now() + wait;
    loop {
        let seen = app.ticker.ticks_ended();
        let r = app.db.read(move |conn| requests::load(conn, id))?;
        let left = deadline.saturating_duration_since(Instant::now());
        if settled(&r) || left.is_zero() {
            return Ok(r);
        }
        app.ticker.wait_tick(seen, left);
    }
}

/// Records an RFC 3915 restore report (`text`) as an annotation on the
/// restore of the caller's domain `name` that waits for review, so that
/// the operator reads it before authorising; a conflict when none waits.
pub fn restore_report(app: &App, caller: &Account, name: String, text: String) -> Result<i64> {
    let (who, now) = (Who::account(caller), app.clock.now());
    let account = (!caller.is_operator()).then_some(caller.id);
    app.db.write(move |conn| {
        let filter = Filter {
            states: vec![State::Review],
            operations: vec![Operation::Restore],
            domain: Some(name.clone()),
            account_id: account,
            ..Filter::default()
        };
        let (waiting, _) = requests::list(conn, &filter, None, 1)?;
        let r = waiting.first().ok_or_else(|| {
            Error::Conflict(format!(
                "no restore of {name} waits for review: request one first"
            ))
        })?;
        requests::add_annotation(conn, r.id, &who.name, &text, now)?;
        Ok(r.id)
    })
}

/// A poll message: the notification, the ids of the EPP command that
/// placed its request, who placed that request, and the domain's expiry
/// now (while it is in the portfolio).
#[derive(Debug, Clone)]
pub struct Message {
    pub notification: Notification,
    pub transaction: Option<Transaction>,
    pub placed_by: Option<String>,
    pub expires_at: Option<Millis>,
}

/// The caller's oldest unread message, and the unread count.
pub type Polled = (Option<Message>, i64);

pub fn poll(app: &App, caller: &Account) -> Result<Polled> {
    let account = caller.id;
    app.db.read(move |conn| {
        let count = epp::unread(conn, account)?;
        let Some(n) = notifications::oldest_unread(conn, account)? else {
            return Ok((None, count));
        };
        let (transaction, placed_by) = match n.request_id {
            Some(r) => (
                epp::transaction(conn, r)?,
                requests::history(conn, r)?
                    .into_iter()
                    .next()
                    .map(|h| h.actor),
            ),
            None => (None, None),
        };
        let expires_at = domains::by_name(conn, &n.domain)?
            .filter(|d| d.account_id == account)
            .map(|d| d.expires_at);
        let message = Message {
            notification: n,
            transaction,
            placed_by,
            expires_at,
        };
        Ok((Some(message), count))
    })
}

/// Marks the caller's notification `id` read; the unread count left.
pub fn ack(app: &App, caller: &Account, id: i64) -> Result<i64> {
    let (account, now) = (caller.id, app.clock.now());
    app.db.write(move |conn| {
        notifications::mark_read(conn, account, id, now)?;
        epp::unread(conn, account)
    })
}
