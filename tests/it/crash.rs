//! The crash test: runs the real binary under a mixed load (orders, operator
//! actions, notification polls and acks, ticks, clock jumps, the simulated
//! registry's slow, failing and limbo outcomes and rules; XCP SW_REGISTER,
//! POLL, ACK and CANCEL_PENDING_ORDERS; scheduled requests read and deleted
//! through the task face), kills it with SIGKILL at random moments, restarts
//! it on the same file and checks the invariants after every restart:
//!
//! - every write answered 2xx is there (a client-side log of acknowledged
//!   creates, actions, annotations and notification acks);
//! - nothing exists twice (invoice items, domain changes, notifications,
//!   idempotent creates) and nothing outlives a request that failed or went
//!   back to its owner;
//! - the notification FIFO never goes backwards and an acked id stays read;
//! - after the restarted server's first tick nothing due stays in
//!   `processing`/`internal`;
//! - the transition log replays to the stored states;
//! - every order an SW_REGISTER answered exists, an acknowledged order event
//!   is never polled again, and each order has exactly one event per change
//!   of its mapped `order_status` (replayed from the transition log);
//! - orders a CANCEL_PENDING_ORDERS answered and tasks a task-face delete
//!   answered `delete ok` for stay failed (`expired`, `aborted`).
//!
//! `cargo test --test it crash::` runs a bounded number of kills;
//! `scripts/crash N [SEED]` runs N (`REGDESK_CRASH_KILLS`, `REGDESK_CRASH_SEED`).
//! The seed fixes every client-side choice and kill delay, so a failing run can
//! be repeated (thread timing still varies a little).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use regdesk::face::xcp_xml::{parse_envelope, XcpValue};

use crate::support::{agent, launch, send, try_xml_tree, xcp_envelope, xcp_signature, BIN, WARY};

const OPERATOR: &str = "rd_crash_operator_token";
/// Kills in the bounded run inside `cargo test`.
const DEFAULT_KILLS: usize = 15;

/// What the clients were told succeeded, and what they saw go wrong.
#[derive(Default)]
struct Log {
    /// Request ids answered 201, with the customer index.
    created: Vec<(usize, i64)>,
    /// Transition ids (with request id and target state) seen in 2xx answers.
    transitions: BTreeMap<i64, (i64, String)>,
    /// Annotations answered 2xx: (request id, text).
    annotations: Vec<(i64, String)>,
    /// Notification ids whose DELETE was answered 2xx.
    acked: HashSet<i64>,
    /// Per customer: the last notification id the FIFO showed.
    last_polled: HashMap<usize, i64>,
    /// Idempotency keys answered 201: key -> (customer, body, request id).
    keys: HashMap<String, (usize, String, i64)>,
    /// Keys sent without an answer (the server died): replayed after the restart.
    unanswered_keys: Vec<(usize, String, String)>,
    /// Highest test-clock time an answer showed.
    clock_ms: i64,
    /// Invariant violations seen by the clients themselves.
    violations: Vec<String>,
    /// 2xx answers, all kinds (XCP: `is_success` 1 to a write).
    acknowledged: usize,
    /// Account ids of the customers, by index.
    account_ids: Vec<i64>,
    /// Orders an SW_REGISTER answered: (customer, order id).
    xcp_orders: Vec<(usize, i64)>,
    /// Order event ids whose ACK succeeded, with the customer.
    acked_events: HashMap<String, usize>,
    /// Order ids a POLL showed: (customer, order id).
    polled_orders: HashSet<(usize, i64)>,
    /// Orders a CANCEL_PENDING_ORDERS answered as cancelled.
    xcp_cancelled: HashSet<i64>,
    /// Tasks a task-face delete answered `delete ok` for.
    task_deleted: HashSet<i64>,
    /// Acknowledged writes through the XCP face and the task face.
    face_writes: usize,
}

struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn spawn(db: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--test-clock"])
        .args(["--tick-interval-ms", "20", "--workers", "8"])
        .arg("--db")
        .arg(db)
        .args(["--operator-token", OPERATOR])
        .env("RUST_LOG", "error");
    let (child, out, base) = launch(cmd);
    // Keep reading stdout so that the child never blocks on a full pipe.
    thread::spawn(move || for _ in out.lines() {});
    Proc { child, base }
}

/// One HTTP exchange. `None` when the connection failed (the outcome of a
/// write is then unknown and nothing is expected of it).
fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    call_with(base, method, path, token, body, None)
}

