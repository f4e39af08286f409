//! The OpenSRS-style XCP face over HTTP: signed envelopes, order events
//! polled and acknowledged, SW_REGISTER, GET_ORDER_INFO,
//! CANCEL_PENDING_ORDERS, and every refusal as an XCP reply with HTTP 200.

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use regdesk::face::xcp_xml::{parse_envelope, write_request, XcpValue};
use serde_json::json;

use crate::support::{owner, xcp_signature, Answer, Reseller, Server};

/// The seed's example reply (seed 003), byte for byte.
const SEED_POLL_REPLY: &str = include_str!("../seeds/xcp_poll_reply.xml");

/// An XCP reply: the top `dt_assoc` of its data block.
struct Reply {
    top: XcpValue,
    text: String,
}

impl Reply {
    fn ok(&self) -> bool {
        self.top.get_str("is_success") == Some("1")
    }
    fn code(&self) -> &str {
        self.top.get_str("response_code").unwrap_or_default()
    }
    fn message(&self) -> &str {
        self.top.get_str("response_text").unwrap_or_default()
    }
    fn attr(&self, key: &str) -> &XcpValue {
        self.top
            .get("attributes")
            .and_then(|a| a.get(key))
            .unwrap_or_else(|| panic!("no attribute {key:?} in {}", self.text))
    }
    fn attr_str(&self, key: &str) -> &str {
        self.attr(key).as_str().unwrap_or_default()
    }
    /// A refusal: HTTP was 200 (checked in `post_raw`), is_success 0, this
    /// code, and a message naming `needle`.
    fn refused(&self, code: &str, needle: &str) {
        assert!(!self.ok(), "expected a refusal: {}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert!(
            self.message().contains(needle),
            "{:?} should name {needle:?}",
            self.message()
        );
    }
}

fn post_raw(s: &Server, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let headers = [headers, &[("Content-Type", "text/xml")]].concat();
    let a: Answer = s.call_with("POST", path, None, Some(body), &headers);
    assert_eq!(a.status, 200, "every XCP answer is HTTP 200: {}", a.text);
    assert!(a.content_type.contains("xml"), "{}", a.content_type);
    let top = parse_envelope(a.text.as_bytes())
        .unwrap_or_else(|e| panic!("reply is not an XCP envelope ({e}): {}", a.text));
    Reply { top, text: a.text }
}

/// Posts `body` signed by `who` to `/`.
fn signed(s: &Server, who: &Reseller, body: &str) -> Reply {
    let sig = xcp_signature(body.as_bytes(), &who.key);
    post_raw(
        s,
        "/",
        body,
        &[("X-Username", &who.name), ("X-Signature", &sig)],
    )
}

fn xcp(s: &Server, who: &Reseller, action: &str, object: &str, attrs: XcpValue) -> Reply {
    signed(s, who, &write_request(action, object, &attrs))
}

fn assoc(pairs: Vec<(&str, XcpValue)>) -> XcpValue {
    XcpValue::assoc(pairs)
}

fn register_attrs(domain: &str) -> XcpValue {
    assoc(vec![
        ("domain", domain.into()),
        ("period", "2".into()),
        ("reg_type", "new".into()),
        (
            "contact_set",
            assoc(vec![(
                "owner",
                assoc(vec![
                    ("first_name", "Ada".into()),
                    ("last_name", "Lovelace".into()),
                    ("email", "ada@example.net".into()),
                    ("phone", "+1.4165550123".into()),
                ]),
            )]),
        ),
        (
            "nameserver_list",
            XcpValue::array([
                assoc(vec![
                    ("name", "ns2.example.net".into()),
                    ("sortorder", "2".into()),
                ]),
                assoc(vec![
                    ("name", "ns1.example.net".into()),
                    ("sortorder", "1".into()),
                ]),
            ]),
        ),
    ])
}

/// SW_REGISTER; returns the order id.
fn register(s: &Server, who: &Reseller, attrs: XcpValue) -> i64 {
    let r = xcp(s, who, "SW_REGISTER", "DOMAIN", attrs);
    assert!(r.ok(), "{}", r.text);
    r.attr_str("id").parse().expect("order id")
}

fn poll(s: &Server, who: &Reseller, limit: &str) -> Reply {
    let r = xcp(
        s,
        who,
        "POLL",
        "EVENT",
        assoc(vec![("limit", limit.into())]),
    );
    assert!(r.ok(), "{}", r.text);
    r
}

