//! The web desk's sign-in: passwords, the session cookie, its CSRF token,
//! the sessions list, signing out, set-password links and the refusal
//! after failed sign-ins.

use serde_json::{json, Value};

use crate::support::{error_of, Answer, Server};

const PASSWORD: &str = "correct horse";

/// A browser's session: its cookie and its CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
    account: Value,
}

impl Browser {
    fn call(&self, s: &Server, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        let headers = [("Cookie", self.cookie.as_str()), ("X-CSRF-Token", &self.csrf)];
        s.call_with(method, path, None, body.as_deref(), &headers)
    }

    fn without_csrf(&self, s: &Server, method: &str, path: &str, body: Value) -> Answer {
        let headers = [("Cookie", self.cookie.as_str())];
        s.call_with(method, path, None, Some(&body.to_string()), &headers)
    }
}

fn set_password(s: &Server, token: &str, id: i64, password: &str) -> Answer {
    let body = json!({ "password": password }).to_string();
    s.call(
        "PUT",
        &format!("/api/v1/accounts/{id}/password"),
        Some(token),
        Some(&body),
    )
}

fn sign_in_answer(s: &Server, name: &str, password: &str) -> Answer {
    let body = json!({ "name": name, "password": password }).to_string();
    s.call("POST", "/api/v1/session", None, Some(&body))
}

/// The browser an answer that signed in sets up.
fn browser(a: &Answer) -> Browser {
    assert_eq!(a.status, 200, "{}", a.text);
    let set = a.header("set-cookie").expect("a Set-Cookie header");
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let v = a.json();
    Browser {
        cookie,
        csrf: v["csrf_token"].as_str().expect("csrf_token").to_string(),
        account: v["account"].clone(),
    }
}

/// A customer with a web password, signed in.
fn customer_signed_in(s: &Server, name: &str) -> (i64, String, Browser) {
    let (id, token) = s.customer(name);
    assert_eq!(set_password(s, &s.operator, id, PASSWORD).status, 204);
    let b = browser(&sign_in_answer(s, name, PASSWORD));
    (id, token, b)
}

#[test]
fn a_password_sign_in_sets_a_strict_http_only_cookie_that_works_until_sign_out() {
    let s = Server::start();
    let (id, _, b) = customer_signed_in(&s, "acme");
    assert_eq!(b.account["id"], id);
    let a = sign_in_answer(&s, "acme", PASSWORD);
    let set = a.header("set-cookie").unwrap_or_default().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    // What a new tab does: the cookie alone says who it is, and the CSRF token.
    let me = b.call(&s, "GET", "/api/v1/session", None);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["account"]["name"], "acme");
    assert_eq!(me.json()["csrf_token"], b.csrf.as_str());
    assert_eq!(b.call(&s, "GET", "/api/v1/me", None).json()["name"], "acme");
    let out = b.call(&s, "DELETE", "/api/v1/session", None);
    assert_eq!(out.status, 204, "{}", out.text);
    assert!(out.header("set-cookie").unwrap_or_default().contains("Max-Age=0"));
    assert_eq!(b.call(&s, "GET", "/api/v1/me", None).status, 401);
    assert_eq!(b.call(&s, "GET", "/api/v1/session", None).status, 401);
}

