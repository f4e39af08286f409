//! The portfolio of domains. Changed only by finished (or, for a release,
//! started) work requests, and every change is journalled in
//! `domain_changes` so that a request returning to its owner can undo it.

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::{Millis, DAY};
use crate::error::{Error, Result};
use crate::form;
use crate::state::Operation;

use super::requests::Request;

/// A domain of the portfolio; its JSON shape is in `store::view`.
#[derive(Debug, Clone)]
pub struct Domain {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub status: String,
    pub expires_at: Millis,
    pub transfer_lock: bool,
    pub privacy: bool,
    pub auth_code: String,
    pub contacts: Value,
    pub nameservers: Value,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The columns `from_row` reads (a literal: see `requests::columns`).
macro_rules! columns {
    () => {
        "id, account_id, name, status, expires_at, transfer_lock, privacy, auth_code, \
    contacts, nameservers, created_at, updated_at"
    };
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Domain> {
    Ok(Domain {
        // By position, in the order of `columns!`.
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
    const SQL: &str = concat!("select ", columns!(), " from domains where name = ?1");
    Ok(conn.one(SQL, [name], from_row).optional()?)
}

/// A domain's whole row as the change journal keeps it. Its fields are in
/// the order their names sort in, which is the order the journal's JSON
/// has always had (it was a JSON map, whose keys sort): old and new
/// journals read alike. A field an old entry lacks reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Snapshot {
    account_id: i64,
    auth_code: String,
    contacts: Value,
    created_at: Millis,
    expires_at: Millis,
    /// `None` for a row not written yet (its id comes with the insert).
    id: Option<i64>,
    name: String,
    nameservers: Value,
    privacy: bool,
    status: String,
    transfer_lock: bool,
    updated_at: Millis,
}

impl From<&Domain> for Snapshot {
    fn from(d: &Domain) -> Snapshot {
        Snapshot {
            account_id: d.account_id,
            auth_code: d.auth_code.clone(),
            contacts: d.contacts.clone(),
            created_at: d.created_at,
            expires_at: d.expires_at,
            id: Some(d.id),
            name: d.name.clone(),
            nameservers: d.nameservers.clone(),
            privacy: d.privacy,
            status: d.status.clone(),
            transfer_lock: d.transfer_lock,
            updated_at: d.updated_at,
        }
    }
}

/// Writes `snap` as the row of `snap.name`, replacing the row there is
/// (when `replace`: a new name has none to look for), and returns the
/// row's id. Typed rather than a JSON map: building, cloning and reading
/// the map showed in the writer's profile of fulfilments.
fn write_snapshot(conn: &Connection, snap: &Snapshot, replace: bool) -> Result<i64> {
    if replace {
        conn.exec("delete from domains where name = ?1", [&snap.name])?;
    }
    conn.exec(
        "insert into domains (id, account_id, name, status, expires_at, transfer_lock, privacy,
                              auth_code, contacts, nameservers, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            snap.id,
            snap.account_id,
            snap.name,
            snap.status,
            snap.expires_at,
            snap.transfer_lock,
            snap.privacy,
            snap.auth_code,
            snap.contacts.to_string(),
            snap.nameservers.to_string(),
            snap.created_at,
            snap.updated_at,
        ],
    )?;
    Ok(snap.id.unwrap_or_else(|| conn.last_insert_rowid()))
}

/// Journals the change `req` makes to `name` (state before and after).
fn journal(
    conn: &Connection,
    req: &Request,
    name: &str,
    before: Option<&Domain>,
    now: Millis,
) -> Result<()> {
    let after = by_name(conn, name)?.map(|d| Snapshot::from(&d));
    record_change(conn, req, name, before, after.as_ref(), now)
}

/// Journals a change whose result is known (`after`, a `snapshot`).
fn record_change(
    conn: &Connection,
    req: &Request,
    name: &str,
    before: Option<&Domain>,
    after: Option<&Snapshot>,
    now: Millis,
) -> Result<()> {
    let before = before
        .map(|d| serde_json::to_string(&Snapshot::from(d)))
        .transpose()?;
    let after = after.map(serde_json::to_string).transpose()?;
    conn.exec(
        "insert into domain_changes (request_id, domain, before, after, at) values (?1, ?2, ?3, ?4, ?5)",
        params![req.id, name, before, after, now],
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
                (Some(d), _) => add_years(d.expires_at, form::period(p)),
                (None, Operation::Transfer) => add_years(now, 1),
                (None, _) => add_years(now, form::period(p)),
            };
            // A registration may name its auth code and its lock (an EPP
            // create does); a transfer's auth code is the old holder's.
            let chosen = p.get("auth_code").and_then(Value::as_str);
            let auth_code = match chosen {
                Some(code) if req.operation != Operation::Transfer && !code.is_empty() => {
                    code.to_string()
                }
                _ => new_auth_code(name, req.id),
            };
            let mut snap = Snapshot {
                account_id: req.account_id,
                auth_code,
                contacts: p.get("contacts").cloned().unwrap_or_else(|| json!({})),
                created_at: now,
                expires_at: expires,
                id: before.as_ref().map(|d| d.id),
                name: name.to_string(),
                nameservers: p.get("nameservers").cloned().unwrap_or_else(|| json!([])),
                privacy: p.get("privacy").and_then(Value::as_bool).unwrap_or(false),
                status: "active".into(),
                transfer_lock: p
                    .get("transfer_lock")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                updated_at: now,
            };
            // The journal's "after" is the row just written: no need to
            // read it back, which was much of the portfolio's cost per
            // request.
            snap.id = Some(write_snapshot(conn, &snap, before.is_some())?);
            return record_change(conn, req, name, before.as_ref(), Some(&snap), now);
        }
        Operation::Renew | Operation::Restore => {
            let d = owned(before.as_ref(), req)?;
            conn.exec(
                "update domains set expires_at = ?1, updated_at = ?2 where id = ?3",
                params![
                    add_years(d.expires_at, form::renewal_years(req.operation, p)),
                    now,
                    d.id
                ],
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
            // A new auth code as given, or made anew when given empty.
            let auth_code = match p.get("auth_code").and_then(Value::as_str) {
                Some("") => new_auth_code(name, req.id),
                Some(code) => code.to_string(),
                None => d.auth_code.clone(),
            };
            conn.exec(
                "update domains set contacts = ?1, nameservers = ?2, transfer_lock = ?3,
                        auth_code = ?4, updated_at = ?5
                 where id = ?6",
                params![
                    contacts.to_string(),
                    nameservers.to_string(),
                    lock,
                    auth_code,
                    now,
                    d.id
                ],
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
                let snap = Snapshot {
                    name: name.clone(),
                    ..serde_json::from_str(text)?
                };
                write_snapshot(conn, &snap, true)?;
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

    /// A database with account 3 and request 7 (`operation` of
    /// `written.example`), and that request as finished.
    fn database_with(operation: Operation) -> (Connection, Request) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        conn.execute(
            "insert into accounts (id, name, email, role, created_at)
             values (3, 'owner', 'o@example.net', 'customer', 0)",
            [],
        )
        .unwrap();
        let req = Request {
            id: 7,
            account_id: 3,
            domain: "written.example".into(),
            operation,
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
        insert_request(&conn, &req);
        (conn, req)
    }

    fn insert_request(conn: &Connection, req: &Request) {
        conn.execute(
            "insert into requests (id, account_id, domain, operation, params, state, created_at, updated_at)
             values (?1, ?2, ?3, ?4, '{}', 'processing', 0, 0)",
            params![req.id, req.account_id, req.domain, req.operation.as_str()],
        )
        .unwrap();
    }

    /// A registration journals the row it wrote, as the row reads back.
    #[test]
    fn a_registration_journals_the_row_as_written() {
        let (conn, req) = database_with(Operation::Create);
        apply_finished(&conn, &req, 5_000).unwrap();
        let journalled: String = conn
            .query_row(
                "select after from domain_changes where request_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let journalled: Snapshot = serde_json::from_str(&journalled).unwrap();
        let row = by_name(&conn, "written.example").unwrap().unwrap();
        assert_eq!(journalled, Snapshot::from(&row));
    }

    /// A release that does not finish gives the row back as it was, every
    /// field of it, from the journal.
    #[test]
    fn an_undone_release_restores_the_row() {
        let (conn, registration) = database_with(Operation::Create);
        apply_finished(&conn, &registration, 5_000).unwrap();
        let registered = by_name(&conn, "written.example").unwrap().unwrap();
        let release = Request {
            id: 8,
            operation: Operation::Release,
            ..registration
        };
        insert_request(&conn, &release);
        start_release(&conn, &release, 9_000).unwrap();
        let pending = by_name(&conn, "written.example").unwrap().unwrap();
        assert_eq!(pending.status, "pending_release");
        assert_eq!(undo_changes(&conn, 8).unwrap(), 1);
        let restored = by_name(&conn, "written.example").unwrap().unwrap();
        assert_eq!(Snapshot::from(&restored), Snapshot::from(&registered));
    }

    /// The journal's text is what it was when it was a JSON map of the
    /// row, so journals written before read alike, and undo restores them.
    #[test]
    fn a_snapshot_is_written_as_the_journal_always_had_it() {
        let d = Domain {
            id: 4,
            account_id: 3,
            name: "kept.example".into(),
            status: "on_hold".into(),
            expires_at: 9_000,
            transfer_lock: false,
            privacy: true,
            auth_code: "c0de".into(),
            contacts: json!({"owner": {"name": "O", "email": "o@example.net"}}),
            nameservers: json!(["ns1.example.net", "ns2.example.net"]),
            created_at: 1_000,
            updated_at: 2_000,
        };
        let as_a_map = json!({
            "id": d.id, "account_id": d.account_id, "name": d.name, "status": d.status,
            "expires_at": d.expires_at, "transfer_lock": d.transfer_lock, "privacy": d.privacy,
            "auth_code": d.auth_code, "contacts": d.contacts, "nameservers": d.nameservers,
            "created_at": d.created_at, "updated_at": d.updated_at,
        })
        .to_string();
        let snap = Snapshot::from(&d);
        assert_eq!(serde_json::to_string(&snap).unwrap(), as_a_map);
        assert_eq!(serde_json::from_str::<Snapshot>(&as_a_map).unwrap(), snap);
    }
}