/// (order_id, domain, order_status, reg_type, event_id) of each polled event.
fn events(r: &Reply) -> Vec<(String, String, String, String, String)> {
    r.attr("events")
        .items()
        .expect("events is a dt_array")
        .iter()
        .map(|(_, e)| {
            let data = e.get("object_data").expect("object_data");
            assert_eq!(e.get_str("object"), Some("ORDER"));
            assert_eq!(e.get_str("event"), Some("STATUS_CHANGE"));
            let date = e.get_str("event_date").unwrap();
            assert!(
                date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
                "{date}"
            );
            let id = e.get_str("event_id").unwrap().to_string();
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
            let f = |k: &str| data.get_str(k).unwrap_or_default().to_string();
            (
                f("order_id"),
                f("domain_name"),
                f("order_status"),
                f("order_reg_type"),
                id,
            )
        })
        .collect()
}

fn statuses(r: &Reply) -> Vec<String> {
    events(r).into_iter().map(|e| e.2).collect()
}

fn ack(s: &Server, who: &Reseller, event_id: &str) -> Reply {
    xcp(
        s,
        who,
        "ACK",
        "EVENT",
        assoc(vec![("event_id", event_id.into())]),
    )
}

fn count_requests(s: &Server, who: &Reseller) -> usize {
    let a = s.get("/api/v1/requests", &who.token);
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["items"].as_array().unwrap().len()
}

#[test]
fn register_then_poll_pending_waiting_completed_and_ack_each() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let id = register(&s, &alice, register_attrs("example.com"));

    // The XCP form became the native order form.
    let r = s.request(&alice.token, id);
    assert_eq!(r["operation"], "create");
    assert_eq!(r["state"], "queued");
    assert_eq!(r["params"]["contacts"]["owner"]["name"], "Ada Lovelace");
    assert_eq!(r["params"]["contacts"]["owner"]["email"], "ada@example.net");
    assert_eq!(r["params"]["contacts"]["owner"]["phone"], "+1.4165550123");
    assert_eq!(
        r["params"]["nameservers"],
        json!(["ns1.example.net", "ns2.example.net"])
    );
    assert_eq!(r["params"]["period"], 2);

    s.tick();
    assert_eq!(s.request(&alice.token, id)["state"], "finished");

    let all = poll(&s, &alice, "10");
    assert_eq!(all.attr_str("total"), "3");
    let evs = events(&all);
    assert_eq!(statuses(&all), ["pending", "waiting", "completed"]);
    for e in &evs {
        assert_eq!(
            (e.0.as_str(), e.1.as_str(), e.3.as_str()),
            (id.to_string().as_str(), "example.com", "new")
        );
    }

    // Default limit 1, oldest first; polling does not consume.
    for (i, expected) in evs.iter().enumerate() {
        let one = poll(&s, &alice, "");
        assert_eq!(one.attr_str("total"), (3 - i).to_string());
        let got = events(&one);
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0], expected);
        let a = ack(&s, &alice, &expected.4);
        assert!(a.ok(), "{}", a.text);
        let again = ack(&s, &alice, &expected.4);
        assert!(again.ok(), "repeating an ACK is harmless: {}", again.text);
    }
    let empty = poll(&s, &alice, "5");
    assert_eq!(empty.attr_str("total"), "0");
    assert!(events(&empty).is_empty());
}

#[test]
fn a_refused_registration_ends_declined() {
    let s = Server::start();
    let alice = s.reseller("alice");
    register(&s, &alice, register_attrs("broken-fail.com"));
    s.tick();
    let r = poll(&s, &alice, "10");
    assert_eq!(statuses(&r), ["pending", "waiting", "declined"]);
}

#[test]
fn an_aborted_order_ends_canceled_and_premium_is_its_reg_type() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let mut attrs = register_attrs("gold.com");
    if let XcpValue::Assoc(items) = &mut attrs {
        items.retain(|(k, _)| k != "reg_type");
        items.push(("reg_type".into(), "PREMIUM".into()));
    }
    let id = register(&s, &alice, attrs);
    // Premium orders wait for an operator's authorisation: still pending.
    assert_eq!(s.request(&alice.token, id)["state"], "review");
    let a = s.action(&alice.token, id, "abort", json!({}));
    assert_eq!(a.status, 200, "{}", a.text);
    let r = poll(&s, &alice, "10");
    let evs = events(&r);
    assert_eq!(statuses(&r), ["pending", "canceled"]);
    assert!(evs.iter().all(|e| e.3 == "premium"), "{evs:?}");
}

