//! The ticker's queries: which requests each step of a tick finds due, and
//! the attempts it schedules without a change of state.

use rusqlite::{params, Connection};

use crate::clock::Millis;
use crate::error::Result;
use crate::store::Cached;

/// What a tick looks for, one query each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Queued requests whose dependency failed.
    DependencyFailed,
    /// Queued without an exec date: oldest first.
    ClaimNow,
    /// Queued with an exec date that has come: the earliest first.
    ClaimScheduled,
    /// Processing, waiting on the provider, with no retry pending.
    Fulfil,
    /// Processing, waiting on the registry or the registrant past its time.
    WaitOver,
}

impl Due {
    pub const ALL: [Due; 5] = [
        Due::DependencyFailed,
        Due::ClaimNow,
        Due::ClaimScheduled,
        Due::Fulfil,
        Due::WaitOver,
    ];

    fn sql(self) -> &'static str {
        match self {
            Due::DependencyFailed => DUE_DEPENDENCY_FAILED,
            Due::ClaimNow => DUE_CLAIM_NOW,
            Due::ClaimScheduled => DUE_CLAIM_SCHEDULED,
            Due::Fulfil => DUE_FULFIL,
            Due::WaitOver => DUE_WAIT_OVER,
        }
    }
}

// Each query names the index it must use (SQLite refuses to prepare it
// otherwise, so a test run catches a plan that would read the whole
// table): without statistics, the planner preferred `requests_state`, and
// read every queued or processing request per query.
const DUE_DEPENDENCY_FAILED: &str = "select r.id from requests r indexed by requests_queued_deps
     where r.state = 'queued' and r.depends_on is not null
       and exists (select 1 from requests d where d.id = r.depends_on and d.state = 'failed')
     order by r.id";
const DUE_CLAIM_NOW: &str = "select r.id from requests r indexed by requests_due
     where r.state = 'queued' and r.exec_date is null
       and (r.depends_on is null
            or exists (select 1 from requests d where d.id = r.depends_on and d.state = 'finished'))
     order by r.id";
const DUE_CLAIM_SCHEDULED: &str = "select r.id from requests r indexed by requests_due
     where r.state = 'queued' and r.exec_date <= ?1
       and (r.depends_on is null
            or exists (select 1 from requests d where d.id = r.depends_on and d.state = 'finished'))
     order by r.exec_date, r.id";
const DUE_FULFIL: &str = "select id from requests indexed by requests_fulfil
     where state = 'processing' and waiting_on = 'internal'
       and (next_attempt_at is null or next_attempt_at <= ?1)
     order by id";
const DUE_WAIT_OVER: &str = "select id from requests indexed by requests_waiting
     where state = 'processing' and wait_until <= ?1
       and waiting_on in ('registry', 'registrant')
     order by wait_until, id";

/// The first `limit` ids `due` finds. The time is ?1 where the query
/// needs it, and the limit is written into the SQL: SQLite compiles a
/// statement again on every bind of a parameter its plan looked at (a
/// `limit ?`, or a `?2 is not null` that once stood in these queries).
/// The ticker asks for 1, a batch or (after a failed job) every job's
/// batches, so each query has a few cached forms.
pub fn ids(conn: &Connection, due: Due, now: Millis, limit: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(&format!("{} limit {limit}", due.sql()))?;
    let args: &[&dyn rusqlite::ToSql] = if stmt.parameter_count() == 0 {
        &[]
    } else {
        &[&now]
    };
    let ids = stmt
        .query_map(args, |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// The queued requests that may be claimed now, at most `limit`.
pub fn claims(conn: &Connection, now: Millis, limit: i64) -> Result<Vec<i64>> {
    let mut ids = self::ids(conn, Due::ClaimNow, now, limit)?;
    let left = limit as usize - ids.len().min(limit as usize);
    if left > 0 {
        ids.extend(
            self::ids(conn, Due::ClaimScheduled, now, limit)?
                .into_iter()
                .take(left),
        );
    }
    Ok(ids)
}

/// Whether any query of a tick finds a request.
pub fn anything(conn: &Connection, now: Millis) -> Result<bool> {
    for due in Due::ALL {
        if !ids(conn, due, now, 1)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Asks the provider again at `until` about processing request `id` (not a
/// change of state: the provider answers later).
pub fn defer(conn: &Connection, id: i64, until: Millis) -> Result<()> {
    conn.exec(
        "update requests set next_attempt_at = ?1 where id = ?2 and state = 'processing'",
        params![until, id],
    )?;
    Ok(())
}

/// Counts a failed attempt of processing request `id` and schedules the
/// next one at `at` (not a change of state).
pub fn retry(
    conn: &Connection,
    id: i64,
    attempts: i64,
    at: Millis,
    message: &str,
    now: Millis,
) -> Result<()> {
    conn.exec(
        "update requests set attempts = ?1, next_attempt_at = ?2, last_error = ?3,
                updated_at = ?4 where id = ?5 and state = 'processing'",
        params![attempts, at, message, now, id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// The ticker runs its queries with a new time on every tick: a plan
    /// that depends on the bound time would be compiled again each time.
    #[test]
    fn due_queries_are_compiled_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        for due in Due::ALL {
            let sql = due.sql();
            for now in [1_000, 2_000, 3_000] {
                ids(&conn, due, now, 10).unwrap();
            }
            let stmt = conn.prepare_cached(&format!("{sql} limit 10")).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }
}