fn call_with(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Option<(u16, Value)> {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend(key.map(|k| ("Idempotency-Key", k)));
    let body = body.map(|b| b.to_string());
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let url = format!("{base}{path}");
    let a = send(
        &agent(WARY),
        method,
        &url,
        &headers,
        body.as_deref().map(str::as_bytes),
    )
    .ok()?;
    let value = serde_json::from_str(&a.text).unwrap_or(Value::Null);
    Some((a.status, value))
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Records the transitions and annotations a 2xx request answer shows.
fn record_request(log: &Mutex<Log>, v: &Value) {
    let mut log = log.lock().unwrap();
    log.acknowledged += 1;
    let id = v["id"].as_i64().unwrap_or(0);
    for h in v["history"].as_array().into_iter().flatten() {
        if let (Some(tid), Some(to)) = (h["id"].as_i64(), h["to"].as_str()) {
            log.transitions.insert(tid, (id, to.to_string()));
        }
    }
}

const SUFFIXES: [&str; 6] = ["", "", "", "-slow", "-fail", "-limbo"];
const OPERATIONS: [&str; 8] = [
    "create", "create", "create", "transfer", "renew", "update", "release", "privacy",
];

fn domain(rng: &mut StdRng) -> String {
    format!(
        "crash{}{}.com",
        rng.gen_range(0..60),
        SUFFIXES[rng.gen_range(0..SUFFIXES.len())]
    )
}

fn params(rng: &mut StdRng, operation: &str) -> Value {
    let mut p = json!({});
    if rng.gen_bool(0.85) {
        p["contacts"] = json!({"owner": {"name": "Ada Lovelace", "email": "ada@example.net"}});
    }
    match operation {
        "transfer" => p["auth_code"] = json!(if rng.gen_bool(0.2) { "wrong" } else { "s3cret" }),
        "update" => p["nameservers"] = json!(["ns1.example.net", "ns2.example.net"]),
        "create" if rng.gen_bool(0.15) => p["premium"] = json!(true),
        "create" if rng.gen_bool(0.1) => p["phase"] = json!("sunrise"),
        _ => {}
    }
    p
}

struct Shared {
    base: String,
    customers: Vec<String>,
    /// Per customer: (account id, name, XCP API key).
    resellers: Vec<(i64, String, String)>,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    /// Request ids the load knows of, for actions.
    ids: Arc<Mutex<Vec<i64>>>,
}

impl Shared {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
    }

    fn some_id(&self, rng: &mut StdRng) -> Option<i64> {
        let ids = self.ids.lock().unwrap();
        if ids.is_empty() {
            None
        } else {
            Some(ids[rng.gen_range(0..ids.len())])
        }
    }
}

/// A customer: orders (some with idempotency keys), aborts, annotates,
/// patches, polls and acks its notifications.
fn customer_load(s: &Shared, c: usize, rng: &mut StdRng) {
    let token = s.customers[c].clone();
    // Replay the keys the previous run left unanswered, then one answered key.
    let pending: Vec<(usize, String, String)> = {
        let mut log = s.log.lock().unwrap();
        let (mine, others) = log
            .unanswered_keys
            .drain(..)
            .partition(|(who, _, _)| *who == c);
        log.unanswered_keys = others;
        mine
    };
    for (_, key, body) in pending {
        let v: Value = serde_json::from_str(&body).unwrap();
        match call_with(
            &s.base,
            "POST",
            "/api/v1/requests",
            &token,
            Some(&v),
            Some(&key),
        ) {
            None => {
                s.log.lock().unwrap().unanswered_keys.push((c, key, body));
                return;
            }
            Some((201, r)) => {
                record_request(&s.log, &r);
                let id = r["id"].as_i64().unwrap_or(0);
                let mut log = s.log.lock().unwrap();
                log.created.push((c, id));
                log.keys.insert(key, (c, body, id));
                s.ids.lock().unwrap().push(id);
            }
            Some(_) => {}
        }
    }
    let answered: Option<(String, String, i64)> = {
        let log = s.log.lock().unwrap();
        log.keys
            .iter()
            .filter(|(_, (who, _, _))| *who == c)
            .min_by_key(|(_, (_, _, id))| (id * 7919) % 104_729)
            .map(|(k, (_, b, id))| (k.clone(), b.clone(), *id))
    };
    if let Some((key, body, id)) = answered {
        let v: Value = serde_json::from_str(&body).unwrap();
        match call_with(
            &s.base,
            "POST",
            "/api/v1/requests",
            &token,
            Some(&v),
            Some(&key),
        ) {
            None => return,
            Some((status, r)) => {
                if status != 201 || r["id"].as_i64() != Some(id) {
                    s.log.lock().unwrap().violations.push(format!(
                        "Idempotency-Key {key} answered {id} before, now {status} {r}"
                    ));
                }
            }
        }
    }

    while s.running() {
        let roll = rng.gen_range(0..100);
        let done = if roll < 40 {
            let operation = OPERATIONS[rng.gen_range(0..OPERATIONS.len())];
            let body = json!({
                "domain": domain(rng),
                "operation": operation,
                "params": params(rng, operation),
                "submit": rng.gen_bool(0.8),
            });
            let key = rng
                .gen_bool(0.3)
                .then(|| format!("k{c}-{}", rng.gen::<u64>()));
            if let Some(k) = &key {
                s.log
                    .lock()
                    .unwrap()
                    .unanswered_keys
                    .push((c, k.clone(), body.to_string()));
            }
            match call_with(
                &s.base,
                "POST",
                "/api/v1/requests",
                &token,
                Some(&body),
                key.as_deref(),
            ) {
                None => false,
                Some((status, r)) => {
                    if let Some(k) = &key {
                        s.log
                            .lock()
                            .unwrap()
                            .unanswered_keys
                            .retain(|(_, uk, _)| uk != k);
                    }
                    if status == 201 {
                        record_request(&s.log, &r);
                        let id = r["id"].as_i64().unwrap_or(0);
                        let mut log = s.log.lock().unwrap();
                        log.created.push((c, id));
                        if let Some(k) = key {
                            log.keys.insert(k, (c, body.to_string(), id));
                        }
                        s.ids.lock().unwrap().push(id);
                    }
                    true
                }
            }
        } else if roll < 70 {
            poll_and_ack(s, c, &token)
        } else {
            let Some(id) = s.some_id(rng) else { continue };
            let (action, body) = match rng.gen_range(0..4) {
                0 => ("abort", json!({})),
                1 => ("submit", json!({})),
                2 => (
                    "annotate",
                    json!({"text": format!("note {}", rng.gen::<u64>())}),
                ),
                _ => ("patch", json!({"params": params(rng, "create")})),
            };
            act(s, &token, id, action, body)
        };
        if !done {
            return;
        }
    }
}

/// GET the oldest unread notification and DELETE it; checks the FIFO order.
fn poll_and_ack(s: &Shared, c: usize, token: &str) -> bool {
    let Some((status, n)) = call(&s.base, "GET", "/api/v1/notification", token, None) else {
        return false;
    };
    if status != 200 {
        return true;
    }
    let id = n["id"].as_i64().unwrap_or(0);
    {
        let mut log = s.log.lock().unwrap();
        let last = log.last_polled.get(&c).copied().unwrap_or(0);
        if id < last {
            log.violations
                .push(format!("customer {c}: FIFO went back from {last} to {id}"));
        }
        if log.acked.contains(&id) {
            log.violations
                .push(format!("customer {c}: acked notification {id} shown again"));
        }
        log.last_polled.insert(c, id);
    }
    match call(
        &s.base,
        "DELETE",
        &format!("/api/v1/notification/{id}"),
        token,
        None,
    ) {
        None => false,
        Some((status, _)) => {
            if ok(status) {
                let mut log = s.log.lock().unwrap();
                log.acknowledged += 1;
                log.acked.insert(id);
            }
            true
        }
    }
}

/// An action (or PATCH) on a request; logs what a 2xx answer showed.
fn act(s: &Shared, token: &str, id: i64, action: &str, body: Value) -> bool {
    let (method, path) = if action == "patch" {
        ("PATCH", format!("/api/v1/requests/{id}"))
    } else {
        ("POST", format!("/api/v1/requests/{id}/{action}"))
    };
    match call(&s.base, method, &path, token, Some(&body)) {
        None => false,
        Some((status, r)) => {
            if ok(status) {
                record_request(&s.log, &r);
                for key in ["text", "annotation"] {
                    if let Some(t) = body[key].as_str() {
                        s.log.lock().unwrap().annotations.push((id, t.to_string()));
                    }
                }
            } else if status >= 500 {
                s.log
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("{method} {path} answered {status}: {r}"));
            }
            true
        }
    }
}

