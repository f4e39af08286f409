//! Work requests: reading them, listing them with filters and cursors, and
//! what hangs off them (annotations, history, invoice items). State changes
//! are not here: they go through `store::transition`.

use crate::store::Cached;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::state::{Failure, Operation, State, WaitingOn};

use super::{enum_col, json_col, opt_enum_col};

/// Largest page of a list.
pub const MAX_LIMIT: i64 = 500;
pub const DEFAULT_LIMIT: i64 = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: i64,
    pub account_id: i64,
    pub domain: String,
    pub operation: Operation,
    pub params: Value,
    pub state: State,
    pub waiting_on: Option<WaitingOn>,
    pub failure: Option<Failure>,
    pub missing: Vec<String>,
    pub exec_date: Option<Millis>,
    pub depends_on: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: Option<Millis>,
    pub wait_until: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The columns `from_row` reads, as a literal so that hot statements are
/// put together at compile time (`concat!`) rather than formatted per call.
macro_rules! columns {
    () => {
        "id, account_id, domain, operation, params, state, waiting_on, \
    failure, missing, exec_date, depends_on, attempts, next_attempt_at, wait_until, last_error, \
    created_at, updated_at"
    };
}

pub(crate) const COLUMNS: &str = columns!();

pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Request> {
    // By position, in the order of `COLUMNS`.
    let missing = json_col(row, 8)?;
    Ok(Request {
        id: row.get(0)?,
        account_id: row.get(1)?,
        domain: row.get(2)?,
        operation: enum_col(row, 3)?,
        params: json_col(row, 4)?,
        state: enum_col(row, 5)?,
        waiting_on: opt_enum_col(row, 6)?,
        failure: opt_enum_col(row, 7)?,
        missing: missing
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        exec_date: row.get(9)?,
        depends_on: row.get(10)?,
        attempts: row.get(11)?,
        next_attempt_at: row.get(12)?,
        wait_until: row.get(13)?,
        last_error: row.get(14)?,
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
    })
}

/// The request `id`, whoever owns it.
pub fn load(conn: &Connection, id: i64) -> Result<Request> {
    const SQL: &str = concat!("select ", columns!(), " from requests where id = ?1");
    conn.one(SQL, [id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("request {id}")))
}

/// The request `id` if `account` may see it (operators see every request).
/// Another account's request is "not found", never "forbidden".
pub fn visible(conn: &Connection, id: i64, account_id: i64, operator: bool) -> Result<Request> {
    let req = load(conn, id)?;
    if operator || req.account_id == account_id {
        Ok(req)
    } else {
        Err(Error::not_found(format!("request {id}")))
    }
}

/// A new request in no state yet: the caller records its creation.
pub struct NewRequest {
    pub account_id: i64,
    pub domain: String,
    pub operation: Operation,
    pub params: Value,
    pub exec_date: Option<Millis>,
    pub depends_on: Option<i64>,
}

/// Inserts `req` as it is (its `id` aside) and returns it with the id it
/// got, as written (not read back). Only `store::transition` calls this.
pub(super) fn insert(conn: &Connection, mut req: Request) -> Result<Request> {
    conn.exec(
        "insert into requests (account_id, domain, operation, params, state, waiting_on, failure,
                               missing, exec_date, depends_on, attempts, next_attempt_at,
                               wait_until, last_error, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            req.account_id,
            req.domain,
            req.operation.as_str(),
            req.params.to_string(),
            req.state.as_str(),
            req.waiting_on.map(WaitingOn::as_str),
            req.failure.map(Failure::as_str),
            missing_text(&req.missing),
            req.exec_date,
            req.depends_on,
            req.attempts,
            req.next_attempt_at,
            req.wait_until,
            req.last_error,
            req.created_at,
            req.updated_at
        ],
    )?;
    req.id = conn.last_insert_rowid();
    // As the row reads back (the integration tests run a debug build).
    debug_assert_eq!(Some(&req), load(conn, req.id).ok().as_ref());
    Ok(req)
}