#[test]
fn native_orders_emit_events_with_their_reg_type_and_other_work_none() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let mut p = owner();
    p["phase"] = json!("sunrise");
    for (domain, op, params) in [
        ("sun.com", "create", p),
        ("moved.com", "transfer", json!({"auth_code": "x"})),
        ("kept.com", "renew", json!({})),
        ("quiet.com", "privacy", json!({})),
        ("changed.com", "update", json!({})),
    ] {
        let a = s.post(
            "/api/v1/requests",
            &alice.token,
            json!({"domain": domain, "operation": op, "params": params}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let r = poll(&s, &alice, "100");
    let got: Vec<(String, String, String)> =
        events(&r).into_iter().map(|e| (e.1, e.2, e.3)).collect();
    let want = [
        ("sun.com", "pending", "sunrise"),
        ("moved.com", "pending", "transfer"),
        ("kept.com", "pending", "renewal"),
        ("quiet.com", "pending", "whois_privacy"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(r.attr_str("total"), "4");
}

#[test]
fn signature_failures_are_refused_and_do_nothing() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let bob = s.reseller("bob");
    let body = write_request("SW_REGISTER", "DOMAIN", &register_attrs("taken.com"));
    let good = xcp_signature(body.as_bytes(), &alice.key);
    let wrong = xcp_signature(format!("{body} ").as_bytes(), &alice.key);
    let bobs = xcp_signature(body.as_bytes(), &bob.key);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no headers", vec![]),
        ("no signature", vec![("X-Username", "alice")]),
        ("no user", vec![("X-Signature", &good)]),
        (
            "wrong signature",
            vec![("X-Username", "alice"), ("X-Signature", &wrong)],
        ),
        (
            "unknown user",
            vec![("X-Username", "mallory"), ("X-Signature", &good)],
        ),
        (
            "another account's key",
            vec![("X-Username", "alice"), ("X-Signature", &bobs)],
        ),
        (
            "empty signature",
            vec![("X-Username", "alice"), ("X-Signature", "")],
        ),
    ];
    for (what, headers) in cases {
        let r = post_raw(&s, "/", &body, &headers);
        assert!(!r.ok(), "{what}: {}", r.text);
        assert_eq!(r.code(), "415", "{what}: {}", r.text);
        assert!(r.message().contains("Authentication failed"), "{what}");
        assert!(r.top.get("attributes").is_none(), "{what}");
    }
    assert_eq!(count_requests(&s, &alice), 0);
    assert_eq!(count_requests(&s, &bob), 0);

    // The same body, rightly signed, works on both paths; the signature's
    // hex may be upper-case.
    let r = post_raw(
        &s,
        "/opensrs",
        &body,
        &[
            ("X-Username", "alice"),
            ("X-Signature", &good.to_uppercase()),
        ],
    );
    assert!(r.ok(), "{}", r.text);
    assert_eq!(count_requests(&s, &alice), 1);
}

/// A body over the limit is refused before any handler runs, and its
/// reply is still XCP on every path XCP is served on, with its
/// `transaction_id` time from the server's clock (here a test clock moved
/// a year on), as every other reply.
#[test]
fn a_refusal_before_reading_the_body_tells_the_servers_time() {
    let s = Server::start();
    let now = s.advance("366d")["now"]
        .as_str()
        .expect("the clock's time")
        .to_string();
    let body = format!("<OPS_envelope>{}</OPS_envelope>", " ".repeat(1024 * 1024));
    // Also on a path with a trailing slash, which XCP is served on too.
    for path in ["/", "/opensrs/"] {
        let a = s.call_with("POST", path, None, Some(&body), &[]);
        assert_eq!(a.status, 413, "{path}: {}", a.text);
        let top = parse_envelope(a.text.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: not an XCP envelope ({e}): {}", a.text));
        let id = top.get_str("transaction_id").expect("a transaction id");
        // `2027-12-03 16:36:27 31866 1` against `2027-12-03T16:36:27Z`: the
        // clock's day, a year from the real one.
        assert_eq!(id.get(..10), now.get(..10), "{path}: {id} against {now}");
    }
}

/// A request refused before its handler runs for its target (a query
/// string that is not UTF-8 once decoded) is still an XCP reply with HTTP
/// 200, as every XCP refusal but a body over the limit.
#[test]
fn a_bad_target_is_an_xcp_refusal_with_http_200() {
    let s = Server::start();
    let body = "<OPS_envelope></OPS_envelope>";
    let r = post_raw(&s, "/?%FF", body, &[]);
    assert!(!r.ok(), "{}", r.text);
    assert_eq!(r.code(), "400", "{}", r.text);
    assert!(r.message().contains("query"), "{}", r.text);
}

#[test]
fn malformed_envelopes_are_xcp_refusals() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<OPS_envelope><body><data_block><dt_assoc><item key="action">&lol3;</item></dt_assoc></data_block></body></OPS_envelope>"#;
    let no_action = r#"<?xml version='1.0' encoding='UTF-8' standalone='no' ?>
<!DOCTYPE OPS_envelope SYSTEM 'ops.dtd'>
<OPS_envelope><header><version>0.9</version></header><body><data_block><dt_assoc>
<item key="protocol">XCP</item><item key="object">EVENT</item>
</dt_assoc></data_block></body></OPS_envelope>"#;
    let cases = [
        ("garbage", "this is not XML", "400", "malformed"),
        ("empty", "", "400", "malformed"),
        ("truncated", "<OPS_envelope><body>", "400", "malformed"),
        ("billion laughs", billion_laughs, "400", "DOCTYPE"),
        ("missing action", no_action, "400", "action"),
    ];
    for (what, body, code, needle) in cases {
        let r = signed(&s, &alice, body);
        assert!(!r.ok(), "{what}: {}", r.text);
        assert_eq!(r.code(), code, "{what}: {}", r.text);
        assert!(r.message().contains(needle), "{what}: {}", r.message());
    }

    let r = xcp(&s, &alice, "FROB", "EVENT", assoc(vec![]));
    r.refused("465", "FROB");
    let r = xcp(&s, &alice, "POLL", "SPACESHIP", assoc(vec![]));
    r.refused("465", "SPACESHIP");
    // Wrong types: a container where a value belongs, and the reverse.
    let r = xcp(
        &s,
        &alice,
        "POLL",
        "EVENT",
        assoc(vec![("limit", assoc(vec![("a", "1".into())]))]),
    );
    r.refused("400", "limit");
    let r = xcp(
        &s,
        &alice,
        "SW_REGISTER",
        "DOMAIN",
        assoc(vec![
            ("domain", "typed.com".into()),
            ("contact_set", "owner".into()),
        ]),
    );
    r.refused("400", "contact_set");
    // Missing and invalid attributes name the attribute and change nothing.
    let r = xcp(&s, &alice, "SW_REGISTER", "DOMAIN", assoc(vec![]));
    r.refused("400", "domain");
    let mut no_email = register_attrs("mail.com");
    if let XcpValue::Assoc(items) = &mut no_email {
        items.retain(|(k, _)| k != "contact_set");
        items.push((
            "contact_set".into(),
            assoc(vec![("owner", assoc(vec![("first_name", "Ada".into())]))]),
        ));
    }
    let r = xcp(&s, &alice, "SW_REGISTER", "DOMAIN", no_email);
    r.refused("400", "contact_set.owner.email");
    let mut bad_period = register_attrs("long.com");
    if let XcpValue::Assoc(items) = &mut bad_period {
        items.retain(|(k, _)| k != "period");
        items.push(("period".into(), "99".into()));
    }
    let r = xcp(&s, &alice, "SW_REGISTER", "DOMAIN", bad_period);
    r.refused("400", "period");
    let r = xcp(
        &s,
        &alice,
        "SW_REGISTER",
        "DOMAIN",
        assoc(vec![("domain", "not a domain".into())]),
    );
    r.refused("400", "domain");
    assert_eq!(count_requests(&s, &alice), 0);
    assert_eq!(poll(&s, &alice, "").attr_str("total"), "0");

    // Names are case-insensitive and either quote style is fine.
    let lower = r#"<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<!DOCTYPE OPS_envelope SYSTEM "ops.dtd">
<OPS_envelope><header><version>0.9</version></header><body><data_block><dt_assoc>
<item key="protocol">XCP</item><item key="action">poll</item><item key="object">event</item>
<item key="attributes"><dt_assoc><item key="limit">3</item></dt_assoc></item>
</dt_assoc></data_block></body></OPS_envelope>"#;
    let r = signed(&s, &alice, lower);
    assert!(r.ok(), "{}", r.text);
    assert_eq!(r.top.get_str("object"), Some("EVENT"));
}

#[test]
fn poll_limit_bounds() {
    let s = Server::start();
    let alice = s.reseller("alice");
    for bad in ["0", "101", "x", "-1", "1.5"] {
        let r = xcp(
            &s,
            &alice,
            "POLL",
            "EVENT",
            assoc(vec![("limit", bad.into())]),
        );
        r.refused("400", "limit");
    }
    for good in ["1", "100"] {
        assert_eq!(poll(&s, &alice, good).attr_str("total"), "0");
    }
}

#[test]
fn acking_another_accounts_event_is_refused() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let bob = s.reseller("bob");
    register(&s, &alice, register_attrs("mine.com"));
    let evs = events(&poll(&s, &alice, "1"));
    let event_id = &evs[0].4;

    ack(&s, &bob, event_id).refused("404", event_id);
    ack(&s, &bob, "0123456789abcdef0123456789abcdef").refused("404", "event");
    ack(&s, &bob, "nothex").refused("400", "event_id");
    xcp(&s, &bob, "ACK", "EVENT", assoc(vec![])).refused("400", "event_id");
    // Bob sees none of Alice's events, and hers are still there.
    assert_eq!(poll(&s, &bob, "10").attr_str("total"), "0");
    let again = poll(&s, &alice, "1");
    assert_eq!(again.attr_str("total"), "2");
    assert_eq!(&events(&again)[0].4, event_id);
}

#[test]
fn get_order_info_shows_the_callers_own_orders_only() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let bob = s.reseller("bob");
    let id = register(&s, &alice, register_attrs("info.com"));
    s.tick();
    let ask = |who: &Reseller, order: &str| {
        xcp(
            &s,
            who,
            "get_order_info",
            "domain",
            assoc(vec![("order_id", order.into())]),
        )
    };
    let r = ask(&alice, &id.to_string());
    assert!(r.ok(), "{}", r.text);
    let f = r.attr("field_hash");
    assert_eq!(f.get_str("id"), Some(id.to_string().as_str()));
    assert_eq!(f.get_str("domain"), Some("info.com"));
    assert_eq!(f.get_str("status"), Some("completed"));
    assert_eq!(f.get_str("reg_type"), Some("new"));
    assert_eq!(f.get_str("period"), Some("2"));

    ask(&bob, &id.to_string()).refused("404", "order");
    ask(&alice, "999999").refused("404", "order");
    ask(&alice, "x").refused("400", "order_id");
    xcp(&s, &alice, "GET_ORDER_INFO", "DOMAIN", assoc(vec![])).refused("400", "order_id");
}

