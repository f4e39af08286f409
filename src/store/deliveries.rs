//! What leaves regdesk, as rows: each account's notification webhook
//! endpoint, the delivery log (`webhook_deliveries`, written in the
//! transaction of the notification it pushes), and the mail outbox's
//! sending state. The outbox reads what is due here and writes outcomes.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::store::accounts::ser_time;
use crate::store::notifications;
use crate::store::Cached;

// ----- endpoints ---------------------------------------------------------------

/// An account's notification webhook.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
    #[serde(serialize_with = "ser_time")]
    pub updated_at: Millis,
}

pub fn endpoint(conn: &Connection, account_id: i64) -> Result<Option<Endpoint>> {
    Ok(conn
        .query_row(
            "select url, secret, created_at, updated_at from webhook_endpoints where account_id = ?1",
            [account_id],
            |r| {
                Ok(Endpoint {
                    url: r.get(0)?,
                    secret: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Sets an account's endpoint. Pending deliveries follow it to the new URL.
pub fn put_endpoint(
    conn: &Connection,
    account_id: i64,
    url: &str,
    secret: &str,
    now: Millis,
) -> Result<Endpoint> {
    conn.execute(
        "insert into webhook_endpoints (account_id, url, secret, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?4)
         on conflict (account_id) do update set url = ?2, secret = ?3, updated_at = ?4",
        params![account_id, url, secret, now],
    )?;
    conn.execute(
        "update webhook_deliveries set url = ?1 where account_id = ?2 and state = 'pending'",
        params![url, account_id],
    )?;
    endpoint(conn, account_id)?.ok_or_else(|| Error::Internal("endpoint vanished".into()))
}

/// Removes an account's endpoint; its pending deliveries fail, kept in the
/// log. Says whether there was one.
pub fn delete_endpoint(conn: &Connection, account_id: i64, now: Millis) -> Result<bool> {
    let removed = conn.execute(
        "delete from webhook_endpoints where account_id = ?1",
        [account_id],
    )?;
    conn.execute(
        "update webhook_deliveries set state = 'failed', last_error = 'the endpoint was removed',
                next_attempt_at = ?1
         where account_id = ?2 and state = 'pending'",
        params![now, account_id],
    )?;
    Ok(removed > 0)
}

/// Writes notification `n` to its account's queue and queues it for the
/// account's endpoint, if it has one: both in the caller's transaction, so
/// that the push is never lost. The one way a notification is made.
pub fn notify(
    conn: &Connection,
    n: &notifications::NewNotification<'_>,
    now: Millis,
) -> Result<i64> {
    let id = notifications::insert(conn, n, now)?;
    enqueue(conn, n.account_id, id, now)?;
    Ok(id)
}

fn enqueue(conn: &Connection, account_id: i64, notification_id: i64, now: Millis) -> Result<()> {
    conn.exec(
        "insert into webhook_deliveries (notification_id, account_id, url, next_attempt_at, created_at)
         select ?1, account_id, url, ?2, ?2 from webhook_endpoints where account_id = ?3",
        params![notification_id, now, account_id],
    )?;
    Ok(())
}

// ----- the log -------------------------------------------------------------------

/// One notification sent (or being sent) to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: i64,
    pub url: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "super::accounts::ser_opt_time")]
    pub next_attempt_at: Option<Millis>,
    #[serde(serialize_with = "super::accounts::ser_opt_time")]
    pub delivered_at: Option<Millis>,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = r.get("state")?;
    Ok(Delivery {
        id: r.get("id")?,
        notification_id: r.get("notification_id")?,
        url: r.get("url")?,
        // Only a pending delivery has a next attempt.
        next_attempt_at: if state == "pending" {
            r.get("next_attempt_at")?
        } else {
            None
        },
        state,
        attempts: r.get("attempts")?,
        last_status: r.get("last_status")?,
        last_error: r.get("last_error")?,
        delivered_at: r.get("delivered_at")?,
        created_at: r.get("created_at")?,
    })
}

/// A page of an account's deliveries, oldest first, after the cursor.
pub fn list(
    conn: &Connection,
    account_id: i64,
    state: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<Delivery>, Option<i64>)> {
    // The page is cut while reading: a bound `limit ?` compiles the
    // statement again on every call (see `store::literal`).
    let mut stmt = conn.prepare_cached(
        "select * from webhook_deliveries where account_id = ?1 and id > ?2
         and (?3 is null or state = ?3) order by id",
    )?;
    let rows = stmt.query_map(params![account_id, after.unwrap_or(0), state], delivery_row)?;
    Ok(super::page(rows, limit, |d: &Delivery| d.id)?)
}

// ----- what is due ---------------------------------------------------------------

/// A due delivery with what it takes to send it.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub account_id: i64,
    pub url: String,
    pub secret: String,
    pub attempts: i64,
    pub notification_id: i64,
    /// The notification as the API shows it.
    pub body: String,
}

/// The first pending delivery of each endpoint, when it is due: a later
/// delivery waits for the earlier ones of its endpoint, so that each
/// receiver gets its notifications in order. Reads every pending row once
/// per call, so its cost grows with the backlog, not with the log. (The
/// index is named: the planner preferred `webhook_deliveries_account`,
/// which reads the whole log.)
pub(crate) const HEADS: &str = "select d.id, d.account_id
     from (select account_id, min(id) as head
           from webhook_deliveries indexed by webhook_deliveries_due
           where state = 'pending' group by account_id) h
     join webhook_deliveries d on d.id = h.head
     where d.next_attempt_at <= ?1
     order by d.next_attempt_at, d.id";

/// The due first deliveries of the endpoints `wanted` accepts, at most
/// `limit`, oldest due first.
pub fn heads(
    conn: &Connection,
    now: Millis,
    limit: usize,
    wanted: impl Fn(i64) -> bool,
) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(HEADS)?;
    // Cut while reading: a bound `limit ?` compiles the statement again on
    // every call (see `store::literal`).
    let ids = stmt
        .query_map(params![now], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))?
        .filter(|row| row.as_ref().map_or(true, |(_, account)| wanted(*account)))
        .take(limit)
        .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
    ids.into_iter()
        .filter_map(|(id, _)| due(conn, id).transpose())
        .collect()
}

