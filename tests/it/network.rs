//! A hostile network: peers that hold connections idle or send their heads
//! slowly until descriptors run out, pages on other sites that post forms
//! with the browser's credentials, and heads that frame a second request
//! inside a first. The server keeps serving others throughout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    addr, basic, owner, raw, refused_start, xcp_envelope, xcp_reply, xcp_signature, Server,
};

/// A half-sent head: a request line and one header, then nothing.
const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

fn socket(s: &Server) -> SocketAddr {
    addr(s).parse().expect("the server's address")
}

/// A new connection, or `None` when none could be made within a second.
fn connect(s: &Server) -> Option<TcpStream> {
    TcpStream::connect_timeout(&socket(s), Duration::from_secs(1)).ok()
}

/// Whether the server has closed `conn` (with or without a last answer).
fn closed_by_server(conn: &mut TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("a read timeout");
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            // An answer (a 408) comes before the close.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// `GET /healthz` on a new connection: 200, and how long it took.
fn healthz(s: &Server, during: &str) -> Duration {
    let started = Instant::now();
    let a = s.call("GET", "/healthz", None, None);
    assert_eq!(a.status, 200, "/healthz {during}: {}", a.text);
    started.elapsed()
}

/// Waits (at most 10 s) until `GET /api/v1/me` answers 200 again.
fn serves_normally(s: &Server, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = s.get("/api/v1/me", &s.operator);
        if a.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not serving after {after}: {a:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Opens `idle` connections that send nothing and `slow` ones that send
/// half a head, interleaved; those that could not be made are left out.
fn hold(s: &Server, idle: usize, slow: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for i in 0..idle + slow {
        if let Some(mut c) = connect(s) {
            if i % (idle + slow).div_ceil(slow.max(1)) == 0 && slow > 0 {
                c.write_all(HALF_HEAD).ok();
            }
            held.push(c);
        }
    }
    held
}

/// Counts the held connections the server still keeps open.
fn still_open(held: &mut [TcpStream]) -> usize {
    held.iter_mut()
        .map(closed_by_server)
        .filter(|closed| !closed)
        .count()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The process runs out of descriptors while peers hold connections idle
/// or half-sent: it keeps accepting, answers meanwhile, and serves as
/// before once they go.
#[test]
fn running_out_of_descriptors_does_not_stop_the_server() {
    let s = Server::start();
    let pid = s.child.id().to_string();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=128:128"])
        .status()
        .expect("prlimit runs");
    assert!(limited.success(), "prlimit failed");
    let mut held = hold(&s, 300, 100);
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(healthz(&s, "while descriptors run out"));
    }
    let open = still_open(&mut held);
    eprintln!(
        "descriptor limit 128: {} connections made, {open} held open by the server; \
         /healthz meanwhile: median {:?}, slowest {:?}",
        held.len(),
        median(times.clone()),
        times.iter().max().expect("times")
    );
    drop(held);
    healthz(&s, "the held connections went");
    serves_normally(&s, "the held connections went");
}

/// Past `--max-connections`, idle connections are closed to make room for
/// new ones, the longest idle first, so open connections stay bounded and a
/// client with a request is served.
#[test]
fn open_connections_stay_within_the_bound_idle_ones_closed_first() {
    let s = Server::start_with(&["--test-clock", "--max-connections", "8"]);
    let mut idle = hold(&s, 30, 0);
    let open = still_open(&mut idle);
    assert!(open <= 8, "{open} idle connections open past a bound of 8");
    let last = idle.len() - 1;
    assert!(
        closed_by_server(&mut idle[0]),
        "the oldest idle one is open"
    );
    assert!(
        !closed_by_server(&mut idle[last]),
        "the newest one was closed"
    );

    let mut slow = hold(&s, 0, 10);
    let took = healthz(&s, "past the bound");
    let open = still_open(&mut idle) + still_open(&mut slow);
    eprintln!(
        "--max-connections 8: {} connections made, {open} held open; /healthz took {took:?}",
        idle.len() + slow.len()
    );
    assert!(open <= 8, "{open} connections open past a bound of 8");
    drop((idle, slow));
    serves_normally(&s, "the held connections went");
}

/// A head sent a line at a time, each line well within the read timeout,
/// is closed once it has taken `--header-timeout-ms` from its first byte;
/// a head that is slow but within it is answered.
#[test]
fn a_request_head_must_be_complete_within_the_header_timeout() {
    let s = Server::start_with(&["--test-clock", "--header-timeout-ms", "1000"]);
    let mut slow = connect(&s).expect("a connection");
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n")
        .expect("the request line");
    let closed_after = loop {
        if started.elapsed() > Duration::from_secs(8) {
            panic!("a head dripping for 8 s is still open");
        }
        thread::sleep(Duration::from_millis(150));
        if slow.write_all(b"X-Drip: a\r\n").is_err() || closed_by_server(&mut slow) {
            break started.elapsed();
        }
    };
    eprintln!("a dripping head was closed after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );

    let mut patient = connect(&s).expect("a connection");
    patient.write_all(HALF_HEAD).expect("half a head");
    thread::sleep(Duration::from_millis(400));
    patient
        .write_all(b"Connection: close\r\n\r\n")
        .expect("the rest");
    let mut answer = String::new();
    patient.read_to_string(&mut answer).ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
}

// ----- writes from other sites ------------------------------------------------

/// A POST of `body` with `headers`, as a browser or a client sends it.
fn post(s: &Server, path: &str, body: &str, headers: &[(&str, &str)]) -> crate::support::Answer {
    s.post_bytes(path, body.as_bytes(), headers)
}

/// A scheduled task face delete of `alice`'s: the domain registered, then
/// its deletion queued for 2099.
fn scheduled_task(s: &Server, token: &str, domain: &str) -> i64 {
    s.order(token, domain, "create", owner());
    s.tick();
    let a = s.post(
        "/api/v1/requests",
        token,
        json!({"domain": domain, "operation": "delete", "exec_date": "2099-01-01", "submit": true}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()["id"].as_i64().expect("an id")
}

/// The form a page on another site can make a browser post: `text/plain`,
/// with the HTTP Basic credentials the browser remembers.
#[test]
fn a_page_on_another_site_cannot_delete_scheduled_tasks() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let task = scheduled_task(&s, &alice.token, "kept.de");
    let auth = basic(alice.id, &alice.token);
    let path = format!("/bdom/task/delete/-/-/-/-/{}/", alice.id);
    let scheduled = format!("/bdom/task/scheduled/-/-/-/-/{}/", alice.id);
    let body = format!("<request><delete><task_id>{task}</task_id></delete></request>");
    let own = s.base.clone();
    // (what, headers, the status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: [Case; 5] = [
        (
            "a form from elsewhere",
            vec![
                ("Content-Type", "text/plain"),
                ("Origin", "http://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            403,
        ),
        (
            "XML from another origin",
            vec![
                ("Content-Type", "text/xml"),
                ("Origin", "http://evil.example"),
            ],
            403,
        ),
        (
            "XML from a sibling site",
            vec![
                ("Content-Type", "text/xml"),
                ("Sec-Fetch-Site", "same-site"),
            ],
            403,
        ),
        (
            "a text/plain body from no browser",
            vec![("Content-Type", "text/plain")],
            415,
        ),
        ("a body without a type", vec![], 415),
    ];
    for (what, mut headers, status) in cases {
        headers.push(("Authorization", &auth));
        let a = post(&s, &path, &body, &headers);
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert!(a.text.starts_with("<error>"), "{what}: {}", a.text);
        let listed = s.call_with("GET", &scheduled, None, None, &[("Authorization", &auth)]);
        assert!(
            listed.text.contains(&task.to_string()),
            "{what} cancelled: {}",
            listed.text
        );
    }
    let a = post(
        &s,
        &path,
        &body,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Origin", &own),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.request(&alice.token, task)["state"], "failed");
}

/// A native order posted by `token` from a page of `origin`.
fn order_from(s: &Server, token: &str, origin: &str) -> crate::support::Answer {
    let order = json!({"domain": "a.com", "operation": "create"}).to_string();
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Origin", origin),
    ];
    post(s, "/api/v1/requests", &order, &headers)
}

#[test]
fn writes_from_another_origin_are_refused_on_every_face() {
    let s = Server::start();
    let alice = s.reseller("alice");
    let bearer = format!("Bearer {}", alice.token);
    let native = |origin: &str| order_from(&s, &alice.token, origin);
    let a = native("http://evil.example");
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.json()["error"]["code"], "forbidden");
    assert_eq!(native(&s.base).status, 201);
    let a = s.call_with(
        "GET",
        "/api/v1/me",
        None,
        None,
        &[("Authorization", &bearer), ("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(a.status, 200, "a read from elsewhere is not a write");

    let poll = xcp_envelope("POLL", "EVENT", "");
    let signature = xcp_signature(poll.as_bytes(), &alice.key);
    let xcp = |extra: &[(&str, &str)]| {
        let mut headers = vec![
            ("X-Username", alice.name.as_str()),
            ("X-Signature", signature.as_str()),
        ];
        headers.extend_from_slice(extra);
        post(&s, "/opensrs", &poll, &headers)
    };
    for (what, extra) in [
        (
            "another origin",
            vec![
                ("Content-Type", "text/xml"),
                ("Origin", "http://evil.example"),
            ],
        ),
        ("a text/plain body", vec![("Content-Type", "text/plain")]),
    ] {
        let a = xcp(&extra);
        assert_eq!(a.status, 200, "{what}: {}", a.text);
        assert_eq!(
            xcp_reply(&a).get_str("is_success"),
            Some("0"),
            "{what}: {}",
            a.text
        );
    }
    let a = xcp(&[("Content-Type", "text/xml"), ("Origin", &s.base)]);
    assert_eq!(xcp_reply(&a).get_str("is_success"), Some("1"), "{}", a.text);
}

#[test]
fn a_public_url_is_the_only_origin_writes_come_from() {
    let s = Server::start_with(&["--test-clock", "--public-url", "https://desk.example/"]);
    let from = |origin: &str| order_from(&s, &s.operator, origin).status;
    assert_eq!(from("https://desk.example"), 201);
    assert_eq!(
        from(&s.base),
        403,
        "the Host is not the origin behind a public URL"
    );
    for bad in [
        "desk.example",
        "https://desk.example/app",
        "ftp://desk.example",
    ] {
        let err = refused_start(&["--public-url", bad], &[]);
        assert!(err.contains("public_url"), "{bad}: {err}");
    }
}

// ----- framing and echoes -----------------------------------------------------

/// A head whose body length is ambiguous is a 400 and the connection is
/// closed: the request framed inside its body gets no answer.
#[test]
fn ambiguous_body_lengths_are_refused_and_smuggle_nothing() {
    let s = Server::start();
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases = [
        (
            "Content-Length with Transfer-Encoding",
            format!("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "two Content-Lengths",
            format!(
                "Content-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
        (
            "a Content-Length with a sign",
            format!("Content-Length: +0\r\n\r\n{smuggled}"),
        ),
        (
            "a Content-Length that is not a number",
            format!("Content-Length: 0x\r\n\r\n{smuggled}"),
        ),
        (
            "a Content-Length list",
            format!("Content-Length: 0, 0\r\n\r\n{smuggled}"),
        ),
        (
            "a transfer coding not chunked",
            format!("Transfer-Encoding: gzip\r\n\r\n{smuggled}"),
        ),
    ];
    for (what, rest) in cases {
        let head = format!(
            "POST /api/v1/tick HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{rest}",
            s.operator
        );
        let started = Instant::now();
        let (status, answer) = raw(&s, head.as_bytes());
        assert_eq!(status, 400, "{what}: {answer:.300}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{what}: a second answer: {answer:.600}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: the connection stayed open"
        );
    }
    let a = s.call("GET", "/healthz", None, None);
    assert_eq!(a.status, 200);
}

#[test]
fn credentials_given_twice_are_refused() {
    let s = Server::start();
    let (_, customer) = s.customer("carol");
    for order in [[&s.operator, &customer], [&customer, &s.operator]] {
        let head = format!(
            "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nAuthorization: Bearer {}\r\n\r\n",
            order[0], order[1]
        );
        let (status, answer) = raw(&s, head.as_bytes());
        assert_eq!(status, 400, "{answer:.300}");
        assert!(answer.contains("authorization"), "{answer:.300}");
    }
}

#[test]
fn a_404_quotes_a_long_path_briefly() {
    let s = Server::start();
    let long = "x".repeat(10_000);
    for (method, path) in [
        ("GET", format!("/{long}")),
        ("POST", format!("/{long}")),
        ("GET", format!("/api/v1/{long}")),
    ] {
        let a = s.call(method, &path, Some(&s.operator), None);
        assert_eq!(a.status, 404, "{method}: {:.200}", a.text);
        assert!(
            a.text.len() < 300,
            "{method}: a 404 of {} bytes",
            a.text.len()
        );
        assert!(a.text.contains("xxxxxxxx"), "{method}: {}", a.text);
    }
}
