//! Orders: creating a request (and submitting it as it is created), the
//! submit, the order lookup XCP makes, and cancelling pending orders.

use serde_json::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::form;
use crate::state::{self, Event, Operation, State};
use crate::store::accounts::{self, Account};
use crate::store::idempotency;
use crate::store::order_events::ORDER_OPERATIONS;
use crate::store::requests::{self, Filter, HistoryEntry, NewRequest, Request};
use crate::store::transition::{self, Change, Who};
use crate::store::view::{self, Detail};
use crate::store::Connection;
use crate::App;

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
        return transition::create(conn, new, &who, None, now);
    }
    open_by(conn, new, &who, None, now)
}

/// Creates `new` as `who` (the owner, an operator for the owner, the
/// system) and submits it as it is created, with the face it came through
/// (when named) in its history.
pub fn open_by(
    conn: &Connection,
    new: &NewRequest,
    who: &Who,
    face: Option<&str>,
    now: Millis,
) -> Result<(Request, Vec<HistoryEntry>)> {
    let (event, mut change) = submit_event(
        conn,
        new.account_id,
        new.operation,
        &new.domain,
        &new.params,
        now,
    )?;
    if let Some(face) = face {
        let through = format!("through {face}");
        change.reason = Some(match change.reason.take() {
            Some(r) => format!("{r} ({through})"),
            None => through,
        });
    }
    let first = |created: &Request| cancel_duplicates(conn, created, now);
    let then = transition::Then {
        event,
        change,
        first: &first,
    };
    transition::create(conn, new, who, Some(then), now)
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
pub(crate) fn check_dependency(
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
    let (event, change) = submit_event(conn, r.account_id, r.operation, &r.domain, &r.params, now)?;
    // Check the submit is allowed before cancelling anything.
    state::transition(r.state, r.waiting_on, &event, who.actor)?;
    cancel_duplicates(conn, &r, now)?;
    transition::apply(conn, r, event, who, change, now)
}

/// The submit of a request of `account_id` with these fields: the event
/// (missing fields, review) and what the history says about it.
fn submit_event(
    conn: &Connection,
    account_id: i64,
    operation: Operation,
    domain: &str,
    params: &Value,
    now: Millis,
) -> Result<(Event, Change)> {
    let owner = accounts::get(conn, account_id)?;
    if let Some(life) =
        crate::store::lifecycle::by_name(conn, domain)?.filter(|l| l.account_id == account_id)
    {
        form::lifecycle_allows(operation, &life.lifecycle)?;
        if operation == Operation::Renew {
            form::renewal_within_limit(params, life.expires_at, now)?;
        }
    }
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
