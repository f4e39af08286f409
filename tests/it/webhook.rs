//! Fulfilment providers (manual, webhook) and notification webhooks, against
//! a real HTTP receiver on 127.0.0.1 in the test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver as Inbox};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{error_of, owner, refused_start, Server, BIN};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    headers: HashMap<String, String>,
    pub(crate) body: String,
}

impl Hit {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// How the receiver answers the n-th request (from 0).
type Script = dyn Fn(usize, &Hit) -> (u16, String) + Send + Sync;

/// A small HTTP server that records every request and answers by script.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) hits: Inbox<Hit>,
    server: Arc<tiny_http::Server>,
}

impl Receiver {
    pub(crate) fn start(
        script: impl Fn(usize, &Hit) -> (u16, String) + Send + Sync + 'static,
    ) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
        let (tx, hits) = mpsc::channel();
        let script: Box<Script> = Box::new(script);
        let count = AtomicUsize::new(0);
        let srv = server.clone();
        thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = String::new();
                req.as_reader().read_to_string(&mut body).ok();
                let headers = req
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.as_str().to_string(),
                        )
                    })
                    .collect();
                let hit = Hit { headers, body };
                tx.send(hit.clone()).ok();
                let (status, answer) = script(count.fetch_add(1, Ordering::SeqCst), &hit);
                let resp = tiny_http::Response::from_string(answer)
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                req.respond(resp).ok();
            }
        });
        Receiver { url, hits, server }
    }

    /// Every request received so far.
    pub(crate) fn received(&self) -> Vec<Hit> {
        self.hits.try_iter().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Checks `t=UNIX,v1=HEX` against HMAC-SHA256 of `t.body`, as a receiver
/// would, including that the timestamp is recent.
fn signed(secret: &str, hit: &Hit) -> bool {
    let header = hit.header("x-regdesk-signature");
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", hit.body).as_bytes());
    mac.verify_slice(&v1).is_ok()
}

const SECRET: &str = "s3cret-for-tests";

fn webhook_server(url: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--test-clock",
        "--provider",
        "webhook",
        "--webhook-url",
        url,
        "--webhook-secret",
        SECRET,
        "--webhook-retry-base-ms",
        "20",
    ];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

// ----- manual provider ----------------------------------------------------------

#[test]
fn manual_provider_waits_on_an_operator_who_resolves_or_sends_back() {
    let s = Server::start_with(&["--test-clock", "--provider", "manual"]);
    let (_, alice) = s.customer("alice");
    let done = id_of(&s.order(&alice, "done.com", "create", owner()));
    let bad = id_of(&s.order(&alice, "bad.com", "create", owner()));
    let back = id_of(&s.order(&alice, "back.com", "create", owner()));
    s.tick();
    for id in [done, bad, back] {
        let r = s.request(&s.operator, id);
        assert_eq!(
            (r["state"].as_str(), r["waiting_on"].as_str()),
            (Some("processing"), Some("operator")),
            "{r}"
        );
        assert!(r["allowed_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("resolve")));
    }
    // Waiting on an operator is not due work: ticking again changes nothing.
    s.advance("30d");
    assert_eq!(s.request(&alice, done)["state"], "processing");

    // Only operators resolve, and bad bodies change nothing.
    let a = s.action(&alice, done, "resolve", json!({"outcome": "finished"}));
    assert_eq!(a.status, 403, "{}", a.text);
    for (body, field) in [
        (json!({}), "outcome"),
        (json!({"outcome": "maybe"}), "outcome"),
        (json!({"outcome": "failed", "failure": "bogus"}), "failure"),
        (json!({"outcome": "finished", "extra": 1}), "extra"),
    ] {
        let a = s.action(&s.operator, done, "resolve", body.clone());
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(field.into())),
            "{body}: {}",
            a.text
        );
    }
    let a = s.action(&s.operator, back, "send-back", json!({}));
    assert_eq!(error_of(&a).2.as_deref(), Some("annotation"), "{}", a.text);
    assert_eq!(s.request(&alice, done)["state"], "processing");

    // Finished by hand: the domain exists and the owner is told.
    let r = s.action(
        &s.operator,
        done,
        "resolve",
        json!({"outcome": "finished", "note": "registered at the registry's portal"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["state"], "finished");
    assert_eq!(
        s.get("/api/v1/domains/done.com", &alice).json()["name"],
        "done.com"
    );

    // Failed by hand as invalid: no charge, an error notification, a mail to the owner.
    let r = s
        .action(
            &s.operator,
            bad,
            "resolve",
            json!({"outcome": "failed", "failure": "invalid"}),
        )
        .json();
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("invalid")),
        "{r}"
    );
    assert_eq!(r["invoice_items"], json!([]));
    assert_eq!(r["notifications"][0]["status"], "error");
    let mail = s
        .get(&format!("/api/v1/mail?request_id={bad}"), &s.operator)
        .json();
    assert_eq!(mail["items"][0]["recipient"], "alice@example.net", "{mail}");

    // Sent back with an annotation: incomplete, the owner sees why.
    let r = s
        .action(
            &s.operator,
            back,
            "send-back",
            json!({"annotation": "the registry wants a local contact"}),
        )
        .json();
    assert_eq!(r["state"], "incomplete", "{r}");
    assert_eq!(
        r["annotations"][0]["text"],
        "the registry wants a local contact"
    );
    assert_eq!(r["invoice_items"], json!([]));
    // Resubmitted, it waits on the operator again.
    let a = s.action(&alice, back, "submit", json!({}));
    assert_eq!(a.json()["state"], "queued", "{}", a.text);
    s.tick();
    assert_eq!(s.request(&alice, back)["waiting_on"], "operator");
}

// ----- webhook provider -----------------------------------------------------------

#[test]
fn webhook_provider_posts_signed_json_and_the_outcome_closes_the_request() {
    let rx = Receiver::start(|_, hit| {
        let domain = hit.json()["request"]["domain"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let answer = match domain.split('.').next().unwrap_or_default() {
            "ok" => json!({"outcome": "success"}),
            "refused" => json!({"outcome": "error", "message": "registry says no"}),
            "fixable" => {
                json!({"outcome": "user_error", "field": "contacts.owner.email", "message": "the owner e-mail bounces"})
            }
            "denied" => json!({"outcome": "denied"}),
            _ => json!({"outcome": "nonsense"}),
        };
        (200, answer.to_string())
    });
    let s = webhook_server(&rx.url, &[]);
    let (alice_id, alice) = s.customer("alice");
    let ok = id_of(&s.order(&alice, "ok.com", "create", owner()));
    let refused = id_of(&s.order(&alice, "refused.com", "create", owner()));
    let fixable = id_of(&s.order(&alice, "fixable.com", "create", owner()));
    let denied = id_of(&s.order(&alice, "denied.com", "create", owner()));
    s.tick();

    let hits = rx.received();
    assert_eq!(hits.len(), 4, "{hits:?}");
    let first = hits
        .iter()
        .find(|h| h.json()["request"]["id"] == ok)
        .unwrap();
    assert!(signed(SECRET, first), "bad signature: {first:?}");
    let mut forged = first.clone();
    forged.body = forged.body.replace("ok.com", "ko.com");
    assert!(!signed(SECRET, &forged), "a changed body must not verify");
    assert!(!signed("another secret", first));
    let p = first.json();
    assert_eq!(p["type"], "request.fulfil");
    assert_eq!(p["attempt"], 1);
    assert!(p["event_id"].as_str().unwrap().starts_with("evt_"), "{p}");
    assert_eq!(
        first.header("x-regdesk-event"),
        p["event_id"].as_str().unwrap()
    );
    assert_eq!(first.header("content-type"), "application/json");
    let req = &p["request"];
    assert_eq!(
        (req["domain"].as_str(), req["operation"].as_str()),
        (Some("ok.com"), Some("create"))
    );
    assert_eq!(req["account_id"], alice_id);
    assert_eq!(req["state"], "processing");
    assert_eq!(
        req["params"]["contacts"]["owner"]["email"],
        "ada@example.net"
    );

    let r = s.request(&alice, ok);
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(
        r["history"].as_array().unwrap().last().unwrap()["actor"],
        "webhook"
    );
    let r = s.request(&alice, refused);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("registry")),
        "{r}"
    );
    assert!(r["history"].to_string().contains("registry says no"), "{r}");
    let r = s.request(&alice, fixable);
    assert_eq!(r["state"], "incomplete", "{r}");
    assert_eq!(r["missing"], json!(["contacts.owner.email"]));
    assert_eq!(r["annotations"][0]["text"], "the owner e-mail bounces");
    let r = s.request(&alice, denied);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("declined")),
        "{r}"
    );
    // Nothing else is due: no second call.
    s.tick();
    assert!(rx.received().is_empty());
}

