//! The only code that changes a request's state. `apply` asks the pure
//! `state::transition` whether the event is allowed, then writes the new
//! state, the transition row and every effect (invoice items, portfolio
//! changes and their undoing, notification, mail) on the connection it is
//! given, so that all of it commits in the caller's one transaction or none
//! of it does.

use crate::store::Cached;
use rusqlite::{params, Connection};

use crate::clock::{self, Millis};
use crate::error::{Error, Result};
use crate::form;
use crate::state::{self, Actor, Event, Failure, Operation, State, WaitingOn};

use super::notifications::{self, NewNotification};
use super::requests::{self, HistoryEntry, NewRequest, Request};
use super::{accounts, deliveries, domains};

/// Who causes a change: their role for the state machine and the name the
/// history shows.
#[derive(Debug, Clone)]
pub struct Who {
    pub actor: Actor,
    pub name: String,
}

impl Who {
    /// The ticker, a timeout or the registry back end.
    pub fn system(name: &str) -> Who {
        Who {
            actor: Actor::System,
            name: name.to_string(),
        }
    }

    /// An account acting on `req`: operators act as operators, anyone else
    /// as the owner (callers have checked that they may see it).
    pub fn account(account: &accounts::Account) -> Who {
        Who {
            actor: if account.is_operator() {
                Actor::Operator
            } else {
                Actor::Owner
            },
            name: account.name.clone(),
        }
    }
}

/// What comes with an event besides its name.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Why, for the history.
    pub reason: Option<String>,
    /// An annotation to attach (send-back, user-fixable errors).
    pub annotation: Option<String>,
    /// The fields still missing (submit, user-fixable errors).
    pub missing: Option<Vec<String>>,
    /// When a wait ends (entering processing with a wait).
    pub wait_until: Option<Millis>,
    /// The last error seen (limbo).
    pub last_error: Option<String>,
}

/// An event a new request takes as it is created (a submit).
pub struct Then<'a> {
    pub event: Event,
    pub change: Change,
    /// Runs once the creation is recorded and before the event is, with
    /// the request as created (a submit cancels the owner's duplicates
    /// there).
    pub first: &'a dyn Fn(&Request) -> Result<()>,
}

/// Creates a request in state `new` and records its creation; with `then`,
/// applies that event to it at once. Returns the request and its history
/// as written.
pub fn create(
    conn: &Connection,
    new: &NewRequest,
    who: &Who,
    then: Option<Then<'_>>,
    now: Millis,
) -> Result<(Request, Vec<HistoryEntry>)> {
    match then {
        Some(then) => create_then(conn, new, who, then, now),
        None => {
            // The row as inserted is the request: reading it back was a
            // select and a parse of its JSON per order.
            let req = requests::insert(conn, requests::unsaved(new, now))?;
            let created = record_creation(conn, &req, who, now)?;
            Ok((req, vec![created]))
        }
    }
}

/// What a creation writes besides the request's row: its history row and
/// its first order event.
fn record_creation(
    conn: &Connection,
    req: &Request,
    who: &Who,
    now: Millis,
) -> Result<HistoryEntry> {
    let entry = record(conn, req, None, "create", who, None, now)?;
    super::order_events::on_transition(conn, None, req, now)?;
    Ok(entry)
}

fn record(
    conn: &Connection,
    req: &Request,
    from: Option<State>,
    event: &str,
    who: &Who,
    reason: Option<&str>,
    now: Millis,
) -> Result<HistoryEntry> {
    conn.exec(
        "insert into transitions (request_id, account_id, from_state, to_state, event, actor, reason, at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            req.id,
            req.account_id,
            from.map(State::as_str),
            req.state.as_str(),
            event,
            who.name,
            reason,
            now
        ],
    )?;
    // The row as `requests::history` reads it: a new request's answer
    // shows its history without reading it back.
    Ok(HistoryEntry {
        id: conn.last_insert_rowid(),
        from: from.map(|s| s.as_str().to_string()),
        to: req.state.as_str().to_string(),
        event: event.to_string(),
        actor: who.name.clone(),
        reason: reason.map(str::to_string),
        at: now,
    })
}

