//! The ticker: a thread that, at its own pace, fails requests whose
//! dependency failed, claims due `queued` requests, fulfils claimed ones
//! through the provider and ends waits that timed out; first, it moves
//! domains along their lifecycle (`desk::lifecycle`). Each step is bounded
//! (`BATCH` requests) and each request's change commits with all its effects.
//! `run_until_idle` can also be called directly (tests, the test clock).

use crate::store::in_savepoint;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock::{Clock, Millis};
use crate::db::Db;
use crate::desk::lifecycle;
use crate::doorbell::Doorbell;
use crate::error::{Error, RepeatedFailure, Result};
use crate::registry::{Provider, Verdict};
use crate::state::{Event, State, WaitingOn};
use crate::store::due::{self, Due};
use crate::store::transition::{self, Change, Moves, Next, Subject, Who};
use crate::store::{requests, Connection};

/// Requests handled per step of one write job.
///
/// Small on purpose: a job runs in the writer's savepoint, and when it is
/// run again request by request (`Isolation::Request`), each request's savepoint
/// release walks SQLite's in-memory statement journal from the job's start,
/// so a job costs the square of its size. A tick sends `JOBS`
/// such jobs at once instead; they share commits, and other writes queue
/// between them rather than behind a tick.
pub const BATCH: i64 = 8;
/// Write jobs one tick sends the writer.
const JOBS: usize = 32;
/// Requests sent to an external provider per tick: each is an HTTP call.
const EXTERNAL_BATCH: i64 = 16;
/// Ticks per `run_until_idle` at most, so that it always returns.
const MAX_TICKS: usize = 10_000;

#[derive(Debug, Default)]
pub struct TickerStats {
    pub ticks: AtomicU64,
    pub progressed: AtomicU64,
    pub last_tick_at: AtomicI64,
    pub running: AtomicBool,
}

pub struct Ticker {
    db: Db,
    clock: Clock,
    provider: Arc<dyn Provider>,
    /// One tick at a time, whoever runs it.
    running: Mutex<()>,
    bell: Doorbell,
    interval: Duration,
    pub stats: TickerStats,
    /// Ticks ended, and their waiters (a face waiting for a request to end).
    ended: (Mutex<u64>, std::sync::Condvar),
    /// How long a transfer between accounts here waits on the holder.
    transfer_wait: Millis,
    lifecycle: lifecycle::Schedule,
}

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub dependency_failed: usize,
    pub claimed: usize,
    pub fulfilled: usize,
    pub waits_ended: usize,
    /// Domain lifecycle steps done.
    pub lifecycle: usize,
}

impl TickReport {
    pub fn total(&self) -> usize {
        self.dependency_failed + self.claimed + self.fulfilled + self.waits_ended + self.lifecycle
    }

    fn add(&mut self, other: &TickReport) {
        self.dependency_failed += other.dependency_failed;
        self.claimed += other.claimed;
        self.fulfilled += other.fulfilled;
        self.waits_ended += other.waits_ended;
        self.lifecycle += other.lifecycle;
    }
}

impl Ticker {
    pub fn new(db: Db, clock: Clock, provider: Arc<dyn Provider>, interval: Duration) -> Ticker {
        Ticker {
            db,
            clock,
            provider,
            running: Mutex::new(()),
            bell: Doorbell::new(),
            interval,
            stats: TickerStats::default(),
            ended: Default::default(),
            transfer_wait: crate::registry::simulated::AUTO_APPROVE,
            lifecycle: lifecycle::Schedule::default(),
        }
    }

    /// Sets how long a transfer between accounts waits on the holder.
    pub fn with_transfer_wait(mut self, wait: Millis) -> Ticker {
        self.transfer_wait = wait;
        self
    }

    /// The ticker with the lifecycle's periods from the serve flags.
    pub fn with_lifecycle(mut self, schedule: lifecycle::Schedule) -> Ticker {
        self.lifecycle = schedule;
        self
    }

    /// The lifecycle's periods the sweep follows.
    pub fn lifecycle(&self) -> &lifecycle::Schedule {
        &self.lifecycle
    }

    /// Asks the thread to tick now rather than at the next interval.
    pub fn wake(&self) {
        self.bell.ring();
    }