#[test]
fn webhook_provider_retries_with_backoff_until_the_receiver_answers() {
    // 503, then 500, then success.
    let rx = Receiver::start(|n, _| match n {
        0 => (503, "busy".into()),
        1 => (500, "oops".into()),
        _ => (200, json!({"outcome": "success"}).to_string()),
    });
    let s = webhook_server(&rx.url, &[]);
    let (_, alice) = s.customer("alice");
    let id = id_of(&s.order(&alice, "retry.com", "create", owner()));
    s.tick();
    let r = s.request(&s.operator, id);
    assert_eq!(
        (
            r["state"].as_str(),
            r["waiting_on"].as_str(),
            r["attempts"].as_i64()
        ),
        (Some("processing"), Some("internal"), Some(1)),
        "{r}"
    );
    assert!(r["last_error"].as_str().unwrap().contains("503"), "{r}");
    // The retry waits for its backoff: with the clock still, nothing is due.
    s.tick();
    assert_eq!(rx.received().len(), 1);
    s.advance("1s");
    let r = s.request(&s.operator, id);
    assert_eq!(r["attempts"], 2, "{r}");
    assert!(r["last_error"].as_str().unwrap().contains("500"), "{r}");
    s.advance("1s");
    let r = s.request(&s.operator, id);
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(
        r["invoice_items"].as_array().unwrap().len(),
        1,
        "charged once"
    );
    let hits = rx.received();
    assert_eq!(hits.len(), 2);
    // Every try of one round carries the same event id, and its number.
    assert_eq!(hits[0].json()["event_id"], hits[1].json()["event_id"]);
    assert_eq!(hits[1].json()["attempt"], 3);
}

