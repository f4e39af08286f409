//! The BDOM-style task face over HTTP: the seed's examples 6.2-6.7 replayed
//! against matching tasks, scheduled operations and their cancellation,
//! dependencies, credentials and malformed paths.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::{agent, basic, owner, send, xml_tree as tree, El, Server, PATIENT};

// ----- the seed's examples (004, 6.2-6.7), verbatim ---------------------------

const SEED_6_2_URL: &str = "http://backend.antagus.de/bdom/task/scheduled/-/-/-/-/13048/";
const SEED_6_2: &str = include_str!("../seeds/bdom_6_2.xml");

const SEED_6_3_URL: &str = "http://backend.antagus.de/bdom/task/delete/-/-/-/-/13048/";
const SEED_6_3_BODY: &str = include_str!("../seeds/bdom_6_3_request.xml");
const SEED_6_3: &str = "<response>delete ok</response>";

const SEED_6_4_URL: &str = "http://backend.antagus.de/bdom/task/status/-/-/-/-/13048/";
const SEED_6_4: &str = include_str!("../seeds/bdom_6_4.xml");

const SEED_6_5_URL: &str = "http://backend.antagus.de/bdom/task/status/3151063/-/-/-/13048/";
const SEED_6_5: &str = include_str!("../seeds/bdom_6_5.xml");

const SEED_6_6_URL: &str =
    "http://backend.antagus.de/bdom/task/status/-/-/domain/nic-domain-example.de/13048/";
const SEED_6_6: &str = SEED_6_5;

const SEED_6_7_URL: &str = "http://backend.antagus.de/bdom/task/status/-/PENDING_EXT/-/-/13048/";
const SEED_6_7: &str = SEED_6_4;

// ----- helpers ----------------------------------------------------------------

/// An answer of the task face.
#[derive(Debug)]
struct Xml {
    status: u16,
    content_type: String,
    www_authenticate: Option<String>,
    allow: Option<String>,
    text: String,
}

impl Xml {
    fn tree(&self) -> El {
        tree(&self.text)
    }

    /// Asserts an XML error with `status` whose message mentions `needle`.
    fn error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "application/xml; charset=utf-8");
        let t = self.tree();
        assert_eq!(t.name, "error", "{}", self.text);
        assert_eq!(t.child("code").text, status.to_string());
        let message = &t.child("message").text;
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn call(s: &Server, method: &str, path: &str, auth: Option<&str>, body: Option<&str>) -> Xml {
    let mut headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
    if body.is_some() {
        headers.push(("Content-Type", "application/xml"));
    }
    let a = send(
        &agent(PATIENT),
        method,
        &s.url(path),
        &headers,
        body.map(str::as_bytes),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Xml {
        status: a.status,
        www_authenticate: a.header("WWW-Authenticate").map(String::from),
        content_type: a.content_type,
        allow: a.allow,
        text: a.text,
    }
}

fn get(s: &Server, path: &str, auth: &str) -> Xml {
    call(s, "GET", path, Some(auth), None)
}

fn post(s: &Server, path: &str, auth: &str, body: &str) -> Xml {
    call(s, "POST", path, Some(auth), Some(body))
}

/// The path of a seed URL, with the seed's ids replaced by ours.
fn seed_path(url: &str, ids: &[(&str, i64)]) -> String {
    let path = url.strip_prefix("http://backend.antagus.de").unwrap();
    substitute(path, ids)
}

fn substitute(text: &str, ids: &[(&str, i64)]) -> String {
    ids.iter().fold(text.to_string(), |t, (seed, ours)| {
        t.replace(seed, &ours.to_string())
    })
}

/// Compares an answer's element tree with a seed response.
fn check_seed(answer: &Xml, seed: &str, ids: &[(&str, i64)]) {
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content_type, "application/xml; charset=utf-8");
    assert_eq!(
        answer.tree(),
        tree(&substitute(seed, ids)),
        "\n{}",
        answer.text
    );
}

fn set_clock(s: &Server, at: &str) {
    let a = s.post("/api/v1/clock", &s.operator, json!({ "set": at }));
    assert_eq!(a.status, 200, "{}", a.text);
}

fn create(s: &Server, token: &str, body: Value) -> i64 {
    let a = s.post("/api/v1/requests", token, body);
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()["id"].as_i64().unwrap()
}