#[test]
fn cancel_pending_orders_cancels_old_pending_orders_only() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let bob = s.reseller("bob");
    let save = |who: &Reseller, domain: &str| {
        let mut attrs = register_attrs(domain);
        if let XcpValue::Assoc(items) = &mut attrs {
            items.push(("handle".into(), "save".into()));
        }
        register(&s, who, attrs)
    };
    let old = save(&alice, "old.com");
    let bobs = save(&bob, "bobs.com");
    assert_eq!(s.request(&alice.token, old)["state"], "new");
    s.advance("2d");
    let cutoff_ms = s.get("/api/v1/clock", &s.operator).json()["now_ms"]
        .as_i64()
        .unwrap();
    s.advance("1d");
    let recent = save(&alice, "recent.com");
    let to_date = (cutoff_ms / 1000).to_string();

    let cancel = |who: &Reseller, attrs: Vec<(&str, XcpValue)>| {
        xcp(&s, who, "CANCEL_PENDING_ORDERS", "ORDER", assoc(attrs))
    };
    // Refusals first: they change nothing.
    cancel(&alice, vec![]).refused("400", "to_date");
    cancel(&alice, vec![("to_date", "yesterday".into())]).refused("400", "to_date");
    cancel(
        &alice,
        vec![
            ("to_date", to_date.as_str().into()),
            ("status", "all".into()),
        ],
    )
    .refused("400", "status");
    // Declined orders are final already: nothing to cancel.
    let r = cancel(
        &alice,
        vec![
            ("to_date", to_date.as_str().into()),
            ("status", "declined".into()),
        ],
    );
    assert!(r.ok(), "{}", r.text);
    assert_eq!(r.attr_str("total"), "0");
    assert_eq!(s.request(&alice.token, old)["state"], "new");

    let r = cancel(
        &alice,
        vec![
            ("to_date", to_date.as_str().into()),
            (
                "status",
                XcpValue::array(["pending".into(), "declined".into()]),
            ),
        ],
    );
    assert!(r.ok(), "{}", r.text);
    assert_eq!(r.attr_str("total"), "1");
    let list = r.attr("cancelled").items().unwrap();
    assert_eq!(list.len(), 1);
    let c = &list[0].1;
    assert_eq!(c.get_str("id"), Some(old.to_string().as_str()));
    assert_eq!(c.get_str("domain"), Some("old.com"));
    assert_eq!(c.get_str("reg_type"), Some("new"));

    let r = s.request(&alice.token, old);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("expired"))
    );
    assert_eq!(s.request(&alice.token, recent)["state"], "new");
    assert_eq!(s.request(&bob.token, bobs)["state"], "new");
    let evs = poll(&s, &alice, "10");
    let mine: Vec<(String, String)> = events(&evs).into_iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(
        mine,
        [
            ("old.com".to_string(), "pending".to_string()),
            ("recent.com".to_string(), "pending".to_string()),
            ("old.com".to_string(), "canceled".to_string()),
        ]
    );
}

