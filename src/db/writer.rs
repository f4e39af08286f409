//! The writer thread and group commit: writes run as they arrive, each in
//! a savepoint of one transaction, which commits when the flusher is free to
//! sync it; clients' writes go before the ticker's.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::checkpointer::{Checkpointer, CHECKPOINT_EVERY};
use super::flusher::Flusher;
use super::{panic_message, Completion, WriterStats};
use crate::error::{Error, RepeatedFailure, Result};
use crate::store::in_savepoint;

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

/// Runs inside the writer's transaction (or is told why it cannot); hands
/// back its error if it failed (its savepoint is then rolled back) and what
/// to do once the commit is known.
pub(super) type Job = Box<dyn FnOnce(Run<'_>) -> (Result<()>, Completion) + Send>;

/// What the writer does with a job.
pub(super) enum Run<'a> {
    /// Run it now, inside a savepoint of this connection's transaction.
    Now(&'a Connection),
    /// It cannot run in this transaction: its caller is told why.
    Refused(Error),
}

pub(super) enum Message {
    Write(Job, Priority),
    /// From the flusher: a sync ended (the writer may commit again).
    Flushed,
    Stop,
}

/// Whose write it is. A person or a client waits for a foreground write;
/// background writes (the ticker's) yield to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Priority {
    Foreground,
    Background,
}

/// `f` as a job for the writer, and where its result arrives once the
/// commit is known.
pub(super) fn job<T, F>(f: F) -> (Job, Receiver<Result<T>>)
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
pub(super) fn committed<T>(rx: Receiver<Result<T>>) -> Result<T> {
    rx.recv()
        .map_err(|_| Error::Internal("the database writer dropped a write".into()))?
}

pub(super) fn writer_loop(
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
    // made each client's answer wait for its fulfilments (a job is much of
    // a commit's time and pages). A commit is
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::nearly_full;
    use crate::db::tests::add_customer;
    use crate::db::{Db, Location};
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::thread;

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
}
