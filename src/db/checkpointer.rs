//! The checkpointer thread: copies the WAL back into the database file on
//! a connection of its own, so that the writer rarely does.

use std::sync::mpsc::{self, SyncSender};
use std::thread::{self, JoinHandle};

use super::open::open_connection;
use super::Location;
use crate::error::Result;

/// Commits between two checkpoints.
pub(super) const CHECKPOINT_EVERY: u32 = 32;

/// A thread with a connection of its own that copies the WAL back into the
/// database file (a passive checkpoint) when the writer asks. In the
/// writer, SQLite's automatic checkpoints (every 1000 pages, with a sync of
/// the database file) were a tenth of its time during ingest (perf, B1);
/// a passive checkpoint elsewhere lets the writer go on committing.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread, which opens its connection itself: opening one
    /// compiles the whole schema, a seventh of a start's instructions
    /// (callgrind). Should it fail, the thread logs it and leaves every
    /// checkpoint to the writer's backstop (`wal_autocheckpoint`).
    pub(super) fn start(location: &Location) -> Result<Checkpointer> {
        let location = location.clone();
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let handle = thread::Builder::new()
            .name("regdesk-checkpoint".into())
            .spawn(move || {
                let conn = match open_connection(&location, true) {
                    Ok(conn) => conn,
                    Err(e) => {
                        log::error!("the checkpointer cannot open the database: {e}");
                        while woken.recv().is_ok() {}
                        return;
                    }
                };
                while woken.recv().is_ok() {
                    if let Err(e) = conn.execute_batch("pragma wal_checkpoint(passive)") {
                        log::warn!("checkpoint failed: {e}");
                    }
                }
            })?;
        Ok(Checkpointer { wake, handle })
    }

    /// Asks for a checkpoint; one already asked for and not begun is enough.
    pub(super) fn ask(&self) {
        self.wake.try_send(()).ok();
    }

    pub(super) fn stop(self) {
        drop(self.wake);
        self.handle.join().ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::add_customer;
    use crate::db::Db;
    use std::thread;
    use std::time::{Duration, Instant};

    /// The checkpointer copies committed pages back into the database file
    /// while the server runs, not only at the close.
    #[test]
    fn the_checkpointer_copies_the_wal_back_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desk.db");
        let db = Db::open(Location::File(path.clone())).unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        // One commit each (every write waits for its answer): more commits
        // than CHECKPOINT_EVERY.
        for i in 0..(2 * CHECKPOINT_EVERY) {
            add_customer(&db, &format!("c{i}")).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() == before && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(size() > before, "nothing was checkpointed ({before} bytes)");
        drop(db);
    }
}