#[test]
fn webhook_provider_sends_to_limbo_after_the_last_attempt_with_the_error() {
    let rx = Receiver::start(|_, _| (503, "down for maintenance".into()));
    let s = webhook_server(&rx.url, &["--webhook-max-attempts", "3"]);
    let (_, alice) = s.customer("alice");
    let id = id_of(&s.order(&alice, "never.com", "create", owner()));
    s.tick();
    s.advance("1s");
    s.advance("1s");
    let r = s.request(&s.operator, id);
    assert_eq!(r["state"], "limbo", "{r}");
    assert_eq!(r["attempts"], 3);
    let err = r["last_error"].as_str().unwrap();
    assert!(
        err.contains("503") && err.contains("down for maintenance"),
        "{err}"
    );
    assert_eq!(rx.received().len(), 3);
    let mail = s
        .get(&format!("/api/v1/mail?request_id={id}"), &s.operator)
        .json();
    assert!(
        mail["items"][0]["body"]
            .as_str()
            .unwrap()
            .contains("down for maintenance"),
        "{mail}"
    );
    // Nothing more is tried until an operator acts.
    s.advance("1h");
    assert!(rx.received().is_empty());
    // An operator retries: a new round, with a new event id.
    s.action(&s.operator, id, "retry", json!({}));
    s.tick();
    let again = rx.received();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].json()["attempt"], 1);

    // A receiver that is not there at all: connection refused, same path.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = webhook_server(
        &format!("http://127.0.0.1:{port}/gone"),
        &["--webhook-max-attempts", "2"],
    );
    let (_, bob) = s.customer("bob");
    let id = id_of(&s.order(&bob, "nobody.com", "create", owner()));
    s.tick();
    s.advance("1s");
    let r = s.request(&s.operator, id);
    assert_eq!(r["state"], "limbo", "{r}");
    assert!(
        r["last_error"]
            .as_str()
            .unwrap()
            .contains(&port.to_string()),
        "{r}"
    );
}

