//! The domain lifecycle on the one clock: the steps of each cycle
//! (reminders, auto-renew, expiry, grace, redemption, pending delete,
//! deletion), the sweep that does each once and in order however far the
//! clock moved, a domain's RGP status, and the use cases of the lifecycle
//! (lists by lifecycle and expiry, the auto-renew switches, bulk renewal).

use serde_json::{json, Value};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::clock::{self, Millis, DAY};
use crate::config::LifecycleFlags;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::state::{Event, Operation};
use crate::store::accounts::{self, Account};
use crate::store::domains;
use crate::store::lifecycle::{self as life, DomainFilter, Life, WAIT};
use crate::store::notifications;
use crate::store::requests::NewRequest;
use crate::store::transition::{self, Change, Then, Who};
use crate::store::Connection;
use crate::App;

use super::orders;

/// When, after expiry, the last reminder goes out (ICANN: within five days).
const LATE_REMINDER: Millis = 3 * DAY;
/// Domains a bulk renewal orders at most.
pub const MAX_BULK: i64 = 1000;

/// The lifecycle's periods, from the serve flags.
#[derive(Debug, Clone)]
pub struct Schedule {
    grace: Millis,
    redemption: Millis,
    pending_delete: Millis,
    /// Days before expiry, largest first.
    reminders: Vec<i64>,
    auto_renew: Millis,
    /// When the lifecycle began, in a database that held domains before
    /// it had one: no step falls due before then.
    began: Option<Millis>,
}

impl Schedule {
    pub fn from_flags(f: &LifecycleFlags) -> Schedule {
        let mut reminders = f.renew_reminder_days.clone();
        reminders.sort_unstable_by(|a, b| b.cmp(a));
        reminders.dedup();
        Schedule {
            grace: f.renew_grace_days * DAY,
            redemption: f.redemption_days * DAY,
            pending_delete: f.pending_delete_days * DAY,
            reminders,
            auto_renew: f.auto_renew_days * DAY,
            began: None,
        }
    }

    /// This schedule in a database whose lifecycle began at `began`
    /// (`store::lifecycle::started_at`).
    fn since(&self, began: Option<Millis>) -> Schedule {
        Schedule {
            began,
            ..self.clone()
        }
    }

    /// This schedule in the database of `conn`.
    fn in_db(&self, conn: &Connection) -> Result<Schedule> {
        Ok(self.since(life::started_at(conn)?))
    }
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule::from_flags(&LifecycleFlags::default())
    }
}

/// One step of a domain's cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A reminder this many days before expiry.
    Reminder(i64),
    /// The auto-renewal order, when the domain's switch is on.
    AutoRenew,
    /// Once that order ended: operators are told when it failed.
    AutoRenewCheck,
    Expired,
    /// The reminder after expiry.
    LateReminder,
    Redemption,
    PendingDelete,
    Delete,
}

impl Step {
    pub fn name(self) -> String {
        match self {
            Step::Reminder(days) => format!("reminder-{days}"),
            Step::AutoRenew => "auto-renew".into(),
            Step::AutoRenewCheck => "auto-renew-check".into(),
            Step::Expired => "expired".into(),
            Step::LateReminder => "reminder-after".into(),
            Step::Redemption => "redemption".into(),
            Step::PendingDelete => "pending-delete".into(),
            Step::Delete => "delete".into(),
        }
    }

    fn parse(name: &str) -> Option<Step> {
        Some(match name {
            "auto-renew" => Step::AutoRenew,
            "auto-renew-check" => Step::AutoRenewCheck,
            "expired" => Step::Expired,
            "reminder-after" => Step::LateReminder,
            "redemption" => Step::Redemption,
            "pending-delete" => Step::PendingDelete,
            "delete" => Step::Delete,
            other => Step::Reminder(other.strip_prefix("reminder-")?.parse().ok()?),
        })
    }

    /// The lifecycle a domain is in once this step is done.
    fn leaves(self) -> Option<&'static str> {
        match self {
            Step::Expired => Some("expired"),
            Step::Redemption => Some("redemption"),
            Step::PendingDelete => Some("pending_delete"),
            _ => None,
        }
    }
}