/// The request a change applies to: its id, or the request itself as the
/// caller has just read it on this connection, in this transaction (so
/// that it is not read again).
pub enum Subject {
    Id(i64),
    Read(Box<Request>),
}

impl From<i64> for Subject {
    fn from(id: i64) -> Subject {
        Subject::Id(id)
    }
}

impl From<Request> for Subject {
    fn from(req: Request) -> Subject {
        Subject::Read(Box::new(req))
    }
}

/// What `apply` does to a request: one event, or an event and then,
/// at once, the one `next` decides on the request as the first leaves it
/// (the ticker claims a request and moves it on with the registry's
/// answer to the claim).
pub enum Moves<'a> {
    One(Event),
    Then(Event, &'a dyn Fn(&Request) -> Result<Option<Next>>),
}

impl From<Event> for Moves<'_> {
    fn from(event: Event) -> Self {
        Moves::One(event)
    }
}

/// The second move of `Moves::Then`.
pub struct Next {
    pub event: Event,
    pub who: Who,
    pub change: Change,
}

/// Applies an event (or two, `Moves::Then`) to a request with all its
/// effects. Refused events are `Error::Conflict` and change nothing.
pub fn apply<'a>(
    conn: &Connection,
    subject: impl Into<Subject>,
    moves: impl Into<Moves<'a>>,
    who: &Who,
    change: Change,
    now: Millis,
) -> Result<Request> {
    let before = match subject.into() {
        Subject::Id(id) => requests::load(conn, id)?,
        Subject::Read(req) => *req,
    };
    let (event, next) = match moves.into() {
        Moves::One(event) => (event, None),
        Moves::Then(event, next) => (event, Some(next)),
    };
    let mid = moved(&before, &event, who, &change, now)?;
    let Some(second) = next.map(|next| next(&mid)).transpose()?.flatten() else {
        write_row(conn, before.state, &mid)?;
        recorded(conn, &before, &mid, &event, who, &change, now)?;
        return Ok(mid);
    };
    // Both moves as one update of the row, rather than two that each
    // rewrite it and move its entries in five indexes; the history,
    // effects and order events are those of each move, in their order.
    let req = moved(&mid, &second.event, &second.who, &second.change, now)?;
    write_row(conn, before.state, &req)?;
    recorded(conn, &before, &mid, &event, who, &change, now)?;
    recorded(
        conn,
        &mid,
        &req,
        &second.event,
        &second.who,
        &second.change,
        now,
    )?;
    Ok(req)
}

/// Writes `req` over its row, which must still be in state `from`.
fn write_row(conn: &Connection, from: State, req: &Request) -> Result<()> {
    let updated = conn.exec(
        "update requests set state = ?1, waiting_on = ?2, failure = ?3, missing = ?4, attempts = ?5,
                next_attempt_at = null, wait_until = ?6, last_error = ?7, updated_at = ?8
         where id = ?9 and state = ?10",
        params![
            req.state.as_str(),
            req.waiting_on.map(WaitingOn::as_str),
            req.failure.map(Failure::as_str),
            requests::missing_text(&req.missing),
            req.attempts,
            req.wait_until,
            req.last_error,
            req.updated_at,
            req.id,
            from.as_str(),
        ],
    )?;
    if updated != 1 {
        return Err(Error::Conflict(format!(
            "request {} changed while it was being moved on",
            req.id
        )));
    }
    // As the row reads back (the integration tests run a debug build).
    debug_assert_eq!(Some(req), requests::load(conn, req.id).ok().as_ref());
    Ok(())
}

/// `create` and then `apply`, but with the request's row written once, in
/// the state the event leaves it (rather than inserted as `new` and then
/// rewritten, with its entries moved in five indexes). Its history as
/// written: the creation and the event.
fn create_then(
    conn: &Connection,
    new: &NewRequest,
    who: &Who,
    then: Then<'_>,
    now: Millis,
) -> Result<(Request, Vec<HistoryEntry>)> {
    let Then {
        event,
        change,
        first,
    } = then;
    let mut created = requests::unsaved(new, now);
    let req = requests::insert(conn, moved(&created, &event, who, &change, now)?)?;
    created.id = req.id;
    let creation = record_creation(conn, &created, who, now)?;
    first(&created)?;
    let moved = recorded(conn, &created, &req, &event, who, &change, now)?;
    Ok((req, vec![creation, moved]))
}

