//! The native JSON API under `/api/v1` (SPEC section 4): accounts, work
//! requests and their actions, domains, the notification FIFO, the event
//! feed, the clock and the simulated registry's rules. Handlers parse the
//! query and the body, call the desk, and write its answer as JSON.

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::{self, DAY};
use crate::desk::feed::NameLookup;
use crate::desk::filter::Filter;
use crate::desk::orders::{Created, Idempotency, NewOrder, Pending};
use crate::desk::requests::{Act, Patch, RegistryEvent, Targets};
use crate::desk::{self, filter, orders, requests};
use crate::error::{quoted, Error, Result};
use crate::face::json_args::{
    after, body_object, csv_field, limit, list_of, only_keys, opt_bool, opt_i64, opt_str,
    query_i64, req_str, text,
};
use crate::form;
use crate::http::{Req, Resp};
use crate::registry::simulated::Rule;
use crate::state::{Action, Failure, Operation, Resolution, State, WaitingOn};
use crate::store::accounts::{Account, NewAccount, Role};
use crate::store::lifecycle::DomainFilter;
use crate::store::notifications::ReadStatus;
use crate::store::view::{self, Detail};
use crate::App;

/// Rows in one CSV export at most.
pub const MAX_EXPORT: i64 = 100_000;

fn resp(detail: Detail, status: u16) -> Resp {
    Resp::new(status, "application/json", detail.json)
}

// ----- the request filter ---------------------------------------------------

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
pub fn query_filter(req: &Req, caller: &Account) -> Result<Filter> {
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
    f.account_id = desk::account_scope(f.account_id, caller)?;
    Ok(f)
}

// ----- accounts ------------------------------------------------------------

pub fn me(app: &App, caller: &Account) -> Result<Resp> {
    let key = desk::accounts::api_key(app, caller.id)?;
    let mut v = serde_json::to_value(caller)?;
    v["api_key"] = json!(key);
    Ok(Resp::json(200, &v))
}

pub fn list_accounts(app: &App, caller: &Account) -> Result<Resp> {
    let items = desk::accounts::list(app, caller)?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

pub fn create_account(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    desk::require_operator(caller)?;
    let body = body_object(req)?;
    only_keys(
        &body,
        &["name", "email", "role", "review_limit_cents", "review_all"],
    )?;
    let name = crate::store::accounts::valid_name(&req_str(&body, "name")?)?;
    let email = crate::store::accounts::valid_email(&req_str(&body, "email")?)?;
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
    let (account, token, key) = desk::accounts::create(app, caller, new)?;
    let mut v = serde_json::to_value(&account)?;
    v["token"] = json!(token);
    v["api_key"] = json!(key);
    Ok(Resp::json(201, &v))
}

// ----- work requests -------------------------------------------------------

fn order(body: &Map<String, Value>) -> Result<NewOrder> {
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
    orders::schedulable(operation, exec_date)?;
    let depends_on = opt_i64(body, "depends_on")?;
    if depends_on.is_some_and(|d| d <= 0) {
        return Err(Error::invalid("depends_on", "must be a request id"));
    }
    Ok(NewOrder {
        domain,
        operation,
        params,
        exec_date,
        depends_on,
        submit: opt_bool(body, "submit")?.unwrap_or(false),
    })
}

/// Checks a `POST /requests` body as the handler does, without a database:
/// the fuzz target and tests call it with arbitrary bytes.
pub fn check_create_body(body: &[u8]) -> Result<()> {
    let req = Req::new("POST", "/api/v1/requests", body);
    order(&body_object(&req)?).map(|_| ())
}

pub fn create_request(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    let order = order(&body)?;
    let key = req.header("idempotency-key").map(str::to_string);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(Error::invalid("Idempotency-Key", "1 to 255 characters"));
    }
    let key = key.map(|key| Idempotency {
        key,
        body_hash: hex::encode(Sha256::digest(&req.body)),
    });
    match orders::create_keyed(app, caller, order, key)? {
        Created::Replayed(status, json) => Ok(Resp::new(status, "application/json", json)),
        Created::Made(_, detail) => Ok(resp(detail, 201)),
    }
}