impl Schedule {
    /// The steps of the cycle that ends at `expires_at`, in the order they
    /// happen. Where the lifecycle began after some of them fell due, those
    /// are left out, and an expiry that had passed by then counts from
    /// then: a domain the desk did not follow is neither reminded late nor
    /// deleted at once, but enters its grace period when the lifecycle began.
    pub fn steps(&self, expires_at: Millis) -> Vec<(Millis, Step)> {
        let Some(began) = self.began else {
            return self.cycle(expires_at, expires_at);
        };
        let mut steps = self.cycle(expires_at, expires_at.max(began));
        steps.retain(|(at, _)| *at >= began);
        steps
    }

    /// The steps of a cycle: those before expiry counted from `e`, the
    /// expiry and those after it from `expired` (a reminder before an
    /// auto-renewal due at the same time).
    fn cycle(&self, e: Millis, expired: Millis) -> Vec<(Millis, Step)> {
        let mut steps: Vec<(Millis, Step)> = self
            .reminders
            .iter()
            .map(|d| (e - d * DAY, Step::Reminder(*d)))
            .collect();
        steps.push((e - self.auto_renew, Step::AutoRenew));
        steps.push((e - self.auto_renew, Step::AutoRenewCheck));
        steps.push((expired, Step::Expired));
        steps.push((expired + LATE_REMINDER, Step::LateReminder));
        let redemption = expired + self.grace;
        steps.push((redemption, Step::Redemption));
        steps.push((redemption + self.redemption, Step::PendingDelete));
        let delete = redemption + self.redemption + self.pending_delete;
        steps.push((delete, Step::Delete));
        // Stable: ties keep the order above.
        steps.sort_by_key(|(at, _)| *at);
        steps
    }

    /// How long before expiry a cycle's first step is due (when no step
    /// is left out).
    pub fn first_offset(&self) -> Millis {
        self.cycle(0, 0).first().map_or(0, |(at, _)| -at)
    }

    /// The next step of a domain as stored (`step`, `step_at`): none is
    /// the first step of the cycle ending at `expires_at`.
    pub fn next_of(&self, life: &Life) -> Option<(Millis, Step)> {
        match &life.step {
            None => self.steps(life.expires_at).into_iter().next(),
            Some(name) => Some((life.step_at?, Step::parse(name)?)),
        }
    }

    /// The step after the last one of `done` (names), in cycle order.
    fn next_after(&self, expires_at: Millis, done: &[String]) -> Option<(Millis, Step)> {
        let steps = self.steps(expires_at);
        let last = steps.iter().rposition(|(_, s)| done.contains(&s.name()));
        steps.into_iter().nth(last.map_or(0, |i| i + 1))
    }
}

/// What one sweep did, and whether it left nothing due.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub steps: usize,
    pub drained: bool,
}

/// Does the due steps, oldest first, at most `limit`, on the writer's
/// connection. Once a step has placed an order, the sweep stops before the
/// next step that is due later, so that the ticker handles the order
/// before the clock's later steps, whether the clock moved a day or a year.
pub fn sweep(conn: &Connection, schedule: &Schedule, now: Millis, limit: usize) -> Result<Swept> {
    let schedule = &schedule.in_db(conn)?;
    let first = schedule.first_offset();
    let mut steps = 0;
    let mut placed_at: Option<Millis> = None;
    while steps < limit {
        let Some((id, due)) = life::next_due(conn, now, first)? else {
            return Ok(Swept {
                steps,
                drained: true,
            });
        };
        if placed_at.is_some_and(|t| due > t) {
            break;
        }
        steps += 1;
        // One domain's failure is logged and retried a day later; the
        // others go on.
        match crate::store::in_savepoint(conn, "step", || run(conn, schedule, id, due, now))? {
            Ok(true) => placed_at = Some(due),
            Ok(false) => {}
            Err(e) => {
                log::error!("domain {id}: lifecycle step failed: {e}");
                life::delay(conn, id, now + DAY)?;
            }
        }
    }
    Ok(Swept {
        steps,
        drained: false,
    })
}

/// Steps a sweep job does at most.
const SWEEP_BATCH: usize = 64;
/// Sweep jobs one tick sends the writer at most.
const SWEEP_JOBS: usize = 16;