/// The operator: authorises, sends back, retries, resolves, ticks, moves the
/// clock and changes the simulated registry's rules.
fn operator_load(s: &Shared, rng: &mut StdRng) {
    while s.running() {
        let roll = rng.gen_range(0..100);
        let done = if roll < 15 {
            call(&s.base, "POST", "/api/v1/tick", OPERATOR, None).is_some()
        } else if roll < 22 {
            let by = ["10m", "1h", "2h", "5d"][rng.gen_range(0..4)];
            match call(
                &s.base,
                "POST",
                "/api/v1/clock",
                OPERATOR,
                Some(&json!({"advance": by})),
            ) {
                None => false,
                Some((status, v)) => {
                    if let (true, Some(now)) = (ok(status), v["now_ms"].as_i64()) {
                        let mut log = s.log.lock().unwrap();
                        log.clock_ms = log.clock_ms.max(now);
                    }
                    true
                }
            }
        } else if roll < 25 {
            let outcome = [
                "success",
                "registry_error",
                "unexpected_error",
                "async:1h",
                "user_error:contacts",
            ][rng.gen_range(0..5)];
            let rules = json!({"rules": [{"pattern": format!("crash{}*", rng.gen_range(0..6)), "operation": "*", "outcome": outcome}]});
            call(&s.base, "PUT", "/api/v1/sim/rules", OPERATOR, Some(&rules)).is_some()
        } else {
            let Some(id) = s.some_id(rng) else {
                thread::sleep(Duration::from_millis(2));
                continue;
            };
            let (action, body) = match rng.gen_range(0..8) {
                0 | 1 => ("authorise", json!({})),
                2 => (
                    "send-back",
                    json!({"annotation": format!("fix {}", rng.gen::<u64>())}),
                ),
                3 => ("retry", json!({})),
                4 => ("abort", json!({"reason": "operator"})),
                5 => (
                    "annotate",
                    json!({"text": format!("op {}", rng.gen::<u64>())}),
                ),
                6 => (
                    "resolve",
                    json!({"outcome": (["finished", "failed"][rng.gen_range(0..2)])}),
                ),
                _ => (
                    "events",
                    json!({"outcome": (["success", "error", "pending", "denied"][rng.gen_range(0..4)])}),
                ),
            };
            act(s, OPERATOR, id, action, body)
        };
        if !done {
            return;
        }
    }
}

// ----- the compatibility faces ------------------------------------------------

/// One signed XCP exchange: `None` when the connection failed, else the top
/// `dt_assoc` of the answer. An answer that is not HTTP 200 with an
/// envelope, or an internal error, is a violation.
fn xcp(s: &Shared, c: usize, action: &str, object: &str, items: &str) -> Option<XcpValue> {
    let (_, name, key) = &s.resellers[c];
    let body = xcp_envelope(action, object, items);
    let signature = xcp_signature(body.as_bytes(), key);
    let headers = [
        ("X-Username", name.as_str()),
        ("X-Signature", &signature),
        ("Content-Type", "text/xml"),
    ];
    let url = format!("{}/", s.base);
    let a = send(&agent(WARY), "POST", &url, &headers, Some(body.as_bytes())).ok()?;
    let (status, text) = (a.status, a.text);
    let top = parse_envelope(text.as_bytes()).ok();
    let code = top.as_ref().and_then(|t| t.get_str("response_code"));
    if status != 200 || top.is_none() || code == Some("500") {
        s.log
            .lock()
            .unwrap()
            .violations
            .push(format!("XCP {action} {object}: HTTP {status}: {text:.300}"));
    }
    top
}

fn xcp_ok(top: &XcpValue) -> bool {
    top.get_str("is_success") == Some("1")
}

fn xcp_list<'a>(top: &'a XcpValue, key: &str) -> &'a [(String, XcpValue)] {
    top.get("attributes")
        .and_then(|a| a.get(key))
        .and_then(XcpValue::items)
        .unwrap_or_default()
}

/// One task-face exchange as customer `c`: `None` when the connection
/// failed. An answer that is not XML, or a 5xx, is a violation.
fn task(
    s: &Shared,
    c: usize,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let bearer = format!("Bearer {}", s.customers[c]);
    let mut headers = vec![("Authorization", bearer.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/xml"));
    }
    let url = format!("{}{path}", s.base);
    let a = send(
        &agent(WARY),
        method,
        &url,
        &headers,
        body.map(str::as_bytes),
    )
    .ok()?;
    let status = a.status;
    let xml = a
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("application/xml"));
    let text = a.text;
    if status >= 500 || !xml {
        s.log
            .lock()
            .unwrap()
            .violations
            .push(format!("{method} {path}: {status} {text:.300}"));
    }
    Some((status, text))
}

/// The text of every `<name>` element, in order (none when `xml` is not
/// well-formed).
fn xml_texts(xml: &str, name: &str) -> Vec<String> {
    try_xml_tree(xml).map(|t| t.texts(name)).unwrap_or_default()
}

/// The test clock's time as a customer sees it.
fn clock_ms(s: &Shared, c: usize) -> Option<i64> {
    let (_, v) = call(&s.base, "GET", "/api/v1/clock", &s.customers[c], None)?;
    v["now_ms"].as_i64()
}

/// A reseller on the XCP face and the task face, for either customer:
/// registers, polls and acknowledges order events, cancels pending orders,
/// schedules requests (native API), reads task status and deletes
/// scheduled tasks.
fn face_load(s: &Shared, rng: &mut StdRng) {
    while s.running() {
        let c = rng.gen_range(0..s.customers.len());
        let roll = rng.gen_range(0..100);
        let done = if roll < 25 {
            xcp_register(s, c, rng)
        } else if roll < 50 {
            xcp_poll_and_ack(s, c, rng)
        } else if roll < 57 {
            xcp_cancel(s, c, rng)
        } else if roll < 72 {
            schedule(s, c, rng)
        } else if roll < 86 {
            task_status(s, c, rng)
        } else {
            task_delete(s, c, rng)
        };
        if !done {
            return;
        }
    }
}