/// The `missing` column's text: the fields as a JSON array.
pub(super) fn missing_text(missing: &[String]) -> String {
    serde_json::Value::from(missing).to_string()
}

/// The request `new` makes, in state `new`, before it has an id.
pub(super) fn unsaved(new: &NewRequest, now: Millis) -> Request {
    Request {
        id: 0,
        account_id: new.account_id,
        domain: new.domain.clone(),
        operation: new.operation,
        params: new.params.clone(),
        state: State::New,
        waiting_on: None,
        failure: None,
        missing: Vec::new(),
        exec_date: new.exec_date,
        depends_on: new.depends_on,
        attempts: 0,
        next_attempt_at: None,
        wait_until: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

/// A filter over one column: the values it must, or must not, hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub states: Vec<State>,
    pub not_states: Vec<State>,
    pub operations: Vec<Operation>,
    pub not_operations: Vec<Operation>,
    pub domain: Option<String>,
    pub not_domain: Option<String>,
    pub domain_prefix: Option<String>,
    pub domain_contains: Option<String>,
    pub account_id: Option<i64>,
    pub not_account_id: Option<i64>,
    pub waiting_on: Option<WaitingOn>,
    /// Requests created before this (for cancel-pending).
    pub created_before: Option<Millis>,
    /// The one request with this id.
    pub id: Option<i64>,
    /// Requests the task face shows with this `state::task_status`.
    pub task_status: Option<&'static str>,
    /// Requests whose exec date is after this (scheduled ones).
    pub exec_after: Option<Millis>,
}

/// The SQL condition on `state`, `waiting_on` and `failure` that selects the
/// requests `state::task_status` shows as `status`, so that a task-status
/// filter pages in the database (a unit test checks both agree on every
/// case). A status no request shows selects none.
fn task_status_sql(status: &str) -> &'static str {
    match status {
        "SUCCESS" => "state = 'finished'",
        "PENDING_INT" => {
            "(state in ('new', 'review', 'queued', 'limbo') or (state = 'processing' \
             and coalesce(waiting_on, '') not in ('registry', 'registrant')))"
        }
        "PENDING_EXT" => "(state = 'processing' and waiting_on in ('registry', 'registrant'))",
        "FAILED_EXT" => "(state = 'failed' and failure = 'registry')",
        "FAILED_INT" => {
            "(state = 'incomplete' or (state = 'failed' and coalesce(failure, '') <> 'registry'))"
        }
        _ => "0",
    }
}

