//! The crash test: runs the real binary under a mixed load (orders, operator
//! actions, notification polls and acks, ticks, clock jumps, the simulated
//! registry's slow, failing and limbo outcomes and rules), kills it with
//! SIGKILL at random moments, restarts it on the same file and checks the
//! invariants after every restart:
//!
//! - every write answered 2xx is there (a client-side log of acknowledged
//!   creates, actions, annotations and notification acks);
//! - nothing exists twice (invoice items, domain changes, notifications,
//!   idempotent creates) and nothing outlives a request that failed or went
//!   back to its owner;
//! - the notification FIFO never goes backwards and an acked id stays read;
//! - after the restarted server's first tick nothing due stays in
//!   `processing`/`internal`;
//! - the transition log replays to the stored states.
//!
//! `cargo test --test it crash::` runs a bounded number of kills;
//! `scripts/crash N [SEED]` runs N (`REGDESK_CRASH_KILLS`, `REGDESK_CRASH_SEED`).
//! The seed fixes every client-side choice and kill delay, so a failing run can
//! be repeated (thread timing still varies a little).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use crate::support::BIN;

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
    /// 2xx answers, all kinds.
    acknowledged: usize,
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
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--test-clock"])
        .args(["--tick-interval-ms", "20", "--workers", "8"])
        .arg("--db")
        .arg(db)
        .args(["--operator-token", OPERATOR])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start regdesk");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
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
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build();
    let mut req = agent
        .request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"));
    if let Some(k) = key {
        req = req.set("Idempotency-Key", k);
    }
    let result = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let text = resp.into_string().ok()?;
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Some((status, value))
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
}

/// Runs `kills` kill-and-restart cycles with `seed`; panics on the first
/// violated invariant, naming the seed.
fn run(kills: usize, seed: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("regdesk.db");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut proc = spawn(&db);
    let customers: Vec<String> = (0..2)
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
            v["token"].as_str().unwrap().to_string()
        })
        .collect();
    let log = Arc::new(Mutex::new(Log::default()));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    for cycle in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            base: proc.base.clone(),
            customers: customers.clone(),
            log: log.clone(),
            stop: stop.clone(),
            ids: ids.clone(),
        });
        let mut threads = Vec::new();
        for t in 0..3usize {
            let s = shared.clone();
            let mut trng = StdRng::seed_from_u64(seed ^ ((cycle as u64) << 8) ^ t as u64);
            threads.push(thread::spawn(move || {
                if t < 2 {
                    customer_load(&s, t, &mut trng)
                } else {
                    operator_load(&s, &mut trng)
                }
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
            check(&db, &log, now_ms)
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
    let figures = Figures {
        kills,
        acknowledged: log.lock().unwrap().acknowledged,
        requests: count("requests"),
        transitions: count("transitions"),
        notifications: count("notifications"),
        invoice_items: count("invoice_items"),
    };
    eprintln!(
        "crash: seed {seed}: {} kills survived, {} acknowledged writes, {} requests, \
         {} transitions, {} notifications, {} invoice items, 0 violations, {:.1}s",
        figures.kills,
        figures.acknowledged,
        figures.requests,
        figures.transitions,
        figures.notifications,
        figures.invoice_items,
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
        figures.requests > 0,
        "the load created nothing: {figures:?}"
    );
}

/// The checker is not vacuous: a lost write, a lost ack and a broken log are seen.
#[test]
fn the_crash_checker_sees_lost_writes() {
    let s = crate::support::Server::start();
    let (_, token) = s.customer("checked");
    let r = s.order(&token, "checked.com", "create", crate::support::owner());
    let id = r["id"].as_i64().unwrap();
    let db = s.dir.path().join("regdesk.db");
    assert!(check(&db, &Log::default(), 0).is_empty());
    let mut log = Log::default();
    log.created.push((0, id + 1000));
    log.transitions.insert(999_999, (id, "finished".into()));
    log.annotations.push((id, "never written".into()));
    let bad = check(&db, &log, 0);
    assert_eq!(bad.len(), 3, "{bad:#?}");
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
