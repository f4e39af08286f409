//! `regdesk restore`: a backup checked (SQLite, whole, a schema this
//! binary knows), then installed in place of the database: the file it
//! replaces is kept beside it, the old journal files go, and the copy gets
//! the database's name by one rename, so a crash leaves the old database
//! or the restored one, never a mix. The caller holds the database's lock.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::lock;
use super::upgrade;
use crate::error::{Error, Result};

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The schema version of the backup.
    pub version: Option<i64>,
    /// Migrations the next start applies to it.
    pub pending: usize,
    /// Where the replaced database was kept, if there was one.
    pub kept: Option<PathBuf>,
    /// Journal files of the replaced database that were removed.
    pub removed: Vec<PathBuf>,
}

/// `path` with `suffix` appended to its name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Installs the backup `backup` as the database `db`, stamped `now` (the
/// name of the kept file).
pub fn restore(backup: &Path, db: &Path, now: &str) -> Result<Restored> {
    let plan = check_backup(backup)?;
    let partial = with_suffix(db, ".restoring");
    if partial.exists() {
        std::fs::remove_file(&partial)?;
    }
    if let Err(e) = super::backup::copy_into(backup, &partial) {
        std::fs::remove_file(&partial).ok();
        return Err(e);
    }
    let kept = if db.exists() {
        Some(keep(
            db,
            &with_suffix(db, &format!(".before-restore-{now}")),
        )?)
    } else {
        None
    };
    let mut removed = Vec::new();
    for suffix in ["-wal", "-shm"] {
        let stale = with_suffix(db, suffix);
        if stale.exists() {
            std::fs::remove_file(&stale)?;
            removed.push(stale);
        }
    }
    std::fs::rename(&partial, db)?;
    super::open::sync_parent(db);
    Ok(Restored {
        version: plan.current,
        pending: plan.pending.len(),
        kept,
        removed,
    })
}

/// Refuses a backup that is missing, not SQLite, damaged, not regdesk's or
/// newer than this binary; else says where its schema stands.
fn check_backup(backup: &Path) -> Result<upgrade::Plan> {
    if !backup.exists() {
        return Err(Error::invalid(
            "backup",
            format!("{} does not exist", backup.display()),
        ));
    }
    lock::check_file("backup", backup)?;
    if std::fs::metadata(backup)?.len() == 0 {
        return Err(Error::invalid(
            "backup",
            format!("{} is empty", backup.display()),
        ));
    }
    let conn = super::open_read_only(backup)?;
    let verdict: Vec<String> = conn
        .prepare("pragma integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| damaged(backup, &e.to_string()))?;
    if verdict != ["ok"] {
        return Err(damaged(backup, &verdict.join("; ")));
    }
    drop(conn);
    upgrade::plan(backup).map_err(|e| match e {
        Error::Invalid { message, .. } => Error::invalid("backup", message),
        other => other,
    })
}

fn damaged(backup: &Path, why: &str) -> Error {
    Error::invalid(
        "backup",
        format!("{} fails SQLite's integrity check: {why}", backup.display()),
    )
}

/// Keeps the database `db` as `kept` (a second name of the same file, so
/// `db` stays whole until the rename replaces it). Its WAL is first
/// checkpointed into it, so the kept file holds everything committed; if
/// that fails (a damaged database, the reason for many a restore), the WAL
/// is kept beside it under the name SQLite looks for.
fn keep(db: &Path, kept: &Path) -> Result<PathBuf> {
    let checkpointed = Connection::open(db)
        .and_then(|c| {
            c.query_row("pragma wal_checkpoint(truncate)", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .is_ok_and(|busy| busy == 0);
    let kept_link = |from: &Path, to: &Path| {
        std::fs::hard_link(from, to).map_err(|e| {
            Error::Internal(format!(
                "keeping {} as {}: {e}",
                from.display(),
                to.display()
            ))
        })
    };
    kept_link(db, kept)?;
    let wal = with_suffix(db, "-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    if !checkpointed && wal_len > 0 {
        kept_link(&wal, &with_suffix(kept, "-wal"))?;
    }
    Ok(kept.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_good_backup_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("desk.db");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a database at all, but long enough").unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "").unwrap();
        for (backup, says) in [
            (dir.path().join("none.db"), "does not exist"),
            (text, "is not an SQLite database"),
            (empty, "is empty"),
        ] {
            let e = restore(&backup, &db, "T").unwrap_err().message();
            assert!(e.contains(&backup.display().to_string()), "{e}");
            assert!(e.contains(says), "{e}");
        }
        assert!(!db.exists());
    }

    #[test]
    fn a_restore_keeps_the_replaced_database_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("desk.db");
        let backup = dir.path().join("backup.db");
        crate::db::open_direct(&crate::db::Location::File(backup.clone())).unwrap();
        // Damaged past reading, as a database to restore often is.
        std::fs::write(&db, b"garbage where a database was").unwrap();
        let done = restore(&backup, &db, "T").unwrap();
        assert_eq!(done.kept, Some(dir.path().join("desk.db.before-restore-T")));
        assert_eq!(done.pending, 0);
        assert!(upgrade::plan(&db).unwrap().pending.is_empty());
        let kept = std::fs::read(dir.path().join("desk.db.before-restore-T")).unwrap();
        assert_eq!(kept, b"garbage where a database was");
    }
}
