//! Hostile input over HTTP: oversized and chunked bodies, stalled and idle
//! clients, oversized headers, invalid UTF-8, deep JSON, SQL metacharacters,
//! path traversal, absurd numbers. Each gets a clear 4xx (never a 500 or a
//! dropped server) and the server keeps answering others: every case is
//! followed by `GET /healthz`. The cases are tables; a new face adds rows.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::support::{owner, Server};

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Sends raw bytes on a new connection and reads the answer until the
/// server closes it (or 10 s pass). Returns the status (0 when the server
/// closed without answering) and the whole answer as text.
fn raw(s: &Server, bytes: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr(s)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading everything (413).
    conn.write_all(bytes).ok();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).ok();
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn assert_serving(s: &Server, after: &str) {
    let a = s.call("GET", "/healthz", None, None);
    assert_eq!(a.status, 200, "not serving after {after}: {}", a.text);
}

/// A request line and headers with `Connection: close`, then `body`.
fn request(s: &Server, method: &str, target: &[u8], extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n{extra}",
            s.operator
        )
        .as_bytes(),
    );
    if !extra.contains("Transfer-Encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[test]
fn raw_protocol_abuse_is_refused_and_the_server_keeps_serving() {
    let s = Server::start();
    let big_chunked = {
        let chunk = vec![b'a'; 64 * 1024];
        let mut body = Vec::new();
        for _ in 0..20 {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        body
    };
    let long_header = format!("X-Long: {}\r\n", "a".repeat(200 * 1024));
    let many_headers: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    // (what, bytes, acceptable statuses; 0 = the server closed the connection)
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "a chunked body over 1 MiB",
            request(&s, "POST", b"/api/v1/requests", "Transfer-Encoding: chunked\r\n", &big_chunked),
            &[413],
        ),
        (
            "a plain body over 1 MiB",
            request(&s, "POST", b"/api/v1/requests", "", &vec![b' '; 1024 * 1024 + 10]),
            &[413],
        ),
        ("a 200 KiB header", request(&s, "GET", b"/api/v1/me", &long_header, b""), &[400, 413, 431, 0]),
        ("5000 headers", request(&s, "GET", b"/api/v1/me", &many_headers, b""), &[400, 413, 431, 0]),
        ("a request line of 100 KiB", request(&s, "GET", format!("/{}", "a".repeat(100 * 1024)).as_bytes(), "", b""), &[400, 404, 414, 0]),
        ("invalid UTF-8 in the body", request(&s, "POST", b"/api/v1/requests", "", b"{\"domain\": \"\xff\xfe.com\"}"), &[400]),
        ("invalid UTF-8 in the path", request(&s, "GET", b"/api/v1/requests/\xff\xfe", "", b""), &[400, 404]),
        ("percent-encoded invalid UTF-8 in the path", request(&s, "GET", b"/api/v1/domains/%ff%fe.com", "", b""), &[400, 404, 422]),
        ("invalid UTF-8 in the query", request(&s, "GET", b"/api/v1/requests?domain_contains=\xff", "", b""), &[400]),
        ("percent-encoded invalid UTF-8 in the query", request(&s, "GET", b"/api/v1/requests?domain_contains=%ff", "", b""), &[400]),
        ("garbage instead of HTTP", b"\x00\x01\x02 hello\r\n\r\n".to_vec(), &[400, 0]),
        ("an unknown method", request(&s, "BREW", b"/api/v1/requests", "", b""), &[400, 404, 405, 501]),
        ("a bad Content-Length", b"POST /api/v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n".to_vec(), &[400, 401, 0]),
    ];
    for (what, bytes, ok) in cases {
        let (status, text) = raw(&s, &bytes);
        assert!(
            ok.contains(&status),
            "{what}: {status} not in {ok:?}: {:.300}",
            text
        );
        assert_serving(&s, what);
    }
}

