//! The portfolio of domains. Changed only by finished (or, for a release,
//! started) work requests, and every change is journalled in
//! `domain_changes` so that a request returning to its owner can undo it.

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::{Millis, DAY};
use crate::error::{Error, Result};
use crate::form;
use crate::state::Operation;

use super::requests::Request;

#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub status: String,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub expires_at: Millis,
    pub transfer_lock: bool,
    pub privacy: bool,
    #[serde(skip)]
    pub auth_code: String,
    pub contacts: Value,
    pub nameservers: Value,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub created_at: Millis,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub updated_at: Millis,
}

const COLUMNS: &str =
    "id, account_id, name, status, expires_at, transfer_lock, privacy, auth_code, \
    contacts, nameservers, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Domain> {
    Ok(Domain {
        // By position, in the order of `COLUMNS`.
        id: row.get(0)?,
        account_id: row.get(1)?,
        name: row.get(2)?,
        status: row.get(3)?,
        expires_at: row.get(4)?,
        transfer_lock: row.get(5)?,
        privacy: row.get(6)?,
        auth_code: row.get(7)?,
        contacts: super::json_col(row, 8)?,
        nameservers: super::json_col(row, 9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<Domain>> {
    let sql = format!("select {COLUMNS} from domains where name = ?1");
    Ok(conn.one(&sql, [name], from_row).optional()?)
}

/// A page of the portfolio, by name, after the cursor (a name).
pub fn list(
    conn: &Connection,
    account_id: Option<i64>,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<Domain>, Option<String>)> {
    let sql = format!(
        "select {COLUMNS} from domains where (?1 is null or account_id = ?1) and name > ?2
         order by name limit {}",
        super::requests::MAX_LIMIT + 1
    );
    // The page size is cut here, not bound (see `store::literal`).
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows: Vec<Domain> = stmt
        .query_map(params![account_id, after.unwrap_or("")], from_row)?
        .take(limit.clamp(0, super::requests::MAX_LIMIT) as usize + 1)
        .collect::<rusqlite::Result<_>>()?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|d| d.name.clone())
    } else {
        None
    };
    Ok((rows, next))
}

/// The whole row as JSON, for the change journal.
fn snapshot(d: &Domain) -> Value {
    json!({
        "id": d.id, "account_id": d.account_id, "name": d.name, "status": d.status,
        "expires_at": d.expires_at, "transfer_lock": d.transfer_lock, "privacy": d.privacy,
        "auth_code": d.auth_code, "contacts": d.contacts, "nameservers": d.nameservers,
        "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

/// Writes `snap` as the row of `name`, replacing the row there is (when
/// `replace`: a new name has none to look for).
fn write_snapshot(conn: &Connection, name: &str, snap: &Value, replace: bool) -> Result<()> {
    // Read in place: cloning each field (contacts included) was a tenth of
    // a registration's portfolio write (perf, B3).
    let field = |k: &str| snap.get(k).unwrap_or(&Value::Null);
    let text = |k: &str| field(k).as_str().unwrap_or_default();
    let int = |k: &str| field(k).as_i64().unwrap_or_default();
    let flag = |k: &str| field(k).as_bool().unwrap_or_default();
    if replace {
        conn.exec("delete from domains where name = ?1", [name])?;
    }
    conn.exec(
        "insert into domains (id, account_id, name, status, expires_at, transfer_lock, privacy,
                              auth_code, contacts, nameservers, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            field("id").as_i64(),
            int("account_id"),
            name,
            text("status"),
            int("expires_at"),
            flag("transfer_lock"),
            flag("privacy"),
            text("auth_code"),
            field("contacts").to_string(),
            field("nameservers").to_string(),
            int("created_at"),
            int("updated_at"),
        ],
    )?;
    Ok(())
}

/// Journals the change `req` makes to `name` (state before and after).
fn journal(
    conn: &Connection,
    req: &Request,
    name: &str,
    before: Option<&Domain>,
    now: Millis,
) -> Result<()> {
    let after = by_name(conn, name)?.map(|d| snapshot(&d));
    record_change(conn, req, name, before, after.as_ref(), now)
}

/// Journals a change whose result is known (`after`, a `snapshot`).
fn record_change(
    conn: &Connection,
    req: &Request,
    name: &str,
    before: Option<&Domain>,
    after: Option<&Value>,
    now: Millis,
) -> Result<()> {
    conn.exec(
        "insert into domain_changes (request_id, domain, before, after, at) values (?1, ?2, ?3, ?4, ?5)",
        params![
            req.id,
            name,
            before.map(|d| snapshot(d).to_string()),
            after.map(Value::to_string),
            now
        ],
    )?;
    Ok(())
}

/// The auth code of a newly registered or transferred name: derived, so that
/// runs with the same inputs give the same codes.
fn new_auth_code(name: &str, request_id: i64) -> String {
    let digest = Sha256::digest(format!("{name}/{request_id}").as_bytes());
    hex::encode(&digest[..6])
}

fn add_years(ms: Millis, years: i64) -> Millis {
    ms + years * 365 * DAY
}

/// Applies what a finished request does to the portfolio.
pub fn apply_finished(conn: &Connection, req: &Request, now: Millis) -> Result<()> {
    let name = req.domain.as_str();
    let before = by_name(conn, name)?;
    let p = &req.params;
    match req.operation {
        Operation::Create | Operation::Backorder | Operation::Transfer => {
            if let Some(existing) = &before {
                if existing.account_id == req.account_id || req.operation != Operation::Transfer {
                    return Err(Error::Conflict(format!("{name} is already registered")));
                }
            }
            let expires = match (&before, req.operation) {
                (Some(d), _) => add_years(d.expires_at, 1),
                (None, Operation::Transfer) => add_years(now, 1),
                (None, _) => add_years(now, form::period(p)),
            };
            let snap = json!({
                "id": before.as_ref().map(|d| d.id),
                "account_id": req.account_id, "status": "active", "expires_at": expires,
                "transfer_lock": true,
                "privacy": p.get("privacy").and_then(Value::as_bool).unwrap_or(false),
                "auth_code": new_auth_code(name, req.id),
                "contacts": p.get("contacts").cloned().unwrap_or_else(|| json!({})),
                "nameservers": p.get("nameservers").cloned().unwrap_or_else(|| json!([])),
                "created_at": now, "updated_at": now,
            });
            write_snapshot(conn, name, &snap, before.is_some())?;
            // The journal's "after" is the row just written: no need to
            // read it back (a third of the portfolio's cost per request in
            // perf profiles of the ticker).
            let mut after = snap;
            after["id"] = json!(before
                .as_ref()
                .map_or_else(|| conn.last_insert_rowid(), |d| d.id));
            after["name"] = json!(name);
            return record_change(conn, req, name, before.as_ref(), Some(&after), now);
        }
        Operation::Renew => {
            let d = owned(before.as_ref(), req)?;
            conn.exec(
                "update domains set expires_at = ?1, updated_at = ?2 where id = ?3",
                params![add_years(d.expires_at, form::period(p)), now, d.id],
            )?;
        }
        Operation::Update => {
            let d = owned(before.as_ref(), req)?;
            let contacts = p
                .get("contacts")
                .cloned()
                .unwrap_or_else(|| d.contacts.clone());
            let nameservers = p
                .get("nameservers")
                .cloned()
                .unwrap_or_else(|| d.nameservers.clone());
            let lock = p
                .get("transfer_lock")
                .and_then(Value::as_bool)
                .unwrap_or(d.transfer_lock);
            conn.exec(
                "update domains set contacts = ?1, nameservers = ?2, transfer_lock = ?3, updated_at = ?4
                 where id = ?5",
                params![contacts.to_string(), nameservers.to_string(), lock, now, d.id],
            )?;
        }
        Operation::Release | Operation::Delete => {
            let d = owned(before.as_ref(), req)?;
            conn.exec("delete from domains where id = ?1", [d.id])?;
        }
        Operation::Hold => {
            let d = owned(before.as_ref(), req)?;
            conn.exec(
                "update domains set status = 'on_hold', updated_at = ?1 where id = ?2",
                params![now, d.id],
            )?;
        }
        Operation::Privacy => {
            let d = owned(before.as_ref(), req)?;
            let on = p.get("privacy").and_then(Value::as_bool).unwrap_or(true);
            conn.exec(
                "update domains set privacy = ?1, updated_at = ?2 where id = ?3",
                params![on, now, d.id],
            )?;
        }
    }
    journal(conn, req, name, before.as_ref(), now)
}

/// Marks a domain whose release has started.
pub fn start_release(conn: &Connection, req: &Request, now: Millis) -> Result<()> {
    let before = by_name(conn, &req.domain)?;
    let d = owned(before.as_ref(), req)?;
    conn.exec(
        "update domains set status = 'pending_release', updated_at = ?1 where id = ?2",
        params![now, d.id],
    )?;
    journal(conn, req, &req.domain, before.as_ref(), now)
}

fn owned<'a>(domain: Option<&'a Domain>, req: &Request) -> Result<&'a Domain> {
    domain
        .filter(|d| d.account_id == req.account_id)
        .ok_or_else(|| Error::Conflict(format!("{} is not in the portfolio", req.domain)))
}

/// Undoes every portfolio change `request_id` made, newest first, and
/// forgets them (idempotent return, seed 000).
pub fn undo_changes(conn: &Connection, request_id: i64) -> Result<usize> {
    let changes: Vec<(String, Option<String>)> = conn.all(
        "select domain, before from domain_changes where request_id = +?1 order by id desc",
        [request_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (name, before) in &changes {
        match before {
            None => {
                conn.exec("delete from domains where name = ?1", [name])?;
            }
            Some(text) => {
                let snap: Value = serde_json::from_str(text)?;
                write_snapshot(conn, name, &snap, true)?;
            }
        }
    }
    conn.exec(
        "delete from domain_changes where request_id = ?1",
        [request_id],
    )?;
    Ok(changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    /// A registration journals the row it wrote, as the row reads back.
    #[test]
    fn a_registration_journals_the_row_as_written() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "insert into accounts (id, name, email, role, created_at)
             values (3, 'owner', 'o@example.net', 'customer', 0);
             insert into requests (id, account_id, domain, operation, params, state, created_at, updated_at)
             values (7, 3, 'written.example', 'create', '{}', 'processing', 0, 0);",
        )
        .unwrap();
        let req = Request {
            id: 7,
            account_id: 3,
            domain: "written.example".into(),
            operation: Operation::Create,
            params: json!({"period": 2, "privacy": true,
                           "contacts": {"owner": {"name": "O", "email": "o@example.net"}},
                           "nameservers": ["ns1.example.net"]}),
            state: State::Finished,
            waiting_on: None,
            failure: None,
            missing: Vec::new(),
            exec_date: None,
            depends_on: None,
            attempts: 0,
            next_attempt_at: None,
            wait_until: None,
            last_error: None,
            created_at: 1_000,
            updated_at: 1_000,
        };
        apply_finished(&conn, &req, 5_000).unwrap();
        let journalled: String = conn
            .query_row(
                "select after from domain_changes where request_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let journalled: Value = serde_json::from_str(&journalled).unwrap();
        let row = by_name(&conn, "written.example").unwrap().unwrap();
        assert_eq!(journalled, snapshot(&row));
    }
}