#[test]
fn webhook_provider_202_waits_for_the_registry_event() {
    let rx = Receiver::start(|_, _| (202, String::new()));
    let s = webhook_server(&rx.url, &[]);
    let (_, alice) = s.customer("alice");
    let a = id_of(&s.order(&alice, "later.com", "create", owner()));
    let b = id_of(&s.order(&alice, "later-no.com", "create", owner()));
    s.tick();
    for id in [a, b] {
        let r = s.request(&alice, id);
        assert_eq!(
            (r["state"].as_str(), r["waiting_on"].as_str()),
            (Some("processing"), Some("registry")),
            "{r}"
        );
        assert_eq!(r["task_status"], "PENDING_EXT");
    }
    assert_eq!(rx.received().len(), 2);
    // Waiting is not retried.
    s.advance("1d");
    assert!(rx.received().is_empty());
    // Only operators post events; a bad outcome changes nothing.
    let a_ = s.action(&alice, a, "events", json!({"outcome": "success"}));
    assert_eq!(a_.status, 403);
    let bad = s.action(&s.operator, a, "events", json!({"outcome": "great"}));
    assert_eq!(
        error_of(&bad),
        (422, "invalid".into(), Some("outcome".into()))
    );
    assert_eq!(s.request(&alice, a)["state"], "processing");
    let r = s.action(
        &s.operator,
        a,
        "events",
        json!({"outcome": "success", "message": "registered"}),
    );
    assert_eq!(r.json()["state"], "finished", "{}", r.text);
    let r = s.action(
        &s.operator,
        b,
        "events",
        json!({"outcome": "error", "message": "name reserved"}),
    );
    assert_eq!(
        (r.json()["state"].as_str(), r.json()["failure"].as_str()),
        (Some("failed"), Some("registry")),
        "{}",
        r.text
    );
}

#[test]
fn webhook_provider_settings_are_checked_at_start() {
    for (args, field) in [
        (
            vec!["--provider", "webhook", "--webhook-secret", "x"],
            "webhook_url",
        ),
        (
            vec![
                "--provider",
                "webhook",
                "--webhook-url",
                "http://127.0.0.1:9/",
            ],
            "webhook_secret",
        ),
        (
            vec![
                "--provider",
                "webhook",
                "--webhook-url",
                "https://example.net/",
                "--webhook-secret",
                "x",
            ],
            "webhook_url",
        ),
        (
            vec![
                "--provider",
                "webhook",
                "--webhook-url",
                "http://127.0.0.1:9/",
                "--webhook-secret",
                "x",
                "--webhook-max-attempts",
                "0",
            ],
            "webhook_max_attempts",
        ),
        (
            vec!["--delivery-max-attempts", "1000"],
            "delivery_max_attempts",
        ),
    ] {
        let stderr = refused_start(&args, &[]);
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
    // The environment works as well as the flags.
    let rx = Receiver::start(|_, _| (200, json!({"outcome": "success"}).to_string()));
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--test-clock", "--db"])
        .arg(dir.path().join("x.db"))
        .env("REGDESK_PROVIDER", "webhook")
        .env("REGDESK_WEBHOOK_URL", &rx.url)
        .env("REGDESK_WEBHOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(line.starts_with("listening on "), "{line}");
}

// ----- notification webhooks ------------------------------------------------------

pub(crate) fn put_hook(s: &Server, token: &str, body: Value) -> crate::support::Answer {
    s.call(
        "PUT",
        "/api/v1/webhook",
        Some(token),
        Some(&body.to_string()),
    )
}

pub(crate) fn deliveries(s: &Server, token: &str) -> Vec<Value> {
    let a = s.get("/api/v1/webhook-deliveries", token);
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["items"].as_array().unwrap().clone()
}

#[test]
fn notifications_are_pushed_signed_with_the_queue_ids_and_logged() {
    let rx = Receiver::start(|_, _| (200, "{}".into()));
    let s = Server::start_with(&["--test-clock", "--allow-private-webhooks"]);
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");

    // Bad endpoints are refused, naming the field, and nothing is set.
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": 5}), "url"),
        (json!({"url": "ftp://x/"}), "url"),
        (json!({"url": "https://example.net/hook"}), "url"),
        (json!({"url": "http://[/hook"}), "url"),
        (json!({"url": rx.url, "secret": "short"}), "secret"),
        (json!({"url": rx.url, "colour": "red"}), "colour"),
    ] {
        let a = put_hook(&s, &alice, body.clone());
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(field.into())),
            "{body}: {}",
            a.text
        );
    }
    assert_eq!(s.get("/api/v1/webhook", &alice).status, 404);
    let a = s.call("PUT", "/api/v1/webhook", Some(&alice), Some("{not json"));
    assert_eq!(a.status, 400);
    let a = s.call("PATCH", "/api/v1/webhook", Some(&alice), Some("{}"));
    assert_eq!(a.status, 405);
    assert_eq!(s.call("GET", "/api/v1/webhook", None, None).status, 401);
    let a = s.get("/api/v1/webhook-deliveries?state=lost", &alice);
    assert_eq!(error_of(&a).2.as_deref(), Some("state"));
    let a = s.get("/api/v1/webhook-deliveries?limit=0", &alice);
    assert_eq!(error_of(&a).2.as_deref(), Some("limit"));

    // The secret is generated and shown once.
    let a = put_hook(&s, &alice, json!({"url": rx.url}));
    assert_eq!(a.status, 200, "{}", a.text);
    let secret = a.json()["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 30,
        "{secret}"
    );
    let shown = s.get("/api/v1/webhook", &alice).json();
    assert_eq!(shown["url"], rx.url.as_str());
    assert!(shown.get("secret").is_none(), "{shown}");

    let id = id_of(&s.order(&alice, "pushed.com", "create", owner()));
    s.order(&bob, "quiet.com", "create", owner());
    s.tick();

    let hits = rx.received();
    assert_eq!(hits.len(), 1, "only alice has an endpoint: {hits:?}");
    let hit = &hits[0];
    assert!(signed(&secret, hit), "{hit:?}");
    // The FIFO stays the source of truth: the pushed notification is the
    // same, with the same id, and still unread there.
    let queued = s.get("/api/v1/notification", &alice).json();
    let pushed = hit.json();
    assert_eq!(pushed, queued);
    assert_eq!(pushed["request_id"], id);
    assert_eq!(
        (
            pushed["type"].as_str(),
            pushed["action"].as_str(),
            pushed["status"].as_str()
        ),
        (Some("domain"), Some("create"), Some("success"))
    );
    assert_eq!(
        hit.header("x-regdesk-notification"),
        pushed["id"].to_string()
    );

    let log = deliveries(&s, &alice);
    assert_eq!(log.len(), 1, "{log:?}");
    let d = &log[0];
    assert_eq!(d["notification_id"], pushed["id"]);
    assert_eq!(hit.header("x-regdesk-delivery"), d["id"].to_string());
    assert_eq!(
        (
            d["state"].as_str(),
            d["attempts"].as_i64(),
            d["last_status"].as_i64()
        ),
        (Some("delivered"), Some(1), Some(200)),
        "{d}"
    );
    assert_eq!(d["url"], rx.url.as_str());
    assert!(
        d["delivered_at"].is_string() && d["next_attempt_at"].is_null(),
        "{d}"
    );
    // Each account sees its own log only.
    assert!(deliveries(&s, &bob).is_empty());
    // Nothing is sent twice.
    s.tick();
    assert!(rx.received().is_empty());

    // A secret of one's own; removing the endpoint stops the pushes.
    let a = put_hook(
        &s,
        &alice,
        json!({"url": rx.url, "secret": "my-own-secret-0123456789"}),
    );
    assert!(a.json().get("secret").is_none(), "{}", a.text);
    s.order(&alice, "second.com", "create", owner());
    s.tick();
    let hits = rx.received();
    assert!(signed("my-own-secret-0123456789", &hits[0]));
    assert_eq!(
        s.call("DELETE", "/api/v1/webhook", Some(&alice), None)
            .status,
        204
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/webhook", Some(&alice), None)
            .status,
        204
    );
    s.order(&alice, "third.com", "create", owner());
    s.tick();
    assert!(rx.received().is_empty());
    assert_eq!(deliveries(&s, &alice).len(), 2);
}