/// Escapes `%`, `_` and `\` for a `like ... escape '\'` pattern.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Filter {
    /// The `where` clause and its arguments.
    fn sql(&self, args: &mut Vec<SqlValue>) -> String {
        let mut clauses: Vec<String> = Vec::new();
        // States and operations are written into the SQL, not bound: they
        // come from a closed set, and SQLite compiles a statement again on
        // every bind of a parameter compared with `state`, which partial
        // indexes name (see `store::literal`).
        let mut list = |col: &str, neg: bool, values: Vec<String>, _: &mut Vec<SqlValue>| {
            if values.is_empty() {
                return;
            }
            let op = if neg { "not in" } else { "in" };
            let values: Vec<String> = values.iter().map(|v| super::literal(v)).collect();
            clauses.push(format!("{col} {op} ({})", values.join(", ")));
        };
        list(
            "state",
            false,
            self.states.iter().map(|s| s.to_string()).collect(),
            args,
        );
        list(
            "state",
            true,
            self.not_states.iter().map(|s| s.to_string()).collect(),
            args,
        );
        list(
            "operation",
            false,
            self.operations.iter().map(|s| s.to_string()).collect(),
            args,
        );
        list(
            "operation",
            true,
            self.not_operations.iter().map(|s| s.to_string()).collect(),
            args,
        );
        if let Some(d) = &self.domain {
            clauses.push("domain = +?".into());
            args.push(SqlValue::Text(d.clone()));
        }
        if let Some(d) = &self.not_domain {
            clauses.push("domain <> ?".into());
            args.push(SqlValue::Text(d.clone()));
        }
        if let Some(p) = &self.domain_prefix {
            // A range, so the domain index serves it.
            clauses.push("domain >= ? and domain < ?".into());
            args.push(SqlValue::Text(p.clone()));
            args.push(SqlValue::Text(format!("{p}\u{10FFFF}")));
        }
        if let Some(c) = &self.domain_contains {
            clauses.push("domain like ? escape '\\'".into());
            args.push(SqlValue::Text(format!("%{}%", like_escape(c))));
        }
        if let Some(a) = self.account_id {
            clauses.push("account_id = +?".into());
            args.push(SqlValue::Integer(a));
        }
        if let Some(a) = self.not_account_id {
            clauses.push("account_id <> ?".into());
            args.push(SqlValue::Integer(a));
        }
        if let Some(w) = self.waiting_on {
            clauses.push(format!("waiting_on = {}", super::literal(w.as_str())));
        }
        if let Some(t) = self.created_before {
            clauses.push("created_at < ?".into());
            args.push(SqlValue::Integer(t));
        }
        if let Some(id) = self.id {
            clauses.push("id = ?".into());
            args.push(SqlValue::Integer(id));
        }
        if let Some(status) = self.task_status {
            clauses.push(task_status_sql(status).into());
        }
        if let Some(t) = self.exec_after {
            clauses.push("exec_date > ?".into());
            args.push(SqlValue::Integer(t));
        }
        if clauses.is_empty() {
            "1".into()
        } else {
            clauses.join(" and ")
        }
    }
}

/// One page of requests matching `filter`, newest first, starting after the
/// cursor `after` (a request id). Returns the page and the next cursor.
pub fn list(
    conn: &Connection,
    filter: &Filter,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<Request>, Option<i64>)> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut args = Vec::new();
    let mut where_ = filter.sql(&mut args);
    if let Some(after) = after {
        // With a domain prefix the domain index must serve the range: given a
        // bare rowid bound, SQLite walked the table backwards from the cursor,
        // slowing later pages of a large desk. `+id` keeps it off.
        if filter.domain_prefix.is_some() {
            where_.push_str(" and +id < ?");
        } else {
            where_.push_str(" and id < ?");
        }
        args.push(SqlValue::Integer(after));
    }
    // The page's ids first, from an index alone, then their rows: given a
    // range of domains, SQLite read every matching row whole to sort them.
    // The largest page is written into the SQL and the page cut short
    // here: a bound `limit ?` made SQLite compile the statement again on
    // every call.
    let sql = format!(
        "select {COLUMNS} from requests where id in
           (select id from requests where {where_} order by id desc limit {})
         order by id desc",
        MAX_LIMIT + 1
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), from_row)?;
    Ok(super::page(rows, limit, |r: &Request| r.id)?)
}

