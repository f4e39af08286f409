//! The isolation matrix: for every endpoint that names an object, a second
//! customer's token gets 404 for the first customer's objects (and changes
//! nothing); lists never show them; customers get 403 on operator actions.
//! Tables of rows, one per face: the native API, the XCP face (`POST /`)
//! and the task face (`/bdom/task/…`).

use serde_json::{json, Value};

use crate::support::{owner, try_xml_tree, xcp_envelope, xcp_reply, Reseller, Server};

/// Alice's objects, substituted into the rows' paths and bodies.
struct Objects {
    /// A finished request (its domain is in her portfolio).
    done: i64,
    /// A request waiting for an operator's review.
    review: i64,
    /// A request saved but not submitted.
    fresh: i64,
    /// Her unread notification.
    notification: i64,
    /// A domain in her portfolio.
    domain: String,
    /// Bob's own request in review (for the 403 rows).
    bobs: i64,
    /// Bob's own unsubmitted request.
    bobs_new: i64,
}

impl Objects {
    fn fill(&self, text: &str) -> String {
        text.replace("{done}", &self.done.to_string())
            .replace("{review}", &self.review.to_string())
            .replace("{fresh}", &self.fresh.to_string())
            .replace("{notification}", &self.notification.to_string())
            .replace("{domain}", &self.domain)
            .replace("{bobs}", &self.bobs.to_string())
            .replace("{bobs_new}", &self.bobs_new.to_string())
    }
}

/// (method, path, body, status for the other customer). Every request
/// action on every kind of request, every object path.
const FOREIGN: &[(&str, &str, &str, u16)] = &[
    ("GET", "/api/v1/requests/{done}", "", 404),
    ("GET", "/api/v1/requests/{review}", "", 404),
    ("GET", "/api/v1/requests/{fresh}", "", 404),
    (
        "PATCH",
        "/api/v1/requests/{fresh}",
        r#"{"params":{"period":2}}"#,
        404,
    ),
    ("POST", "/api/v1/requests/{fresh}/submit", "{}", 404),
    ("POST", "/api/v1/requests/{fresh}/abort", "{}", 404),
    ("POST", "/api/v1/requests/{review}/abort", "{}", 404),
    (
        "POST",
        "/api/v1/requests/{done}/annotate",
        r#"{"text":"mine now"}"#,
        404,
    ),
    ("POST", "/api/v1/requests/{review}/authorise", "{}", 404),
    (
        "POST",
        "/api/v1/requests/{review}/send-back",
        r#"{"annotation":"x"}"#,
        404,
    ),
    ("POST", "/api/v1/requests/{done}/retry", "{}", 404),
    (
        "POST",
        "/api/v1/requests/{review}/resolve",
        r#"{"outcome":"failed"}"#,
        404,
    ),
    (
        "POST",
        "/api/v1/requests/{review}/events",
        r#"{"outcome":"success"}"#,
        404,
    ),
    ("DELETE", "/api/v1/notification/{notification}", "", 404),
    ("GET", "/api/v1/domains/{domain}", "", 404),
    // Naming another's request as a dependency is "no such request".
    (
        "POST",
        "/api/v1/requests",
        r#"{"domain":"dep.com","operation":"create","depends_on":{fresh}}"#,
        422,
    ),
    (
        "PATCH",
        "/api/v1/requests/{bobs_new}",
        r#"{"depends_on":{fresh}}"#,
        422,
    ),
    ("GET", "/api/v1/requests?account_id=1", "", 404),
    // Bulk actions by id skip what the caller cannot see.
    (
        "POST",
        "/api/v1/requests/bulk",
        r#"{"action":"abort","ids":[{fresh},{review}]}"#,
        200,
    ),
];

/// Lists a customer reads: none may mention Alice's objects.
const LISTS: &[&str] = &[
    "/api/v1/requests",
    "/api/v1/requests?domain_contains=alice",
    "/api/v1/requests?state=review",
    "/api/v1/requests.csv",
    "/api/v1/notifications?status=all",
    "/api/v1/notification",
    "/api/v1/events",
    "/api/v1/domains",
    "/api/v1/scheduled",
];