#[test]
fn a_wrong_password_or_name_is_refused_alike() {
    let s = Server::start();
    customer_signed_in(&s, "acme");
    for (name, password) in [("acme", "not the password"), ("nobody", PASSWORD)] {
        let a = sign_in_answer(&s, name, password);
        assert_eq!(a.status, 401, "{name}: {}", a.text);
        assert!(a.header("set-cookie").is_none());
    }
    let a = s.call("POST", "/api/v1/session", None, Some(r#"{"name":"acme"}"#));
    assert_eq!(error_of(&a), (422, "invalid".into(), Some("password".into())));
}

#[test]
fn a_write_with_the_cookie_needs_the_sessions_csrf_token() {
    let s = Server::start();
    let (_, _, b) = customer_signed_in(&s, "acme");
    let order = json!({"domain": "csrf.com", "operation": "create"});
    let a = b.without_csrf(&s, "POST", "/api/v1/requests", order.clone());
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.text.contains("X-CSRF-Token") || a.text.contains("x-csrf-token"));
    let other = Browser {
        csrf: "0".repeat(32),
        ..customer_signed_in(&s, "beta").2
    };
    assert_eq!(
        other
            .call(&s, "POST", "/api/v1/requests", Some(order.clone()))
            .status,
        403
    );
    let list = b.call(&s, "GET", "/api/v1/requests", None).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let made = b.call(&s, "POST", "/api/v1/requests", Some(order));
    assert_eq!(made.status, 201, "{}", made.text);
    // Signing out is a write too.
    let a = b.without_csrf(&s, "DELETE", "/api/v1/session", json!({}));
    assert_eq!(a.status, 403);
}

#[test]
fn sessions_are_listed_and_another_one_can_be_ended() {
    let s = Server::start();
    let (_, _, first) = customer_signed_in(&s, "acme");
    let second = browser(&sign_in_answer(&s, "acme", PASSWORD));
    let list = first.call(&s, "GET", "/api/v1/sessions", None).json();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{list}");
    let mine: Vec<bool> = items.iter().map(|i| i["current"] == true).collect();
    assert_eq!(mine.iter().filter(|c| **c).count(), 1, "{list}");
    let other = items.iter().find(|i| i["current"] == false).expect("other");
    let id = other["id"].as_i64().unwrap_or_default();
    // Another account cannot end it.
    let (_, _, beta) = customer_signed_in(&s, "beta");
    let path = format!("/api/v1/sessions/{id}");
    assert_eq!(beta.call(&s, "DELETE", &path, None).status, 404);
    assert_eq!(second.call(&s, "GET", "/api/v1/me", None).status, 200);
    assert_eq!(first.call(&s, "DELETE", &path, None).status, 204);
    assert_eq!(second.call(&s, "GET", "/api/v1/me", None).status, 401);
    assert_eq!(first.call(&s, "GET", "/api/v1/me", None).status, 200);
}

#[test]
fn a_secure_cookie_when_the_public_url_is_https() {
    let s = Server::start_with(&["--public-url", "https://desk.example"]);
    let (id, _) = s.customer("acme");
    assert_eq!(set_password(&s, &s.operator, id, PASSWORD).status, 204);
    let a = sign_in_answer(&s, "acme", PASSWORD);
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("set-cookie").unwrap_or_default().contains("; Secure"));
}

#[test]
fn a_set_password_link_works_once_and_signs_in() {
    let s = Server::start();
    let (id, token) = s.customer("acme");
    let path = format!("/api/v1/accounts/{id}/password-link");
    assert_eq!(s.call("POST", &path, Some(&token), None).status, 403);
    let a = s.call("POST", &path, Some(&s.operator), None);
    assert_eq!(a.status, 201, "{}", a.text);
    let url = a.json()["url"].as_str().unwrap_or_default().to_string();
    let secret = url.split("#set-password=").nth(1).expect("the link's token");
    let use_link = |password: &str| {
        let body = json!({"token": secret, "password": password}).to_string();
        s.call("POST", "/api/v1/password-link", None, Some(&body))
    };
    // A refused password does not use the link up.
    assert_eq!(
        error_of(&use_link("short")),
        (422, "invalid".into(), Some("password".into()))
    );
    let b = browser(&use_link(PASSWORD));
    assert_eq!(b.account["name"], "acme");
    assert_eq!(use_link(PASSWORD).status, 422);
    browser(&sign_in_answer(&s, "acme", PASSWORD));
}

#[test]
fn the_new_routes_answer_without_credentials_with_401() {
    let s = Server::start();
    for (method, path) in [
        ("GET", "/api/v1/session"),
        ("GET", "/api/v1/sessions"),
        ("DELETE", "/api/v1/sessions/1"),
        ("POST", "/api/v1/accounts/1/unlock"),
    ] {
        assert_eq!(s.call(method, path, None, None).status, 401, "{method} {path}");
    }
}
