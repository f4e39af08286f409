//! Everything that leaves regdesk: notification webhooks (`webhooks`) and
//! mail (`mail`), sent by a small pool of threads, and the pieces every
//! sender shares: the bounded signed POST (`http`, also the webhook
//! provider's), the rule on where a customer's webhook may point
//! (`address`) and the one retry policy (`backoff`).
//!
//! Storage writes the rows to send in the transaction of the change that
//! caused them (`store::deliveries`); the outbox reads what is due, sends
//! it outside any transaction and writes the outcome, so a crash loses
//! nothing (what was not marked sent is sent again). Each endpoint (an
//! account's webhook, the SMTP server) has at most one send in flight, and
//! its deliveries go out in order: a slow or failing endpoint delays only
//! its own later deliveries, never another's.

pub mod address;
pub mod http;
pub mod mail;
pub mod webhooks;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::db::Db;
use crate::doorbell::Doorbell;
use crate::error::{Error, RepeatedFailure, Result};
use crate::random;
use crate::store::deliveries::{self, Due, DueMail};

/// Sends in flight at once, each on a thread of the pool.
const POOL: usize = 4;
/// Rounds per `run_until_idle` at most, so that it always returns.
const MAX_ROUNDS: usize = 1000;
/// No retry waits longer than this.
pub const MAX_DELAY_MS: u64 = 60 * 60 * 1000;

/// How long the `attempt`-th retry of any send waits: `base * 2^(attempt-1)`,
/// at most an hour, of which the second half is random so that retries
/// spread out.
pub fn backoff(base_ms: u64, attempt: i64) -> Millis {
    let shift = attempt.clamp(1, 31) - 1;
    let full = base_ms.saturating_mul(1u64 << shift).min(MAX_DELAY_MS);
    let half = full / 2;
    (half + (random::unit() * half as f64) as u64) as Millis
}

/// Where sends go, one at a time each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    /// An account's notification webhook.
    Webhook(i64),
    /// The SMTP server.
    Mail,
}

/// What one job sends.
enum Work {
    /// An endpoint's first due delivery, and those after it while they
    /// succeed.
    Webhook(Due),
    /// A batch of due mail.
    Mail(Vec<DueMail>),
}

type Job = Box<dyn FnOnce() + Send>;

