//! Opening the SQLite database (pragmas, migrations) and the two ways to use
//! it: `read` on a pooled read-only connection, and `write` through the single
//! writer thread, which commits every write that gathered while the previous
//! commit was being flushed in one transaction (group commit).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 512;
/// How long a transaction takes in more writes before it commits, when a
/// foreground write waits for it.
const MAX_BATCH_TIME: Duration = Duration::from_millis(4);
/// The same when only background writes wait: longer, since a commit's cost
/// (its pages written to the WAL, a sync) is shared by more of them.
const MAX_BACKGROUND_BATCH_TIME: Duration = Duration::from_millis(16);
/// Queued writes before callers wait for room.
const QUEUE_DEPTH: usize = 4096;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 32;

/// Runs inside the writer's transaction; says whether it succeeded (else its
/// savepoint is rolled back) and hands back what to do once the commit is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
type Completion = Box<dyn FnOnce(Result<()>) + Send>;

enum Message {
    Write(Job, Priority),
    Stop,
}

/// Whose write it is. A person or a client waits for a foreground write;
/// background writes (the ticker's) yield to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Foreground,
    Background,
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    Memory,
}

/// Counters of the writer, for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
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
    stats: Arc<WriterStats>,
}

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

fn open_connection(location: &Location, writer: bool) -> Result<Connection> {
    let conn = match location {
        Location::File(path) => {
            let flags = if writer {
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
            } else {
                OpenFlags::SQLITE_OPEN_READ_ONLY
            } | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            Connection::open_with_flags(path, flags)?
        }
        Location::Memory => Connection::open_in_memory()?,
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

/// The version of the newest file in `migrations/` (a test keeps it true).
const LATEST_MIGRATION: i64 = 5;

/// Whether the database has every migration applied already: refinery's
/// runner parses each migration's name with a regular expression it
/// compiles first, which was a fifth of a start's time (perf, 20 starts),
/// for nothing on an up-to-date database.
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
    let report = embedded::migrations::runner()
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
/// rather than one per migration and journal-mode change (measured: 18
/// syncs, most of the time to first answer).
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
        let mut conn = Connection::open_with_flags(
            &partial,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Nothing here needs a sync of its own: the file is synced whole
        // before it gets its name.
        conn.execute_batch(
            "pragma synchronous = off; pragma journal_mode = memory; pragma foreign_keys = on;",
        )?;
        migrate(&mut conn)?;
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
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().ok();
    }
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
        let writer_stats = stats.clone();
        let checkpointer = match &location {
            Location::File(_) => {
                // The writer leaves checkpoints to the checkpointer, with a
                // backstop should it fall behind.
                conn.execute_batch("pragma wal_autocheckpoint = 16384")?;
                Some(Checkpointer::start(&location)?)
            }
            Location::Memory => None,
        };
        let writer = thread::Builder::new()
            .name("regdesk-writer".into())
            .spawn(move || writer_loop(conn, receiver, &writer_stats, checkpointer))?;
        let db = Db {
            inner: Arc::new(Inner {
                location,
                sender,
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(Some(writer)),
                stopped: AtomicBool::new(false),
                stats,
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
    /// in order once they are committed. Foreground writes go first: while
    /// they wait, a commit takes in at most one background write.
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
        let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |conn| {
            let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(result) => result,
                Err(panic) => Err(Error::Internal(format!(
                    "a write panicked: {}",
                    panic_message(&panic)
                ))),
            };
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(e) => Err(e),
                };
                tx.send(outcome).ok();
            });
            (ok, completion)
        });
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the database is closed".into()));
        }
        self.inner
            .sender
            .send(Message::Write(job, priority))
            .map_err(|_| Error::Unavailable("the database writer has stopped".into()))?;
        Ok(rx)
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

    /// Finishes the queued writes, stops the writer and closes every
    /// connection (checkpointing the WAL). Later writes are refused.
    pub fn close(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.sender.send(Message::Stop).ok();
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.join().ok();
        }
        self.inner
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

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

