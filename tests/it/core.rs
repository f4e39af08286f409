//! The engine over the native API: orders walking the state machine, the
//! notification FIFO, waits and the clock, returns to the owner, errors.

use serde_json::json;

use crate::support::{error_of, owner, raw, Server};

#[test]
fn register_finishes_with_a_success_notification_and_an_invoice_item() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let r = s.order(&alice, "example.com", "create", owner());
    assert_eq!(r["state"], "queued");
    let id = r["id"].as_i64().unwrap();
    s.tick();
    let r = s.request(&alice, id);
    assert_eq!(r["state"], "finished", "{r}");
    let history: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["new", "queued", "processing", "finished"]);
    assert_eq!(r["invoice_items"].as_array().unwrap().len(), 1);
    assert_eq!(r["invoice_items"][0]["amount_cents"], 1200);

    let n = s.get("/api/v1/notification", &alice);
    assert_eq!(n.status, 200);
    let n = n.json();
    assert_eq!(
        (
            n["type"].as_str(),
            n["action"].as_str(),
            n["status"].as_str()
        ),
        (Some("domain"), Some("create"), Some("success"))
    );
    assert_eq!(n["message"], "Domain registration successful");
    assert_eq!(n["request_id"], id);

    let d = s.get("/api/v1/domains/example.com", &alice).json();
    assert_eq!(d["status"], "active");
    assert_eq!(d["transfer_lock"], true);
    let list = s.get("/api/v1/domains", &alice).json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[test]
fn notifications_are_a_fifo_marked_read_by_delete() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    for name in ["one.com", "two.com", "three-fail.com"] {
        s.order(&alice, name, "create", owner());
    }
    s.tick();
    let mut seen = Vec::new();
    loop {
        let a = s.get("/api/v1/notification", &alice);
        if a.status == 204 {
            break;
        }
        assert_eq!(a.status, 200, "{}", a.text);
        let n = a.json();
        // The same oldest message comes back until it is deleted.
        assert_eq!(s.get("/api/v1/notification", &alice).json()["id"], n["id"]);
        let del = s.call(
            "DELETE",
            &format!("/api/v1/notification/{}", n["id"]),
            Some(&alice),
            None,
        );
        assert_eq!(del.status, 204);
        let again = s.call(
            "DELETE",
            &format!("/api/v1/notification/{}", n["id"]),
            Some(&alice),
            None,
        );
        assert_eq!(again.status, 204, "repeating a delete is harmless");
        seen.push((
            n["domain"].as_str().unwrap().to_string(),
            n["status"].as_str().unwrap().to_string(),
        ));
        assert!(seen.len() < 10);
    }
    assert_eq!(
        seen,
        [
            ("one.com".to_string(), "success".to_string()),
            ("two.com".into(), "success".into()),
            ("three-fail.com".into(), "error".into())
        ]
    );
    let all = s.get("/api/v1/notifications?status=read", &alice).json();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        s.get("/api/v1/notifications?status=unread", &alice).json()["items"],
        json!([])
    );
}

#[test]
fn a_transfer_waits_on_the_registrant_until_the_clock_moves_five_days() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let mut params = owner();
    params["auth_code"] = json!("s3cret");
    let id = s.order(&alice, "moving.org", "transfer", params)["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&alice, id);
    assert_eq!(
        (r["state"].as_str(), r["waiting_on"].as_str()),
        (Some("processing"), Some("registrant"))
    );
    assert_eq!(r["order_status"], "processed");
    s.advance("4d");
    assert_eq!(s.request(&alice, id)["state"], "processing");
    s.advance("1d");
    let r = s.request(&alice, id);
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(
        s.get("/api/v1/notification", &alice).json()["message"],
        "Domain transfer successful"
    );
}

#[test]
fn a_wrong_auth_code_returns_the_transfer_to_its_owner_without_charges() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let mut params = owner();
    params["auth_code"] = json!("wrong");
    let id = s.order(&alice, "moving.org", "transfer", params)["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&alice, id);
    assert_eq!(r["state"], "incomplete");
    assert_eq!(r["missing"], json!(["auth_code"]));
    assert_eq!(
        r["invoice_items"],
        json!([]),
        "idempotent return leaves no charge"
    );
    assert!(r["annotations"][0]["text"]
        .as_str()
        .unwrap()
        .contains("auth code"));
    // Fixed and submitted again, it goes through.
    let a = s.call(
        "PATCH",
        &format!("/api/v1/requests/{id}"),
        Some(&alice),
        Some(
            &json!({"params": {"auth_code": "right", "contacts": owner()["contacts"]}}).to_string(),
        ),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        s.action(&alice, id, "submit", json!({})).json()["state"],
        "queued"
    );
}

