//! Work requests: create (and submit), submit, change the order form, act
//! on a request, a registry's event, bulk actions, cancelling pending and
//! scheduled requests, and the lists, all with one `Filter`.

use serde_json::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::form;
use crate::state::{self, Action, Event, Operation, Resolution, State};
use crate::store::accounts::{self, Account};
use crate::store::idempotency;
use crate::store::order_events::ORDER_OPERATIONS;
use crate::store::requests::{self, Annotation, HistoryEntry, NewRequest, Request};
use crate::store::transition::{self, Change, Who};
use crate::store::view::{self, Detail};
use crate::store::{in_savepoint, Connection};
use crate::App;

pub use crate::store::requests::Filter;

use super::require_operator;

/// Most requests one bulk action touches.
pub const MAX_BULK: i64 = 1000;
/// Most requests one scheduled list shows.
pub const MAX_SCHEDULED: i64 = 500;

/// A new request as a face read it.
pub struct NewOrder {
    pub domain: String,
    pub operation: Operation,
    pub params: Value,
    pub exec_date: Option<Millis>,
    pub depends_on: Option<i64>,
    /// Submit it as it is created.
    pub submit: bool,
}

/// A client's idempotency key and a digest of the body it came with.
pub struct Idempotency {
    pub key: String,
    pub body_hash: String,
}

/// What a create answers.
pub enum Created {
    /// The answer kept for an idempotency key, as it was given.
    Replayed(u16, String),
    /// A new request and its page.
    Made(Box<Request>, Detail),
}

/// What a create's write hands back: an answer replayed for a key, the new
/// request's page (made in the write to be kept with its key), or the new
/// request and its history, made into its page once the write is done.
enum Written {
    Replayed(u16, String),
    Kept(Box<Request>, Detail),
    New(Box<Request>, Vec<HistoryEntry>),
}

/// Creates a request for `caller` and submits it when asked: the request
/// and its page.
pub fn create(app: &App, caller: &Account, order: NewOrder) -> Result<(Box<Request>, Detail)> {
    match create_keyed(app, caller, order, None)? {
        Created::Made(r, detail) => Ok((r, detail)),
        Created::Replayed(..) => Err(Error::Internal(
            "a create without an idempotency key was answered as a replay".into(),
        )),
    }
}

/// `create`, and with a key, a repeat of the same body gets the first
/// answer again, and a different body with that key is refused.
pub fn create_keyed(
    app: &App,
    caller: &Account,
    order: NewOrder,
    key: Option<Idempotency>,
) -> Result<Created> {
    let account = caller.clone();
    let now = app.clock.now();
    let written = app.db.write(move |conn| {
        if let Some(key) = &key {
            if let Some(kept) = idempotency::find(conn, account.id, &key.key)? {
                if kept.body_hash != key.body_hash {
                    return Err(Error::invalid(
                        "Idempotency-Key",
                        "this key was used with a different body",
                    ));
                }
                return Ok(Written::Replayed(kept.status, kept.response));
            }
        }
        check_dependency(conn, order.depends_on, &account, None)?;
        let new = NewRequest {
            account_id: account.id,
            domain: order.domain,
            operation: order.operation,
            params: order.params,
            exec_date: order.exec_date,
            depends_on: order.depends_on,
        };
        let (r, history) = open(conn, &account, &new, order.submit, now)?;
        check_new_request(conn, &r, &history, &account)?;
        let Some(key) = &key else {
            return Ok(Written::New(Box::new(r), history));
        };
        // The answer is kept with its key, so it is made here.
        let detail = view::new_request_detail(&r, history, &account)?;
        idempotency::keep(
            conn,
            account.id,
            &key.key,
            &key.body_hash,
            &detail.json,
            now,
        )?;
        Ok(Written::Kept(Box::new(r), detail))
    })?;
    let (r, detail) = match written {
        // The ticker was told about the request when it was made.
        Written::Replayed(status, json) => return Ok(Created::Replayed(status, json)),
        Written::Kept(r, detail) => (r, detail),
        Written::New(r, history) => {
            let detail = view::new_request_detail(&r, history, caller)?;
            (r, detail)
        }
    };
    if detail.for_ticker() {
        app.ticker.wake();
    }
    Ok(Created::Made(r, detail))
}