fn transfer(s: &Server, token: &str, domain: &str) -> i64 {
    let mut params = owner();
    params["auth_code"] = json!("secret");
    create(
        s,
        token,
        json!({"domain": domain, "operation": "transfer", "params": params, "submit": true}),
    )
}

fn scheduled_delete(s: &Server, token: &str, domain: &str, exec_date: &str) -> i64 {
    let id = create(
        s,
        token,
        json!({"domain": domain, "operation": "delete", "exec_date": exec_date, "submit": true}),
    );
    assert_eq!(s.request(token, id)["state"], "queued");
    id
}

/// A finished registration of `domain` for `token`.
fn registered(s: &Server, token: &str, domain: &str) -> i64 {
    let id = s.order(token, domain, "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    assert_eq!(s.request(token, id)["state"], "finished");
    id
}

fn state_of(s: &Server, token: &str, id: i64) -> (String, Option<String>) {
    let r = s.request(token, id);
    (
        r["state"].as_str().unwrap().to_string(),
        r["failure"].as_str().map(String::from),
    )
}

fn delete_body(ids: &[i64]) -> String {
    let ids: String = ids
        .iter()
        .map(|id| format!("<task_id>{id}</task_id>"))
        .collect();
    format!("<request><delete>{ids}</delete></request>")
}

// ----- the seed's examples ----------------------------------------------------

#[test]
fn the_seed_examples_replay_against_matching_tasks() {
    let s = Server::start();
    let (uid, tok) = s.customer("reseller");
    let auth = basic(uid, &tok);

    // Two transfers created at the seed's times, both waiting on the registrant.
    set_clock(&s, "2009-01-20T21:07:56Z");
    let t1 = transfer(&s, &tok, "examples-nic-domain.de");
    set_clock(&s, "2009-02-27T17:09:50Z");
    let t2 = transfer(&s, &tok, "nic-domain-example.de");
    s.tick();
    for id in [t1, t2] {
        assert_eq!(s.request(&tok, id)["waiting_on"], "registrant");
    }
    let ids = [("13048", uid), ("3071767", t1), ("3151063", t2)];

    for (url, seed) in [
        (SEED_6_4_URL, SEED_6_4),
        (SEED_6_5_URL, SEED_6_5),
        (SEED_6_6_URL, SEED_6_6),
        (SEED_6_7_URL, SEED_6_7),
    ] {
        let path = seed_path(url, &ids);
        check_seed(&get(&s, &path, &auth), seed, &ids);
        // Bearer works as well as Basic.
        check_seed(&get(&s, &path, &bearer(&tok)), seed, &ids);
    }
    // No task is in another status.
    for status in ["SUCCESS", "PENDING_INT", "FAILED_INT", "FAILED_EXT"] {
        let a = get(
            &s,
            &format!("/bdom/task/status/-/{status}/-/-/{uid}/"),
            &auth,
        );
        assert_eq!(
            a.tree(),
            tree("<multiresponse></multiresponse>"),
            "{status}"
        );
    }

    // Later the transfers complete and two deletes are scheduled.
    set_clock(&s, "2009-03-18T18:10:10Z");
    let d1 = scheduled_delete(&s, &tok, "nic-domain-example.de", "2010-01-17");
    set_clock(&s, "2009-05-14T19:42:07Z");
    let d2 = scheduled_delete(&s, &tok, "examples-nic-domain.de", "2010-02-21");
    let ids = [("13048", uid), ("3190159", d1), ("3315581", d2)];

    let path = seed_path(SEED_6_2_URL, &ids);
    check_seed(&get(&s, &path, &auth), SEED_6_2, &ids);

    let path = seed_path(SEED_6_3_URL, &ids);
    let body = substitute(SEED_6_3_BODY, &ids);
    check_seed(&post(&s, &path, &auth, &body), SEED_6_3, &ids);

    for id in [d1, d2] {
        assert_eq!(
            state_of(&s, &tok, id),
            ("failed".into(), Some("aborted".into()))
        );
    }
    let a = get(&s, &seed_path(SEED_6_2_URL, &ids), &auth);
    assert_eq!(a.tree(), tree("<multiresponse></multiresponse>"));
    // Past both exec dates nothing runs: the domains are still there.
    set_clock(&s, "2010-03-01T00:00:00Z");
    for name in ["nic-domain-example.de", "examples-nic-domain.de"] {
        let d = s.get(&format!("/api/v1/domains/{name}"), &tok);
        assert_eq!(d.status, 200, "{}", d.text);
        assert_eq!(d.json()["status"], "active");
    }
    for id in [d1, d2] {
        assert_eq!(state_of(&s, &tok, id).0, "failed");
    }
    // The cancelled deletes are FAILED_INT tasks now.
    let failed = get(
        &s,
        &format!("/bdom/task/status/-/FAILED_INT/-/-/{uid}/"),
        &auth,
    )
    .tree();
    assert_eq!(failed.column("task_id"), [d1.to_string(), d2.to_string()]);
    assert_eq!(failed.column("opcode"), ["delete", "delete"]);
    let done = get(
        &s,
        &format!("/bdom/task/status/-/SUCCESS/-/-/{uid}/"),
        &auth,
    )
    .tree();
    assert_eq!(done.column("task_id"), [t1.to_string(), t2.to_string()]);
}

#[test]
fn opcodes_follow_the_operation_and_one_name_may_have_several_tasks() {
    let s = Server::start();
    let (uid, tok) = s.customer("alice");
    let auth = basic(uid, &tok);
    set_clock(&s, "2030-01-01T00:00:00Z");
    registered(&s, &tok, "mine.com");
    for (op, params) in [
        ("renew", json!({})),
        ("update", json!({"transfer_lock": false})),
        ("privacy", json!({})),
        ("hold", json!({})),
    ] {
        create(
            &s,
            &tok,
            json!({"domain": "mine.com", "operation": op, "params": params, "submit": true}),
        );
        s.tick();
    }
    create(
        &s,
        &tok,
        json!({"domain": "mine.com", "operation": "release", "submit": true}),
    );
    s.tick();
    let t = get(
        &s,
        &format!("/bdom/task/status/-/-/domain/mine.com/{uid}/"),
        &auth,
    )
    .tree();
    assert_eq!(
        t.column("opcode"),
        [
            "create",
            "renew",
            "update",
            "privacy",
            "hold",
            "transfer-out"
        ]
    );
    assert_eq!(
        t.column("status"),
        [
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
            "PENDING_EXT"
        ]
    );
    assert_eq!(t.column("date")[0], "2030-01-01 00:00:00");
    assert_eq!(t.column("object"), vec!["domain"; 6]);
    // A name with no tasks is an empty list; a name in capitals is the same name.
    let none = get(
        &s,
        &format!("/bdom/task/status/-/-/domain/other.com/{uid}/"),
        &auth,
    );
    assert_eq!(none.tree(), tree("<multiresponse></multiresponse>"));
    let upper = get(
        &s,
        &format!("/bdom/task/status/-/-/DOMAIN/MINE.COM/{uid}/"),
        &auth,
    );
    assert_eq!(upper.tree().column("opcode").len(), 6);
    // A task id that matches nothing is not found, nor is one with another status.
    get(&s, &format!("/bdom/task/status/999999/-/-/-/{uid}/"), &auth).error(404, "999999");
    let first = t.column("task_id")[0].clone();
    get(
        &s,
        &format!("/bdom/task/status/{first}/FAILED_EXT/-/-/{uid}/"),
        &auth,
    )
    .error(404, &first);
}

// ----- scheduling ---------------------------------------------------------------

#[test]
fn a_scheduled_delete_runs_only_once_the_clock_passes_its_exec_date() {
    let s = Server::start();
    let (uid, tok) = s.customer("alice");
    let auth = basic(uid, &tok);
    set_clock(&s, "2030-01-01T12:00:00Z");
    registered(&s, &tok, "going.de");
    let id = scheduled_delete(&s, &tok, "going.de", "2030-01-10");
    let scheduled = format!("/bdom/task/scheduled/-/-/-/-/{uid}/");

    s.advance("8d");
    assert_eq!(s.request(&tok, id)["state"], "queued");
    let t = get(&s, &scheduled, &auth).tree();
    assert_eq!(t.column("task_id"), [id.to_string()]);
    assert_eq!(t.column("exec-date"), ["2030-01-10"]);
    assert_eq!(t.column("time"), ["2030-01-01 12:00:00"]);
    let status = get(&s, &format!("/bdom/task/status/{id}/-/-/-/{uid}/"), &auth).tree();
    assert_eq!(status.child("status").text, "PENDING_INT");

    set_clock(&s, "2030-01-09T23:59:59Z");
    assert_eq!(s.request(&tok, id)["state"], "queued");
    set_clock(&s, "2030-01-10T00:00:00Z");
    assert_eq!(s.request(&tok, id)["state"], "finished");
    assert_eq!(s.get("/api/v1/domains/going.de", &tok).status, 404);
    assert_eq!(
        get(&s, &scheduled, &auth).tree(),
        tree("<multiresponse></multiresponse>")
    );
    let status = get(&s, &format!("/bdom/task/status/{id}/-/-/-/{uid}/"), &auth).tree();
    assert_eq!(status.child("status").text, "SUCCESS");
    // A delete that has run is no longer a scheduled task.
    post(
        &s,
        &format!("/bdom/task/delete/-/-/-/-/{uid}/"),
        &auth,
        &delete_body(&[id]),
    )
    .error(404, &id.to_string());
}

#[test]
fn only_hold_and_delete_take_an_exec_date() {
    let s = Server::start();
    let (_, tok) = s.customer("alice");
    registered(&s, &tok, "kept.com");
    for op in [
        "create",
        "transfer",
        "renew",
        "update",
        "release",
        "backorder",
        "privacy",
    ] {
        let a = s.post(
            "/api/v1/requests",
            &tok,
            json!({"domain": "kept.com", "operation": op, "exec_date": "2099-01-01"}),
        );
        assert_eq!(a.status, 422, "{op}: {}", a.text);
        assert_eq!(a.json()["error"]["field"], "exec_date", "{op}");
    }
    let all = s.get("/api/v1/requests", &tok).json();
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "nothing created");
    for op in ["hold", "delete"] {
        create(
            &s,
            &tok,
            json!({"domain": "kept.com", "operation": op, "exec_date": "2099-01-01"}),
        );
    }
    // PATCH is held to the same rule, and changes nothing when refused.
    let renew = create(
        &s,
        &tok,
        json!({"domain": "kept.com", "operation": "renew"}),
    );
    let a = s.call(
        "PATCH",
        &format!("/api/v1/requests/{renew}"),
        Some(&tok),
        Some(r#"{"exec_date": "2099-01-01"}"#),
    );
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.json()["error"]["field"], "exec_date");
    assert_eq!(s.request(&tok, renew)["exec_date"], Value::Null);
}

