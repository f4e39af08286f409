//! The OpenSRS-style XCP face (SPEC section 4, seed 003): `POST /` and
//! `POST /opensrs` with an `OPS_envelope`, signed with `X-Username` and
//! `X-Signature`; order events (`POLL`, `ACK` on `EVENT`), `SW_REGISTER` and
//! `GET_ORDER_INFO` on `DOMAIN`, `CANCEL_PENDING_ORDERS` on `ORDER`.
//!
//! As OpenSRS does, every answer is HTTP 200 with the outcome in
//! `is_success`, `response_code` and `response_text`: XCP clients treat any
//! other status as a transport failure and would retry what was refused.

use std::sync::atomic::{AtomicU64, Ordering};

use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

use crate::clock::{self, Millis, SECOND};
use crate::desk;
use crate::desk::orders::{self, NewOrder, Pending};
use crate::error::{quoted, Error, Result};
use crate::face::xcp_xml::{self, XcpRequest, XcpResponse, XcpValue};
use crate::form;
use crate::http::{Req, Resp};
use crate::state::Operation;
use crate::store::accounts::Account;
use crate::store::order_events::{self, OrderEvent, MAX_POLL, ORDER_OPERATIONS};
use crate::App;

/// XCP response codes, after OpenSRS's.
const OK: u16 = 200;
const BAD_REQUEST: u16 = 400;
const NOT_FOUND: u16 = 404;
const AUTH_FAILED: u16 = 415;
const NOT_AUTHORISED: u16 = 435;
const STATE_REFUSED: u16 = 480;
const UNKNOWN_COMMAND: u16 = 465;
const INTERNAL: u16 = 500;

/// Most orders one `CANCEL_PENDING_ORDERS` cancels; the caller repeats it
/// for more.
pub const MAX_CANCEL: i64 = 1000;

/// The highest `to_date` accepted (9999-12-31T23:59:59Z).
const MAX_EPOCH: i64 = 253_402_300_799;

/// The XCP code of an error, shared by every refusal of this face.
fn code(err: &Error) -> u16 {
    match err {
        Error::Malformed(_) | Error::Invalid { .. } | Error::TooLarge(_) => BAD_REQUEST,
        Error::MethodNotAllowed(_) | Error::UnsupportedMediaType(_) => BAD_REQUEST,
        Error::Unauthorized | Error::Locked { .. } => AUTH_FAILED,
        Error::Forbidden(_) => NOT_AUTHORISED,
        Error::NotFound(_) => NOT_FOUND,
        Error::Conflict(_) => STATE_REFUSED,
        Error::Exists(_) | Error::InUse(_) | Error::Prohibited(_) => STATE_REFUSED,
        Error::TransferPending(_) | Error::NoTransfer(_) => STATE_REFUSED,
        Error::WrongAuth(_) | Error::NotYours(_) => NOT_AUTHORISED,
        Error::Internal(_) | Error::Unavailable(_) | Error::StorageFull => INTERNAL,
    }
}

/// An identifier of one exchange, in OpenSRS's shape
/// (`2014-06-19 11:31:49 27660 101`: time, process, counter).
fn transaction_id(now: Millis) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{} {} {}",
        clock::format_plain(now),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Why a command was refused: the XCP code and a sentence naming the problem.
#[derive(Debug)]
struct Refusal {
    code: u16,
    text: String,
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        e.log_server_side();
        Refusal {
            code: code(&e),
            text: e.message(),
        }
    }
}

/// A command's success text and attributes, or its refusal.
type Outcome = std::result::Result<(String, Option<XcpValue>), Refusal>;

fn reply(now: Millis, object: &str, outcome: Outcome) -> Resp {
    let (response_code, is_success, response_text, attributes) = match outcome {
        Ok((text, attributes)) => (OK, true, text, attributes),
        Err(r) => (r.code, false, r.text, None),
    };
    let body = xcp_xml::write_response(&XcpResponse {
        object: object.to_string(),
        action: "REPLY".into(),
        response_code,
        is_success,
        response_text,
        transaction_id: transaction_id(now),
        attributes,
    });
    Resp::new(200, "text/xml; charset=utf-8", body)
}