/// Waits for a write sent with `Db::send`: its result once committed.
fn committed<T>(rx: Receiver<Result<T>>) -> Result<T> {
    rx.recv()
        .map_err(|_| Error::Internal("the database writer dropped a write".into()))?
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

/// Commits between two checkpoints.
const CHECKPOINT_EVERY: u32 = 32;

/// A thread with a connection of its own that copies the WAL back into the
/// database file (a passive checkpoint) when the writer asks. In the
/// writer, SQLite's automatic checkpoints (every 1000 pages, with a sync of
/// the database file) were a tenth of its time during ingest (perf, B1);
/// a passive checkpoint elsewhere lets the writer go on committing.
struct Checkpointer {
    wake: SyncSender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    fn start(location: &Location) -> Result<Checkpointer> {
        let conn = open_connection(location, true)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let handle = thread::Builder::new()
            .name("regdesk-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = conn.execute_batch("pragma wal_checkpoint(passive)") {
                        log::warn!("checkpoint failed: {e}");
                    }
                }
            })?;
        Ok(Checkpointer { wake, handle })
    }

    /// Asks for a checkpoint; one already asked for and not begun is enough.
    fn ask(&self) {
        self.wake.try_send(()).ok();
    }

    fn stop(self) {
        drop(self.wake);
        self.handle.join().ok();
    }
}

fn writer_loop(
    mut conn: Connection,
    receiver: Receiver<Message>,
    stats: &WriterStats,
    checkpointer: Option<Checkpointer>,
) {
    let mut commits_since_checkpoint = 0;
    // Background writes taken off the channel and not run yet.
    let mut background: VecDeque<Job> = VecDeque::new();
    let mut stop = false;
    while !stop {
        // The next write: a foreground one if one is queued, else the
        // oldest background one (those that arrive queue behind the others).
        let incoming = if background.is_empty() {
            Some(receiver.recv().unwrap_or(Message::Stop))
        } else {
            receiver.try_recv().ok()
        };
        let foreground = match incoming {
            Some(Message::Stop) => break,
            Some(Message::Write(job, Priority::Foreground)) => Some(job),
            Some(Message::Write(job, Priority::Background)) => {
                background.push_back(job);
                None
            }
            None => None,
        };
        let (first, priority) = match foreground {
            Some(job) => (job, Priority::Foreground),
            None => match background.pop_front() {
                Some(job) => (job, Priority::Background),
                None => continue,
            },
        };
        // Everything that queued while the last commit was flushed, and
        // what arrives while it runs, shares this commit, up to a bound in
        // count and in time: a long tick must not hold other writes' answers
        // back. Foreground writes run first; background ones fill what is
        // left of the time, and only one of them joins a commit that
        // foreground writes wait for.
        let started = Instant::now();
        let mut batch = Batch::begin(&mut conn);
        batch.run(first, priority);
        while batch.completions.len() < MAX_BATCH {
            let budget = if batch.foreground > 0 {
                MAX_BATCH_TIME
            } else {
                MAX_BACKGROUND_BATCH_TIME
            };
            if started.elapsed() >= budget {
                break;
            }
            match receiver.try_recv() {
                Ok(Message::Write(job, Priority::Foreground)) => {
                    batch.run(job, Priority::Foreground)
                }
                Ok(Message::Write(job, Priority::Background)) => background.push_back(job),
                Ok(Message::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => {
                    if batch.foreground > 0 && batch.background > 0 {
                        break;
                    }
                    match background.pop_front() {
                        Some(job) => batch.run(job, Priority::Background),
                        None => break,
                    }
                }
            }
        }
        let (completions, commit) = batch.commit();
        stats.commits.fetch_add(1, Ordering::Relaxed);
        commits_since_checkpoint += 1;
        if commits_since_checkpoint >= CHECKPOINT_EVERY {
            if let Some(c) = &checkpointer {
                c.ask();
            }
            commits_since_checkpoint = 0;
        }
        stats
            .writes
            .fetch_add(completions.len() as u64, Ordering::Relaxed);
        for completion in completions {
            completion(commit.clone());
        }
    }
    // Stopping: what was queued still runs (and commits) before the close.
    if !background.is_empty() {
        let mut batch = Batch::begin(&mut conn);
        for job in background.drain(..) {
            batch.run(job, Priority::Background);
        }
        let (completions, commit) = batch.commit();
        for completion in completions {
            completion(commit.clone());
        }
    }
    if let Some(c) = checkpointer {
        c.stop();
    }
    if let Err(e) = conn.execute_batch("pragma wal_checkpoint(truncate)") {
        log::warn!("checkpoint at close failed: {e}");
    }
    if let Err((_, e)) = conn.close() {
        log::warn!("closing the database failed: {e}");
    }
}

/// One write transaction of the writer: jobs run as they come, each in its
/// own savepoint, and their completions wait for the commit.
struct Batch<'c> {
    conn: &'c mut Connection,
    /// Why the transaction could not begin; jobs are then not run.
    failed: Option<Error>,
    completions: Vec<Completion>,
    /// Foreground and background writes in this batch.
    foreground: usize,
    background: usize,
}

