//! Opening the database: a new file built whole from the migrated empty
//! database, pragmas of every connection, migrations, and the connections of
//! the command-line tools.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::upgrade::{self, LATEST_MIGRATION};
use super::Location;
use crate::error::{Error, Result};

fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    // temp_store = memory: every write runs in a savepoint, and the statement
    // journal of savepoints went to a temporary file (a fifth of the writer's
    // time). Durability is untouched: the WAL and synchronous=full stay.
    conn.execute_batch(
        "pragma foreign_keys = on; pragma synchronous = full; pragma temp_store = memory;",
    )?;
    // The hot paths use `prepare_cached` (store::Cached); keep all of them.
    conn.set_prepared_statement_cache_capacity(256);
    if !writer {
        conn.execute_batch("pragma query_only = on;")?;
    }
    Ok(())
}

pub(super) fn open_connection(location: &Location, writer: bool) -> Result<Connection> {
    let conn = match location {
        Location::File(path) => {
            let flags = if writer {
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
            } else {
                OpenFlags::SQLITE_OPEN_READ_ONLY
            } | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            if writer {
                // One write call per commit's WAL frames (crates/wal_gather).
                let vfs = wal_gather::register().map_err(Error::Internal)?;
                let conn = Connection::open_with_flags_and_vfs(path, flags, vfs)?;
                // SQLite opens a file it may not write read-only rather
                // than fail; every write would then be an internal error.
                if conn.is_readonly(rusqlite::MAIN_DB)? {
                    return Err(Error::Internal(format!(
                        "{} can only be read here (a read-only file system, or the \
                         file's permissions), and regdesk writes to its database",
                        path.display()
                    )));
                }
                conn
            } else {
                Connection::open_with_flags(path, flags)?
            }
        }
        Location::Memory => {
            let mut conn = Connection::open_in_memory()?;
            conn.deserialize_read_exact(
                rusqlite::MAIN_DB,
                NEW_DATABASE,
                NEW_DATABASE.len(),
                false,
            )?;
            stamp_migrations(&conn)?;
            conn
        }
    };
    if writer {
        if let Location::File(_) = location {
            let mode: String = conn.query_row("pragma journal_mode = wal", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::Internal(format!(
                    "the database refused WAL mode (journal_mode = {mode})"
                )));
            }
        }
    }
    configure(&conn, writer)?;
    Ok(conn)
}

/// The empty database every new one is a copy of: the migrations in
/// `migrations/` applied by `build.rs` (running them at each first start
/// was most of a fresh instance's time to its first answer).
const NEW_DATABASE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/new.db"));

/// Dates the migrations of a copy of `NEW_DATABASE` to now, when they
/// reach this database, rather than to the build.
fn stamp_migrations(conn: &Connection) -> Result<()> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Internal(format!("formatting the time: {e}")))?;
    conn.execute("update refinery_schema_history set applied_on = ?1", [now])?;
    Ok(())
}

/// Whether the database has every migration applied already: refinery's
/// runner parses each migration's name with a regular expression it
/// compiles first, a good part of a start's time, for nothing on an
/// up-to-date database.
fn up_to_date(conn: &Connection) -> bool {
    conn.query_row(
        "select max(version) from refinery_schema_history",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )
    .ok()
    .flatten()
        == Some(LATEST_MIGRATION)
}

/// Applies the migrations in `migrations/` that are not applied yet.
pub fn migrate(conn: &mut Connection) -> Result<usize> {
    if up_to_date(conn) {
        return Ok(0);
    }
    // One transaction for all of them: an upgrade applies whole or not at all.
    let report = upgrade::runner()
        .set_grouped(true)
        .run(conn)
        .map_err(|e| Error::Internal(format!("migrations: {e}")))?;
    Ok(report.applied_migrations().len())
}

