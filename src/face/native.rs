//! The native JSON API under `/api/v1` (SPEC section 4): accounts, work
//! requests and their actions, domains, the notification FIFO, the event
//! feed, the clock and the simulated registry's rules. Handlers check input,
//! then run one read or one write (a single transaction) on the database.

use crate::store::{in_savepoint, Cached};
use std::sync::atomic::Ordering;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::{self, Millis, DAY};
use crate::error::{quoted, Error, Result};
use crate::form;
use crate::http::{Req, Resp};
use crate::registry::simulated::{self, Rule};
use crate::state::{self, Event, Failure, Operation, Resolution, State, WaitingOn};
use crate::store::accounts::{self, Account, NewAccount, Role};
use crate::store::domains;
use crate::store::notifications::{self, Notification, ReadStatus};
use crate::store::requests::{
    self, Annotation, Filter, HistoryEntry, InvoiceItem, NewRequest, Request,
};
use crate::store::transition::{self, Change, Who};
use crate::App;

/// Most requests one bulk action touches.
pub const MAX_BULK: i64 = 1000;
/// Rows in one CSV export at most.
pub const MAX_EXPORT: i64 = 100_000;

// ----- input helpers -------------------------------------------------------

/// The body as a JSON object; an empty body is an empty object.
pub fn body_object(req: &Req) -> Result<Map<String, Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Error::Malformed(format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::Malformed("the body must be a JSON object".into())),
    }
}

pub(crate) fn opt_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(field, "must be a string")),
    }
}

fn req_str(obj: &Map<String, Value>, field: &str) -> Result<String> {
    opt_str(obj, field)?.ok_or_else(|| Error::invalid(field, "is required"))
}

fn opt_i64(obj: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => form::whole_number(v)
            .map(Some)
            .ok_or_else(|| Error::invalid(field, "must be a whole number")),
    }
}

fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(field, "must be true or false")),
    }
}

/// Refuses keys that a body does not know, naming the first.
fn only_keys(obj: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::invalid(k.as_str(), "unknown field")),
        None => Ok(()),
    }
}

/// A bounded free text (annotations, reasons).
fn text(field: &str, value: String, required: bool) -> Result<Option<String>> {
    let trimmed = value.trim().to_string();
    if trimmed.is_empty() {
        return if required {
            Err(Error::invalid(field, "is required and cannot be blank"))
        } else {
            Ok(None)
        };
    }
    if trimmed.chars().count() > form::MAX_TEXT {
        return Err(Error::invalid(
            field,
            format!("longer than {} characters", form::MAX_TEXT),
        ));
    }
    Ok(Some(trimmed))
}

/// Parses a path segment that is an id.
pub fn id_segment(what: &str, seg: &str) -> Result<i64> {
    seg.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::not_found(format!("{what} {seg:?}")))
}

fn query_i64(req: &Req, name: &str) -> Result<Option<i64>> {
    req.query(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::invalid(name, format!("{} is not a whole number", quoted(v))))
        })
        .transpose()
}

/// The `limit` of a list (1 to `MAX_LIMIT`, `DEFAULT_LIMIT` when not given).
pub(crate) fn limit(req: &Req) -> Result<i64> {
    match query_i64(req, "limit")? {
        None => Ok(requests::DEFAULT_LIMIT),
        Some(n) if (1..=requests::MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid(
            "limit",
            format!("must be 1 to {}", requests::MAX_LIMIT),
        )),
    }
}

/// The `after` cursor of a list: the `next` of the page before.
pub(crate) fn after(req: &Req) -> Result<Option<i64>> {
    match query_i64(req, "after")? {
        Some(n) if n < 0 => Err(Error::invalid("after", "must not be negative")),
        other => Ok(other),
    }
}

fn list_of<T: std::str::FromStr>(name: &str, raw: Option<&str>, what: &str) -> Result<Vec<T>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| Error::invalid(name, format!("{} is not a {what}", quoted(s))))
        })
        .collect()
}

fn internal_status(name: &str, raw: Option<&str>) -> Result<Vec<State>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|s| match s.trim() {
            "needs_attention" | "needs attention" => Ok(State::Limbo),
            "missing_information" | "missing information" => Ok(State::Incomplete),
            other => Err(Error::invalid(
                name,
                format!("{other:?} is not an internal status: use needs_attention or missing_information"),
            )),
        })
        .collect()
}

/// The request filter of a query string. Customers only ever see their own.
pub fn filter(req: &Req, caller: &Account) -> Result<Filter> {
    let mut f = Filter {
        states: list_of("state", req.query("state"), "state")?,
        not_states: list_of("not_state", req.query("not_state"), "state")?,
        operations: list_of("operation", req.query("operation"), "operation")?,
        not_operations: list_of("not_operation", req.query("not_operation"), "operation")?,
        account_id: query_i64(req, "account_id")?,
        not_account_id: query_i64(req, "not_account_id")?,
        waiting_on: req
            .query("waiting_on")
            .map(|w| {
                w.parse::<WaitingOn>()
                    .map_err(|_| Error::invalid("waiting_on", format!("{w:?} is not a wait")))
            })
            .transpose()?,
        ..Filter::default()
    };
    f.states.extend(internal_status(
        "internal_status",
        req.query("internal_status"),
    )?);
    f.not_states.extend(internal_status(
        "not_internal_status",
        req.query("not_internal_status"),
    )?);
    let lower = |name: &str| req.query(name).map(|s| s.trim().to_ascii_lowercase());
    f.domain = lower("domain");
    f.not_domain = lower("not_domain");
    f.domain_prefix = lower("domain_prefix");
    f.domain_contains = lower("domain_contains");
    for (name, value) in [
        ("domain", &f.domain),
        ("domain_prefix", &f.domain_prefix),
        ("domain_contains", &f.domain_contains),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > 253) {
            return Err(Error::invalid(name, "longer than 253 characters"));
        }
    }
    f.account_id = account_scope(f.account_id, caller)?;
    Ok(f)
}