/// Creates `new` for `owner`, submitted as it is created when `submit`
/// (its row written once, in the state the submit leaves it). With its
/// history as written. The one create of every face and of the demo.
pub fn open(
    conn: &Connection,
    owner: &Account,
    new: &NewRequest,
    submit: bool,
    now: Millis,
) -> Result<(Request, Vec<HistoryEntry>)> {
    let who = Who::account(owner);
    if !submit {
        return transition::create_recorded(conn, new, &who, now);
    }
    let (event, change) = submit_event(
        conn,
        new.account_id,
        new.operation,
        &new.domain,
        &new.params,
    )?;
    transition::create_then(conn, new, &who, event, change, now, |created| {
        cancel_duplicates(conn, created, now)
    })
}

/// A request created in this transaction and its history as written are
/// all its answer needs: nothing else hangs off it (only processing
/// charges, only finished or failed requests notify, and only a send-back
/// or a registry's refusal annotates). Debug builds read everything and
/// check the answer against it.
fn check_new_request(
    conn: &Connection,
    r: &Request,
    history: &[HistoryEntry],
    caller: &Account,
) -> Result<()> {
    if cfg!(debug_assertions) {
        let full = view::request_detail(conn, r, caller)?;
        let made = view::new_request_detail(r, history.to_vec(), caller)?;
        debug_assert_eq!(made, full, "request {}", r.id);
    }
    Ok(())
}

/// Only hold and delete may be scheduled (seed 004, "Requests that supports
/// scheduled operations").
pub fn schedulable(operation: Operation, exec_date: Option<Millis>) -> Result<()> {
    match (operation, exec_date) {
        (Operation::Hold | Operation::Delete, _) | (_, None) => Ok(()),
        (other, Some(_)) => Err(Error::invalid(
            "exec_date",
            format!("only hold and delete requests can be scheduled, not {other}"),
        )),
    }
}

/// Checks that a dependency exists and is the caller's.
fn check_dependency(
    conn: &Connection,
    depends_on: Option<i64>,
    caller: &Account,
    own_id: Option<i64>,
) -> Result<()> {
    if let Some(dep) = depends_on {
        if Some(dep) == own_id {
            return Err(Error::invalid(
                "depends_on",
                "a request cannot depend on itself",
            ));
        }
        requests::visible(conn, dep, caller.id, caller.is_operator())
            .map_err(|_| Error::invalid("depends_on", format!("there is no request {dep}")))?;
    }
    Ok(())
}

/// Submits request `id`: works out what is missing and whether it needs
/// review, cancels the owner's other unsubmitted requests for the same
/// domain and operation, and moves it on.
pub fn submit(conn: &Connection, id: i64, who: &Who, now: Millis) -> Result<Request> {
    let r = requests::load(conn, id)?;
    let (event, change) = submit_event(conn, r.account_id, r.operation, &r.domain, &r.params)?;
    // Check the submit is allowed before cancelling anything.
    transition::preview(&r, &event, who, now)?;
    cancel_duplicates(conn, &r, now)?;
    transition::apply_to(conn, r, event, who, change, now)
}

/// The submit of a request of `account_id` with these fields: the event
/// (missing fields, review) and what the history says about it.
fn submit_event(
    conn: &Connection,
    account_id: i64,
    operation: Operation,
    domain: &str,
    params: &Value,
) -> Result<(Event, Change)> {
    let owner = accounts::get(conn, account_id)?;
    let missing = form::missing(operation, params);
    let needs_review = form::needs_review(
        operation,
        domain,
        params,
        owner.review_limit_cents,
        owner.review_all,
    );
    let event = Event::Submit {
        missing: !missing.is_empty(),
        needs_review,
    };
    let reason = (!missing.is_empty()).then(|| format!("missing: {}", missing.join(", ")));
    let change = Change {
        reason,
        missing: Some(missing),
        ..Change::default()
    };
    Ok((event, change))
}