#[test]
fn deep_json_and_bad_bodies_are_400_or_422_naming_the_problem() {
    let s = Server::start();
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_in_field = format!(
        "{{\"domain\":\"a.com\",\"operation\":\"create\",\"params\":{}1{}}}",
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let cases: Vec<(&str, String, u16)> = vec![
        ("deeply nested arrays", deep_array, 400),
        ("deeply nested params", deep_in_field, 400),
        (
            "a string of 512 KiB",
            json!({"domain": "a".repeat(512 * 1024), "operation": "create"}).to_string(),
            422,
        ),
        (
            "a number too big for i64",
            r#"{"domain":"a.com","operation":"create","depends_on":99999999999999999999999}"#
                .into(),
            422,
        ),
        (
            "a float id",
            r#"{"domain":"a.com","operation":"create","depends_on":1.5}"#.into(),
            422,
        ),
        (
            "a negative id",
            r#"{"domain":"a.com","operation":"create","depends_on":-1}"#.into(),
            422,
        ),
        (
            "a negative period",
            r#"{"domain":"a.com","operation":"create","params":{"period":-1}}"#.into(),
            422,
        ),
        (
            "a huge period",
            r#"{"domain":"a.com","operation":"create","params":{"period":9223372036854775807}}"#
                .into(),
            422,
        ),
        (
            "a period of 1e300",
            r#"{"domain":"a.com","operation":"create","params":{"period":1e300}}"#.into(),
            422,
        ),
        (
            "a year 99999 exec date",
            r#"{"domain":"a.com","operation":"create","exec_date":"99999-01-01"}"#.into(),
            422,
        ),
        (
            "a NUL in the domain",
            "{\"domain\":\"a\\u0000.com\",\"operation\":\"create\"}".into(),
            422,
        ),
        (
            "a lone surrogate",
            r#"{"domain":"\ud800.com","operation":"create"}"#.into(),
            400,
        ),
        (
            "duplicate keys",
            r#"{"domain":"a.com","domain":"b.com","operation":"create","operation":"nope"}"#.into(),
            422,
        ),
    ];
    for (what, body, want) in cases {
        let a = s.call("POST", "/api/v1/requests", Some(&s.operator), Some(&body));
        assert_eq!(a.status, want, "{what}: {:.300}", a.text);
        let v = a.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
        assert_serving(&s, what);
    }
    let list = s.get("/api/v1/requests", &s.operator).json();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "a refused body created something"
    );
}