/// The account a list is about: the `account_id` asked for (any, or none,
/// for operators); a customer's own whatever was asked, and another
/// account's id is not found for them.
fn account_scope(asked: Option<i64>, caller: &Account) -> Result<Option<i64>> {
    if caller.is_operator() {
        return Ok(asked);
    }
    if let Some(other) = asked.filter(|a| *a != caller.id) {
        return Err(Error::not_found(format!("account {other}")));
    }
    Ok(Some(caller.id))
}

// ----- output --------------------------------------------------------------

/// A request as the API shows it, borrowed from its row: written out as it
/// is for lists and for a request's own page (`detail_of`, which adds the
/// four fields lists leave out), or made a `Value` by `request_json`. The
/// fields are in alphabetical order, the order a `Value`'s map keeps, so
/// all give the same text. (Lists built a `Value` per row, cloning its
/// params, and dropped it after writing: half of a list's time, perf B5;
/// a request's page was a `Value` too, a sixth of the connection threads'
/// time during ingest, perf B1.)
#[derive(Serialize)]
struct RequestView<'a> {
    account_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_actions: Option<Vec<&'static str>>,
    annotations: Vec<&'a Annotation>,
    attempts: i64,
    created_at: String,
    depends_on: Option<i64>,
    domain: &'a str,
    exec_date: Option<String>,
    failure: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<HistoryEntry>>,
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice_items: Option<Vec<InvoiceItem>>,
    last_error: Option<&'a str>,
    missing: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    notifications: Option<Vec<Notification>>,
    operation: &'static str,
    order_status: &'static str,
    params: &'a Value,
    state: &'static str,
    task_status: &'static str,
    updated_at: String,
    wait_until: Option<String>,
    waiting_on: Option<&'static str>,
}

impl<'a> RequestView<'a> {
    fn new(r: &'a Request, annotations: Vec<&'a Annotation>) -> RequestView<'a> {
        RequestView {
            account_id: r.account_id,
            allowed_actions: None,
            annotations,
            attempts: r.attempts,
            created_at: clock::format(r.created_at),
            depends_on: r.depends_on,
            domain: &r.domain,
            exec_date: r.exec_date.map(clock::format),
            failure: r.failure.map(Failure::as_str),
            history: None,
            id: r.id,
            invoice_items: None,
            last_error: r.last_error.as_deref(),
            missing: &r.missing,
            notifications: None,
            operation: r.operation.as_str(),
            order_status: state::order_status(r.state, r.waiting_on, r.failure),
            params: &r.params,
            state: r.state.as_str(),
            task_status: state::task_status(r.state, r.waiting_on, r.failure),
            updated_at: clock::format(r.updated_at),
            wait_until: r.wait_until.map(clock::format),
            waiting_on: r.waiting_on.map(WaitingOn::as_str),
        }
    }
}

/// A request as the API shows it.
pub fn request_json(r: &Request, annotations: Vec<&Annotation>) -> Value {
    view_value(RequestView::new(r, annotations))
}

fn view_value(view: RequestView<'_>) -> Value {
    serde_json::to_value(&view).unwrap_or_else(|e| {
        // A view holds only strings, numbers and JSON values.
        log::error!("request {} as JSON: {e}", view.id);
        Value::Null
    })
}

/// A page of requests with their annotations.
fn requests_json(conn: &Connection, rows: &[Request]) -> Result<Vec<Value>> {
    with_views(conn, rows, |views| {
        Ok(views.into_iter().map(view_value).collect())
    })
}

/// Calls `f` with the views of `rows` and their annotations.
fn with_views<T>(
    conn: &Connection,
    rows: &[Request],
    f: impl FnOnce(Vec<RequestView<'_>>) -> Result<T>,
) -> Result<T> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let notes = requests::annotations(conn, &ids)?;
    let views = rows
        .iter()
        .map(|r| {
            let mine = notes
                .iter()
                .filter(|(id, _)| *id == r.id)
                .map(|(_, a)| a)
                .collect();
            RequestView::new(r, mine)
        })
        .collect();
    f(views)
}

/// A request created in this transaction and its history as written are
/// all its answer needs: nothing else hangs off it (only processing
/// charges, only finished or failed requests notify, and only a send-back
/// or a registry's refusal annotates). Reading the three empty lists was a
/// tenth of the writer's time during ingest, reading the history back
/// 2.5% (perf, B1); debug builds read everything and check the answer
/// against it.
fn check_new_request(
    conn: &Connection,
    r: &Request,
    history: &[HistoryEntry],
    caller: &Account,
) -> Result<()> {
    if cfg!(debug_assertions) {
        let full = request_detail(conn, r, caller)?;
        let made = new_request_detail(r, history.to_vec(), caller)?;
        debug_assert_eq!(made, full, "request {}", r.id);
    }
    Ok(())
}

/// A request's own page, written out: its view with its history, invoice
/// items and notifications, and the actions the caller may take (`GET
/// /requests/{id}`, and the answer to every change of a request).
#[derive(Debug, PartialEq)]
struct Detail {
    state: State,
    json: String,
}

impl Detail {
    fn resp(self, status: u16) -> Resp {
        Resp::new(status, "application/json", self.json)
    }

    /// Whether the ticker has work in it now.
    fn for_ticker(&self) -> bool {
        matches!(self.state, State::Queued | State::Processing)
    }
}

/// The answer to a create: `request_detail` of a request just made (see
/// `check_new_request`). Made outside the writer thread when it can be
/// (building its JSON was 6% of the writer's time during ingest, perf B1).
fn new_request_detail(r: &Request, history: Vec<HistoryEntry>, caller: &Account) -> Result<Detail> {
    detail_of(r, Vec::new(), caller, history, Vec::new(), Vec::new())
}

/// A request with everything that hangs off it, as `GET /requests/{id}` shows it.
fn request_detail(conn: &Connection, r: &Request, caller: &Account) -> Result<Detail> {
    let notes = requests::annotations(conn, &[r.id])?;
    detail_of(
        r,
        notes.iter().map(|(_, a)| a).collect(),
        caller,
        requests::history(conn, r.id)?,
        requests::invoice_items(conn, r.id)?,
        notifications::for_request(conn, r.id)?,
    )
}