/// The next pending delivery of an account after delivery `after`, if it is
/// due.
pub fn next_due(
    conn: &Connection,
    account_id: i64,
    after: i64,
    now: Millis,
) -> Result<Option<Due>> {
    let next: Option<(i64, Millis)> = conn
        .one(
            "select id, next_attempt_at from webhook_deliveries
             where account_id = ?1 and id > ?2 and state = 'pending' order by id limit 1",
            params![account_id, after],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match next {
        Some((id, at)) if at <= now => due(conn, id),
        _ => Ok(None),
    }
}

/// Delivery `id` with its endpoint's secret and its notification, unless
/// it is no longer pending or its endpoint is gone.
fn due(conn: &Connection, id: i64) -> Result<Option<Due>> {
    let row = conn
        .one(
            "select d.id, d.account_id, d.url, e.secret, d.attempts, d.notification_id
             from webhook_deliveries d join webhook_endpoints e on e.account_id = d.account_id
             where d.id = ?1 and d.state = 'pending'",
            [id],
            |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get(2)?),
                    (r.get(3)?, r.get(4)?, r.get(5)?),
                ))
            },
        )
        .optional()?;
    let Some(((id, account_id, url), (secret, attempts, notification_id))) = row else {
        return Ok(None);
    };
    let body = serde_json::to_string(&notifications::get(conn, notification_id)?)?;
    Ok(Some(Due {
        id,
        account_id,
        url,
        secret,
        attempts,
        notification_id,
        body,
    }))
}

/// What one attempt at a delivery came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `delivered`, `pending` (tried again at `next_attempt_at`) or `failed`.
    pub state: &'static str,
    pub attempts: i64,
    pub status: Option<u16>,
    /// What the account is shown (never the receiver's words).
    pub error: Option<String>,
    pub next_attempt_at: Millis,
}

/// Writes the outcome of an attempt at a delivery still pending.
pub fn record(conn: &Connection, id: i64, o: &Outcome, now: Millis) -> Result<()> {
    conn.exec(
        "update webhook_deliveries set state = ?1, attempts = ?2, last_status = ?3,
                last_error = coalesce(?4, last_error), next_attempt_at = ?5,
                delivered_at = case when ?1 = 'delivered' then ?6 end
         where id = ?7 and state = 'pending'",
        params![
            o.state,
            o.attempts,
            o.status,
            o.error,
            o.next_attempt_at,
            now,
            id
        ],
    )?;
    Ok(())
}

// ----- mail ------------------------------------------------------------------------

/// A message of the mail outbox due to be sent.
#[derive(Debug, Clone)]
pub struct DueMail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

pub(crate) const DUE_MAIL: &str = "select id, recipient, subject, body, attempts from mail
     where state = 'pending' and (next_attempt_at is null or next_attempt_at <= ?1)
     order by id";

/// At most `limit` messages due, oldest first.
pub fn due_mail(conn: &Connection, now: Millis, limit: usize) -> Result<Vec<DueMail>> {
    let mut stmt = conn.prepare_cached(DUE_MAIL)?;
    // Cut while reading: a bound `limit ?` compiles the statement again on
    // every call (see `store::literal`).
    let rows = stmt.query_map(params![now], |r| {
        Ok(DueMail {
            id: r.get(0)?,
            recipient: r.get(1)?,
            subject: r.get(2)?,
            body: r.get(3)?,
            attempts: r.get(4)?,
        })
    })?;
    Ok(rows.take(limit).collect::<rusqlite::Result<_>>()?)
}

/// Writes the outcome of an attempt at sending a message still pending:
/// `sent`, `pending` (again at `next`) or `failed`.
pub fn record_mail(
    conn: &Connection,
    id: i64,
    state: &str,
    attempts: i64,
    error: Option<&str>,
    next: Option<Millis>,
    now: Millis,
) -> Result<()> {
    conn.exec(
        "update mail set state = ?1, attempts = ?2, last_error = coalesce(?3, last_error),
                next_attempt_at = ?4, sent_at = case when ?1 = 'sent' then ?5 end
         where id = ?6 and state = 'pending'",
        params![state, attempts, error, next, now, id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_senders_due_queries_are_compiled_once() {
        crate::store::assert_compiled_once(HEADS, |conn, now| {
            heads(conn, now, 32, |_| true).unwrap();
        });
        crate::store::assert_compiled_once(DUE_MAIL, |conn, now| {
            due_mail(conn, now, 16).unwrap();
        });
    }
}