/// (method, path, body): operators only; a customer gets 403, even on its
/// own request.
const OPERATOR_ONLY: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/accounts", ""),
    (
        "POST",
        "/api/v1/accounts",
        r#"{"name":"eve","email":"eve@example.net","role":"operator"}"#,
    ),
    ("GET", "/api/v1/mail", ""),
    ("POST", "/api/v1/clock", r#"{"advance":"1d"}"#),
    ("POST", "/api/v1/tick", ""),
    ("GET", "/api/v1/sim/rules", ""),
    ("PUT", "/api/v1/sim/rules", r#"{"rules":[]}"#),
    ("POST", "/api/v1/requests/{bobs}/authorise", "{}"),
    (
        "POST",
        "/api/v1/requests/{bobs}/send-back",
        r#"{"annotation":"x"}"#,
    ),
    ("POST", "/api/v1/requests/{bobs}/retry", "{}"),
    (
        "POST",
        "/api/v1/requests/{bobs}/resolve",
        r#"{"outcome":"finished"}"#,
    ),
    (
        "POST",
        "/api/v1/requests/{bobs}/events",
        r#"{"outcome":"success"}"#,
    ),
    (
        "POST",
        "/api/v1/requests/bulk",
        r#"{"action":"authorise","ids":[{bobs}]}"#,
    ),
];

/// What Alice can see of her own things, to compare before and after.
fn snapshot(s: &Server, alice: &str, o: &Objects) -> Vec<Value> {
    let mut out: Vec<Value> = [o.done, o.review, o.fresh]
        .iter()
        .map(|id| {
            let mut r = s.request(alice, *id);
            r["allowed_actions"] = Value::Null;
            r
        })
        .collect();
    out.push(s.get("/api/v1/notifications?status=all", alice).json());
    out.push(
        s.get(&format!("/api/v1/domains/{}", o.domain), alice)
            .json(),
    );
    out
}

#[test]
fn another_customers_objects_are_not_found_and_operator_actions_forbidden() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    let done = s.order(&alice, "alice-owned.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let mut premium = owner();
    premium["premium"] = json!(true);
    let review = s.order(&alice, "alice-premium.com", "create", premium.clone())["id"]
        .as_i64()
        .unwrap();
    let a = s.post(
        "/api/v1/requests",
        &alice,
        json!({"domain": "alice-later.com", "operation": "create", "params": owner()}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let fresh = a.json()["id"].as_i64().unwrap();
    let notification = s.get("/api/v1/notification", &alice).json()["id"]
        .as_i64()
        .unwrap();
    let bobs = s.order(&bob, "bob-premium.com", "create", premium)["id"]
        .as_i64()
        .unwrap();
    let a = s.post(
        "/api/v1/requests",
        &bob,
        json!({"domain": "bob-later.com", "operation": "create"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let bobs_new = a.json()["id"].as_i64().unwrap();
    assert_eq!(s.request(&alice, review)["state"], "review");
    assert_eq!(s.request(&bob, bobs)["state"], "review");
    let o = Objects {
        done,
        review,
        fresh,
        notification,
        domain: "alice-owned.com".into(),
        bobs,
        bobs_new,
    };
    let before = snapshot(&s, &alice, &o);

    let mut failures = Vec::new();
    for (method, path, body, want) in FOREIGN {
        let (path, body) = (o.fill(path), o.fill(body));
        let a = s.call(
            method,
            &path,
            Some(&bob),
            (!body.is_empty()).then_some(body.as_str()),
        );
        if a.status != *want {
            failures.push(format!(
                "{method} {path} {body}: {} (want {want}) {}",
                a.status, a.text
            ));
        }
        // Nothing of Alice's ever shows in an answer (a refusal may echo
        // the path the caller sent).
        if a.status < 300 && a.text.contains("alice-") {
            failures.push(format!(
                "{method} {path}: shows Alice's objects: {}",
                a.text
            ));
        }
    }
    for path in LISTS {
        let a = s.get(path, &bob);
        if !matches!(a.status, 200 | 204) || a.text.contains("alice-") {
            failures.push(format!("GET {path}: {} {}", a.status, a.text));
        }
    }
    for (method, path, body) in OPERATOR_ONLY {
        let (path, body) = (o.fill(path), o.fill(body));
        for token in [&alice, &bob] {
            let a = s.call(
                method,
                &path,
                Some(token),
                (!body.is_empty()).then_some(body.as_str()),
            );
            // Alice reaching Bob's request learns nothing: 404; Bob on his own: 403.
            let want = if path.contains(&format!("/requests/{bobs}")) && token == &alice {
                404
            } else {
                403
            };
            if a.status != want {
                failures.push(format!(
                    "{method} {path} as {}: {} (want {want}) {}",
                    if token == &alice { "alice" } else { "bob" },
                    a.status,
                    a.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nothing changed for Alice, nor for Bob's request.
    assert_eq!(snapshot(&s, &alice, &o), before);
    assert_eq!(s.request(&bob, bobs)["state"], "review");
    assert_eq!(
        s.get("/api/v1/notification", &alice).json()["id"],
        json!(notification)
    );
    // The operator still sees everything.
    for id in [done, review, fresh, bobs] {
        assert_eq!(
            s.get(&format!("/api/v1/requests/{id}"), &s.operator).status,
            200
        );
    }
}

// ----- the XCP face and the task face -------------------------------------------

/// Alice's objects on the compatibility faces, substituted into the rows.
struct FaceObjects {
    /// Her finished SW_REGISTER order (`alice-xcp.com`).
    order: i64,
    /// Her saved (pending) SW_REGISTER order: what a cancel would take.
    saved: i64,
    /// Her scheduled task: a queued delete with an exec date a month ahead.
    sched: i64,
    /// Her oldest unacknowledged order event.
    event: String,
    alice: i64,
    bob: i64,
    /// Bob's own scheduled task.
    bobs_sched: i64,
    operator: i64,
}

impl FaceObjects {
    fn fill(&self, text: &str) -> String {
        text.replace("{order}", &self.order.to_string())
            .replace("{saved}", &self.saved.to_string())
            .replace("{sched}", &self.sched.to_string())
            .replace("{EVENT}", &self.event.to_ascii_uppercase())
            .replace("{event}", &self.event)
            .replace("{alice}", &self.alice.to_string())
            .replace("{bob}", &self.bob.to_string())
            .replace("{bobs_sched}", &self.bobs_sched.to_string())
            .replace("{operator}", &self.operator.to_string())
    }
}

/// XCP rows: (action, object, attribute items, the `response_code` a
/// caller other than Alice gets; 200 = the command succeeds and its answer
/// is checked to hold nothing of hers). The XCP face offers operators
/// nothing more than customers, so every row is sent by Bob and by the
/// operator alike.
const XCP_FOREIGN: &[(&str, &str, &str, &str)] = &[
    (
        "GET_ORDER_INFO",
        "DOMAIN",
        r#"<item key="order_id">{order}</item>"#,
        "404",
    ),
    (
        "GET_ORDER_INFO",
        "DOMAIN",
        r#"<item key="order_id">{saved}</item>"#,
        "404",
    ),
    (
        "get_order_info",
        "domain",
        r#"<item key="order_id"> {order} </item>"#,
        "404",
    ),
    // Her scheduled delete is no order at all, and not the caller's.
    (
        "GET_ORDER_INFO",
        "DOMAIN",
        r#"<item key="order_id">{sched}</item>"#,
        "404",
    ),
    (
        "ACK",
        "EVENT",
        r#"<item key="event_id">{event}</item>"#,
        "404",
    ),
    (
        "ACK",
        "EVENT",
        r#"<item key="event_id">{EVENT}</item>"#,
        "404",
    ),
    ("POLL", "EVENT", r#"<item key="limit">100</item>"#, "200"),
    (
        "CANCEL_PENDING_ORDERS",
        "ORDER",
        r#"<item key="to_date">253402300799</item>"#,
        "200",
    ),
    (
        "CANCEL_PENDING_ORDERS",
        "ORDER",
        r#"<item key="to_date">253402300799</item><item key="status"><dt_array><item key="0">pending</item><item key="1">declined</item></dt_array></item>"#,
        "200",
    ),
];

/// Task-face rows for Bob: (method, path, body, status). His own USER_ID
/// with her task ids and names finds nothing; her USER_ID (or the
/// operator's) is 403, as naming another account is for operators only.
const TASK_FOREIGN: &[(&str, &str, &str, u16)] = &[
    ("GET", "/bdom/task/status/{order}/-/-/-/{bob}/", "", 404),
    ("GET", "/bdom/task/status/{sched}/-/-/-/{bob}/", "", 404),
    ("GET", "/bdom/task/status/{saved}/PENDING_INT/-/-/{bob}/", "", 404),
    (
        "GET",
        "/bdom/task/status/{order}/-/domain/alice-xcp.com/{bob}/",
        "",
        404,
    ),
    (
        "GET",
        "/bdom/task/status/-/-/domain/alice-xcp.com/{bob}/",
        "",
        200,
    ),
    ("GET", "/bdom/task/status/-/-/-/-/{bob}/", "", 200),
    ("GET", "/bdom/task/status/-/PENDING_INT/-/-/{bob}/", "", 200),
    ("GET", "/bdom/task/status/-/SUCCESS/-/-/{bob}/", "", 200),
    ("GET", "/bdom/task/scheduled/-/-/-/-/{bob}/", "", 200),
    ("GET", "/bdom/task/scheduled/{sched}/-/-/-/{bob}/", "", 200),
    (
        "GET",
        "/bdom/task/scheduled/-/-/domain/alice-xcp.com/{bob}/",
        "",
        200,
    ),
    (
        "POST",
        "/bdom/task/delete/-/-/-/-/{bob}/",
        "<request><delete><task_id>{sched}</task_id></delete></request>",
        404,
    ),
    (
        "POST",
        "/bdom/task/delete/-/-/-/-/{bob}/",
        "<request><delete><task_id>{bobs_sched}</task_id><task_id>{sched}</task_id></delete></request>",
        404,
    ),
    (
        "POST",
        "/bdom/task/delete/-/-/-/-/{bob}/",
        "<request><delete><task_id>{order}</task_id></delete></request>",
        404,
    ),
    // Another account's USER_ID: operators only.
    ("GET", "/bdom/task/status/-/-/-/-/{alice}/", "", 403),
    ("GET", "/bdom/task/status/{order}/-/-/-/{alice}/", "", 403),
    (
        "GET",
        "/bdom/task/status/-/-/domain/alice-xcp.com/{alice}/",
        "",
        403,
    ),
    ("GET", "/bdom/task/scheduled/-/-/-/-/{alice}/", "", 403),
    (
        "POST",
        "/bdom/task/delete/-/-/-/-/{alice}/",
        "<request><delete><task_id>{sched}</task_id></delete></request>",
        403,
    ),
    ("GET", "/bdom/task/status/-/-/-/-/{operator}/", "", 403),
    ("GET", "/bdom/task/scheduled/-/-/-/-/{operator}/", "", 403),
    (
        "POST",
        "/bdom/task/delete/-/-/-/-/{operator}/",
        "<request><delete><task_id>{sched}</task_id></delete></request>",
        403,
    ),
];

/// Everything of Alice's in the database, read with SQL on the file.
fn alice_rows(s: &Server, alice: i64) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        s.dir.path().join("regdesk.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut out = Vec::new();
    for sql in [
        "select id || ' ' || state || ' ' || coalesce(waiting_on, '-') || ' ' || coalesce(failure, '-')
         || ' ' || updated_at from requests where account_id = ?1 order by id",
        "select event_id || ' ' || order_status || ' ' || coalesce(acked_at, 'unacked')
         from order_events where account_id = ?1 order by id",
        "select count(*) || ' transitions' from transitions where account_id = ?1",
        "select count(*) || ' notifications' from notifications where account_id = ?1",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([alice], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap);
        out.extend(rows);
    }
    out
}

/// The task ids and user ids a task-face list shows.
fn task_ids(xml: &str) -> Vec<(String, String)> {
    let tag = |name: &str| -> Vec<String> {
        try_xml_tree(xml).map(|t| t.texts(name)).unwrap_or_default()
    };
    let users = tag("user_id");
    tag("task_id")
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, users.get(i).cloned().unwrap_or_default()))
        .collect()
}

fn task_call(
    s: &Server,
    method: &str,
    path: &str,
    auth: &str,
    body: &str,
) -> crate::support::Answer {
    s.call_with(
        method,
        path,
        None,
        (!body.is_empty()).then_some(body),
        &[("Authorization", auth), ("Content-Type", "application/xml")],
    )
}

#[test]
fn the_xcp_and_task_faces_show_and_change_nothing_of_another_customer() {
    use base64::Engine as _;
    let s = Server::start();
    let alice = s.reseller("alice");
    let bob = s.reseller("bob");
    let me = s.get("/api/v1/me", &s.operator).json();
    let operator = Reseller {
        id: me["id"].as_i64().unwrap(),
        name: me["name"].as_str().unwrap().to_string(),
        token: s.operator.clone(),
        key: me["api_key"].as_str().unwrap().to_string(),
    };
    let register = |who: &Reseller, domain: &str, handle: &str| -> i64 {
        let items = format!(
            r#"<item key="domain">{domain}</item><item key="handle">{handle}</item>
            <item key="contact_set"><dt_assoc><item key="owner"><dt_assoc>
            <item key="first_name">Ada</item><item key="last_name">Lovelace</item>
            <item key="email">ada@example.net</item></dt_assoc></item></dt_assoc></item>"#
        );
        let r = xcp_reply(&s.xcp(
            who,
            xcp_envelope("SW_REGISTER", "DOMAIN", &items).as_bytes(),
        ));
        assert_eq!(r.get_str("is_success"), Some("1"), "{r:?}");
        r.get("attributes")
            .unwrap()
            .get_str("id")
            .unwrap()
            .parse()
            .unwrap()
    };
    let order = register(&alice, "alice-xcp.com", "process");
    s.tick();
    assert_eq!(s.request(&alice.token, order)["state"], "finished");
    let saved = register(&alice, "alice-saved.com", "save");
    register(&bob, "bob-saved.com", "save");
    let now = s.get("/api/v1/clock", &s.operator).json()["now_ms"]
        .as_i64()
        .unwrap();
    let exec_date = regdesk::clock::format(now + 30 * 86_400_000);
    let schedule = |who: &Reseller, domain: &str| -> i64 {
        let a = s.post(
            "/api/v1/requests",
            &who.token,
            json!({"domain": domain, "operation": "delete", "exec_date": exec_date, "submit": true}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        let r = a.json();
        assert_eq!(r["state"], "queued", "{r}");
        r["id"].as_i64().unwrap()
    };
    let sched = schedule(&alice, "alice-xcp.com");
    let bobs_sched = schedule(&bob, "bob-sched.com");
    let poll = |who: &Reseller| {
        xcp_reply(&s.xcp(
            who,
            xcp_envelope("POLL", "EVENT", r#"<item key="limit">100</item>"#).as_bytes(),
        ))
    };
    let first_event = |p: &regdesk::face::xcp_xml::XcpValue| -> String {
        p.get("attributes")
            .and_then(|a| a.get("events"))
            .and_then(|e| e.items())
            .and_then(|items| items.first())
            .and_then(|(_, e)| e.get_str("event_id"))
            .expect("an event")
            .to_string()
    };
    let alices_poll = poll(&alice);
    let event = first_event(&alices_poll);
    let alices_total = alices_poll
        .get("attributes")
        .and_then(|a| a.get_str("total"))
        .map(String::from);
    assert_eq!(alices_total.as_deref(), Some("4"), "{alices_poll:?}");
    let o = FaceObjects {
        order,
        saved,
        sched,
        event: event.clone(),
        alice: alice.id,
        bob: bob.id,
        bobs_sched,
        operator: operator.id,
    };
    // What a caller may legitimately see: its own order ids.
    let own_ids = |who: &Reseller| -> Vec<String> {
        s.get("/api/v1/requests?limit=500", &who.token).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].to_string())
            .collect()
    };
    let before = alice_rows(&s, alice.id);

    let mut failures = Vec::new();
    let mut rows = 0;
    for who in [&bob, &operator] {
        let mine = own_ids(who);
        for (action, object, items, want) in XCP_FOREIGN {
            rows += 1;
            let items = o.fill(items);
            let a = s.xcp(who, xcp_envelope(action, object, &items).as_bytes());
            let what = format!("{} {action} {object} {items}", who.name);
            if a.status != 200 {
                failures.push(format!("{what}: HTTP {} {}", a.status, a.text));
                continue;
            }
            let r = xcp_reply(&a);
            let code = r.get_str("response_code").unwrap_or_default();
            if code != *want {
                failures.push(format!("{what}: code {code} (want {want}) {}", a.text));
            }
            // A refusal may echo the id the caller sent; nothing else of hers shows.
            let ok = r.get_str("is_success") == Some("1");
            if a.text.contains("alice-") || (ok && a.text.contains(&event)) {
                failures.push(format!("{what}: shows Alice's objects: {}", a.text));
            }
            // Every order id a successful answer names is the caller's own.
            let attributes = r.get("attributes").cloned();
            let listed = attributes
                .as_ref()
                .and_then(|a| a.get("events").or_else(|| a.get("cancelled")))
                .and_then(|l| l.items().map(<[_]>::to_vec))
                .unwrap_or_default();
            for (_, item) in listed {
                let id = item
                    .get("object_data")
                    .and_then(|d| d.get_str("order_id"))
                    .or_else(|| item.get_str("id"))
                    .unwrap_or_default()
                    .to_string();
                if !mine.contains(&id) {
                    failures.push(format!("{what}: lists order {id}, not the caller's"));
                }
            }
        }
    }
    let basic = |who: &Reseller| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", who.id, who.token))
        )
    };
    for auth in [format!("Bearer {}", bob.token), basic(&bob)] {
        for (method, path, body, want) in TASK_FOREIGN {
            rows += 1;
            let (path, body) = (o.fill(path), o.fill(body));
            let a = task_call(&s, method, &path, &auth, &body);
            let what = format!("{method} {path} {body} ({})", &auth[..6]);
            if a.status != *want || !a.content_type.contains("xml") {
                failures.push(format!(
                    "{what}: {} {} (want {want} XML) {}",
                    a.status, a.content_type, a.text
                ));
            }
            if a.text.contains("alice-") {
                failures.push(format!("{what}: shows Alice's objects: {}", a.text));
            }
            for (task, user) in task_ids(&a.text) {
                if user != bob.id.to_string() && !user.is_empty() {
                    failures.push(format!("{what}: shows task {task} of user {user}"));
                }
                if [order, saved, sched].map(|i| i.to_string()).contains(&task) {
                    failures.push(format!("{what}: shows Alice's task {task}"));
                }
            }
        }
    }
    // Her USER_ID with Bob's token is no credential at all.
    let mixed = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", alice.id, bob.token))
    );
    for path in [
        format!("/bdom/task/status/-/-/-/-/{}/", alice.id),
        format!("/bdom/task/scheduled/-/-/-/-/{}/", alice.id),
    ] {
        rows += 1;
        let a = task_call(&s, "GET", &path, &mixed, "");
        if a.status != 401 || a.text.contains("alice-") {
            failures.push(format!(
                "GET {path} as {{alice}}:{{bob's token}}: {} {}",
                a.status, a.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) in {rows} rows:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nothing of Alice's changed: requests, events and their acks,
    // transitions, notifications, all read with SQL on the file.
    assert_eq!(alice_rows(&s, alice.id), before);
    // She still polls the event Bob tried to acknowledge, first.
    let again = poll(&alice);
    assert_eq!(first_event(&again), event);
    assert_eq!(
        again.get("attributes").and_then(|a| a.get_str("total")),
        alices_total.as_deref()
    );
    assert_eq!(s.request(&alice.token, saved)["state"], "new");
    assert_eq!(s.request(&alice.token, sched)["state"], "queued");
    // The all-or-nothing delete cancelled not even Bob's own task; his
    // own cancel did take his saved order.
    assert_eq!(s.request(&bob.token, bobs_sched)["state"], "queued");
    // The rows can fail: the same calls do reach Alice's objects for her
    // and, on the task face, for the operator.
    let a = task_call(
        &s,
        "GET",
        &format!("/bdom/task/status/{order}/-/-/-/{}/", alice.id),
        &format!("Bearer {}", s.operator),
        "",
    );
    assert!(
        a.status == 200 && a.text.contains("alice-xcp.com"),
        "{}",
        a.text
    );
    let a = task_call(
        &s,
        "GET",
        &format!("/bdom/task/scheduled/-/-/-/-/{}/", alice.id),
        &basic(&alice),
        "",
    );
    assert!(
        a.status == 200 && a.text.contains(&sched.to_string()),
        "{}",
        a.text
    );
    let r = xcp_reply(
        &s.xcp(
            &alice,
            xcp_envelope(
                "GET_ORDER_INFO",
                "DOMAIN",
                &format!(r#"<item key="order_id">{order}</item>"#),
            )
            .as_bytes(),
        ),
    );
    assert_eq!(r.get_str("is_success"), Some("1"), "{r:?}");
    let a = task_call(
        &s,
        "POST",
        &format!("/bdom/task/delete/-/-/-/-/{}/", alice.id),
        &basic(&alice),
        &format!("<request><delete><task_id>{sched}</task_id></delete></request>"),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.request(&alice.token, sched)["failure"], "aborted");
}

/// The first-start operator token is printed once on stdout, never logged,
/// stored only as its SHA-256 digest, and not printed again.
#[test]
fn the_first_start_token_is_shown_once_and_stored_only_hashed() {
    use sha2::{Digest, Sha256};
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    let start = |lines_to_read: usize| {
        let mut child = Command::new(crate::support::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .env("RUST_LOG", "regdesk=debug,info")
            .env_remove("REGDESK_OPERATOR_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..lines_to_read {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            lines.push(line.trim().to_string());
        }
        (child, lines, out)
    };
    let (mut child, lines, _) = start(2);
    let base = lines[0].strip_prefix("listening on ").unwrap().to_string();
    let token = lines[1]
        .strip_prefix("operator token: ")
        .unwrap()
        .to_string();
    let me = ureq::get(&format!("{base}/api/v1/me"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(me.contains("\"operator\""), "{me}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("ready"), "the log is on: {stderr}");
    assert!(!stderr.contains(&token), "the token was logged: {stderr}");

    // On disk: the digest, never the token.
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let hashes: Vec<String> = conn
        .prepare("select hash from tokens")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hashes, vec![digest]);
    drop(conn);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }

    // A second start on the same file prints no token.
    let (mut child, lines, mut out) = start(1);
    assert!(lines[0].starts_with("listening on "), "{lines:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains("token"), "{rest}");
}