/// `before` as `event` leaves it, if the state machine allows the event:
/// the row `apply` writes.
fn moved(
    before: &Request,
    event: &Event,
    who: &Who,
    change: &Change,
    now: Millis,
) -> Result<Request> {
    let next = state::transition(before.state, before.waiting_on, event, who.actor)?;
    let missing = match (&change.missing, next.state) {
        (Some(m), _) => m.clone(),
        (None, State::Incomplete) => before.missing.clone(),
        (None, _) => Vec::new(),
    };
    let entering_processing = next.state == State::Processing && before.state != State::Processing;
    let attempts = if entering_processing || next.state == State::Queued {
        0
    } else {
        before.attempts
    };
    let last_error = change.last_error.clone().or_else(|| {
        (next.state == State::Limbo || next.state == State::Processing)
            .then(|| before.last_error.clone())
            .flatten()
    });
    Ok(Request {
        state: next.state,
        waiting_on: next.waiting_on,
        failure: next.failure,
        missing,
        attempts,
        next_attempt_at: None,
        wait_until: change.wait_until,
        last_error,
        updated_at: now,
        ..before.clone()
    })
}

/// What a move writes besides the request's row: its history row (which
/// it returns), its annotation, its effects and its order event.
fn recorded(
    conn: &Connection,
    before: &Request,
    req: &Request,
    event: &Event,
    who: &Who,
    change: &Change,
    now: Millis,
) -> Result<HistoryEntry> {
    let entry = record(
        conn,
        req,
        Some(before.state),
        event.name(),
        who,
        change.reason.as_deref(),
        now,
    )?;
    if let Some(text) = &change.annotation {
        requests::add_annotation(conn, req.id, &who.name, text, now)?;
    }
    effects(conn, before, req, event, who, now)?;
    super::order_events::on_transition(conn, Some(before), req, now)?;
    Ok(entry)
}

/// Everything a state change does besides the change itself.
fn effects(
    conn: &Connection,
    before: &Request,
    req: &Request,
    event: &Event,
    who: &Who,
    now: Millis,
) -> Result<()> {
    match req.state {
        State::Processing if before.state != State::Processing => charge(conn, req, now)?,
        State::Incomplete | State::Failed => {
            // Idempotent return: nothing the request did may outlive it.
            conn.exec("delete from invoice_items where request_id = ?1", [req.id])?;
            domains::undo_changes(conn, req.id)?;
        }
        _ => {}
    }
    if req.operation == Operation::Release
        && req.state == State::Processing
        && req.waiting_on == Some(WaitingOn::Registry)
        && before.waiting_on != Some(WaitingOn::Registry)
    {
        domains::start_release(conn, req, now)?;
        notify(
            conn,
            req,
            "pending",
            "Domain release is pending".into(),
            now,
        )?;
    }
    match req.state {
        State::Finished => {
            domains::apply_finished(conn, req, now)?;
            super::lifecycle::on_finished(conn, req, now)?;
            notify(conn, req, "success", success_message(req.operation), now)?;
            if req.operation == Operation::Delete {
                wake_backorders(conn, &req.domain, now)?;
            }
        }
        State::Failed => {
            // Owners who gave a request up themselves are not told again.
            let self_inflicted =
                who.actor == Actor::Owner || matches!(event, Event::Duplicate | Event::Expire);
            if !self_inflicted {
                let denied =
                    req.operation == Operation::Release && req.failure == Some(Failure::Declined);
                let (status, message) = if denied {
                    ("denied", "Domain transfer was denied".to_string())
                } else {
                    ("error", error_message(req.operation))
                };
                notify(conn, req, status, message, now)?;
                mail_failure(conn, req, now)?;
            }
        }
        State::Limbo => mail_limbo(conn, req, now)?,
        _ => {}
    }
    Ok(())
}

