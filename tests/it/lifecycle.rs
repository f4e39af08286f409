//! The domain lifecycle on the test clock: reminders, auto-renew, expiry,
//! grace, redemption and restore, pending delete and deletion, each step
//! once and in order however the clock moves; and its JSON API.

use serde_json::{json, Value};

use crate::support::{error_of, owner, refused_start, xcp_envelope, xcp_reply, Server};

const START: &str = "2030-01-01T00:00:00Z";

/// The notifications of a whole cycle left to lapse, as `action/status`.
pub const LAPSED: &[&str] = &[
    "expire/reminder",
    "expire/reminder",
    "expire/expired",
    "expire/reminder",
    "expire/redemption",
    "expire/pending_delete",
    "delete/success",
];

/// A server whose frozen test clock stands at `START`.
fn server() -> Server {
    let s = Server::start();
    let a = s.post("/api/v1/clock", &s.operator, json!({ "set": START }));
    assert_eq!(a.status, 200, "{}", a.text);
    s
}

/// Registers `name` for `token` and lets the ticker finish it.
fn register(s: &Server, token: &str, name: &str) {
    let r = s.order(token, name, "create", owner());
    s.tick();
    let id = r["id"].as_i64().unwrap();
    assert_eq!(s.request(token, id)["state"], "finished");
}

fn set_auto_renew(s: &Server, token: &str, name: &str, on: bool) {
    let a = s.call(
        "PATCH",
        &format!("/api/v1/domains/{name}"),
        Some(token),
        Some(&json!({ "auto_renew": on }).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["auto_renew"], on);
}

/// Every notification of the caller, oldest first: (action/status, domain, message).
fn notifications(s: &Server, token: &str) -> Vec<String> {
    let v = s
        .get("/api/v1/notifications?status=all&limit=500", token)
        .json();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{}/{} {} {}",
                n["action"], n["status"], n["domain"], n["message"]
            )
        })
        .map(|s| s.replace('"', ""))
        .collect()
}

/// The lifecycle notifications of one domain, as `action/status`.
fn steps_of(s: &Server, token: &str, domain: &str) -> Vec<String> {
    notifications(s, token)
        .into_iter()
        .filter(|n| n.split(' ').nth(1) == Some(domain))
        .map(|n| n.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

fn domain(s: &Server, token: &str, name: &str) -> Answer {
    s.get(&format!("/api/v1/domains/{name}"), token)
}

use crate::support::Answer;

/// Everything a user could notice: notifications, mail (recipient and
/// subject), requests with their charges, and the portfolio.
fn observed(s: &Server, token: &str) -> Value {
    let mail: Vec<Value> = s.get("/api/v1/mail?limit=500", &s.operator).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!([m["recipient"], m["subject"]]))
        .collect();
    let requests: Vec<Value> = s.get("/api/v1/requests?limit=500", token).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let detail = s.request(token, r["id"].as_i64().unwrap());
            let charges: Vec<Value> = detail["invoice_items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| json!([i["kind"], i["amount_cents"]]))
                .collect();
            json!([r["operation"], r["domain"], r["state"], charges])
        })
        .collect();
    let domains: Vec<Value> = s.get("/api/v1/domains?limit=500", token).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| json!([d["name"], d["expires_at"], d["lifecycle"], d["auto_renew"]]))
        .collect();
    json!({
        "notifications": notifications(s, token),
        "mail": mail,
        "requests": requests,
        "domains": domains,
    })
}

/// A portfolio with a domain at each fate: renewed by auto-renew, an
/// auto-renewal the registry refuses, and one left to lapse and be deleted.
fn portfolio(s: &Server) -> String {
    let (_, alice) = s.customer("alice");
    let rules = json!({"rules": [
        {"pattern": "refused.com", "operation": "renew", "outcome": "registry_error"}
    ]});
    assert_eq!(
        s.call(
            "PUT",
            "/api/v1/sim/rules",
            Some(&s.operator),
            Some(&rules.to_string())
        )
        .status,
        200
    );
    for name in ["kept.com", "refused.com", "lapsed.com"] {
        register(s, &alice, name);
    }
    set_auto_renew(s, &alice, "kept.com", true);
    set_auto_renew(s, &alice, "refused.com", true);
    alice
}