/// `r`'s page from what hangs off it.
fn detail_of(
    r: &Request,
    annotations: Vec<&Annotation>,
    caller: &Account,
    history: Vec<HistoryEntry>,
    invoice_items: Vec<InvoiceItem>,
    notifications: Vec<Notification>,
) -> Result<Detail> {
    let who = Who::account(caller);
    let view = RequestView {
        allowed_actions: Some(state::allowed_actions(r.state, r.waiting_on, who.actor)),
        history: Some(history),
        invoice_items: Some(invoice_items),
        notifications: Some(notifications),
        ..RequestView::new(r, annotations)
    };
    Ok(Detail {
        state: r.state,
        json: serde_json::to_string(&view)?,
    })
}

// ----- accounts ------------------------------------------------------------

fn require_operator(caller: &Account) -> Result<()> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(Error::Forbidden("only operators may do this".into()))
    }
}

pub fn me(app: &App, caller: &Account) -> Result<Resp> {
    let id = caller.id;
    let key = app.db.read(move |conn| accounts::api_key(conn, id))?;
    let mut v = serde_json::to_value(caller)?;
    v["api_key"] = json!(key);
    Ok(Resp::json(200, &v))
}

pub fn list_accounts(app: &App, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    let items = app.db.read(accounts::list)?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

pub fn create_account(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    let body = body_object(req)?;
    only_keys(
        &body,
        &["name", "email", "role", "review_limit_cents", "review_all"],
    )?;
    let name = accounts::valid_name(&req_str(&body, "name")?)?;
    let email = accounts::valid_email(&req_str(&body, "email")?)?;
    let role = match opt_str(&body, "role")?.as_deref() {
        None | Some("customer") => Role::Customer,
        Some("operator") => Role::Operator,
        Some(other) => {
            return Err(Error::invalid(
                "role",
                format!("{other:?} is not customer or operator"),
            ))
        }
    };
    let review_limit_cents = opt_i64(&body, "review_limit_cents")?;
    if review_limit_cents.is_some_and(|c| c < 0) {
        return Err(Error::invalid("review_limit_cents", "must not be negative"));
    }
    let new = NewAccount {
        name,
        email,
        role,
        review_limit_cents,
        review_all: opt_bool(&body, "review_all")?.unwrap_or(false),
    };
    let token = crate::random::token();
    let now = app.clock.now();
    let t = token.clone();
    let (account, key) = app.db.write(move |conn| {
        let account = accounts::create(conn, &new, &t, now)?;
        let key = accounts::api_key(conn, account.id)?;
        Ok((account, key))
    })?;
    let mut v = serde_json::to_value(&account)?;
    v["token"] = json!(token);
    v["api_key"] = json!(key);
    Ok(Resp::json(201, &v))
}

// ----- work requests -------------------------------------------------------

/// The validated input of a new request.
struct Order {
    domain: String,
    operation: Operation,
    params: Value,
    exec_date: Option<Millis>,
    depends_on: Option<i64>,
    submit: bool,
}

fn order(body: &Map<String, Value>) -> Result<Order> {
    only_keys(
        body,
        &[
            "domain",
            "operation",
            "params",
            "submit",
            "exec_date",
            "depends_on",
        ],
    )?;
    let domain = form::domain_name("domain", &req_str(body, "domain")?)?;
    let op_text = req_str(body, "operation")?;
    let operation: Operation = op_text.parse().map_err(|_| {
        let all: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        Error::invalid(
            "operation",
            format!("{op_text:?} is not one of {}", all.join(", ")),
        )
    })?;
    let params = form::params(operation, body.get("params"))?;
    let exec_date = opt_str(body, "exec_date")?
        .map(|d| clock::parse("exec_date", &d))
        .transpose()?;
    schedulable(operation, exec_date)?;
    let depends_on = opt_i64(body, "depends_on")?;
    if depends_on.is_some_and(|d| d <= 0) {
        return Err(Error::invalid("depends_on", "must be a request id"));
    }
    Ok(Order {
        domain,
        operation,
        params,
        exec_date,
        depends_on,
        submit: opt_bool(body, "submit")?.unwrap_or(false),
    })
}

/// Only hold and delete may be scheduled (seed 004, "Requests that supports
/// scheduled operations").
fn schedulable(operation: Operation, exec_date: Option<Millis>) -> Result<()> {
    match (operation, exec_date) {
        (Operation::Hold | Operation::Delete, _) | (_, None) => Ok(()),
        (other, Some(_)) => Err(Error::invalid(
            "exec_date",
            format!("only hold and delete requests can be scheduled, not {other}"),
        )),
    }
}

/// Checks a `POST /requests` body as the handler does, without a database:
/// the fuzz target and tests call it with arbitrary bytes.
pub fn check_create_body(body: &[u8]) -> Result<()> {
    let req = Req::new("POST", "/api/v1/requests", body);
    order(&body_object(&req)?).map(|_| ())
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
    submit_loaded(conn, requests::load(conn, id)?, who, now)
}

/// `submit` for a request just read (or written) in this transaction.
fn submit_loaded(conn: &Connection, r: Request, who: &Who, now: Millis) -> Result<Request> {
    let (event, change) = submit_event(conn, r.account_id, r.operation, &r.domain, &r.params)?;
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
    let reason = if missing.is_empty() {
        None
    } else {
        Some(format!("missing: {}", missing.join(", ")))
    };
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
    // By domain: the planner chose `requests_operation` and read every
    // request of the operation, so each submit took longer than the last.
    // `+?`: see `store::literal`.
    let duplicates: Vec<i64> = conn.all(
        "select id from requests indexed by requests_domain
         where account_id = +?1 and domain = +?2 and operation = +?3
           and state in ('new', 'incomplete') and id <> ?4 order by id",
        params![r.account_id, r.domain, r.operation.as_str(), r.id],
        |row| row.get(0),
    )?;
    for dup in duplicates {
        let change = Change {
            reason: Some(format!("superseded by request {}", r.id)),
            ..Change::default()
        };
        transition::apply(
            conn,
            dup,
            Event::Duplicate,
            &Who::system("regdesk"),
            change,
            now,
        )?;
    }
    Ok(())
}

fn body_hash(req: &Req) -> String {
    hex::encode(Sha256::digest(&req.body))
}

/// What a create's write hands back: an answer replayed for an idempotency
/// key, the new request's page (made in the write to be kept with its
/// key), or the new request and its history, made into its page once the
/// write is done.
enum Created {
    Replayed(u16, String),
    Kept(Detail),
    New(Box<Request>, Vec<HistoryEntry>),
}

pub fn create_request(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    let order = order(&body)?;
    let key = req.header("idempotency-key").map(str::to_string);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(Error::invalid("Idempotency-Key", "1 to 255 characters"));
    }
    let hash = body_hash(req);
    let account = caller.clone();
    let now = app.clock.now();
    let created = app.db.write(move |conn| {
        if let Some(key) = &key {
            let seen: Option<(String, i64, String)> = conn
                .one(
                    "select body_hash, status, response from idempotency_keys where account_id = ?1 and key = ?2",
                    params![account.id, key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((seen_hash, status, response)) = seen {
                if seen_hash != hash {
                    return Err(Error::invalid(
                        "Idempotency-Key",
                        "this key was used with a different body",
                    ));
                }
                return Ok(Created::Replayed(status as u16, response));
            }
        }
        check_dependency(conn, order.depends_on, &account, None)?;
        let who = Who::account(&account);
        let new = NewRequest {
            account_id: account.id,
            domain: order.domain,
            operation: order.operation,
            params: order.params,
            exec_date: order.exec_date,
            depends_on: order.depends_on,
        };
        let (r, history) = if order.submit {
            let (event, change) =
                submit_event(conn, new.account_id, new.operation, &new.domain, &new.params)?;
            let first = |created: &Request| cancel_duplicates(conn, created, now);
            let then = transition::Then { event, change, first: &first };
            transition::create(conn, &new, &who, Some(then), now)?
        } else {
            transition::create(conn, &new, &who, None, now)?
        };
        check_new_request(conn, &r, &history, &account)?;
        let Some(key) = &key else {
            return Ok(Created::New(Box::new(r), history));
        };
        // The answer is kept with its key, so it is made here.
        let detail = new_request_detail(&r, history, &account)?;
        conn.exec(
            "insert into idempotency_keys (account_id, key, body_hash, status, response, created_at)
             values (?1, ?2, ?3, 201, ?4, ?5)",
            params![account.id, key, hash, detail.json, now],
        )?;
        Ok(Created::Kept(detail))
    })?;
    let detail = match created {
        // The ticker was told about the request when it was made.
        Created::Replayed(status, json) => return Ok(Resp::new(status, "application/json", json)),
        Created::Kept(detail) => detail,
        Created::New(r, history) => new_request_detail(&r, history, caller)?,
    };
    if detail.for_ticker() {
        app.ticker.wake();
    }
    Ok(detail.resp(201))
}

pub fn list_requests(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let f = filter(req, caller)?;
    let (after, limit) = (after(req)?, limit(req)?);
    app.db.read(move |conn| {
        let (rows, next) = requests::list(conn, &f, after, limit)?;
        with_views(conn, &rows, |items| {
            #[derive(Serialize)]
            struct Page<'a> {
                items: Vec<RequestView<'a>>,
                next: Option<String>,
            }
            let next = next.map(|n| n.to_string());
            Ok(Resp::json(200, &Page { items, next }))
        })
    })
}

fn csv_field(s: &str) -> String {
    // Quote every field; neutralise spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn export_csv(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let f = filter(req, caller)?;
    let body = app.db.read(move |conn| {
        let mut out = String::from(
            "id,state,operation,domain,account_id,waiting_on,failure,created_at,updated_at\n",
        );
        let mut after = None;
        let mut count = 0;
        loop {
            let (rows, next) = requests::list(conn, &f, after, requests::MAX_LIMIT)?;
            for r in &rows {
                let fields = [
                    r.id.to_string(),
                    r.state.to_string(),
                    r.operation.to_string(),
                    r.domain.clone(),
                    r.account_id.to_string(),
                    r.waiting_on.map(|w| w.to_string()).unwrap_or_default(),
                    r.failure.map(|w| w.to_string()).unwrap_or_default(),
                    clock::format(r.created_at),
                    clock::format(r.updated_at),
                ];
                let line: Vec<String> = fields.iter().map(|x| csv_field(x)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            count += rows.len() as i64;
            match next {
                Some(n) if count < MAX_EXPORT => after = Some(n),
                _ => break,
            }
        }
        Ok(out)
    })?;
    Ok(Resp::new(200, "text/csv; charset=utf-8", body).with_header(
        "Content-Disposition",
        "attachment; filename=\"requests.csv\"",
    ))
}

pub fn get_request(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    let caller = caller.clone();
    let detail = app.db.read(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        request_detail(conn, &r, &caller)
    })?;
    Ok(detail.resp(200))
}

pub fn patch_request(app: &App, req: &Req, id: i64, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    let caller = caller.clone();
    let now = app.clock.now();
    let detail = app.db.write(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        only_keys(&body, &["params", "exec_date", "depends_on"])?;
        let who = Who::account(&caller);
        // Refuse before changing anything when the state does not allow it.
        state::transition(r.state, r.waiting_on, &Event::UpdateParams, who.actor)?;
        let params = match body.get("params") {
            Some(p) => form::params(r.operation, Some(p))?,
            None => r.params.clone(),
        };
        let exec_date = match body.get("exec_date") {
            Some(Value::Null) => None,
            Some(_) => Some(clock::parse("exec_date", &req_str(&body, "exec_date")?)?),
            None => r.exec_date,
        };
        schedulable(r.operation, exec_date)?;
        let depends_on = match body.get("depends_on") {
            Some(Value::Null) => None,
            Some(_) => opt_i64(&body, "depends_on")?,
            None => r.depends_on,
        };
        check_dependency(conn, depends_on, &caller, Some(id))?;
        conn.exec(
            "update requests set params = ?1, exec_date = ?2, depends_on = ?3 where id = ?4",
            params![params.to_string(), exec_date, depends_on, id],
        )?;
        let change = Change {
            missing: Some(if r.state == State::Incomplete {
                form::missing(r.operation, &params)
            } else {
                Vec::new()
            }),
            ..Change::default()
        };
        let r = transition::apply(conn, id, Event::UpdateParams, &who, change, now)?;
        request_detail(conn, &r, &caller)
    })?;
    Ok(detail.resp(200))
}

/// Actions only operators may take.
fn operator_only(action: &str) -> bool {
    matches!(
        action,
        "authorise" | "send-back" | "retry" | "resolve" | "events"
    )
}

/// The event and change an action's body asks for.
fn action_event(action: &str, body: &Map<String, Value>) -> Result<Option<(Event, Change)>> {
    let reason = |field: &str, required: bool| -> Result<Option<String>> {
        match opt_str(body, field)? {
            Some(t) => text(field, t, required),
            None if required => Err(Error::invalid(field, "is required")),
            None => Ok(None),
        }
    };
    Ok(Some(match action {
        "authorise" => {
            only_keys(body, &["note"])?;
            (
                Event::Authorise,
                Change {
                    reason: reason("note", false)?,
                    ..Change::default()
                },
            )
        }
        "send-back" => {
            only_keys(body, &["annotation"])?;
            let note = reason("annotation", true)?;
            (
                Event::SendBack,
                Change {
                    reason: note.clone(),
                    annotation: note,
                    ..Change::default()
                },
            )
        }
        "abort" => {
            only_keys(body, &["reason"])?;
            (
                Event::Abort,
                Change {
                    reason: reason("reason", false)?,
                    ..Change::default()
                },
            )
        }
        "retry" => {
            only_keys(body, &["note"])?;
            (
                Event::Retry,
                Change {
                    reason: reason("note", false)?,
                    ..Change::default()
                },
            )
        }
        "resolve" => {
            only_keys(body, &["outcome", "failure", "note"])?;
            let outcome = req_str(body, "outcome")?;
            let resolution = match outcome.as_str() {
                "finished" => Resolution::Finished,
                "failed" => {
                    let failure = match opt_str(body, "failure")?.as_deref() {
                        None | Some("registry") => Failure::Registry,
                        Some("invalid") => Failure::Invalid,
                        Some("declined") => Failure::Declined,
                        Some("aborted") => Failure::Aborted,
                        Some(other) => {
                            return Err(Error::invalid(
                                "failure",
                                format!("{other:?} is not registry, invalid, declined or aborted"),
                            ))
                        }
                    };
                    Resolution::Failed(failure)
                }
                other => {
                    return Err(Error::invalid(
                        "outcome",
                        format!("{other:?} is not finished or failed"),
                    ))
                }
            };
            (
                Event::Resolve(resolution),
                Change {
                    reason: reason("note", false)?,
                    ..Change::default()
                },
            )
        }
        "events" => {
            only_keys(body, &["outcome", "message"])?;
            let message = reason("message", false)?;
            let resolution = match req_str(body, "outcome")?.as_str() {
                "success" => Resolution::Finished,
                "error" => Resolution::Failed(Failure::Registry),
                "denied" => Resolution::Failed(Failure::Declined),
                "pending" => return Ok(None),
                other => {
                    return Err(Error::invalid(
                        "outcome",
                        format!("{other:?} is not success, error, pending or denied"),
                    ))
                }
            };
            (
                Event::Resolve(resolution),
                Change {
                    reason: message,
                    ..Change::default()
                },
            )
        }
        _ => return Err(Error::not_found(format!("action {action:?}"))),
    }))
}

pub fn action(app: &App, req: &Req, id: i64, action: &str, caller: &Account) -> Result<Resp> {
    if !matches!(
        action,
        "submit"
            | "authorise"
            | "send-back"
            | "abort"
            | "retry"
            | "resolve"
            | "annotate"
            | "events"
    ) {
        return Err(Error::not_found(format!("action {action:?}")));
    }
    let body = body_object(req)?;
    let caller = caller.clone();
    let now = app.clock.now();
    let action = action.to_string();
    let detail = app.db.write(move |conn| {
        let r = requests::visible(conn, id, caller.id, caller.is_operator())?;
        if operator_only(&action) {
            require_operator(&caller)?;
        }
        let who = if action == "events" {
            Who::system("registry")
        } else {
            Who::account(&caller)
        };
        let r = match action.as_str() {
            "submit" => {
                only_keys(&body, &[])?;
                submit(conn, id, &who, now)?
            }
            "annotate" => {
                only_keys(&body, &["text"])?;
                let note = text("text", req_str(&body, "text")?, true)?.unwrap_or_default();
                requests::add_annotation(conn, id, &who.name, &note, now)?;
                r
            }
            _ => match action_event(&action, &body)? {
                Some((event, change)) => transition::apply(conn, id, event, &who, change, now)?,
                None => {
                    // A "pending" registry event changes nothing but the record.
                    let note = opt_str(&body, "message")?.unwrap_or_else(|| "pending".into());
                    requests::add_annotation(
                        conn,
                        id,
                        "registry",
                        &format!("pending: {note}"),
                        now,
                    )?;
                    r
                }
            },
        };
        request_detail(conn, &r, &caller)
    })?;
    if detail.for_ticker() {
        app.ticker.wake();
    }
    Ok(detail.resp(200))
}

pub fn bulk(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["action", "ids", "filter", "reason"])?;
    let action = req_str(&body, "action")?;
    if !matches!(action.as_str(), "authorise" | "abort" | "retry") {
        return Err(Error::invalid(
            "action",
            "bulk actions are authorise, abort and retry",
        ));
    }
    if operator_only(&action) {
        require_operator(caller)?;
    }
    let ids: Option<Vec<i64>> = match body.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|v| {
                    form::whole_number(v)
                        .ok_or_else(|| Error::invalid("ids", "must be request ids"))
                })
                .collect::<Result<_>>()?,
        ),
        Some(_) => return Err(Error::invalid("ids", "must be a list of request ids")),
    };
    let filter = match (&ids, body.get("filter")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("filter", "give ids or a filter, not both"))
        }
        (Some(list), None) if list.len() as i64 > MAX_BULK => {
            return Err(Error::invalid("ids", format!("at most {MAX_BULK} at once")))
        }
        (Some(_), None) => None,
        (None, Some(Value::Object(f))) => {
            let mut q = Req::new("GET", "/", b"");
            for (k, v) in f {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(Error::invalid(
                            format!("filter.{k}"),
                            "must be a string or number",
                        ))
                    }
                };
                q.query.push((k.clone(), v));
            }
            Some(filter(&q, caller)?)
        }
        (None, _) => return Err(Error::invalid("ids", "give ids or a filter")),
    };
    let reason = opt_str(&body, "reason")?;
    let caller = caller.clone();
    let now = app.clock.now();
    let value = app.db.write(move |conn| {
        let ids = match (ids, filter) {
            (Some(ids), _) => ids,
            (None, Some(f)) => requests::ids(conn, &f, MAX_BULK)?,
            (None, None) => Vec::new(),
        };
        let who = Who::account(&caller);
        let event = match action.as_str() {
            "authorise" => Event::Authorise,
            "retry" => Event::Retry,
            _ => Event::Abort,
        };
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for id in ids {
            let outcome = in_savepoint(conn, "bulk_item", || {
                requests::visible(conn, id, caller.id, caller.is_operator())?;
                let change = Change {
                    reason: reason.clone(),
                    ..Change::default()
                };
                transition::apply(conn, id, event.clone(), &who, change, now)
            })?;
            match outcome {
                Ok(_) => done.push(id),
                Err(e) => {
                    failed.push(
                        json!({ "id": id, "error": { "code": e.code(), "message": e.message() } }),
                    );
                }
            }
        }
        Ok(json!({ "done": done, "failed": failed }))
    })?;
    app.ticker.wake();
    Ok(Resp::json(200, &value))
}