pub fn list_requests(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let f = query_filter(req, caller)?;
    let page = filter::list(app, f, after(req)?, limit(req)?)?;
    let json = view::requests_page(&page.rows, &page.notes, page.next)?;
    Ok(Resp::new(200, "application/json", json))
}

pub fn export_csv(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let f = query_filter(req, caller)?;
    let rows = filter::export(app, f, MAX_EXPORT)?;
    let mut out = String::from(
        "id,state,operation,domain,account_id,waiting_on,failure,created_at,updated_at\n",
    );
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
    Ok(Resp::new(200, "text/csv; charset=utf-8", out).with_header(
        "Content-Disposition",
        "attachment; filename=\"requests.csv\"",
    ))
}

pub fn get_request(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    Ok(resp(filter::get(app, caller, id)?, 200))
}

pub fn patch_request(app: &App, req: &Req, id: i64, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    let detail = requests::patch(app, caller, id, move || {
        only_keys(&body, &["params", "exec_date", "depends_on"])?;
        let exec_date = match body.get("exec_date") {
            Some(Value::Null) => Some(None),
            Some(_) => Some(Some(clock::parse(
                "exec_date",
                &req_str(&body, "exec_date")?,
            )?)),
            None => None,
        };
        let depends_on = match body.get("depends_on") {
            Some(Value::Null) => Some(None),
            Some(_) => Some(opt_i64(&body, "depends_on")?),
            None => None,
        };
        Ok(Patch {
            params: body.get("params").cloned(),
            exec_date,
            depends_on,
        })
    })?;
    Ok(resp(detail, 200))
}

/// A note of an action's body: `field` trimmed, at most `form::MAX_TEXT`
/// characters, blank as none unless `required`.
fn note(body: &Map<String, Value>, field: &str, required: bool) -> Result<Option<String>> {
    match opt_str(body, field)? {
        Some(t) => text(field, t, required),
        None if required => Err(Error::invalid(field, "is required")),
        None => Ok(None),
    }
}

/// What an action's body says, for `action`.
fn act(action: Action, body: &Map<String, Value>) -> Result<Act> {
    let (keys, field, required): (&[&str], &str, bool) = match action {
        Action::Submit => (&[], "", false),
        Action::Authorise | Action::Retry => (&["note"], "note", false),
        Action::SendBack => (&["annotation"], "annotation", true),
        Action::Abort => (&["reason"], "reason", false),
        Action::Resolve => (&["outcome", "failure", "note"], "note", false),
        Action::Annotate => (&["text"], "text", true),
    };
    only_keys(body, keys)?;
    let resolution = match action {
        Action::Resolve => Some(resolution(body)?),
        _ => None,
    };
    let note = match action {
        Action::Submit => None,
        Action::Annotate => text("text", req_str(body, "text")?, true)?,
        _ => note(body, field, required)?,
    };
    Ok(Act { note, resolution })
}

/// A resolve's `outcome` (and `failure`).
fn resolution(body: &Map<String, Value>) -> Result<Resolution> {
    match req_str(body, "outcome")?.as_str() {
        "finished" => Ok(Resolution::Finished),
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
            Ok(Resolution::Failed(failure))
        }
        other => Err(Error::invalid(
            "outcome",
            format!("{other:?} is not finished or failed"),
        )),
    }
}

/// A registry's report as `POST /requests/{id}/events` sends it.
fn registry_event(body: &Map<String, Value>) -> Result<RegistryEvent> {
    only_keys(body, &["outcome", "message"])?;
    let message = note(body, "message", false)?;
    let resolution = match req_str(body, "outcome")?.as_str() {
        "success" => Resolution::Finished,
        "error" => Resolution::Failed(Failure::Registry),
        "denied" => Resolution::Failed(Failure::Declined),
        "pending" => {
            let raw = opt_str(body, "message")?.unwrap_or_else(|| "pending".into());
            return Ok(RegistryEvent::Pending(raw));
        }
        other => {
            return Err(Error::invalid(
                "outcome",
                format!("{other:?} is not success, error, pending or denied"),
            ))
        }
    };
    Ok(RegistryEvent::Resolved(resolution, message))
}

