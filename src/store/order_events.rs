//! Order events of the XCP face (seed 003): an `ORDER STATUS_CHANGE` row each
//! time an orderable request's mapped `order_status` changes, written by the
//! transition that caused it; read oldest first and acknowledged per account.

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::form;
use crate::random;
use crate::state::{self, Operation};

use super::requests::Request;

/// Most events one poll returns.
pub const MAX_POLL: i64 = 100;

/// One `STATUS_CHANGE` of an order, as stored.
#[derive(Debug, Clone)]
pub struct OrderEvent {
    /// 32 hex, chosen once when the event is recorded.
    pub event_id: String,
    pub account_id: i64,
    /// The order id the client knows.
    pub request_id: i64,
    pub domain: String,
    pub order_status: String,
    pub reg_type: String,
    pub created_at: Millis,
}

/// The OpenSRS `order_reg_type` of a request, or `None` when its operation
/// is not something OpenSRS calls an order (update, release, ...).
pub fn reg_type(operation: Operation, params: &Value) -> Option<&'static str> {
    match operation {
        Operation::Create => Some(match params.get("phase").and_then(Value::as_str) {
            Some("sunrise") => "sunrise",
            Some("landrush") => "landrush",
            _ if form::is_premium(params) => "premium",
            _ => "new",
        }),
        Operation::Transfer => Some("transfer"),
        Operation::Renew => Some("renewal"),
        Operation::Privacy => Some("whois_privacy"),
        Operation::Update
        | Operation::Release
        | Operation::Delete
        | Operation::Hold
        | Operation::Backorder
        | Operation::Restore => None,
    }
}

/// The operations whose requests are orders.
pub const ORDER_OPERATIONS: &[Operation] = &[
    Operation::Create,
    Operation::Transfer,
    Operation::Renew,
    Operation::Privacy,
];

/// The `order_status` a request shows now.
pub fn order_status(req: &Request) -> &'static str {
    state::order_status(req.state, req.waiting_on, req.failure)
}

/// A new event id: 32 hex, the time in milliseconds (12 hex) and 10 random
/// bytes. Time first keeps `event_id`'s unique index appended to at its end:
/// fully random ids put every insert on a page of its own in that index,
/// and each such page is one more frame to write at commit.
pub(crate) fn event_id(now: Millis) -> String {
    format!("{:012x}{}", now.clamp(0, 0xffff_ffff_ffff), random::hex(10))
}

/// The hook of `store::transition`: records an event when `after` is an
/// order whose mapped status differs from `before` (`None` on creation, so
/// every order starts with a `pending` event). Runs on the transition's
/// connection, so the event commits with the transition or not at all.
pub fn on_transition(
    conn: &Connection,
    before: Option<&Request>,
    after: &Request,
    now: Millis,
) -> Result<()> {
    let Some(reg_type) = reg_type(after.operation, &after.params) else {
        return Ok(());
    };
    let status = order_status(after);
    if before.map(order_status) == Some(status) {
        return Ok(());
    }
    conn.exec(
        "insert into order_events (event_id, account_id, request_id, domain, order_status, reg_type, created_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            event_id(now),
            after.account_id,
            after.id,
            after.domain,
            status,
            reg_type,
            now
        ],
    )?;
    Ok(())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<OrderEvent> {
    Ok(OrderEvent {
        // By position, in the order of the select in `unacked`.
        event_id: row.get(0)?,
        account_id: row.get(1)?,
        request_id: row.get(2)?,
        domain: row.get(3)?,
        order_status: row.get(4)?,
        reg_type: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// The oldest `limit` unacknowledged events of an account, oldest first.
pub fn unacked(conn: &Connection, account_id: i64, limit: i64) -> Result<Vec<OrderEvent>> {
    let mut stmt = conn.prepare_cached(
        "select event_id, account_id, request_id, domain, order_status, reg_type, created_at
         from order_events indexed by order_events_unacked
         where account_id = +?1 and acked_at is null order by id limit 100",
    )?;
    // The poll size is cut here, not bound (see `store::literal`).
    let rows = stmt
        .query_map([account_id], from_row)?
        .take(limit.clamp(0, MAX_POLL) as usize);
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many events of an account are not acknowledged yet.
pub fn count_unacked(conn: &Connection, account_id: i64) -> Result<i64> {
    Ok(conn.one(
        "select count(*) from order_events where account_id = ?1 and acked_at is null",
        [account_id],
        |r| r.get(0),
    )?)
}

/// Acknowledges an event of `account_id`: it is never returned by a poll
/// again. Acknowledging it again is harmless. Another account's event is
/// "not found", as if it did not exist.
pub fn ack(conn: &Connection, account_id: i64, event_id: &str, now: Millis) -> Result<()> {
    let owner: Option<i64> = conn
        .one(
            "select account_id from order_events where event_id = ?1",
            [event_id],
            |r| r.get(0),
        )
        .optional()?;
    if owner != Some(account_id) {
        return Err(Error::not_found(format!("event {event_id}")));
    }
    conn.exec(
        "update order_events set acked_at = ?1 where event_id = ?2 and acked_at is null",
        params![now, event_id],
    )?;
    Ok(())
}
