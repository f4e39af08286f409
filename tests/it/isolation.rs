//! The isolation matrix: for every endpoint that names an object, a second
//! customer's token gets 404 for the first customer's objects (and changes
//! nothing); lists never show them; customers get 403 on operator actions.
//! Tables of rows: a new face (task paths, XCP) adds its rows here.

use serde_json::{json, Value};

use crate::support::{owner, Server};

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
