//! Running regdesk as an operator does: one server per database, restore,
//! upgrades from a database an earlier version wrote, and the refusals of a
//! start that cannot work.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{json, Value};

use crate::storage::Mount;
use crate::support::{backup, owner, refused, refused_start, regdesk, Server};

fn path_args<'a>(args: &[&'a str], paths: &[&'a Path]) -> Vec<&'a OsStr> {
    args.iter()
        .map(|a| OsStr::new(*a))
        .chain(paths.iter().map(|p| p.as_os_str()))
        .collect()
}

/// A finished order of `domain` by `token`.
fn finished_order(s: &Server, token: &str, domain: &str) -> i64 {
    let id = s.order(token, domain, "create", owner())["id"]
        .as_i64()
        .unwrap();
    s.tick();
    assert_eq!(s.request(token, id)["state"], "finished");
    id
}

/// The domains of `token`'s requests, sorted.
fn ordered(s: &Server, token: &str) -> Vec<String> {
    let page = s.get("/api/v1/requests?limit=500", token).json();
    let mut v: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["domain"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// A second server on a database a server holds is refused at once,
/// naming the holder, and the first goes on serving and ticking; so are a
/// migration and a restore, while the commands that only read or add
/// beside a server work. A killed server's lock is released with it.
#[test]
fn a_database_a_server_holds_is_refused_to_a_second_server_until_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    let mut s = Server::start_with_db(&db, &["--test-clock"]);
    let (_, token) = s.customer("ann");
    let held = format!("{} is served by process {}", db.display(), s.child.id());

    let stderr = refused(&db, &[], &[]);
    assert_eq!(stderr.trim_end(), format!("regdesk: starting: {held}"));
    let (code, _, stderr) = regdesk(path_args(&["migrate", "--db"], &[&db]));
    assert_eq!(code, Some(1));
    assert!(stderr.ends_with(&held), "{stderr}");
    let copy = dir.path().join("copy.db");
    let (code, _, stderr) = backup(&db, &copy);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = regdesk(path_args(&["restore", "--db"], &[&db, &copy]));
    assert_eq!(code, Some(1));
    assert!(stderr.ends_with(&held), "{stderr}");
    for args in [
        &["account", "add", "bob", "bob@example.net", "--db"][..],
        &["account", "list", "--db"][..],
        &["token", "new", "ann", "--db"][..],
    ] {
        let (code, _, stderr) = regdesk(path_args(args, &[&db]));
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }

    // The first server still serves, and its ticker still works.
    finished_order(&s, &token, "still-here.com");
    assert!(s.child.try_wait().unwrap().is_none());

    // kill -9: the kernel releases the lock; a new server takes it.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = Server::start_with_db(&db, &["--test-clock"]);
    assert_eq!(ordered(&s, &token), ["still-here.com"]);
    // `--memory` takes no lock.
    let _beside = Server::start_with_db(&db, &["--memory"]);
}

/// Restore: refused under a running server; then, with the server gone
/// (killed, its WAL left behind), the backup's orders are there and the
/// later ones are not, and the replaced file is kept beside it, whole.
#[test]
fn a_restore_brings_back_the_backup_and_keeps_the_file_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    let copy = dir.path().join("backup.db");
    let mut s = Server::start_with_db(&db, &["--test-clock"]);
    let (_, token) = s.customer("ann");
    finished_order(&s, &token, "before.com");
    let (code, _, stderr) = backup(&db, &copy);
    assert_eq!(code, Some(0), "{stderr}");
    finished_order(&s, &token, "after.com");
    let restore = || regdesk(path_args(&["restore", "--db"], &[&db, &copy]));
    let (code, out, stderr) = restore();
    assert_eq!((code, out.as_str()), (Some(1), ""), "{stderr}");
    assert!(stderr.contains("is served by process"), "{stderr}");
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    let (code, out, stderr) = restore();
    assert_eq!(code, Some(0), "{stderr}");
    let kept = out
        .lines()
        .find_map(|l| l.strip_prefix("kept the database it replaced as "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(kept.starts_with(&format!("{}.before-restore-", db.display())));
    assert!(out.starts_with(&format!(
        "restored {} to {} (schema version",
        copy.display(),
        db.display()
    )));
    assert!(!dir.path().join("regdesk.db-wal").exists());

    let s = Server::start_with_db(&db, &["--test-clock"]);
    assert_eq!(ordered(&s, &token), ["before.com"]);
    drop(s);
    // The kept file holds everything the killed server had committed.
    let s = Server::start_with_db(Path::new(kept), &["--test-clock"]);
    assert_eq!(ordered(&s, &token), ["after.com", "before.com"]);
}

/// A backup that is missing, not SQLite, damaged, another program's or
/// from a newer regdesk is refused naming the file, and the database is
/// left as it was.
#[test]
fn a_backup_that_cannot_be_restored_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    let (code, _, stderr) = regdesk(path_args(&["migrate", "--db"], &[&db]));
    assert_eq!(code, Some(0), "{stderr}");
    let before = std::fs::read(&db).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are notes, not a database").unwrap();
    let newer = dir.path().join("newer.db");
    newer_database(&newer);
    let damaged = dir.path().join("damaged.db");
    std::fs::copy(&db, &damaged).unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[2048..4096].fill(0xFF);
    std::fs::write(&damaged, bytes).unwrap();
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("create table t (x)")
        .unwrap();
    for (file, says) in [
        (dir.path().join("missing.db"), "does not exist"),
        (text, "is not an SQLite database"),
        (damaged, "fails SQLite's integrity check"),
        (foreign, "is an SQLite database but not regdesk's"),
        (newer.clone(), "was written by a newer regdesk"),
    ] {
        let (code, _, stderr) = regdesk(path_args(&["restore", "--db"], &[&db, &file]));
        assert_eq!(code, Some(1));
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

/// A database migrated by this binary, then given a migration it does not
/// know, as a newer regdesk would have.
fn newer_database(db: &Path) {
    let (code, _, stderr) = regdesk(path_args(&["migrate", "--db"], &[db]));
    assert_eq!(code, Some(0), "{stderr}");
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(
            "insert into refinery_schema_history (version, name, applied_on, checksum) \
             values (99, 'from_the_future', '2100-01-01T00:00:00Z', '1')",
            [],
        )
        .unwrap();
}

/// A database written by a newer regdesk is refused by `serve` and
/// `migrate` (dry run or not), saying so; `migrate --dry-run` lists what
/// would run, or says there is nothing to do.
#[test]
fn migrate_dry_run_lists_what_would_run_and_a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    let (code, out, stderr) = regdesk(path_args(&["migrate", "--dry-run", "--db"], &[&db]));
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "would apply V1__initial");
    assert!(lines.len() >= 6, "{out}");
    assert!(!db.exists(), "a dry run made the database");
    let lock = dir.path().join("regdesk.db.lock");
    assert!(!lock.exists(), "a dry run left a lock file");
    let (code, _, _) = regdesk(path_args(&["migrate", "--db"], &[&db]));
    assert_eq!(code, Some(0));
    let (code, out, _) = regdesk(path_args(&["migrate", "--dry-run", "--db"], &[&db]));
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        format!("nothing to do: {} is up to date", db.display())
    );

    let newer = dir.path().join("newer.db");
    newer_database(&newer);
    let says = "was written by a newer regdesk: its schema is at version 99";
    let stderr = refused(&newer, &[], &[]);
    assert!(stderr.contains(says), "{stderr}");
    for args in [
        &["migrate", "--db"][..],
        &["migrate", "--dry-run", "--db"][..],
    ] {
        let (code, out, stderr) = regdesk(path_args(args, &[&newer]));
        assert_eq!((code, out.as_str()), (Some(1), ""), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The start refuses what cannot work, saying what is wrong: a directory
/// given as the database, a file that is not SQLite, a directory it cannot
/// write, a port without an address, a flag other servers have, no
/// workers.
#[test]
fn a_start_that_cannot_work_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused(dir.path(), &[], &[]);
    assert!(
        stderr.contains(&format!("{} is a directory", dir.path().display())),
        "{stderr}"
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are notes, not a database").unwrap();
    let stderr = refused(&text, &[], &[]);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "regdesk: starting: db: {} is not an SQLite database",
            text.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        "these are notes, not a database"
    );

    let db = dir.path().join("x.db");
    let (code, _, stderr) = regdesk(path_args(&["serve", "--listen", "8080", "--db"], &[&db]));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("give HOST:PORT, such as 127.0.0.1:8080"),
        "{stderr}"
    );
    let stderr = refused_start(&["--port", "8080"], &[]);
    assert!(stderr.contains("--listen 127.0.0.1:PORT"), "{stderr}");
    let stderr = refused_start(&["--workers", "0"], &[]);
    assert!(stderr.contains("at least 1"), "{stderr}");

    let ro = tempfile::tempdir().unwrap();
    let Some(_view) = Mount::read_only(dir.path(), ro.path()) else {
        eprintln!("read-only test not run: cannot bind-mount here (needs root)");
        return;
    };
    let stderr = refused(&ro.path().join("new.db"), &[], &[]);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "regdesk: starting: db: the directory {} is not writable, and regdesk keeps the \
             database's journal (-wal, -shm) and its lock file there",
            ro.path().display()
        )
    );
}