#[test]
fn a_year_and_more_in_one_call_and_in_daily_calls_give_the_same_lifecycle() {
    let days = 450;
    let jump = server();
    let alice = portfolio(&jump);
    jump.advance(&format!("{days}d"));
    let daily = server();
    let alice_daily = portfolio(&daily);
    for _ in 0..days {
        daily.advance("1d");
    }
    let (one, many) = (observed(&jump, &alice), observed(&daily, &alice_daily));
    assert_eq!(one, many);

    // What happened, step by step.
    assert_eq!(
        steps_of(&jump, &alice, "lapsed.com"),
        [&["create/success"][..], LAPSED].concat()
    );
    assert_eq!(
        steps_of(&jump, &alice, "kept.com"),
        ["create/success", "expire/reminder", "renew/success"],
        "renewed before the second reminder: {one:#}"
    );
    assert_eq!(
        steps_of(&jump, &alice, "refused.com")[..5],
        [
            "create/success",
            "expire/reminder",
            "renew/error",
            "expire/reminder",
            "expire/expired"
        ]
    );
    // The refused auto-renewal mailed the owner and the operators.
    let subjects: Vec<String> = one["mail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[1].as_str().unwrap().to_string())
        .collect();
    assert!(
        subjects
            .iter()
            .any(|s| s == "[regdesk] auto-renewal of refused.com failed"),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s == "[regdesk] renew refused.com failed"),
        "{subjects:?}"
    );
    assert_eq!(domain(&jump, &alice, "lapsed.com").status, 404);
    let kept = domain(&jump, &alice, "kept.com").json();
    assert_eq!(kept["expires_at"], "2032-01-01T00:00:00Z", "{kept}");
    assert_eq!(kept["lifecycle"], "active");
}

#[test]
fn two_advances_that_overlap_give_what_one_gives() {
    let one = server();
    let alice = portfolio(&one);
    one.advance("450d");
    let two = server();
    let alice_two = portfolio(&two);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| two.advance("225d"));
        }
    });
    assert_eq!(observed(&one, &alice), observed(&two, &alice_two));
}

#[test]
fn a_renewal_in_grace_counts_from_the_old_expiry() {
    let s = server();
    let (_, alice) = s.customer("alice");
    register(&s, &alice, "late.com");
    s.advance("366d");
    let d = domain(&s, &alice, "late.com").json();
    assert_eq!(
        (d["lifecycle"].as_str(), d["rgp_status"].as_str()),
        (Some("expired"), Some("autoRenewPeriod"))
    );
    let r = s.order(&alice, "late.com", "renew", json!({"period": 2}));
    s.tick();
    assert_eq!(
        s.request(&alice, r["id"].as_i64().unwrap())["state"],
        "finished"
    );
    let d = domain(&s, &alice, "late.com").json();
    // Two years of 365 days from the old expiry.
    assert_eq!(d["expires_at"], "2032-12-31T00:00:00Z");
    assert_eq!(
        (d["lifecycle"].as_str(), d["rgp_status"].as_str()),
        (Some("active"), None)
    );
    assert_eq!(d["next_step"], "reminder-30");
    // Ten years past now at most.
    let a = s.post(
        "/api/v1/requests",
        &alice,
        json!({"domain": "late.com", "operation": "renew", "params": {"period": 9}, "submit": true}),
    );
    assert_eq!(
        error_of(&a),
        (422, "invalid".into(), Some("params.period".into())),
        "{}",
        a.text
    );
}

#[test]
fn auto_renew_switched_on_after_its_day_renews_at_once() {
    let s = server();
    let (_, alice) = s.customer("alice");
    register(&s, &alice, "forgot.com");
    register(&s, &alice, "other.com");
    // Ten days before expiry: the auto-renewal's day (14 before) has passed
    // with auto-renew off.
    s.advance("355d");
    s.tick();
    set_auto_renew(&s, &alice, "other.com", false);
    set_auto_renew(&s, &alice, "forgot.com", true);
    s.tick();
    let d = domain(&s, &alice, "forgot.com").json();
    assert_eq!(d["expires_at"], "2032-01-01T00:00:00Z", "{d}");
    assert_eq!(d["lifecycle"], "active");
    // Switching it off (or on again once renewed) places nothing.
    set_auto_renew(&s, &alice, "forgot.com", true);
    s.tick();
    let d = domain(&s, &alice, "forgot.com").json();
    assert_eq!(d["expires_at"], "2032-01-01T00:00:00Z", "{d}");
    assert_eq!(
        domain(&s, &alice, "other.com").json()["expires_at"],
        "2031-01-01T00:00:00Z"
    );
}

