//! The domain lifecycle's rows: each domain's lifecycle, auto-renew switch
//! and next step (`domains.lifecycle`, `auto_renew`, `step`, `step_at`),
//! the steps done (`domain_steps`), the accounts' auto-renew default, and
//! the notifications a step sends without a request.

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::form;
use crate::state::Operation;

use super::deliveries;
use super::notifications;

/// `step` of a domain whose steps wait for a renewal or restore to end.
pub const WAIT: &str = "wait";

/// What the lifecycle knows of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Life {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub expires_at: Millis,
    pub auto_renew: bool,
    pub lifecycle: String,
    /// None: the cycle's first step, due a fixed time before expiry.
    pub step: Option<String>,
    pub step_at: Option<Millis>,
}

macro_rules! columns {
    () => {
        "id, account_id, name, expires_at, \
         coalesce(auto_renew, (select a.auto_renew from accounts a where a.id = domains.account_id), 0), \
         lifecycle, step, step_at"
    };
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Life> {
    Ok(Life {
        id: row.get(0)?,
        account_id: row.get(1)?,
        name: row.get(2)?,
        expires_at: row.get(3)?,
        auto_renew: row.get(4)?,
        lifecycle: row.get(5)?,
        step: row.get(6)?,
        step_at: row.get(7)?,
    })
}

pub fn load(conn: &Connection, id: i64) -> Result<Life> {
    const SQL: &str = concat!("select ", columns!(), " from domains where id = ?1");
    conn.one(SQL, [id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("domain {id}")))
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<Life>> {
    const SQL: &str = concat!("select ", columns!(), " from domains where name = ?1");
    Ok(conn.one(SQL, [name], from_row).optional()?)
}

/// When the lifecycle began in a database that held domains before it had
/// one (`lifecycle_start`); none when it began with the database.
pub fn started_at(conn: &Connection) -> Result<Option<Millis>> {
    Ok(conn
        .one(
            "select started_at from lifecycle_start where id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// The domain whose step is due first, if one is due at `now`: its id and
/// when the step fell due. A scheduled step is read from `domains_due`; a
/// cycle's first step, due `first` before expiry, from `domains_fresh`.
pub fn next_due(conn: &Connection, now: Millis, first: Millis) -> Result<Option<(i64, Millis)>> {
    let scheduled: Option<(i64, Millis)> = conn
        .one(
            "select id, step_at from domains where step_at <= +?1 order by step_at, id limit 1",
            [now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let fresh: Option<(i64, Millis)> = conn
        .one(
            "select id, expires_at - ?2 from domains where step is null and expires_at <= +?1
             order by expires_at, id limit 1",
            params![now.saturating_add(first), first],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match (scheduled, fresh) {
        (Some(a), Some(b)) => Some(if (a.1, a.0) <= (b.1, b.0) { a } else { b }),
        (a, b) => a.or(b),
    })
}

/// Sets a domain's next step (`at`: none holds it until something ends).
pub fn set_step(conn: &Connection, id: i64, step: &str, at: Option<Millis>) -> Result<()> {
    conn.exec(
        "update domains set step = ?1, step_at = ?2 where id = ?3",
        params![step, at, id],
    )?;
    Ok(())
}

/// Puts a domain's due step off until `at`.
pub fn delay(conn: &Connection, id: i64, at: Millis) -> Result<()> {
    conn.exec(
        "update domains set step_at = ?1 where id = ?2",
        params![at, id],
    )?;
    Ok(())
}

pub fn set_lifecycle(conn: &Connection, id: i64, lifecycle: &str, now: Millis) -> Result<()> {
    conn.exec(
        "update domains set lifecycle = ?1, updated_at = ?2 where id = ?3",
        params![lifecycle, now, id],
    )?;
    Ok(())
}

/// A step done, as `domain_steps` keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StepDone {
    pub step: String,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub due_at: Millis,
    #[serde(serialize_with = "super::accounts::ser_time")]
    pub done_at: Millis,
    pub request_id: Option<i64>,
    pub note: Option<String>,
}

/// The steps done for a domain's cycle ending at `expires_at`, in order.
pub fn steps_done(conn: &Connection, domain_id: i64, expires_at: Millis) -> Result<Vec<StepDone>> {
    Ok(conn.all(
        "select step, due_at, done_at, request_id, note from domain_steps
         where domain_id = +?1 and expires_at = +?2 order by id",
        params![domain_id, expires_at],
        |r| {
            Ok(StepDone {
                step: r.get(0)?,
                due_at: r.get(1)?,
                done_at: r.get(2)?,
                request_id: r.get(3)?,
                note: r.get(4)?,
            })
        },
    )?)
}

/// Records a step as done; false when it was done already (nothing is
/// written then, and its effects must not happen again).
pub fn record_step(
    conn: &Connection,
    life: &Life,
    step: &str,
    due_at: Millis,
    now: Millis,
) -> Result<bool> {
    let added = conn.exec(
        "insert or ignore into domain_steps (domain_id, expires_at, step, due_at, done_at)
         values (?1, ?2, ?3, ?4, ?5)",
        params![life.id, life.expires_at, step, due_at, now],
    )?;
    Ok(added == 1)
}

/// Notes what a step did: the order it placed, a word on its outcome.
pub fn note_step(
    conn: &Connection,
    life: &Life,
    step: &str,
    request_id: Option<i64>,
    note: Option<&str>,
) -> Result<()> {
    conn.exec(
        "update domain_steps set request_id = ?1, note = ?2
         where domain_id = ?3 and expires_at = ?4 and step = ?5",
        params![request_id, note, life.id, life.expires_at, step],
    )?;
    Ok(())
}

/// Forgets the steps of a domain's earlier cycles (a renewal began a new
/// one) or, with `all`, every step of a domain that is gone.
pub fn forget_steps(conn: &Connection, domain_id: i64, before: Millis) -> Result<()> {
    conn.exec(
        "delete from domain_steps where domain_id = ?1 and expires_at < ?2",
        params![domain_id, before],
    )?;
    Ok(())
}

/// Whether a submitted renewal or restore of `name` has not ended yet.
pub fn renewal_under_way(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .one(
            "select 1 from requests where domain = ?1
               and (operation = 'renew' or operation = 'restore')
               and (state = 'review' or state = 'queued' or state = 'processing' or state = 'limbo')
             limit 1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Whether a restore of `name` waits for an operator's authorisation.
pub fn restore_in_review(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .one(
            "select 1 from requests where domain = ?1 and operation = 'restore'
               and (state = 'review' or state = 'queued' or state = 'processing')
             limit 1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The state of request `id` as stored, if it exists.
pub fn request_state(conn: &Connection, id: i64) -> Result<Option<String>> {
    Ok(conn
        .one("select state from requests where id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Tells a domain's owner about a step that no request made (a reminder,
/// the expiry), and pushes it to their webhook.
pub fn notify(
    conn: &Connection,
    life: &Life,
    action: &str,
    status: &str,
    message: &str,
    now: Millis,
) -> Result<i64> {
    let n = notifications::NewNotification {
        account_id: life.account_id,
        request_id: None,
        action,
        status,
        message: message.to_string(),
        domain: &life.name,
    };
    deliveries::notify(conn, &n, now)
}

/// Refuses (as a message) a renewal or restore the domain's lifecycle does
/// not allow, for a registry that checks again when it acts.
pub fn refusal(conn: &Connection, domain_id: i64, operation: Operation) -> Result<Option<String>> {
    let life = load(conn, domain_id)?;
    Ok(form::lifecycle_allows(operation, &life.lifecycle)
        .err()
        .map(|e| e.message()))
}

/// Sets a domain's expiry, as a domain brought in with one has it (the
/// demo's); its lifecycle starts again from there.
pub fn set_expiry(conn: &Connection, id: i64, expires_at: Millis) -> Result<()> {
    conn.exec(
        "update domains set expires_at = ?1 where id = ?2",
        params![expires_at, id],
    )?;
    Ok(())
}

pub fn set_auto_renew(conn: &Connection, id: i64, on: bool, now: Millis) -> Result<()> {
    conn.exec(
        "update domains set auto_renew = ?1, updated_at = ?2 where id = ?3",
        params![on, now, id],
    )?;
    Ok(())
}

/// An account's default `auto_renew`: its domains' that have none of their own.
pub fn account_default(conn: &Connection, account_id: i64) -> Result<bool> {
    conn.one(
        "select auto_renew from accounts where id = ?1",
        [account_id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| Error::not_found(format!("account {account_id}")))
}

pub fn set_account_default(conn: &Connection, account_id: i64, on: bool) -> Result<()> {
    conn.exec(
        "update accounts set auto_renew = ?1 where id = ?2",
        params![on, account_id],
    )?;
    Ok(())
}

/// Which domains a list or a bulk renewal is about.
#[derive(Debug, Clone, Default)]
pub struct DomainFilter {
    pub account_id: Option<i64>,
    pub lifecycle: Option<String>,
    pub expiring_before: Option<Millis>,
}

/// The names of the domains `f` selects, by name, after the cursor (a
/// name), at most `limit` and the cursor of the next page. Only the
/// filters given are in the SQL, so that each can use its index
/// (`domains_account`, `domains_lifecycle`, `domains_expiry`).
pub fn names(
    conn: &Connection,
    f: &DomainFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<String>, Option<String>)> {
    let mut sql = String::from("select name from domains where name > ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![after.unwrap_or("").to_string().into()];
    let mut add = |clause: &str, value: rusqlite::types::Value| {
        args.push(value);
        sql.push_str(&format!(" and {clause} ?{}", args.len()));
    };
    if let Some(account) = f.account_id {
        add("account_id =", account.into());
    }
    if let Some(lifecycle) = &f.lifecycle {
        add("lifecycle =", lifecycle.clone().into());
    }
    if let Some(before) = f.expiring_before {
        add("expires_at <", before.into());
    }
    // The words of the partial index's condition, for it to be used.
    if f.lifecycle.as_deref().is_some_and(|l| l != "active") {
        sql.push_str(" and lifecycle <> 'active'");
    }
    sql.push_str(" order by name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = limit.clamp(0, super::requests::MAX_LIMIT) as usize;
    let mut rows: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
        .take(limit + 1)
        .collect::<rusqlite::Result<_>>()?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().cloned()
    } else {
        None
    };
    Ok((rows, next))
}

/// An OpenSRS `DOMAIN` event, as stored.
#[derive(Debug, Clone)]
pub struct DomainEvent {
    pub event_id: String,
    pub domain: String,
    /// `EXPIRED`, `RENEWED` or `DELETED`.
    pub event: String,
    pub object_data: serde_json::Map<String, serde_json::Value>,
    pub created_at: Millis,
}

/// Records a `DOMAIN` event of `life` for its owner: OpenSRS's
/// `object_data` (the name, the id and the expiry) and `extra`.
pub fn domain_event(
    conn: &Connection,
    life: &Life,
    event: &str,
    extra: serde_json::Value,
    now: Millis,
) -> Result<()> {
    let mut data = serde_json::json!({
        "domain_name": life.name,
        "domain_id": life.id,
        "expiration_date": crate::clock::format(life.expires_at),
    });
    if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
        data.extend(extra.clone());
    }
    conn.exec(
        "insert into domain_events (event_id, account_id, domain, event, object_data, created_at)
         values (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            super::order_events::event_id(now),
            life.account_id,
            life.name,
            event,
            data.to_string(),
            now
        ],
    )?;
    Ok(())
}

/// The hook of `store::transition` for a finished request: a renewal or a
/// restore is the `RENEWED` event of its domain, with its new expiry.
pub fn on_finished(conn: &Connection, req: &super::requests::Request, now: Millis) -> Result<()> {
    if !matches!(req.operation, Operation::Renew | Operation::Restore) {
        return Ok(());
    }
    let Some(life) = by_name(conn, &req.domain)? else {
        return Ok(());
    };
    let period = form::renewal_years(req.operation, &req.params);
    domain_event(
        conn,
        &life,
        "RENEWED",
        serde_json::json!({ "period": period }),
        now,
    )
}

/// The oldest `limit` unacknowledged `DOMAIN` events of an account.
pub fn unacked_events(conn: &Connection, account_id: i64, limit: i64) -> Result<Vec<DomainEvent>> {
    let mut stmt = conn.prepare_cached(
        "select event_id, domain, event, object_data, created_at
         from domain_events indexed by domain_events_unacked
         where account_id = +?1 and acked_at is null order by id limit 100",
    )?;
    let rows = stmt
        .query_map([account_id], |r| {
            let data: String = r.get(3)?;
            Ok(DomainEvent {
                event_id: r.get(0)?,
                domain: r.get(1)?,
                event: r.get(2)?,
                object_data: serde_json::from_str(&data).unwrap_or_default(),
                created_at: r.get(4)?,
            })
        })?
        .take(limit.clamp(0, 100) as usize);
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count_unacked_events(conn: &Connection, account_id: i64) -> Result<i64> {
    Ok(conn.one(
        "select count(*) from domain_events where account_id = ?1 and acked_at is null",
        [account_id],
        |r| r.get(0),
    )?)
}

/// Acknowledges a `DOMAIN` event of `account_id`; false when the account
/// has no such event (it may be an order event).
pub fn ack_event(conn: &Connection, account_id: i64, event_id: &str, now: Millis) -> Result<bool> {
    let owner: Option<i64> = conn
        .one(
            "select account_id from domain_events where event_id = ?1",
            [event_id],
            |r| r.get(0),
        )
        .optional()?;
    if owner != Some(account_id) {
        return Ok(false);
    }
    conn.exec(
        "update domain_events set acked_at = ?1 where event_id = ?2 and acked_at is null",
        params![now, event_id],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database migrated to `version` in one run, its migrations dated
    /// `dated`, holding a domain.
    fn at_version(version: i32, dated: &str) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        refinery::Runner::new(&refinery::load_sql_migrations(dir).unwrap())
            .set_target(refinery::Target::Version(version))
            .set_grouped(true)
            .run(&mut conn)
            .unwrap();
        conn.execute(
            "update refinery_schema_history set applied_on = ?1",
            [dated],
        )
        .unwrap();
        conn.execute_batch(
            "insert into accounts (id, name, email, role, created_at)
             values (3, 'owner', 'o@example.net', 'customer', 0);
             insert into domains (id, account_id, name, status, expires_at, auth_code,
                                  contacts, nameservers, created_at, updated_at)
             values (9, 3, 'kept.example', 'active', 5, 'c0de', '{}', '[]', 1, 2);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn the_lifecycle_began_at_the_upgrade_only_where_domains_were_held_before_it() {
        // A new database: the lifecycle began with it.
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        assert_eq!(started_at(&conn).unwrap(), None);
        // A database made before the lifecycle, holding a domain: when V8 ran.
        let mut conn = at_version(7, "2020-01-01T00:00:00Z");
        let before = crate::clock::Clock::real().now();
        crate::db::migrate(&mut conn).unwrap();
        let began = started_at(&conn).unwrap().unwrap();
        let after = crate::clock::Clock::real().now();
        assert!(before - 1 <= began && began <= after + 1, "{began}");
        // A database made with the lifecycle: none, whatever it holds.
        let mut conn = at_version(11, "2026-12-07T16:42:28.372416366Z");
        crate::db::migrate(&mut conn).unwrap();
        assert_eq!(started_at(&conn).unwrap(), None);
    }
}
