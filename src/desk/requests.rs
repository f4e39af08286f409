//! Changes to one request and to many: the order form (patch), the
//! actions, a registry's event, bulk actions and cancelling scheduled
//! requests.

use serde_json::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::form;
use crate::state::{self, Action, Event, Resolution, State};
use crate::store::accounts::Account;
use crate::store::requests::{self, Filter, Request};
use crate::store::transition::{self, Change, Who};
use crate::store::view::{self, Detail};
use crate::store::{in_savepoint, Connection};
use crate::App;

use super::orders::{check_dependency, schedulable, submit};
use super::require_operator;

/// Most requests one bulk action touches.
pub const MAX_BULK: i64 = 1000;

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
    let owner = caller.clone();
    let who = Who::account(caller);
    on_request(app, caller, id, false, who, move |conn, r, who, now| {
        let patch = input()?;
        // Refuse before changing anything when the state does not allow it.
        state::transition(r.state, r.waiting_on, &Event::UpdateParams, who.actor)?;
        let params = match &patch.params {
            Some(p) => form::params(r.operation, Some(p))?,
            None => r.params.clone(),
        };
        let exec_date = patch.exec_date.unwrap_or(r.exec_date);
        schedulable(r.operation, exec_date)?;
        let depends_on = patch.depends_on.unwrap_or(r.depends_on);
        check_dependency(conn, depends_on, &owner, Some(id))?;
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
        transition::apply(conn, id, Event::UpdateParams, who, change, now)
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
                    return transition::apply(conn, r, Event::SendBack, who, change, now);
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
            transition::apply(conn, r, event, who, change, now)
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
                transition::apply(conn, r, Event::Resolve(resolution), who, change, now)
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
                let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
                let change = Change {
                    reason: reason.clone(),
                    ..Change::default()
                };
                transition::apply(conn, r, event.clone(), &who, change, now)
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
            transition::apply(conn, r, Event::Abort, &who, change, now)?;
        }
        Ok(())
    })
}