/// `account list` starts with a header; `completions` and `man` print
/// what their names say; `serve --help` says where the first operator
/// token appears.
#[test]
fn the_command_line_documents_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    regdesk(path_args(
        &["account", "add", "ann", "ann@example.net", "--db"],
        &[&db],
    ));
    let (code, out, _) = regdesk(path_args(&["account", "list", "--db"], &[&db]));
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().next(), Some("id\tname\trole\temail"));
    let (code, out, _) = regdesk(["completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("_regdesk()") && out.contains("restore"),
        "{out:.300}"
    );
    let (code, out, err) = regdesk(["completions", "tcsh"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert!(err.contains("'tcsh'") && err.contains("bash"), "{err}");
    let (code, out, _) = regdesk(["man"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with(".ie") || out.contains(".TH regdesk"),
        "{out:.300}"
    );
    let (code, out, _) = regdesk(["serve", "--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("operator token: TOKEN"), "{out}");
    assert!(out.contains("regdesk token new operator"), "{out}");
}

/// The fixtures earlier versions wrote, with the answers they gave on them
/// (tests/fixtures/README.md: one more whenever a migration is added).
const FIXTURES: &[&str] = &["v6-c09af39"];

/// Where `expected` and `actual` differ, as paths into them: every field
/// `expected` has must be in `actual` with the same value (a field a newer
/// version adds is ignored); lists keep their length.
fn differences(expected: &Value, actual: &Value, at: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                match a.get(key) {
                    Some(got) => differences(value, got, &format!("{at}.{key}"), out),
                    None => out.push(format!("{at}.{key} is gone (was {value})")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (value, got)) in e.iter().zip(a).enumerate() {
                differences(value, got, &format!("{at}[{i}]"), out);
            }
        }
        _ if expected == actual => {}
        _ => out.push(format!("{at}: was {expected}, now {actual}")),
    }
}

/// Every item of a list, following its `next` cursors.
fn pages(s: &Server, path: &str, token: &str) -> Value {
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let a = s.get(&format!("{path}{sep}limit=500{after}"), token);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        let page = a.json();
        let got = page["items"].as_array().unwrap().clone();
        let done = got.is_empty();
        items.extend(got);
        match page["next"].as_str() {
            Some(next) if !done => after = format!("&after={next}"),
            _ => return Value::Array(items),
        }
    }
}

/// Rows per table of the database `db`.
fn counts(db: &Path) -> serde_json::Map<String, Value> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(&format!("select count(*) from \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, json!(n))
        })
        .collect()
}

/// A database written by an earlier version opens in this one with every
/// row intact: each request (with its history, annotations, invoice items
/// and notifications), domain, event, account and notification queue is
/// served as that version served it, and no table lost a row.
#[test]
fn a_database_an_earlier_version_wrote_is_served_as_it_was() {
    for name in FIXTURES {
        served_as_it_was(name);
    }
}

fn served_as_it_was(name: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(fixtures.join(format!("{name}.json"))).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    std::fs::copy(fixtures.join(format!("{name}.db")), &db).unwrap();
    let s = Server::start_with_db(&db, &["--test-clock"]);
    let op = s.operator.clone();

    let mut out = Vec::new();
    let requests = expected["requests"].as_array().unwrap();
    for r in requests {
        let id = r["id"].as_i64().unwrap();
        differences(r, &s.request(&op, id), &format!("request {id}"), &mut out);
    }
    let ours = pages(&s, "/api/v1/requests", &op);
    assert_eq!(ours.as_array().unwrap().len(), requests.len());
    differences(
        &expected["domains"],
        &pages(&s, "/api/v1/domains", &op),
        "domains",
        &mut out,
    );
    differences(
        &expected["events"],
        &pages(&s, "/api/v1/events", &op),
        "events",
        &mut out,
    );
    let accounts = s.get("/api/v1/accounts", &op).json();
    differences(&expected["accounts"], &accounts, "accounts", &mut out);
    for (name, token) in expected["tokens"].as_object().unwrap() {
        let queue = pages(
            &s,
            "/api/v1/notifications?status=all",
            token.as_str().unwrap(),
        );
        let want = &expected["notifications"][name];
        differences(want, &queue, &format!("notifications of {name}"), &mut out);
    }
    for (table, n) in expected["counts"].as_object().unwrap() {
        let now = counts(&db).get(table).cloned().unwrap_or(json!(0));
        let kept = match table.as_str() {
            // A migration added since adds its row.
            "refinery_schema_history" => now.as_i64() >= n.as_i64(),
            _ => &now == n,
        };
        if !kept {
            out.push(format!("table {table}: {n} rows, now {now}"));
        }
    }
    assert!(
        out.is_empty(),
        "{name}: {} differences:\n{}",
        out.len(),
        out.join("\n")
    );
    assert!(requests.len() > 40, "{name} is too small");
}

/// The lifecycle notifications of `domain` in `token`'s queue, as
/// `action/status`, oldest first.
fn lifecycle_of(s: &Server, token: &str, domain: &str) -> Vec<String> {
    pages(s, "/api/v1/notifications?status=all", token)
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["domain"] == domain)
        .filter(|n| n["action"] == "expire" || n["action"] == "delete")
        .map(|n| format!("{}/{}", n["action"], n["status"]).replace('"', ""))
        .collect()
}

/// The subjects of the mail about `domain`.
fn mail_about(s: &Server, domain: &str) -> Vec<String> {
    pages(s, "/api/v1/mail", &s.operator)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["subject"].as_str())
        .filter(|subject| subject.contains(domain))
        .map(str::to_string)
        .collect()
}

