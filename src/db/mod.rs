//! The one SQLite database and the ways to use it: `read` on a pooled
//! read-only connection, `write` and `write_background` through the single
//! writer thread (group commit, `writer`), whose commits the flusher thread
//! syncs before answering them (`flusher`), and `read_durable`, a read
//! answered once what it saw is on disk. Opening (`open`), the checkpointer
//! and backups have files of their own, and so do the operations on the
//! database file as a whole: the one-server lock (`lock`), the migration
//! history read before opening (`upgrade`) and `restore`.

mod backup;
mod checkpointer;
mod flusher;
pub mod lock;
mod open;
pub mod restore;
pub mod upgrade;
mod writer;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use crate::error::{Error, Result};
use checkpointer::{Checkpointer, WAL_BOUND};
use flusher::{sync_wal, wal_path, Flusher, Progress, BROKEN};
use writer::{committed, job, writer_loop, Message, Priority};

pub use backup::backup_file;
#[cfg(test)]
pub(crate) use open::nearly_full;
pub use open::{migrate, open_direct};
use open::{open_connection, open_initialised};

/// What a write's caller is told once its commit is synced (or failed).
pub(super) type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// Queued writes before callers wait for room.
const QUEUE_DEPTH: usize = 4096;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 32;

/// A read-only connection to the database file `path`, for a copy or a
/// look that must not write to it.
fn open_read_only(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    Memory,
}

/// Counters of the writer, for `/metrics` and the benchmarks, and the
/// foreground writes waiting for it (for `Db::foreground_waiting`).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    /// Syncs of the WAL to disk (each covers one commit or more).
    pub syncs: AtomicU64,
    /// The size of the WAL file at the last checkpoint.
    pub wal_bytes: AtomicU64,
    /// Checkpoints in a row that could not copy the WAL back while it was
    /// over its bound (a reader holds an old snapshot); 0 once one could.
    pub checkpoints_blocked: AtomicU64,
    /// Foreground writes sent and not yet taken by the writer.
    foreground_queued: AtomicUsize,
}

/// A handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    location: Location,
    sender: SyncSender<Message>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    /// Set when a sync failed: what was committed since may not be on disk,
    /// and no later write is accepted.
    broken: Arc<AtomicBool>,
    stats: Arc<WriterStats>,
    /// How far commits have got (none for an in-memory database, whose
    /// reads are writes).
    progress: Option<Arc<Progress>>,
}

impl Db {
    /// Opens (creating and migrating if needed) the database and starts the
    /// writer thread.
    pub fn open(location: Location) -> Result<Db> {
        Ok(Db::open_with(location, |_| Ok(()))?.0)
    }