    /// Ticks until nothing is due (bounded). Returns what was done.
    pub fn run_until_idle(&self) -> Result<TickReport> {
        let _guard = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = TickReport::default();
        for _ in 0..MAX_TICKS {
            let report = self.tick_locked()?;
            total.add(&report);
            // Stopping does not wait for a backlog: what is left is still
            // queued, and is done after the next start.
            if report.total() == 0 || self.bell.stopped() {
                break;
            }
        }
        Ok(total)
    }

    fn tick_locked(&self) -> Result<TickReport> {
        let now = self.clock.now();
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        self.stats.last_tick_at.store(now, Ordering::Relaxed);
        let swept = lifecycle::sweep_jobs(&self.db, &self.lifecycle, now)?;
        if !self.db.read(move |conn| due::anything(conn, now))? {
            return Ok(TickReport {
                lifecycle: swept,
                ..TickReport::default()
            });
        }
        // A job that finds less than a batch in every step has left nothing
        // due, and the jobs after it stop at once (a tick for one request
        // ran every query of every job otherwise). What comes due after
        // that is the next tick's.
        let drained = Arc::new(AtomicBool::new(false));
        let jobs = (0..JOBS)
            .map(|_| {
                let provider = self.provider.clone();
                let drained = drained.clone();
                let db = self.db.clone();
                move |conn: &Connection| {
                    if drained.load(Ordering::Relaxed) {
                        return Ok(TickReport::default());
                    }
                    let yield_to = || db.foreground_waiting();
                    let job = tick_in(
                        conn,
                        provider.as_ref(),
                        now,
                        Isolation::Job,
                        BATCH,
                        &yield_to,
                    )?;
                    if job.drained {
                        drained.store(true, Ordering::Relaxed);
                    }
                    Ok(job.report)
                }
            })
            .collect();
        let mut report = TickReport {
            lifecycle: swept,
            ..TickReport::default()
        };
        // Transfers between two accounts here wait on the holder, not on a
        // provider: started, and approved by time, before the jobs run.
        let wait = self.transfer_wait;
        let between = move |conn: &Connection| crate::store::transfers::tick(conn, now, wait);
        for moved in self.db.write_background(vec![between])? {
            match moved {
                Ok(n) => report.waits_ended += n,
                Err(e) => log::error!("transfers between accounts: {e}"),
            }
        }
        let mut failed = None;
        for done in self.db.write_background(jobs)? {
            match done {
                Ok(done) => report.add(&done),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            // A request failed its job, which was rolled back whole, and so
            // was every later job that met it. One job does their work
            // again with a savepoint per request, so that only that request
            // is left out (and logged once a tick).
            log::debug!("a tick job failed ({e}); running it again with a savepoint per request");
            let provider = self.provider.clone();
            let again = move |conn: &Connection| {
                tick_in(
                    conn,
                    provider.as_ref(),
                    now,
                    Isolation::Request,
                    BATCH * JOBS as i64,
                    &|| false,
                )
            };
            for done in self.db.write_background(vec![again])? {
                report.add(&done?.report);
            }
        }
        if self.provider.external().is_some() {
            report.fulfilled += self.fulfil_external(now)?;
        }
        self.stats
            .progressed
            .fetch_add(report.total() as u64, Ordering::Relaxed);
        *self.ended.0.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.ended.1.notify_all();
        Ok(report)
    }

    /// How many ticks have ended that did work.
    pub fn ticks_ended(&self) -> u64 {
        *self.ended.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps until more than `seen` ticks that did work have ended, or
    /// `timeout` passes.
    pub fn wait_tick(&self, seen: u64, timeout: Duration) {
        let ended = self.ended.0.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .ended
            .1
            .wait_timeout_while(ended, timeout, |n| *n <= seen);
    }

    /// Runs `f` while no tick runs (an admin reset empties the database
    /// and moves the clock back between two ticks, never during one).
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        f()
    }

    /// Fulfils claimed requests through an external provider: reads them,
    /// calls the provider outside any transaction, then commits each verdict
    /// in a write that first checks the request still waits for it (a
    /// concurrent change wins).
    fn fulfil_external(&self, now: Millis) -> Result<usize> {
        let provider = self.provider.clone();
        let jobs = self.db.read_durable(move |conn| {
            let Some(ext) = provider.external() else {
                return Ok(Vec::new());
            };
            let mut jobs = Vec::new();
            for id in due::ids(conn, Due::Fulfil, now, EXTERNAL_BATCH)? {
                let req = requests::load(conn, id)?;
                match ext.payload(conn, &req, now) {
                    Ok(payload) => jobs.push((req, payload)),
                    Err(e) => log::error!("request {id}: {e}"),
                }
            }
            Ok(jobs)
        })?;
        let mut done = 0;
        for (req, payload) in jobs {
            // Stopping must not wait for a batch of slow calls; what is left
            // is still processing and is called again at the next start.
            if self.bell.stopped() {
                break;
            }
            let Some(ext) = self.provider.external() else {
                break;
            };
            let verdict = ext.call(&payload, now);
            let provider = self.provider.clone();
            let now = self.clock.now().max(now);
            let settled = self.db.write(move |conn| {
                let current = requests::load(conn, req.id)?;
                let unchanged = current.state == State::Processing
                    && current.waiting_on == Some(WaitingOn::Internal)
                    && current.attempts == req.attempts;
                if !unchanged {
                    return Ok(false);
                }
                let who = Who::system(provider.name());
                settle(conn, provider.as_ref(), &current, verdict, &who, now)
            });
            match settled {
                Ok(progressed) => done += usize::from(progressed),
                Err(e) => log::error!("request {}: {e}", req.id),
            }
        }
        Ok(done)
    }

    /// Starts the ticker thread.
    pub fn spawn(self: &Arc<Self>) -> Result<JoinHandle<()>> {
        let me = self.clone();
        self.stats.running.store(true, Ordering::SeqCst);
        Ok(thread::Builder::new()
            .name("regdesk-ticker".into())
            .spawn(move || me.thread_loop())?)
    }

    fn thread_loop(&self) {
        let mut failures = RepeatedFailure::new(module_path!());
        while !self.bell.stopped() {
            // A frozen test clock stops the world: work is done only when the
            // clock moves or a tick is asked for, so tests see every state.
            if !self.clock.is_frozen() {
                match self.run_until_idle() {
                    Ok(_) => failures.succeeded("ticks work"),
                    Err(Error::Unavailable(_)) => {}
                    Err(e) => {
                        failures.failed("tick failed", &e);
                    }
                }
            }
            self.bell.wait(self.interval);
        }
        self.stats.running.store(false, Ordering::SeqCst);
    }

    /// Asks the thread to stop after the tick in progress.
    pub fn stop(&self) {
        self.bell.stop();
    }
}

/// How a tick job keeps one request's failure from the others'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// The job in one savepoint (the writer's) and no other: the first
    /// failure fails the whole job, which the writer rolls back.
    /// Savepoints are what a job costs most (SQLite copies every page a
    /// savepoint is the first to change into its statement journal), and
    /// failures are rare.
    Job,
    /// A savepoint per request, and per provider answer, for the tick's
    /// work done again after a job failed: a failing request is logged and
    /// left, the others go on; an answer whose effects cannot be applied is
    /// settled as an unexpected error.
    Request,
}