fn xcp_register(s: &Shared, c: usize, rng: &mut StdRng) -> bool {
    let reg_type = ["new", "new", "new", "premium", "sunrise"][rng.gen_range(0..5)];
    let handle = if rng.gen_bool(0.8) { "process" } else { "save" };
    let items = format!(
        "<item key=\"domain\">{}</item><item key=\"reg_type\">{reg_type}</item>\
         <item key=\"handle\">{handle}</item><item key=\"period\">{}</item>\
         <item key=\"contact_set\"><dt_assoc><item key=\"owner\"><dt_assoc>\
         <item key=\"first_name\">Ada</item><item key=\"last_name\">Lovelace</item>\
         <item key=\"email\">ada@example.net</item></dt_assoc></item></dt_assoc></item>",
        domain(rng),
        rng.gen_range(1..4)
    );
    let Some(top) = xcp(s, c, "SW_REGISTER", "DOMAIN", &items) else {
        return false;
    };
    if xcp_ok(&top) {
        let id = top
            .get("attributes")
            .and_then(|a| a.get_str("id"))
            .and_then(|id| id.parse::<i64>().ok());
        let mut log = s.log.lock().unwrap();
        match id {
            Some(id) => {
                log.acknowledged += 1;
                log.face_writes += 1;
                log.xcp_orders.push((c, id));
                s.ids.lock().unwrap().push(id);
            }
            None => log
                .violations
                .push(format!("SW_REGISTER answered without an order id: {top:?}")),
        }
    }
    true
}

/// POLL, then ACK some of what it showed; an acknowledged event polled
/// again is a violation.
fn xcp_poll_and_ack(s: &Shared, c: usize, rng: &mut StdRng) -> bool {
    let limit = rng.gen_range(1..=10);
    let Some(top) = xcp(
        s,
        c,
        "POLL",
        "EVENT",
        &format!("<item key=\"limit\">{limit}</item>"),
    ) else {
        return false;
    };
    let mut to_ack = Vec::new();
    {
        let mut log = s.log.lock().unwrap();
        for (_, e) in xcp_list(&top, "events") {
            let event_id = e.get_str("event_id").unwrap_or_default().to_string();
            let order = e
                .get("object_data")
                .and_then(|d| d.get_str("order_id"))
                .and_then(|id| id.parse::<i64>().ok())
                .unwrap_or(0);
            // The lifecycle's DOMAIN events come in the same poll.
            if e.get_str("object") == Some("ORDER") {
                log.polled_orders.insert((c, order));
            }
            if log.acked_events.contains_key(&event_id) {
                log.violations.push(format!(
                    "customer {c}: acknowledged order event {event_id} polled again"
                ));
            }
            if rng.gen_bool(0.7) {
                to_ack.push(event_id);
            }
        }
    }
    for event_id in to_ack {
        let Some(top) = xcp(
            s,
            c,
            "ACK",
            "EVENT",
            &format!("<item key=\"event_id\">{event_id}</item>"),
        ) else {
            return false;
        };
        let mut log = s.log.lock().unwrap();
        if xcp_ok(&top) {
            log.acknowledged += 1;
            log.face_writes += 1;
            log.acked_events.insert(event_id, c);
        } else {
            log.violations.push(format!(
                "customer {c}: ACK of its own polled event {event_id} refused: {top:?}"
            ));
        }
    }
    true
}

fn xcp_cancel(s: &Shared, c: usize, rng: &mut StdRng) -> bool {
    let Some(now) = clock_ms(s, c) else {
        return false;
    };
    let to_date = now / 1000 - rng.gen_range(0..3 * 86_400);
    let Some(top) = xcp(
        s,
        c,
        "CANCEL_PENDING_ORDERS",
        "ORDER",
        &format!("<item key=\"to_date\">{to_date}</item><item key=\"status\">pending</item>"),
    ) else {
        return false;
    };
    if xcp_ok(&top) {
        let mut log = s.log.lock().unwrap();
        log.acknowledged += 1;
        log.face_writes += 1;
        for (_, o) in xcp_list(&top, "cancelled") {
            if let Some(id) = o.get_str("id").and_then(|id| id.parse().ok()) {
                log.xcp_cancelled.insert(id);
            }
        }
    }
    true
}

/// A hold or delete with an exec date 1 to 20 days ahead: a scheduled task.
fn schedule(s: &Shared, c: usize, rng: &mut StdRng) -> bool {
    let Some(now) = clock_ms(s, c) else {
        return false;
    };
    let body = json!({
        "domain": domain(rng),
        "operation": (["hold", "delete"][rng.gen_range(0..2)]),
        "exec_date": regdesk::clock::format(now + rng.gen_range(1..=20) * 86_400_000),
        "submit": true,
    });
    match call(
        &s.base,
        "POST",
        "/api/v1/requests",
        &s.customers[c],
        Some(&body),
    ) {
        None => false,
        Some((status, r)) => {
            if status == 201 {
                record_request(&s.log, &r);
                let id = r["id"].as_i64().unwrap_or(0);
                s.log.lock().unwrap().created.push((c, id));
                s.ids.lock().unwrap().push(id);
            }
            true
        }
    }
}

/// Task status reads: everything, one task, or one STATUS; only the
/// caller's own tasks may show.
fn task_status(s: &Shared, c: usize, rng: &mut StdRng) -> bool {
    let uid = s.resellers[c].0;
    let path = match rng.gen_range(0..3) {
        0 => format!("/bdom/task/status/-/-/-/-/{uid}/"),
        1 => match s.some_id(rng) {
            Some(id) => format!("/bdom/task/status/{id}/-/-/-/{uid}/"),
            None => return true,
        },
        _ => {
            let status = [
                "SUCCESS",
                "PENDING_INT",
                "PENDING_EXT",
                "FAILED_INT",
                "FAILED_EXT",
            ][rng.gen_range(0..5)];
            format!("/bdom/task/status/-/{status}/-/-/{uid}/")
        }
    };
    let Some((status, text)) = task(s, c, "GET", &path, None) else {
        return false;
    };
    if status == 200
        && xml_texts(&text, "user_id")
            .iter()
            .any(|u| *u != uid.to_string())
    {
        s.log.lock().unwrap().violations.push(format!(
            "GET {path} shows another account's task: {text:.300}"
        ));
    }
    true
}