#[test]
fn notification_deliveries_are_retried_then_marked_failed() {
    // Alice's receiver fails twice then answers; bob's always fails.
    let rx = Receiver::start(move |n, hit| {
        if hit.json()["domain"] == "bob.com" {
            (500, "broken".into())
        } else {
            match n {
                0 | 1 => (503, "not now".into()),
                _ => (204, String::new()),
            }
        }
    });
    let s = Server::start_with(&[
        "--test-clock",
        "--allow-private-webhooks",
        "--webhook-retry-base-ms",
        "20",
        "--delivery-max-attempts",
        "3",
    ]);
    let (_, alice) = s.customer("alice");
    assert_eq!(put_hook(&s, &alice, json!({"url": rx.url})).status, 200);
    s.order(&alice, "alice.com", "create", owner());
    s.tick();
    let d = &deliveries(&s, &alice)[0];
    assert_eq!(
        (
            d["state"].as_str(),
            d["attempts"].as_i64(),
            d["last_status"].as_i64()
        ),
        (Some("pending"), Some(1), Some(503)),
        "{d}"
    );
    // The status, never the receiver's words.
    assert_eq!(d["last_error"], "HTTP 503", "{d}");
    assert!(d["next_attempt_at"].is_string());
    s.advance("1s");
    assert_eq!(deliveries(&s, &alice)[0]["attempts"], 2);
    s.advance("1s");
    let d = &deliveries(&s, &alice)[0];
    assert_eq!(
        (
            d["state"].as_str(),
            d["attempts"].as_i64(),
            d["last_status"].as_i64()
        ),
        (Some("delivered"), Some(3), Some(204)),
        "{d}"
    );
    let ids: Vec<Value> = rx
        .received()
        .iter()
        .map(|h| h.json()["id"].clone())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same notification each time: {ids:?}"
    );

    let (_, bob) = s.customer("bob");
    assert_eq!(put_hook(&s, &bob, json!({"url": rx.url})).status, 200);
    s.order(&bob, "bob.com", "create", owner());
    s.tick();
    s.advance("1s");
    s.advance("1s");
    s.advance("1h");
    let d = &deliveries(&s, &bob)[0];
    assert_eq!(
        (
            d["state"].as_str(),
            d["attempts"].as_i64(),
            d["last_status"].as_i64()
        ),
        (Some("failed"), Some(3), Some(500)),
        "{d}"
    );
    assert_eq!(rx.received().len(), 3);
    // The queue still holds the notification the push could not deliver.
    assert_eq!(
        s.get("/api/v1/notification", &bob).json()["domain"],
        "bob.com"
    );
}