/// Cancels the owner's other unsubmitted requests for the same operation
/// on the same name: `r`, submitted, supersedes them.
fn cancel_duplicates(conn: &Connection, r: &Request, now: Millis) -> Result<()> {
    for dup in requests::duplicates(conn, r)? {
        let change = Change {
            reason: Some(format!("superseded by request {}", r.id)),
            ..Change::default()
        };
        let who = Who::system("regdesk");
        transition::apply(conn, dup, Event::Duplicate, &who, change, now)?;
    }
    Ok(())
}

/// A change of a request's order form: each field given replaces the
/// request's (`Some(None)` clears it).
pub struct Patch {
    /// The new order form, checked against the request's operation.
    pub params: Option<Value>,
    pub exec_date: Option<Option<Millis>>,
    pub depends_on: Option<Option<i64>>,
}

/// Changes request `id`'s order form. `input` reads the change once the
/// request is known to be the caller's, so that another account's request
/// is not found whatever the change says.
pub fn patch(
    app: &App,
    caller: &Account,
    id: i64,
    input: impl FnOnce() -> Result<Patch> + Send + 'static,
) -> Result<Detail> {
    let caller = caller.clone();
    let now = app.clock.now();
    app.db.write(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        let patch = input()?;
        let who = Who::account(&caller);
        // Refuse before changing anything when the state does not allow it.
        state::transition(r.state, r.waiting_on, &Event::UpdateParams, who.actor)?;
        let params = match &patch.params {
            Some(p) => form::params(r.operation, Some(p))?,
            None => r.params.clone(),
        };
        let exec_date = patch.exec_date.unwrap_or(r.exec_date);
        schedulable(r.operation, exec_date)?;
        let depends_on = patch.depends_on.unwrap_or(r.depends_on);
        check_dependency(conn, depends_on, &caller, Some(id))?;
        requests::update_form(conn, id, &params, exec_date, depends_on)?;
        let missing = if r.state == State::Incomplete {
            form::missing(r.operation, &params)
        } else {
            Vec::new()
        };
        let change = Change {
            missing: Some(missing),
            ..Change::default()
        };
        let r = transition::apply(conn, id, Event::UpdateParams, &who, change, now)?;
        view::request_detail(conn, &r, &caller)
    })
}

/// What comes with an action: its note (the reason of an abort, the
/// annotation of a send-back, an annotation's text) and a resolve's outcome.
#[derive(Debug, Default)]
pub struct Act {
    pub note: Option<String>,
    pub resolution: Option<Resolution>,
}

/// Takes `action` on request `id`. `input` reads what comes with it once
/// the request is known to be the caller's and the caller may take it.
pub fn act(
    app: &App,
    caller: &Account,
    id: i64,
    action: Action,
    input: impl FnOnce() -> Result<Act> + Send + 'static,
) -> Result<Detail> {
    let who = Who::account(caller);
    on_request(
        app,
        caller,
        id,
        action.operator_only(),
        who,
        move |conn, r, who, now| {
            let act = input()?;
            let (event, change) = match action {
                Action::Submit => return submit(conn, id, who, now),
                Action::Annotate => {
                    let text = act.note.unwrap_or_default();
                    requests::add_annotation(conn, id, &who.name, &text, now)?;
                    return Ok(r);
                }
                Action::Authorise => (Event::Authorise, act.note),
                Action::Abort => (Event::Abort, act.note),
                Action::Retry => (Event::Retry, act.note),
                Action::SendBack => {
                    let change = Change {
                        reason: act.note.clone(),
                        annotation: act.note,
                        ..Change::default()
                    };
                    return transition::apply(conn, id, Event::SendBack, who, change, now);
                }
                Action::Resolve => {
                    let resolution = act
                        .resolution
                        .ok_or_else(|| Error::invalid("outcome", "is required"))?;
                    (Event::Resolve(resolution), act.note)
                }
            };
            let change = Change {
                reason: change,
                ..Change::default()
            };
            transition::apply(conn, id, event, who, change, now)
        },
    )
}

/// What a registry reports about a request it works on.
pub enum RegistryEvent {
    /// Still working: only the record changes.
    Pending(String),
    /// Done, with the registry's message.
    Resolved(Resolution, Option<String>),
}