/// An envelope refused before it was read: an XCP reply, with HTTP 200 as
/// every XCP answer has (clients take other statuses for transport
/// failures), but for a body over the limit (413, refused before it is
/// read) and a server that is stopping (503: try again).
pub fn refusal(now: Millis, err: &Error) -> Resp {
    let mut resp = reply(now, "", Err(Refusal::from(err.clone())));
    if matches!(err, Error::TooLarge(_) | Error::Unavailable(_)) {
        resp.status = err.status();
    }
    resp
}

/// `POST /` and `POST /opensrs`: always an XCP reply with HTTP 200.
pub fn handle(app: &App, req: &Req) -> Resp {
    let now = app.clock.now();
    let parsed = xcp_xml::parse_request(&req.body);
    // Refusals echo the object when the envelope names one, as OpenSRS does.
    let object = parsed
        .as_ref()
        .map(|r| r.object.clone())
        .unwrap_or_default();
    let Some(caller) = authenticate(app, req) else {
        let refusal = Refusal {
            code: AUTH_FAILED,
            text: "Authentication failed: X-Username must name an account and X-Signature \
                   be md5(md5(body + key) + key) with its API key"
                .into(),
        };
        return reply(now, &object, Err(refusal));
    };
    let outcome = match parsed {
        Ok(x) => dispatch(app, &caller, &x),
        Err(e) => Err(Error::Malformed(format!("malformed XCP envelope: {}", e.message)).into()),
    };
    reply(now, &object, outcome)
}

// ----- authentication --------------------------------------------------------

/// `md5(md5(body + key) + key)` in lower-case hex, OpenSRS's signature.
pub fn signature(body: &[u8], key: &str) -> String {
    let inner = hex::encode(Md5::new().chain_update(body).chain_update(key).finalize());
    hex::encode(
        Md5::new()
            .chain_update(inner.as_bytes())
            .chain_update(key)
            .finalize(),
    )
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a forged signature was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The account named by `X-Username` whose key signed the body. Every
/// failure is the same `None`, so that a client cannot tell an unknown user
/// from a wrong signature.
fn authenticate(app: &App, req: &Req) -> Option<Account> {
    let name = req
        .header("x-username")
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 64)?
        .to_string();
    let sent = req.header("x-signature")?.trim().to_ascii_lowercase();
    let found = desk::accounts::signer(app, name);
    let (account, key) = match found {
        Ok(found) => found?,
        Err(e) => {
            log::error!("xcp: looking up a signer: {e}");
            return None;
        }
    };
    same(signature(&req.body, &key).as_bytes(), sent.as_bytes()).then_some(account)
}

// ----- dispatch ----------------------------------------------------------------

const COMMANDS: &str = "POLL and ACK on EVENT, SW_REGISTER and GET_ORDER_INFO on DOMAIN, \
    CANCEL_PENDING_ORDERS on ORDER";

fn dispatch(app: &App, caller: &Account, x: &XcpRequest) -> Outcome {
    if !x.protocol.is_empty() && x.protocol != "XCP" {
        return Err(Error::invalid(
            "protocol",
            format!("{} is not supported; use XCP", quoted(&x.protocol)),
        )
        .into());
    }
    let a = &x.attributes;
    match (x.object.as_str(), x.action.as_str()) {
        ("EVENT", "POLL") => poll(app, caller, a),
        ("EVENT", "ACK") => ack(app, caller, a),
        ("DOMAIN", "SW_REGISTER") => sw_register(app, caller, a),
        ("DOMAIN", "GET_ORDER_INFO") => get_order_info(app, caller, a),
        ("ORDER", "CANCEL_PENDING_ORDERS") => cancel_pending_orders(app, caller, a),
        (object, action) => Err(Refusal {
            code: UNKNOWN_COMMAND,
            text: format!("unknown command {action} on {object}; this face knows {COMMANDS}"),
        }),
    }
}