pub fn action(app: &App, req: &Req, id: i64, action: &str, caller: &Account) -> Result<Resp> {
    let unknown = || Error::not_found(format!("action {action:?}"));
    let parsed = match action {
        "events" => None,
        name => Some(name.parse::<Action>().map_err(|_| unknown())?),
    };
    let body = body_object(req)?;
    let detail = match parsed {
        Some(a) => requests::act(app, caller, id, a, move || act(a, &body))?,
        None => requests::registry_event(app, caller, id, move || registry_event(&body))?,
    };
    Ok(resp(detail, 200))
}

/// A bulk body's `ids` or `filter` (a query string's parameters as an object).
fn targets(body: &Map<String, Value>, caller: &Account) -> Result<Targets> {
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
    match (ids, body.get("filter")) {
        (Some(_), Some(_)) => Err(Error::invalid("filter", "give ids or a filter, not both")),
        (Some(list), None) if list.len() as i64 > requests::MAX_BULK => Err(Error::invalid(
            "ids",
            format!("at most {} at once", requests::MAX_BULK),
        )),
        (Some(list), None) => Ok(Targets::Ids(list)),
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
            Ok(Targets::Matching(Box::new(query_filter(&q, caller)?)))
        }
        (None, _) => Err(Error::invalid("ids", "give ids or a filter")),
    }
}

pub fn bulk(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["action", "ids", "filter", "reason"])?;
    let action = req_str(&body, "action")?;
    // Which actions may be taken in bulk, and by whom, is the desk's rule.
    let action = action
        .parse::<Action>()
        .map_err(|_| Error::invalid("action", "bulk actions are authorise, abort and retry"))?;
    let targets = targets(&body, caller)?;
    let reason = note(&body, "reason", false)?;
    let outcome = requests::bulk(app, caller, action, targets, reason)?;
    let failed: Vec<Value> = outcome
        .failed
        .iter()
        .map(|(id, e)| json!({ "id": id, "error": { "code": e.code(), "message": e.message() } }))
        .collect();
    Ok(Resp::json(
        200,
        &json!({ "done": outcome.done, "failed": failed }),
    ))
}

pub fn cancel_pending(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["older_than_days"])?;
    let days = opt_i64(&body, "older_than_days")?
        .ok_or_else(|| Error::invalid("older_than_days", "is required"))?;
    if !(0..=36_500).contains(&days) {
        return Err(Error::invalid("older_than_days", "must be 0 to 36500"));
    }
    let which = Pending {
        operations: Vec::new(),
        created_before: app.clock.now() - days * DAY,
        max: i64::MAX,
        reason: format!("pending for more than {days} day(s)"),
    };
    let ids: Vec<i64> = orders::cancel_pending(app, caller, which)?
        .iter()
        .map(|r| r.id)
        .collect();
    Ok(Resp::json(
        200,
        &json!({ "cancelled": ids, "total": ids.len() }),
    ))
}

pub fn scheduled(app: &App, caller: &Account) -> Result<Resp> {
    let f = Filter {
        account_id: desk::own_scope(caller),
        ..Filter::default()
    };
    let listed = filter::scheduled(app, f)?;
    let items = view::requests_json(&listed.rows, &listed.notes);
    Ok(Resp::json(200, &json!({ "items": items })))
}

// ----- domains -------------------------------------------------------------

pub fn list_domains(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let limit = limit(req)?;
    let after = req.query("after").map(str::to_string);
    let filter = domain_filter(req, caller)?;
    let (items, next) = desk::lifecycle::domains(app, filter, after, limit)?;
    Ok(Resp::json(200, &json!({ "items": items, "next": next })))
}

