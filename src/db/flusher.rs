//! The flusher thread: syncs the WAL after each commit and only then
//! answers the commit's writes; `Progress` tells durable reads how far the
//! syncs have got.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::open::sync_parent;
use super::{Completion, WriterStats};
use crate::error::{Error, Result};

/// How long a durable read waits for the sync of what it saw.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

pub(super) const BROKEN: &str =
    "the database could not be synced to disk; writes are refused until regdesk is restarted";

/// The WAL file SQLite keeps beside the database at `path`.
pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Syncs the data of the WAL file to disk. A sync through any descriptor of
/// a file flushes all of its written pages, SQLite's writes included. The
/// directory is synced too the first time, for the file's own entry.
pub(super) fn sync_wal(wal: &Path, file: &mut Option<std::fs::File>) -> std::io::Result<()> {
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
pub(super) struct Committed {
    completions: Vec<Completion>,
    commit: Result<()>,
    /// Its number (`Progress::begin`).
    seq: u64,
}

/// How far the commits have got: begun (readers may see one from then on)
/// and synced to disk.
#[derive(Default)]
pub(super) struct Progress {
    begun: AtomicU64,
    /// Every commit up to this one is on disk (or failed, with nothing to
    /// sync).
    synced: Mutex<u64>,
    changed: Condvar,
}

impl Progress {
    /// A commit is about to begin: its number.
    pub(super) fn begin(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.synced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every commit up to `seq` is on disk.
    pub(super) fn synced(&self, seq: u64) {
        let mut synced = self.lock();
        *synced = (*synced).max(seq);
        self.changed.notify_all();
    }

    /// A sync failed: the durable reads waiting learn that none will be
    /// answered (they look at `broken`).
    pub(super) fn failed(&self) {
        let _synced = self.lock();
        self.changed.notify_all();
    }

    /// Waits until every commit begun so far is on disk; an error once a
    /// sync failed (`broken`: none will be) or after `DURABLE_WAIT`.
    pub(super) fn wait_for_begun(&self, broken: &AtomicBool) -> Result<()> {
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
pub(super) enum Flusher {
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
    pub(super) fn start(
        mut sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
        waker: impl Fn() + Send + 'static,
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
                    // Wakes a writer waiting to commit.
                    waker();
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
    pub(super) fn progress(&self) -> Option<Arc<Progress>> {
        match self {
            Flusher::Inline => None,
            Flusher::Thread { progress, .. } => Some(progress.clone()),
        }
    }

    /// A commit is about to begin: its number, for `answer`.
    pub(super) fn begin(&self) -> u64 {
        match self {
            Flusher::Inline => 0,
            Flusher::Thread { progress, .. } => progress.begin(),
        }
    }

    /// Whether no commit waits for a sync.
    pub(super) fn idle(&self) -> bool {
        match self {
            Flusher::Inline => true,
            Flusher::Thread { pending, .. } => pending.load(Ordering::SeqCst) == 0,
        }
    }

    pub(super) fn answer(&self, completions: Vec<Completion>, commit: Result<()>, seq: u64) {
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
    pub(super) fn stop(self) {
        if let Flusher::Thread { sender, handle, .. } = self {
            drop(sender);
            handle.join().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (wake, woken) = mpsc::sync_channel(8);
        let waker = move || {
            wake.try_send(()).ok();
        };
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
        woken.recv().unwrap();
        flusher.stop();
        assert!((1..=3).contains(&stats.syncs.load(Ordering::SeqCst)));
        assert!(!broken.load(Ordering::SeqCst));
    }

    /// A failed sync fails its writes and every later one, and marks the
    /// database broken.
    #[test]
    fn a_failed_sync_fails_the_writes_and_every_later_one() {
        let waker = || {};
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
        let waker = || {};
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
}
