//! SQL for everything regdesk keeps: one module per kind of row. Every
//! function takes a `&Connection` so it can run on a reader or inside the
//! writer's transaction.

pub mod accounts;
pub mod admin;
pub mod charges;
pub mod contacts;
pub mod credentials;
pub mod deliveries;
pub mod domains;
pub mod due;
pub mod epp;
pub mod hosts;
pub mod idempotency;
pub mod lifecycle;
pub mod notifications;
pub mod order_events;
pub mod requests;
pub mod sessions;
pub mod simulated;
pub mod transfers;
pub mod transition;
pub mod view;

use std::str::FromStr;

use rusqlite::Row;

/// The connection a transaction runs on: the desk hands it from one store
/// function to the next, so that a use case's reads and writes share the
/// transaction, without touching SQL itself.
pub use rusqlite::Connection;

use crate::error::{Error, Result};

/// The database's errors as regdesk's, mapped here at the storage
/// boundary: a missing row is not found, a full disk is its own error.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NotFound("row".into()),
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull => {
                Error::StorageFull
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

// Rows are read by column position, in the order of each module's
// `COLUMNS`: a lookup by name compares the name with every column's, and
// showed in profiles of the ticker.

fn conversion_error(row: &Row<'_>, idx: usize, detail: String) -> rusqlite::Error {
    let name = row.as_ref().column_name(idx).unwrap_or("?");
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("column {name}: {detail}").into(),
    )
}

/// Reads a column holding one of the `string_enum!` values.
pub(crate) fn enum_col<T: FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|_| conversion_error(row, idx, format!("unexpected value {text:?}")))
}

/// Reads a nullable column holding one of the `string_enum!` values.
pub(crate) fn opt_enum_col<T: FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| {
        t.parse()
            .map_err(|_| conversion_error(row, idx, format!("unexpected value {t:?}")))
    })
    .transpose()
}

/// Reads a column holding JSON text.
pub(crate) fn json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    let text = row.get_ref(idx)?.as_str()?;
    serde_json::from_str(text).map_err(|e| conversion_error(row, idx, e.to_string()))
}

/// A value from a closed set (a state, an operation), quoted to be written
/// into SQL text rather than bound.
///
/// SQLite 3.54 compiles a statement again whenever a parameter that its
/// plan looked at is bound to a new value: a `limit ?`, and in a query with
/// an `order by`, a bare `column = ?` on an indexed column (tests:
/// `ticker::tests`). The statement cache saves nothing for such statements.
/// So hot statements write values from a closed set in with this, write
/// page sizes in as constants (and stop reading early), and compare other
/// parameters as `column = +?`, an expression the planner does not look
/// into, which still uses the index.
pub(crate) fn literal(value: &str) -> String {
    debug_assert!(
        value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{value:?} is not from a closed set"
    );
    format!("'{}'", value.replace('\'', "''"))
}

/// A page of at most `limit` rows from `rows` (read in page order), and
/// the id to continue after when there are more. One row past the page is
/// read to know; the page is cut while reading, since a bound `limit ?`
/// would compile the statement again on every call (see `literal`).
pub(crate) fn page<T>(
    rows: impl Iterator<Item = rusqlite::Result<T>>,
    limit: i64,
    id: impl Fn(&T) -> i64,
) -> rusqlite::Result<(Vec<T>, Option<i64>)> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut rows: Vec<T> = rows.take(limit + 1).collect::<rusqlite::Result<_>>()?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(id)
    } else {
        None
    };
    Ok((rows, next))
}

/// `execute` and `query_row` through the connection's statement cache: the
/// hot paths run the same few statements thousands of times a second, and
/// compiling them each time was a large part of the writer's time.
pub trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
    /// Every row, mapped by `f`.
    fn all<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<Vec<T>>
    where
        P: rusqlite::Params,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for rusqlite::Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        let mut stmt = self.prepare_cached(sql)?;
        let changed = stmt.execute(params);
        #[cfg(test)]
        recompiled::note(&stmt, sql);
        changed
    }

    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        let mut stmt = self.prepare_cached(sql)?;
        let row = stmt.query_row(params, f);
        #[cfg(test)]
        recompiled::note(&stmt, sql);
        row
    }

    fn all<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<Vec<T>>
    where
        P: rusqlite::Params,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T>,
    {
        let mut stmt = self.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params, f)?
            .collect::<rusqlite::Result<Vec<T>>>();
        #[cfg(test)]
        recompiled::note(&stmt, sql);
        rows
    }
}