pub fn get_domain(app: &App, name: &str, caller: &Account) -> Result<Resp> {
    let name = form::domain_name("name", name)
        .map_err(|_| Error::not_found(format!("domain {}", quoted(name))))?;
    let value = match desk::feed::domain(app, caller, name.clone())? {
        NameLookup::Held(d) => {
            let mut v = desk::lifecycle::domain(app, caller, name.clone())?;
            // Its holder (or an operator) reads the code to give a gaining
            // registrar; lists and notifications never carry it.
            v["auth_code"] = json!(d.auth_code);
            v["order"] = Value::Null;
            v["transfer"] = json!(desk::transfers::pending_for(app, caller, &name)?);
            v
        }
        NameLookup::Ordered(r, notes) => json!({
            "name": name,
            "status": "ordered",
            "order": view::requests_json(std::slice::from_ref(&r), &notes).pop(),
        }),
    };
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
    let (_, detail) = orders::create(app, caller, order)?;
    Ok(resp(detail, 202))
}

// ----- notifications and events ---------------------------------------------

pub fn next_notification(app: &App, caller: &Account) -> Result<Resp> {
    match desk::feed::next_notification(app, caller)? {
        Some(n) => Ok(Resp::json(200, &n)),
        None => Ok(Resp::empty(204)),
    }
}

pub fn read_notification(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    desk::feed::read_notification(app, caller, id)?;
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
    let (after, limit) = (after(req)?, limit(req)?);
    let (items, next) = desk::feed::notifications(app, caller, status, after, limit)?;
    Ok(Resp::json(
        200,
        &json!({ "items": items, "next": next.map(|n| n.to_string()) }),
    ))
}

pub fn events(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    if req.query("after") == Some("latest") {
        // Where a client that only wants what happens from now on starts.
        let latest = desk::feed::latest_event(app, caller)?;
        return Ok(Resp::json(
            200,
            &json!({ "items": [], "next": latest.to_string() }),
        ));
    }
    let (after, limit) = (after(req)?.unwrap_or(0), limit(req)?);
    let entries = desk::feed::events(app, caller, after, limit)?;
    let items: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.step.id,
                "request_id": e.request_id,
                "account_id": e.account_id,
                "domain": e.domain,
                "operation": e.operation,
                "from": e.step.from,
                "to": e.step.to,
                "event": e.step.event,
                "actor": e.step.actor,
                "reason": e.step.reason,
                "at": clock::format(e.step.at),
            })
        })
        .collect();
    let next = entries.last().map_or(after, |e| e.step.id);
    Ok(Resp::json(
        200,
        &json!({ "items": items, "next": next.to_string() }),
    ))
}

pub fn mail(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    desk::require_operator(caller)?;
    let (request_id, limit) = (query_i64(req, "request_id")?, limit(req)?);
    let items = desk::feed::mail(app, caller, request_id, limit)?;
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
    desk::require_operator(caller)?;
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
    desk::require_operator(caller)?;
    let r = app.ticker.run_until_idle()?;
    let sent = app.send_due()?;
    Ok(Resp::json(
        200,
        &json!({
            "dependency_failed": r.dependency_failed,
            "claimed": r.claimed,
            "fulfilled": r.fulfilled,
            "waits_ended": r.waits_ended,
            "lifecycle": r.lifecycle,
            "sent": sent,
        }),
    ))
}

pub fn get_rules(app: &App, caller: &Account) -> Result<Resp> {
    let rules = desk::feed::rules(app, caller)?;
    Ok(Resp::json(200, &json!({ "rules": rules })))
}

pub fn put_rules(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    desk::require_operator(caller)?;
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
    desk::feed::set_rules(app, caller, rules)?;
    Ok(Resp::json(200, &json!({ "rules": saved })))
}

// ----- the domain lifecycle ------------------------------------------------