/// Runs `f` in one write transaction on `conn`, committing only if it
/// succeeds.
fn in_transaction<T>(conn: &mut Connection, f: &dyn Fn(&Connection) -> Result<T>) -> Result<T> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Creates the database file `path`, which does not exist yet: migrations
/// and `init` run in a file beside it with syncing off, the file is synced
/// once and linked into place, and the directory is synced. A crash leaves
/// either no database or a whole one, and a first start costs two syncs
/// rather than one per migration and journal-mode change (which were most
/// of the time to the first answer).
///
/// Returns `None` when another process created `path` meanwhile; the caller
/// then opens that one and runs `init` there.
fn create_file<T>(path: &Path, init: &dyn Fn(&Connection) -> Result<T>) -> Result<Option<T>> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".new-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let mut journal = partial.as_os_str().to_owned();
    journal.push("-journal");
    for leftover in [&partial, &PathBuf::from(journal)] {
        match std::fs::remove_file(leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let built = (|| -> Result<T> {
        // A copy of the migrated empty database. Its pages are of 1 KiB
        // (build.rs): a commit writes every page it changed whole into the
        // WAL, and most writes change a row and an entry in each of several
        // indexes, a few dozen bytes a page; the sync that follows costs by
        // the amount written. A database made by an older version keeps
        // its page size.
        std::fs::write(&partial, NEW_DATABASE).map_err(|e| {
            Error::Internal(format!(
                "cannot create the database {}: {e}",
                path.display()
            ))
        })?;
        let mut conn = Connection::open_with_flags(
            &partial,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Nothing here needs a sync of its own: the file is synced whole
        // before it gets its name.
        conn.execute_batch(
            "pragma synchronous = off; pragma journal_mode = memory; pragma foreign_keys = on;",
        )?;
        // Nothing to apply: the copy is as new as the binary (build.rs runs
        // again when a migration changes; a unit test compares the two).
        // Checked all the same, at the price of one query.
        migrate(&mut conn)?;
        stamp_migrations(&conn)?;
        let value = in_transaction(&mut conn, init)?;
        let mode: String = conn.query_row("pragma journal_mode = wal", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Internal(format!(
                "the database refused WAL mode (journal_mode = {mode})"
            )));
        }
        conn.close().map_err(|(_, e)| e)?;
        std::fs::File::open(&partial)?.sync_all()?;
        Ok(value)
    })();
    let value = match built {
        Ok(value) => value,
        Err(e) => {
            std::fs::remove_file(&partial).ok();
            return Err(e);
        }
    };
    // A hard link never replaces what another process may have created
    // meanwhile (a rename would).
    let linked = std::fs::hard_link(&partial, path);
    std::fs::remove_file(&partial).ok();
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    sync_parent(path);
    Ok(Some(value))
}

/// Makes a new directory entry in `path`'s directory durable.
pub(super) fn sync_parent(path: &Path) {
    if let Ok(d) = std::fs::File::open(super::lock::directory(path)) {
        d.sync_all().ok();
    }
}

/// Opens the writer's connection: a new file is created whole
/// (`create_file`) with `init` run in it; an existing database is migrated
/// and `init` runs in a transaction of its own.
pub(super) fn open_initialised<T>(
    location: &Location,
    init: &dyn Fn(&Connection) -> Result<T>,
) -> Result<(Connection, T)> {
    if let Location::File(path) = location {
        if !path.exists() {
            if let Some(value) = create_file(path, init)? {
                return Ok((open_connection(location, true)?, value));
            }
        }
    }
    let mut conn = open_connection(location, true)?;
    if let Location::File(path) = location {
        // Nothing is migrated in a database a newer regdesk wrote, nor in
        // an SQLite file that is not regdesk's.
        upgrade::refuse_newer(&conn, path)?;
    }
    let applied = migrate(&mut conn)?;
    if applied > 0 {
        log::info!("applied {applied} migration(s)");
    }
    let value = in_transaction(&mut conn, init)?;
    Ok((conn, value))
}

/// Opens the database for the command-line tools (migrate, account add).
pub fn open_direct(location: &Location) -> Result<Connection> {
    Ok(open_initialised(location, &|_| Ok(()))?.0)
}

/// In tests: a WAL database at `path` with a table `t (x)` that takes two
/// pages more, then answers SQLITE_FULL as on a full disk (its page limit).
#[cfg(test)]
pub(crate) fn nearly_full(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("pragma journal_mode = wal; create table t (x);")
        .unwrap();
    let pages: i64 = conn
        .query_row("pragma page_count", [], |r| r.get(0))
        .unwrap();
    let limit = format!("pragma max_page_count = {}", pages + 2);
    conn.query_row(&limit, [], |_| Ok(())).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_migration_is_the_newest_file() {
        let newest = upgrade::known().last().map(|m| m.version);
        assert_eq!(newest, Some(LATEST_MIGRATION));
    }

    /// A new file appears whole (WAL, migrated, initialised) with nothing
    /// left beside it; a file another process made meanwhile is not replaced.
    #[test]
    fn a_new_database_file_appears_whole_and_never_replaces_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desk.db");
        let init = |conn: &Connection| -> Result<i64> {
            conn.execute(
                "insert into accounts (name, email, role, created_at) values ('op', 'o@x', 'operator', 0)",
                [],
            )?;
            Ok(conn.last_insert_rowid())
        };
        assert_eq!(create_file(&path, &init).unwrap(), Some(1));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["desk.db".to_string()]);
        let conn = open_connection(&Location::File(path.clone()), false).unwrap();
        let mode: String = conn
            .query_row("pragma journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let page_size: i64 = conn
            .query_row("pragma page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(page_size, 1024);
        assert!(up_to_date(&conn));
        let accounts: i64 = conn
            .query_row("select count(*) from accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(accounts, 1);
        drop(conn);
        // The path exists now: a second creation links nothing.
        assert_eq!(create_file(&path, &init).unwrap(), None);
        let conn = open_connection(&Location::File(path), false).unwrap();
        let accounts: i64 = conn
            .query_row("select count(*) from accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(accounts, 1);
    }

    /// V6 builds the portfolio, the mail outbox and the delivery log again:
    /// a database at V5 keeps every row and index through it, and each
    /// state check still refuses what it refused, now without a temporary
    /// B-tree per write.
    #[test]
    fn rows_and_indexes_survive_v6_and_checks_still_refuse() {
        let mut conn = Connection::open_in_memory().unwrap();
        upgrade::runner()
            .set_target(refinery::Target::Version(5))
            .set_grouped(true)
            .run(&mut conn)
            .unwrap();
        conn.execute_batch(
            "insert into accounts (id, name, email, role, created_at)
             values (3, 'owner', 'o@example.net', 'customer', 0);
             insert into domains (id, account_id, name, status, expires_at, auth_code,
                                  contacts, nameservers, created_at, updated_at)
             values (9, 3, 'kept.example', 'on_hold', 5, 'c0de', '{\"a\":1}', '[]', 1, 2);
             insert into mail (id, recipient, subject, body, state, attempts, created_at,
                               next_attempt_at)
             values (4, 'o@example.net', 's', 'b', 'failed', 3, 1, 7);
             insert into notifications (id, account_id, type, action, status, message,
                                        domain, created_at)
             values (1, 3, 'domain', 'create', 'success', 'm', 'kept.example', 1);
             insert into webhook_deliveries (id, notification_id, account_id, url, state,
                                             next_attempt_at, created_at)
             values (5, 1, 3, 'http://127.0.0.1:1/hook', 'pending', 8, 1);",
        )
        .unwrap();
        let dump = |conn: &Connection| -> Vec<String> {
            [
                "select id || account_id || name || status || contacts from domains",
                "select id || state || attempts || next_attempt_at from mail",
                "select id || account_id || state || next_attempt_at from webhook_deliveries",
                "select group_concat(name) from (select name from sqlite_master
                 where type = 'index' and tbl_name in ('domains', 'mail', 'webhook_deliveries')
                 order by name)",
            ]
            .iter()
            .map(|sql| conn.query_row(sql, [], |r| r.get(0)).unwrap())
            .collect()
        };
        let before = dump(&conn);
        let later = upgrade::known().iter().filter(|m| m.version > 5).count();
        assert_eq!(migrate(&mut conn).unwrap(), later);
        assert_eq!(dump(&conn), before);
        for (table, column) in [
            ("domains", "status"),
            ("mail", "state"),
            ("webhook_deliveries", "state"),
        ] {
            let bogus = conn.execute(&format!("update {table} set {column} = 'gone'"), []);
            assert!(bogus.is_err(), "{table}: the check let 'gone' in");
            let program: Vec<String> = conn
                .prepare(&format!("explain update {table} set {column} = ?1"))
                .unwrap()
                .query_map(["pending"], |r| r.get(1))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                !program.iter().any(|op| op == "OpenEphemeral"),
                "{table}: {program:?}"
            );
        }
    }

    #[test]
    fn an_up_to_date_database_is_left_alone_and_an_old_one_upgraded() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert!(!up_to_date(&conn));
        assert_eq!(migrate(&mut conn).unwrap(), upgrade::known().len());
        assert!(up_to_date(&conn));
        assert_eq!(migrate(&mut conn).unwrap(), 0);
    }

    /// What a database's schema and migration history say, apart from
    /// when the migrations ran.
    fn shape(conn: &Connection) -> Vec<String> {
        let queries = [
            "select type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, '')
             from sqlite_schema order by type, name",
            "select 'migration ' || version || ' ' || name || ' ' || checksum
             from refinery_schema_history order by version",
            "select 'page_size ' || page_size from pragma_page_size",
            "select 'user_version ' || user_version from pragma_user_version",
            "select 'application_id ' || application_id from pragma_application_id",
            "select 'encoding ' || encoding from pragma_encoding",
        ];
        let mut out = Vec::new();
        for sql in queries {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
            out.extend(rows.map(Result::unwrap));
        }
        out
    }

    #[test]
    fn a_new_database_is_what_the_migrations_make() {
        let dir = tempfile::tempdir().unwrap();
        // On disk and in memory, copied from NEW_DATABASE.
        let path = dir.path().join("new.db");
        let file = open_direct(&Location::File(path.clone())).unwrap();
        let memory = open_direct(&Location::Memory).unwrap();
        // The migrations run on an empty file, as an older database gets them.
        let mut migrated = Connection::open(dir.path().join("migrated.db")).unwrap();
        migrated.execute_batch("pragma page_size = 1024").unwrap();
        assert_eq!(migrate(&mut migrated).unwrap(), upgrade::known().len());
        let expected = shape(&migrated);
        assert!(expected.len() > 40, "{expected:?}");
        assert_eq!(shape(&file), expected);
        assert_eq!(shape(&memory), expected);
        for conn in [&file, &memory] {
            let check: String = conn
                .query_row("pragma integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            // Dated when they reached this database, not when it was built.
            let oldest: String = conn
                .query_row(
                    "select min(applied_on) from refinery_schema_history",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let applied = time::OffsetDateTime::parse(
                &oldest,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            let age = time::OffsetDateTime::now_utc() - applied;
            assert!(age < time::Duration::minutes(5), "{oldest}");
        }
    }
}
