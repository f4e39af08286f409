//! The JSON shapes of what the desk shows: a request (in lists, on its own
//! page, in the webhook provider's payload), a domain and a notification
//! (in the API and in the notification webhook's body). One place, below
//! the faces and the senders, so that every one of them writes the same
//! text.

use rusqlite::Connection;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::clock::{self, Millis};
use crate::error::Result;
use crate::state::{self, Actor, Failure, State, WaitingOn};
use crate::store::accounts::Account;
use crate::store::domains::Domain;
use crate::store::notifications::{self, Notification};
use crate::store::requests::{self, Annotation, HistoryEntry, InvoiceItem, Request};

/// A request as the API shows it, borrowed from its row: written out as it
/// is for lists and for a request's own page (`detail_of`, which adds the
/// four fields lists leave out), or made a `Value` by `request_json`. The
/// fields are in alphabetical order, the order a `Value`'s map keeps, so
/// all give the same text. (Lists built a `Value` per row, cloning its
/// params, only to drop it after writing.)
#[derive(Serialize)]
pub struct RequestView<'a> {
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
    pub fn new(r: &'a Request, annotations: Vec<&'a Annotation>) -> RequestView<'a> {
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
fn request_json(r: &Request, annotations: Vec<&Annotation>) -> Value {
    view_value(RequestView::new(r, annotations))
}

/// A request as the API shows it, its annotations read on `conn` (the
/// webhook provider's payload).
pub fn request_json_read(conn: &Connection, r: &Request) -> Result<Value> {
    let notes = requests::annotations(conn, &[r.id])?;
    Ok(request_json(r, notes.iter().map(|(_, a)| a).collect()))
}

fn view_value(view: RequestView<'_>) -> Value {
    serde_json::to_value(&view).unwrap_or_else(|e| {
        // A view holds only strings, numbers and JSON values.
        log::error!("request {} as JSON: {e}", view.id);
        Value::Null
    })
}

/// Requests with their annotations (read with them), as the API lists them.
pub fn requests_json(rows: &[Request], notes: &[(i64, Annotation)]) -> Vec<Value> {
    views(rows, notes).into_iter().map(view_value).collect()
}

/// A page of requests written out: `{"items": [...], "next": "..."}`.
pub fn requests_page(
    rows: &[Request],
    notes: &[(i64, Annotation)],
    next: Option<i64>,
) -> Result<String> {
    #[derive(Serialize)]
    struct Page<'a> {
        items: Vec<RequestView<'a>>,
        next: Option<String>,
    }
    let items = views(rows, notes);
    let next = next.map(|n| n.to_string());
    Ok(serde_json::to_string(&Page { items, next })?)
}

/// The views of `rows`, each with its annotations of `notes`.
fn views<'a>(rows: &'a [Request], notes: &'a [(i64, Annotation)]) -> Vec<RequestView<'a>> {
    rows.iter()
        .map(|r| {
            let mine = notes
                .iter()
                .filter(|(id, _)| *id == r.id)
                .map(|(_, a)| a)
                .collect();
            RequestView::new(r, mine)
        })
        .collect()
}

/// A request's own page, written out: its view with its history, invoice
/// items and notifications, and the actions the caller may take (`GET
/// /requests/{id}`, and the answer to every change of a request).
#[derive(Debug, PartialEq)]
pub struct Detail {
    pub state: State,
    pub json: String,
}

impl Detail {
    /// Whether the ticker has work in it now.
    pub fn for_ticker(&self) -> bool {
        matches!(self.state, State::Queued | State::Processing)
    }
}

/// The answer to a create: `request_detail` of a request just made, whose
/// history is as written and which has nothing else hanging off it yet.
pub fn new_request_detail(
    r: &Request,
    history: Vec<HistoryEntry>,
    caller: &Account,
) -> Result<Detail> {
    detail_of(r, Vec::new(), caller, history, Vec::new(), Vec::new())
}

/// A request with everything that hangs off it, as `GET /requests/{id}` shows it.
pub fn request_detail(conn: &Connection, r: &Request, caller: &Account) -> Result<Detail> {
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
    let actor = if caller.is_operator() {
        Actor::Operator
    } else {
        Actor::Owner
    };
    let view = RequestView {
        allowed_actions: Some(state::allowed_actions(r.state, r.waiting_on, actor)),
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

/// A notification as `GET /notification` shows it and its webhook sends it.
impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shape<'a> {
            id: i64,
            #[serde(rename = "type")]
            kind: &'a str,
            action: &'a str,
            status: &'a str,
            message: &'a str,
            domain: &'a str,
            request_id: Option<i64>,
            #[serde(serialize_with = "super::accounts::ser_time")]
            created_at: &'a Millis,
            #[serde(serialize_with = "super::accounts::ser_opt_time")]
            read_at: &'a Option<Millis>,
        }
        Shape {
            id: self.id,
            kind: &self.kind,
            action: &self.action,
            status: &self.status,
            message: &self.message,
            domain: &self.domain,
            request_id: self.request_id,
            created_at: &self.created_at,
            read_at: &self.read_at,
        }
        .serialize(s)
    }
}

/// A domain of the portfolio as `GET /domains` shows it (never its auth code).
impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shape<'a> {
            id: i64,
            account_id: i64,
            name: &'a str,
            status: &'a str,
            #[serde(serialize_with = "super::accounts::ser_time")]
            expires_at: &'a Millis,
            transfer_lock: bool,
            privacy: bool,
            contacts: &'a Value,
            nameservers: &'a Value,
            #[serde(serialize_with = "super::accounts::ser_time")]
            created_at: &'a Millis,
            #[serde(serialize_with = "super::accounts::ser_time")]
            updated_at: &'a Millis,
        }
        Shape {
            id: self.id,
            account_id: self.account_id,
            name: &self.name,
            status: &self.status,
            expires_at: &self.expires_at,
            transfer_lock: self.transfer_lock,
            privacy: self.privacy,
            contacts: &self.contacts,
            nameservers: &self.nameservers,
            created_at: &self.created_at,
            updated_at: &self.updated_at,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Failure, Operation, WaitingOn};
    use crate::store::accounts::Role;
    use serde_json::json;

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