#[test]
fn releasing_a_locked_domain_is_denied_and_an_unlocked_one_pends_then_succeeds() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    s.order(&alice, "keep.net", "create", owner());
    s.tick();
    s.call("DELETE", "/api/v1/notification/1", Some(&alice), None);
    let id = s.order(&alice, "keep.net", "release", json!({}))["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&alice, id);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("declined"))
    );
    let n = s.get("/api/v1/notification", &alice).json();
    assert_eq!(
        (n["action"].as_str(), n["status"].as_str()),
        (Some("release"), Some("denied"))
    );
    assert_eq!(n["message"], "Domain transfer was denied");
    s.call(
        "DELETE",
        &format!("/api/v1/notification/{}", n["id"]),
        Some(&alice),
        None,
    );

    // Lift the lock, then release: pending, and gone after five days.
    s.order(
        &alice,
        "keep.net",
        "update",
        json!({"transfer_lock": false}),
    );
    s.tick();
    assert_eq!(
        s.get("/api/v1/domains/keep.net", &alice).json()["transfer_lock"],
        false
    );
    s.call("DELETE", "/api/v1/notification/3", Some(&alice), None);
    let id = s.order(&alice, "keep.net", "release", json!({}))["id"]
        .as_i64()
        .unwrap();
    s.tick();
    assert_eq!(
        s.get("/api/v1/domains/keep.net", &alice).json()["status"],
        "pending_release"
    );
    let n = s.get("/api/v1/notification", &alice).json();
    assert_eq!(
        (n["action"].as_str(), n["status"].as_str()),
        (Some("release"), Some("pending"))
    );
    s.advance("5d");
    assert_eq!(s.request(&alice, id)["state"], "finished");
    assert_eq!(s.get("/api/v1/domains/keep.net", &alice).status, 404);
}

#[test]
fn a_fail_name_fails_with_an_error_notification_and_a_mail_to_the_owner() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let id = s.order(&alice, "x-fail.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&alice, id);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("registry"))
    );
    assert_eq!(r["order_status"], "declined");
    assert_eq!(r["task_status"], "FAILED_EXT");
    assert_eq!(r["invoice_items"], json!([]));
    let n = s.get("/api/v1/notification", &alice).json();
    assert_eq!(
        (n["status"].as_str(), n["message"].as_str()),
        (Some("error"), Some("Domain registration failed"))
    );
    let mail = s
        .get(&format!("/api/v1/mail?request_id={id}"), &s.operator)
        .json();
    assert_eq!(mail["items"][0]["recipient"], "alice@example.net");
}

#[test]
fn a_limbo_name_goes_to_limbo_after_retries_with_a_mail_to_operators() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let id = s.order(&alice, "x-limbo.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&s.operator, id);
    assert_eq!(r["state"], "limbo", "{r}");
    assert_eq!(r["attempts"], 3);
    assert!(r["last_error"].as_str().unwrap().contains("unexpected"));
    let mail = s
        .get(&format!("/api/v1/mail?request_id={id}"), &s.operator)
        .json();
    let m = &mail["items"][0];
    assert_eq!(m["recipient"], "operator@localhost");
    assert!(m["subject"].as_str().unwrap().contains("needs attention"));
    assert!(
        m["body"].as_str().unwrap().contains("queued -> processing"),
        "{m}"
    );
    // needs attention = limbo
    let list = s
        .get(
            "/api/v1/requests?internal_status=needs_attention",
            &s.operator,
        )
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // An operator retries it: back to the queue, and limbo again.
    assert_eq!(
        s.action(&s.operator, id, "retry", json!({})).json()["state"],
        "queued"
    );
    s.tick();
    assert_eq!(s.request(&s.operator, id)["state"], "limbo");
    let r = s.action(
        &s.operator,
        id,
        "resolve",
        json!({"outcome": "finished", "note": "done by hand"}),
    );
    assert_eq!(r.json()["state"], "finished");
    assert_eq!(
        r.json()["invoice_items"].as_array().unwrap().len(),
        1,
        "charged once however often retried"
    );
}