#[test]
fn a_delete_with_one_bad_task_cancels_nothing() {
    let s = Server::start();
    let (alice_id, alice) = s.customer("alice");
    let (bob_id, bob) = s.customer("bob");
    let auth = basic(alice_id, &alice);
    set_clock(&s, "2030-01-01T00:00:00Z");
    registered(&s, &alice, "a.de");
    let done = registered(&s, &alice, "b.de");
    registered(&s, &bob, "c.de");
    let a = scheduled_delete(&s, &alice, "a.de", "2030-06-01");
    let b = scheduled_delete(&s, &alice, "b.de", "2030-06-01");
    let theirs = scheduled_delete(&s, &bob, "c.de", "2030-06-01");
    let unscheduled = create(
        &s,
        &alice,
        json!({"domain": "a.de", "operation": "hold", "submit": false}),
    );
    let path = format!("/bdom/task/delete/-/-/-/-/{alice_id}/");
    let scheduled = format!("/bdom/task/scheduled/-/-/-/-/{alice_id}/");
    let before = get(&s, &scheduled, &auth).text;

    for (ids, missing) in [
        (vec![a, 999_999], 999_999),
        (vec![a, b, theirs], theirs),
        (vec![a, done], done),
        (vec![b, unscheduled], unscheduled),
        (vec![a, -1], -1),
    ] {
        post(&s, &path, &auth, &delete_body(&ids)).error(404, &format!("task {missing}"));
        assert_eq!(get(&s, &scheduled, &auth).text, before, "{ids:?}");
    }
    for body in [
        "",
        "<request><delete><task_id>abc</task_id></delete></request>",
        "<request><delete/></request>",
        "<request><cancel><task_id>1</task_id></cancel></request>",
        "<request><delete><task_id>1</task_id></delete>",
        "not xml",
    ] {
        post(&s, &path, &auth, body).error(400, "Task.xsd");
    }
    // Path segments other than USER_ID are not how a delete names its tasks.
    post(
        &s,
        &format!("/bdom/task/delete/{a}/-/-/-/{alice_id}/"),
        &auth,
        &delete_body(&[a]),
    )
    .error(400, "TASK_ID");
    // Another user's path is forbidden to a customer.
    post(
        &s,
        &format!("/bdom/task/delete/-/-/-/-/{alice_id}/"),
        &basic(bob_id, &bob),
        &delete_body(&[a]),
    )
    .error(403, "USER_ID");
    // An operator deleting on alice's path cannot reach bob's task.
    post(&s, &path, &bearer(&s.operator), &delete_body(&[theirs])).error(404, "task");
    assert_eq!(get(&s, &scheduled, &auth).text, before);
    for id in [a, b] {
        assert_eq!(s.request(&alice, id)["state"], "queued");
    }
    assert_eq!(s.request(&bob, theirs)["state"], "queued");

    // A task named twice is cancelled once; a request without <delete> does nothing.
    let ok = post(&s, &path, &auth, &delete_body(&[a, a]));
    assert_eq!(ok.tree(), tree("<response>delete ok</response>"));
    let ok = post(&s, &path, &auth, "<request/>");
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        get(&s, &scheduled, &auth).tree().column("task_id"),
        [b.to_string()]
    );
    // An operator may cancel on the owner's behalf.
    let ok = post(&s, &path, &bearer(&s.operator), &delete_body(&[b]));
    assert_eq!(ok.status, 200, "{}", ok.text);
    for id in [a, b] {
        assert_eq!(
            state_of(&s, &alice, id),
            ("failed".into(), Some("aborted".into()))
        );
    }
    s.advance("365d");
    assert_eq!(s.get("/api/v1/domains/a.de", &alice).status, 200);
    assert_eq!(s.request(&bob, theirs)["state"], "finished");
}