pub fn cancel_pending(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["older_than_days"])?;
    let days = opt_i64(&body, "older_than_days")?
        .ok_or_else(|| Error::invalid("older_than_days", "is required"))?;
    if !(0..=36_500).contains(&days) {
        return Err(Error::invalid("older_than_days", "must be 0 to 36500"));
    }
    let caller = caller.clone();
    let now = app.clock.now();
    let value = app.db.write(move |conn| {
        let f = Filter {
            states: vec![State::New, State::Incomplete],
            account_id: Some(caller.id),
            created_before: Some(now - days * DAY),
            ..Filter::default()
        };
        let ids = requests::ids(conn, &f, i64::MAX)?;
        let who = Who::account(&caller);
        for id in &ids {
            let change = Change {
                reason: Some(format!("pending for more than {days} day(s)")),
                ..Change::default()
            };
            transition::apply(conn, *id, Event::Expire, &who, change, now)?;
        }
        Ok(json!({ "cancelled": ids, "total": ids.len() }))
    })?;
    Ok(Resp::json(200, &value))
}

pub fn scheduled(app: &App, caller: &Account) -> Result<Resp> {
    let caller = caller.clone();
    let now = app.clock.now();
    let value = app.db.read(move |conn| {
        let sql = format!(
            "select {} from requests where state = 'queued' and exec_date > ?1
             and (?2 is null or account_id = ?2) order by exec_date, id limit 500",
            requests::COLUMNS
        );
        let account = (!caller.is_operator()).then_some(caller.id);
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows: Vec<Request> = stmt
            .query_map(params![now, account], requests::from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(json!({ "items": requests_json(conn, &rows)? }))
    })?;
    Ok(Resp::json(200, &value))
}

// ----- domains -------------------------------------------------------------

pub fn list_domains(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let limit = limit(req)?;
    let after = req.query("after").map(str::to_string);
    let account = account_scope(query_i64(req, "account_id")?, caller)?;
    let value = app.db.read(move |conn| {
        let (items, next) = domains::list(conn, account, after.as_deref(), limit)?;
        Ok(json!({ "items": items, "next": next }))
    })?;
    Ok(Resp::json(200, &value))
}

pub fn get_domain(app: &App, name: &str, caller: &Account) -> Result<Resp> {
    let name = form::domain_name("name", name)
        .map_err(|_| Error::not_found(format!("domain {}", quoted(name))))?;
    let caller = caller.clone();
    let value = app.db.read(move |conn| {
        if let Some(d) = domains::by_name(conn, &name)? {
            if caller.is_operator() || d.account_id == caller.id {
                let mut v = serde_json::to_value(&d)?;
                v["order"] = Value::Null;
                return Ok(v);
            }
        }
        match requests::open_order(conn, caller.id, &name)? {
            Some(r) => Ok(json!({
                "name": name,
                "status": "ordered",
                "order": requests_json(conn, std::slice::from_ref(&r))?.pop(),
            })),
            None => Err(Error::not_found(format!("domain {name}"))),
        }
    })?;
    Ok(Resp::json(200, &value))
}

/// `POST /domains`: order a registration (seed 001). 202 with the request,
/// unless the form is invalid; the outcome comes as a notification.
pub fn order_domain(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let mut body = body_object(req)?;
    let name = body
        .remove("name")
        .or_else(|| body.remove("domain"))
        .ok_or_else(|| Error::invalid("name", "is required"))?;
    let mut order_body = Map::new();
    order_body.insert("domain".into(), name);
    order_body.insert("operation".into(), json!("create"));
    order_body.insert("submit".into(), json!(true));
    order_body.insert("params".into(), Value::Object(body));
    let order = order(&order_body)?;
    if let Some(field) = form::missing(order.operation, &order.params).first() {
        return Err(Error::invalid(
            field.as_str(),
            "is required to order a domain",
        ));
    }
    let caller = caller.clone();
    let now = app.clock.now();
    let detail = app.db.write(move |conn| {
        let who = Who::account(&caller);
        let new = NewRequest {
            account_id: caller.id,
            domain: order.domain,
            operation: order.operation,
            params: order.params,
            exec_date: None,
            depends_on: None,
        };
        let (r, _) = transition::create(conn, &new, &who, None, now)?;
        let r = submit(conn, r.id, &who, now)?;
        request_detail(conn, &r, &caller)
    })?;
    app.ticker.wake();
    Ok(detail.resp(202))
}

// ----- notifications and events ---------------------------------------------

pub fn next_notification(app: &App, caller: &Account) -> Result<Resp> {
    let id = caller.id;
    match app
        .db
        .read(move |conn| notifications::oldest_unread(conn, id))?
    {
        Some(n) => Ok(Resp::json(200, &n)),
        None => Ok(Resp::empty(204)),
    }
}

pub fn read_notification(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    let account = caller.id;
    let now = app.clock.now();
    app.db
        .write(move |conn| notifications::mark_read(conn, account, id, now))?;
    Ok(Resp::empty(204))
}

pub fn list_notifications(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let status = match req.query("status") {
        None | Some("all") => ReadStatus::All,
        Some("unread") => ReadStatus::Unread,
        Some("read") => ReadStatus::Read,
        Some(other) => {
            return Err(Error::invalid(
                "status",
                format!("{other:?} is not unread, read or all"),
            ))
        }
    };
    let (after, limit, account) = (after(req)?, limit(req)?, caller.id);
    let value = app.db.read(move |conn| {
        let (items, next) = notifications::list(conn, account, status, after, limit)?;
        Ok(json!({ "items": items, "next": next.map(|n| n.to_string()) }))
    })?;
    Ok(Resp::json(200, &value))
}

pub fn events(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let account = (!caller.is_operator()).then_some(caller.id);
    if req.query("after") == Some("latest") {
        // Where a client that only wants what happens from now on starts.
        let latest: i64 = app.db.read(move |conn| {
            Ok(conn.query_row(
                "select coalesce(max(id), 0) from transitions where (?1 is null or account_id = ?1)",
                [account],
                |r| r.get(0),
            )?)
        })?;
        return Ok(Resp::json(
            200,
            &json!({ "items": [], "next": latest.to_string() }),
        ));
    }
    let (after, limit) = (after(req)?.unwrap_or(0), limit(req)?);
    let value = app.db.read(move |conn| {
        let mut stmt = conn.prepare_cached(
            "select t.id, t.request_id, t.account_id, r.domain, r.operation, t.from_state, t.to_state,
                    t.event, t.actor, t.reason, t.at
             from transitions t join requests r on r.id = t.request_id
             where t.id > ?1 and (?2 is null or t.account_id = ?2) order by t.id limit 500",
        )?;
        // The page size is cut here, not bound (see `store::literal`).
        let items: Vec<Value> = stmt
            .query_map(params![after, account], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "request_id": r.get::<_, i64>(1)?,
                    "account_id": r.get::<_, i64>(2)?,
                    "domain": r.get::<_, String>(3)?,
                    "operation": r.get::<_, String>(4)?,
                    "from": r.get::<_, Option<String>>(5)?,
                    "to": r.get::<_, String>(6)?,
                    "event": r.get::<_, String>(7)?,
                    "actor": r.get::<_, String>(8)?,
                    "reason": r.get::<_, Option<String>>(9)?,
                    "at": clock::format(r.get(10)?),
                }))
            })?
            .take(limit as usize)
            .collect::<rusqlite::Result<_>>()?;
        let next = items.last().and_then(|v| v["id"].as_i64()).unwrap_or(after);
        Ok(json!({ "items": items, "next": next.to_string() }))
    })?;
    Ok(Resp::json(200, &value))
}