/// Runs `f` for each id; in `Isolation::Request` each in its own
/// savepoint, so that one request's failure is logged and rolled back
/// without touching the others.
fn each(
    conn: &Connection,
    isolation: Isolation,
    turn: &mut Turn<'_>,
    ids: Vec<i64>,
    mut f: impl FnMut(i64) -> Result<bool>,
) -> Result<usize> {
    let mut done = 0;
    for id in ids {
        if !turn.goes_on() {
            break;
        }
        turn.tried += 1;
        if isolation == Isolation::Job {
            done += usize::from(f(id)?);
            continue;
        }
        match in_savepoint(conn, "item", || f(id))? {
            Ok(progressed) => done += usize::from(progressed),
            Err(e) => log::error!("request {id}: {e}"),
        }
    }
    Ok(done)
}

/// Whether a job goes on to its next request. It stops once a client's
/// write waits for the writer (`yield_to`), after one request at least;
/// what it leaves is still due, for a later job. Otherwise a client's
/// write waited for a whole job of fulfilments, and a job ran whenever
/// the writer waited for a sync.
struct Turn<'a> {
    yield_to: &'a dyn Fn() -> bool,
    /// Requests this job has taken up.
    tried: usize,
    /// It stopped early.
    over: bool,
}

impl Turn<'_> {
    fn goes_on(&mut self) -> bool {
        if !self.over && self.tried > 0 && (self.yield_to)() {
            self.over = true;
        }
        !self.over
    }
}