fn done(attributes: Option<XcpValue>) -> Outcome {
    Ok(("Command successful".into(), attributes))
}

// ----- attribute helpers ---------------------------------------------------------

/// The text of a scalar attribute; `None` when absent or blank. A container
/// where a scalar belongs is refused, naming the attribute.
fn scalar<'a>(attrs: &'a XcpValue, key: &str) -> Result<Option<&'a str>> {
    match attrs.get(key) {
        None => Ok(None),
        Some(XcpValue::Scalar(text)) => {
            let text = text.trim();
            Ok((!text.is_empty()).then_some(text))
        }
        Some(_) => Err(Error::invalid(key, "must be a single value")),
    }
}

fn required<'a>(attrs: &'a XcpValue, key: &str) -> Result<&'a str> {
    scalar(attrs, key)?.ok_or_else(|| Error::invalid(key, "is required"))
}

fn whole_number(key: &str, text: &str) -> Result<i64> {
    text.parse::<i64>()
        .map_err(|_| Error::invalid(key, format!("{} is not a whole number", quoted(text))))
}

/// An assoc attribute; `None` when absent or an empty scalar.
fn assoc<'a>(attrs: &'a XcpValue, key: &str, name: &str) -> Result<Option<&'a XcpValue>> {
    match attrs.get(key) {
        None => Ok(None),
        Some(v @ XcpValue::Assoc(_)) => Ok(Some(v)),
        Some(XcpValue::Scalar(t)) if t.trim().is_empty() => Ok(None),
        Some(_) => Err(Error::invalid(name, "must be a dt_assoc")),
    }
}

// ----- EVENT -----------------------------------------------------------------------

fn event_value(e: &OrderEvent) -> XcpValue {
    XcpValue::assoc([
        (
            "object_data",
            XcpValue::assoc([
                ("domain_name", XcpValue::from(e.domain.as_str())),
                ("order_status", XcpValue::from(e.order_status.as_str())),
                ("order_reg_type", XcpValue::from(e.reg_type.as_str())),
                ("order_id", XcpValue::from(e.request_id)),
            ]),
        ),
        ("object", XcpValue::from("ORDER")),
        ("event_id", XcpValue::from(e.event_id.as_str())),
        ("event", XcpValue::from("STATUS_CHANGE")),
        ("event_date", XcpValue::from(clock::format(e.created_at))),
    ])
}

/// `POLL` on `EVENT`: the oldest unacknowledged events (`limit`, 1 by
/// default, at most 100) and how many are unacknowledged in all. Polling
/// does not consume them; `ACK` does.
fn poll(app: &App, caller: &Account, attrs: &XcpValue) -> Outcome {
    let limit = match scalar(attrs, "limit")? {
        None => 1,
        Some(text) => whole_number("limit", text)?,
    };
    if !(1..=MAX_POLL).contains(&limit) {
        return Err(
            Error::invalid("limit", format!("must be 1 to {MAX_POLL}, not {limit}")).into(),
        );
    }
    let (events, total) = desk::feed::order_events(app, caller, limit)?;
    done(Some(XcpValue::assoc([
        ("events", XcpValue::array(events.iter().map(event_value))),
        ("total", XcpValue::from(total)),
    ])))
}

/// `ACK` on `EVENT`: the event is never polled again; repeating is harmless.
fn ack(app: &App, caller: &Account, attrs: &XcpValue) -> Outcome {
    let event_id = required(attrs, "event_id")?.to_ascii_lowercase();
    if event_id.len() != 32 || !event_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid("event_id", "must be 32 hexadecimal digits").into());
    }
    desk::feed::ack_order_event(app, caller, event_id)?;
    done(None)
}

// ----- DOMAIN ------------------------------------------------------------------------