impl<'c> Batch<'c> {
    fn begin(conn: &'c mut Connection) -> Batch<'c> {
        let failed = run_cached(conn, &["begin immediate"]).err().map(|e| {
            let err = Error::from(e);
            log::error!("cannot begin a write transaction: {err}");
            err
        });
        Batch {
            conn,
            failed,
            completions: Vec::new(),
            foreground: 0,
            background: 0,
        }
    }

    fn run(&mut self, job: Job, priority: Priority) {
        match priority {
            Priority::Foreground => self.foreground += 1,
            Priority::Background => self.background += 1,
        }
        if self.failed.is_some() {
            // The job never runs; its caller learns of the failure through
            // the batch's error.
            self.completions.push(job_skipped(job).1);
            return;
        }
        if let Err(e) = run_cached(self.conn, &["savepoint job"]) {
            log::error!("savepoint failed: {e}");
            self.completions.push(job_skipped(job).1);
            return;
        }
        let (ok, completion) = job(self.conn);
        let end: &[&str] = if ok {
            &["release job"]
        } else {
            &["rollback to job", "release job"]
        };
        if let Err(e) = run_cached(self.conn, end) {
            log::error!("ending a savepoint failed: {e}");
        }
        self.completions.push(completion);
    }

    fn commit(self) -> (Vec<Completion>, Result<()>) {
        if let Some(err) = self.failed {
            return (self.completions, Err(err));
        }
        let commit = run_cached(self.conn, &["commit"]).map_err(|e| {
            let err = Error::from(e);
            log::error!("commit failed: {err}");
            self.conn.execute_batch("rollback").ok();
            err
        });
        (self.completions, commit)
    }
}

/// Runs short statements through the statement cache (savepoints run once per
/// write; parsing them each time showed in profiles).
fn run_cached(conn: &Connection, statements: &[&str]) -> rusqlite::Result<()> {
    for sql in statements {
        conn.prepare_cached(sql)?.execute([])?;
    }
    Ok(())
}

/// A job that could not run: it is never called, and its caller learns of
/// the failure through the batch's error.
fn job_skipped(job: Job) -> (bool, Completion) {
    drop(job);
    (false, Box::new(|_| {}))
}

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
    let mut partial = dst.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_file(&partial)?;
    }
    let conn = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute("vacuum into ?1", [partial.to_string_lossy().to_string()])?;
    drop(conn);
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, dst)?;
    // The rename is durable once the directory is synced.
    sync_parent(dst);
    Ok(())
}

/// Opens the writer's connection: a new file is created whole
/// (`create_file`) with `init` run in it; an existing database is migrated
/// and `init` runs in a transaction of its own.
fn open_initialised<T>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_migration_is_the_newest_file() {
        let newest = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max();
        assert_eq!(newest, Some(LATEST_MIGRATION));
    }

    /// Background writes queued ahead of a foreground write do not hold it
    /// back: it runs after at most one of them.
    #[test]
    fn a_foreground_write_overtakes_queued_background_writes() {
        let db = Db::open(Location::Memory).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        // Hold the writer in a first write, so that what follows queues.
        let (hold, held) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let blocker = {
            let db = db.clone();
            thread::spawn(move || {
                db.write(move |_| {
                    started.send(()).ok();
                    held.recv().ok();
                    Ok(())
                })
            })
        };
        running.recv().unwrap();
        // Six background writes, then a foreground one, queued in that order.
        let record = |what: String| {
            let order = order.clone();
            move |_: &Connection| {
                order.lock().unwrap().push(what);
                Ok(())
            }
        };
        let background: Vec<_> = (0..6)
            .map(|i| db.send(record(format!("background {i}")), Priority::Background))
            .collect::<Result<_>>()
            .unwrap();
        let foreground = db
            .send(record("foreground".into()), Priority::Foreground)
            .unwrap();
        hold.send(()).unwrap();
        blocker.join().unwrap().unwrap();
        foreground.recv().unwrap().unwrap();
        for done in background {
            done.recv().unwrap().unwrap();
        }
        let order = order.lock().unwrap().clone();
        let at = order.iter().position(|o| o == "foreground").unwrap();
        assert!(at <= 1, "{order:?}");
        assert_eq!(order.len(), 7, "{order:?}");
        db.close();
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

    #[test]
    fn an_up_to_date_database_is_left_alone_and_an_old_one_upgraded() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert!(!up_to_date(&conn));
        assert_eq!(migrate(&mut conn).unwrap() as i64, LATEST_MIGRATION);
        assert!(up_to_date(&conn));
        assert_eq!(migrate(&mut conn).unwrap(), 0);
    }
}