#[test]
fn the_api_key_is_shown_on_creation_and_by_me() {
    let s = Server::start();
    let alice = s.reseller("alice");
    assert!(alice.key.len() == 32 && alice.key.bytes().all(|b| b.is_ascii_hexdigit()));
    let me = s.get("/api/v1/me", &alice.token).json();
    assert_eq!(me["api_key"], alice.key.as_str());
    let bob = s.reseller("bob");
    assert_ne!(bob.key, alice.key);
    // The operator created at start has one too.
    let op = s.get("/api/v1/me", &s.operator).json();
    assert_eq!(op["api_key"].as_str().map(str::len), Some(32));
}

/// The element tree of an XML document: (depth, tag, key attribute) of
/// every element in document order, plus the declaration and DOCTYPE.
fn shape(xml: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut depth = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            XmlEvent::Decl(d) => out.push(format!("decl {d:?}")),
            XmlEvent::DocType(d) => out.push(format!("doctype {d:?}")),
            XmlEvent::Start(e) => {
                let key = e
                    .try_get_attribute("key")
                    .ok()
                    .flatten()
                    .map(|a| a.value.to_string());
                out.push(format!(
                    "{depth} {} {}",
                    e.name().as_ref(),
                    key.unwrap_or_default()
                ));
                depth += 1;
            }
            XmlEvent::Empty(e) => out.push(format!("{depth} {} (empty)", e.name().as_ref())),
            XmlEvent::End(_) => depth -= 1,
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    out
}

#[test]
fn a_poll_reply_has_the_seeds_element_tree_exactly() {
    let s = Server::start();
    let alice = s.reseller("alice");
    register(&s, &alice, register_attrs("golden.com"));
    let body = write_request("POLL", "EVENT", &assoc(vec![]));
    let sig = xcp_signature(body.as_bytes(), &alice.key);
    let a = s.call_with(
        "POST",
        "/opensrs",
        None,
        Some(&body),
        &[
            ("X-Username", "alice"),
            ("X-Signature", &sig),
            ("Content-Type", "text/xml"),
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(shape(&a.text), shape(SEED_POLL_REPLY), "{}", a.text);
    // The prolog is the seed's, byte for byte, and the lines are the seed's
    // lines apart from the values.
    let prolog = |t: &str| t.lines().take(2).collect::<Vec<_>>().join("\n");
    assert_eq!(prolog(&a.text), prolog(SEED_POLL_REPLY));
    assert_eq!(a.text.lines().count(), SEED_POLL_REPLY.lines().count());
}