#[test]
fn absurd_numbers_in_paths_and_queries_are_refused() {
    let s = Server::start();
    let (_, c) = s.customer("numbers");
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("GET", "/api/v1/requests/-1", None, 404),
        ("GET", "/api/v1/requests/0", None, 404),
        ("GET", "/api/v1/requests/99999999999999999999", None, 404),
        ("GET", "/api/v1/requests/9223372036854775807", None, 404),
        ("POST", "/api/v1/requests/-1/abort", Some("{}"), 404),
        ("DELETE", "/api/v1/notification/-1", None, 404),
        (
            "DELETE",
            "/api/v1/notification/99999999999999999999",
            None,
            404,
        ),
        ("GET", "/api/v1/requests?limit=-1", None, 422),
        ("GET", "/api/v1/requests?limit=0", None, 422),
        ("GET", "/api/v1/requests?limit=501", None, 422),
        (
            "GET",
            "/api/v1/requests?limit=99999999999999999999",
            None,
            422,
        ),
        ("GET", "/api/v1/requests?after=-5", None, 422),
        ("GET", "/api/v1/requests?after=1e9", None, 422),
        ("GET", "/api/v1/events?after=-1", None, 422),
        ("GET", "/api/v1/events?limit=9223372036854775807", None, 422),
        ("GET", "/api/v1/notifications?limit=-3", None, 422),
        (
            "POST",
            "/api/v1/requests/cancel-pending",
            Some(r#"{"older_than_days":-1}"#),
            422,
        ),
        (
            "POST",
            "/api/v1/requests/cancel-pending",
            Some(r#"{"older_than_days":9223372036854775807}"#),
            422,
        ),
        (
            "POST",
            "/api/v1/clock",
            Some(r#"{"advance":"99999999999999d"}"#),
            422,
        ),
        ("POST", "/api/v1/clock", Some(r#"{"advance":"-5d"}"#), 422),
        (
            "POST",
            "/api/v1/clock",
            Some(r#"{"set":"99999-01-01"}"#),
            422,
        ),
    ];
    for (method, path, body, want) in cases {
        for token in [&s.operator, &c] {
            let a = s.call(method, path, Some(token), *body);
            let want = if path.contains("/clock") && token == &c {
                403
            } else {
                *want
            };
            assert_eq!(a.status, want, "{method} {path} {body:?}: {:.300}", a.text);
            assert_serving(&s, path);
        }
    }
}

#[test]
fn sql_metacharacters_are_data_in_every_field_and_filter() {
    let s = Server::start();
    let (_, c) = s.customer("quotes");
    let nasty = [
        "'; drop table requests; --",
        "%",
        "_",
        "\\",
        "\" or 1=1 --",
        "' or '1'='1",
    ];
    // Domain names refuse them, naming the field.
    for n in nasty {
        let a = s.post(
            "/api/v1/requests",
            &c,
            json!({"domain": n, "operation": "create"}),
        );
        assert_eq!(
            (a.status, a.json()["error"]["field"].clone()),
            (422, json!("domain")),
            "{n}"
        );
    }
    // Free text keeps them verbatim.
    let mut ids = Vec::new();
    for (i, n) in nasty.iter().enumerate() {
        let mut p = owner();
        p["contacts"]["owner"]["name"] = json!(n);
        let r = s.order(&c, &format!("plain{i}.com"), "create", p);
        let id = r["id"].as_i64().unwrap();
        let a = s.action(&c, id, "annotate", json!({"text": n}));
        assert_eq!(a.status, 200, "{}", a.text);
        let r = s.request(&c, id);
        assert_eq!(r["params"]["contacts"]["owner"]["name"], json!(n));
        assert!(
            r["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["text"] == json!(n)),
            "{r}"
        );
        ids.push(id);
    }
    // Filters take them literally: nothing contains a `%` or `_`.
    for (q, want) in [
        ("domain_contains=%25", 0),
        ("domain_contains=_", 0),
        ("domain_prefix=%25", 0),
        ("domain_prefix=_", 0),
        ("domain_contains=%5C", 0),
        ("domain=%27%3B%20drop%20table%20requests%3B%20--", 0),
        ("domain_contains=plain", nasty.len()),
        ("domain_prefix=plain", nasty.len()),
    ] {
        for token in [&s.operator, &c] {
            let a = s.get(&format!("/api/v1/requests?{q}"), token);
            assert_eq!(a.status, 200, "{q}: {}", a.text);
            assert_eq!(a.json()["items"].as_array().unwrap().len(), want, "{q}");
        }
    }
    for q in [
        "state=%27",
        "operation=%27%20or%201=1",
        "internal_status=%25",
        "waiting_on=_",
    ] {
        let a = s.get(&format!("/api/v1/requests?{q}"), &c);
        assert_eq!(a.status, 422, "{q}: {}", a.text);
    }
    let a = s.get("/api/v1/requests.csv?domain_contains=%25", &c);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.text.lines().count(), 1, "{}", a.text);
    // And the table is still there.
    assert_eq!(
        s.get("/api/v1/requests", &c).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        ids.len()
    );
}

#[test]
fn static_assets_cannot_be_left_by_path_traversal() {
    let s = Server::start();
    let targets: &[&[u8]] = &[
        b"/../Cargo.toml",
        b"/%2e%2e/Cargo.toml",
        b"/%2E%2E%2FCargo.toml",
        b"/..%2fCargo.toml",
        b"/web/../src/lib.rs",
        b"/index.html/../../Cargo.toml",
        b"/..\\Cargo.toml",
        b"/%2e%2e%5cCargo.toml",
        b"/....//....//Cargo.toml",
        b"//etc/passwd",
        b"/%00../Cargo.toml",
        b"/../../../../../../etc/passwd",
        b"/app.js%00.html",
    ];
    for t in targets {
        let (status, text) = raw(&s, &request(&s, "GET", t, "", b""));
        let shown = String::from_utf8_lossy(t);
        assert!(
            [400, 404].contains(&status),
            "{shown}: {status} {:.200}",
            text
        );
        for secret in ["[package]", "pub mod", "root:x:0:0"] {
            assert!(!text.contains(secret), "{shown} leaked {secret}");
        }
        assert_serving(&s, &shown);
    }
    let a = s.call("GET", "/", None, None);
    assert_eq!(a.status, 200);
}

#[test]
fn a_client_that_stalls_mid_body_does_not_block_others() {
    let s = Server::start();
    let mut slow = TcpStream::connect(addr(&s)).unwrap();
    let head = format!(
        "POST /api/v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"domain\":",
        s.operator
    );
    slow.write_all(head.as_bytes()).unwrap();
    // While it stalls, others are served, reads and writes alike.
    for i in 0..20 {
        assert_serving(&s, "a stalled body");
        s.order(&s.operator, &format!("meanwhile{i}.com"), "create", owner());
    }
    drop(slow);
    assert_serving(&s, "the stalled client left");
    assert_eq!(
        s.get("/api/v1/requests?domain_prefix=meanwhile", &s.operator)
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
}

#[test]
fn thousands_of_idle_connections_do_not_starve_a_normal_client() {
    let s = Server::start();
    let mut idle = Vec::new();
    for _ in 0..2000 {
        match TcpStream::connect(addr(&s)) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    // Half of them also start a request and stop after the first line.
    for c in idle.iter_mut().step_by(2) {
        c.write_all(b"GET /healthz HTTP/1.1\r\n").ok();
    }
    for _ in 0..5 {
        assert_serving(&s, "2000 idle connections");
        let me = s.get("/api/v1/me", &s.operator);
        assert_eq!(me.status, 200, "{}", me.text);
    }
    drop(idle);
    thread::sleep(Duration::from_millis(50));
    assert_serving(&s, "closing 2000 connections");
}

#[test]
fn wrong_or_missing_tokens_are_401_everywhere() {
    let s = Server::start();
    let bad: &[Option<&str>] = &[
        None,
        Some(""),
        Some("rd_not_a_token"),
        Some("' or 1=1 --"),
        Some(&"x".repeat(10_000)),
    ];
    for path in [
        "/api/v1/me",
        "/api/v1/requests",
        "/api/v1/notification",
        "/api/v1/tick",
    ] {
        for token in bad {
            let method = if path.ends_with("tick") {
                "POST"
            } else {
                "GET"
            };
            let a = s.call(method, path, *token, None);
            assert_eq!(
                a.status,
                401,
                "{path} {:?}",
                token.map(|t| &t[..t.len().min(20)])
            );
        }
    }
    let (status, _) = raw(
        &s,
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
    );
    assert!([400, 401].contains(&status), "{status}");
    assert_serving(&s, "bad tokens");
}
