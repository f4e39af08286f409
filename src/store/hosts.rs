//! Host objects (RFC 5732): their rows, and whether a domain or an open
//! request delegates to one.

use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::store::accounts::ser_time;
use crate::store::Cached;

/// Most hosts a list answers.
pub const MAX_LIST: usize = 1000;

/// A host object of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    pub account_id: i64,
    pub addresses: Vec<IpAddr>,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
    #[serde(serialize_with = "ser_time")]
    pub updated_at: Millis,
}

macro_rules! columns {
    () => {
        "name, account_id, addresses, created_at, updated_at"
    };
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Host> {
    let addresses: String = row.get(2)?;
    Ok(Host {
        name: row.get(0)?,
        account_id: row.get(1)?,
        addresses: serde_json::from_str(&addresses).unwrap_or_default(),
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<Host>> {
    const SQL: &str = concat!("select ", columns!(), " from hosts where name = ?1");
    Ok(conn.one(SQL, [name], from_row).optional()?)
}

/// The hosts of `account_id` (every account's for `None`), by name.
pub fn list(conn: &Connection, account_id: Option<i64>) -> Result<Vec<Host>> {
    let sql = format!(
        "select {} from hosts where (?1 is null or account_id = ?1) order by name limit {MAX_LIST}",
        columns!()
    );
    Ok(conn.all(&sql, [account_id], from_row)?)
}

/// Writes `h` as a new host; `Error::Exists` when its name is taken.
pub fn insert(conn: &Connection, h: &Host) -> Result<()> {
    if get(conn, &h.name)?.is_some() {
        return Err(Error::Exists(format!("host {} exists", h.name)));
    }
    conn.exec(
        concat!(
            "insert into hosts (",
            columns!(),
            ") values (?1, ?2, ?3, ?4, ?5)"
        ),
        params![
            h.name,
            h.account_id,
            serde_json::to_string(&h.addresses)?,
            h.created_at,
            h.updated_at
        ],
    )?;
    Ok(())
}

/// Writes `h` over the host once named `old_name`.
pub fn update(conn: &Connection, old_name: &str, h: &Host) -> Result<()> {
    conn.exec(
        "update hosts set name = ?2, addresses = ?3, updated_at = ?4 where name = ?1",
        params![
            old_name,
            h.name,
            serde_json::to_string(&h.addresses)?,
            h.updated_at
        ],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, name: &str) -> Result<()> {
    conn.exec("delete from hosts where name = ?1", [name])?;
    Ok(())
}

/// The domain, or else the open request, that delegates to host `name`.
pub fn named_by(conn: &Connection, name: &str) -> Result<Option<String>> {
    first_naming(
        conn,
        "select d.name from domains d, json_each(d.nameservers) n where n.value = ?1 limit 1",
        "select r.id from requests r, json_each(r.params, '$.nameservers') n
         where r.state not in ('failed', 'finished') and n.value = ?1 limit 1",
        name,
    )
}

/// The first domain `domains` finds naming `key`, else the first request
/// `requests` finds, as "domain NAME" or "request ID".
pub(crate) fn first_naming(
    conn: &Connection,
    domains: &str,
    requests: &str,
    key: &str,
) -> Result<Option<String>> {
    let domain: Option<String> = conn.one(domains, [key], |r| r.get(0)).optional()?;
    if let Some(d) = domain {
        return Ok(Some(format!("domain {d}")));
    }
    let request: Option<i64> = conn.one(requests, [key], |r| r.get(0)).optional()?;
    Ok(request.map(|id| format!("request {id}")))
}