/// A registry's report about request `id` (sent in by an operator).
pub fn registry_event(
    app: &App,
    caller: &Account,
    id: i64,
    input: impl FnOnce() -> Result<RegistryEvent> + Send + 'static,
) -> Result<Detail> {
    let who = Who::system("registry");
    on_request(
        app,
        caller,
        id,
        true,
        who,
        move |conn, r, who, now| match input()? {
            RegistryEvent::Pending(note) => {
                let note = format!("pending: {note}");
                requests::add_annotation(conn, id, "registry", &note, now)?;
                Ok(r)
            }
            RegistryEvent::Resolved(resolution, message) => {
                let change = Change {
                    reason: message,
                    ..Change::default()
                };
                transition::apply(conn, id, Event::Resolve(resolution), who, change, now)
            }
        },
    )
}

/// Runs `f` in one write on request `id` as the caller sees it, refusing
/// customers when `operator_only`, and answers the request's page.
fn on_request(
    app: &App,
    caller: &Account,
    id: i64,
    operator_only: bool,
    who: Who,
    f: impl FnOnce(&Connection, Request, &Who, Millis) -> Result<Request> + Send + 'static,
) -> Result<Detail> {
    let caller = caller.clone();
    let now = app.clock.now();
    let detail = app.db.write(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        if operator_only {
            require_operator(&caller)?;
        }
        let r = f(conn, r, &who, now)?;
        view::request_detail(conn, &r, &caller)
    })?;
    if detail.for_ticker() {
        app.ticker.wake();
    }
    Ok(detail)
}

/// The requests a bulk action is about.
pub enum Targets {
    Ids(Vec<i64>),
    /// The first `MAX_BULK` matching.
    Matching(Box<Filter>),
}

/// What a bulk action did: the requests it moved, and each refusal.
pub struct BulkOutcome {
    pub done: Vec<i64>,
    pub failed: Vec<(i64, Error)>,
}

/// Takes `action` (authorise, abort or retry) on every target, each on its
/// own: a refusal of one leaves the others done.
pub fn bulk(
    app: &App,
    caller: &Account,
    action: Action,
    targets: Targets,
    reason: Option<String>,
) -> Result<BulkOutcome> {
    let event = match action {
        Action::Authorise => Event::Authorise,
        Action::Retry => Event::Retry,
        Action::Abort => Event::Abort,
        _ => {
            return Err(Error::invalid(
                "action",
                "bulk actions are authorise, abort and retry",
            ))
        }
    };
    if action.operator_only() {
        require_operator(caller)?;
    }
    let caller = caller.clone();
    let now = app.clock.now();
    let outcome = app.db.write(move |conn| {
        let ids = match targets {
            Targets::Ids(ids) => ids,
            Targets::Matching(f) => requests::ids(conn, &f, MAX_BULK)?,
        };
        let who = Who::account(&caller);
        let mut outcome = BulkOutcome {
            done: Vec::new(),
            failed: Vec::new(),
        };
        for id in ids {
            let moved = in_savepoint(conn, "bulk_item", || {
                requests::visible(conn, id, caller.id, caller.is_operator())?;
                let change = Change {
                    reason: reason.clone(),
                    ..Change::default()
                };
                transition::apply(conn, id, event.clone(), &who, change, now)
            })?;
            match moved {
                Ok(_) => outcome.done.push(id),
                Err(e) => outcome.failed.push((id, e)),
            }
        }
        Ok(outcome)
    })?;
    app.ticker.wake();
    Ok(outcome)
}

/// Which of the caller's pending (new or incomplete) requests to cancel.
pub struct Pending {
    /// Only these operations; every one when empty.
    pub operations: Vec<Operation>,
    pub created_before: Millis,
    pub max: i64,
    /// Why, for each request's history.
    pub reason: String,
}