/// The senders: a thread that hands due work to the pool, and the pool.
pub struct Outbox {
    db: Db,
    clock: Clock,
    interval: Duration,
    webhooks: webhooks::Settings,
    /// `None` without `--smtp-url`: mail then waits in the outbox.
    mail: Option<mail::Settings>,
    /// Endpoints with a send in flight.
    busy: Mutex<HashSet<Endpoint>>,
    /// Told whenever an endpoint is free again.
    freed: Condvar,
    /// The pool's queue, once it runs (without it, sends run on the caller).
    jobs: Mutex<Option<Sender<Job>>>,
    /// Sends tried since the start.
    tried: AtomicUsize,
    /// A failure that repeats (a full disk) is logged once.
    failures: Mutex<RepeatedFailure>,
    bell: Doorbell,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbox {
    /// From a checked configuration (`Config::check`).
    pub fn new(db: Db, clock: Clock, config: &Config) -> Result<Arc<Outbox>> {
        Ok(Arc::new(Outbox {
            db,
            clock,
            interval: Duration::from_millis(config.tick_interval_ms),
            webhooks: webhooks::Settings::from_config(config),
            mail: mail::Settings::from_config(config)?,
            busy: Mutex::new(HashSet::new()),
            freed: Condvar::new(),
            jobs: Mutex::new(None),
            tried: AtomicUsize::new(0),
            failures: Mutex::new(RepeatedFailure::new(module_path!())),
            bell: Doorbell::new(),
        }))
    }

    /// Starts the pool and the thread that feeds it.
    pub fn spawn(self: &Arc<Self>) -> Result<Vec<JoinHandle<()>>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(POOL + 1);
        for n in 0..POOL {
            let rx = rx.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("regdesk-outbox-{n}"))
                    .spawn(move || pool_thread(&rx))?,
            );
        }
        *lock(&self.jobs) = Some(tx);
        let me = self.clone();
        threads.push(
            thread::Builder::new()
                .name("regdesk-outbox".into())
                .spawn(move || me.thread_loop())?,
        );
        Ok(threads)
    }

    /// Sends until nothing is due (bounded), waiting for every send in
    /// flight; returns how many sends were tried.
    pub fn run_until_idle(self: &Arc<Self>) -> Result<usize> {
        let before = self.tried.load(Ordering::SeqCst);
        for _ in 0..MAX_ROUNDS {
            if self.bell.stopped() {
                break;
            }
            let started = self.dispatch()?;
            let waited = self.wait_free();
            if started == 0 && !waited {
                break;
            }
        }
        Ok(self.tried.load(Ordering::SeqCst).saturating_sub(before))
    }

    /// Stops feeding the pool; its threads end after their sends.
    pub fn stop(&self) {
        self.bell.stop();
        lock(&self.jobs).take();
    }

    fn thread_loop(self: Arc<Self>) {
        while !self.bell.stopped() {
            // Like the ticker, it rests while the test clock is frozen;
            // `run_until_idle` sends then.
            if !self.clock.is_frozen() {
                let dispatched = self.dispatch().map(|_| 0);
                self.note(dispatched);
            }
            self.bell.wait(self.interval);
        }
    }

    /// Counts the sends tried, or logs a failure (once while it repeats).
    fn note(&self, result: Result<usize>) {
        let mut failures = lock(&self.failures);
        match result {
            Ok(n) => {
                self.tried.fetch_add(n, Ordering::SeqCst);
                failures.succeeded(format_args!("the outbox works"));
            }
            Err(Error::Unavailable(_)) => {}
            Err(e) => {
                failures.failed("the outbox", &e);
            }
        }
    }

    /// Hands the due work of every free endpoint to the pool, as many as it
    /// has threads for; returns how many jobs it started.
    fn dispatch(self: &Arc<Self>) -> Result<usize> {
        let jobs = {
            // Held while reading what is due: an endpoint is freed only
            // after its outcome is written, so what this read sees pending
            // for a free endpoint has not been sent.
            let mut busy = lock(&self.busy);
            let free = POOL.saturating_sub(busy.len());
            if free == 0 {
                return Ok(0);
            }
            let jobs = self.due(&busy, free)?;
            busy.extend(jobs.iter().map(|(endpoint, _)| *endpoint));
            jobs
        };
        let started = jobs.len();
        for (endpoint, work) in jobs {
            self.start(endpoint, work);
        }
        Ok(started)
    }

    /// At most `free` jobs for endpoints not in `busy`.
    fn due(&self, busy: &HashSet<Endpoint>, free: usize) -> Result<Vec<(Endpoint, Work)>> {
        let now = self.clock.now();
        let taken = busy.clone();
        let want_mail = self.mail.is_some() && !busy.contains(&Endpoint::Mail);
        let (heads, mail) = self.db.read_durable(move |conn| {
            let free_hook = |account| !taken.contains(&Endpoint::Webhook(account));
            let heads = deliveries::heads(conn, now, free, free_hook)?;
            let mail = match want_mail {
                true => deliveries::due_mail(conn, now, mail::BATCH)?,
                false => Vec::new(),
            };
            Ok((heads, mail))
        })?;
        let mut jobs: Vec<(Endpoint, Work)> = Vec::with_capacity(heads.len() + 1);
        if !mail.is_empty() {
            jobs.push((Endpoint::Mail, Work::Mail(mail)));
        }
        for d in heads {
            jobs.push((Endpoint::Webhook(d.account_id), Work::Webhook(d)));
        }
        jobs.truncate(free);
        Ok(jobs)
    }

    /// Runs a job on the pool (or here, when the pool does not run).
    fn start(self: &Arc<Self>, endpoint: Endpoint, work: Work) {
        let me = self.clone();
        let job: Job = Box::new(move || {
            let _busy = Busy {
                outbox: &me,
                endpoint,
            };
            me.send(work);
        });
        let queued = match &*lock(&self.jobs) {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            // Stopped: nothing more leaves.
            None if self.bell.stopped() => return,
            None => Err(job),
        };
        if let Err(job) = queued {
            job();
        }
    }

    fn send(&self, work: Work) {
        let sent = match work {
            Work::Webhook(due) => webhooks::send(&self.db, &self.clock, &self.webhooks, due),
            Work::Mail(batch) => match &self.mail {
                Some(settings) => mail::send(&self.db, &self.clock, settings, batch),
                None => Ok(0),
            },
        };
        self.note(sent);
    }

    /// Waits until no send is in flight; says whether there was one.
    fn wait_free(&self) -> bool {
        let mut busy = lock(&self.busy);
        let waited = !busy.is_empty();
        while !busy.is_empty() {
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        waited
    }
}

/// An endpoint's send in flight; freeing it (even after a panic) lets its
/// next delivery go, and wakes whoever waits.
struct Busy<'a> {
    outbox: &'a Outbox,
    endpoint: Endpoint,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        lock(&self.outbox.busy).remove(&self.endpoint);
        self.outbox.freed.notify_all();
        self.outbox.bell.ring();
    }
}

/// A thread of the pool: runs jobs until the queue closes. A job that
/// panics is logged by the panic hook and the thread goes on.
fn pool_thread(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = lock(rx).recv();
        match job {
            Ok(job) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).ok();
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = backoff(100, attempt);
            let full = (100u64 << (attempt.min(31) - 1)).min(MAX_DELAY_MS) as i64;
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}");
        }
    }
}