// ----- dependencies ---------------------------------------------------------------

#[test]
fn dependencies_wait_and_a_failed_dependency_shows_as_failed_int() {
    let s = Server::start();
    let (uid, tok) = s.customer("alice");
    let auth = basic(uid, &tok);
    let task = |id: i64| {
        get(&s, &format!("/bdom/task/status/{id}/-/-/-/{uid}/"), &auth)
            .tree()
            .child("status")
            .text
            .clone()
    };

    // An update that waits for a transfer to finish.
    let moving = transfer(&s, &tok, "moving.de");
    let update = create(
        &s,
        &tok,
        json!({"domain": "moving.de", "operation": "update", "params": {"transfer_lock": false},
               "depends_on": moving, "submit": true}),
    );
    s.tick();
    assert_eq!(
        (task(moving), task(update)),
        ("PENDING_EXT".into(), "PENDING_INT".into())
    );
    assert_eq!(s.request(&tok, update)["state"], "queued");
    s.advance("5d");
    assert_eq!(
        (task(moving), task(update)),
        ("SUCCESS".into(), "SUCCESS".into())
    );

    // A renew of a registration the registry refuses never runs.
    let create_id = s.order(&tok, "broken-fail.de", "create", owner())["id"]
        .as_i64()
        .unwrap();
    let renew = create(
        &s,
        &tok,
        json!({"domain": "broken-fail.de", "operation": "renew", "depends_on": create_id,
               "submit": true}),
    );
    s.tick();
    assert_eq!(task(create_id), "FAILED_EXT");
    assert_eq!(task(renew), "FAILED_INT");
    assert_eq!(
        state_of(&s, &tok, renew),
        ("failed".into(), Some("dependency".into()))
    );
    let failed = get(
        &s,
        &format!("/bdom/task/status/-/FAILED_INT/-/-/{uid}/"),
        &auth,
    )
    .tree();
    assert_eq!(failed.column("task_id"), [renew.to_string()]);
    assert_eq!(failed.column("opcode"), ["renew"]);
    let ext = get(
        &s,
        &format!("/bdom/task/status/-/FAILED_EXT/-/-/{uid}/"),
        &auth,
    )
    .tree();
    assert_eq!(ext.column("task_id"), [create_id.to_string()]);
}

