//! Passwords (stored as argon2 PHC strings, never in the clear) and the
//! record of failed sign-ins with the refusals they cause.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Millis;
use crate::error::Result;
use crate::store::Cached;

/// The column holding the password of kind `secret` (`web` or `epp`).
fn column(secret: &str) -> &'static str {
    if secret == "epp" {
        "epp_password_hash"
    } else {
        "password_hash"
    }
}

/// The stored hash of account `id`'s password of kind `secret`, if set.
pub fn hash(conn: &Connection, id: i64, secret: &str) -> Result<Option<String>> {
    let sql = format!("select {} from accounts where id = ?1", column(secret));
    Ok(conn
        .one(&sql, [id], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Replaces account `id`'s password of kind `secret` with `hash`.
pub fn set_hash(conn: &Connection, id: i64, secret: &str, hash: &str) -> Result<()> {
    let sql = format!("update accounts set {} = ?1 where id = ?2", column(secret));
    conn.exec(&sql, params![hash, id])?;
    Ok(())
}

/// Records one failed sign-in against `subject` and returns how many it
/// has had since `since`.
pub fn fail(
    conn: &Connection,
    secret: &str,
    subject: &str,
    now: Millis,
    since: Millis,
) -> Result<i64> {
    conn.exec(
        "insert into sign_in_failures (secret, subject, at) values (?1, ?2, ?3)",
        params![secret, subject, now],
    )?;
    Ok(conn.one(
        "select count(*) from sign_in_failures where secret = ?1 and subject = ?2 and at > ?3",
        params![secret, subject, since],
        |r| r.get(0),
    )?)
}

/// Refuses `subject` until `until`.
pub fn lock(conn: &Connection, secret: &str, subject: &str, until: Millis) -> Result<()> {
    conn.exec(
        "insert into sign_in_locks (secret, subject, until) values (?1, ?2, ?3)
         on conflict (secret, subject) do update set until = max(until, excluded.until)",
        params![secret, subject, until],
    )?;
    Ok(())
}

/// When the refusal of `subject` ends, if it is refused at `now`.
pub fn locked_until(
    conn: &Connection,
    secret: &str,
    subject: &str,
    now: Millis,
) -> Result<Option<Millis>> {
    Ok(conn
        .one(
            "select until from sign_in_locks where secret = ?1 and subject = ?2 and until > ?3",
            params![secret, subject, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Forgets the failures and the refusal of `subject` (a success, or an
/// operator lifting it), and every failure older than `before` anywhere,
/// so the table stays small.
pub fn clear(conn: &Connection, secret: &str, subject: &str, before: Millis) -> Result<()> {
    conn.exec(
        "delete from sign_in_failures where (secret = ?1 and subject = ?2) or at <= ?3",
        params![secret, subject, before],
    )?;
    conn.exec(
        "delete from sign_in_locks where secret = ?1 and subject = ?2",
        params![secret, subject],
    )?;
    Ok(())
}