/// What one tick job did, and whether it found less than its limit in
/// every step (so that nothing was left due when it ended).
struct Job {
    report: TickReport,
    drained: bool,
}

/// What every step of a tick job works with.
struct Step<'a> {
    conn: &'a Connection,
    provider: &'a dyn Provider,
    isolation: Isolation,
    now: Millis,
    /// The ticker, which claims and times out.
    system: Who,
    /// The provider, whose answers settle.
    registry: Who,
}

/// One tick job: at most `limit` requests in each step, stopping early
/// when `yield_to` says a client's write waits (`Turn`).
fn tick_in(
    conn: &Connection,
    provider: &dyn Provider,
    now: Millis,
    isolation: Isolation,
    limit: i64,
    yield_to: &dyn Fn() -> bool,
) -> Result<Job> {
    let at = Step {
        conn,
        provider,
        isolation,
        now,
        system: Who::system("ticker"),
        registry: Who::system(provider.name()),
    };
    let mut report = TickReport::default();
    let mut turn = Turn {
        yield_to,
        tried: 0,
        over: false,
    };
    let mut drained = true;
    // The ids a step's query finds (none once the job has stopped).
    let mut step = |turn: &mut Turn<'_>, ids: &dyn Fn() -> Result<Vec<i64>>| {
        if !turn.goes_on() {
            drained = false;
            return Ok(Vec::new());
        }
        let ids = ids()?;
        drained &= (ids.len() as i64) < limit;
        Ok::<_, Error>(ids)
    };

    let ids = step(&mut turn, &|| {
        due::ids(conn, Due::DependencyFailed, now, limit)
    })?;
    report.dependency_failed = each(conn, isolation, &mut turn, ids, |id| {
        let req = requests::load(conn, id)?;
        let change = Change {
            reason: req.depends_on.map(|d| format!("request {d} failed")),
            ..Change::default()
        };
        transition::apply(conn, req, Event::DependencyFailed, &at.system, change, now)?;
        Ok(true)
    })?;

    // Claims answered at once, which the fulfilment step below leaves.
    let mut answered = std::collections::HashSet::new();
    let ids = step(&mut turn, &|| due::claims(conn, now, limit))?;
    report.claimed = each(conn, isolation, &mut turn, ids, |id| {
        if claim(&at, requests::load(conn, id)?)? {
            answered.insert(id);
        }
        Ok(true)
    })?;
    report.fulfilled = answered.len();

    // An external provider is called outside this transaction
    // (`Ticker::fulfil_external`).
    let ids = if provider.external().is_some() {
        Vec::new()
    } else {
        step(&mut turn, &|| due::ids(conn, Due::Fulfil, now, limit))?
            .into_iter()
            .filter(|id| !answered.contains(id))
            .collect()
    };
    report.fulfilled += each(conn, isolation, &mut turn, ids, |id| {
        let req = requests::load(conn, id)?;
        let verdict = provider.fulfil(conn, &req, now)?;
        settle_or_retry(&at, &req, verdict)
    })?;

    let ids = step(&mut turn, &|| due::ids(conn, Due::WaitOver, now, limit))?;
    report.waits_ended = each(conn, isolation, &mut turn, ids, |id| {
        let req = requests::load(conn, id)?;
        let verdict = provider.wait_over(conn, &req, now)?;
        settle_or_retry(&at, &req, verdict)
    })?;
    let drained = drained && !turn.over;
    Ok(Job { report, drained })
}