// ----- credentials, paths, methods ---------------------------------------------

#[test]
fn credentials_are_checked_and_customers_see_only_their_own_tasks() {
    let s = Server::start();
    let (alice_id, alice) = s.customer("alice");
    let (bob_id, bob) = s.customer("bob");
    let path = format!("/bdom/task/status/-/-/-/-/{alice_id}/");

    let refused = [
        None,
        Some(basic(alice_id, "rd_not_a_token")),
        Some(basic(bob_id, &alice)),
        Some(basic(alice_id, "")),
        Some("Basic %%%notbase64".to_string()),
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{alice}"))
        )),
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&alice)
        )),
        Some(bearer("rd_not_a_token")),
        Some(format!("Token {alice}")),
        Some("Bearer".to_string()),
    ];
    for auth in &refused {
        let a = call(&s, "GET", &path, auth.as_deref(), None);
        a.error(401, "credentials");
        assert_eq!(
            a.www_authenticate.as_deref(),
            Some("Basic realm=\"regdesk\""),
            "{auth:?}"
        );
    }
    // Unauthenticated deletes are refused before the body is looked at.
    call(
        &s,
        "POST",
        &format!("/bdom/task/delete/-/-/-/-/{alice_id}/"),
        None,
        Some("junk"),
    )
    .error(401, "credentials");

    for auth in [basic(alice_id, &alice), bearer(&alice), bearer(&s.operator)] {
        let a = get(&s, &path, &auth);
        assert_eq!(a.status, 200, "{auth}: {}", a.text);
        assert_eq!(a.content_type, "application/xml; charset=utf-8");
    }
    get(&s, &path, &basic(bob_id, &bob)).error(403, "USER_ID");
    get(
        &s,
        &format!("/bdom/task/scheduled/-/-/-/-/{alice_id}/"),
        &bearer(&bob),
    )
    .error(403, "USER_ID");
    get(
        &s,
        "/bdom/task/status/-/-/-/-/999999/",
        &bearer(&s.operator),
    )
    .error(404, "user 999999");

    // Another account's task is not found, even by id.
    let id = s.order(&alice, "alices.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    get(
        &s,
        &format!("/bdom/task/status/{id}/-/-/-/{bob_id}/"),
        &bearer(&bob),
    )
    .error(404, &id.to_string());
    let mine = get(
        &s,
        &format!("/bdom/task/status/{id}/-/-/-/{alice_id}/"),
        &bearer(&s.operator),
    );
    assert_eq!(mine.tree().child("task_id").text, id.to_string());
    assert_eq!(mine.tree().child("user_id").text, alice_id.to_string());
}