/// Lists the scheduled tasks and deletes one or two of them.
fn task_delete(s: &Shared, c: usize, rng: &mut StdRng) -> bool {
    let uid = s.resellers[c].0;
    let Some((status, text)) = task(
        s,
        c,
        "GET",
        &format!("/bdom/task/scheduled/-/-/-/-/{uid}/"),
        None,
    ) else {
        return false;
    };
    let listed = xml_texts(&text, "task_id");
    if status != 200 || listed.is_empty() {
        return true;
    }
    let ids: Vec<i64> = (0..rng.gen_range(1..=2))
        .filter_map(|_| listed[rng.gen_range(0..listed.len())].parse().ok())
        .collect();
    let body: String = ids
        .iter()
        .map(|id| format!("<task_id>{id}</task_id>"))
        .collect();
    let Some((status, text)) = task(
        s,
        c,
        "POST",
        &format!("/bdom/task/delete/-/-/-/-/{uid}/"),
        Some(&format!("<request><delete>{body}</delete></request>")),
    ) else {
        return false;
    };
    if status == 200 {
        let mut log = s.log.lock().unwrap();
        if text.trim() == "<response>delete ok</response>" {
            log.acknowledged += 1;
            log.face_writes += 1;
            log.task_deleted.extend(ids);
        } else {
            log.violations
                .push(format!("a task delete answered 200 {text:.200}"));
        }
    }
    true
}

/// The OpenSRS `order_status` a transition leads to: `wait` is the only
/// event that enters `processing` waiting on the registry or registrant
/// (the simulated registry never waits on an operator); a failed request's
/// failure is its stored one, as `failed` is terminal.
fn mapped_status(to: &str, event: &str, failure: Option<&str>) -> &'static str {
    match to {
        "new" | "incomplete" | "review" => "pending",
        "queued" | "limbo" => "waiting",
        "processing" if event == "wait" => "processed",
        "processing" => "waiting",
        "finished" => "completed",
        _ => match failure {
            Some("aborted" | "duplicate" | "expired") => "canceled",
            _ => "declined",
        },
    }
}

/// The invariants of the XCP face and the task face.
fn check_faces(conn: &Connection, log: &Log, bad: &mut Vec<String>) {
    let requests: HashMap<i64, (i64, String, String, Option<String>)> = {
        let mut stmt = conn
            .prepare("select id, account_id, operation, state, failure from requests")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let account = |c: usize| log.account_ids.get(c).copied().unwrap_or(-1);
    for (c, id) in &log.xcp_orders {
        match requests.get(id) {
            Some((a, op, _, _)) if *a == account(*c) && op == "create" => {}
            other => bad.push(format!(
                "SW_REGISTER order {id} (customer {c}) lost or changed: {other:?}"
            )),
        }
    }
    for (c, id) in &log.polled_orders {
        if requests.get(id).map(|r| r.0) != Some(account(*c)) {
            bad.push(format!(
                "customer {c} polled an event of order {id}, not its own"
            ));
        }
    }
    for id in &log.xcp_cancelled {
        let r = requests.get(id);
        if r.map(|r| (r.2.as_str(), r.3.as_deref())) != Some(("failed", Some("expired"))) {
            bad.push(format!(
                "cancelled order {id} is not failed (expired): {r:?}"
            ));
        }
    }
    for id in &log.task_deleted {
        let r = requests.get(id);
        if r.map(|r| (r.2.as_str(), r.3.as_deref())) != Some(("failed", Some("aborted"))) {
            bad.push(format!("deleted task {id} is not failed (aborted): {r:?}"));
        }
    }
    let events: HashMap<String, (i64, Option<i64>)> = {
        let mut stmt = conn
            .prepare(
                "select event_id, account_id, acked_at from order_events
                 union all select event_id, account_id, acked_at from domain_events",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for (event_id, c) in &log.acked_events {
        match events.get(event_id) {
            Some((a, Some(_))) if *a == account(*c) => {}
            other => bad.push(format!(
                "acknowledged order event {event_id} (customer {c}) is not acked: {other:?}"
            )),
        }
    }
    // One event per change of the mapped status, in order: replay each
    // order's transitions and compare with its events.
    let mut expected: HashMap<i64, Vec<&'static str>> = HashMap::new();
    {
        let mut stmt = conn
            .prepare("select request_id, to_state, event from transitions order by id")
            .unwrap();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            let id: i64 = row.get(0).unwrap();
            let Some((_, op, _, failure)) = requests.get(&id) else {
                continue;
            };
            if !["create", "transfer", "renew", "privacy"].contains(&op.as_str()) {
                continue;
            }
            let (to, event): (String, String) = (row.get(1).unwrap(), row.get(2).unwrap());
            let status = mapped_status(&to, &event, failure.as_deref());
            let seq = expected.entry(id).or_default();
            if seq.last() != Some(&status) {
                seq.push(status);
            }
        }
    }
    let mut actual: HashMap<i64, Vec<String>> = HashMap::new();
    for row in rows::<String>(
        conn,
        "select cast(request_id as text), order_status from order_events order by id",
    ) {
        actual
            .entry(row[0].parse().unwrap())
            .or_default()
            .push(row[1].clone());
    }
    let ids: HashSet<i64> = expected.keys().chain(actual.keys()).copied().collect();
    for id in ids {
        let want = expected.get(&id).cloned().unwrap_or_default();
        let got = actual.get(&id).cloned().unwrap_or_default();
        if want != got {
            bad.push(format!(
                "order {id}: events {got:?}, but its transitions change the order status {want:?}"
            ));
        }
    }
}

/// After a restart: a POLL of everything shows no acknowledged event.
fn poll_after_restart(s: &Shared, log: &Log) -> Vec<String> {
    let mut bad = Vec::new();
    for c in 0..s.customers.len() {
        let Some(top) = xcp(s, c, "POLL", "EVENT", "<item key=\"limit\">100</item>") else {
            bad.push(format!(
                "customer {c}: no answer to a POLL after the restart"
            ));
            continue;
        };
        for (_, e) in xcp_list(&top, "events") {
            let id = e.get_str("event_id").unwrap_or_default();
            if log.acked_events.contains_key(id) {
                bad.push(format!(
                    "customer {c}: acknowledged event {id} polled after the restart"
                ));
            }
        }
    }
    bad
}

fn open_ro(db: &Path) -> Connection {
    Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the database read-only")
}

fn rows<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> Vec<Vec<T>> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<rusqlite::Result<Vec<Vec<T>>>>()
        .unwrap()
}

