//! Upgrades: which migrations a database file has had (refinery's history,
//! read before the database is opened for serving), which this binary
//! would apply, and the refusal of a database written by a newer regdesk.
//!
//! The migrations are embedded here as well as in `db` (which applies
//! them): this module only reads their versions and names.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

/// The version of the newest file in `migrations/` (a test in `db::open`
/// keeps it true).
pub(crate) const LATEST_MIGRATION: i64 = 12;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's runner of the migrations this binary carries (the one place
/// they are embedded).
pub(super) fn runner() -> refinery::Runner {
    embedded::migrations::runner()
}

/// One migration this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub name: String,
}

/// Where a database stands against this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The newest migration applied, if any.
    pub current: Option<i64>,
    /// What this binary would apply, oldest first.
    pub pending: Vec<Migration>,
}

/// The migrations this binary carries, oldest first.
pub fn known() -> Vec<Migration> {
    let mut all: Vec<Migration> = runner()
        .get_migrations()
        .iter()
        .map(|m| Migration {
            version: i64::from(m.version()),
            name: m.name().to_string(),
        })
        .collect();
    all.sort_by_key(|m| m.version);
    all
}

/// Refuses a database written by a newer regdesk, and an SQLite file with
/// tables but no migration history (not regdesk's), on a connection open
/// to `path` before anything is migrated. Unlike `plan`, it does not read
/// the embedded migrations' names (refinery compiles a regular expression
/// for that, a good part of a start's time).
pub(super) fn refuse_newer(conn: &Connection, path: &Path) -> Result<()> {
    newer_than_known(path, &applied_in(conn, path)?)
}

fn newer_than_known(path: &Path, applied: &[i64]) -> Result<()> {
    let latest = LATEST_MIGRATION;
    match applied.iter().copied().filter(|v| *v > latest).max() {
        None => Ok(()),
        Some(newer) => Err(Error::Conflict(format!(
            "{} was written by a newer regdesk: its schema is at version {newer}, and this \
             binary knows versions up to {latest}; run the newer regdesk on it (or restore \
             a backup made before the upgrade)",
            path.display()
        ))),
    }
}

/// Reads where the database file `path` stands (a missing or empty file
/// has had nothing): what `migrate` would apply. Refuses what
/// `refuse_newer` refuses.
pub fn plan(path: &Path) -> Result<Plan> {
    let applied = applied(path)?;
    newer_than_known(path, &applied)?;
    let known = known();
    Ok(Plan {
        current: applied.iter().copied().max(),
        pending: known
            .into_iter()
            .filter(|m| !applied.contains(&m.version))
            .collect(),
    })
}

/// The versions in the database's migration history.
fn applied(path: &Path) -> Result<Vec<i64>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = super::open_read_only(path).map_err(|e| unreadable(path, e))?;
    applied_in(&conn, path)
}

/// The versions in the migration history of `conn`'s database (`path`).
fn applied_in(conn: &Connection, path: &Path) -> Result<Vec<i64>> {
    let history: Option<String> = conn
        .query_row(
            "select name from sqlite_master where type = 'table' \
             and name = 'refinery_schema_history'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| unreadable(path, e))?;
    if history.is_none() {
        let tables: i64 = conn
            .query_row("select count(*) from sqlite_master", [], |r| r.get(0))
            .map_err(|e| unreadable(path, e))?;
        if tables > 0 {
            return Err(Error::invalid(
                "db",
                format!(
                    "{} is an SQLite database but not regdesk's (it has no migration history)",
                    path.display()
                ),
            ));
        }
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("select version from refinery_schema_history order by version")?;
    let versions = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(versions)
}

fn unreadable(path: &Path, e: rusqlite::Error) -> Error {
    Error::invalid(
        "db",
        format!("cannot read {} as an SQLite database: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_has_every_migration_pending_and_a_migrated_one_none() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("desk.db");
        let plan = plan(&db).unwrap();
        assert_eq!(plan.current, None);
        assert_eq!(plan.pending, known());
        assert_eq!(known()[0].version, 1);
        crate::db::open_direct(&crate::db::Location::File(db.clone())).unwrap();
        let done = super::plan(&db).unwrap();
        assert_eq!(done.current, known().last().map(|m| m.version));
        assert!(done.pending.is_empty());
    }

    #[test]
    fn a_database_from_a_newer_regdesk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("desk.db");
        let conn = crate::db::open_direct(&crate::db::Location::File(db.clone())).unwrap();
        conn.execute(
            "insert into refinery_schema_history (version, name, applied_on, checksum) \
             values (999, 'future', '2100-01-01T00:00:00Z', '0')",
            [],
        )
        .unwrap();
        drop(conn);
        let e = plan(&db).unwrap_err().message();
        assert!(e.contains("written by a newer regdesk"), "{e}");
        assert!(e.contains("version 999"), "{e}");
    }

    #[test]
    fn an_sqlite_file_that_is_not_regdesks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("other.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("create table t (x)")
            .unwrap();
        let e = plan(&db).unwrap_err().message();
        assert!(e.contains("not regdesk's"), "{e}");
    }
}