#[test]
fn a_delivery_cut_short_by_a_crash_is_sent_after_restart() {
    // The first push is held until the server has been killed.
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    let rx = Receiver::start(move |n, _| {
        if n == 0 {
            held.lock().unwrap().recv().ok();
        }
        (200, "{}".into())
    });
    let mut s = Server::start_with(&["--test-clock", "--allow-private-webhooks"]);
    let (_, alice) = s.customer("alice");
    assert_eq!(put_hook(&s, &alice, json!({"url": rx.url})).status, 200);
    s.order(&alice, "crash.com", "create", owner());
    let tick_url = s.url("/api/v1/tick");
    let token = s.operator.clone();
    // The tick that fulfils the order pushes its notification and hangs on it.
    let ticking = thread::spawn(move || {
        ureq::post(&tick_url)
            .set("Authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(60))
            .call()
            .is_ok()
    });
    let first = rx
        .hits
        .recv_timeout(Duration::from_secs(30))
        .expect("the push");
    // kill -9 while the push is in flight, then let the receiver go on.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    release.send(()).ok();
    let s = s.restart();
    assert!(!ticking.join().unwrap(), "the tick cannot have answered");

    // The restarted sender (or this tick) sends it again, once.
    s.tick();
    let again = rx.received();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        again[0].json()["id"],
        first.json()["id"],
        "the same notification id"
    );
    assert_eq!(
        again[0].header("x-regdesk-delivery"),
        first.header("x-regdesk-delivery")
    );
    let log = deliveries(&s, &alice);
    assert_eq!(
        (log.len(), log[0]["state"].as_str()),
        (1, Some("delivered")),
        "{log:?}"
    );
    // One notification in the queue: nothing was duplicated.
    let all = s.get("/api/v1/notifications", &alice).json();
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
}

#[test]
fn writes_go_on_while_the_webhook_provider_waits_for_its_receiver() {
    // The receiver holds its first answer until the test lets it go.
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    let rx = Receiver::start(move |n, _| {
        if n == 0 {
            held.lock().unwrap().recv().ok();
        }
        (200, json!({"outcome": "success"}).to_string())
    });
    let s = webhook_server(&rx.url, &[]);
    let (_, alice) = s.customer("alice");
    let slow = id_of(&s.order(&alice, "slow-receiver.com", "create", owner()));
    let tick_url = s.url("/api/v1/tick");
    let token = s.operator.clone();
    let ticking = thread::spawn(move || {
        ureq::post(&tick_url)
            .set("Authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(60))
            .call()
            .map(|r| r.status())
            .ok()
    });
    rx.hits
        .recv_timeout(Duration::from_secs(30))
        .expect("the call");
    // The call is in flight: writes and reads are answered meanwhile.
    let other = id_of(&s.order(&alice, "meanwhile.com", "create", owner()));
    let r = s.action(&alice, other, "annotate", json!({"text": "still writable"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.request(&alice, slow)["state"], "processing");
    release.send(()).ok();
    assert_eq!(ticking.join().unwrap(), Some(200));
    assert_eq!(s.request(&alice, slow)["state"], "finished");
    s.tick();
    assert_eq!(s.request(&alice, other)["state"], "finished");
}