/// SQL that must return no rows, with what a row means.
const EMPTY_QUERIES: &[(&str, &str)] = &[
    (
        "invoice item twice",
        "select request_id || ' ' || kind from invoice_items group by request_id, kind having count(*) > 1",
    ),
    (
        "invoice item outlived its request",
        "select i.id || ' on ' || r.id || ' ' || r.state from invoice_items i join requests r on r.id = i.request_id
         where r.state in ('failed', 'incomplete')",
    ),
    (
        "domain change twice",
        "select request_id || ' ' || domain from domain_changes
         group by request_id, domain, coalesce(before, ''), coalesce(after, '') having count(*) > 1",
    ),
    (
        "domain change outlived its request",
        "select c.id || ' on ' || r.id || ' ' || r.state from domain_changes c join requests r on r.id = c.request_id
         where r.state in ('failed', 'incomplete')",
    ),
    (
        "outcome notification twice",
        "select request_id || ' ' || status from notifications where status <> 'pending'
         group by request_id having count(*) > 1",
    ),
    (
        "outcome notification for an open request",
        "select n.id || ' on ' || r.id || ' ' || r.state from notifications n join requests r on r.id = n.request_id
         where n.status <> 'pending' and r.state not in ('finished', 'failed')",
    ),
    (
        "pending notification without a wait",
        "select n.request_id from notifications n where n.status = 'pending' group by n.request_id
         having count(*) > (select count(*) from transitions t where t.request_id = n.request_id
                            and t.to_state = 'processing')",
    ),
    (
        "limbo mail without a limbo transition",
        "select m.request_id from mail m where m.subject like '%needs attention%' group by m.request_id
         having count(*) > (select count(*) from transitions t where t.request_id = m.request_id
                            and t.to_state = 'limbo')
                           * (select count(*) from accounts where role = 'operator')",
    ),
    (
        "order event of another account",
        "select e.event_id from order_events e join requests r on r.id = e.request_id
         where e.account_id <> r.account_id",
    ),
    (
        "order event of a request that is no order",
        "select e.event_id || ' ' || r.operation from order_events e join requests r on r.id = e.request_id
         where r.operation not in ('create', 'transfer', 'renew', 'privacy')",
    ),
    (
        "idempotency key answered two requests",
        "select account_id || ' ' || key from idempotency_keys group by account_id, key having count(*) > 1",
    ),
];

/// Checks every invariant on the database after a restart; returns the violations.
fn check(db: &Path, log: &Log, now_ms: i64) -> Vec<String> {
    let conn = open_ro(db);
    let mut bad = log.violations.clone();
    for (what, sql) in EMPTY_QUERIES {
        for row in rows::<String>(&conn, sql) {
            bad.push(format!("{what}: {}", row.join(" ")));
        }
    }
    let stuck = rows::<i64>(
        &conn,
        &format!(
            "select id from requests where state = 'processing' and waiting_on = 'internal'
             and (next_attempt_at is null or next_attempt_at <= {now_ms})"
        ),
    );
    for r in stuck {
        bad.push(format!(
            "request {} stuck in processing (internal) after a tick",
            r[0]
        ));
    }
    let ids: HashSet<i64> = rows::<i64>(&conn, "select id from requests")
        .into_iter()
        .map(|r| r[0])
        .collect();
    for (c, id) in &log.created {
        if !ids.contains(id) {
            bad.push(format!("acknowledged create {id} (customer {c}) lost"));
        }
    }
    // The transition log replays to the stored state.
    let states: HashMap<i64, String> = {
        let mut stmt = conn.prepare("select id, state from requests").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut folded: HashMap<i64, Option<String>> = HashMap::new();
    let mut stored: HashMap<i64, (i64, String)> = HashMap::new();
    {
        let mut stmt = conn
            .prepare("select id, request_id, from_state, to_state from transitions order by id")
            .unwrap();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            let (tid, rid): (i64, i64) = (r.get(0).unwrap(), r.get(1).unwrap());
            let (from, to): (Option<String>, String) = (r.get(2).unwrap(), r.get(3).unwrap());
            let prev = folded.get(&rid).cloned().flatten();
            if from != prev {
                bad.push(format!(
                    "request {rid}: transition {tid} from {from:?} but the previous state was {prev:?}"
                ));
            }
            folded.insert(rid, Some(to.clone()));
            stored.insert(tid, (rid, to));
        }
    }
    for (id, state) in &states {
        let last = folded.get(id).cloned().flatten();
        if last.as_deref() != Some(state.as_str()) {
            bad.push(format!(
                "request {id}: state {state} but its transitions end in {last:?}"
            ));
        }
    }
    for (tid, (rid, to)) in &log.transitions {
        if stored.get(tid) != Some(&(*rid, to.clone())) {
            bad.push(format!(
                "acknowledged transition {tid} (request {rid} to {to}) lost: found {:?}",
                stored.get(tid)
            ));
        }
    }
    let notes: HashSet<(i64, String)> = {
        let mut stmt = conn
            .prepare("select request_id, text from annotations")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for (id, text) in &log.annotations {
        if !notes.contains(&(*id, text.clone())) {
            bad.push(format!("acknowledged annotation {text:?} on {id} lost"));
        }
    }
    let unread: HashSet<i64> =
        rows::<i64>(&conn, "select id from notifications where read_at is null")
            .into_iter()
            .map(|r| r[0])
            .collect();
    for id in &log.acked {
        if unread.contains(id) {
            bad.push(format!("acknowledged notification {id} is unread again"));
        }
    }
    check_faces(&conn, log, &mut bad);
    bad
}

/// Figures of one crash run.
#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    acknowledged: usize,
    requests: i64,
    transitions: i64,
    notifications: i64,
    invoice_items: i64,
    face_writes: usize,
    order_events: i64,
    acked_events: usize,
    task_deletes: usize,
}