/// Claims `before`, a due queued request. A provider that answers in this
/// transaction is asked about the request as claimed, and an answer that
/// moves it on is written with the claim, as one update of its row
/// (`transition::Moves::Then`); whether it was answered.
fn claim(at: &Step<'_>, before: requests::Request) -> Result<bool> {
    let (conn, now) = (at.conn, at.now);
    let claim_alone = |subject: Subject| {
        transition::apply(
            conn,
            subject,
            Event::Claim,
            &at.system,
            Change::default(),
            now,
        )
    };
    if at.provider.external().is_some() {
        claim_alone(before.into())?;
        return Ok(false);
    }
    // An answer the second move cannot carry (no change of state, or one
    // with its own attempt count) is written after the claim.
    let left = std::cell::Cell::new(None);
    let answer = |claimed: &requests::Request| {
        let verdict = at.provider.fulfil(conn, claimed, now)?;
        Ok(match settlement(at.provider, claimed, verdict, now) {
            Settlement::Move {
                event,
                change,
                attempts,
            } if attempts == claimed.attempts => Some(Next {
                event,
                who: at.registry.clone(),
                change,
            }),
            other => {
                left.set(Some(other));
                None
            }
        })
    };
    let id = before.id;
    let with_answer = || {
        let moves = Moves::Then(Event::Claim, &answer);
        let claimed = transition::apply(conn, before, moves, &at.system, Change::default(), now)?;
        match left.take() {
            Some(other) => apply_settlement(conn, &claimed, other, &at.registry, now),
            None => Ok(true),
        }
    };
    // Rare: the request is read again, as the rollback left it.
    or_unexpected(at, id, with_answer, |verdict| {
        let claimed = claim_alone(Subject::Id(id))?;
        settle(conn, at.provider, &claimed, verdict, &at.registry, now)
    })
}

/// Settles `verdict` for `req` (`or_unexpected`).
fn settle_or_retry(at: &Step<'_>, req: &requests::Request, verdict: Verdict) -> Result<bool> {
    let settle_with = |verdict| settle(at.conn, at.provider, req, verdict, &at.registry, at.now);
    or_unexpected(at, req.id, || settle_with(verdict), settle_with)
}

/// Writes a provider's answer with `write`. In `Isolation::Request`, when
/// its effects cannot be applied (the portfolio changed under the
/// registry's answer, say), the attempt counts as an unexpected error,
/// written with `instead`. Leaving the request as it was would retry it on
/// every tick forever; this way it is retried a bounded number of times
/// and then goes to limbo, where an operator is told. In `Isolation::Job`
/// a failure fails the job, and the tick's work is done again request by
/// request.
fn or_unexpected(
    at: &Step<'_>,
    id: i64,
    write: impl FnOnce() -> Result<bool>,
    instead: impl FnOnce(Verdict) -> Result<bool>,
) -> Result<bool> {
    if at.isolation == Isolation::Job {
        return write();
    }
    match in_savepoint(at.conn, "settle", write)? {
        Err(e @ (Error::Conflict(_) | Error::Invalid { .. } | Error::NotFound(_))) => {
            log::warn!("request {id}: {}", e.message());
            instead(Verdict::Unexpected {
                message: e.message(),
            })
        }
        outcome => outcome,
    }
}

/// Turns a provider's verdict into the request's next state.
pub fn settle(
    conn: &Connection,
    provider: &dyn Provider,
    req: &requests::Request,
    verdict: Verdict,
    who: &Who,
    now: Millis,
) -> Result<bool> {
    apply_settlement(conn, req, settlement(provider, req, verdict, now), who, now)
}

/// Writes what `settlement` decided for `req`.
fn apply_settlement(
    conn: &Connection,
    req: &requests::Request,
    settlement: Settlement,
    who: &Who,
    now: Millis,
) -> Result<bool> {
    match settlement {
        Settlement::Move {
            event,
            change,
            attempts,
        } => {
            let before = requests::Request {
                attempts,
                ..req.clone()
            };
            transition::apply(conn, before, event, who, change, now)?;
        }
        Settlement::Defer { until } => {
            // Not a change of state: the provider answers later.
            due::defer(conn, req.id, until)?;
        }
        Settlement::Retry {
            attempts,
            at,
            message,
        } => {
            // Not a change of state: the next attempt is scheduled.
            due::retry(conn, req.id, attempts, at, &message, now)?;
        }
    }
    Ok(true)
}

/// What a verdict does to a processing request.
enum Settlement {
    /// An event, with the attempt count the request keeps through it (one
    /// more than it had when the last attempt sends it to limbo).
    Move {
        event: Event,
        change: Change,
        attempts: i64,
    },
    /// No change of state: the provider answers later.
    Defer { until: Millis },
    /// No change of state: the attempt failed and another is scheduled.
    Retry {
        attempts: i64,
        at: Millis,
        message: String,
    },
}

