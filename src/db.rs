//! Opening the SQLite database (pragmas, migrations) and the two ways to use
//! it: `read` on a pooled read-only connection, and `write` through the single
//! writer thread, which commits every write that gathered while the previous
//! commit ran in one transaction (group commit). A flusher thread syncs the
//! WAL to disk while the writer goes on with the next transaction, and only
//! then answers the writes that committed: one sync covers every commit made
//! while the previous sync ran.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, RepeatedFailure, Result};
use crate::store::in_savepoint;

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
/// How long background writes wait, while foreground writes keep every
/// commit busy, before one joins a commit that foreground writes wait for.
const BACKGROUND_STARVED: Duration = Duration::from_millis(20);
/// Queued writes before callers wait for room.
const QUEUE_DEPTH: usize = 4096;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 32;
/// How long a durable read waits for the sync of what it saw.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

/// Runs inside the writer's transaction (or is told why it cannot); hands
/// back its error if it failed (its savepoint is then rolled back) and what
/// to do once the commit is known.
type Job = Box<dyn FnOnce(Run<'_>) -> (Result<()>, Completion) + Send>;

/// What the writer does with a job.
enum Run<'a> {
    /// Run it now, inside a savepoint of this connection's transaction.
    Now(&'a Connection),
    /// It cannot run in this transaction: its caller is told why.
    Refused(Error),
}
type Completion = Box<dyn FnOnce(Result<()>) + Send>;

enum Message {
    Write(Job, Priority),
    /// From the flusher: a sync ended (the writer may commit again).
    Flushed,
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

/// Counters of the writer, for `/metrics` and the benchmarks, and the
/// foreground writes waiting for it (for `Db::foreground_waiting`).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    /// Syncs of the WAL to disk (each covers one commit or more).
    pub syncs: AtomicU64,
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

/// The version of the newest file in `migrations/` (a test keeps it true).
const LATEST_MIGRATION: i64 = 6;

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
        // A copy of the migrated empty database. Its pages are of 1 KiB
        // (build.rs): a commit writes every page it changed whole into the
        // WAL, and most writes change a row and an entry in each of several
        // indexes, a few dozen bytes a page; the sync that follows costs by
        // the amount written (B2 notification cycle: 40% more cycles than
        // with 4 KiB pages; list latency on a million requests unchanged).
        // A database made by an older version keeps its page size.
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
        let broken = Arc::new(AtomicBool::new(false));
        let (checkpointer, flusher) = match &location {
            Location::File(path) => {
                // The writer leaves checkpoints to the checkpointer, with a
                // backstop should it fall behind: at 8,192 pages (8 MiB) it
                // checkpoints what is left itself, so that the WAL starts
                // again from its beginning and its file stops growing (a
                // sync of a file whose size changed writes its inode too;
                // at 1,024 pages the writer spent its time in those
                // checkpoints' syncs: perf sched_switch, B1). Its commits are
                // not synced by SQLite (synchronous = normal: checkpoints and
                // the WAL header after a restart still are); the flusher
                // syncs the WAL before any of them is answered.
                conn.execute_batch(
                    "pragma wal_autocheckpoint = 8192; pragma synchronous = normal;",
                )?;
                let wal = wal_path(path);
                let mut file = None;
                let flusher = Flusher::start(
                    move || sync_wal(&wal, &mut file),
                    sender.clone(),
                    stats.clone(),
                    broken.clone(),
                )?;
                (Some(Checkpointer::start(&location)?), flusher)
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

/// `f` as a job for the writer, and where its result arrives once the
/// commit is known.
fn job<T, F>(f: F) -> (Job, Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
    let job: Job = Box::new(move |run| {
        let result = match run {
            Run::Refused(why) => Err(why),
            Run::Now(conn) => match catch_unwind(AssertUnwindSafe(|| f(conn))) {
                Ok(result) => result,
                Err(panic) => Err(Error::Internal(format!(
                    "a write panicked: {}",
                    panic_message(&panic)
                ))),
            },
        };
        let own = result.as_ref().map(|_| ()).map_err(Error::clone);
        let completion: Completion = Box::new(move |commit| {
            // A write that failed is told its own error: nothing of it
            // was to be committed anyway.
            let outcome = match (commit, result) {
                (Ok(()), result) | (Err(_), result @ Err(_)) => result,
                (Err(e), Ok(_)) => Err(e),
            };
            tx.send(outcome).ok();
        });
        (own, completion)
    });
    (job, rx)
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
    /// Starts the thread, which opens its connection itself: opening one
    /// compiles the whole schema, a seventh of a start's instructions
    /// (callgrind). Should it fail, the thread logs it and leaves every
    /// checkpoint to the writer's backstop (`wal_autocheckpoint`).
    fn start(location: &Location) -> Result<Checkpointer> {
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
    fn ask(&self) {
        self.wake.try_send(()).ok();
    }

    fn stop(self) {
        drop(self.wake);
        self.handle.join().ok();
    }
}

fn writer_loop(
    conn: Connection,
    receiver: Receiver<Message>,
    stats: &WriterStats,
    checkpointer: Option<Checkpointer>,
    flusher: Flusher,
) {
    let mut commits_since_checkpoint = 0;
    let mut failures = RepeatedFailure::new(module_path!());
    // Background writes taken off the channel and not run yet.
    let mut background: VecDeque<Job> = VecDeque::new();
    let mut open: Option<Batch> = None;
    let mut last_background = Instant::now();
    // Writes run in one transaction until the flusher is free to sync it:
    // everything that arrives while a sync runs shares the next commit (and
    // a page changed by several of them is written once). Foreground writes
    // run as they arrive; background ones fill the time left, and join a
    // commit that foreground writes wait for only when they have waited
    // `BACKGROUND_STARVED` (one then): a ticker job in every such commit
    // made each client's answer wait for its fulfilments (B1 perf: a job of
    // 8 is about 0.7 ms of the writer and much of a commit's pages). A commit is
    // forced when the transaction is full or has run its time: a slow sync
    // or a long tick must not hold other writes' answers back.
    loop {
        let idle = flusher.idle();
        let starved = last_background.elapsed() >= BACKGROUND_STARVED;
        let may_background = open.as_ref().is_none_or(|b| b.takes_background(starved));
        let can_work = (may_background && !background.is_empty())
            || (idle && open.as_ref().is_some_and(|b| !b.is_empty()));
        let message = if can_work {
            match receiver.try_recv() {
                Ok(message) => Some(message),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => Some(Message::Stop),
            }
        } else {
            Some(receiver.recv().unwrap_or(Message::Stop))
        };
        match message {
            Some(Message::Write(job, Priority::Foreground)) => {
                stats.foreground_queued.fetch_sub(1, Ordering::SeqCst);
                open.get_or_insert_with(|| Batch::begin(&conn)).run(
                    &conn,
                    job,
                    Priority::Foreground,
                );
            }
            Some(Message::Write(job, Priority::Background)) => background.push_back(job),
            Some(Message::Flushed) => {}
            Some(Message::Stop) => break,
            None => match may_background.then(|| background.pop_front()).flatten() {
                Some(job) => {
                    last_background = Instant::now();
                    open.get_or_insert_with(|| Batch::begin(&conn)).run(
                        &conn,
                        job,
                        Priority::Background,
                    )
                }
                None => {
                    if let Some(batch) = open.take() {
                        commit(&conn, batch, stats, &flusher, &mut failures);
                        commits_since_checkpoint += 1;
                    }
                }
            },
        }
        if open.as_ref().is_some_and(Batch::must_commit) {
            if let Some(batch) = open.take() {
                commit(&conn, batch, stats, &flusher, &mut failures);
                commits_since_checkpoint += 1;
            }
        }
        if commits_since_checkpoint >= CHECKPOINT_EVERY {
            if let Some(c) = &checkpointer {
                c.ask();
            }
            commits_since_checkpoint = 0;
        }
    }
    // Stopping: what was queued still runs (and commits) before the close.
    let mut last = open.unwrap_or_else(|| Batch::begin(&conn));
    for job in background.drain(..) {
        last.run(&conn, job, Priority::Background);
    }
    commit(&conn, last, stats, &flusher, &mut failures);
    flusher.stop();
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

/// Commits `batch` and hands its writes to the flusher to be answered.
fn commit(
    conn: &Connection,
    batch: Batch,
    stats: &WriterStats,
    flusher: &Flusher,
    failures: &mut RepeatedFailure,
) {
    // Numbered before it begins: a reader may see it from then on.
    let seq = flusher.begin();
    let (completions, commit) = batch.commit(conn);
    let commit = match commit {
        Ok(()) => {
            failures.succeeded("writes are committed");
            Ok(())
        }
        Err((what, err)) => {
            failures.failed(what, &err);
            Err(err)
        }
    };
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats
        .writes
        .fetch_add(completions.len() as u64, Ordering::Relaxed);
    flusher.answer(completions, commit, seq);
}

const BROKEN: &str =
    "the database could not be synced to disk; writes are refused until regdesk is restarted";

/// The WAL file SQLite keeps beside the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Syncs the data of the WAL file to disk. A sync through any descriptor of
/// a file flushes all of its written pages, SQLite's writes included. The
/// directory is synced too the first time, for the file's own entry.
fn sync_wal(wal: &Path, file: &mut Option<std::fs::File>) -> std::io::Result<()> {
    let file = match file {
        Some(file) => file,
        None => {
            let opened = std::fs::OpenOptions::new().write(true).open(wal)?;
            sync_parent(wal);
            file.insert(opened)
        }
    };
    file.sync_data()
}

/// A commit's writes, waiting for their answer.
struct Committed {
    completions: Vec<Completion>,
    commit: Result<()>,
    /// Its number (`Progress::begin`).
    seq: u64,
}

/// How far the commits have got: begun (readers may see one from then on)
/// and synced to disk.
#[derive(Default)]
struct Progress {
    begun: AtomicU64,
    /// Every commit up to this one is on disk (or failed, with nothing to
    /// sync).
    synced: Mutex<u64>,
    changed: Condvar,
}

impl Progress {
    /// A commit is about to begin: its number.
    fn begin(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.synced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every commit up to `seq` is on disk.
    fn synced(&self, seq: u64) {
        let mut synced = self.lock();
        *synced = (*synced).max(seq);
        self.changed.notify_all();
    }

    /// A sync failed: the durable reads waiting learn that none will be
    /// answered (they look at `broken`).
    fn failed(&self) {
        let _synced = self.lock();
        self.changed.notify_all();
    }

    /// Waits until every commit begun so far is on disk; an error once a
    /// sync failed (`broken`: none will be) or after `DURABLE_WAIT`.
    fn wait_for_begun(&self, broken: &AtomicBool) -> Result<()> {
        let target = self.begun.load(Ordering::SeqCst);
        let deadline = Instant::now() + DURABLE_WAIT;
        let mut synced = self.lock();
        while *synced < target {
            if broken.load(Ordering::SeqCst) {
                return Err(Error::Unavailable(BROKEN.into()));
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(Error::Unavailable(
                    "the database's commits were not synced in time".into(),
                ));
            };
            synced = self
                .changed
                .wait_timeout(synced, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }
}

/// Answers committed writes: at once when there is no file to sync (an
/// in-memory database), else from a thread that syncs first.
enum Flusher {
    Inline,
    Thread {
        sender: mpsc::Sender<Committed>,
        /// Commits handed over and not answered yet.
        pending: Arc<AtomicUsize>,
        handle: JoinHandle<()>,
        progress: Arc<Progress>,
    },
}

impl Flusher {
    /// Starts the thread that calls `sync` and then answers every commit
    /// that arrived before the sync began, and tells the writer through
    /// `waker`. After a failed sync, every commit is answered with an error
    /// and `broken` is set (what the kernel failed to write may be gone from
    /// its cache: no later sync can vouch for it).
    fn start(
        mut sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
        waker: SyncSender<Message>,
        stats: Arc<WriterStats>,
        broken: Arc<AtomicBool>,
    ) -> Result<Flusher> {
        let (sender, receiver) = mpsc::channel::<Committed>();
        let pending = Arc::new(AtomicUsize::new(0));
        let answered = pending.clone();
        let progress = Arc::new(Progress::default());
        let commits = progress.clone();
        let handle = thread::Builder::new()
            .name("regdesk-flush".into())
            .spawn(move || {
                let mut failure: Option<String> = None;
                while let Ok(first) = receiver.recv() {
                    let mut ready = vec![first];
                    ready.extend(receiver.try_iter());
                    if failure.is_none() && ready.iter().any(|c| c.commit.is_ok()) {
                        stats.syncs.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = sync() {
                            log::error!("syncing the database to disk failed: {e}");
                            broken.store(true, Ordering::SeqCst);
                            failure = Some(e.to_string());
                        }
                    }
                    let n = ready.len();
                    let last = ready.iter().map(|c| c.seq).max().unwrap_or(0);
                    if failure.is_none() {
                        commits.synced(last);
                    } else {
                        commits.failed();
                    }
                    for Committed {
                        completions,
                        commit,
                        ..
                    } in ready
                    {
                        let outcome = match (&failure, commit) {
                            (Some(e), Ok(())) => Err(Error::Unavailable(format!("{BROKEN} ({e})"))),
                            (_, commit) => commit,
                        };
                        for completion in completions {
                            completion(outcome.clone());
                        }
                    }
                    answered.fetch_sub(n, Ordering::SeqCst);
                    // Wakes a writer waiting to commit; a full queue means
                    // it is busy and looks again after its next write.
                    waker.try_send(Message::Flushed).ok();
                }
            })?;
        Ok(Flusher::Thread {
            sender,
            pending,
            handle,
            progress,
        })
    }

    /// Where durable reads learn how far commits have got (none inline:
    /// there is no sync to wait for).
    fn progress(&self) -> Option<Arc<Progress>> {
        match self {
            Flusher::Inline => None,
            Flusher::Thread { progress, .. } => Some(progress.clone()),
        }
    }

    /// A commit is about to begin: its number, for `answer`.
    fn begin(&self) -> u64 {
        match self {
            Flusher::Inline => 0,
            Flusher::Thread { progress, .. } => progress.begin(),
        }
    }

    /// Whether no commit waits for a sync.
    fn idle(&self) -> bool {
        match self {
            Flusher::Inline => true,
            Flusher::Thread { pending, .. } => pending.load(Ordering::SeqCst) == 0,
        }
    }

    fn answer(&self, completions: Vec<Completion>, commit: Result<()>, seq: u64) {
        match self {
            Flusher::Inline => {
                for completion in completions {
                    completion(commit.clone());
                }
            }
            Flusher::Thread {
                sender, pending, ..
            } => {
                pending.fetch_add(1, Ordering::SeqCst);
                if let Err(mpsc::SendError(c)) = sender.send(Committed {
                    completions,
                    commit,
                    seq,
                }) {
                    // The thread is gone (it only ends when told): answer
                    // without a promise of durability.
                    pending.fetch_sub(1, Ordering::SeqCst);
                    for completion in c.completions {
                        completion(Err(Error::Unavailable(BROKEN.into())));
                    }
                }
            }
        }
    }

    /// Answers what is left and ends the thread.
    fn stop(self) {
        if let Flusher::Thread { sender, handle, .. } = self {
            drop(sender);
            handle.join().ok();
        }
    }
}

/// One write transaction of the writer: jobs run as they come, each in its
/// own savepoint, and their completions wait for the commit.
struct Batch {
    started: Instant,
    /// Why the transaction failed (it could not begin, or SQLite ended it
    /// inside a write), and where; later jobs are then not run.
    failed: Option<(&'static str, Error)>,
    completions: Vec<Completion>,
    /// Foreground and background writes in this batch.
    foreground: usize,
    background: usize,
}

impl Batch {
    fn begin(conn: &Connection) -> Batch {
        let failed = run_cached(conn, &["begin immediate"])
            .err()
            .map(|e| ("cannot begin a write transaction", Error::from(e)));
        Batch {
            started: Instant::now(),
            failed,
            completions: Vec::new(),
            foreground: 0,
            background: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.completions.is_empty()
    }

    /// How long the transaction may take in more writes.
    fn budget(&self) -> Duration {
        if self.foreground > 0 {
            MAX_BATCH_TIME
        } else {
            MAX_BACKGROUND_BATCH_TIME
        }
    }

    /// Whether it is full or has run its time.
    fn must_commit(&self) -> bool {
        self.completions.len() >= MAX_BATCH || self.started.elapsed() >= self.budget()
    }

    /// Whether a background write may join. None joins a commit that
    /// foreground writes wait for, unless background writes have waited
    /// `BACKGROUND_STARVED` (`starved`): then one does, so that a steady
    /// stream of clients' writes slows the ticker but never stops it.
    fn takes_background(&self, starved: bool) -> bool {
        (self.foreground == 0 || (self.background == 0 && starved)) && !self.must_commit()
    }

    fn run(&mut self, conn: &Connection, job: Job, priority: Priority) {
        match priority {
            Priority::Foreground => self.foreground += 1,
            Priority::Background => self.background += 1,
        }
        if let Some((_, failed)) = &self.failed {
            self.completions.push(job(Run::Refused(failed.clone())).1);
            return;
        }
        // The job until it runs; what to do once the commit is known, after.
        let mut job = Some(job);
        let mut completion = None;
        let ran = in_savepoint(conn, "job", || match job.take() {
            Some(job) => {
                let (outcome, done) = job(Run::Now(conn));
                completion = Some(done);
                outcome
            }
            None => Ok(()),
        });
        match (completion, job) {
            (Some(done), _) => {
                self.completions.push(done);
                // The savepoint failed around a write that ran (SQLite
                // ended the transaction inside it, or the savepoint could
                // not be released or rolled back): what the batch wrote is
                // gone or in doubt. It fails whole; later writes do not run
                // in it.
                if let Err(err) = ran {
                    self.failed = Some(("the write transaction failed", err));
                }
            }
            (None, Some(job)) => {
                // The savepoint could not begin: the write never ran.
                let err = ran
                    .err()
                    .unwrap_or_else(|| Error::Internal("a write was not run".into()));
                log::error!("savepoint failed: {err}");
                self.completions.push(job(Run::Refused(err)).1);
            }
            (None, None) => {}
        }
    }

    /// Commits, or says why the transaction failed and where.
    fn commit(self, conn: &Connection) -> (Vec<Completion>, Result<(), (&'static str, Error)>) {
        if let Some(failed) = self.failed {
            return (self.completions, Err(failed));
        }
        let commit = run_cached(conn, &["commit"]).map_err(|e| {
            conn.execute_batch("rollback").ok();
            ("commit failed", Error::from(e))
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

/// Writes a consistent copy of the database `src` to `dst`, synced.
fn copy_into(src: &Path, dst: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute("vacuum into ?1", [dst.to_string_lossy().to_string()])?;
    drop(conn);
    std::fs::File::open(dst)?.sync_all()?;
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

    /// A background write sees a foreground write waiting for the writer
    /// (a tick job stops early for it), and no longer once it was taken.
    #[test]
    fn a_background_write_sees_a_foreground_write_wait() {
        let db = Db::open(Location::Memory).unwrap();
        assert!(!db.foreground_waiting());
        let (started, running) = mpsc::channel::<()>();
        let watcher = db.clone();
        let background = db
            .send(
                move |_: &Connection| {
                    started.send(()).ok();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !watcher.foreground_waiting() && Instant::now() < deadline {
                        thread::yield_now();
                    }
                    Ok(watcher.foreground_waiting())
                },
                Priority::Background,
            )
            .unwrap();
        running.recv().unwrap();
        let foreground = db
            .send(|_: &Connection| Ok(()), Priority::Foreground)
            .unwrap();
        assert!(background.recv().unwrap().unwrap(), "never saw it wait");
        foreground.recv().unwrap().unwrap();
        assert!(!db.foreground_waiting());
        db.close();
    }

    /// A customer account written through the writer (its own commit).
    fn add_customer(db: &Db, name: &str) -> Result<()> {
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

    /// Background writes go on while foreground writes keep coming.
    #[test]
    fn a_stream_of_foreground_writes_slows_background_writes_but_never_stops_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(Location::File(dir.path().join("desk.db"))).unwrap();
        let streaming = Arc::new(AtomicBool::new(true));
        let gave_up = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (db, streaming, gave_up) = (db.clone(), streaming.clone(), gave_up.clone());
                thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while streaming.load(Ordering::SeqCst) {
                        if Instant::now() > deadline {
                            gave_up.store(true, Ordering::SeqCst);
                            break;
                        }
                        db.write(|_| Ok(())).unwrap();
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(50));
        let background = db
            .write_background((0..20).map(|i| move |_: &Connection| Ok(i)).collect())
            .unwrap();
        // Done while the foreground stream still ran.
        assert!(!gave_up.load(Ordering::SeqCst));
        streaming.store(false, Ordering::SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        let done: Vec<i32> = background.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(done, (0..20).collect::<Vec<_>>());
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

    /// A completion that records what `synced` said when it was answered.
    fn recorder(synced: &Arc<AtomicU64>, answers: &mpsc::Sender<(u64, Result<()>)>) -> Completion {
        let (synced, answers) = (synced.clone(), answers.clone());
        Box::new(move |outcome| {
            answers.send((synced.load(Ordering::SeqCst), outcome)).ok();
        })
    }

    /// Commits are answered only after a sync that began after them, and
    /// the writer hears of each sync.
    #[test]
    fn the_flusher_answers_only_after_a_sync() {
        let synced = Arc::new(AtomicU64::new(0));
        let counter = synced.clone();
        let (waker, woken) = mpsc::sync_channel(8);
        let stats = Arc::new(WriterStats::default());
        let broken = Arc::new(AtomicBool::new(false));
        let flusher = Flusher::start(
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
            waker,
            stats.clone(),
            broken.clone(),
        )
        .unwrap();
        let (answers, answered) = mpsc::channel();
        for _ in 0..3 {
            flusher.answer(vec![recorder(&synced, &answers)], Ok(()), flusher.begin());
        }
        for _ in 0..3 {
            let (syncs, outcome) = answered.recv().unwrap();
            assert!(syncs >= 1, "answered before any sync");
            outcome.unwrap();
        }
        assert!(matches!(woken.recv().unwrap(), Message::Flushed));
        flusher.stop();
        assert!((1..=3).contains(&stats.syncs.load(Ordering::SeqCst)));
        assert!(!broken.load(Ordering::SeqCst));
    }

    /// A failed sync fails its writes and every later one, and marks the
    /// database broken.
    #[test]
    fn a_failed_sync_fails_the_writes_and_every_later_one() {
        let (waker, _woken) = mpsc::sync_channel(8);
        let broken = Arc::new(AtomicBool::new(false));
        let flusher = Flusher::start(
            || Err(std::io::Error::other("the disk is gone")),
            waker,
            Arc::new(WriterStats::default()),
            broken.clone(),
        )
        .unwrap();
        let synced = Arc::new(AtomicU64::new(0));
        let (answers, answered) = mpsc::channel();
        flusher.answer(vec![recorder(&synced, &answers)], Ok(()), flusher.begin());
        let (_, first) = answered.recv().unwrap();
        flusher.answer(vec![recorder(&synced, &answers)], Ok(()), flusher.begin());
        let (_, second) = answered.recv().unwrap();
        for outcome in [first, second] {
            match outcome {
                Err(Error::Unavailable(m)) => assert!(m.contains("the disk is gone"), "{m}"),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert!(broken.load(Ordering::SeqCst));
        flusher.stop();
    }

    /// A durable read returns only once every commit begun before it ended
    /// is synced; after a failed sync it is refused.
    #[test]
    fn a_durable_read_waits_for_the_sync_of_every_commit_it_could_see() {
        let (release, released) = mpsc::channel::<bool>();
        let (waker, _woken) = mpsc::sync_channel(8);
        let broken = Arc::new(AtomicBool::new(false));
        let flusher = Flusher::start(
            move || match released.recv() {
                Ok(true) => Ok(()),
                _ => Err(std::io::Error::other("the disk is gone")),
            },
            waker,
            Arc::new(WriterStats::default()),
            broken.clone(),
        )
        .unwrap();
        let progress = flusher.progress().unwrap();
        // Nothing begun: nothing to wait for.
        progress.wait_for_begun(&broken).unwrap();
        let waits = |progress: &Arc<Progress>| {
            let (progress, broken) = (progress.clone(), broken.clone());
            let (done, finished) = mpsc::channel();
            thread::spawn(move || done.send(progress.wait_for_begun(&broken)).ok());
            finished
        };
        let first = flusher.begin();
        let waiting = waits(&progress);
        flusher.answer(Vec::new(), Ok(()), first);
        assert!(
            waiting.recv_timeout(Duration::from_millis(200)).is_err(),
            "returned before the sync"
        );
        release.send(true).unwrap();
        waiting.recv().unwrap().unwrap();
        // A commit that fails its sync: the read is refused, not answered.
        let second = flusher.begin();
        let waiting = waits(&progress);
        flusher.answer(Vec::new(), Ok(()), second);
        release.send(false).unwrap();
        match waiting.recv().unwrap() {
            Err(Error::Unavailable(m)) => assert!(m.contains("could not be synced"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        flusher.stop();
    }

    /// Concurrent writers on a file share commits and syncs, and every
    /// answered write is there after a reopen.
    #[test]
    fn concurrent_writes_share_syncs_and_all_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("desk.db"));
        let db = Db::open(location.clone()).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let db = db.clone();
                thread::spawn(move || {
                    for i in 0..25 {
                        add_customer(&db, &format!("w{t}-{i}")).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (writes, syncs) = (
            db.stats().writes.load(Ordering::SeqCst),
            db.stats().syncs.load(Ordering::SeqCst),
        );
        assert_eq!(writes, 400);
        assert!(syncs < writes, "{syncs} syncs for {writes} writes");
        db.close();
        let db = Db::open(location).unwrap();
        let n: i64 = db
            .read(|conn| Ok(conn.query_row("select count(*) from accounts", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 400);
        db.close();
    }

    /// A full disk makes SQLite roll back the whole transaction from inside
    /// a write (here the database's page limit stands in for the disk).
    /// Every write of the batch is refused as `StorageFull` and nothing of
    /// it is committed: not the write before it, and not the one after it,
    /// whose savepoint would otherwise have begun and committed a
    /// transaction of its own.
    #[test]
    fn a_full_disk_refuses_the_whole_batch_and_commits_nothing_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let conn = nearly_full(&dir.path().join("full.db"));
        let insert = |rows: usize| {
            move |conn: &Connection| -> Result<()> {
                for _ in 0..rows {
                    conn.execute("insert into t values (randomblob(400))", [])?;
                }
                Ok(())
            }
        };
        let mut batch = Batch::begin(&conn);
        let (before, before_rx) = job(insert(1));
        let (filling, filling_rx) = job(insert(100));
        let (after, after_rx) = job(insert(1));
        for j in [before, filling, after] {
            batch.run(&conn, j, Priority::Foreground);
        }
        let (completions, commit) = batch.commit(&conn);
        let commit = commit.map_err(|(_, e)| e);
        assert_eq!(commit, Err(Error::StorageFull));
        for completion in completions {
            completion(commit.clone());
        }
        for rx in [before_rx, filling_rx, after_rx] {
            assert_eq!(committed(rx), Err(Error::StorageFull));
        }
        let rows: i64 = conn
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        assert!(conn.is_autocommit());

        // With room again, the next batch commits.
        conn.query_row("pragma max_page_count = 1000000", [], |_| Ok(()))
            .unwrap();
        let mut batch = Batch::begin(&conn);
        let (one, one_rx) = job(insert(1));
        batch.run(&conn, one, Priority::Foreground);
        let (completions, commit) = batch.commit(&conn);
        let commit = commit.map_err(|(_, e)| e);
        for completion in completions {
            completion(commit.clone());
        }
        assert_eq!(committed(one_rx), Ok(()));
        let rows: i64 = conn
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    /// V6 builds the portfolio, the mail outbox and the delivery log again:
    /// a database at V5 keeps every row and index through it, and each
    /// state check still refuses what it refused, now without a temporary
    /// B-tree per write.
    #[test]
    fn rows_and_indexes_survive_v6_and_checks_still_refuse() {
        let mut conn = Connection::open_in_memory().unwrap();
        embedded::migrations::runner()
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
                 where type = 'index' order by name)",
            ]
            .iter()
            .map(|sql| conn.query_row(sql, [], |r| r.get(0)).unwrap())
            .collect()
        };
        let before = dump(&conn);
        assert_eq!(migrate(&mut conn).unwrap(), 1);
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
        assert_eq!(migrate(&mut conn).unwrap() as i64, LATEST_MIGRATION);
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
        assert_eq!(migrate(&mut migrated).unwrap() as i64, LATEST_MIGRATION);
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