pub fn mail(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    let (request_id, limit) = (query_i64(req, "request_id")?, limit(req)?);
    let items = app
        .db
        .read(move |conn| notifications::mail(conn, request_id, limit))?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

// ----- clock, ticks, simulated registry ---------------------------------------

fn clock_json(app: &App) -> Value {
    json!({
        "now": clock::format(app.clock.now()),
        "now_ms": app.clock.now(),
        "test_clock": app.clock.is_test(),
        "frozen": app.clock.is_frozen(),
    })
}

pub fn get_clock(app: &App) -> Result<Resp> {
    Ok(Resp::json(200, &clock_json(app)))
}

/// Moves the test clock, then does the work that fell due before answering.
pub fn set_clock(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    if !app.clock.is_test() {
        return Err(Error::Conflict(
            "the clock can only be moved with --test-clock".into(),
        ));
    }
    let body = body_object(req)?;
    only_keys(&body, &["advance", "set", "freeze"])?;
    let advance = opt_str(&body, "advance")?
        .map(|d| clock::parse_duration("advance", &d))
        .transpose()?;
    let set = opt_str(&body, "set")?
        .map(|t| clock::parse("set", &t))
        .transpose()?;
    let freeze = opt_bool(&body, "freeze")?;
    if advance.is_none() && set.is_none() && freeze.is_none() {
        return Err(Error::invalid("advance", "give advance, set or freeze"));
    }
    if let Some(f) = freeze {
        app.clock.freeze(f)?;
    }
    if let Some(at) = set {
        app.clock.set(at)?;
    }
    if let Some(by) = advance {
        app.clock.advance(by)?;
    }
    let report = app.ticker.run_until_idle()?;
    app.send_due()?;
    let mut v = clock_json(app);
    v["ticked"] = json!(report.total());
    Ok(Resp::json(200, &v))
}

/// Runs the ticker until nothing is due, then answers what it did.
pub fn tick(app: &App, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    let r = app.ticker.run_until_idle()?;
    let sent = app.send_due()?;
    Ok(Resp::json(
        200,
        &json!({
            "dependency_failed": r.dependency_failed,
            "claimed": r.claimed,
            "fulfilled": r.fulfilled,
            "waits_ended": r.waits_ended,
            "sent": sent,
        }),
    ))
}

pub fn get_rules(app: &App, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    let rules = app.db.read(simulated::load_rules)?;
    Ok(Resp::json(200, &json!({ "rules": rules })))
}

pub fn put_rules(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    require_operator(caller)?;
    let body = body_object(req)?;
    only_keys(&body, &["rules"])?;
    let list = match body.get("rules") {
        Some(Value::Array(list)) => list.clone(),
        _ => {
            return Err(Error::invalid(
                "rules",
                "must be a list of {pattern, operation, outcome}",
            ))
        }
    };
    let rules: Vec<Rule> = list
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<Rule>(v)
                .map_err(|e| Error::invalid(format!("rules[{i}]"), e.to_string()))
        })
        .collect::<Result<_>>()?;
    let saved = rules.clone();
    app.db
        .write(move |conn| simulated::save_rules(conn, &rules))?;
    Ok(Resp::json(200, &json!({ "rules": saved })))
}