#[test]
fn review_send_back_leaves_incomplete_with_the_annotation_and_no_charge() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let mut params = owner();
    params["premium"] = json!(true);
    let id = s.order(&alice, "gold.com", "create", params)["id"]
        .as_i64()
        .unwrap();
    assert_eq!(s.request(&alice, id)["state"], "review");
    // Customers cannot authorise or send back.
    assert_eq!(s.action(&alice, id, "authorise", json!({})).status, 403);
    // The annotation is required.
    let a = s.action(&s.operator, id, "send-back", json!({}));
    assert_eq!(
        error_of(&a),
        (422, "invalid".into(), Some("annotation".into()))
    );
    let a = s.action(&s.operator, id, "send-back", json!({"annotation": "   "}));
    assert_eq!(a.status, 422);
    let a = s.action(
        &s.operator,
        id,
        "send-back",
        json!({"annotation": "Please confirm the premium price"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let r = a.json();
    assert_eq!(r["state"], "incomplete");
    assert_eq!(
        r["annotations"][0]["text"],
        "Please confirm the premium price"
    );
    assert_eq!(
        r["history"].as_array().unwrap().last().unwrap()["reason"],
        "Please confirm the premium price"
    );
    assert_eq!(r["invoice_items"], json!([]));
    let list = s
        .get(
            "/api/v1/requests?internal_status=missing_information",
            &alice,
        )
        .json();
    assert_eq!(list["items"][0]["id"], id);
}

#[test]
fn authorising_a_review_request_processes_it_with_its_charges() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let mut params = owner();
    params["premium"] = json!(true);
    let id = s.order(&alice, "gold.com", "create", params)["id"]
        .as_i64()
        .unwrap();
    let r = s.action(&s.operator, id, "authorise", json!({})).json();
    assert_eq!(
        (r["state"].as_str(), r["waiting_on"].as_str()),
        (Some("processing"), Some("internal"))
    );
    assert_eq!(r["invoice_items"].as_array().unwrap().len(), 2, "{r}");
    s.tick();
    assert_eq!(s.request(&alice, id)["state"], "finished");
}

#[test]
fn submitting_a_second_order_cancels_the_first_pending_one() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let first = s
        .post(
            "/api/v1/requests",
            &alice,
            json!({"domain": "twice.com", "operation": "create"}),
        )
        .json();
    assert_eq!(first["state"], "new");
    let second = s.order(&alice, "twice.com", "create", owner());
    assert_eq!(second["state"], "queued");
    let first = s.request(&alice, first["id"].as_i64().unwrap());
    assert_eq!(
        (first["state"].as_str(), first["failure"].as_str()),
        (Some("failed"), Some("duplicate"))
    );
    assert_eq!(first["order_status"], "canceled");
}

#[test]
fn cancel_pending_aborts_only_old_unsubmitted_requests_of_the_caller() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    let old = s
        .post(
            "/api/v1/requests",
            &alice,
            json!({"domain": "old.com", "operation": "create"}),
        )
        .json();
    let bobs = s
        .post(
            "/api/v1/requests",
            &bob,
            json!({"domain": "bob.com", "operation": "create"}),
        )
        .json();
    s.advance("3d");
    let young = s
        .post(
            "/api/v1/requests",
            &alice,
            json!({"domain": "young.com", "operation": "create"}),
        )
        .json();
    let a = s.post(
        "/api/v1/requests/cancel-pending",
        &alice,
        json!({"older_than_days": 2}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["cancelled"], json!([old["id"]]));
    assert_eq!(
        s.request(&alice, old["id"].as_i64().unwrap())["failure"],
        "expired"
    );
    assert_eq!(
        s.request(&alice, young["id"].as_i64().unwrap())["state"],
        "new"
    );
    assert_eq!(
        s.request(&bob, bobs["id"].as_i64().unwrap())["state"],
        "new"
    );
    let a = s.post(
        "/api/v1/requests/cancel-pending",
        &alice,
        json!({"older_than_days": -1}),
    );
    assert_eq!(error_of(&a).2.as_deref(), Some("older_than_days"));
}

#[test]
fn an_invalid_transition_is_409_and_changes_nothing() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let id = s.order(&alice, "done.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let before = s.request(&alice, id);
    let a = s.action(&alice, id, "abort", json!({}));
    assert_eq!(error_of(&a), (409, "conflict".into(), None));
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("finished"));
    let a = s.action(&s.operator, id, "retry", json!({}));
    assert_eq!(a.status, 409);
    let after = s.request(&alice, id);
    assert_eq!(before["history"], after["history"]);
    assert_eq!(before["updated_at"], after["updated_at"]);
}

