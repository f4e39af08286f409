//! Running regdesk for real: backups under load, migrations, graceful
//! shutdown, metrics, configuration from the environment, `--version`.

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use serde_json::json;

use crate::harness::{call, signal_and_wait, Proc};
use crate::support::{agent, backup, owner, refused_start, regdesk, send, Server, BIN, PATIENT};

/// Acknowledged request ids and when each answer arrived.
type Acked = Arc<Mutex<Vec<(i64, Instant)>>>;

/// Threads that post requests as `token` until `stop` is set or each has
/// posted `per_thread`; every acknowledged (201) id is recorded with the
/// moment its answer arrived.
fn load(
    base: &str,
    token: &str,
    threads: usize,
    per_thread: usize,
    stop: &Arc<AtomicBool>,
) -> (Vec<thread::JoinHandle<()>>, Acked) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..threads)
        .map(|t| {
            let (base, token, stop, acked) = (
                base.to_string(),
                token.to_string(),
                stop.clone(),
                acked.clone(),
            );
            thread::spawn(move || {
                let agent = agent(PATIENT);
                let bearer = format!("Bearer {token}");
                let headers = [
                    ("Authorization", bearer.as_str()),
                    ("Content-Type", "application/json"),
                ];
                for i in 0..per_thread {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let body = json!({"domain": format!("load-{t}-{i}.com"), "operation": "create",
                                      "params": owner(), "submit": true});
                    let url = format!("{base}/api/v1/requests");
                    let answer = send(
                        &agent,
                        "POST",
                        &url,
                        &headers,
                        Some(body.to_string().as_bytes()),
                    );
                    match answer {
                        Ok(a) if a.status == 201 => {
                            let v = a.json();
                            let id = v["id"].as_i64().unwrap();
                            acked.lock().unwrap().push((id, Instant::now()));
                        }
                        // The server went away (shutdown): stop posting.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    (handles, acked)
}

fn wait_for_acks(acked: &Acked, n: usize) {
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= n {
            return;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the load never reached {n} acknowledged requests");
}

#[test]
fn a_backup_under_write_load_opens_and_holds_every_acknowledged_request() {
    let s = Server::start();
    let (_, token) = s.customer("busy");
    let stop = Arc::new(AtomicBool::new(false));
    let (handles, acked) = load(&s.base, &token, 4, 60, &stop);
    wait_for_acks(&acked, 40);
    let db = s.dir.path().join("regdesk.db");
    let copy = s.dir.path().join("copy.db");
    let started = Instant::now();
    let (code, stdout, stderr) = backup(&db, &copy);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("backed up"));
    for h in handles {
        h.join().unwrap();
    }
    let before: Vec<i64> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(id, _)| *id)
        .collect();
    assert!(before.len() >= 40);

    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("pragma integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for id in &before {
        let n: i64 = conn
            .query_row("select count(*) from requests where id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            n, 1,
            "request {id} was acknowledged before the backup but is not in it"
        );
    }
    drop(conn);
    // The copy serves as a database of its own.
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::start(
        &[
            "serve",
            "--db",
            copy.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
        dir.path(),
        0,
    );
    let a = p.call(
        "GET",
        &format!("/api/v1/requests/{}", before[0]),
        Some(&token),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);

    // A backup never overwrites.
    let (code, _, stderr) = backup(&db, &copy);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("never overwrites"));
    let (missing, x) = (s.dir.path().join("missing.db"), s.dir.path().join("x.db"));
    let (code, _, stderr) = backup(&missing, &x);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not exist"));
    // Into a directory that is not there: said so, and nothing is made.
    let nowhere = s.dir.path().join("no/such/dir");
    let (code, _, stderr) = backup(&db, &nowhere.join("x.db"));
    assert_eq!(
        (code, stderr),
        (
            Some(1),
            format!(
                "regdesk: backing up to {}: file: there is no directory {}",
                nowhere.join("x.db").display(),
                nowhere.display()
            )
        )
    );
    assert!(!s.dir.path().join("no").exists());
}

#[test]
fn sigterm_during_load_exits_zero_and_a_restart_loses_nothing() {
    let mut s = Server::start();
    let (_, token) = s.customer("steady");
    let stop = Arc::new(AtomicBool::new(false));
    let (handles, acked) = load(&s.base, &token, 4, 100, &stop);
    wait_for_acks(&acked, 30);
    assert_eq!(signal_and_wait(&mut s.child, "TERM"), Some(0));
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    let acked: Vec<i64> = acked.lock().unwrap().iter().map(|(id, _)| *id).collect();
    let s = s.restart();
    for id in &acked {
        let a = s.get(&format!("/api/v1/requests/{id}"), &token);
        assert_eq!(a.status, 200, "acknowledged request {id} was lost");
    }
    // The restarted desk works on.
    s.tick();
    assert_eq!(s.request(&token, acked[0])["state"], "finished");
}

/// A stop does not wait for the ticker to work through a backlog: it ends
/// after the tick in hand, and the rest waits, queued, for the next start.
#[test]
fn sigterm_with_a_backlog_stops_without_draining_it_and_loses_nothing() {
    const BACKLOG: i64 = 20_000;
    let mut s = Server::start_with(&[]);
    let (customer, _) = s.customer("bulk");
    s.child.kill().ok();
    s.child.wait().ok();
    {
        let conn = rusqlite::Connection::open(s.dir.path().join("regdesk.db")).unwrap();
        conn.execute_batch("begin").unwrap();
        let mut insert = conn
            .prepare(
                "insert into requests (account_id, domain, operation, params, state, created_at, updated_at)
                 values (?1, ?2, 'create', ?3, 'queued', 0, 0)",
            )
            .unwrap();
        for i in 0..BACKLOG {
            insert
                .execute(rusqlite::params![
                    customer,
                    format!("backlog-{i}.com"),
                    owner().to_string()
                ])
                .unwrap();
        }
        drop(insert);
        conn.execute_batch("commit").unwrap();
    }
    let mut s = s.restart();
    assert_eq!(signal_and_wait(&mut s.child, "TERM"), Some(0));
    let conn = rusqlite::Connection::open(s.dir.path().join("regdesk.db")).unwrap();
    let count = |state: &str| -> i64 {
        conn.query_row(
            "select count(*) from requests where state = ?1",
            [state],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (queued, finished) = (count("queued"), count("finished"));
    assert!(queued > 0, "the stop waited for the whole backlog");
    assert_eq!(count("processing"), 0, "a stop left requests claimed");
    assert_eq!(queued + finished, BACKLOG);
}

#[test]
fn migrate_creates_and_upgrades_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    for _ in 0..2 {
        let (code, stdout, stderr) = regdesk([OsStr::new("migrate"), "--db".as_ref(), db.as_ref()]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, format!("migrated {}", db.display()));
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: i64 = conn
        .query_row(
            "select count(*) from sqlite_master where name in ('requests', 'sim_deferred')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2);
    drop(conn);
    let nowhere = dir.path().join("no/such/dir/x.db");
    let (code, _, stderr) = regdesk([OsStr::new("migrate"), "--db".as_ref(), nowhere.as_ref()]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("migrating"));
}

#[test]
fn metrics_need_an_operator_unless_public_and_count_what_matters() {
    let s = Server::start();
    let (_, token) = s.customer("mo");
    assert_eq!(s.call("GET", "/metrics", None, None).status, 401);
    assert_eq!(s.get("/metrics", &token).status, 403);
    s.order(&token, "m1.com", "create", owner());
    s.order(&token, "m2.com", "create", json!({}));
    let text = s.get("/metrics", &s.operator);
    assert_eq!(text.status, 200);
    assert!(text.content_type.starts_with("text/plain"));
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    };
    let t = &text.text;
    assert_eq!(value(t, "regdesk_requests{state=\"queued\"}"), 1.0);
    assert_eq!(value(t, "regdesk_requests{state=\"incomplete\"}"), 1.0);
    assert_eq!(value(t, "regdesk_requests{state=\"finished\"}"), 0.0);
    assert_eq!(value(t, "regdesk_queue_depth"), 1.0);
    assert_eq!(value(t, "regdesk_tick_lag_seconds"), 0.0);
    assert!(value(t, "regdesk_db_commits_total") >= 1.0);
    assert!(value(t, "regdesk_db_writes_total") >= value(t, "regdesk_db_commits_total"));
    assert!(value(t, "regdesk_http_responses_total{class=\"2xx\"}") >= 3.0);
    assert!(value(t, "regdesk_http_responses_total{class=\"4xx\"}") >= 2.0);
    assert!(value(t, "regdesk_http_request_duration_seconds_count") >= 5.0);
    assert_eq!(value(t, "regdesk_ticker_running"), 1.0);
    let ticks = value(t, "regdesk_ticker_ticks_total");
    s.tick();
    let t = s.get("/metrics", &s.operator).text;
    assert_eq!(value(&t, "regdesk_queue_depth"), 0.0);
    assert_eq!(value(&t, "regdesk_requests{state=\"finished\"}"), 1.0);
    assert!(value(&t, "regdesk_ticker_ticks_total") > ticks);

    let open = Server::start_with(&["--metrics-public"]);
    assert_eq!(open.call("GET", "/metrics", None, None).status, 200);
}

#[test]
fn every_serve_flag_reads_its_environment_variable() {
    use clap::CommandFactory;
    let cli = regdesk::config::Cli::command();
    let serve = cli.find_subcommand("serve").unwrap();
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let expected = format!("REGDESK_{}", id.to_ascii_uppercase());
        let env = arg.get_env().map(|e| e.to_string_lossy().to_string());
        assert_eq!(env.as_deref(), Some(expected.as_str()), "--{id}");
    }
}

#[test]
fn the_environment_configures_serve_and_version_prints() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::start(
        &["serve"],
        &[
            ("REGDESK_LISTEN", "127.0.0.1:0"),
            ("REGDESK_MEMORY", "true"),
            ("REGDESK_TEST_CLOCK", "true"),
            ("REGDESK_OPERATOR_TOKEN", "rd_from_the_environment"),
            ("REGDESK_METRICS_PUBLIC", "true"),
        ],
        dir.path(),
        0,
    );
    let c = p.call(
        "GET",
        "/api/v1/clock",
        Some("rd_from_the_environment"),
        None,
    );
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.json()["test_clock"], true);
    assert_eq!(call(&p.base, "GET", "/metrics", None, None).status, 200);
    drop(p);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("regdesk {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Keep-alive clients that connect in a burst are each answered while the
/// others stay connected: none waits for another connection to close.
/// Sends `request` on `conn` and reads one answer: its status line and its
/// body (by `Content-Length`).
fn exchange(conn: &mut std::net::TcpStream, request: &str) -> (String, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    conn.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(conn.try_clone().expect("a second handle"));
    let mut status = String::new();
    reader.read_line(&mut status).expect("a status line");
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header");
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("a length");
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    (
        status.trim().to_string(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Once stopped, a server answers a request that arrives on a connection
/// it had open with 503, in the format of the face asked, and closes it.
#[test]
fn a_stop_refuses_requests_on_open_connections() {
    use std::io::Read;
    use std::time::Duration;

    let mut config = regdesk::config::Config::for_tests();
    config.operator_token = Some("rd_stopping_operator".into());
    let handle = regdesk::start(config).expect("a server");
    let connect = || {
        let c = std::net::TcpStream::connect(handle.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        c
    };
    let (mut native, mut xcp) = (connect(), connect());
    let me =
        "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rd_stopping_operator\r\n\r\n";
    let (status, _) = exchange(&mut native, me);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, _) = exchange(&mut xcp, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");

    handle.stop();

    let (status, body) = exchange(&mut native, me);
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(body.contains(r#""code":"unavailable""#), "{body}");
    let envelope = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n<a";
    let (status, body) = exchange(&mut xcp, envelope);
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(body.contains("OPS_envelope"), "{body}");
    // Each connection is closed after its refusal.
    for conn in [&mut native, &mut xcp] {
        let mut rest = Vec::new();
        assert_eq!(conn.read_to_end(&mut rest).expect("the end"), 0);
    }
}

/// Whether this test process runs as root.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(false)
}

/// How many threads the processes of user `uid` have.
fn user_threads(uid: u32) -> usize {
    let owned = format!("Uid:\t{uid}\t");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("status")).ok())
        .filter(|status| status.lines().any(|l| l.starts_with(&owned)))
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
        })
        .sum()
}

/// When the system refuses a thread for a connection, that connection is
/// closed and the server goes on accepting (tiny_http's accept thread
/// panicked, and no connection was accepted again). The server runs as
/// another user, whose thread limit is then set just above what it has:
/// root is exempt from that limit, and only root can do this.
#[test]
fn a_connection_refused_a_thread_is_closed_and_others_are_served() {
    use std::io::{Read, Write};
    use std::time::Duration;

    if !running_as_root() {
        eprintln!("skipped: switching to another user needs root");
        return;
    }
    // A copy of the binary that user 65534 may run wherever the checkout is.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bin = dir.path().join("regdesk");
    std::fs::copy(BIN, &bin).expect("a copy of the binary");
    for path in [dir.path(), bin.as_path()] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("permissions");
    }
    // regdesk as user 65534, with at most `threads` threads when given.
    let start = |threads: Option<usize>| {
        let limit =
            threads.map(|n| vec!["prlimit".to_string(), format!("--nproc={n}"), "--".into()]);
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args(limit.unwrap_or_default())
            .arg(&bin)
            .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
            .args(["--operator-token", "rd_thread_limit_operator"])
            .current_dir(dir.path())
            // The refused threads are logged as errors; the test counts them.
            .env("RUST_LOG", "off");
        let server = Proc::spawn(cmd, 0);
        // The connections' first threads start after the server listens.
        thread::sleep(Duration::from_millis(300));
        let addr = server.base.trim_start_matches("http://").to_string();
        (server, addr)
    };
    // The threads user 65534 has (the limit counts them all) while a
    // server runs, then a server allowed two more.
    let (first, _) = start(None);
    let threads = user_threads(65534);
    drop(first);
    let (_server, addr) = start(Some(threads + 2));

    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut conns: Vec<std::net::TcpStream> = (0..12)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&addr).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            c.write_all(health.as_bytes()).expect("send");
            c
        })
        .collect();
    let (mut answered, mut closed) = (0, 0);
    for c in &mut conns {
        let mut head = [0u8; 12];
        match c.read(&mut head) {
            Ok(0) => closed += 1,
            Ok(_) if &head == b"HTTP/1.1 200" => answered += 1,
            other => panic!("neither answered nor closed: {other:?} {head:?}"),
        }
    }
    assert!(closed > 0, "the thread limit was never reached");
    assert!(answered > 0, "no connection was answered");
    drop(conns);
    thread::sleep(Duration::from_millis(300));
    let mut after = std::net::TcpStream::connect(&addr).expect("connect");
    after
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, _) = exchange(&mut after, health);
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// A client that sends its body slowly holds only its own connection: with
/// `--workers 1`, others are answered meanwhile (the body is read before a
/// request takes its place).
#[test]
fn a_slow_body_does_not_hold_a_workers_place() {
    use std::io::Write;
    use std::time::Duration;

    let s = Server::start_with(&["--test-clock", "--workers", "1"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    // 5,000 bytes promised (tiny_http reads a body under 1 KiB itself
    // before any handler runs), one sent; the rest never comes (the
    // server's read timeout is 20 s).
    write!(
        slow,
        "POST /api/v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n{{",
        s.operator
    )
    .expect("send");
    thread::sleep(Duration::from_millis(200));
    let mut other = std::net::TcpStream::connect(&addr).expect("connect");
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (status, body) = exchange(&mut other, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    drop(slow);
}

/// A library caller's configuration with no workers is refused too, before
/// the database is touched.
#[test]
fn zero_workers_are_refused_to_a_library_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = regdesk::config::Config::for_tests();
    config.memory = false;
    config.db = dir.path().join("desk.db");
    config.workers = 0;
    match regdesk::start(config) {
        Ok(_) => panic!("a server with no workers started"),
        Err(e) => assert!(e.to_string().contains("workers"), "{e}"),
    }
    assert!(!dir.path().join("desk.db").exists());
}

/// A server that may answer no request at once is refused at its start,
/// from the flag and from the environment alike, naming the flag.
#[test]
fn zero_workers_are_refused() {
    for (args, env) in [
        (&["--workers", "0"][..], &[][..]),
        (&[][..], &[("REGDESK_WORKERS", "0")][..]),
    ] {
        let stderr = refused_start(args, env);
        assert!(stderr.contains("--workers"), "{args:?} {env:?}: {stderr}");
    }
}

/// Every setting's wrong value is refused at the start, naming it, whether
/// or not this run uses it: an empty operator token (an unset variable in a
/// compose file) made an operator no one could sign in as, a tick interval
/// of 0 was taken as 1 ms, and `--mail-from` or the webhook provider's
/// settings were only looked at when `--smtp-url` or `--provider webhook`
/// came with them.
#[test]
fn every_wrong_setting_is_refused_at_the_start_used_or_not() {
    let long = "t".repeat(257);
    for (args, env, field) in [
        (
            &["--tick-interval-ms", "0"][..],
            &[][..],
            "tick_interval_ms",
        ),
        (
            &["--tick-interval-ms", "3600001"][..],
            &[][..],
            "tick_interval_ms",
        ),
        (
            &[][..],
            &[("REGDESK_TICK_INTERVAL_MS", "0")][..],
            "tick_interval_ms",
        ),
        (
            &["--webhook-timeout-ms", "0"][..],
            &[][..],
            "webhook_timeout_ms",
        ),
        (
            &["--header-timeout-ms", "0"][..],
            &[][..],
            "header_timeout_ms",
        ),
        (
            &["--header-timeout-ms", "3600001"][..],
            &[][..],
            "header_timeout_ms",
        ),
        (&["--max-connections", "0"][..], &[][..], "max_connections"),
        (
            &[][..],
            &[("REGDESK_MAX_CONNECTIONS", "1000001")][..],
            "max_connections",
        ),
        (
            &["--webhook-timeout-ms", "18446744073709551615"][..],
            &[][..],
            "webhook_timeout_ms",
        ),
        (
            &["--webhook-retry-base-ms", "3600001"][..],
            &[][..],
            "webhook_retry_base_ms",
        ),
        (
            &["--mail-retry-base-ms", "3600001"][..],
            &[][..],
            "mail_retry_base_ms",
        ),
        (
            &["--webhook-max-attempts", "0"][..],
            &[][..],
            "webhook_max_attempts",
        ),
        (
            &["--mail-max-attempts", "101"][..],
            &[][..],
            "mail_max_attempts",
        ),
        (&["--mail-from", "not an address"][..], &[][..], "mail_from"),
        (
            &["--webhook-url", "ftp://hooks.example.net/"][..],
            &[][..],
            "webhook_url",
        ),
        (&["--operator-token", ""][..], &[][..], "operator_token"),
        (
            &[][..],
            &[("REGDESK_OPERATOR_TOKEN", "")][..],
            "operator_token",
        ),
        (
            &["--operator-token", "two words"][..],
            &[][..],
            "operator_token",
        ),
        (
            &["--operator-token", "t\u{e9}t"][..],
            &[][..],
            "operator_token",
        ),
        (
            &["--operator-token", long.as_str()][..],
            &[][..],
            "operator_token",
        ),
    ] {
        let stderr = refused_start(args, env);
        assert!(
            stderr.starts_with(&format!("regdesk: starting: {field}: ")),
            "{args:?} {env:?}: {stderr}"
        );
    }
    // The bounds themselves are taken (a library caller's Config is
    // checked alike), and a token as long as a request may present signs in.
    let token = "t".repeat(256);
    let mut config = regdesk::config::Config::for_tests();
    config.tick_interval_ms = 3_600_000;
    config.webhook_retry_base_ms = 0;
    config.webhook_max_attempts = 100;
    config.operator_token = Some(token.clone());
    let handle = regdesk::start(config).expect("a server");
    let base = format!("http://{}", handle.addr);
    assert_eq!(
        call(&base, "GET", "/api/v1/me", Some(&token), None).status,
        200
    );
    handle.stop();
    let mut config = regdesk::config::Config::for_tests();
    config.tick_interval_ms = 0;
    match regdesk::start(config) {
        Ok(_) => panic!("a library caller's tick interval of 0 was taken"),
        Err(e) => assert_eq!(e.field(), Some("tick_interval_ms"), "{e}"),
    }
}

/// `--workers 1` answers one request at a time: the others on open
/// connections wait their turn rather than being refused, writes included
/// (a write's thread waits for its commit while it holds the place).
#[test]
fn one_worker_serves_many_connections_in_turn() {
    let s = Server::start_with(&["--test-clock", "--workers", "1"]);
    let (_, token) = s.customer("queue");
    let ids: Vec<i64> = thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|c| {
                let (s, token) = (&s, &token);
                scope.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let domain = format!("turn-{c}-{i}.com");
                            let v = s.order(token, &domain, "create", owner());
                            v["id"].as_i64().expect("an id")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("a client"))
            .collect()
    });
    assert_eq!(ids.len(), 40);
    for id in ids {
        assert_eq!(s.request(&token, id)["id"], id);
    }
}

#[test]
fn a_burst_of_keep_alive_connections_is_served_at_once() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let s = Server::start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    // Three bursts, each connected at once from threads of their own, then
    // asked; every connection stays open to the end.
    let mut held = Vec::new();
    for burst in 0..3 {
        let go = Arc::new(std::sync::Barrier::new(32));
        let mut conns: Vec<TcpStream> = (0..32)
            .map(|_| {
                let (go, addr) = (go.clone(), addr.clone());
                thread::spawn(move || {
                    go.wait();
                    TcpStream::connect(&addr).expect("connect")
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("a connecting thread"))
            .collect();
        for c in &mut conns {
            c.write_all(request.as_bytes()).expect("send");
        }
        for (i, c) in conns.iter_mut().enumerate() {
            // Far longer than an answer takes. Without a thread of its own, a
            // connection is answered only when another one closes: here, when
            // the server drops an idle one after its 20 s read timeout.
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut head = [0u8; 12];
            c.read_exact(&mut head)
                .unwrap_or_else(|e| panic!("burst {burst}, connection {i}: no answer: {e}"));
            assert_eq!(&head, b"HTTP/1.1 200", "burst {burst}, connection {i}");
        }
        held.extend(conns);
    }
}

/// `regdesk account add` checks a name and an e-mail address as the API
/// does: a bad one is refused naming the field, and nothing is created,
/// the database file included; a good one prints the account and its
/// token, which the API takes. `account list` and `token new` need a
/// database that is there.
#[test]
fn the_command_line_adds_accounts_checked_as_the_api_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    // Where `Server::start_in` looks.
    let db = dir.path().join("regdesk.db");
    let cli = |args: &[&str]| {
        let db = ["--db", &db.to_string_lossy()].map(String::from);
        regdesk(args.iter().map(|a| a.to_string()).chain(db))
    };
    for (name, email, refusal) in [
        (
            "ann",
            "not-an-address",
            r#"regdesk: email: "not-an-address" is not an email address"#,
        ),
        (
            "ann",
            "ann @example.net",
            r#"regdesk: email: "ann @example.net" is not an email address"#,
        ),
        (
            "a n",
            "ann@example.net",
            "regdesk: name: 1 to 64 letters, digits, dots, underscores or hyphens",
        ),
    ] {
        assert_eq!(
            cli(&["account", "add", name, email]),
            (Some(1), String::new(), refusal.to_string())
        );
    }
    // Refused before the database was made; the commands that only read
    // or add to a database say there is none rather than make one.
    assert!(!db.exists());
    let none = format!(
        "regdesk: {}: no database there (regdesk serve, migrate or account add makes one)",
        db.display()
    );
    assert_eq!(
        cli(&["account", "list"]),
        (Some(1), String::new(), none.clone())
    );
    assert_eq!(
        cli(&["token", "new", "ann"]),
        (Some(1), String::new(), none)
    );
    assert!(!db.exists());

    let (code, out, _) = cli(&["account", "add", "ann", "ann@example.net"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("account ann (customer) id 1\ntoken: rd_"),
        "{out}"
    );
    let (code, list, _) = cli(&["account", "list"]);
    assert_eq!(
        (code, list.as_str()),
        (
            Some(0),
            "id\tname\trole\temail\n1\tann\tcustomer\tann@example.net"
        )
    );
    assert_eq!(
        cli(&["token", "new", "bob"]),
        (
            Some(1),
            String::new(),
            r#"regdesk: no account named "bob""#.to_string()
        )
    );
    let token = out.rsplit("token: ").next().unwrap().to_string();
    let s = Server::start_in(dir, &[]);
    let me = s.get("/api/v1/me", &token);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["email"], "ann@example.net");
}