const LIFECYCLES: &[&str] = &["active", "expired", "redemption", "pending_delete"];

/// The domain filter of a query string (or a bulk body's fields).
fn lifecycle_filter(
    lifecycle: Option<String>,
    expiring_before: Option<String>,
    account_id: Option<i64>,
    caller: &Account,
) -> Result<DomainFilter> {
    if let Some(l) = lifecycle.as_deref().filter(|l| !LIFECYCLES.contains(l)) {
        return Err(Error::invalid(
            "lifecycle",
            format!(
                "{} is not a lifecycle: use {}",
                quoted(l),
                LIFECYCLES.join(", ")
            ),
        ));
    }
    let expiring_before = expiring_before
        .map(|t| clock::parse("expiring_before", &t))
        .transpose()?;
    Ok(DomainFilter {
        account_id: desk::account_scope(account_id, caller)?,
        lifecycle,
        expiring_before,
    })
}

fn domain_filter(req: &Req, caller: &Account) -> Result<DomainFilter> {
    lifecycle_filter(
        req.query("lifecycle").map(str::to_string),
        req.query("expiring_before").map(str::to_string),
        query_i64(req, "account_id")?,
        caller,
    )
}

/// A body of one required field, `{"auto_renew": bool}`.
fn auto_renew_body(req: &Req) -> Result<bool> {
    let body = body_object(req)?;
    only_keys(&body, &["auto_renew"])?;
    opt_bool(&body, "auto_renew")?
        .ok_or_else(|| Error::invalid("auto_renew", "is required: true or false"))
}

/// `PATCH /domains/{name}`: the owner switches auto-renew.
pub fn patch_domain(app: &App, req: &Req, name: &str, caller: &Account) -> Result<Resp> {
    let name = form::domain_name("name", name)
        .map_err(|_| Error::not_found(format!("domain {}", quoted(name))))?;
    let on = auto_renew_body(req)?;
    let v = desk::lifecycle::set_auto_renew(app, caller, name, on)?;
    Ok(Resp::json(200, &v))
}

/// `GET /auto-renew`: an account's default for its new domains.
pub fn get_auto_renew(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let account = query_i64(req, "account_id")?;
    let on = desk::lifecycle::auto_renew_default(app, caller, account)?;
    Ok(Resp::json(200, &json!({ "auto_renew": on })))
}

/// `PUT /auto-renew` `{"auto_renew": bool}`.
pub fn put_auto_renew(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let account = query_i64(req, "account_id")?;
    let on = auto_renew_body(req)?;
    let on = desk::lifecycle::set_auto_renew_default(app, caller, account, on)?;
    Ok(Resp::json(200, &json!({ "auto_renew": on })))
}

/// `POST /domains/renew`: an operator renews every domain a filter selects.
pub fn bulk_renew(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    desk::require_operator(caller)?;
    let body = body_object(req)?;
    only_keys(
        &body,
        &["lifecycle", "expiring_before", "account_id", "period"],
    )?;
    let account_id = opt_i64(&body, "account_id")?;
    if let Some(id) = account_id {
        if id < 1 {
            return Err(Error::invalid(
                "account_id",
                "must be an account's id (1 or more)",
            ));
        }
        desk::accounts::require(app, id)?;
    }
    let filter = lifecycle_filter(
        opt_str(&body, "lifecycle")?,
        opt_str(&body, "expiring_before")?,
        account_id,
        caller,
    )?;
    if filter.lifecycle.is_none() && filter.expiring_before.is_none() {
        return Err(Error::invalid(
            "expiring_before",
            "give lifecycle or expiring_before (or both)",
        ));
    }
    let period = opt_i64(&body, "period")?.unwrap_or(1);
    if !(1..=10).contains(&period) {
        return Err(Error::invalid(
            "period",
            "must be a whole number of years, 1 to 10",
        ));
    }
    let v = desk::lifecycle::bulk_renew(app, caller, filter, period)?;
    Ok(Resp::json(200, &v))
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
