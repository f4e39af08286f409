//! What leaves the server for a customer's webhook: never an address
//! inside (loopback, private, link-local and the like) unless the operator
//! allows it, never the receiver's words shown back, and never one slow
//! receiver holding up another's deliveries.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{self, Receiver as Inbox};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{addr, error_of, owner, Server};
use crate::webhook::{deliveries, put_hook, Receiver};

const ALLOW: &str = "--allow-private-webhooks";

/// Every form of an inside address a customer might give.
fn inside_urls(s: &Server) -> Vec<String> {
    let mut urls: Vec<String> = [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::1]/hook",
        "http://[::]/hook",
        "http://0.0.0.0/hook",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://198.18.0.1/hook",
        "http://192.0.2.1/hook",
        "http://224.0.0.1/hook",
        "http://255.255.255.255/hook",
        "http://[fe80::1]/hook",
        "http://[ff02::1]/hook",
        "http://[2001:db8::1]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[2002:7f00:1::1]/hook",
        "http://localhost:9/hook",
    ]
    .map(String::from)
    .to_vec();
    // The server itself.
    urls.push(format!("http://{}/api/v1/admin/reset", addr(s)));
    urls
}

#[test]
fn every_inside_address_is_refused_naming_the_url_and_nothing_is_set() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    for url in inside_urls(&s) {
        let a = put_hook(&s, &alice, json!({ "url": url }));
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some("url".into())),
            "{url}: {}",
            a.text
        );
        assert_eq!(s.get("/api/v1/webhook", &alice).status, 404, "{url}");
    }
    // User names and passwords have no place in a webhook URL.
    for url in [
        "http://user:pass@hooks.example.net/in",
        "http://user@hooks.example.net/in",
    ] {
        let a = put_hook(&s, &alice, json!({ "url": url }));
        assert_eq!(error_of(&a).2.as_deref(), Some("url"), "{url}: {}", a.text);
    }
    assert_eq!(s.get("/api/v1/webhook", &alice).status, 404);
    // A public address is taken.
    let a = put_hook(&s, &alice, json!({"url": "http://192.0.3.1:8080/in"}));
    assert_eq!(a.status, 200, "{}", a.text);
}

#[test]
fn the_operator_may_allow_inside_addresses_but_not_user_info() {
    let s = Server::start_with(&["--test-clock", ALLOW]);
    let (_, alice) = s.customer("alice");
    for url in inside_urls(&s) {
        let a = put_hook(&s, &alice, json!({ "url": url }));
        assert_eq!(a.status, 200, "{url}: {}", a.text);
    }
    let a = put_hook(
        &s,
        &alice,
        json!({"url": "http://user:pass@127.0.0.1:9/in"}),
    );
    assert_eq!(error_of(&a).2.as_deref(), Some("url"), "{}", a.text);
    assert_eq!(
        s.get("/api/v1/webhook", &alice).json()["url"],
        format!("http://{}/api/v1/admin/reset", addr(&s))
    );
}

#[test]
fn a_customer_sees_the_status_or_a_short_reason_never_the_receivers_words() {
    let rx = Receiver::start(|_, _| (500, "stack trace: db password hunter2".into()));
    let s = Server::start_with(&["--test-clock", ALLOW, "--delivery-max-attempts", "1"]);
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    assert_eq!(put_hook(&s, &alice, json!({"url": rx.url})).status, 200);
    // Nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = format!("http://127.0.0.1:{port}/gone");
    assert_eq!(put_hook(&s, &bob, json!({ "url": gone })).status, 200);
    s.order(&alice, "alice.com", "create", owner());
    s.order(&bob, "bob.com", "create", owner());
    s.tick();
    assert_eq!(rx.received().len(), 1);
    let d = &deliveries(&s, &alice)[0];
    assert_eq!(
        (d["state"].as_str(), d["last_status"].as_i64()),
        (Some("failed"), Some(500)),
        "{d}"
    );
    assert_eq!(d["last_error"], "HTTP 500", "{d}");
    let d = &deliveries(&s, &bob)[0];
    assert_eq!(d["last_error"], "connection refused", "{d}");
    assert!(d["last_status"].is_null(), "{d}");
}

