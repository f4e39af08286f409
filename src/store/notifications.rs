//! The per-account FIFO notification queue (seed 001) and the mail outbox.

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};

/// A notification; its JSON shape is in `store::view`.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    pub action: String,
    pub status: String,
    pub message: String,
    pub domain: String,
    pub request_id: Option<i64>,
    pub created_at: Millis,
    pub read_at: Option<Millis>,
}

/// The columns `from_row` reads (a literal: see `requests::columns`).
macro_rules! columns {
    () => {
        "id, account_id, type, action, status, message, domain, request_id, created_at, read_at"
    };
}

const COLUMNS: &str = columns!();

fn from_row(row: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        // By position, in the order of `COLUMNS`.
        id: row.get(0)?,
        account_id: row.get(1)?,
        kind: row.get(2)?,
        action: row.get(3)?,
        status: row.get(4)?,
        message: row.get(5)?,
        domain: row.get(6)?,
        request_id: row.get(7)?,
        created_at: row.get(8)?,
        read_at: row.get(9)?,
    })
}

/// What a transition tells the owner.
pub struct NewNotification<'a> {
    pub account_id: i64,
    /// None for a step no request made (a lifecycle reminder).
    pub request_id: Option<i64>,
    pub action: &'a str,
    pub status: &'a str,
    pub message: String,
    pub domain: &'a str,
}

pub fn insert(conn: &Connection, n: &NewNotification<'_>, now: Millis) -> Result<i64> {
    conn.exec(
        "insert into notifications (account_id, request_id, type, action, status, message, domain, created_at)
         values (?1, ?2, 'domain', ?3, ?4, ?5, ?6, ?7)",
        params![n.account_id, n.request_id, n.action, n.status, n.message, n.domain, now],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn get(conn: &Connection, id: i64) -> Result<Notification> {
    const SQL: &str = concat!("select ", columns!(), " from notifications where id = ?1");
    conn.one(SQL, [id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("notification {id}")))
}

/// The oldest unread notification of an account. (The index is named: the
/// planner preferred `notifications_account` and read every notification
/// already read before reaching the first unread one. `+?1`: see
/// `store::literal`.)
pub fn oldest_unread(conn: &Connection, account_id: i64) -> Result<Option<Notification>> {
    const SQL: &str = concat!(
        "select ",
        columns!(),
        " from notifications indexed by notifications_unread
         where account_id = +?1 and read_at is null order by id limit 1"
    );
    Ok(conn.one(SQL, [account_id], from_row).optional()?)
}

/// Marks a notification read. Repeating it is harmless; another account's
/// notification is "not found".
pub fn mark_read(conn: &Connection, account_id: i64, id: i64, now: Millis) -> Result<()> {
    // The usual case, an unread notification of the account's own, is one
    // statement; only when it changes nothing is the owner looked up.
    let changed = conn.exec(
        "update notifications set read_at = ?1
         where id = ?2 and account_id = ?3 and read_at is null",
        params![now, id, account_id],
    )?;
    if changed > 0 {
        return Ok(());
    }
    let owner: Option<i64> = conn
        .one(
            "select account_id from notifications where id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    if owner != Some(account_id) {
        return Err(Error::not_found(format!("notification {id}")));
    }
    Ok(())
}

/// Largest page of a notification list.
const MAX_PAGE: i64 = super::requests::MAX_LIMIT;

/// Which notifications a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    Unread,
    Read,
    All,
}

/// A page of an account's notifications, oldest first, after the cursor.
pub fn list(
    conn: &Connection,
    account_id: i64,
    status: ReadStatus,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<Notification>, Option<i64>)> {
    let (index, filter) = match status {
        ReadStatus::Unread => ("indexed by notifications_unread", "and read_at is null"),
        ReadStatus::Read => ("", "and read_at is not null"),
        ReadStatus::All => ("", ""),
    };
    let sql = format!(
        "select {COLUMNS} from notifications {index} where account_id = +?1 and id > ?2 {filter}
         order by id limit {}",
        MAX_PAGE + 1
    );
    // The page size is cut here, not bound (see `store::literal`).
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![account_id, after.unwrap_or(0)], from_row)?;
    Ok(super::page(
        rows,
        limit.clamp(0, MAX_PAGE),
        |n: &Notification| n.id,
    )?)
}

pub fn for_request(conn: &Connection, request_id: i64) -> Result<Vec<Notification>> {
    let sql = format!("select {COLUMNS} from notifications where request_id = +?1 order by id");
    Ok(conn.all(&sql, [request_id], from_row)?)
}

/// Puts a message in the outbox.
pub fn queue_mail(
    conn: &Connection,
    request_id: Option<i64>,
    recipient: &str,
    subject: &str,
    body: &str,
    now: Millis,
) -> Result<i64> {
    conn.exec(
        "insert into mail (request_id, recipient, subject, body, created_at) values (?1, ?2, ?3, ?4, ?5)",
        params![request_id, recipient, subject, body, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Puts a sent or failed message back in the outbox, to be sent again
/// now; not found when there is no such message, a conflict while it is
/// still pending.
pub fn resend_mail(conn: &Connection, id: i64) -> Result<()> {
    let state: Option<String> = conn
        .one("select state from mail where id = ?1", [id], |r| r.get(0))
        .optional()?;
    match state.as_deref() {
        None => Err(Error::not_found(format!("mail {id}"))),
        Some("pending") => Err(Error::Conflict(format!(
            "mail {id} is pending already: it is sent on its own"
        ))),
        Some(_) => {
            conn.exec(
                "update mail set state = 'pending', attempts = 0, next_attempt_at = null,
                        sent_at = null where id = ?1",
                [id],
            )?;
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    pub id: i64,
    pub request_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(serialize_with = "super::accounts::ser_opt_time")]
    pub next_attempt_at: Option<Millis>,
    #[serde(serialize_with = "super::accounts::ser_opt_time")]
    pub sent_at: Option<Millis>,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub created_at: Millis,
}

/// The outbox, newest first.
pub fn mail(conn: &Connection, request_id: Option<i64>, limit: i64) -> Result<Vec<Mail>> {
    let mut stmt = conn.prepare_cached(
        "select id, request_id, recipient, subject, body, state, attempts, created_at,
                last_error, next_attempt_at, sent_at from mail
         where (?1 is null or request_id = ?1) order by id desc",
    )?;
    // Cut while reading: a bound `limit ?` compiles the statement again on
    // every call (see `store::literal`).
    let rows = stmt.query_map(params![request_id], |r| {
        Ok(Mail {
            id: r.get(0)?,
            request_id: r.get(1)?,
            recipient: r.get(2)?,
            subject: r.get(3)?,
            body: r.get(4)?,
            state: r.get(5)?,
            attempts: r.get(6)?,
            created_at: r.get(7)?,
            last_error: r.get(8)?,
            next_attempt_at: r.get(9)?,
            sent_at: r.get(10)?,
        })
    })?;
    Ok(rows
        .take(usize::try_from(limit).unwrap_or(0))
        .collect::<rusqlite::Result<_>>()?)
}