/// Cancels (event `expire`) the caller's pending requests `which` selects;
/// answers them as they are now.
pub fn cancel_pending(app: &App, caller: &Account, which: Pending) -> Result<Vec<Request>> {
    let caller = caller.clone();
    let now = app.clock.now();
    app.db.write(move |conn| {
        let f = Filter {
            states: vec![State::New, State::Incomplete],
            operations: which.operations,
            account_id: Some(caller.id),
            created_before: Some(which.created_before),
            ..Filter::default()
        };
        let who = Who::account(&caller);
        let mut cancelled = Vec::new();
        for id in requests::ids(conn, &f, which.max)? {
            let change = Change {
                reason: Some(which.reason.clone()),
                ..Change::default()
            };
            cancelled.push(transition::apply(
                conn,
                id,
                Event::Expire,
                &who,
                change,
                now,
            )?);
        }
        Ok(cancelled)
    })
}

/// Requests with their annotations, and the cursor of the next page.
pub struct Listed {
    pub rows: Vec<Request>,
    pub notes: Vec<(i64, Annotation)>,
    pub next: Option<i64>,
}

/// A page of requests matching `filter`, newest first, after the cursor.
pub fn list(app: &App, filter: Filter, after: Option<i64>, limit: i64) -> Result<Listed> {
    app.db.read(move |conn| {
        let (rows, next) = requests::list(conn, &filter, after, limit)?;
        with_notes(conn, rows, next)
    })
}

fn with_notes(conn: &Connection, rows: Vec<Request>, next: Option<i64>) -> Result<Listed> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let notes = requests::annotations(conn, &ids)?;
    Ok(Listed { rows, notes, next })
}

/// Every request matching `filter` up to `max` (whole pages), newest first.
pub fn export(app: &App, filter: Filter, max: i64) -> Result<Vec<Request>> {
    app.db.read(move |conn| {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (rows, next) = requests::list(conn, &filter, after, requests::MAX_LIMIT)?;
            out.extend(rows);
            match next {
                Some(n) if (out.len() as i64) < max => after = Some(n),
                _ => break,
            }
        }
        Ok(out)
    })
}

/// Request `id`'s page, if the caller may see it.
pub fn get(app: &App, caller: &Account, id: i64) -> Result<Detail> {
    let caller = caller.clone();
    app.db.read(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        view::request_detail(conn, &r, &caller)
    })
}

/// The caller's order `id`: a request of an order operation. Anything
/// else, another account's request included, is "not found".
pub fn order(app: &App, caller: &Account, id: i64) -> Result<Request> {
    let f = Filter {
        id: Some(id),
        account_id: Some(caller.id),
        operations: ORDER_OPERATIONS.to_vec(),
        ..Filter::default()
    };
    let found = app.db.read(move |conn| requests::list(conn, &f, None, 1))?;
    found
        .0
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found(format!("order {id}")))
}

/// The scheduled list: queued requests matching `filter` whose exec date
/// is still ahead, soonest first (at most `MAX_SCHEDULED`).
pub fn scheduled(app: &App, filter: Filter) -> Result<Listed> {
    let f = Filter {
        states: vec![State::Queued],
        exec_after: Some(app.clock.now()),
        ..filter
    };
    app.db.read(move |conn| {
        let rows = requests::by_exec_date(conn, &f, MAX_SCHEDULED)?;
        with_notes(conn, rows, None)
    })
}

/// Aborts every request `ids` names, all or nothing: each must be a
/// scheduled request of account `user_id`, else the error comes back out
/// of the write, whose savepoint then rolls back.
pub fn cancel_scheduled(app: &App, caller: &Account, user_id: i64, ids: Vec<i64>) -> Result<()> {
    let now = app.clock.now();
    let who = Who::account(caller);
    app.db.write(move |conn| {
        super::accounts::exists(conn, user_id)?;
        for id in ids {
            let not_scheduled =
                || Error::not_found(format!("scheduled task {id} of user {user_id}"));
            let r = requests::load(conn, id).map_err(|_| not_scheduled())?;
            let is_scheduled = r.account_id == user_id
                && r.state == State::Queued
                && r.exec_date.is_some_and(|d| d > now);
            if !is_scheduled {
                return Err(not_scheduled());
            }
            let change = Change {
                reason: Some("scheduled task deleted through the task face".into()),
                ..Change::default()
            };
            transition::apply(conn, id, Event::Abort, &who, change, now)?;
        }
        Ok(())
    })
}
