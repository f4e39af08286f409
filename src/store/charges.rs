//! Charges: the invoice items of a period, of one account or of all, with
//! the domain of the request that made each.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::Result;
use crate::store::accounts::ser_time;
use crate::store::Cached;

/// One invoice item as the charges list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Charge {
    pub id: i64,
    pub request_id: i64,
    pub account_id: i64,
    pub domain: String,
    pub operation: String,
    pub kind: String,
    pub description: String,
    pub amount_cents: i64,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
}

/// The items made in `[from, to)`, of `account` or of every account,
/// oldest first, at most `limit`.
pub fn list(
    conn: &Connection,
    account: Option<i64>,
    from: Millis,
    to: Millis,
    limit: i64,
) -> Result<Vec<Charge>> {
    Ok(conn.all(
        "select i.id, i.request_id, i.account_id, r.domain, r.operation, i.kind,
                i.description, i.amount_cents, i.created_at
         from invoice_items i join requests r on r.id = i.request_id
         where i.created_at >= ?1 and i.created_at < ?2 and (?3 is null or i.account_id = ?3)
         order by i.created_at, i.id limit ?4",
        params![from, to, account, limit],
        |r| {
            Ok(Charge {
                id: r.get(0)?,
                request_id: r.get(1)?,
                account_id: r.get(2)?,
                domain: r.get(3)?,
                operation: r.get(4)?,
                kind: r.get(5)?,
                description: r.get(6)?,
                amount_cents: r.get(7)?,
                created_at: r.get(8)?,
            })
        },
    )?)
}
