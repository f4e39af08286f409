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
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", &self.csrf),
        ];
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
    assert!(out
        .header("set-cookie")
        .unwrap_or_default()
        .contains("Max-Age=0"));
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
    assert_eq!(
        error_of(&a),
        (422, "invalid".into(), Some("password".into()))
    );
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
    assert!(a
        .header("set-cookie")
        .unwrap_or_default()
        .contains("; Secure"));
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
    let secret = url
        .split("#set-password=")
        .nth(1)
        .expect("the link's token");
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
        assert_eq!(
            s.call(method, path, None, None).status,
            401,
            "{method} {path}"
        );
    }
}

#[test]
fn five_failed_sign_ins_refuse_the_account_until_an_operator_unlocks_it() {
    let s = Server::start_with(&["--test-clock"]);
    let (id, _, _) = customer_signed_in(&s, "acme");
    for _ in 0..5 {
        assert_eq!(sign_in_answer(&s, "acme", "wrong password").status, 401);
    }
    // Now even the right password is refused, and the answer says for how long.
    let a = sign_in_answer(&s, "acme", PASSWORD);
    assert_eq!(a.status, 429, "{}", a.text);
    let wait: i64 = a.header("retry-after").unwrap_or("0").parse().unwrap_or(0);
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    let path = format!("/api/v1/accounts/{id}/unlock");
    let (_, customer) = s.customer("beta");
    assert_eq!(s.call("POST", &path, Some(&customer), None).status, 403);
    assert_eq!(s.call("POST", &path, Some(&s.operator), None).status, 204);
    browser(&sign_in_answer(&s, "acme", PASSWORD));
}

#[test]
fn the_refusal_after_failed_sign_ins_lifts_by_itself() {
    let s = Server::start_with(&["--test-clock"]);
    customer_signed_in(&s, "acme");
    for _ in 0..5 {
        sign_in_answer(&s, "acme", "wrong password");
    }
    assert_eq!(sign_in_answer(&s, "acme", PASSWORD).status, 429);
    s.advance("16m");
    browser(&sign_in_answer(&s, "acme", PASSWORD));
}

#[test]
fn a_customer_sets_only_its_own_password() {
    let s = Server::start();
    let (id, token) = s.customer("acme");
    let (other, _) = s.customer("beta");
    assert_eq!(set_password(&s, &token, id, PASSWORD).status, 204);
    let a = set_password(&s, &token, other, PASSWORD);
    assert!(matches!(a.status, 403 | 404), "{}", a.text);
    let a = set_password(&s, &s.operator, id, "short");
    assert_eq!(
        error_of(&a),
        (422, "invalid".into(), Some("password".into()))
    );
    // An operator's change ends the account's sessions.
    let b = browser(&sign_in_answer(&s, "acme", PASSWORD));
    assert_eq!(
        set_password(&s, &s.operator, id, "another horse").status,
        204
    );
    assert_eq!(b.call(&s, "GET", "/api/v1/me", None).status, 401);
}

#[test]
fn the_demo_prints_a_password_for_each_demo_account_after_the_tokens() {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.args(["serve", "--demo", "--memory", "--listen", "127.0.0.1:0"]);
    let (mut child, mut out, base) = crate::support::launch(cmd);
    let mut lines = Vec::new();
    while lines.len() < 8 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit_once(' ').map_or("", |(k, _)| k))
        .collect();
    assert_eq!(
        kinds[1..],
        [
            "demo token alice:",
            "demo token bob:",
            "demo token carol:",
            "demo password alice:",
            "demo password bob:",
            "demo password carol:",
            "demo password operator:",
        ],
        "{lines:?}"
    );
    // A customer and the operator sign in to the web desk with theirs.
    let mut answers = Vec::new();
    for (name, line) in [("alice", &lines[4]), ("operator", &lines[7])] {
        let password = line.rsplit_once(": ").map(|(_, p)| p).unwrap_or_default();
        let body = json!({ "name": name, "password": password }).to_string();
        let a = crate::support::call_at(&base, "POST", "/api/v1/session", None, Some(&body), &[]);
        answers.push(a);
    }
    child.kill().ok();
    child.wait().ok();
    for a in answers {
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

#[test]
fn account_passwd_sets_a_password_from_the_flag_or_standard_input() {
    use std::io::Write;
    let s = Server::start();
    let (_, _) = s.customer("acme");
    let db = s.dir.path().join("regdesk.db");
    let db = db.to_string_lossy().to_string();
    let (code, out, err) = crate::support::regdesk([
        "account",
        "passwd",
        "acme",
        "--db",
        &db,
        "--password",
        "short",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("password") && err.contains("8 to 128"),
        "{err}"
    );
    let mut child = std::process::Command::new(crate::support::BIN)
        .args(["account", "passwd", "acme", "--db", &db])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run regdesk");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"piped in horse\n").ok();
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "password set for acme"
    );
    browser(&sign_in_answer(&s, "acme", "piped in horse"));
    let (code, _, err) = crate::support::regdesk([
        "account",
        "passwd",
        "nobody",
        "--db",
        &db,
        "--password",
        PASSWORD,
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn changing_ones_own_password_needs_the_present_one_and_ends_the_other_sessions() {
    let s = Server::start();
    let (id, _, b) = customer_signed_in(&s, "acme");
    let other = browser(&sign_in_answer(&s, "acme", PASSWORD));
    let path = format!("/api/v1/accounts/{id}/password");
    let change = |body: Value| b.call(&s, "PUT", &path, Some(body));
    let a = change(json!({"password": "a new horse"}));
    assert_eq!(
        error_of(&a).2.as_deref(),
        Some("current_password"),
        "{}",
        a.text
    );
    let a = change(json!({"password": "a new horse", "current_password": "a guess"}));
    assert_eq!(
        error_of(&a).2.as_deref(),
        Some("current_password"),
        "{}",
        a.text
    );
    // Nothing changed so far.
    assert_eq!(other.call(&s, "GET", "/api/v1/me", None).status, 200);
    let a = change(json!({"password": "a new horse", "current_password": PASSWORD}));
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(b.call(&s, "GET", "/api/v1/me", None).status, 200);
    assert_eq!(other.call(&s, "GET", "/api/v1/me", None).status, 401);
    assert_eq!(sign_in_answer(&s, "acme", PASSWORD).status, 401);
    browser(&sign_in_answer(&s, "acme", "a new horse"));
}