/// One tick's sweep: jobs for the writer (in the background, yielding to
/// clients' writes) until one leaves nothing due. The steps done.
pub fn sweep_jobs(db: &Db, schedule: &Schedule, now: Millis) -> Result<usize> {
    // A look first: most ticks find nothing due, and need no write.
    let first = schedule.first_offset();
    if db
        .read(move |conn| life::next_due(conn, now, first))?
        .is_none()
    {
        return Ok(0);
    }
    let drained = Arc::new(AtomicBool::new(false));
    let jobs = (0..SWEEP_JOBS)
        .map(|_| {
            let (schedule, drained) = (schedule.clone(), drained.clone());
            move |conn: &Connection| {
                if drained.load(Ordering::Relaxed) {
                    return Ok(0);
                }
                let swept = sweep(conn, &schedule, now, SWEEP_BATCH)?;
                // A sweep that stopped for an order it placed leaves the
                // rest to the next tick, after the ticker has handled it.
                if swept.drained || swept.steps < SWEEP_BATCH {
                    drained.store(true, Ordering::Relaxed);
                }
                Ok(swept.steps)
            }
        })
        .collect();
    let mut steps = 0;
    for done in db.write_background(jobs)? {
        steps += done?;
    }
    Ok(steps)
}

/// Moves domain `id`, found due at `found`, one step on; whether the step
/// placed an order.
fn run(
    conn: &Connection,
    schedule: &Schedule,
    id: i64,
    found: Millis,
    now: Millis,
) -> Result<bool> {
    let d = life::load(conn, id)?;
    let Some((due, step)) = schedule.next_of(&d) else {
        reschedule(conn, schedule, &d, now)?;
        return Ok(false);
    };
    // A cycle whose first steps fell due before the lifecycle began starts
    // later than `domains_fresh` says: its first step is scheduled at its
    // time, for the sweep to take it in order.
    if due > found {
        life::set_step(conn, id, &step.name(), Some(due))?;
        return Ok(false);
    }
    // The registry holds a name while it renews or restores it.
    if life::renewal_under_way(conn, &d.name)? {
        life::set_step(conn, id, WAIT, None)?;
        return Ok(false);
    }
    // A step done already (a row written again, a renewal that ended):
    // the next one is worked out from the steps done.
    if !life::record_step(conn, &d, &step.name(), due, now)? {
        reschedule(conn, schedule, &d, now)?;
        return Ok(false);
    }
    let placed = perform(conn, &d, step, now)?;
    let began = schedule.began.filter(|b| *b > d.expires_at);
    if let (Step::Expired, Some(began)) = (step, began) {
        tell_late_expiry(conn, schedule, &d, began, now)?;
    }
    if step != Step::Delete {
        let next = schedule.next_after(d.expires_at, &[step.name()]);
        set_next(conn, id, next)?;
    }
    Ok(placed)
}

fn set_next(conn: &Connection, id: i64, next: Option<(Millis, Step)>) -> Result<()> {
    match next {
        Some((at, step)) => life::set_step(conn, id, &step.name(), Some(at)),
        None => life::set_step(conn, id, WAIT, None),
    }
}

/// Works out a domain's next step from the steps done in its cycle (a row
/// written again, a renewal that ended), and the lifecycle they left it in.
fn reschedule(conn: &Connection, schedule: &Schedule, d: &Life, now: Millis) -> Result<()> {
    life::forget_steps(conn, d.id, d.expires_at)?;
    let done: Vec<String> = life::steps_done(conn, d.id, d.expires_at)?
        .into_iter()
        .map(|s| s.step)
        .collect();
    let lifecycle = done
        .iter()
        .rev()
        .find_map(|s| Step::parse(s)?.leaves())
        .unwrap_or("active");
    if lifecycle != d.lifecycle {
        life::set_lifecycle(conn, d.id, lifecycle, now)?;
    }
    set_next(conn, d.id, schedule.next_after(d.expires_at, &done))
}