/// Runs `f` in the savepoint `name`: what it did stays if it succeeds and is
/// rolled back if it fails, and the transaction around goes on either way.
/// The outer `Result` is the savepoint's own (its SQL, or a transaction
/// SQLite ended inside `f`: it may on a full disk, and then there is
/// nothing left to keep or roll back, and no savepoint SQL may run, since
/// a savepoint outside a transaction begins one that its release commits),
/// the inner one `f`'s. The writer runs each write in one (`db::Batch`).
pub(crate) fn in_savepoint<T>(
    conn: &rusqlite::Connection,
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<Result<T>> {
    conn.exec(&format!("savepoint {name}"), [])?;
    let outcome = f();
    if conn.is_autocommit() {
        return Err(outcome.err().unwrap_or_else(|| {
            Error::Internal(format!("the transaction ended inside savepoint {name}"))
        }));
    }
    if outcome.is_err() {
        conn.exec(&format!("rollback to {name}"), [])?;
    }
    conn.exec(&format!("release {name}"), [])?;
    Ok(outcome)
}

/// In tests: the cached statements SQLite compiled again after their first
/// use, which would make the cache useless for them (see `literal`).
#[cfg(test)]
pub(crate) mod recompiled {
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(crate) fn note(stmt: &rusqlite::Statement<'_>, sql: &str) {
        if stmt.reset_status(rusqlite::StatementStatus::RePrepare) > 0 {
            if let Ok(mut seen) = SEEN.lock() {
                seen.push(sql.to_string());
            }
        }
    }

    /// What was noted since the last call.
    pub(crate) fn take() -> Vec<String> {
        SEEN.lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// Runs `query` at three different times on a migrated in-memory database
/// and checks that its statement `sql` was compiled once (tests).
#[cfg(test)]
pub(crate) fn assert_compiled_once(sql: &str, query: impl Fn(&rusqlite::Connection, i64)) {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    crate::db::migrate(&mut conn).unwrap();
    for now in [1_000, 2_000, 3_000] {
        query(&conn, now);
    }
    let stmt = conn.prepare_cached(sql).unwrap();
    assert_eq!(
        stmt.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "{sql}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What fails in a savepoint is undone; what succeeds stays, and the
    /// transaction goes on either way.
    #[test]
    fn a_savepoint_keeps_what_succeeds_and_undoes_what_fails() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("create table t (x integer); begin")
            .unwrap();
        let kept = in_savepoint(&conn, "one", || {
            Ok(conn.execute("insert into t values (1)", [])?)
        });
        assert_eq!(kept.unwrap().unwrap(), 1);
        let undone = in_savepoint(&conn, "two", || {
            conn.execute("insert into t values (2)", [])?;
            Err::<(), _>(Error::Conflict("no".into()))
        });
        assert_eq!(undone.unwrap(), Err(Error::Conflict("no".into())));
        conn.execute_batch("commit").unwrap();
        let xs = conn
            .all("select x from t order by x", [], |r| r.get::<_, i64>(0))
            .unwrap();
        assert_eq!(xs, [1]);
    }

    /// A full disk makes SQLite end the transaction inside the savepoint
    /// (the page limit stands in for the disk): the savepoint reports the
    /// error as its own, and starts no transaction after it.
    #[test]
    fn a_transaction_ended_inside_a_savepoint_is_the_savepoints_failure() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::nearly_full(&dir.path().join("full.db"));
        conn.execute_batch("begin").unwrap();
        let full = in_savepoint(&conn, "item", || {
            for _ in 0..100 {
                conn.execute("insert into t values (randomblob(400))", [])?;
            }
            Ok(())
        });
        assert_eq!(full.err(), Some(Error::StorageFull));
        assert!(conn.is_autocommit());
    }
}
