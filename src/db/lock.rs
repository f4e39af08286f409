//! Taking a database file for a server, a migration or a restore: the
//! refusals of a path that cannot be a database, and the lock that keeps
//! one server per database (`regdesk.db.lock` beside it).
//!
//! The lock is an `flock` on the lock file, held for as long as the
//! process runs: the kernel releases it when the process ends, however it
//! ends, so a crash never leaves a stale lock. SQLite's own locks cannot
//! serve: they are POSIX record locks, which a process drops whenever it
//! closes any descriptor of the file. The file holds the holder's process
//! id and what it does, for the refusal to name; it is left in place when
//! the holder ends (removing it would let two processes lock two
//! different files of the same name).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the holder of a database does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Serve,
    Migrate,
    Restore,
}

impl Activity {
    fn word(self) -> &'static str {
        match self {
            Activity::Serve => "served",
            Activity::Migrate => "being migrated",
            Activity::Restore => "being restored",
        }
    }
}

/// A database held by this process; the lock goes with it.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// The lock file of the database `db`: `db` with `.lock` appended.
fn lock_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// The directory `path` lives in (`.` for a bare file name).
pub fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses a path that cannot hold a database: a directory, or a file
/// that is not SQLite (an empty file is a new database to SQLite).
pub fn check_file(field: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::invalid(
            field,
            format!(
                "{} is a directory; give the database file's path, such as {}",
                path.display(),
                path.join("regdesk.db").display()
            ),
        ));
    }
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::invalid(
                field,
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    let mut head = Vec::with_capacity(SQLITE_HEADER.len());
    Read::by_ref(&mut file)
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::invalid(field, format!("cannot read {}: {e}", path.display())))?;
    if !head.is_empty() && head != SQLITE_HEADER {
        return Err(Error::invalid(
            field,
            format!("{} is not an SQLite database", path.display()),
        ));
    }
    Ok(())
}

/// Takes the database `db` for `activity`: checks the path, then locks it,
/// or says which process holds it.
pub fn take(db: &Path, activity: Activity) -> Result<Lock> {
    check_file("db", db)?;
    writable(db)?;
    lock(db, activity)
}

/// Locks the database `db` for `activity` whatever the file holds (a
/// restore replaces a damaged one), or says which process holds it.
pub fn lock(db: &Path, activity: Activity) -> Result<Lock> {
    if db.is_dir() {
        // Refused, naming it a directory.
        check_file("db", db)?;
    }
    let path = lock_path(db);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| unopened(db, &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(held(db, &mut file)),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::Internal(format!("locking {}: {e}", path.display())))
        }
    }
    file.set_len(0)?;
    file.write_all(format!("{}\n{}\n", std::process::id(), activity.word()).as_bytes())?;
    Ok(Lock { _file: file })
}

/// An existing database that cannot be written is refused before its
/// directory is looked at: the file is what the operator must fix.
fn writable(db: &Path) -> Result<()> {
    match OpenOptions::new().write(true).open(db) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Err(Error::Internal(format!(
                "{} can only be read here (a read-only file system, or the \
                 file's permissions), and regdesk writes to its database",
                db.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Why the lock file could not be opened, said in terms of the directory.
fn unopened(db: &Path, lock: &Path, e: std::io::Error) -> Error {
    let dir = directory(db);
    let message = match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => format!(
            "the directory {} is not writable, and regdesk keeps the database's \
             journal (-wal, -shm) and its lock file there",
            dir.display()
        ),
        // Said as it was before there was a lock file.
        ErrorKind::NotFound => {
            return Error::Internal(format!("cannot create the database {}: {e}", db.display()))
        }
        _ => format!("cannot open {}: {e}", lock.display()),
    };
    Error::invalid("db", message)
}

/// The refusal when another process holds the lock, naming it.
fn held(db: &Path, file: &mut File) -> Error {
    let mut text = String::new();
    file.read_to_string(&mut text).ok();
    let mut lines = text.lines();
    let pid = lines.next().and_then(|l| l.trim().parse::<u32>().ok());
    let doing = lines.next().unwrap_or("held").trim();
    Error::Conflict(match pid {
        Some(pid) => format!("{} is {doing} by process {pid}", db.display()),
        // The holder has locked it and not yet written its id.
        None => format!("{} is held by another process", db.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder_and_a_dropped_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("desk.db");
        let first = take(&db, Activity::Serve).unwrap();
        let second = take(&db, Activity::Migrate).unwrap_err();
        let want = format!(
            "{} is served by process {}",
            db.display(),
            std::process::id()
        );
        assert_eq!(second, Error::Conflict(want));
        drop(first);
        take(&db, Activity::Restore).unwrap();
    }

    #[test]
    fn paths_that_cannot_be_a_database_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello, this is not a database").unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "").unwrap();
        let message = |p: &Path| check_file("db", p).unwrap_err().message();
        assert!(message(dir.path()).contains("is a directory"));
        assert!(message(&text).ends_with("notes.txt is not an SQLite database"));
        check_file("db", &empty).unwrap();
        check_file("db", &dir.path().join("none.db")).unwrap();
    }
}