/// The native order form of an `SW_REGISTER`, and whether to submit it
/// (`handle` `process`, the default) or only save it (`save`).
fn register_form(attrs: &XcpValue) -> Result<(String, Value, bool)> {
    let domain = form::domain_name("domain", required(attrs, "domain")?)?;
    let mut params = Map::new();
    if let Some(text) = scalar(attrs, "period")? {
        params.insert("period".into(), json!(whole_number("period", text)?));
    }
    match scalar(attrs, "reg_type")?
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("new") => {}
        Some("premium") => {
            params.insert("premium".into(), json!(true));
        }
        Some(phase @ ("sunrise" | "landrush")) => {
            params.insert("phase".into(), json!(phase));
        }
        Some(other) => {
            return Err(Error::invalid(
                "reg_type",
                format!("{other:?} is not new, premium, sunrise or landrush"),
            ))
        }
    }
    if let Some(set) = assoc(attrs, "contact_set", "contact_set")? {
        params.insert("contacts".into(), contacts(set)?);
    }
    if let Some(list) = attrs.get("nameserver_list") {
        params.insert("nameservers".into(), nameservers(list)?);
    }
    let submit = match scalar(attrs, "handle")?
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("process") => true,
        Some("save") => false,
        Some(other) => {
            return Err(Error::invalid(
                "handle",
                format!("{other:?} is not process or save"),
            ))
        }
    };
    let params =
        form::params(Operation::Create, Some(&Value::Object(params))).map_err(xcp_field_names)?;
    Ok((domain, params, submit))
}

/// OpenSRS contact fields and the regdesk fields they fill.
const CONTACT_FIELDS: &[(&str, &str)] = &[
    ("email", "email"),
    ("org_name", "organization"),
    ("phone", "phone"),
    ("address1", "address"),
    ("city", "city"),
    ("postal_code", "postal_code"),
    ("country", "country"),
];

/// `contact_set.ROLE.{first_name,last_name,email,...}` to
/// `contacts.ROLE.{name,email,...}`; fields regdesk does not keep are
/// ignored, as a reseller's form carries many.
fn contacts(set: &XcpValue) -> Result<Value> {
    let mut out = Map::new();
    for (role, contact) in set.items().unwrap_or_default() {
        let base = format!("contact_set.{role}");
        if !matches!(role.as_str(), "owner" | "admin" | "tech" | "billing") {
            return Err(Error::invalid(
                base,
                "unknown contact; use owner, admin, tech or billing",
            ));
        }
        let contact = match contact {
            XcpValue::Assoc(_) => contact,
            _ => return Err(Error::invalid(base, "must be a dt_assoc")),
        };
        let field = |key: &str| {
            scalar(contact, key)
                .map_err(|_| Error::invalid(format!("{base}.{key}"), "must be a single value"))
        };
        let mut c = Map::new();
        let name: Vec<&str> = [field("first_name")?, field("last_name")?]
            .into_iter()
            .flatten()
            .collect();
        if !name.is_empty() {
            c.insert("name".into(), json!(name.join(" ")));
        }
        for (theirs, ours) in CONTACT_FIELDS {
            if let Some(v) = field(theirs)? {
                c.insert((*ours).into(), json!(v));
            }
        }
        out.insert(role.clone(), Value::Object(c));
    }
    Ok(Value::Object(out))
}

/// `nameserver_list`: a `dt_array` of `{name, sortorder}` (or of plain
/// names), in `sortorder` when given, else as sent.
fn nameservers(list: &XcpValue) -> Result<Value> {
    let items = match list {
        XcpValue::Array(items) => items,
        XcpValue::Scalar(t) if t.trim().is_empty() => return Ok(json!([])),
        _ => return Err(Error::invalid("nameserver_list", "must be a dt_array")),
    };
    let mut hosts = Vec::new();
    for (i, (_, item)) in items.iter().enumerate() {
        let field = format!("nameserver_list[{i}]");
        let (name, order) = match item {
            XcpValue::Scalar(name) => (name.trim(), None),
            XcpValue::Assoc(_) => {
                let name = scalar(item, "name")
                    .ok()
                    .flatten()
                    .ok_or_else(|| Error::invalid(format!("{field}.name"), "is required"))?;
                let order = match scalar(item, "sortorder").ok().flatten() {
                    Some(t) => Some(whole_number(&format!("{field}.sortorder"), t)?),
                    None => None,
                };
                (name, order)
            }
            XcpValue::Array(_) => {
                return Err(Error::invalid(field, "must be a dt_assoc with a name"))
            }
        };
        hosts.push((order.unwrap_or(i64::MAX), i, name.to_string()));
    }
    hosts.sort();
    Ok(json!(hosts
        .into_iter()
        .map(|(_, _, name)| name)
        .collect::<Vec<_>>()))
}