/// Runs `kills` kill-and-restart cycles with `seed`; panics on the first
/// violated invariant, naming the seed.
fn run(kills: usize, seed: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("regdesk.db");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut proc = spawn(&db);
    let accounts: Vec<Value> = (0..2)
        .map(|i| {
            let (status, v) = call(
                &proc.base,
                "POST",
                "/api/v1/accounts",
                OPERATOR,
                Some(&json!({"name": format!("crash{i}"), "email": "c@example.net"})),
            )
            .expect("create a customer");
            assert_eq!(status, 201, "{v}");
            v
        })
        .collect();
    let customers: Vec<String> = accounts
        .iter()
        .map(|v| v["token"].as_str().unwrap().to_string())
        .collect();
    let resellers: Vec<(i64, String, String)> = accounts
        .iter()
        .map(|v| {
            (
                v["id"].as_i64().unwrap(),
                v["name"].as_str().unwrap().to_string(),
                v["api_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let log = Arc::new(Mutex::new(Log {
        account_ids: resellers.iter().map(|r| r.0).collect(),
        ..Log::default()
    }));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    for cycle in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            base: proc.base.clone(),
            customers: customers.clone(),
            resellers: resellers.clone(),
            log: log.clone(),
            stop: stop.clone(),
            ids: ids.clone(),
        });
        let mut threads = Vec::new();
        for t in 0..4usize {
            let s = shared.clone();
            let mut trng = StdRng::seed_from_u64(seed ^ ((cycle as u64) << 8) ^ t as u64);
            threads.push(thread::spawn(move || match t {
                0 | 1 => customer_load(&s, t, &mut trng),
                2 => operator_load(&s, &mut trng),
                _ => face_load(&s, &mut trng),
            }));
        }
        thread::sleep(Duration::from_millis(rng.gen_range(5..150)));
        // SIGKILL: no destructor, no flush, no clean close.
        proc.child.kill().ok();
        proc.child.wait().ok();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("a load thread panicked");
        }

        proc = spawn(&db);
        let clock_ms = log.lock().unwrap().clock_ms;
        // The first tick after the restart, with the clock frozen where it
        // was (a restarted test clock would start again at the real time).
        let (status, v) = call(&proc.base, "GET", "/api/v1/clock", OPERATOR, None).unwrap();
        assert_eq!(status, 200, "{v}");
        let at = clock_ms.max(v["now_ms"].as_i64().unwrap());
        let (status, v) = call(
            &proc.base,
            "POST",
            "/api/v1/clock",
            OPERATOR,
            Some(&json!({"freeze": true, "set": regdesk::clock::format(at + 1000)})),
        )
        .unwrap();
        assert_eq!(status, 200, "{v}");
        let now_ms = v["now_ms"].as_i64().unwrap();
        let (status, v) = call(&proc.base, "POST", "/api/v1/tick", OPERATOR, None).unwrap();
        assert_eq!(status, 200, "{v}");
        let bad = {
            let log = log.lock().unwrap();
            let mut bad = check(&db, &log, now_ms);
            // The XCP client of the load, on the restarted server, with a
            // log of its own (the load's is locked here).
            let s = Shared {
                base: proc.base.clone(),
                customers: customers.clone(),
                resellers: resellers.clone(),
                log: Arc::new(Mutex::new(Log::default())),
                stop: Arc::new(AtomicBool::new(false)),
                ids: Arc::new(Mutex::new(Vec::new())),
            };
            bad.extend(poll_after_restart(&s, &log));
            bad.append(&mut s.log.lock().unwrap().violations);
            bad
        };
        assert!(
            bad.is_empty(),
            "seed {seed}, after kill {}: {} violation(s):\n{}",
            cycle + 1,
            bad.len(),
            bad.join("\n")
        );
        let (status, v) = call(
            &proc.base,
            "POST",
            "/api/v1/clock",
            OPERATOR,
            Some(&json!({"freeze": false})),
        )
        .unwrap();
        assert_eq!(status, 200, "{v}");
        {
            // Requests created while the answer was lost join the action pool.
            let conn = open_ro(&db);
            *ids.lock().unwrap() = rows::<i64>(&conn, "select id from requests")
                .into_iter()
                .map(|r| r[0])
                .collect();
        }
    }
    drop(proc);
    let conn = open_ro(&db);
    let count = |t: &str| -> i64 {
        conn.query_row(&format!("select count(*) from {t}"), [], |r| r.get(0))
            .unwrap()
    };
    let log = log.lock().unwrap();
    let figures = Figures {
        kills,
        acknowledged: log.acknowledged,
        requests: count("requests"),
        transitions: count("transitions"),
        notifications: count("notifications"),
        invoice_items: count("invoice_items"),
        face_writes: log.face_writes,
        order_events: count("order_events"),
        acked_events: log.acked_events.len(),
        task_deletes: log.task_deleted.len(),
    };
    eprintln!(
        "crash: seed {seed}: {} kills survived, {} acknowledged writes ({} through XCP and \
         the task face), {} requests, {} transitions, {} notifications, {} invoice items, \
         {} order events ({} acknowledged), {} task-face deletes, 0 violations, {:.1}s",
        figures.kills,
        figures.acknowledged,
        figures.face_writes,
        figures.requests,
        figures.transitions,
        figures.notifications,
        figures.invoice_items,
        figures.order_events,
        figures.acked_events,
        figures.task_deletes,
        started.elapsed().as_secs_f64()
    );
    figures
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let kills = std::env::var("REGDESK_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed = std::env::var("REGDESK_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("crash: {kills} kills, seed {seed} (REGDESK_CRASH_SEED={seed} repeats it)");
    let figures = run(kills, seed);
    assert_eq!(figures.kills, kills);
    assert!(
        figures.requests > 0 && figures.face_writes > 0,
        "the load created nothing: {figures:?}"
    );
}

