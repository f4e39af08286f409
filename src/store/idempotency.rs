//! Idempotency keys of `POST /requests`: the answer given to an account's
//! key, kept with a digest of the body it answered.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Millis;
use crate::error::Result;
use crate::store::Cached;

/// An answer kept for a key.
pub struct Kept {
    pub body_hash: String,
    pub status: u16,
    pub response: String,
}

/// The answer kept for `key` of `account_id`, if any.
pub fn find(conn: &Connection, account_id: i64, key: &str) -> Result<Option<Kept>> {
    Ok(conn
        .one(
            "select body_hash, status, response from idempotency_keys where account_id = ?1 and key = ?2",
            params![account_id, key],
            |r| {
                Ok(Kept {
                    body_hash: r.get(0)?,
                    status: r.get::<_, i64>(1)? as u16,
                    response: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Keeps the 201 answer `response` for `key`.
pub fn keep(
    conn: &Connection,
    account_id: i64,
    key: &str,
    body_hash: &str,
    response: &str,
    now: Millis,
) -> Result<()> {
    conn.exec(
        "insert into idempotency_keys (account_id, key, body_hash, status, response, created_at)
         values (?1, ?2, ?3, 201, ?4, ?5)",
        params![account_id, key, body_hash, response, now],
    )?;
    Ok(())
}