fn set_clock(s: &Server, at: i64) {
    let at = regdesk::clock::format(at);
    let a = s.post("/api/v1/clock", &s.operator, json!({ "set": at }));
    assert_eq!(a.status, 200, "{}", a.text);
    s.tick();
}

/// A database an earlier version wrote, holding a domain whose expiry
/// passed long before the upgrade (the fixture's clock stood at the day it
/// was made; a desk kept for years holds such domains, so one is dated
/// back): the upgrade keeps it, tells its owner once that it expired, and
/// counts grace, redemption and pending delete from the upgrade, with no
/// reminder of the past. A domain whose expiry lies ahead goes through
/// every step of its cycle, as on a new database; one whose expiry is
/// near, the steps due after the upgrade.
#[test]
fn an_upgrade_counts_a_long_past_expiry_from_the_upgrade_and_deletes_nothing_at_once() {
    use regdesk::clock::{self, DAY};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("v6-c09af39.json")).unwrap())
            .unwrap();
    let alice = expected["tokens"]["alice"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regdesk.db");
    std::fs::copy(fixtures.join("v6-c09af39.db"), &db).unwrap();
    let today = clock::Clock::real().now();
    let long_ago = today - 400 * DAY;
    let dated = rusqlite::Connection::open(&db).unwrap();
    let set = "update domains set expires_at = ?1 where name = ?2";
    dated.execute(set, (long_ago, "alice-busy.com")).unwrap();
    // Its first reminder and auto-renewal fall before the upgrade.
    dated
        .execute(set, (today + 10 * DAY, "alice-slow.com"))
        .unwrap();
    drop(dated);
    let s = Server::start_with_db(&db, &["--test-clock"]);
    s.tick();

    let busy = s.get("/api/v1/domains/alice-busy.com", &alice).json();
    assert_eq!(busy["lifecycle"], "expired", "{busy}");
    assert_eq!(busy["rgp_status"], "autoRenewPeriod", "{busy}");
    let steps = busy["lifecycle_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{busy}");
    assert_eq!(steps[0]["step"], "expired");
    let upgraded = clock::parse("due_at", steps[0]["due_at"].as_str().unwrap()).unwrap();
    assert!(upgraded > long_ago + 399 * DAY, "{busy}");
    assert_eq!(busy["next_step"], "reminder-after");
    assert_eq!(busy["next_step_at"], clock::format(upgraded + 3 * DAY));
    assert_eq!(
        lifecycle_of(&s, &alice, "alice-busy.com"),
        ["expire/expired"]
    );
    let expired = format!(
        "[regdesk] alice-busy.com expired on {}",
        clock::format_date(long_ago)
    );
    assert_eq!(
        mail_about(&s, "alice-busy.com"),
        std::slice::from_ref(&expired)
    );
    let slow = s.get("/api/v1/domains/alice-slow.com", &alice).json();
    assert_eq!(slow["next_step"], "reminder-7", "{slow}");

    // Grace, redemption and pending delete count from the upgrade.
    set_clock(&s, upgraded + 65 * DAY - 60_000);
    let busy = s.get("/api/v1/domains/alice-busy.com", &alice).json();
    assert_eq!(busy["lifecycle"], "pending_delete", "{busy}");
    assert_eq!(
        lifecycle_of(&s, &alice, "alice-busy.com"),
        [
            "expire/expired",
            "expire/reminder",
            "expire/redemption",
            "expire/pending_delete"
        ]
    );
    // The API shows whole seconds.
    set_clock(&s, upgraded + 65 * DAY + 1000);
    let gone = s.get("/api/v1/domains/alice-busy.com", &alice);
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert_eq!(
        lifecycle_of(&s, &alice, "alice-busy.com").last().unwrap(),
        "delete/success"
    );
    let mail = mail_about(&s, "alice-busy.com");
    assert_eq!(
        mail.iter().filter(|m| **m == expired).count(),
        1,
        "{mail:?}"
    );

    // An expiry after the upgrade: every step, from the first reminder.
    let blog = s.get("/api/v1/domains/alice-blog.net", &alice).json();
    assert_eq!(blog["next_step"], "reminder-30", "{blog}");
    let expires = clock::parse("expires_at", blog["expires_at"].as_str().unwrap()).unwrap();
    set_clock(&s, expires + 65 * DAY + 1000);
    assert_eq!(
        lifecycle_of(&s, &alice, "alice-blog.net"),
        crate::lifecycle::LAPSED
    );
    assert_eq!(s.get("/api/v1/domains/alice-blog.net", &alice).status, 404);
    // An expiry soon after the upgrade: the steps due after it.
    assert_eq!(
        lifecycle_of(&s, &alice, "alice-slow.com"),
        crate::lifecycle::LAPSED[1..]
    );
    let slow = mail_about(&s, "alice-slow.com");
    assert_eq!(
        slow.len(),
        2,
        "the reminders 7 days before and 3 after: {slow:?}"
    );
}