/// Invoice items, created once per request however often it is processed.
fn charge(conn: &Connection, req: &Request, now: Millis) -> Result<()> {
    for (kind, description, cents) in form::charges(req.operation, &req.domain, &req.params) {
        conn.exec(
            "insert or ignore into invoice_items (request_id, account_id, kind, description, amount_cents, created_at)
             values (?1, ?2, ?3, ?4, ?5, ?6)",
            params![req.id, req.account_id, kind, description, cents, now],
        )?;
    }
    Ok(())
}

/// Backorders waiting for `name` to be deleted may now try again.
fn wake_backorders(conn: &Connection, name: &str, now: Millis) -> Result<()> {
    conn.exec(
        "update requests set wait_until = ?1 where domain = ?2 and operation = 'backorder'
         and state = 'processing' and waiting_on = 'registry'",
        params![now, name],
    )?;
    Ok(())
}

fn noun(op: Operation) -> &'static str {
    match op {
        Operation::Create => "registration",
        Operation::Transfer => "transfer",
        Operation::Renew => "renewal",
        Operation::Update => "update",
        Operation::Release => "release",
        Operation::Delete => "delete",
        Operation::Hold => "hold",
        Operation::Backorder => "backorder",
        Operation::Privacy => "privacy change",
        Operation::Restore => "restore",
    }
}

/// The seed's messages: "Domain registration successful" and so on.
fn success_message(op: Operation) -> String {
    format!("Domain {} successful", noun(op))
}

fn error_message(op: Operation) -> String {
    format!("Domain {} failed", noun(op))
}

fn notify(
    conn: &Connection,
    req: &Request,
    status: &str,
    message: String,
    now: Millis,
) -> Result<()> {
    // Pushed to the account's webhook, if any, in this transaction.
    deliveries::notify(
        conn,
        &NewNotification {
            account_id: req.account_id,
            request_id: Some(req.id),
            action: req.operation.as_str(),
            status,
            message,
            domain: &req.domain,
        },
        now,
    )?;
    Ok(())
}

/// The details and history of a request, as a mail body.
fn details(conn: &Connection, req: &Request) -> Result<String> {
    let mut body = format!(
        "Request {id}: {op} {domain}\nState: {state}{failure}\nParameters: {params}\n",
        id = req.id,
        op = req.operation,
        domain = req.domain,
        state = req.state,
        failure = req.failure.map(|f| format!(" ({f})")).unwrap_or_default(),
        params = req.params,
    );
    if let Some(err) = &req.last_error {
        body.push_str(&format!("Last error: {err}\n"));
    }
    body.push_str("\nHistory:\n");
    for h in requests::history(conn, req.id)? {
        body.push_str(&format!(
            "  {at}  {from} -> {to}  ({event} by {actor}){reason}\n",
            at = clock::format(h.at),
            from = h.from.as_deref().unwrap_or("-"),
            to = h.to,
            event = h.event,
            actor = h.actor,
            reason = h.reason.map(|r| format!(": {r}")).unwrap_or_default(),
        ));
    }
    Ok(body)
}

fn mail_limbo(conn: &Connection, req: &Request, now: Millis) -> Result<()> {
    let body = details(conn, req)?;
    let subject = format!(
        "[regdesk] request {} needs attention: {} {}",
        req.id, req.operation, req.domain
    );
    for op in accounts::operators(conn)? {
        notifications::queue_mail(conn, Some(req.id), &op.email, &subject, &body, now)?;
    }
    Ok(())
}

fn mail_failure(conn: &Connection, req: &Request, now: Millis) -> Result<()> {
    let owner = accounts::get(conn, req.account_id)?;
    let body = details(conn, req)?;
    let subject = format!("[regdesk] {} {} failed", req.operation, req.domain);
    notifications::queue_mail(conn, Some(req.id), &owner.email, &subject, &body, now)?;
    Ok(())
}