fn settlement(
    provider: &dyn Provider,
    req: &requests::Request,
    verdict: Verdict,
    now: Millis,
) -> Settlement {
    let (event, change) = match verdict {
        Verdict::Accept => (Event::Accepted, Change::default()),
        Verdict::Defer { until } => return Settlement::Defer { until },
        Verdict::Wait { on, until, note } => (
            Event::Wait(on),
            Change {
                reason: Some(note),
                wait_until: until,
                ..Change::default()
            },
        ),
        Verdict::UserError { field, message } => (
            Event::UserError,
            Change {
                reason: Some(message.clone()),
                annotation: Some(message),
                missing: Some(vec![field]),
                ..Change::default()
            },
        ),
        Verdict::Refuse { failure, message } => (
            Event::Refused(failure),
            Change {
                reason: Some(message),
                ..Change::default()
            },
        ),
        Verdict::Unexpected { message } => {
            let attempts = req.attempts + 1;
            if attempts < provider.max_attempts() {
                return Settlement::Retry {
                    attempts,
                    at: now + provider.retry_delay(attempts),
                    message,
                };
            }
            // Written by the transition, which keeps the count into limbo.
            return Settlement::Move {
                event: Event::Unexpected,
                change: Change {
                    reason: Some(format!("{message} (after {attempts} attempts)")),
                    last_error: Some(message),
                    ..Change::default()
                },
                attempts,
            };
        }
    };
    Settlement::Move {
        event,
        change,
        attempts: req.attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Cached;

    /// A request that cannot be handled fails its job; the job runs again a
    /// request at a time, and the others in it finish.
    #[test]
    fn a_request_that_fails_leaves_the_others_of_its_job_to_finish() {
        use crate::clock::Clock;
        use crate::db::{Db, Location};
        use crate::registry::simulated::Simulated;

        let db = Db::open(Location::Memory).unwrap();
        db.write(|conn| {
            conn.execute_batch(
                "insert into accounts (id, name, email, role, created_at)
                 values (1, 'owner', 'o@example.net', 'customer', 0);
                 insert into requests (id, account_id, domain, operation, params, state, created_at, updated_at)
                 values (1, 1, 'broken.com', 'create', 'not json', 'queued', 0, 0),
                        (2, 1, 'fine.com', 'create',
                         '{\"contacts\":{\"owner\":{\"name\":\"O\",\"email\":\"o@example.net\"}}}',
                         'queued', 0, 0);",
            )?;
            Ok(())
        })
        .unwrap();
        let ticker = Ticker::new(
            db.clone(),
            Clock::test(),
            Arc::new(Simulated),
            Duration::from_secs(1),
        );
        let report = ticker.run_until_idle().unwrap();
        assert_eq!((report.claimed, report.fulfilled), (1, 1), "{report:?}");
        let states = db
            .read(|conn| {
                Ok(conn.all("select state from requests order by id", [], |r| {
                    r.get::<_, String>(0)
                })?)
            })
            .unwrap();
        assert_eq!(states, ["queued", "finished"]);
        db.close();
    }

    /// Every cached statement of an order's way through submit, the ticker
    /// and the notification queue is compiled once, however its values
    /// change.
    /// A migrated in-memory database with one customer, who acts as `Who`.
    fn database_with_owner() -> (Connection, crate::store::accounts::Account, Who) {
        use crate::store::accounts::{self, NewAccount, Role};
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let new_account = NewAccount {
            name: "owner".into(),
            email: "owner@example.net".into(),
            role: Role::Customer,
            review_limit_cents: None,
            review_all: false,
        };
        let owner = accounts::create(&conn, &new_account, "rd_owner_token", 0).unwrap();
        let who = Who::account(&owner);
        (conn, owner, who)
    }

    /// A registration of `domain` by `owner`, created and submitted at `t`.
    fn submitted_order(
        conn: &Connection,
        owner: &crate::store::accounts::Account,
        who: &Who,
        domain: &str,
        t: Millis,
    ) -> requests::Request {
        let new = requests::NewRequest {
            account_id: owner.id,
            domain: domain.into(),
            operation: crate::state::Operation::Create,
            params: serde_json::json!({"contacts": {"owner": {"name": "O", "email": "o@example.net"}}}),
            exec_date: None,
            depends_on: None,
        };
        let (r, _) = transition::create(conn, &new, who, None, t).unwrap();
        crate::desk::orders::submit(conn, r.id, who, t).unwrap()
    }

    /// A claim whose one allowed attempt fails goes to limbo with that
    /// attempt counted, whether the job has a savepoint per request or
    /// not.
    #[test]
    fn a_last_failed_attempt_counts_in_either_isolation() {
        struct OneAttempt;
        impl Provider for OneAttempt {
            fn name(&self) -> &'static str {
                "one-attempt"
            }
            fn fulfil(&self, _: &Connection, _: &requests::Request, _: Millis) -> Result<Verdict> {
                Ok(Verdict::Unexpected {
                    message: "registry down".into(),
                })
            }
            fn wait_over(
                &self,
                c: &Connection,
                r: &requests::Request,
                t: Millis,
            ) -> Result<Verdict> {
                self.fulfil(c, r, t)
            }
            fn max_attempts(&self) -> i64 {
                1
            }
        }

        let (conn, owner, who) = database_with_owner();
        for (i, isolation) in [Isolation::Job, Isolation::Request].into_iter().enumerate() {
            let r = submitted_order(&conn, &owner, &who, &format!("down-{i}.com"), 1_000);
            tick_in(&conn, &OneAttempt, 2_000, isolation, BATCH, &|| false).unwrap();
            let r = requests::load(&conn, r.id).unwrap();
            assert_eq!((r.state, r.attempts), (State::Limbo, 1), "{isolation:?}");
            let to: Vec<String> = requests::history(&conn, r.id)
                .unwrap()
                .into_iter()
                .map(|h| h.to)
                .collect();
            assert_eq!(
                to,
                ["new", "queued", "processing", "limbo"],
                "{isolation:?}"
            );
        }
    }

    /// A job stops before its next request once a client's write waits,
    /// after one request at least, and says it left work due; the next
    /// job takes up the rest.
    #[test]
    fn a_job_stops_for_a_waiting_client_after_one_request_and_leaves_the_rest_due() {
        use crate::registry::simulated::Simulated;

        let (conn, owner, who) = database_with_owner();
        let ids: Vec<i64> = (0..5)
            .map(|i| submitted_order(&conn, &owner, &who, &format!("wait-{i}.com"), 1_000).id)
            .collect();
        let finished = || {
            ids.iter()
                .filter(|&&id| requests::load(&conn, id).unwrap().state == State::Finished)
                .count()
        };
        let asked = std::cell::Cell::new(0);
        let client_waits = || {
            asked.set(asked.get() + 1);
            true
        };
        let job = tick_in(
            &conn,
            &Simulated,
            2_000,
            Isolation::Job,
            BATCH,
            &client_waits,
        )
        .unwrap();
        assert_eq!((job.report.claimed, job.drained), (1, false));
        assert_eq!(finished(), 1);
        assert_eq!(asked.get(), 1, "asked again after it stopped");
        // No client waiting: the next job does the other four and leaves
        // nothing due.
        let job = tick_in(&conn, &Simulated, 2_000, Isolation::Job, BATCH, &|| false).unwrap();
        assert_eq!((job.report.claimed, job.drained), (4, true));
        assert_eq!(finished(), 5);
    }

    #[test]
    fn an_order_end_to_end_compiles_each_statement_once() {
        use crate::registry::simulated::Simulated;
        use crate::store::{accounts, notifications, recompiled};

        let (conn, owner, who) = database_with_owner();
        recompiled::take();
        for (i, isolation) in [
            Isolation::Job,
            Isolation::Job,
            Isolation::Request,
            Isolation::Request,
        ]
        .into_iter()
        .enumerate()
        {
            let t = 1_000 * (i as i64 + 1);
            let r = submitted_order(&conn, &owner, &who, &format!("order-{i}.com"), t);
            let report = tick_in(&conn, &Simulated, t + 1, isolation, BATCH, &|| false)
                .unwrap()
                .report;
            assert_eq!((report.claimed, report.fulfilled), (1, 1), "{report:?}");
            assert_eq!(requests::load(&conn, r.id).unwrap().state, State::Finished);
            let n = notifications::oldest_unread(&conn, owner.id)
                .unwrap()
                .unwrap();
            notifications::mark_read(&conn, owner.id, n.id, t + 2).unwrap();
            accounts::authenticate(&conn, "rd_owner_token").unwrap();
            // What `GET /requests/{id}` reads.
            requests::history(&conn, r.id).unwrap();
            requests::annotations(&conn, &[r.id, r.id + 1]).unwrap();
            requests::invoice_items(&conn, r.id).unwrap();
            notifications::for_request(&conn, r.id).unwrap();
        }
        assert_eq!(recompiled::take(), Vec::<String>::new());
    }
}
