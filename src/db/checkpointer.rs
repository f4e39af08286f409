//! The checkpointer thread: copies the WAL back into the database file on
//! a connection of its own, so that the writer rarely does, and watches
//! that the WAL returns to its bound.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use super::open::open_connection;
use super::{Location, WriterStats};
use crate::error::Result;

/// Commits between two checkpoints.
pub(super) const CHECKPOINT_EVERY: u32 = 32;

/// The size the WAL file is cut back to (`journal_size_limit`) when SQLite
/// starts it again from its beginning, which it does once a checkpoint has
/// copied all of it back. Above what the WAL reaches under load (the
/// ticker's large commits take it past the 8,192 pages at which the writer
/// checkpoints itself), so that a WAL that never outgrew it is never cut
/// and grown again: a sync of a file whose size changed writes its inode
/// too, and a lower bound slowed a backlog's fulfilment down.
pub(super) const WAL_BOUND: u64 = 64 << 20;

/// Checkpoints in a row that leave the WAL over its bound before that is
/// logged: one can miss the WAL's last commits, a run of them cannot.
const BLOCKED_BEFORE_LOG: u64 = 4;

/// A thread with a connection of its own that copies the WAL back into the
/// database file (a passive checkpoint) when the writer asks. In the
/// writer, SQLite's automatic checkpoints (every 1000 pages, with a sync of
/// the database file) took much of its time during ingest; a passive
/// checkpoint elsewhere lets the writer go on committing.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread, which opens its connection itself (opening one
    /// compiles the whole schema, a good part of a start). Should it fail,
    /// the thread logs it and leaves every checkpoint to the writer's
    /// backstop (`wal_autocheckpoint`).
    pub(super) fn start(
        location: &Location,
        wal: PathBuf,
        stats: Arc<WriterStats>,
    ) -> Result<Checkpointer> {
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
                let mut watch = Watch::default();
                while woken.recv().is_ok() {
                    match checkpoint(&conn) {
                        Ok(whole) => {
                            let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                            watch.checkpointed(whole, size, &stats);
                        }
                        Err(e) => log::warn!("checkpoint failed: {e}"),
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

/// A passive checkpoint; whether it copied the whole WAL back (a reader of
/// an older snapshot keeps the frames after it from being copied, and the
/// WAL from starting again).
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    let (busy, frames, copied): (i64, i64, i64) =
        conn.query_row("pragma wal_checkpoint(passive)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(busy == 0 && copied == frames)
}

/// Whether checkpoints keep leaving the WAL over its bound: counted in
/// `WriterStats::checkpoints_blocked` (for `/metrics`), logged once when it
/// begins and once when it ends.
#[derive(Debug, Default)]
struct Watch {
    blocked: u64,
}

impl Watch {
    fn checkpointed(&mut self, whole: bool, wal_bytes: u64, stats: &WriterStats) {
        stats.wal_bytes.store(wal_bytes, Ordering::Relaxed);
        if whole || wal_bytes <= WAL_BOUND {
            if self.blocked >= BLOCKED_BEFORE_LOG {
                log::info!("checkpoints copy the whole WAL back again; it returns to its bound");
            }
            self.blocked = 0;
        } else {
            self.blocked += 1;
            if self.blocked == BLOCKED_BEFORE_LOG {
                log::warn!(
                    "the WAL is {wal_bytes} bytes, over its bound of {WAL_BOUND}, and \
                     {BLOCKED_BEFORE_LOG} checkpoints in a row could not copy it back: a reader \
                     holds an old snapshot (a long read transaction, a backup, a replication \
                     tool)"
                );
            }
        }
        stats
            .checkpoints_blocked
            .store(self.blocked, Ordering::Relaxed);
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

    /// Checkpoints that cannot copy the WAL back count only while it is
    /// over its bound, and one that copies it all ends the count.
    #[test]
    fn blocked_checkpoints_count_over_the_bound_until_one_copies_it_all() {
        let stats = WriterStats::default();
        let mut watch = Watch::default();
        let blocked = |stats: &WriterStats| stats.checkpoints_blocked.load(Ordering::Relaxed);
        watch.checkpointed(false, WAL_BOUND, &stats);
        assert_eq!(blocked(&stats), 0);
        for n in 1..=2 * BLOCKED_BEFORE_LOG {
            watch.checkpointed(false, 2 * WAL_BOUND, &stats);
            assert_eq!(blocked(&stats), n);
        }
        assert_eq!(stats.wal_bytes.load(Ordering::Relaxed), 2 * WAL_BOUND);
        // Copied whole: the WAL starts again at the next commit.
        watch.checkpointed(true, 2 * WAL_BOUND, &stats);
        assert_eq!(blocked(&stats), 0);
    }
}
