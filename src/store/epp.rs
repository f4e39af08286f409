//! What the EPP face keeps: its TLS material, and the transaction ids of
//! the work requests placed through it; and the unread count its poll
//! answers carry.

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Millis;
use crate::error::Result;

/// The test CA's certificate and the server certificate and key it signed,
/// each PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
}

pub fn tls(conn: &Connection) -> Result<Option<Tls>> {
    Ok(conn
        .one(
            "select ca_cert, cert, key from epp_tls where id = 1",
            [],
            |r| {
                Ok(Tls {
                    ca_cert: r.get(0)?,
                    cert: r.get(1)?,
                    key: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Keeps `tls` unless some is kept already; answers what is kept.
pub fn keep_tls(conn: &Connection, tls: &Tls, now: Millis) -> Result<Tls> {
    conn.exec(
        "insert into epp_tls (id, ca_cert, cert, key, created_at) values (1, ?1, ?2, ?3, ?4)
         on conflict (id) do nothing",
        params![tls.ca_cert, tls.cert, tls.key, now],
    )?;
    Ok(self::tls(conn)?.unwrap_or_else(|| tls.clone()))
}

/// The ids an EPP command placing a work request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub cl_trid: Option<String>,
    pub sv_trid: String,
    /// Answered 1001: its end is told with panData.
    pub pending: bool,
}

pub fn record(conn: &Connection, request_id: i64, t: &Transaction, now: Millis) -> Result<()> {
    conn.exec(
        "insert into epp_transactions (request_id, cl_trid, sv_trid, pending, at)
         values (?1, ?2, ?3, ?4, ?5)",
        params![request_id, t.cl_trid, t.sv_trid, t.pending, now],
    )?;
    Ok(())
}

/// Marks request `request_id`'s command as answered 1001.
pub fn mark_pending(conn: &Connection, request_id: i64) -> Result<()> {
    conn.exec(
        "update epp_transactions set pending = 1 where request_id = ?1",
        [request_id],
    )?;
    Ok(())
}

pub fn transaction(conn: &Connection, request_id: i64) -> Result<Option<Transaction>> {
    Ok(conn
        .one(
            "select cl_trid, sv_trid, pending from epp_transactions where request_id = ?1",
            [request_id],
            |r| {
                Ok(Transaction {
                    cl_trid: r.get(0)?,
                    sv_trid: r.get(1)?,
                    pending: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// How many of an account's notifications are unread (kept by triggers on
/// `notifications`).
pub fn unread(conn: &Connection, account_id: i64) -> Result<i64> {
    Ok(conn
        .one(
            "select unread from unread_counts where account_id = ?1",
            [account_id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}