#[test]
fn malformed_paths_and_wrong_methods_are_xml_errors() {
    let s = Server::start();
    let (uid, tok) = s.customer("alice");
    let auth = basic(uid, &tok);
    for (path, needle) in [
        ("/bdom/task".to_string(), "path"),
        ("/bdom/task/".to_string(), "path"),
        ("/bdom/task/status/-/-/-/-/".to_string(), "6 segments"),
        (
            format!("/bdom/task/status/-/-/-/-/{uid}/extra/"),
            "6 segments",
        ),
        (format!("/bdom/task/status//-/-/-/{uid}/"), "TASK_ID"),
        (format!("/bdom/task/frobnicate/-/-/-/-/{uid}/"), "OPCODE"),
        (format!("/bdom/task/status/-/DONE/-/-/{uid}/"), "STATUS"),
        (format!("/bdom/task/status/abc/-/-/-/{uid}/"), "TASK_ID"),
        (format!("/bdom/task/status/0/-/-/-/{uid}/"), "TASK_ID"),
        ("/bdom/task/status/-/-/-/-/abc/".to_string(), "USER_ID"),
        ("/bdom/task/status/-/-/-/-/-/".to_string(), "USER_ID"),
        (
            format!("/bdom/task/status/-/-/-/nic-domain-example.de/{uid}/"),
            "object must be supplied",
        ),
        (format!("/bdom/task/status/-/-/host/a.de/{uid}/"), "OBJECT"),
        (
            format!("/bdom/task/status/-/-/domain/not_a_name/{uid}/"),
            "NAME",
        ),
        (
            format!("/bdom/task/status/-/-/domain/a%zz.de/{uid}/"),
            "NAME",
        ),
    ] {
        get(&s, &path, &auth).error(400, needle);
    }
    for (method, path, allow) in [
        (
            "POST",
            format!("/bdom/task/status/-/-/-/-/{uid}/"),
            "GET, HEAD",
        ),
        (
            "DELETE",
            format!("/bdom/task/scheduled/-/-/-/-/{uid}/"),
            "GET, HEAD",
        ),
        ("GET", format!("/bdom/task/delete/-/-/-/-/{uid}/"), "POST"),
        ("PUT", format!("/bdom/task/delete/-/-/-/-/{uid}/"), "POST"),
    ] {
        let body = matches!(method, "POST" | "PUT").then_some("");
        let a = call(&s, method, &path, Some(&auth), body);
        a.error(405, "method");
        assert_eq!(a.allow.as_deref(), Some(allow), "{method} {path}");
    }
}