#[test]
fn a_restore_in_redemption_is_authorised_charged_and_brings_the_domain_back() {
    let s = server();
    let (alice_id, alice) = s.customer("alice");
    register(&s, &alice, "saved.com");
    let restore = json!({"domain": "saved.com", "operation": "restore", "submit": true});
    let a = s.post("/api/v1/requests", &alice, restore.clone());
    assert_eq!(
        a.status, 409,
        "an active domain is not restored: {}",
        a.text
    );
    s.advance("396d");
    let d = domain(&s, &alice, "saved.com").json();
    assert_eq!(d["lifecycle"], "redemption");
    let renew = json!({"domain": "saved.com", "operation": "renew", "submit": true});
    let a = s.post("/api/v1/requests", &alice, renew);
    assert_eq!(a.status, 409, "only a restore: {}", a.text);

    let a = s.post("/api/v1/requests", &alice, restore);
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.json()["id"].as_i64().unwrap();
    assert_eq!(a.json()["state"], "review");
    assert_eq!(
        domain(&s, &alice, "saved.com").json()["rgp_status"],
        "pendingRestore"
    );
    // Held while the restore waits: pending delete does not start.
    s.advance("40d");
    assert_eq!(
        domain(&s, &alice, "saved.com").json()["lifecycle"],
        "redemption"
    );
    assert_eq!(s.action(&alice, id, "authorise", json!({})).status, 403);
    assert_eq!(
        s.action(&s.operator, id, "authorise", json!({})).status,
        200
    );
    s.tick();
    let r = s.request(&alice, id);
    assert_eq!(r["state"], "finished", "{r}");
    let charges: Vec<(String, i64)> = r["invoice_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_string(),
                i["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        charges,
        [("restore".to_string(), 8000), ("renew".to_string(), 1200)]
    );
    let d = domain(&s, &alice, "saved.com").json();
    assert_eq!(
        (d["lifecycle"].as_str(), d["expires_at"].as_str()),
        (Some("active"), Some("2032-01-01T00:00:00Z"))
    );
    assert!(notifications(&s, &alice)
        .iter()
        .any(|n| n.starts_with("restore/success saved.com")));
    // The task face lists the restore as a task.
    let tasks = s.get(
        &format!("/bdom/task/status/-/-/domain/saved.com/{alice_id}/"),
        &alice,
    );
    let tasks = crate::support::xml_tree(&tasks.text);
    assert_eq!(tasks.column("opcode"), ["create", "restore"]);
    assert_eq!(tasks.column("status"), ["SUCCESS", "SUCCESS"]);
}

#[test]
fn deletion_frees_the_name_for_the_first_backorder_waiting() {
    let s = server();
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    let (_, carol) = s.customer("carol");
    register(&s, &alice, "wanted.com");
    let first = s.order(&bob, "wanted.com", "backorder", owner())["id"]
        .as_i64()
        .unwrap();
    let second = s.order(&carol, "wanted.com", "backorder", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    assert_eq!(s.request(&bob, first)["waiting_on"], "registry");
    s.advance("429d");
    assert_eq!(
        domain(&s, &alice, "wanted.com").json()["lifecycle"],
        "pending_delete"
    );
    assert_eq!(
        domain(&s, &alice, "wanted.com").json()["rgp_status"],
        "pendingDelete"
    );
    // Nothing brings it back now.
    for operation in ["renew", "restore"] {
        let order = json!({"domain": "wanted.com", "operation": operation, "submit": true});
        let a = s.post("/api/v1/requests", &alice, order);
        assert_eq!(a.status, 409, "{operation}: {}", a.text);
        assert!(a.text.contains("pending deletion"), "{}", a.text);
    }
    s.advance("1d");
    assert_eq!(domain(&s, &alice, "wanted.com").status, 404);
    assert!(notifications(&s, &alice)
        .iter()
        .any(|n| n.starts_with("delete/success wanted.com")));
    assert_eq!(s.request(&bob, first)["state"], "finished");
    assert_eq!(s.request(&carol, second)["state"], "processing");
    assert_eq!(domain(&s, &bob, "wanted.com").json()["lifecycle"], "active");
}

#[test]
fn domains_are_listed_by_lifecycle_and_expiry_and_renewed_in_bulk() {
    let s = server();
    let (alice_id, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    // An account's default applies to its domains without a switch of their own.
    let a = s.call(
        "PUT",
        "/api/v1/auto-renew",
        Some(&alice),
        Some(r#"{"auto_renew": true}"#),
    );
    assert_eq!(
        (a.status, a.json()["auto_renew"].as_bool()),
        (200, Some(true))
    );
    register(&s, &alice, "early.com");
    s.advance("100d");
    register(&s, &alice, "later.com");
    register(&s, &bob, "other.com");
    assert_eq!(domain(&s, &alice, "early.com").json()["auto_renew"], true);
    assert_eq!(domain(&s, &bob, "other.com").json()["auto_renew"], false);
    set_auto_renew(&s, &alice, "later.com", true);
    let off = s.call(
        "PUT",
        &format!("/api/v1/auto-renew?account_id={alice_id}"),
        Some(&s.operator),
        Some(r#"{"auto_renew": false}"#),
    );
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(domain(&s, &alice, "early.com").json()["auto_renew"], false);
    assert_eq!(domain(&s, &alice, "later.com").json()["auto_renew"], true);
    let other = format!("/api/v1/auto-renew?account_id={alice_id}");
    assert_eq!(s.get(&other, &bob).status, 404, "another account's default");
    // A body that is not a switch is refused naming the field, and changes nothing.
    for body in [
        r#"{}"#,
        r#"{"auto_renew": "yes"}"#,
        r#"{"auto_renew": true, "x": 1}"#,
    ] {
        let a = s.call("PUT", "/api/v1/auto-renew", Some(&bob), Some(body));
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert!(a.json()["error"]["field"].is_string(), "{}", a.text);
    }
    let bob_default = s.get("/api/v1/auto-renew", &bob).json();
    assert_eq!(bob_default["auto_renew"], false, "{bob_default}");
    set_auto_renew(&s, &alice, "early.com", true);
    let names = |path: &str, token: &str| -> Vec<String> {
        let a = s.get(path, token);
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("/api/v1/domains?expiring_before=2031-02-01", &alice),
        ["early.com"]
    );
    assert_eq!(
        names("/api/v1/domains?lifecycle=active", &alice),
        ["early.com", "later.com"]
    );
    assert_eq!(
        names("/api/v1/domains?lifecycle=active", &s.operator).len(),
        3
    );
    assert!(names("/api/v1/domains?lifecycle=expired", &alice).is_empty());
    for bad in ["lifecycle=gone", "expiring_before=soon"] {
        let a = s.get(&format!("/api/v1/domains?{bad}"), &alice);
        assert_eq!(a.status, 422, "{bad}: {}", a.text);
    }
    // Only the owner (or an operator) switches a domain.
    let patch = |token: &str, body: &str| {
        s.call(
            "PATCH",
            "/api/v1/domains/early.com",
            Some(token),
            Some(body),
        )
    };
    assert_eq!(patch(&bob, r#"{"auto_renew": false}"#).status, 404);
    assert_eq!(
        error_of(&patch(&alice, r#"{"auto_renew": "no"}"#))
            .2
            .as_deref(),
        Some("auto_renew")
    );
    assert_eq!(
        error_of(&patch(&alice, r#"{"lifecycle": "active"}"#)).0,
        422
    );
    assert_eq!(domain(&s, &alice, "early.com").json()["auto_renew"], true);

    let bulk = json!({"expiring_before": "2031-06-01", "account_id": alice_id});
    assert_eq!(
        s.post("/api/v1/domains/renew", &alice, bulk.clone()).status,
        403
    );
    assert_eq!(
        s.post("/api/v1/domains/renew", &s.operator, json!({}))
            .status,
        422
    );
    for (account, status) in [(0, 422), (999, 404)] {
        let other = json!({"expiring_before": "2031-06-01", "account_id": account});
        let a = s.post("/api/v1/domains/renew", &s.operator, other);
        assert_eq!(a.status, status, "account {account}: {}", a.text);
    }
    let a = s.post("/api/v1/domains/renew", &s.operator, bulk);
    assert_eq!(a.status, 200, "{}", a.text);
    let placed = a.json()["placed"].as_array().unwrap().clone();
    assert_eq!(placed.len(), 2, "{}", a.text);
    s.tick();
    assert_eq!(
        domain(&s, &alice, "early.com").json()["expires_at"],
        "2032-01-01T00:00:00Z"
    );
}

#[test]
fn a_lifecycle_period_out_of_range_is_refused_at_start() {
    for (flag, value) in [
        ("--renew-grace-days", "7"),
        ("--renew-grace-days", "46"),
        ("--redemption-days", "0"),
        ("--renew-reminder-days", "30,x"),
        ("--renew-reminder-days", "0"),
    ] {
        let err = refused_start(&["--memory", flag, value], &[]);
        let field = flag.trim_start_matches("--").replace('-', "_");
        assert!(
            err.contains(&field) || err.contains(flag),
            "{flag} {value}: {err}"
        );
    }
}

/// The `DOMAIN` events of a reseller's XCP poll: (event, domain_name,
/// expiration_date, period or reason), and every event's id.
fn domain_events(s: &Server, who: &crate::support::Reseller) -> (Vec<[String; 4]>, Vec<String>) {
    let body = xcp_envelope("POLL", "EVENT", r#"<item key="limit">100</item>"#);
    let reply = xcp_reply(&s.xcp(who, body.as_bytes()));
    let attrs = reply.get("attributes").expect("attributes");
    let events = attrs.get("events").and_then(|e| e.items()).expect("events");
    let text = |v: Option<&str>| v.unwrap_or("-").to_string();
    let ids = events
        .iter()
        .map(|(_, e)| text(e.get_str("event_id")))
        .collect();
    let domain = events
        .iter()
        .filter(|(_, e)| e.get_str("object") == Some("DOMAIN"))
        .map(|(_, e)| {
            let data = e.get("object_data").expect("object_data");
            let detail = data.get_str("period").or(data.get_str("reason"));
            [
                text(e.get_str("event")),
                text(data.get_str("domain_name")),
                text(data.get_str("expiration_date")),
                text(detail),
            ]
        })
        .collect();
    (domain, ids)
}

#[test]
fn the_xcp_face_polls_the_domain_events_of_the_lifecycle() {
    let s = server();
    let rex = s.reseller("rex");
    register(&s, &rex.token, "polled.com");
    register(&s, &rex.token, "renewed.com");
    let r = s.order(&rex.token, "renewed.com", "renew", json!({}));
    s.tick();
    assert_eq!(
        s.request(&rex.token, r["id"].as_i64().unwrap())["state"],
        "finished"
    );
    s.advance("430d");
    let (events, ids) = domain_events(&s, &rex);
    let row = |e: &str, d: &str, x: &str, y: &str| [e, d, x, y].map(str::to_string);
    assert_eq!(
        events,
        [
            row("RENEWED", "renewed.com", "2032-01-01T00:00:00Z", "1"),
            row("EXPIRED", "polled.com", "2031-01-01T00:00:00Z", "-"),
            row("DELETED", "polled.com", "2031-01-01T00:00:00Z", "expired"),
        ]
    );
    // An acknowledged event is not polled again.
    let last = ids.last().unwrap();
    let ack = xcp_envelope(
        "ACK",
        "EVENT",
        &format!(r#"<item key="event_id">{last}</item>"#),
    );
    let reply = xcp_reply(&s.xcp(&rex, ack.as_bytes()));
    assert_eq!(reply.get_str("is_success"), Some("1"), "{reply:?}");
    assert_eq!(domain_events(&s, &rex).0.len(), 2);
}