/// Every id matching `filter` (bounded), oldest first: for bulk actions.
pub fn ids(conn: &Connection, filter: &Filter, max: i64) -> Result<Vec<i64>> {
    let mut args = Vec::new();
    let where_ = filter.sql(&mut args);
    let sql = format!("select id from requests where {where_} order by id limit {max}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let ids = stmt
        .query_map(params_from_iter(args), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Up to `max` requests matching `filter`, soonest exec date first (the
/// scheduled list).
pub fn by_exec_date(conn: &Connection, filter: &Filter, max: i64) -> Result<Vec<Request>> {
    let mut args = Vec::new();
    let where_ = filter.sql(&mut args);
    let sql =
        format!("select {COLUMNS} from requests where {where_} order by exec_date, id limit {max}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args), from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The owner's other unsubmitted requests for the same operation on the
/// same name as `r`, which `r`, submitted, supersedes.
pub fn duplicates(conn: &Connection, r: &Request) -> Result<Vec<i64>> {
    // By domain: the planner chose `requests_operation` and read every
    // request of the operation, so each submit took longer than the last.
    // `+?`: see `store::literal`.
    Ok(conn.all(
        "select id from requests indexed by requests_domain
         where account_id = +?1 and domain = +?2 and operation = +?3
           and state in ('new', 'incomplete') and id <> ?4 order by id",
        params![r.account_id, r.domain, r.operation.as_str(), r.id],
        |row| row.get(0),
    )?)
}

/// Writes a request's order form (a patch); its state does not change here.
pub fn update_form(
    conn: &Connection,
    id: i64,
    params: &Value,
    exec_date: Option<Millis>,
    depends_on: Option<i64>,
) -> Result<()> {
    conn.exec(
        "update requests set params = ?1, exec_date = ?2, depends_on = ?3 where id = ?4",
        params![params.to_string(), exec_date, depends_on, id],
    )?;
    Ok(())
}

/// The highest transition id, of one account's requests or of all: where
/// an event feed that wants only what happens next starts.
pub fn latest_transition(conn: &Connection, account_id: Option<i64>) -> Result<i64> {
    Ok(conn.query_row(
        "select coalesce(max(id), 0) from transitions where (?1 is null or account_id = ?1)",
        [account_id],
        |r| r.get(0),
    )?)
}

/// One entry of the event feed: a transition with its request's name.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub request_id: i64,
    pub account_id: i64,
    pub domain: String,
    pub operation: String,
    pub step: HistoryEntry,
}

/// Up to `limit` transitions after `after`, oldest first, of one account or
/// of all.
pub fn feed(
    conn: &Connection,
    after: i64,
    account_id: Option<i64>,
    limit: i64,
) -> Result<Vec<FeedEntry>> {
    let mut stmt = conn.prepare_cached(
        "select t.id, t.request_id, t.account_id, r.domain, r.operation, t.from_state, t.to_state,
                t.event, t.actor, t.reason, t.at
         from transitions t join requests r on r.id = t.request_id
         where t.id > ?1 and (?2 is null or t.account_id = ?2) order by t.id limit 500",
    )?;
    // The page size is cut here, not bound (see `store::literal`).
    let items = stmt
        .query_map(params![after, account_id], |r| {
            Ok(FeedEntry {
                request_id: r.get(1)?,
                account_id: r.get(2)?,
                domain: r.get(3)?,
                operation: r.get(4)?,
                step: HistoryEntry {
                    id: r.get(0)?,
                    from: r.get(5)?,
                    to: r.get(6)?,
                    event: r.get(7)?,
                    actor: r.get(8)?,
                    reason: r.get(9)?,
                    at: r.get(10)?,
                },
            })
        })?
        .take(usize::try_from(limit).unwrap_or(0))
        .collect::<rusqlite::Result<_>>()?;
    Ok(items)
}

#[derive(Debug, Clone, Serialize)]
pub struct Annotation {
    // In alphabetical order, as in a `serde_json::Value`, so that a request
    // written directly reads as one made a `Value` first.
    pub actor: String,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub at: Millis,
    pub text: String,
}

pub fn add_annotation(
    conn: &Connection,
    request_id: i64,
    actor: &str,
    text: &str,
    now: Millis,
) -> Result<()> {
    conn.exec(
        "insert into annotations (request_id, actor, text, at) values (?1, ?2, ?3, ?4)",
        params![request_id, actor, text, now],
    )?;
    Ok(())
}

/// The annotations of several requests at once, by request id.
pub fn annotations(conn: &Connection, ids: &[i64]) -> Result<Vec<(i64, Annotation)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The ids go in as one JSON array, so that every page size shares one
    // cached statement (a list of `?` was a statement compiled per page).
    let ids = serde_json::to_string(ids)?;
    Ok(conn.all(
        "select request_id, actor, text, at from annotations
         where request_id in (select value from json_each(?1)) order by id",
        [ids],
        |r| {
            Ok((
                r.get(0)?,
                Annotation {
                    actor: r.get(1)?,
                    text: r.get(2)?,
                    at: r.get(3)?,
                },
            ))
        },
    )?)
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub from: Option<String>,
    pub to: String,
    pub event: String,
    pub actor: String,
    pub reason: Option<String>,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub at: Millis,
}

pub fn history(conn: &Connection, request_id: i64) -> Result<Vec<HistoryEntry>> {
    // `+?1`: see `store::literal`.
    Ok(conn.all(
        "select id, from_state, to_state, event, actor, reason, at from transitions
         where request_id = +?1 order by id",
        [request_id],
        |r| {
            Ok(HistoryEntry {
                id: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                event: r.get(3)?,
                actor: r.get(4)?,
                reason: r.get(5)?,
                at: r.get(6)?,
            })
        },
    )?)
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceItem {
    pub id: i64,
    pub request_id: i64,
    pub kind: String,
    pub description: String,
    pub amount_cents: i64,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub created_at: Millis,
}

/// The id of the transition by which `request_id` last entered
/// processing from another state (a retry within processing keeps it).
pub fn entered_processing(conn: &Connection, request_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "select max(id) from transitions where request_id = ?1 and to_state = 'processing'
             and (from_state is null or from_state != 'processing')",
            [request_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

pub fn invoice_items(conn: &Connection, request_id: i64) -> Result<Vec<InvoiceItem>> {
    Ok(conn.all(
        "select id, request_id, kind, description, amount_cents, created_at
         from invoice_items where request_id = +?1 order by id",
        [request_id],
        |r| {
            Ok(InvoiceItem {
                id: r.get(0)?,
                request_id: r.get(1)?,
                kind: r.get(2)?,
                description: r.get(3)?,
                amount_cents: r.get(4)?,
                created_at: r.get(5)?,
            })
        },
    )?)
}

/// The newest request of `account_id` for `domain` that is not finished or
/// failed: the "open order" of a domain.
pub fn open_order(conn: &Connection, account_id: i64, domain: &str) -> Result<Option<Request>> {
    let sql = format!(
        "select {COLUMNS} from requests where domain = +?1 and account_id = +?2
         and state not in ('failed', 'finished') order by id desc limit 1"
    );
    Ok(conn
        .one(&sql, params![domain, account_id], from_row)
        .optional()?)
}

/// Counts of requests by state, for metrics and the UI.
pub fn count_by_state(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached("select state, count(*) from requests group by state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{self, Failure, State, WaitingOn};

    /// The task-status filter selects exactly the requests
    /// `state::task_status` shows with that status, for every (state,
    /// waiting_on, failure).
    #[test]
    fn status_conditions_agree_with_task_status() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "create table requests (id integer primary key, state text, waiting_on text, failure text)",
        )
        .unwrap();
        let mut cases = Vec::new();
        let waits: Vec<Option<WaitingOn>> = std::iter::once(None)
            .chain(WaitingOn::ALL.iter().copied().map(Some))
            .collect();
        let failures: Vec<Option<Failure>> = std::iter::once(None)
            .chain(Failure::ALL.iter().copied().map(Some))
            .collect();
        for s in State::ALL {
            for w in &waits {
                for f in &failures {
                    conn.execute(
                        "insert into requests (state, waiting_on, failure) values (?1, ?2, ?3)",
                        rusqlite::params![s.as_str(), w.map(|w| w.as_str()), f.map(|f| f.as_str())],
                    )
                    .unwrap();
                    cases.push((conn.last_insert_rowid(), state::task_status(*s, *w, *f)));
                }
            }
        }
        for status in [
            "SUCCESS",
            "PENDING_INT",
            "FAILED_INT",
            "PENDING_EXT",
            "FAILED_EXT",
        ] {
            let sql = format!(
                "select id from requests where {} order by id",
                task_status_sql(status)
            );
            let mut stmt = conn.prepare(&sql).unwrap();
            let got: Vec<i64> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let want: Vec<i64> = cases
                .iter()
                .filter(|(_, s)| *s == status)
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(got, want, "{status}");
            assert!(!want.is_empty(), "{status}");
        }
    }
}