    /// Opens the database like `open`, and runs `init` in one transaction
    /// before any other write (a new database file is created with it, see
    /// `create_file`).
    pub fn open_with<T>(
        location: Location,
        init: impl Fn(&Connection) -> Result<T>,
    ) -> Result<(Db, T)> {
        let (conn, value) = open_initialised(&location, &init)?;
        let (sender, receiver) = mpsc::sync_channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        let broken = Arc::new(AtomicBool::new(false));
        let (checkpointer, flusher) = match &location {
            Location::File(path) => {
                // The writer leaves checkpoints to the checkpointer, with a
                // backstop should it fall behind: at 8,192 pages (8 MiB) it
                // checkpoints what is left itself, so that the WAL starts
                // again from its beginning and its file stops growing (a
                // sync of a file whose size changed writes its inode too, and
                // at a smaller backstop the writer spent its time in those
                // checkpoints' syncs). Its commits are
                // not synced by SQLite (synchronous = normal: checkpoints and
                // the WAL header after a restart still are); the flusher
                // syncs the WAL before any of them is answered.
                // When the WAL starts again from its beginning, its file is
                // cut back to `WAL_BOUND`: a reader that held an old
                // snapshot for long leaves a large file otherwise.
                conn.execute_batch(&format!(
                    "pragma wal_autocheckpoint = 8192; pragma synchronous = normal;
                     pragma journal_size_limit = {WAL_BOUND};"
                ))?;
                let wal = wal_path(path);
                let mut file = None;
                let waker = sender.clone();
                let flusher = Flusher::start(
                    move || sync_wal(&wal, &mut file),
                    // A full queue means the writer is busy: it looks
                    // again after its next write.
                    move || {
                        waker.try_send(Message::Flushed).ok();
                    },
                    stats.clone(),
                    broken.clone(),
                )?;
                let checkpointer = Checkpointer::start(&location, wal_path(path), stats.clone())?;
                (Some(checkpointer), flusher)
            }
            Location::Memory => (None, Flusher::Inline),
        };
        let progress = flusher.progress();
        let writer_stats = stats.clone();
        let writer = thread::Builder::new()
            .name("regdesk-writer".into())
            .spawn(move || writer_loop(conn, receiver, &writer_stats, checkpointer, flusher))?;
        let db = Db {
            inner: Arc::new(Inner {
                location,
                sender,
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(Some(writer)),
                stopped: AtomicBool::new(false),
                broken,
                stats,
                progress,
            }),
        };
        Ok((db, value))
    }

    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Runs `f` in a transaction on the writer thread and returns its result
    /// once the transaction is durably committed. `f` runs in a savepoint: if
    /// it fails, what it did is rolled back and the other writes of the same
    /// commit are unaffected.
    pub fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        committed(self.send(f, Priority::Foreground)?)
    }

    /// Runs every closure of `fs` as a background write of its own (each
    /// in its own savepoint, so a failing one leaves the others alone), all
    /// sent at once so that they share commits, and returns their results
    /// in order once they are committed. Foreground writes go first: a
    /// commit they wait for takes in a background write only when
    /// background writes have waited `BACKGROUND_STARVED`, and one then.
    pub fn write_background<T, F>(&self, fs: Vec<F>) -> Result<Vec<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pending = fs
            .into_iter()
            .map(|f| self.send(f, Priority::Background))
            .collect::<Result<Vec<_>>>()?;
        Ok(pending.into_iter().map(committed).collect())
    }

    /// Queues `f` for the writer; its result arrives once committed.
    fn send<T, F>(&self, f: F, priority: Priority) -> Result<Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, rx) = job(f);
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the database is closed".into()));
        }
        if self.inner.broken.load(Ordering::SeqCst) {
            return Err(Error::Unavailable(BROKEN.into()));
        }
        let queued = &self.inner.stats.foreground_queued;
        if priority == Priority::Foreground {
            queued.fetch_add(1, Ordering::SeqCst);
        }
        if self
            .inner
            .sender
            .send(Message::Write(job, priority))
            .is_err()
        {
            if priority == Priority::Foreground {
                queued.fetch_sub(1, Ordering::SeqCst);
            }
            return Err(Error::Unavailable("the database writer has stopped".into()));
        }
        Ok(rx)
    }

    /// Whether a foreground write waits for the writer: a background write
    /// that can stop part-way (a tick job) does, so that clients' writes
    /// wait for one of its steps rather than all of it.
    pub fn foreground_waiting(&self) -> bool {
        self.inner.stats.foreground_queued.load(Ordering::SeqCst) > 0
    }

    /// Runs `f` on a read-only connection (a snapshot of committed data). An
    /// in-memory database has one connection, so there reads go through the
    /// writer.
    pub fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if let Location::Memory = self.inner.location {
            return self.write(f);
        }
        let pooled = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.inner.location, false)?,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&conn))).unwrap_or_else(|panic| {
            Err(Error::Internal(format!(
                "a read panicked: {}",
                panic_message(&panic)
            )))
        });
        let mut pool = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pool.len() < MAX_IDLE_READERS && conn.is_autocommit() {
            pool.push(conn);
        }
        result
    }

    /// `read`, answered only once everything the read could have seen is
    /// on disk. Readers see a commit before its sync ends; a read whose
    /// result leaves regdesk (a webhook, a mail, a call to a registry) uses
    /// this, so that no one outside is told of a change a power cut could
    /// still take back.
    pub fn read_durable<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let value = self.read(f)?;
        if let Some(progress) = &self.inner.progress {
            progress.wait_for_begun(&self.inner.broken)?;
        }
        Ok(value)
    }

    /// Finishes the queued writes, stops the writer and closes every
    /// connection (checkpointing the WAL). Later writes are refused.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Inner {
    fn close(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.sender.send(Message::Stop).ok();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Never joins itself (a last handle dropped by a write).
        if let Some(handle) = handle.filter(|h| h.thread().id() != thread::current().id()) {
            handle.join().ok();
        }
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The last handle closes the database: the flusher holds a way to wake the
/// writer, so the writer would not see its channel close by itself.
impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A customer account written through the writer (its own commit).
    pub(super) fn add_customer(db: &Db, name: &str) -> Result<()> {
        let name = name.to_string();
        db.write(move |conn| {
            conn.execute(
                "insert into accounts (name, email, role, created_at) values (?1, 'c@x', 'customer', 0)",
                [name],
            )?;
            Ok(())
        })
    }

    /// Dropping the last handle closes the database as `close` does: the
    /// writer finishes and copies the WAL back.
    #[test]
    fn dropping_the_last_handle_closes_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desk.db");
        let db = Db::open(Location::File(path.clone())).unwrap();
        add_customer(&db, "d").unwrap();
        let copy = db.clone();
        drop(db);
        // Another handle keeps it open.
        assert!(copy.write(|_| Ok(())).is_ok());
        drop(copy);
        let wal = std::fs::metadata(wal_path(&path)).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL was not checkpointed at the last drop");
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("select count(*) from accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