#[test]
fn a_customer_gets_404_for_another_accounts_objects() {
    let s = Server::start();
    let (alice_id, alice) = s.customer("alice");
    let (bob_id, bob) = s.customer("bob");
    let id = s.order(&alice, "private.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let n = s.get("/api/v1/notification", &alice).json();
    for (method, path) in [
        ("GET", format!("/api/v1/requests/{id}")),
        ("POST", format!("/api/v1/requests/{id}/abort")),
        ("POST", format!("/api/v1/requests/{id}/annotate")),
        ("PATCH", format!("/api/v1/requests/{id}")),
        ("GET", "/api/v1/domains/private.com".to_string()),
        ("DELETE", format!("/api/v1/notification/{}", n["id"])),
    ] {
        let a = s.call(method, &path, Some(&bob), Some("{\"text\":\"x\"}"));
        assert_eq!(a.status, 404, "{method} {path}: {}", a.text);
    }
    assert_eq!(s.get("/api/v1/notification", &bob).status, 204);
    assert_eq!(s.get("/api/v1/requests", &bob).json()["items"], json!([]));
    assert_eq!(s.get("/api/v1/domains", &bob).json()["items"], json!([]));
    // Asking for another account's list is not found; a bad account_id is
    // refused for customers too.
    for list in ["requests", "requests.csv", "domains"] {
        let other = s.get(&format!("/api/v1/{list}?account_id={alice_id}"), &bob);
        assert_eq!(other.status, 404, "{list}: {}", other.text);
        let own = s.get(&format!("/api/v1/{list}?account_id={bob_id}"), &bob);
        assert_eq!(own.status, 200, "{list}: {}", own.text);
        for bad in ["9223372036854775808", "x"] {
            let a = s.get(&format!("/api/v1/{list}?account_id={bad}"), &bob);
            assert_eq!(
                error_of(&a),
                (422, "invalid".into(), Some("account_id".into())),
                "{list}"
            );
        }
    }
    // Alice still has her notification unread.
    assert_eq!(s.get("/api/v1/notification", &alice).json()["id"], n["id"]);
    // Customers cannot reach operator endpoints.
    for path in ["/api/v1/accounts", "/api/v1/mail", "/api/v1/sim/rules"] {
        assert_eq!(s.get(path, &bob).status, 403, "{path}");
    }
    assert_eq!(s.post("/api/v1/tick", &bob, json!({})).status, 403);
    assert_eq!(
        s.post("/api/v1/clock", &bob, json!({"advance": "1d"}))
            .status,
        403
    );
}

#[test]
fn an_account_is_created_from_good_fields_and_bad_ones_are_named() {
    let s = Server::start();
    let count = || {
        s.get("/api/v1/accounts", &s.operator).json()["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = count();
    let bad = [
        (
            json!({"name": "eve", "email": "eve@example.net", "role": "admin"}),
            "role",
        ),
        (
            json!({"name": "eve", "email": "eve@example.net", "role": 1}),
            "role",
        ),
        (json!({"name": "eve", "email": "not an address"}), "email"),
        (json!({"name": "eve"}), "email"),
        (json!({"name": "e ve", "email": "eve@example.net"}), "name"),
        (
            json!({"name": "eve", "email": "eve@example.net", "review_limit_cents": -1}),
            "review_limit_cents",
        ),
        (
            json!({"name": "eve", "email": "eve@example.net", "review_all": "yes"}),
            "review_all",
        ),
        (
            json!({"name": "eve", "email": "eve@example.net", "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in bad {
        let a = s.post("/api/v1/accounts", &s.operator, body.clone());
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(field.into())),
            "{body}: {}",
            a.text
        );
    }
    assert_eq!(count(), before, "a refused account was created");
    // null stands for a field not given, as the API document says.
    let a = s.post(
        "/api/v1/accounts",
        &s.operator,
        json!({"name": "eve", "email": "eve@example.net", "role": null, "review_all": null, "review_limit_cents": null}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["role"], "customer");
    assert_eq!(a.json()["review_all"], false);
    let a = s.post(
        "/api/v1/accounts",
        &s.operator,
        json!({"name": "olga", "email": "olga@example.net", "role": "operator"}),
    );
    assert_eq!(a.json()["role"], "operator", "{}", a.text);
    assert_eq!(count(), before + 2);
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_nothing_changes() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let cases: Vec<(&str, u16, &str, Option<&str>)> = vec![
        ("{not json", 400, "malformed", None),
        ("[1,2]", 400, "malformed", None),
        (
            "{\"domain\":\"a.com\",\"operation\":\"steal\"}",
            422,
            "invalid",
            Some("operation"),
        ),
        (
            "{\"domain\":\"not a domain\",\"operation\":\"create\"}",
            422,
            "invalid",
            Some("domain"),
        ),
        (
            "{\"domain\":\"-bad.com\",\"operation\":\"create\"}",
            422,
            "invalid",
            Some("domain"),
        ),
        ("{\"operation\":\"create\"}", 422, "invalid", Some("domain")),
        (
            "{\"domain\":\"a.com\",\"operation\":\"create\",\"params\":{\"period\":99}}",
            422,
            "invalid",
            Some("params.period"),
        ),
        (
            "{\"domain\":\"a.com\",\"operation\":\"create\",\"exec_date\":\"soon\"}",
            422,
            "invalid",
            Some("exec_date"),
        ),
        (
            "{\"domain\":\"a.com\",\"operation\":\"create\",\"depends_on\":999}",
            422,
            "invalid",
            Some("depends_on"),
        ),
        (
            "{\"domain\":\"a.com\",\"operation\":\"create\",\"colour\":1}",
            422,
            "invalid",
            Some("colour"),
        ),
        (
            "{\"domain\":5,\"operation\":\"create\"}",
            422,
            "invalid",
            Some("domain"),
        ),
    ];
    for (body, status, code, field) in cases {
        let a = s.call("POST", "/api/v1/requests", Some(&alice), Some(body));
        assert_eq!(
            error_of(&a),
            (status, code.to_string(), field.map(String::from)),
            "{body}: {}",
            a.text
        );
    }
    // Deeply nested JSON is malformed, not a crash.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        s.call("POST", "/api/v1/requests", Some(&alice), Some(&deep))
            .status,
        400
    );
    // Over 1 MiB: 413.
    let big = format!(
        "{{\"domain\":\"a.com\",\"operation\":\"create\",\"x\":\"{}\"}}",
        "a".repeat(1_100_000)
    );
    let a = s.call("POST", "/api/v1/requests", Some(&alice), Some(&big));
    assert_eq!(error_of(&a), (413, "too_large".into(), None));
    // No credentials, bad credentials.
    assert_eq!(s.call("GET", "/api/v1/requests", None, None).status, 401);
    assert_eq!(
        s.call("GET", "/api/v1/requests", Some("rd_nope"), None)
            .status,
        401
    );
    // Bad list parameters.
    for q in [
        "limit=0",
        "limit=501",
        "limit=x",
        "state=flying",
        "internal_status=sad",
        "after=-3",
    ] {
        let a = s.get(&format!("/api/v1/requests?{q}"), &alice);
        assert_eq!(a.status, 422, "{q}: {}", a.text);
    }
    assert_eq!(s.get("/api/v1/requests/abc", &alice).status, 404);
    // A method a path does not serve is 405, and `Allow` names the ones it
    // does (RFC 9110), as the route table has them.
    for (method, path, allow) in [
        ("DELETE", "/api/v1/requests", "GET, HEAD, POST"),
        ("PUT", "/api/v1/requests/7", "GET, HEAD, PATCH"),
        ("GET", "/api/v1/requests/7/submit", "POST"),
        ("TRACE", "/api/v1/notification/7", "DELETE"),
        ("POST", "/api/v1/webhook", "DELETE, GET, HEAD, PUT"),
        ("PATCH", "/api/v1/requests/bulk", "POST"),
        ("GET", "/api/v1/requests/cancel-pending", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/api/openapi.json", "GET, HEAD"),
    ] {
        let a = s.call(method, path, Some(&alice), None);
        assert_eq!(a.status, 405, "{method} {path}: {}", a.text);
        assert_eq!(a.allow.as_deref(), Some(allow), "{method} {path}");
        assert_eq!(a.json()["error"]["code"], "method_not_allowed");
    }
    // HEAD is answered wherever GET is: the same status and headers, no
    // body (the next answer on the connection follows the headers).
    for (path, token, status) in [
        ("/healthz", None, 200),
        ("/api/v1/me", Some(alice.as_str()), 200),
        ("/api/v1/requests/7", Some(alice.as_str()), 404),
        ("/api/v1/requests/7/submit", Some(alice.as_str()), 405),
        ("/", None, 200),
    ] {
        let get = s.call("GET", path, token, None);
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let (_, both) = raw(
            &s,
            format!(
                "HEAD {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n\
                 GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        // The HEAD answer's headers, each line ending in CRLF, and what
        // follows them.
        let (head, next) = both.split_once("\r\n\r\n").expect("a HEAD answer");
        let head = format!("{head}\r\n");
        assert_eq!(get.status, status, "GET {path}");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "HEAD {path}: {head}"
        );
        let head_lower = head.to_ascii_lowercase();
        let length = format!("content-length: {}\r\n", get.text.len());
        assert!(head_lower.contains(&length), "HEAD {path}: {head}");
        // No cache keeps an answer (tokens, API keys, customers' data);
        // the web UI's files set their own caching.
        assert_eq!(
            head_lower.contains("cache-control: no-store\r\n"),
            path != "/",
            "HEAD {path}: {head}"
        );
        assert!(
            head_lower.contains("x-content-type-options: nosniff\r\n"),
            "{head}"
        );
        assert!(head_lower.contains("\r\nserver: regdesk\r\n"), "{head}");
        assert!(
            next.starts_with("HTTP/1.1 200 "),
            "after HEAD {path}: {next:?}"
        );
    }
    // A path nothing serves stays 404, without `Allow`.
    let a = s.call(
        "DELETE",
        "/api/v1/requests/7/submit/now",
        Some(&alice),
        None,
    );
    assert_eq!((a.status, a.allow), (404, None));
    // Nothing was created by any of it.
    assert_eq!(s.get("/api/v1/requests", &alice).json()["items"], json!([]));
}

#[test]
fn a_huge_declared_body_is_refused_and_the_server_keeps_serving() {
    use std::io::{Read, Write};
    let s = Server::start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /api/v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000000000\r\n\r\n{{",
        s.operator
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("\r\nServer: regdesk\r\n"), "{head}");
    // The client is told the connection ends with this answer.
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{head}"
    );
    drop(conn);
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
    assert_eq!(s.get("/api/v1/requests", &s.operator).status, 200);
}

#[test]
fn idempotency_key_replays_the_same_response() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let body =
        json!({"domain": "once.com", "operation": "create", "params": owner(), "submit": true})
            .to_string();
    let key = [("Idempotency-Key", "order-42")];
    let a = s.call_with("POST", "/api/v1/requests", Some(&alice), Some(&body), &key);
    let b = s.call_with("POST", "/api/v1/requests", Some(&alice), Some(&body), &key);
    assert_eq!(a.status, 201);
    assert_eq!(b.status, 201);
    assert_eq!(a.json(), b.json());
    assert_eq!(
        a.text, b.text,
        "a replay answers the very text of the first"
    );
    assert_eq!(
        s.get("/api/v1/requests", &alice).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let other = json!({"domain": "twice.com", "operation": "create"}).to_string();
    let c = s.call_with("POST", "/api/v1/requests", Some(&alice), Some(&other), &key);
    assert_eq!(error_of(&c).2.as_deref(), Some("Idempotency-Key"));
}

#[test]
fn lists_filter_and_page_with_cursors() {
    let s = Server::start();
    let (alice_id, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    for i in 0..7 {
        s.order(&alice, &format!("page{i}.com"), "create", owner());
    }
    s.order(&alice, "z-limbo.com", "create", owner());
    s.post(
        "/api/v1/requests",
        &bob,
        json!({"domain": "bob.net", "operation": "renew"}),
    );
    s.tick();
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let q = match &next {
            Some(n) => format!("/api/v1/requests?limit=3&state=finished&after={n}"),
            None => "/api/v1/requests?limit=3&state=finished".to_string(),
        };
        let page = s.get(&q, &alice).json();
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["state"], "finished");
            ids.push(item["id"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 7);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let check = |q: &str, token: &str, want: usize| {
        let a = s.get(&format!("/api/v1/requests?{q}"), token);
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        assert_eq!(a.json()["items"].as_array().unwrap().len(), want, "{q}");
    };
    check("domain=page3.com", &alice, 1);
    check("domain_prefix=page", &alice, 7);
    check("domain_contains=limbo", &alice, 1);
    check("state=limbo", &alice, 1);
    check("not_state=finished", &alice, 1);
    check("operation=renew", &s.operator, 1);
    check("operation=renew", &alice, 0);
    check(&format!("account_id={alice_id}"), &s.operator, 8);
    check("state=new,limbo", &s.operator, 2);
    let csv = s.get("/api/v1/requests.csv?state=finished", &alice);
    assert!(csv.content_type.starts_with("text/csv"));
    assert_eq!(csv.text.lines().count(), 8, "{}", csv.text);
}

#[test]
fn a_dependent_request_runs_after_its_dependency_and_fails_with_it() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let first = s.order(&alice, "base-slow.com", "create", owner());
    let a = s.post(
        "/api/v1/requests",
        &alice,
        json!({"domain": "base-slow.com", "operation": "update", "params": {"nameservers": ["ns1.example.net"]},
               "submit": true, "depends_on": first["id"]}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let dep = a.json()["id"].as_i64().unwrap();
    s.tick();
    assert_eq!(
        s.request(&alice, dep)["state"],
        "queued",
        "waits for its dependency"
    );
    s.advance("1h");
    assert_eq!(
        s.request(&alice, first["id"].as_i64().unwrap())["state"],
        "finished"
    );
    // The update ran once the create finished (and, being for a -slow
    // name, waits on the registry in turn).
    assert_eq!(s.request(&alice, dep)["waiting_on"], "registry");
    s.advance("1h");
    assert_eq!(s.request(&alice, dep)["state"], "finished");

    let failing = s.order(&alice, "gone-fail.com", "create", owner());
    let a = s.post(
        "/api/v1/requests",
        &alice,
        json!({"domain": "gone-fail.com", "operation": "renew", "submit": true, "depends_on": failing["id"]}),
    );
    let dep = a.json()["id"].as_i64().unwrap();
    s.tick();
    let r = s.request(&alice, dep);
    assert_eq!(
        (r["state"].as_str(), r["failure"].as_str()),
        (Some("failed"), Some("dependency")),
        "{r}"
    );
    assert_eq!(r["task_status"], "FAILED_INT");
}

/// A tick's later jobs stop once one finds nothing left to do; what comes
/// due after that (a dependent whose dependency just finished) is the next
/// tick's, and one `POST /tick` still runs them all.
#[test]
fn one_tick_runs_a_chain_of_dependents_and_more_orders_than_a_job_takes() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let mut ids = vec![s.order(&alice, "chain.com", "create", owner())["id"]
        .as_i64()
        .unwrap()];
    for n in 1..=10 {
        let a = s.post(
            "/api/v1/requests",
            &alice,
            json!({"domain": "chain.com", "operation": "update",
                   "params": {"nameservers": [format!("ns{n}.example.net")]},
                   "submit": true, "depends_on": ids.last()}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        ids.push(a.json()["id"].as_i64().unwrap());
    }
    for n in 0..20 {
        ids.push(
            s.order(&alice, &format!("bulk-{n}.com"), "create", owner())["id"]
                .as_i64()
                .unwrap(),
        );
    }
    s.tick();
    for id in &ids {
        assert_eq!(s.request(&alice, *id)["state"], "finished", "request {id}");
    }
    assert_eq!(
        s.get("/api/v1/domains/chain.com", &alice).json()["nameservers"],
        json!(["ns10.example.net"])
    );
}

#[test]
fn exec_date_holds_a_request_until_the_clock_reaches_it() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    // Ten years, so that the domain is still there when the clock gets there.
    let mut ten_years = owner();
    ten_years["period"] = json!(10);
    s.order(&alice, "later.com", "create", ten_years);
    s.tick();
    let a = s.post(
        "/api/v1/requests",
        &alice,
        json!({"domain": "later.com", "operation": "hold", "submit": true, "exec_date": "2035-01-01"}),
    );
    let id = a.json()["id"].as_i64().unwrap();
    s.tick();
    assert_eq!(s.request(&alice, id)["state"], "queued");
    let sched = s.get("/api/v1/scheduled", &alice).json();
    assert_eq!(sched["items"][0]["id"], id);
    let a = s.post(
        "/api/v1/clock",
        &s.operator,
        json!({"set": "2035-01-01T00:00:01Z"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.request(&alice, id)["state"], "finished");
    assert_eq!(
        s.get("/api/v1/domains/later.com", &alice).json()["status"],
        "on_hold"
    );
}

#[test]
fn the_event_feed_lists_transitions_after_a_cursor() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    s.order(&alice, "feed.com", "create", owner());
    s.order(&bob, "other.com", "create", owner());
    s.tick();
    let feed = s.get("/api/v1/events?limit=2", &alice).json();
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["from"].clone(), items[0]["to"].as_str()),
        (json!(null), Some("new"))
    );
    let rest = s
        .get(
            &format!("/api/v1/events?after={}", feed["next"].as_str().unwrap()),
            &alice,
        )
        .json();
    let tos: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(tos, ["processing", "finished"]);
    assert!(rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["domain"] == "feed.com"));
    let all = s.get("/api/v1/events?limit=500", &s.operator).json();
    assert_eq!(all["items"].as_array().unwrap().len(), 8);
    // `after=latest` skips the past: only what happens next is listed.
    let latest = s.get("/api/v1/events?after=latest", &alice).json();
    assert_eq!(latest["items"], json!([]));
    assert_eq!(latest["next"], rest["next"]);
    s.order(&alice, "next.com", "create", owner());
    let after = format!("/api/v1/events?after={}", latest["next"].as_str().unwrap());
    let fresh = s.get(&after, &alice).json();
    assert_eq!(fresh["items"].as_array().unwrap().len(), 2, "{fresh}");
    assert!(fresh["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["domain"] == "next.com"));
}

#[test]
fn a_restart_on_the_same_file_keeps_everything() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let done = s.order(&alice, "kept.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let waiting = s.order(&alice, "waiting-slow.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let before = s.request(&alice, done);
    let s = s.restart();
    assert_eq!(s.request(&alice, done), before);
    assert_eq!(
        s.get("/api/v1/notification", &alice).json()["domain"],
        "kept.com"
    );
    assert_eq!(s.request(&alice, waiting)["waiting_on"], "registry");
    // The clock of a restarted test instance starts again at the real time;
    // the wait ends once it passes.
    s.advance("2h");
    assert_eq!(s.request(&alice, waiting)["state"], "finished");
}

#[test]
fn post_domains_orders_a_registration_and_get_domain_shows_the_order() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let a = s.post(
        "/api/v1/domains",
        &alice,
        json!({"name": "fresh.io", "contacts": owner()["contacts"]}),
    );
    assert_eq!(a.status, 202, "{}", a.text);
    let d = s.get("/api/v1/domains/fresh.io", &alice).json();
    assert_eq!(d["status"], "ordered");
    assert_eq!(d["order"]["state"], "queued");
    let a = s.post("/api/v1/domains", &alice, json!({"name": "nocontact.io"}));
    assert_eq!(error_of(&a).2.as_deref(), Some("contacts.owner.name"));
    s.tick();
    assert_eq!(
        s.get("/api/v1/domains/fresh.io", &alice).json()["status"],
        "active"
    );
    assert_eq!(s.get("/api/v1/domains/never.io", &alice).status, 404);
}

/// A query parameter the operation does not take is refused, naming it and
/// what the operation takes (a typo such as `?stat=new` listed everything),
/// and so is one given twice (only the last counted); a write with a query
/// changes nothing. Lists go in one value, comma-separated.
#[test]
fn unknown_and_repeated_query_parameters_are_refused() {
    let s = Server::start();
    let (_, alice) = s.customer("qa");
    s.order(&alice, "q1.com", "create", owner());
    s.order(&alice, "q2.com", "transfer", owner());
    for (path, field, message) in [
        (
            "/api/v1/requests?stat=new",
            "query",
            "query: unknown parameter \"stat\"; this operation takes state, not_state, \
             internal_status, not_internal_status, operation, not_operation, domain, \
             not_domain, domain_prefix, domain_contains, account_id, not_account_id, \
             waiting_on, limit, after",
        ),
        (
            "/api/v1/me?x=",
            "query",
            "query: unknown parameter \"x\"; this operation takes none",
        ),
        (
            "/api/v1/events?limit=5&limit=7",
            "limit",
            "limit: given more than once (several values go in one, separated by commas)",
        ),
        (
            "/api/v1/requests?operation=create&operation=transfer",
            "operation",
            "operation: given more than once (several values go in one, separated by commas)",
        ),
    ] {
        let a = s.get(path, &alice);
        assert_eq!(a.status, 422, "{path}: {}", a.text);
        assert_eq!(a.json()["error"]["field"], field, "{path}");
        assert_eq!(a.json()["error"]["message"], message, "{path}");
    }
    // A long name is quoted and cut.
    let long = "n".repeat(5000);
    let a = s.get(&format!("/api/v1/requests?{long}=1"), &alice);
    assert_eq!(a.status, 422);
    assert!(a.text.len() < 1000, "{}", a.text);
    // One value with a list, and an empty one beside it, are taken.
    let a = s.get(
        "/api/v1/requests?operation=&operation=create,transfer",
        &alice,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["items"].as_array().map(Vec::len), Some(2));
    // A write with a query is refused before it runs.
    let a = s.call(
        "POST",
        "/api/v1/requests?submit=true",
        Some(&alice),
        Some(r#"{"domain": "q3.com", "operation": "create"}"#),
    );
    assert_eq!(a.status, 422, "{}", a.text);
    let all = s.get("/api/v1/requests", &alice).json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
}

/// An idempotency key longer than 255 characters is refused naming the
/// header, and nothing is created.
#[test]
fn an_overlong_idempotency_key_is_refused_and_creates_nothing() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let body = json!({"domain": "once.com", "operation": "create"}).to_string();
    let long = "k".repeat(256);
    let key = [("Idempotency-Key", long.as_str())];
    let a = s.call_with("POST", "/api/v1/requests", Some(&alice), Some(&body), &key);
    assert_eq!(
        (a.status, error_of(&a).2.as_deref()),
        (422, Some("Idempotency-Key"))
    );
    let listed = s.get("/api/v1/requests", &alice).json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
}

/// Every bulk body that cannot be acted on is refused naming its field,
/// and changes nothing.
#[test]
fn bulk_bodies_are_refused_naming_the_field() {
    let s = Server::start();
    let (_, alice) = s.customer("alice");
    let r = s.order(&alice, "held.com", "create", owner());
    let id = r["id"].as_i64().unwrap();
    let many: Vec<i64> = (1..=1001).collect();
    for (body, field) in [
        (json!({"action": "resolve", "ids": [id]}), "action"),
        (json!({"action": "nonsense", "ids": [id]}), "action"),
        (
            json!({"action": "abort", "ids": [id], "filter": {}}),
            "filter",
        ),
        (json!({"action": "abort", "ids": many}), "ids"),
        (json!({"action": "abort"}), "ids"),
        (
            json!({"action": "abort", "filter": {"state": true}}),
            "filter.state",
        ),
        (
            json!({"action": "abort", "ids": [id], "reason": "x".repeat(1001)}),
            "reason",
        ),
    ] {
        let a = s.post("/api/v1/requests/bulk", &s.operator, body.clone());
        assert_eq!(
            (a.status, error_of(&a).2.as_deref()),
            (422, Some(field)),
            "{body}: {}",
            a.text
        );
    }
    assert_eq!(s.request(&alice, id)["state"], r["state"]);
}