/// The effects of `step`; whether it placed an order.
fn perform(conn: &Connection, d: &Life, step: Step, now: Millis) -> Result<bool> {
    let expiry = clock::format_date(d.expires_at);
    match step {
        Step::Reminder(days) => {
            let text = format!("{} expires on {expiry}, in {days} days", d.name);
            remind(conn, d, &text, now)?;
        }
        Step::LateReminder => {
            let text = format!("{} expired on {expiry}; renew it now to keep it", d.name);
            remind(conn, d, &text, now)?;
        }
        Step::AutoRenew if d.auto_renew => {
            let id = place_renewal(conn, d, now)?;
            life::note_step(conn, d, &step.name(), Some(id), None)?;
            return Ok(true);
        }
        Step::AutoRenew => life::note_step(conn, d, &step.name(), None, Some("auto-renew is off"))?,
        Step::AutoRenewCheck => check_auto_renewal(conn, d, now)?,
        Step::Expired | Step::Redemption | Step::PendingDelete => {
            let lifecycle = step.leaves().unwrap_or("active");
            life::set_lifecycle(conn, d.id, lifecycle, now)?;
            if step == Step::Expired {
                life::domain_event(conn, d, "EXPIRED", json!({}), now)?;
            }
            let message = match step {
                Step::Expired => format!("Domain expired on {expiry}"),
                Step::Redemption => "Domain is in redemption: only a restore brings it back".into(),
                _ => "Domain is pending deletion".into(),
            };
            life::notify(conn, d, "expire", lifecycle, &message, now)?;
        }
        Step::Delete => {
            let data = json!({"reason": "expired", "deletion_date": clock::format(now)});
            life::domain_event(conn, d, "DELETED", data, now)?;
            let id = delete(conn, d, now)?;
            life::note_step(conn, d, &step.name(), Some(id), None)?;
            life::forget_steps(conn, d.id, Millis::MAX)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Mails the owner of a domain that had expired before the lifecycle
/// began, which no reminder told of: its grace period runs from then.
fn tell_late_expiry(
    conn: &Connection,
    schedule: &Schedule,
    d: &Life,
    began: Millis,
    now: Millis,
) -> Result<()> {
    let owner = accounts::get(conn, d.account_id)?;
    let subject = format!(
        "[regdesk] {} expired on {}",
        d.name,
        clock::format_date(d.expires_at)
    );
    let body = format!(
        "{} expired on {}, before this desk followed expiries.\n\
         Its grace period runs from {}: renew it by {} to keep it.\n",
        d.name,
        clock::format_date(d.expires_at),
        clock::format_date(began),
        clock::format_date(began + schedule.grace),
    );
    notifications::queue_mail(conn, None, &owner.email, &subject, &body, now)?;
    Ok(())
}

/// A reminder: `domain/expire/reminder` and a mail to the owner.
fn remind(conn: &Connection, d: &Life, text: &str, now: Millis) -> Result<()> {
    life::notify(conn, d, "expire", "reminder", text, now)?;
    let owner = accounts::get(conn, d.account_id)?;
    let auto = if d.auto_renew {
        "Auto-renew is on: a renewal is ordered before it expires."
    } else {
        "Auto-renew is off: renew it to keep it."
    };
    let subject = format!(
        "[regdesk] {} expires on {}",
        d.name,
        clock::format_date(d.expires_at)
    );
    let body = format!("{text}.\n{auto}\n");
    notifications::queue_mail(conn, None, &owner.email, &subject, &body, now)?;
    Ok(())
}

/// The auto-renewal: a `renew` order on the owner's account, placed by the
/// system and charged like any other.
fn place_renewal(conn: &Connection, d: &Life, now: Millis) -> Result<i64> {
    let new = NewRequest {
        account_id: d.account_id,
        domain: d.name.clone(),
        operation: Operation::Renew,
        params: json!({"period": 1}),
        exec_date: None,
        depends_on: None,
    };
    let (req, _) = orders::open_by(conn, &new, &Who::system("system"), None, now)?;
    Ok(req.id)
}

/// Tells the operators when the cycle's auto-renewal failed (the owner was
/// told by the order itself).
fn check_auto_renewal(conn: &Connection, d: &Life, now: Millis) -> Result<()> {
    let placed = life::steps_done(conn, d.id, d.expires_at)?
        .into_iter()
        .find(|s| s.step == Step::AutoRenew.name())
        .and_then(|s| s.request_id);
    let Some(id) = placed else {
        return Ok(());
    };
    if life::request_state(conn, id)?.as_deref() != Some("failed") {
        return Ok(());
    }
    let subject = format!("[regdesk] auto-renewal of {} failed", d.name);
    let body = format!(
        "The auto-renewal of {} (request {id}) failed; it expires on {}.\n",
        d.name,
        clock::format_date(d.expires_at)
    );
    for op in accounts::operators(conn)? {
        notifications::queue_mail(conn, None, &op.email, &subject, &body, now)?;
    }
    life::note_step(
        conn,
        d,
        &Step::AutoRenewCheck.name(),
        Some(id),
        Some("failed"),
    )
}

/// Deletes the domain at the end of pending delete: a `delete` request of
/// the system, finished at once, whose effects remove the domain, tell the
/// owner (`domain/delete/success`) and wake the backorders waiting for
/// the name.
fn delete(conn: &Connection, d: &Life, now: Millis) -> Result<i64> {
    let who = Who::system("system");
    let new = NewRequest {
        account_id: d.account_id,
        domain: d.name.clone(),
        operation: Operation::Delete,
        params: json!({}),
        exec_date: None,
        depends_on: None,
    };
    let submit = Then {
        event: Event::Submit {
            missing: false,
            needs_review: false,
        },
        change: Change::default(),
        first: &|_| Ok(()),
    };
    let (req, _) = transition::create(conn, &new, &who, Some(submit), now)?;
    let reason = |text: &str| Change {
        reason: Some(text.into()),
        ..Change::default()
    };
    let req = transition::apply(conn, req, Event::Claim, &who, Change::default(), now)?;
    let ended = reason("the pending delete period ended");
    Ok(transition::apply(conn, req, Event::Accepted, &who, ended, now)?.id)
}

/// A domain's RGP status (RFC 3915), for faces that show one:
/// `autoRenewPeriod` while it is expired and can still be renewed,
/// `redemptionPeriod`, `pendingRestore` while a restore waits, and
/// `pendingDelete`; none while active.
pub fn rgp_status(conn: &Connection, name: &str) -> Result<Option<&'static str>> {
    let Some(d) = life::by_name(conn, name)? else {
        return Ok(None);
    };
    Ok(match d.lifecycle.as_str() {
        "expired" => Some("autoRenewPeriod"),
        "redemption" if life::restore_in_review(conn, name)? => Some("pendingRestore"),
        "redemption" => Some("redemptionPeriod"),
        "pending_delete" => Some("pendingDelete"),
        _ => None,
    })
}

// ----- use cases ---------------------------------------------------------------

/// A domain's RGP status (`rgp_status`) as a face asks for it.
pub fn rgp(app: &App, name: String) -> Result<Option<&'static str>> {
    app.db.read(move |conn| rgp_status(conn, &name))
}

/// A domain with its lifecycle, as the JSON API shows it.
fn domain_json(conn: &Connection, schedule: &Schedule, d: &domains::Domain) -> Result<Value> {
    let mut v = serde_json::to_value(d)?;
    if let Some(l) = life::by_name(conn, &d.name)? {
        v["lifecycle"] = json!(l.lifecycle);
        v["auto_renew"] = json!(l.auto_renew);
        let next = schedule.next_of(&l);
        v["next_step"] = json!(next.map(|(_, step)| step.name()));
        v["next_step_at"] = json!(next.map(|(at, _)| clock::format(at)));
    }
    Ok(v)
}

/// A page of the domains `filter` selects (within the caller's scope),
/// by name.
pub fn domains(
    app: &App,
    filter: DomainFilter,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<Value>, Option<String>)> {
    let schedule = app.ticker.lifecycle().clone();
    app.db.read(move |conn| {
        let schedule = schedule.in_db(conn)?;
        let (names, next) = life::names(conn, &filter, after.as_deref(), limit)?;
        let mut items = Vec::with_capacity(names.len());
        for name in names {
            if let Some(d) = domains::by_name(conn, &name)? {
                items.push(domain_json(conn, &schedule, &d)?);
            }
        }
        Ok((items, next))
    })
}

/// One domain with its lifecycle and the steps done in its cycle.
pub fn domain(app: &App, caller: &Account, name: String) -> Result<Value> {
    let caller = caller.clone();
    let schedule = app.ticker.lifecycle().clone();
    app.db.read(move |conn| {
        let schedule = schedule.in_db(conn)?;
        let d = visible(conn, &caller, &name)?;
        let mut v = domain_json(conn, &schedule, &d)?;
        v["rgp_status"] = json!(rgp_status(conn, &name)?);
        v["lifecycle_steps"] = serde_json::to_value(life::steps_done(conn, d.id, d.expires_at)?)?;
        Ok(v)
    })
}

/// The caller's domain `name` (any, for an operator); another's is not found.
fn visible(conn: &Connection, caller: &Account, name: &str) -> Result<domains::Domain> {
    domains::by_name(conn, name)?
        .filter(|d| caller.is_operator() || d.account_id == caller.id)
        .ok_or_else(|| Error::not_found(format!("domain {name}")))
}

/// Switches a domain's auto-renewal, by its owner (or an operator).
pub fn set_auto_renew(app: &App, caller: &Account, name: String, on: bool) -> Result<Value> {
    let caller = caller.clone();
    let schedule = app.ticker.lifecycle().clone();
    let now = app.clock.now();
    let v = app.db.write(move |conn| {
        let d = visible(conn, &caller, &name)?;
        life::set_auto_renew(conn, d.id, on, now)?;
        if on {
            renew_if_late(conn, &life::load(conn, d.id)?, now)?;
        }
        let d = visible(conn, &caller, &name)?;
        domain_json(conn, &schedule.in_db(conn)?, &d)
    })?;
    app.ticker.wake();
    Ok(v)
}

/// Auto-renew switched on after this cycle's auto-renewal step passed it
/// by (it was off then): the renewal is placed now, while the domain can
/// still be renewed, rather than letting it lapse.
fn renew_if_late(conn: &Connection, d: &Life, now: Millis) -> Result<()> {
    let passed = life::steps_done(conn, d.id, d.expires_at)?
        .iter()
        .any(|s| s.step == Step::AutoRenew.name() && s.request_id.is_none());
    let renewable = d.lifecycle == "active" || d.lifecycle == "expired";
    if passed && renewable && !life::renewal_under_way(conn, &d.name)? {
        place_renewal(conn, d, now)?;
    }
    Ok(())
}

/// An account's default `auto_renew`, for its domains that have none of
/// their own.
pub fn auto_renew_default(app: &App, caller: &Account, account: Option<i64>) -> Result<bool> {
    let id = super::account_scope(account, caller)?.unwrap_or(caller.id);
    app.db.read(move |conn| life::account_default(conn, id))
}

pub fn set_auto_renew_default(
    app: &App,
    caller: &Account,
    account: Option<i64>,
    on: bool,
) -> Result<bool> {
    let id = super::account_scope(account, caller)?.unwrap_or(caller.id);
    app.db.write(move |conn| {
        life::account_default(conn, id)?;
        life::set_account_default(conn, id, on)?;
        Ok(on)
    })
}

/// Renews every domain `filter` selects (at most `MAX_BULK`), each an
/// order on its owner's account placed by the operator: the orders
/// placed, and the domains refused with why.
pub fn bulk_renew(app: &App, caller: &Account, filter: DomainFilter, period: i64) -> Result<Value> {
    super::require_operator(caller)?;
    let who = Who::account(caller);
    let now = app.clock.now();
    let out = app.db.write(move |conn| {
        // A named account must exist: renewing "none of its domains" for
        // an account that is not there would hide the mistake.
        if let Some(id) = filter.account_id {
            super::accounts::exists(conn, id)?;
        }
        let (names, _) = life::names(conn, &filter, None, MAX_BULK)?;
        let (mut placed, mut refused) = (Vec::new(), Vec::new());
        for name in names {
            let Some(d) = life::by_name(conn, &name)? else {
                continue;
            };
            let new = NewRequest {
                account_id: d.account_id,
                domain: name.clone(),
                operation: Operation::Renew,
                params: json!({ "period": period }),
                exec_date: None,
                depends_on: None,
            };
            match crate::store::in_savepoint(conn, "renew", || {
                orders::open_by(conn, &new, &who, None, now)
            })? {
                Ok((r, _)) => placed
                    .push(json!({"domain": name, "request_id": r.id, "state": r.state.as_str()})),
                Err(e) => refused.push(json!({"domain": name, "error": e.message()})),
            }
        }
        Ok(json!({ "placed": placed, "refused": refused }))
    })?;
    app.ticker.wake();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_has_its_steps_in_order_and_each_name_reads_back() {
        let s = Schedule::default();
        let e = 1_000 * DAY;
        let steps = s.steps(e);
        let names: Vec<String> = steps.iter().map(|(_, step)| step.name()).collect();
        assert_eq!(
            names,
            [
                "reminder-30",
                "auto-renew",
                "auto-renew-check",
                "reminder-7",
                "expired",
                "reminder-after",
                "redemption",
                "pending-delete",
                "delete"
            ]
        );
        let days: Vec<i64> = steps.iter().map(|(at, _)| (at - e) / DAY).collect();
        assert_eq!(days, [-30, -14, -14, -7, 0, 3, 30, 60, 65]);
        for (_, step) in steps {
            assert_eq!(Step::parse(&step.name()), Some(step));
        }
        assert_eq!(Step::parse("reminder-x"), None);
        assert_eq!(Step::parse(WAIT), None);
    }

    #[test]
    fn the_next_step_follows_the_last_one_done() {
        let s = Schedule::default();
        let e = 1_000 * DAY;
        let next = |done: &[&str]| {
            let done: Vec<String> = done.iter().map(|d| d.to_string()).collect();
            s.next_after(e, &done)
                .map(|(at, step)| (step.name(), (at - e) / DAY))
        };
        assert_eq!(next(&[]), Some(("reminder-30".into(), -30)));
        assert_eq!(
            next(&["reminder-30", "expired"]),
            Some(("reminder-after".into(), 3))
        );
        assert_eq!(next(&["delete"]), None);
    }

    #[test]
    fn a_cycle_begun_by_an_upgrade_leaves_out_what_fell_due_before_it() {
        let e = 1_000 * DAY;
        let days = |began: Millis| {
            let s = Schedule::default().since(Some(began));
            s.steps(e)
                .into_iter()
                .map(|(at, step)| (step.name(), (at - began) / DAY))
                .collect::<Vec<_>>()
        };
        let after = |names: &[&str], from: &[i64]| {
            names
                .iter()
                .zip(from)
                .map(|(n, d)| (n.to_string(), *d))
                .collect::<Vec<_>>()
        };
        let late = [
            "expired",
            "reminder-after",
            "redemption",
            "pending-delete",
            "delete",
        ];
        // Expired long before: from the upgrade on.
        assert_eq!(days(e + 400 * DAY), after(&late, &[0, 3, 30, 60, 65]));
        // Expired the day before: grace is counted from the upgrade too.
        assert_eq!(days(e + DAY), after(&late, &[0, 3, 30, 60, 65]));
        // Expiring in ten days: the reminders and the auto-renewal due
        // before the upgrade are left out, the rest as always.
        let ahead = [&["reminder-7"][..], &late[..]].concat();
        assert_eq!(days(e - 10 * DAY), after(&ahead, &[3, 10, 13, 40, 70, 75]));
        // Expiring after every step's time: the cycle is the usual one.
        let far = Schedule::default().since(Some(e - 31 * DAY));
        assert_eq!(far.steps(e), Schedule::default().steps(e));
        assert_eq!(far.first_offset(), 30 * DAY);
    }

    #[test]
    fn reminders_are_sorted_and_each_once() {
        let flags = LifecycleFlags {
            renew_reminder_days: vec![7, 30, 7, 1],
            ..LifecycleFlags::default()
        };
        let s = Schedule::from_flags(&flags);
        let reminders: Vec<String> = s
            .steps(100 * DAY)
            .into_iter()
            .filter(|(_, step)| matches!(step, Step::Reminder(_)))
            .map(|(_, step)| step.name())
            .collect();
        assert_eq!(reminders, ["reminder-30", "reminder-7", "reminder-1"]);
    }
}
