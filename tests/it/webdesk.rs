//! What the web desk reads and changes beside requests: charges by month
//! (and as CSV), account edits, and the caller's API tokens.

use serde_json::json;

use crate::support::{error_of, owner, Server};

fn month(s: &Server) -> String {
    let now = s.call("GET", "/api/v1/clock", None, None).json()["now"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    now.chars().take(7).collect()
}

#[test]
fn charges_list_a_months_invoice_items_of_the_callers_account() {
    let s = Server::start_with(&["--test-clock"]);
    let (alice_id, alice) = s.customer("alice");
    let (_, bob) = s.customer("bob");
    s.order(&alice, "paid-one.com", "create", owner());
    s.order(&bob, "bobs.com", "create", owner());
    s.tick();
    let m = month(&s);
    let a = s.get(&format!("/api/v1/charges?month={m}"), &alice);
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    let domains: Vec<&str> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["domain"].as_str())
        .collect();
    assert_eq!(domains, ["paid-one.com"], "{v}");
    assert!(v["total_cents"].as_i64().unwrap_or(0) > 0, "{v}");
    // Operators see every account's, or one account's.
    let all = s
        .get(&format!("/api/v1/charges?month={m}"), &s.operator)
        .json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
    let one = s.get(
        &format!("/api/v1/charges?month={m}&account_id={alice_id}"),
        &s.operator,
    );
    assert_eq!(one.json()["items"].as_array().map(Vec::len), Some(1));
    // Another account's, asked by a customer, is not found.
    let other = s.get(&format!("/api/v1/charges?account_id={alice_id}"), &bob);
    assert_eq!(other.status, 404);
    // Another month has none; a bad month names the field.
    let none = s.get("/api/v1/charges?month=2001-01", &alice).json();
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let bad = s.get("/api/v1/charges?month=2026-13", &alice);
    assert_eq!(
        error_of(&bad),
        (422, "invalid".into(), Some("month".into()))
    );
    let csv = s.get(&format!("/api/v1/charges.csv?month={m}"), &alice);
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.text);
    assert!(lines[1].contains("\"paid-one.com\""), "{}", csv.text);
}

#[test]
fn an_operator_edits_an_account_and_the_new_rule_applies_at_once() {
    let s = Server::start_with(&["--test-clock"]);
    let (id, alice) = s.customer("alice");
    // Known to the server before the edit (its token is remembered).
    assert_eq!(s.get("/api/v1/me", &alice).json()["review_all"], false);
    let path = format!("/api/v1/accounts/{id}");
    let edit = |token: &str, body: serde_json::Value| {
        s.call("PATCH", &path, Some(token), Some(&body.to_string()))
    };
    assert_eq!(edit(&alice, json!({"review_all": true})).status, 403);
    let a = edit(
        &s.operator,
        json!({"review_all": true, "email": "new@example.net"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["email"], "new@example.net");
    let r = s.order(&alice, "reviewed.com", "create", owner());
    assert_eq!(r["state"], "review", "{r}");
    let bad = edit(&s.operator, json!({"review_limit_cents": -1}));
    assert_eq!(
        error_of(&bad),
        (422, "invalid".into(), Some("review_limit_cents".into()))
    );
    assert_eq!(edit(&s.operator, json!({})).status, 422);
    let bad = edit(&s.operator, json!({"role": "king"}));
    assert_eq!(error_of(&bad).2.as_deref(), Some("role"));
    let me = s.get("/api/v1/me", &s.operator).json();
    let own = format!("/api/v1/accounts/{}", me["id"]);
    let body = json!({"role": "customer"}).to_string();
    let a = s.call("PATCH", &own, Some(&s.operator), Some(&body));
    assert_eq!(a.status, 409, "{}", a.text);
}

#[test]
fn a_customer_makes_and_revokes_api_tokens() {
    let s = Server::start();
    let (_, first) = s.customer("alice");
    let a = s.post("/api/v1/tokens", &first, json!({}));
    assert_eq!(a.status, 201, "{}", a.text);
    let second = a.json()["token"].as_str().unwrap_or_default().to_string();
    let second_id = a.json()["id"].as_i64().unwrap_or_default();
    assert_eq!(s.get("/api/v1/me", &second).json()["name"], "alice");
    let list = s.get("/api/v1/tokens", &first).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(
        !list.to_string().contains(&second),
        "tokens are never shown again"
    );
    // The token a request is made with is kept; another one goes at once.
    let path = format!("/api/v1/tokens/{second_id}");
    assert_eq!(s.call("DELETE", &path, Some(&second), None).status, 409);
    let (_, bob) = s.customer("bob");
    assert_eq!(s.call("DELETE", &path, Some(&bob), None).status, 404);
    assert_eq!(s.call("DELETE", &path, Some(&first), None).status, 204);
    assert_eq!(s.get("/api/v1/me", &second).status, 401);
    assert_eq!(s.get("/api/v1/me", &first).status, 200);
}
