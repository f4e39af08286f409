//! Backups: `regdesk backup` from another process, and `Db::backup_to`
//! from a running one; both write a consistent snapshot with `vacuum into`.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::open::{open_connection, sync_parent};
use super::{Db, Location};
use crate::error::{Error, Result};

/// `regdesk backup`: copies the database file `src` to `dst` while a server
/// may be writing to it. A read transaction sees one consistent snapshot of
/// everything committed (WAL included), and `vacuum into` writes it out; the
/// copy is written beside `dst` and renamed into place once synced, so that
/// `dst` never holds half a backup. Nothing is written to `src`.
pub fn backup_file(src: &Path, dst: &Path) -> Result<()> {
    if !src.exists() {
        return Err(Error::invalid(
            "db",
            format!("{} does not exist", src.display()),
        ));
    }
    if dst.exists() {
        return Err(Error::invalid(
            "file",
            format!("{} exists; a backup never overwrites", dst.display()),
        ));
    }
    if let Some(dir) = dst.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::invalid(
                "file",
                format!("there is no directory {}", dir.display()),
            ));
        }
    }
    let mut partial = dst.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_file(&partial)?;
    }
    let copied = copy_into(src, &partial).map_err(|e| {
        // Nothing half-written is left behind.
        std::fs::remove_file(&partial).ok();
        match e {
            Error::StorageFull => Error::Unavailable(format!(
                "no room for the backup on the disk of {}: nothing was written",
                dst.display()
            )),
            other => other,
        }
    });
    copied?;
    std::fs::rename(&partial, dst)?;
    // The rename is durable once the directory is synced.
    sync_parent(dst);
    Ok(())
}

/// Writes a consistent copy of the database `src` (its WAL included, if
/// it has one) to `dst`, synced.
pub(super) fn copy_into(src: &Path, dst: &Path) -> Result<()> {
    let conn = super::open_read_only(src)?;
    conn.execute("vacuum into ?1", [dst.to_string_lossy().to_string()])?;
    drop(conn);
    std::fs::File::open(dst)?.sync_all()?;
    Ok(())
}

impl Db {
    /// Copies the database to `path` while it is in use: a consistent
    /// snapshot, written with SQLite's `vacuum into`.
    pub fn backup_to(&self, path: &Path) -> Result<()> {
        let target = path.to_string_lossy().to_string();
        if path.exists() {
            return Err(Error::invalid(
                "file",
                format!("{target} exists; a backup never overwrites"),
            ));
        }
        let work = move |conn: &Connection| -> Result<()> {
            conn.execute("vacuum into ?1", [target])?;
            Ok(())
        };
        match self.inner.location {
            Location::Memory => self.write(work),
            Location::File(_) => {
                // vacuum cannot run inside a transaction; use a reader's own
                // connection (a read transaction sees one consistent snapshot).
                let conn = open_connection(&self.inner.location, false)?;
                conn.execute_batch("pragma query_only = off")?;
                work(&conn)
            }
        }
    }
}