// ----- health ----------------------------------------------------------------

pub fn healthz() -> Resp {
    Resp::json(200, &json!({ "status": "ok" }))
}

pub fn readyz(app: &App) -> Resp {
    let ticker = app.ticker.stats.running.load(Ordering::SeqCst);
    if app.ready.load(Ordering::SeqCst) && ticker {
        Resp::json(
            200,
            &json!({ "status": "ready", "migrations": "applied", "ticker": "running" }),
        )
    } else {
        Resp::json(503, &json!({ "status": "starting" }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request written out directly (lists) reads exactly as the map the
    /// API built before, every optional field set and unset.
    #[test]
    fn a_request_view_writes_the_text_of_the_map_it_replaced() {
        let full = Request {
            id: 7,
            account_id: 3,
            domain: "example.com".into(),
            operation: Operation::Create,
            params: json!({"period": 2, "contacts": {"owner": {"name": "A \"B\""}}}),
            state: State::Limbo,
            waiting_on: Some(WaitingOn::Registry),
            failure: Some(Failure::Registry),
            missing: vec!["contacts.owner.email".into()],
            exec_date: Some(86_400_000),
            depends_on: Some(5),
            attempts: 2,
            next_attempt_at: Some(1),
            wait_until: Some(90_000_000),
            last_error: Some("registry said <no>".into()),
            created_at: 1_000,
            updated_at: 2_000,
        };
        let bare = Request {
            waiting_on: None,
            failure: None,
            missing: Vec::new(),
            exec_date: None,
            depends_on: None,
            wait_until: None,
            last_error: None,
            state: State::Queued,
            ..full.clone()
        };
        let note = Annotation {
            actor: "operator:root".into(),
            text: "checked \u{e9}".into(),
            at: 3_000,
        };
        let opt_time = |ms: Option<Millis>| {
            ms.map(|t| Value::String(clock::format(t)))
                .unwrap_or(Value::Null)
        };
        for (r, notes) in [(&full, vec![&note]), (&bare, vec![])] {
            let map = json!({
                "id": r.id,
                "account_id": r.account_id,
                "domain": r.domain,
                "operation": r.operation.as_str(),
                "params": r.params,
                "state": r.state.as_str(),
                "waiting_on": r.waiting_on.map(WaitingOn::as_str),
                "failure": r.failure.map(Failure::as_str),
                "missing": r.missing,
                "annotations": notes,
                "exec_date": opt_time(r.exec_date),
                "depends_on": r.depends_on,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "wait_until": opt_time(r.wait_until),
                "order_status": state::order_status(r.state, r.waiting_on, r.failure),
                "task_status": state::task_status(r.state, r.waiting_on, r.failure),
                "created_at": clock::format(r.created_at),
                "updated_at": clock::format(r.updated_at),
            });
            let direct =
                serde_json::to_string(&RequestView::new(r, notes.clone())).expect("a view as JSON");
            assert_eq!(direct, map.to_string());
            assert_eq!(request_json(r, notes.clone()), map);

            // A request's page: the map with history, invoice items,
            // notifications and actions put in, as it was built before (the
            // same fields and values; an entry of those lists now keeps its
            // fields in the order `GET /notification` shows them).
            let history = vec![HistoryEntry {
                id: 11,
                from: Some("new".into()),
                to: r.state.as_str().into(),
                event: "submit".into(),
                actor: "customer:3".into(),
                reason: None,
                at: 1_500,
            }];
            let items = vec![InvoiceItem {
                id: 12,
                request_id: r.id,
                kind: "charge".into(),
                description: "create example.com, 2 years".into(),
                amount_cents: 2_400,
                created_at: 1_600,
            }];
            let told = vec![Notification {
                id: 13,
                account_id: r.account_id,
                kind: "domain".into(),
                action: "create".into(),
                status: "success".into(),
                message: "the domain is registered".into(),
                domain: r.domain.clone(),
                request_id: Some(r.id),
                created_at: 1_700,
                read_at: None,
            }];
            let caller = Account {
                id: 1,
                name: "root".into(),
                email: "root@example.net".into(),
                role: Role::Operator,
                review_limit_cents: 0,
                review_all: false,
                created_at: 0,
            };
            let mut page = map.clone();
            page["history"] = serde_json::to_value(&history).expect("history");
            page["invoice_items"] = serde_json::to_value(&items).expect("items");
            page["notifications"] = serde_json::to_value(&told).expect("notifications");
            page["allowed_actions"] = json!(state::allowed_actions(
                r.state,
                r.waiting_on,
                state::Actor::Operator
            ));
            let detail = detail_of(r, notes, &caller, history, items, told).expect("a page");
            let read: Value = serde_json::from_str(&detail.json).expect("a page as JSON");
            assert_eq!(read, page);
            assert_eq!(detail.state, r.state);
        }
    }
}
