//! Web sessions and one-time set-password links: each secret is kept only
//! as its SHA-256 digest (`accounts::token_hash`), so a copy of the
//! database signs no one in.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::store::accounts::{self, ser_time, token_hash, Account};
use crate::store::Cached;

/// One signed-in browser of an account.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub id: i64,
    pub account_id: i64,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
    #[serde(serialize_with = "ser_time")]
    pub expires_at: Millis,
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

const COLUMNS: &str = "id, account_id, created_at, expires_at, address, user_agent";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        account_id: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        address: row.get(4)?,
        user_agent: row.get(5)?,
    })
}

/// Where a new session comes from, as the sessions list shows it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

/// Opens a session for `account_id` whose cookie holds `secret`.
pub fn open(
    conn: &Connection,
    account_id: i64,
    secret: &str,
    origin: &Origin,
    now: Millis,
    expires_at: Millis,
) -> Result<Session> {
    conn.exec(
        "insert into sessions (account_id, hash, created_at, expires_at, address, user_agent)
         values (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            account_id,
            token_hash(secret),
            now,
            expires_at,
            origin.address,
            origin.user_agent
        ],
    )?;
    let id = conn.last_insert_rowid();
    let sql = format!("select {COLUMNS} from sessions where id = ?1");
    Ok(conn.one(&sql, [id], from_row)?)
}

/// The unexpired session whose cookie holds `secret`, and its account.
pub fn find(conn: &Connection, secret: &str, now: Millis) -> Result<Option<(Session, Account)>> {
    let sql = format!("select {COLUMNS} from sessions where hash = ?1 and expires_at > ?2");
    let Some(session) = conn
        .one(&sql, params![token_hash(secret), now], from_row)
        .optional()?
    else {
        return Ok(None);
    };
    let account = accounts::get(conn, session.account_id)?;
    Ok(Some((session, account)))
}

/// The unexpired sessions of an account, newest first.
pub fn list(conn: &Connection, account_id: i64, now: Millis) -> Result<Vec<Session>> {
    let sql = format!(
        "select {COLUMNS} from sessions where account_id = ?1 and expires_at > ?2
         order by id desc"
    );
    Ok(conn.all(&sql, params![account_id, now], from_row)?)
}

/// Ends session `id` of `account_id`; not found when it is not theirs.
pub fn close(conn: &Connection, account_id: i64, id: i64) -> Result<()> {
    let n = conn.exec(
        "delete from sessions where id = ?1 and account_id = ?2",
        params![id, account_id],
    )?;
    if n == 0 {
        return Err(Error::not_found(format!("session {id}")));
    }
    Ok(())
}

/// Ends every session of an account but `keep` (its password changed).
pub fn close_others(conn: &Connection, account_id: i64, keep: Option<i64>) -> Result<usize> {
    Ok(conn.exec(
        "delete from sessions where account_id = ?1 and id is not ?2",
        params![account_id, keep],
    )?)
}

/// Removes the sessions and links that have expired.
pub fn forget_expired(conn: &Connection, now: Millis) -> Result<()> {
    conn.exec("delete from sessions where expires_at <= ?1", [now])?;
    conn.exec("delete from password_links where expires_at <= ?1", [now])?;
    Ok(())
}

/// Makes a one-time set-password link for `account_id` holding `secret`;
/// an earlier link of the account stops working.
pub fn add_link(
    conn: &Connection,
    account_id: i64,
    secret: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<()> {
    conn.exec(
        "delete from password_links where account_id = ?1",
        [account_id],
    )?;
    conn.exec(
        "insert into password_links (hash, account_id, created_at, expires_at)
         values (?1, ?2, ?3, ?4)",
        params![token_hash(secret), account_id, now, expires_at],
    )?;
    Ok(())
}

/// Uses up the unexpired link holding `secret`: the account it was for.
pub fn take_link(conn: &Connection, secret: &str, now: Millis) -> Result<Option<i64>> {
    Ok(conn
        .one(
            "delete from password_links where hash = ?1 and expires_at > ?2
             returning account_id",
            params![token_hash(secret), now],
            |r| r.get(0),
        )
        .optional()?)
}