/// Renames the fields of a native form error to the XCP attributes they
/// came from, so that the client is told what it sent wrong.
fn xcp_field_names(err: Error) -> Error {
    match err {
        Error::Invalid { field, message } => Error::Invalid {
            field: xcp_field(&field),
            message,
        },
        other => other,
    }
}

/// The XCP attribute behind a field of the native order form.
fn xcp_field(native: &str) -> String {
    let field = native.strip_prefix("params.").unwrap_or(native);
    if let Some(rest) = field.strip_prefix("contacts.") {
        let rest = match rest.rsplit_once('.') {
            Some((role, "name")) => format!("{role}.first_name"),
            Some((role, "organization")) => format!("{role}.org_name"),
            Some((role, "address")) => format!("{role}.address1"),
            _ => rest.to_string(),
        };
        format!("contact_set.{rest}")
    } else if let Some(rest) = field.strip_prefix("nameservers") {
        format!("nameserver_list{rest}")
    } else if field == "phase" || field == "premium" {
        "reg_type".to_string()
    } else {
        field.to_string()
    }
}

/// `SW_REGISTER` on `DOMAIN`: creates a create request and, unless
/// `handle` is `save`, submits it, through the code the native API uses.
/// Answers the order id in `attributes.id`.
fn sw_register(app: &App, caller: &Account, attrs: &XcpValue) -> Outcome {
    let (domain, params, submit) = register_form(attrs)?;
    if submit {
        // As `POST /domains`: an order to process must be complete; one to
        // save may lack what the reseller will add later.
        if let Some(field) = form::missing(Operation::Create, &params).first() {
            return Err(
                Error::invalid(xcp_field(field), "is required to register a domain").into(),
            );
        }
    }
    let order = NewOrder {
        domain,
        operation: Operation::Create,
        params,
        exec_date: None,
        depends_on: None,
        submit,
    };
    let (r, _) = orders::create(app, caller, order)?;
    done(Some(XcpValue::assoc([
        ("id", XcpValue::from(r.id)),
        (
            "order_status",
            XcpValue::from(order_events::order_status(&r)),
        ),
    ])))
}

fn epoch_seconds(ms: Millis) -> XcpValue {
    XcpValue::from(ms.div_euclid(SECOND))
}

/// `GET_ORDER_INFO` on `DOMAIN`: one of the caller's orders, by `order_id`.
fn get_order_info(app: &App, caller: &Account, attrs: &XcpValue) -> Outcome {
    let text = required(attrs, "order_id")?;
    let id = whole_number("order_id", text)?;
    let r = orders::order(app, caller, id)?;
    let reg_type = order_events::reg_type(r.operation, &r.params).unwrap_or_default();
    let mut fields = vec![
        ("id", XcpValue::from(r.id)),
        ("domain", XcpValue::from(r.domain.as_str())),
        ("status", XcpValue::from(order_events::order_status(&r))),
        ("reg_type", XcpValue::from(reg_type)),
        ("period", XcpValue::from(form::period(&r.params))),
        ("order_date", epoch_seconds(r.created_at)),
        ("state", XcpValue::from(r.state.as_str())),
    ];
    if let Some(w) = r.waiting_on {
        fields.push(("waiting_on", XcpValue::from(w.as_str())));
    }
    if let Some(f) = r.failure {
        fields.push(("failure", XcpValue::from(f.as_str())));
    }
    if r.state.is_terminal() {
        fields.push(("completed_date", epoch_seconds(r.updated_at)));
    }
    done(Some(XcpValue::assoc([(
        "field_hash",
        XcpValue::assoc(fields),
    )])))
}