#[test]
fn an_endpoints_notifications_go_in_order_and_a_failure_delays_only_its_own() {
    let slow = Receiver::start(|n, _| match n {
        0 => (503, String::new()),
        _ => (200, String::new()),
    });
    let fine = Receiver::start(|_, _| (200, String::new()));
    let s = Server::start_with(&["--test-clock", ALLOW, "--webhook-retry-base-ms", "20"]);
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    assert_eq!(put_hook(&s, &alice, json!({"url": slow.url})).status, 200);
    assert_eq!(put_hook(&s, &bob, json!({"url": fine.url})).status, 200);
    s.order(&alice, "first.com", "create", owner());
    s.order(&alice, "second.com", "create", owner());
    s.order(&bob, "bob-one.com", "create", owner());
    s.order(&bob, "bob-two.com", "create", owner());
    s.tick();
    let domains = |hits: Vec<crate::webhook::Hit>| -> Vec<String> {
        hits.iter()
            .map(|h| h.json()["domain"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // Alice's first failed: her second waits behind it; bob's both went.
    assert_eq!(domains(slow.received()), ["first.com"]);
    assert_eq!(domains(fine.received()), ["bob-one.com", "bob-two.com"]);
    let states: Vec<Value> = deliveries(&s, &alice)
        .iter()
        .map(|d| json!([d["state"], d["attempts"]]))
        .collect();
    assert_eq!(states, [json!(["pending", 1]), json!(["pending", 0])]);
    s.advance("1s");
    assert_eq!(domains(slow.received()), ["first.com", "second.com"]);
    assert!(deliveries(&s, &alice)
        .iter()
        .all(|d| d["state"] == "delivered"));
}

/// A receiver that reads each request, then answers one byte at a time,
/// `every` apart, and never finishes. Tells when a request has come.
fn trickler(every: Duration) -> (String, Inbox<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, came) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let tx = tx.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if stream.read(&mut buf).unwrap_or(0) == 0 {
                    return;
                }
                tx.send(()).ok();
                let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
                for byte in head.iter().chain([b'x'; 100_000].iter()) {
                    if stream.write_all(&[*byte]).is_err() {
                        return;
                    }
                    thread::sleep(every);
                }
            });
        }
    });
    (url, came)
}

/// Waits (real clock) until `done` holds of the account's first delivery;
/// returns it and how long that took.
fn first_delivery_when(
    s: &Server,
    token: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let t = Instant::now();
    loop {
        let log = deliveries(s, token);
        if let Some(d) = log.first().filter(|d| done(d)) {
            return (d.clone(), t.elapsed());
        }
        assert!(t.elapsed() < limit, "not within {limit:?}: {log:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_trickling_receiver_holds_up_no_other_customer() {
    let (stuck_url, came) = trickler(Duration::from_secs(3));
    let fine = Receiver::start(|_, _| (200, String::new()));
    let s = Server::start_with(&[ALLOW, "--webhook-timeout-ms", "60000"]);
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    assert_eq!(
        put_hook(&s, &alice, json!({ "url": stuck_url })).status,
        200
    );
    assert_eq!(put_hook(&s, &bob, json!({"url": fine.url})).status, 200);
    s.order(&alice, "stuck.com", "create", owner());
    came.recv_timeout(Duration::from_secs(10))
        .expect("alice's delivery reached her receiver");
    // Alice's receiver now holds her delivery; bob's go on regardless.
    s.order(&bob, "quick.com", "create", owner());
    let (d, took) = first_delivery_when(&s, &bob, Duration::from_secs(10), |d| {
        d["state"] == "delivered"
    });
    assert!(took < Duration::from_secs(2), "{took:?}: {d}");
    let alices = &deliveries(&s, &alice)[0];
    assert_eq!(
        (alices["state"].as_str(), alices["attempts"].as_i64()),
        (Some("pending"), Some(0)),
        "{alices}"
    );
}

#[test]
fn the_timeout_bounds_the_whole_delivery_not_each_read() {
    // Each byte comes well within the timeout; the answer never ends.
    let (url, came) = trickler(Duration::from_millis(200));
    let s = Server::start_with(&[ALLOW, "--webhook-timeout-ms", "1000"]);
    let (_, alice) = s.customer("alice");
    assert_eq!(put_hook(&s, &alice, json!({ "url": url })).status, 200);
    s.order(&alice, "slow.com", "create", owner());
    came.recv_timeout(Duration::from_secs(10))
        .expect("the delivery reached the receiver");
    let (d, took) = first_delivery_when(&s, &alice, Duration::from_secs(10), |d| {
        d["attempts"].as_i64() >= Some(1)
    });
    assert_eq!(d["last_error"], "timed out", "{d}");
    assert!(took < Duration::from_secs(3), "{took:?}: {d}");
}

/// The rule holds at every send, not only when the endpoint is set: an
/// endpoint set while the server allowed inside addresses is not reached
/// once it no longer does.
#[test]
fn an_endpoint_set_while_inside_addresses_were_allowed_is_refused_at_send() {
    let rx = Receiver::start(|_, _| (200, String::new()));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    let alice = {
        let s = Server::start_with_db(&db, &["--test-clock", ALLOW]);
        let (_, alice) = s.customer("alice");
        assert_eq!(put_hook(&s, &alice, json!({"url": rx.url})).status, 200);
        alice
    };
    let s = Server::start_with_db(&db, &["--test-clock", "--delivery-max-attempts", "1"]);
    s.order(&alice, "alice.com", "create", owner());
    s.tick();
    assert!(rx.received().is_empty(), "the inside receiver was reached");
    let d = &deliveries(&s, &alice)[0];
    assert_eq!(d["last_error"], "address not allowed", "{d}");
}
