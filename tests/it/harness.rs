//! A throwaway instance for test harnesses: `--memory`, port 0, health and
//! readiness, the test clock, simulated-registry rules, `--seed`, the admin
//! reset, `--demo` and the OpenAPI document.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub use crate::support::call;
use crate::support::{error_of, launch, owner, regdesk, Answer, Server, BIN};

/// A `regdesk` process started by a test, with what it printed on stdout.
pub struct Proc {
    pub child: Child,
    pub base: String,
    /// The stdout lines after the first.
    pub lines: Vec<String>,
    /// Kept open: the server's later stdout lines must not hit a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts `regdesk ARGS` in `cwd` with `env`, reads the first stdout line
    /// and `more` lines after it.
    pub fn start(args: &[&str], env: &[(&str, &str)], cwd: &Path, more: usize) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::spawn(cmd, more)
    }

    /// Runs `cmd`, a command that ends in running regdesk (the binary, or a
    /// wrapper that executes it), as `start` does.
    pub fn spawn(mut cmd: Command, more: usize) -> Proc {
        if cmd.get_envs().all(|(k, _)| k != "RUST_LOG") {
            cmd.env("RUST_LOG", "warn");
        }
        let (child, mut stdout, base) = launch(cmd);
        let mut lines = Vec::new();
        for _ in 0..more {
            let mut l = String::new();
            stdout.read_line(&mut l).expect("a stdout line");
            lines.push(l.trim().to_string());
        }
        Proc {
            child,
            base,
            lines,
            _stdout: stdout,
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        call(
            &self.base,
            method,
            path,
            token,
            body.map(|b| b.to_string()).as_deref(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Sends `signal` with the `kill` command and waits at most 30 s for the
/// process to exit; its exit code, or `None` if it did not exit.
pub fn signal_and_wait(child: &mut Child, signal: &str) -> Option<i32> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..300 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

const OP: &str = "rd_harness_operator";

fn memory_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--memory",
        "--listen",
        "127.0.0.1:0",
        "--operator-token",
        OP,
    ];
    args.extend_from_slice(extra);
    args
}

fn states(p: &Proc, token: &str) -> Vec<(String, String, Value, Value)> {
    let a = p.call("GET", "/api/v1/requests?limit=500", Some(token), None);
    assert_eq!(a.status, 200, "{}", a.text);
    let mut v: Vec<_> = a.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["domain"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
                r["waiting_on"].clone(),
                r["failure"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

#[test]
fn memory_instances_on_port_zero_leave_no_file_and_log_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(memory_args(&[]))
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    // Logs go to stderr, and one line says the server is ready.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut saw_ready = false;
    for _ in 0..50 {
        let mut l = String::new();
        if err.read_line(&mut l).unwrap() == 0 {
            break;
        }
        if l.contains("ready: serving memory on") {
            saw_ready = true;
            break;
        }
    }
    assert!(saw_ready);
    // A second instance at the same time gets its own port.
    let other = Proc::start(&memory_args(&[]), &[], dir.path(), 0);
    assert_ne!(other.base, base);

    for b in [&base, &other.base] {
        let h = call(b, "GET", "/healthz", None, None);
        assert_eq!((h.status, h.json()["status"].clone()), (200, json!("ok")));
        let r = call(b, "GET", "/readyz", None, None);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["migrations"], "applied");
        assert_eq!(r.json()["ticker"], "running");
    }
    // Writes work, and each instance has its own data.
    let a = call(
        &base,
        "POST",
        "/api/v1/accounts",
        Some(OP),
        Some(r#"{"name":"ann","email":"ann@example.net"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let list = call(&other.base, "GET", "/api/v1/accounts", Some(OP), None);
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 1);
    // SIGINT stops it cleanly.
    assert_eq!(signal_and_wait(&mut child, "INT"), Some(0));
    drop(other);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files were created: {left:?}");
}

#[test]
fn the_test_clock_is_read_moved_set_and_frozen() {
    let s = Server::start();
    let c = s.get("/api/v1/clock", &s.operator).json();
    assert_eq!(
        (c["test_clock"].clone(), c["frozen"].clone()),
        (json!(true), json!(true))
    );
    let t0 = c["now_ms"].as_i64().unwrap();
    let a = s.advance("5d");
    assert_eq!(a["now_ms"].as_i64().unwrap(), t0 + 5 * 86_400_000);
    let a = s.post(
        "/api/v1/clock",
        &s.operator,
        json!({"set": "2030-01-01T00:00:00Z"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["now"], "2030-01-01T00:00:00Z");
    assert_eq!(a.json()["frozen"], true);
    // Every timestamp reads this clock.
    let (_, token) = s.customer("tim");
    let r = s.order(&token, "clocked.com", "create", owner());
    assert_eq!(r["created_at"], "2030-01-01T00:00:00Z");
    s.tick();
    let d = s.get("/api/v1/domains/clocked.com", &token).json();
    assert_eq!(d["created_at"], "2030-01-01T00:00:00Z");
    assert_eq!(d["expires_at"], "2031-01-01T00:00:00Z");
    let a = s.advance("90s");
    assert_eq!(a["now"], "2030-01-01T00:01:30Z");

    // Bad bodies name the field and change nothing.
    for (body, field) in [
        (json!({"advance": "5x"}), "advance"),
        (json!({"advance": "-5d"}), "advance"),
        (json!({"advance": 5}), "advance"),
        (json!({"set": "tomorrow"}), "set"),
        (json!({"freeze": "yes"}), "freeze"),
        (json!({"later": "5d"}), "later"),
        (json!({}), "advance"),
    ] {
        let a = s.post("/api/v1/clock", &s.operator, body.clone());
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(field.into())),
            "{body}"
        );
    }
    let a = s.call("POST", "/api/v1/clock", Some(&s.operator), Some("not json"));
    assert_eq!(a.status, 400);
    let a = s.post("/api/v1/clock", &token, json!({"advance": "1d"}));
    assert_eq!(a.status, 403);
    assert_eq!(
        s.get("/api/v1/clock", &s.operator).json()["now"],
        "2030-01-01T00:01:30Z"
    );

    // Unfrozen, it runs with the real time from where it stands.
    let a = s.post("/api/v1/clock", &s.operator, json!({"freeze": false}));
    assert_eq!(a.json()["frozen"], false);
    assert!(a.json()["now_ms"].as_i64().unwrap() >= 1_893_456_090_000);

    // Without --test-clock the clock cannot be moved.
    let real = Server::start_with(&[]);
    let a = real.post("/api/v1/clock", &real.operator, json!({"advance": "5d"}));
    assert_eq!(error_of(&a).0, 409);
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--test-clock"));
    assert_eq!(
        real.get("/api/v1/clock", &real.operator).json()["test_clock"],
        false
    );
}

#[test]
fn a_transfer_completes_only_after_the_clock_advances_five_days() {
    let s = Server::start();
    let (_, buyer) = s.customer("buyer");
    let mut params = owner();
    params["auth_code"] = json!("from-the-old-registrar");
    let t = s.order(&buyer, "moving.com", "transfer", params);
    let id = t["id"].as_i64().unwrap();
    s.tick();
    assert_eq!(s.request(&buyer, id)["waiting_on"], "registrant");
    s.advance("4d");
    assert_eq!(s.request(&buyer, id)["state"], "processing");
    // The work that falls due is done before the advance answers.
    let a = s.advance("1d");
    assert!(a["ticked"].as_i64().unwrap() >= 1);
    assert_eq!(s.request(&buyer, id)["state"], "finished");
    let d = s.get("/api/v1/domains/moving.com", &buyer);
    assert_eq!(d.status, 200, "{}", d.text);
}

fn put_rules(s: &Server, rules: Value) -> Answer {
    s.call(
        "PUT",
        "/api/v1/sim/rules",
        Some(&s.operator),
        Some(&json!({ "rules": rules }).to_string()),
    )
}

#[test]
fn a_counted_rule_fails_the_next_n_requests_then_stops() {
    let s = Server::start();
    let (_, token) = s.customer("nina");
    let a = put_rules(
        &s,
        json!([{"pattern": "*.com", "operation": "create", "outcome": "registry_error", "times": 2}]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let mut ids = Vec::new();
    for name in ["n1.com", "n2.com", "n3.com", "n4.com"] {
        ids.push(
            s.order(&token, name, "create", owner())["id"]
                .as_i64()
                .unwrap(),
        );
    }
    s.tick();
    let got: Vec<Value> = ids
        .iter()
        .map(|id| s.request(&token, *id)["state"].clone())
        .collect();
    assert_eq!(
        got,
        [
            json!("failed"),
            json!("failed"),
            json!("finished"),
            json!("finished")
        ]
    );
    let rules = s.get("/api/v1/sim/rules", &s.operator).json();
    assert_eq!(rules["rules"][0]["times"], 0);
    // A restart keeps the count: it is in the database.
    let s = s.restart();
    let id = s.order(&token, "n5.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    assert_eq!(s.request(&token, id)["state"], "finished");
}

#[test]
fn a_rule_latency_holds_the_answer_until_the_clock_passes_it() {
    let s = Server::start();
    let (_, token) = s.customer("lara");
    let a = put_rules(
        &s,
        json!([{"pattern": "late*", "operation": "*", "outcome": "registry_error", "latency": "200ms"}]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["rules"][0]["latency"], "200ms");
    let id = s.order(&token, "late.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    let r = s.request(&token, id);
    assert_eq!(
        (r["state"].clone(), r["waiting_on"].clone()),
        (json!("processing"), json!("internal"))
    );
    s.advance("199ms");
    assert_eq!(s.request(&token, id)["state"], "processing");
    s.advance("1ms");
    let r = s.request(&token, id);
    assert_eq!(
        (r["state"].clone(), r["failure"].clone()),
        (json!("failed"), json!("registry"))
    );
}

#[test]
fn rules_with_a_probability_of_zero_or_one_and_bad_rules_are_refused() {
    let s = Server::start();
    let (_, token) = s.customer("pia");
    let a = put_rules(
        &s,
        json!([
            {"pattern": "never*", "operation": "*", "outcome": "registry_error", "probability": 0.0},
            {"pattern": "always*", "operation": "*", "outcome": "registry_error", "probability": 1.0},
        ]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let never = s.order(&token, "never.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    let always = s.order(&token, "always.com", "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    assert_eq!(s.request(&token, never)["state"], "finished");
    assert_eq!(s.request(&token, always)["state"], "failed");

    let before = s.get("/api/v1/sim/rules", &s.operator).text;
    let good = json!({"pattern": "x*", "operation": "*", "outcome": "success"});
    for (change, field) in [
        (json!({"latency": "11s"}), "rules[0].latency"),
        (json!({"latency": "soon"}), "rules[0].latency"),
        (json!({"probability": 1.5}), "rules[0].probability"),
        (json!({"probability": -0.1}), "rules[0].probability"),
        (json!({"times": 0}), "rules[0].times"),
        (json!({"times": -1}), "rules[0].times"),
        (json!({"times": 2.5}), "rules[0]"),
        (json!({"pattern": "é".repeat(254)}), "rules[0].pattern"),
        (json!({"outcome": "async:soon"}), "rules[0].outcome"),
        (json!({"colour": "red"}), "rules[0]"),
    ] {
        let mut rule = good.clone();
        for (k, v) in change.as_object().unwrap() {
            rule[k] = v.clone();
        }
        let a = put_rules(&s, json!([rule]));
        assert_eq!(
            error_of(&a),
            (422, "invalid".into(), Some(field.into())),
            "{change}: {}",
            a.text
        );
    }
    assert_eq!(s.get("/api/v1/sim/rules", &s.operator).text, before);
    // A whole number may carry a zero fraction, and a pattern is counted
    // in characters.
    let mut whole = good.clone();
    whole["times"] = json!(2.0);
    whole["pattern"] = json!("é".repeat(253));
    let a = put_rules(&s, json!([whole]));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["rules"][0]["times"], 2);
    let a = put_rules(&s, json!([good]));
    assert_eq!(a.status, 200);
    let a = s.call(
        "PUT",
        "/api/v1/sim/rules",
        Some(&token),
        Some("{\"rules\":[]}"),
    );
    assert_eq!(a.status, 403);
}

/// A request's domain, state, wait and failure.
type Outcome = (String, String, Value, Value);

/// One run of calls against a fresh `--seed SEED` instance: the tokens it
/// handed out and every request's outcome.
fn seeded_run(seed: &str) -> (Vec<String>, Vec<Outcome>) {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::start(
        &memory_args(&["--test-clock", "--seed", seed]),
        &[],
        dir.path(),
        0,
    );
    let a = p.call(
        "POST",
        "/api/v1/clock",
        Some(OP),
        Some(json!({"freeze": true})),
    );
    assert_eq!(a.status, 200);
    let mut tokens = Vec::new();
    for name in ["sam", "sue"] {
        let a = p.call(
            "POST",
            "/api/v1/accounts",
            Some(OP),
            Some(json!({"name": name, "email": "x@example.net"})),
        );
        tokens.push(a.json()["token"].as_str().unwrap().to_string());
    }
    let a = p.call(
        "PUT",
        "/api/v1/sim/rules",
        Some(OP),
        Some(json!({"rules": [{"pattern": "*", "operation": "*", "outcome": "registry_error", "probability": 0.5}]})),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    for i in 0..16 {
        let body = json!({"domain": format!("coin{i}.com"), "operation": "create", "params": owner(), "submit": true});
        assert_eq!(
            p.call("POST", "/api/v1/requests", Some(&tokens[0]), Some(body))
                .status,
            201
        );
    }
    assert_eq!(p.call("POST", "/api/v1/tick", Some(OP), None).status, 200);
    (tokens, states(&p, OP))
}

#[test]
fn the_same_seed_gives_the_same_tokens_and_outcomes() {
    let (tokens_a, outcomes_a) = seeded_run("42");
    let (tokens_b, outcomes_b) = seeded_run("42");
    assert_eq!(tokens_a, tokens_b);
    assert_eq!(outcomes_a, outcomes_b);
    // A fair coin: both sides came up.
    let failed = outcomes_a.iter().filter(|o| o.1 == "failed").count();
    assert!(failed > 0 && failed < 16, "{outcomes_a:?}");
    let (tokens_c, _) = seeded_run("43");
    assert_ne!(tokens_a, tokens_c);
}

#[test]
fn reset_empties_the_desk_keeps_operators_and_the_desk_is_usable_again() {
    let s = Server::start();
    let (_, token) = s.customer("rita");
    // Ten years, so that no domain lapses before the clock is reset.
    let mut ten_years = owner();
    ten_years["period"] = json!(10);
    s.order(&token, "gone.com", "create", ten_years.clone());
    s.order(&token, "gone-limbo.com", "create", ten_years);
    s.tick();
    let a = put_rules(
        &s,
        json!([{"pattern": "*", "operation": "*", "outcome": "success"}]),
    );
    assert_eq!(a.status, 200);
    s.post("/api/v1/clock", &s.operator, json!({"set": "2031-01-01"}));
    // Operators only.
    let a = s.post("/api/v1/admin/reset", &token, json!({}));
    assert_eq!(error_of(&a).0, 403);

    let a = s.post("/api/v1/admin/reset", &s.operator, json!({}));
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["deleted"]["requests"], 2);
    assert_eq!(v["deleted"]["customer_accounts"], 1);
    assert_eq!(v["kept"]["operators"], 1);
    // The operator's token still works; the customer's does not.
    assert_eq!(s.get("/api/v1/me", &s.operator).status, 200);
    assert_eq!(s.get("/api/v1/me", &token).status, 401);
    for path in [
        "/api/v1/requests",
        "/api/v1/domains",
        "/api/v1/events",
        "/api/v1/mail",
    ] {
        let a = s.get(path, &s.operator);
        assert_eq!(a.json()["items"], json!([]), "{path}");
    }
    assert_eq!(
        s.get("/api/v1/sim/rules", &s.operator).json()["rules"],
        json!([])
    );
    let accounts = s.get("/api/v1/accounts", &s.operator).json();
    assert_eq!(accounts["items"].as_array().unwrap().len(), 1);
    // The clock is back to the real time and running.
    let c = s.get("/api/v1/clock", &s.operator).json();
    assert_eq!(c["frozen"], false);
    assert!(c["now"].as_str().unwrap() < "2031");

    // And the desk works again, names included.
    s.post("/api/v1/clock", &s.operator, json!({"freeze": true}));
    let (_, token) = s.customer("rita");
    let r = s.order(&token, "gone.com", "create", owner());
    assert_eq!(r["id"], 1);
    s.tick();
    assert_eq!(s.request(&token, 1)["state"], "finished");
    let n = s.get("/api/v1/notification", &token);
    let n = n.json();
    assert_eq!(
        (n["action"].clone(), n["status"].clone()),
        (json!("create"), json!("success")),
        "{n}"
    );
}

#[test]
fn reset_is_refused_unless_the_server_allows_it() {
    let s = Server::start_with(&[]);
    let a = s.post("/api/v1/admin/reset", &s.operator, json!({}));
    let (status, code, _) = error_of(&a);
    assert_eq!((status, code.as_str()), (409, "conflict"));
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--allow-reset"));
    let (_, token) = s.customer("kept");
    assert_eq!(s.get("/api/v1/me", &token).status, 200);

    let s = Server::start_with(&["--allow-reset"]);
    let (_, token) = s.customer("wiped");
    let a = s.post("/api/v1/admin/reset", &s.operator, json!({}));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.get("/api/v1/me", &token).status, 401);
}

#[test]
fn demo_seeds_every_state_and_wait_repeatably_with_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let args = memory_args(&["--demo", "--test-clock", "--seed", "9"]);
    let p = Proc::start(&args, &[], dir.path(), 3);
    // Freeze at once: the one request the registry is slow on stays
    // processing for ten seconds of the clock.
    p.call(
        "POST",
        "/api/v1/clock",
        Some(OP),
        Some(json!({"freeze": true})),
    );
    let tokens: Vec<(String, String)> = p
        .lines
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("demo token ")
                .unwrap_or_else(|| panic!("{l}"));
            let (name, token) = rest.split_once(": ").unwrap();
            (name.to_string(), token.to_string())
        })
        .collect();
    let names: Vec<&str> = tokens.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);

    let all = states(&p, OP);
    for state in [
        "new",
        "incomplete",
        "review",
        "queued",
        "processing",
        "limbo",
        "failed",
        "finished",
    ] {
        assert!(all.iter().any(|r| r.1 == state), "no {state}: {all:?}");
    }
    for wait in ["internal", "registry", "registrant", "operator"] {
        assert!(
            all.iter().any(|r| r.2 == wait),
            "no wait on {wait}: {all:?}"
        );
    }
    // Each demo customer signs in with the printed token and has mail waiting.
    let alice = &tokens[0].1;
    assert_eq!(
        p.call("GET", "/api/v1/me", Some(alice), None).json()["name"],
        "alice"
    );
    let n = p
        .call("GET", "/api/v1/notifications", Some(alice), None)
        .json();
    assert!(n["items"].as_array().unwrap().len() >= 2, "{n}");
    let mail = p.call("GET", "/api/v1/mail", Some(OP), None).json();
    assert!(!mail["items"].as_array().unwrap().is_empty());

    // The demo shows only orders a client could send: each customer can
    // send every one of theirs again, params as shown.
    for (name, token) in &tokens {
        let mine = p.call("GET", "/api/v1/requests?limit=500", Some(token), None);
        for r in mine.json()["items"].as_array().unwrap() {
            let again = json!({
                "domain": r["domain"],
                "operation": r["operation"],
                "params": r["params"],
            });
            let a = p.call("POST", "/api/v1/requests", Some(token), Some(again));
            assert_eq!(a.status, 201, "{name} sending {r} again: {}", a.text);
        }
    }

    // The same seed seeds the same desk with the same tokens.
    let again = Proc::start(&args, &[], dir.path(), 3);
    assert_eq!(again.lines, p.lines);
    assert_eq!(
        states(&again, OP).iter().map(|r| &r.0).collect::<Vec<_>>(),
        all.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
}

#[test]
fn demo_on_a_seeded_file_prints_fresh_tokens_and_seeds_nothing_twice() {
    let s = Server::start_with(&["--demo"]);
    let count = |s: &Server| {
        s.get("/api/v1/requests?limit=500", &s.operator).json()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let first = count(&s);
    assert!(first >= 16);
    let s = s.restart();
    assert_eq!(count(&s), first);
}

#[test]
fn openapi_documents_every_route_and_every_documented_route_exists() {
    let s = Server::start();
    let a = s.call("GET", "/api/openapi.json", None, None);
    assert_eq!(a.status, 200);
    assert!(a.content_type.starts_with("application/json"));
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            documented.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    let matches = |template: &str, path: &str| {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a == b || a.starts_with('{'))
    };
    // Every route of the router is documented...
    for (method, route) in regdesk::http::router::ROUTES {
        assert!(
            documented
                .iter()
                .any(|(m, p)| m == method && matches(route, p)),
            "{method} {route} is not in openapi.json"
        );
    }
    // ...and every documented route is served (called, it is neither an
    // unknown path nor a wrong method).
    for (method, path) in &documented {
        if path.starts_with("/api/v1") {
            assert!(
                regdesk::http::router::ROUTES
                    .iter()
                    .any(|(m, r)| m == method && matches(r, path)),
                "{method} {path} is documented but not routed"
            );
        }
        let concrete = path.replace("{id}", "1").replace("{name}", "example.com");
        if concrete == "/api/v1/admin/reset" {
            continue;
        }
        let a = s.call(method, &concrete, Some(&s.operator), Some("{}"));
        assert_ne!(a.status, 405, "{method} {concrete}");
        if a.status == 404 {
            let message = a.json()["error"]["message"].as_str().unwrap().to_string();
            assert_ne!(
                message,
                format!("{concrete:?} not found"),
                "{method} {concrete}"
            );
        }
    }
    let a = s.call("POST", "/api/v1/admin/reset", Some(&s.operator), None);
    assert_eq!(a.status, 200);
}

#[test]
fn a_database_that_cannot_be_created_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("desk.db");
    let (code, _, stderr) = regdesk([
        OsStr::new("serve"),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--db".as_ref(),
        path.as_ref(),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "regdesk: starting: cannot create the database {}: No such file or directory (os error 2)",
            path.display()
        )
    );
    assert!(!path.exists() && !dir.path().join("missing").exists());
}

/// An address in use stops the start with one line that says so.
#[test]
fn an_address_in_use_stops_the_start_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (code, _, stderr) = regdesk(["serve", "--memory", "--listen", &addr.to_string()]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!("regdesk: starting: cannot listen on {addr}: Address already in use (os error 98)")
    );
}