/// The checker is not vacuous: a lost write, a lost ack, a broken log, a
/// lost order, a duplicated order event and undone cancellations are seen.
#[test]
fn the_crash_checker_sees_lost_writes() {
    let s = crate::support::Server::start();
    let (account, token) = s.customer("checked");
    let r = s.order(&token, "checked.com", "create", crate::support::owner());
    let id = r["id"].as_i64().unwrap();
    let db = s.dir.path().join("regdesk.db");
    let clean = Log {
        account_ids: vec![account],
        xcp_orders: vec![(0, id)],
        polled_orders: [(0, id)].into(),
        ..Log::default()
    };
    assert!(
        check(&db, &clean, 0).is_empty(),
        "{:#?}",
        check(&db, &clean, 0)
    );
    let mut log = Log {
        account_ids: vec![account],
        ..Log::default()
    };
    log.created.push((0, id + 1000));
    log.transitions.insert(999_999, (id, "finished".into()));
    log.annotations.push((id, "never written".into()));
    log.xcp_orders.push((0, id + 1000));
    log.polled_orders.insert((1, id));
    log.xcp_cancelled.insert(id);
    log.task_deleted.insert(id);
    let event: String = open_ro(&db)
        .query_row(
            "select event_id from order_events where request_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    log.acked_events.insert(event, 0);
    let bad = check(&db, &log, 0);
    assert_eq!(bad.len(), 8, "{bad:#?}");
    // An order event twice: the replay of the transitions sees it.
    let conn = Connection::open(&db).unwrap();
    conn.execute(
        "insert into order_events (event_id, account_id, request_id, domain, order_status, reg_type, created_at)
         select lower(hex(randomblob(16))), account_id, request_id, domain, order_status, reg_type, created_at
         from order_events where request_id = ?1 order by id desc limit 1",
        [id],
    )
    .unwrap();
    let bad = check(&db, &clean, 0);
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert!(bad[0].contains("events"), "{bad:#?}");
}

/// Found by the crash load: a registry answer whose portfolio effects could
/// not be applied left the request claimed (`processing`, `internal`) and
/// retried on every tick forever.
#[test]
fn a_request_the_registry_cannot_settle_is_not_left_claimed() {
    use crate::support::owner;
    let s = crate::support::Server::start();
    let (_, token) = s.customer("unsettled");
    // A slow name the account does not hold: refused at once.
    let r = s.order(&token, "nothere-slow.com", "release", json!({}));
    s.tick();
    let r = s.request(&token, r["id"].as_i64().unwrap());
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("invalid")),
        "{r}"
    );

    // A release whose domain is deleted while the registry is on it: the
    // release cannot finish; it ends in limbo for an operator.
    s.order(&token, "gone.com", "create", owner());
    s.tick();
    s.order(
        &token,
        "gone.com",
        "update",
        json!({"transfer_lock": false}),
    );
    s.tick();
    let release = s.order(&token, "gone.com", "release", json!({}));
    s.tick();
    let id = release["id"].as_i64().unwrap();
    assert_eq!(s.request(&token, id)["waiting_on"], "registry");
    s.order(&token, "gone.com", "delete", json!({}));
    s.tick();
    s.advance("6d");
    s.advance("1d");
    s.advance("1d");
    let r = s.request(&token, id);
    assert_eq!(r["state"], "limbo", "{r}");
    assert!(r["invoice_items"].as_array().unwrap().is_empty(), "{r}");
}

/// Domains the lifecycle crash test registers, all expiring at once.
const SWEPT_DOMAINS: usize = 200;

/// The lifecycle's sweep killed with SIGKILL while it works through a
/// year of steps for many domains, again and again: once it has finished,
/// each domain had each reminder, each notification and each mail once,
/// and was deleted once.
#[test]
fn kill_9_during_the_lifecycle_sweep_leaves_each_step_done_once() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("regdesk.db");
    let mut rng = StdRng::seed_from_u64(7);
    let set = |p: &Proc, at: &str| {
        call(
            &p.base,
            "POST",
            "/api/v1/clock",
            OPERATOR,
            Some(&json!({ "set": at })),
        )
    };
    let mut proc = spawn(&db);
    assert_eq!(set(&proc, "2030-01-01T00:00:00Z").map(|a| a.0), Some(200));
    let account = json!({"name": "swept", "email": "swept@example.net"});
    let (status, v) = call(
        &proc.base,
        "POST",
        "/api/v1/accounts",
        OPERATOR,
        Some(&account),
    )
    .unwrap();
    assert_eq!(status, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    for i in 0..SWEPT_DOMAINS {
        let order = json!({"domain": format!("swept{i}.com"), "operation": "create", "submit": true,
                           "params": {"contacts": {"owner": {"name": "S", "email": "s@example.net"}}}});
        let (status, _) =
            call(&proc.base, "POST", "/api/v1/requests", &token, Some(&order)).unwrap();
        assert_eq!(status, 201);
    }
    call(&proc.base, "POST", "/api/v1/tick", OPERATOR, None).unwrap();
    // Each kill lands somewhere in a sweep that starts at the clock's move.
    let mut kills = 0;
    for day in ["2030-12-10", "2031-01-02", "2031-02-02", "2031-03-09"] {
        for _ in 0..2 {
            let base = proc.base.clone();
            let at = format!("{day}T00:00:00Z");
            let mover = thread::spawn(move || {
                call(
                    &base,
                    "POST",
                    "/api/v1/clock",
                    OPERATOR,
                    Some(&json!({ "set": at })),
                )
            });
            thread::sleep(Duration::from_millis(rng.gen_range(1..60)));
            proc.child.kill().ok();
            proc.child.wait().ok();
            mover.join().ok();
            kills += 1;
            proc = spawn(&db);
        }
        // The restarted server's clock is the real one: set it where it was.
        assert_eq!(
            set(&proc, &format!("{day}T00:00:00Z")).map(|a| a.0),
            Some(200)
        );
    }
    assert_eq!(set(&proc, "2031-04-01T00:00:00Z").map(|a| a.0), Some(200));
    call(&proc.base, "POST", "/api/v1/tick", OPERATOR, None).unwrap();
    drop(proc);
    let conn = open_ro(&db);
    let count = |sql: &str| -> Vec<Vec<i64>> { rows(&conn, sql) };
    let per_domain = |sql: &str| -> Vec<i64> { count(sql).into_iter().map(|r| r[0]).collect() };
    let all = |n: i64| vec![n; SWEPT_DOMAINS];
    assert!(kills >= 8);
    let notes = |status: &str| {
        per_domain(&format!(
            "select count(n.id) from requests r left join notifications n
               on n.domain = r.domain and n.action = 'expire' and n.status = '{status}'
             where r.operation = 'create' group by r.domain"
        ))
    };
    assert_eq!(notes("reminder"), all(3), "reminders");
    for status in ["expired", "redemption", "pending_delete"] {
        assert_eq!(notes(status), all(1), "{status}");
    }
    let mails = per_domain(
        "select count(m.id) from requests r left join mail m
           on m.subject like '[regdesk] ' || r.domain || ' expires on %'
         where r.operation = 'create' group by r.domain",
    );
    assert_eq!(mails, all(3), "reminder mails");
    let deletes = per_domain(
        "select count(d.id) from requests r left join requests d
           on d.domain = r.domain and d.operation = 'delete' and d.state = 'finished'
         where r.operation = 'create' group by r.domain",
    );
    assert_eq!(deletes, all(1), "deletions");
    assert_eq!(per_domain("select count(*) from domains"), [0]);
}