// ----- ORDER -------------------------------------------------------------------------

/// The `status` attribute: a word or a `dt_array` of words, `pending` by
/// default. Returns whether pending orders are to be cancelled.
fn cancel_statuses(attrs: &XcpValue) -> Result<bool> {
    let words: Vec<String> = match attrs.get("status") {
        None => vec!["pending".into()],
        Some(XcpValue::Scalar(t)) if t.trim().is_empty() => vec!["pending".into()],
        Some(XcpValue::Scalar(t)) => vec![t.trim().to_ascii_lowercase()],
        Some(XcpValue::Array(items)) => items
            .iter()
            .map(|(_, v)| {
                v.as_str()
                    .map(|t| t.trim().to_ascii_lowercase())
                    .ok_or_else(|| Error::invalid("status", "must hold words"))
            })
            .collect::<Result<_>>()?,
        Some(XcpValue::Assoc(_)) => {
            return Err(Error::invalid("status", "must be pending or declined"))
        }
    };
    let mut pending = false;
    for w in &words {
        match w.as_str() {
            "pending" => pending = true,
            "declined" => {}
            other => {
                return Err(Error::invalid(
                    "status",
                    format!("{other:?} is not pending or declined"),
                ))
            }
        }
    }
    Ok(pending)
}

/// `CANCEL_PENDING_ORDERS` on `ORDER`: cancels (event `expire`) the
/// caller's pending orders (`new` or `incomplete`) created at or before
/// `to_date` (epoch seconds). Declined orders are already final in regdesk
/// (`failed`, which never changes again), so `declined` has nothing to
/// cancel. Answers `cancelled` (`{id, domain, reg_type}`) and `total`.
fn cancel_pending_orders(app: &App, caller: &Account, attrs: &XcpValue) -> Outcome {
    let to_date = whole_number("to_date", required(attrs, "to_date")?)?;
    if !(0..=MAX_EPOCH).contains(&to_date) {
        return Err(Error::invalid(
            "to_date",
            "must be a time in epoch seconds, 0 to 253402300799",
        )
        .into());
    }
    let pending = cancel_statuses(attrs)?;
    let cancelled = if pending {
        let which = Pending {
            operations: ORDER_OPERATIONS.to_vec(),
            created_before: (to_date + 1) * SECOND,
            max: MAX_CANCEL,
            reason: format!(
                "cancel_pending_orders: pending since before {}",
                clock::format(to_date * SECOND)
            ),
        };
        orders::cancel_pending(app, caller, which)?
    } else {
        Vec::new()
    };
    let cancelled: Vec<XcpValue> = cancelled
        .iter()
        .map(|r| {
            let reg_type = order_events::reg_type(r.operation, &r.params).unwrap_or_default();
            XcpValue::assoc([
                ("id", XcpValue::from(r.id)),
                ("domain", XcpValue::from(r.domain.as_str())),
                ("reg_type", XcpValue::from(reg_type)),
            ])
        })
        .collect();
    let total = cancelled.len() as i64;
    done(Some(XcpValue::assoc([
        ("cancelled", XcpValue::array(cancelled)),
        ("total", XcpValue::from(total)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_md5_of_md5_of_body_and_key_and_key() {
        // Computed independently: md5("xkey") = 9e50e48e..., then
        // md5("9e50e48e6933eab3bde13b42604673d1key").
        assert_eq!(signature(b"x", "key"), "78c507533f6868733486b5a71e443269");
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }

    #[test]
    fn form_errors_name_the_xcp_attribute() {
        let e = xcp_field_names(Error::invalid("params.contacts.owner.email", "bad"));
        assert_eq!(e.field(), Some("contact_set.owner.email"));
        let e = xcp_field_names(Error::invalid("params.nameservers[1]", "bad"));
        assert_eq!(e.field(), Some("nameserver_list[1]"));
        let e = xcp_field_names(Error::invalid("params.period", "bad"));
        assert_eq!(e.field(), Some("period"));
    }
}
