//! A full disk, and a read-only one. The database lives on a small tmpfs,
//! or a read-only bind mount, made for the test (which needs root, as on
//! the CI machines; elsewhere the test says it cannot mount and passes
//! without running). And a WAL that a long reader made large returns to
//! its bound.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{backup, refused, regdesk, xcp_envelope, xcp_reply, Server};

/// A file system mounted on a temporary directory for a test; unmounted
/// when dropped.
pub(crate) struct Mount {
    path: PathBuf,
    /// Whether the mount point goes with it (a bind mount's is used again).
    remove: bool,
}

/// Runs `mount ARGS`; whether it worked.
fn mount(args: &[&OsStr]) -> bool {
    Command::new("mount")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Mount {
    /// A tmpfs of `size` on `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let size = format!("size={size}");
        let ok = mount(&[
            "-t".as_ref(),
            "tmpfs".as_ref(),
            "-o".as_ref(),
            size.as_ref(),
            "tmpfs".as_ref(),
            dir.as_ref(),
        ]);
        ok.then(|| Mount {
            path: dir.to_path_buf(),
            remove: true,
        })
    }

    /// `src` seen read-only on `dir` (a bind mount).
    pub(crate) fn read_only(src: &Path, dir: &Path) -> Option<Mount> {
        if !mount(&["--bind".as_ref(), src.as_ref(), dir.as_ref()]) {
            return None;
        }
        let view = Mount {
            path: dir.to_path_buf(),
            remove: false,
        };
        mount(&["-o".as_ref(), "remount,ro,bind".as_ref(), dir.as_ref()]).then_some(view)
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .expect("mount");
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .output()
            .ok();
        if self.remove {
            std::fs::remove_dir(&self.path).ok();
        }
    }
}

fn order(s: &Server, token: &str, domain: &str) -> crate::support::Answer {
    // About 600 bytes a request, so that a megabyte fills in a few
    // hundred.
    let name = format!("Owner of {domain} {}", "x".repeat(150));
    s.post(
        "/api/v1/requests",
        token,
        json!({"domain": domain, "operation": "create", "submit": true,
               "params": {"contacts": {"owner": {"name": name, "email": "owner@example.net"}},
                          "nameservers": ["ns1.example.net", "ns2.example.net"]}}),
    )
}

fn domains(s: &Server, token: &str) -> Vec<String> {
    let a = s.get("/api/v1/requests?limit=500", token);
    assert_eq!(a.status, 200, "{}", a.text);
    let mut v = Vec::new();
    let mut page = a.json();
    loop {
        for r in page["items"].as_array().unwrap() {
            v.push(r["domain"].as_str().unwrap().to_string());
        }
        let Some(next) = page["next"].as_str().map(str::to_string) else {
            break;
        };
        page = s
            .get(&format!("/api/v1/requests?limit=500&after={next}"), token)
            .json();
    }
    v.sort();
    v
}

/// Sends up to `max` writes (`send(i)` says whether the i-th was taken)
/// until one is refused, and returns how many were taken before it. A full
/// disk can still take a small write now and then (SQLite reuses the WAL
/// file from its start once a checkpoint has copied it back), so a face is
/// asked again until it refuses.
fn until_refused(max: usize, mut send: impl FnMut(usize) -> bool) -> usize {
    (0..max)
        .find(|i| !send(*i))
        .unwrap_or_else(|| panic!("{max} writes taken, none refused"))
}

/// Writes on a full disk are refused (native API and task face 507
/// `storage_full`, XCP its internal-error code with the same text) and
/// leave nothing behind; every write answered before is kept (also across
/// a restart); reads and health go on; once there is room, writes are
/// taken again, the refused ones included.
#[test]
fn a_full_disk_refuses_writes_with_507_and_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Mount::tmpfs(dir.path(), "1m") else {
        eprintln!("storage test not run: cannot mount a tmpfs here (needs root)");
        return;
    };
    let s = Server::start_in(dir, &["--test-clock"]);
    let (_, token) = s.customer("filler");
    let reseller = s.reseller("xcp");
    // Deletes scheduled for later, which the task face can cancel.
    let mut scheduled = Vec::new();
    for i in 0..20 {
        let a = s.post(
            "/api/v1/requests",
            &reseller.token,
            json!({"domain": format!("later-{i}.com"), "operation": "delete",
                   "exec_date": "2099-01-01", "submit": true}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        scheduled.push(a.json()["id"].as_i64().unwrap());
    }

    let mut taken = Vec::new();
    let mut refusal = None;
    let filled = until_refused(20_000, |i| {
        let domain = format!("fill-{i}.com");
        let a = order(&s, &token, &domain);
        if a.status == 201 {
            taken.push(domain);
            return true;
        }
        refusal = Some(a);
        false
    });
    let a = refusal.unwrap();
    assert!(filled > 10, "only {filled} writes before the disk filled");
    assert_eq!(a.status, 507, "{}", a.text);
    let e: Value = a.json();
    assert_eq!(e["error"]["code"], "storage_full", "{e}");
    let message = e["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("disk") && message.contains("full"),
        "{message}"
    );
    let mut refused = vec![format!("fill-{filled}.com")];

    // The other native writes, then the XCP face and the task face.
    until_refused(200, |i| {
        let domain = format!("again-{i}.com");
        let a = order(&s, &token, &domain);
        if a.status == 201 {
            taken.push(domain);
            return true;
        }
        assert_eq!(a.status, 507, "{}", a.text);
        refused.push(domain);
        false
    });
    // A bulk action, each id in a savepoint of its own inside the write.
    let mut aborted = Vec::new();
    until_refused(200, |i| {
        let id = s
            .get("/api/v1/requests?state=queued&limit=1", &token)
            .json()["items"][0]["id"]
            .clone();
        let a = s.post(
            "/api/v1/requests/bulk",
            &token,
            json!({"action": "abort", "ids": [id]}),
        );
        if a.status == 200 {
            assert_eq!(a.json()["done"], json!([id]), "{}", a.text);
            aborted.push(id);
            return true;
        }
        assert_eq!(a.status, 507, "bulk {i}: {}", a.text);
        assert_eq!(a.json()["error"]["code"], "storage_full");
        false
    });
    let mut registered = Vec::new();
    until_refused(200, |i| {
        let domain = format!("xcp-{i}.com");
        let register = xcp_envelope(
            "SW_REGISTER",
            "DOMAIN",
            &format!(
                r#"<item key="domain">{domain}</item><item key="reg_type">new</item>
                   <item key="period">1</item>
                   <item key="contact_set"><dt_assoc><item key="owner"><dt_assoc>
                     <item key="first_name">Ada</item><item key="last_name">Lovelace</item>
                     <item key="email">ada@example.net</item><item key="phone">+1.4165550123</item>
                   </dt_assoc></item></dt_assoc></item>"#
            ),
        );
        let reply = xcp_reply(&s.xcp(&reseller, register.as_bytes()));
        if reply.get_str("is_success") == Some("1") {
            registered.push(domain);
            return true;
        }
        assert_eq!(reply.get_str("response_code"), Some("500"), "{reply:?}");
        assert_eq!(reply.get_str("response_text"), Some(message.as_str()));
        false
    });
    let cancelled = until_refused(scheduled.len(), |i| {
        let task = s.call_with(
            "POST",
            &format!("/bdom/task/delete/-/-/-/-/{}/", reseller.id),
            Some(&reseller.token),
            Some(&format!(
                "<request><delete><task_id>{}</task_id></delete></request>",
                scheduled[i]
            )),
            &[("Content-Type", "application/xml")],
        );
        if task.status == 200 {
            return true;
        }
        assert_eq!(task.status, 507, "{}", task.text);
        assert!(
            task.text.contains("<code>507</code>") && task.text.contains("full"),
            "{}",
            task.text
        );
        false
    });

    // Reads and health go on, and show what was answered, no more.
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
    taken.sort();
    assert_eq!(domains(&s, &token), taken);
    let mut theirs: Vec<String> = (0..20).map(|i| format!("later-{i}.com")).collect();
    theirs.extend(registered);
    theirs.sort();
    assert_eq!(domains(&s, &reseller.token), theirs);
    let failed = s
        .get("/api/v1/requests?state=failed&limit=500", &token)
        .json();
    let failed: Vec<Value> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    aborted.reverse();
    assert_eq!(failed, aborted);
    for (i, id) in scheduled.iter().enumerate() {
        let want = if i < cancelled { "failed" } else { "queued" };
        assert_eq!(s.request(&reseller.token, *id)["state"], want, "task {i}");
    }

    // Room again: the refused orders are taken.
    fs.resize("64m");
    for domain in refused {
        assert_eq!(order(&s, &token, &domain).status, 201);
        taken.push(domain);
    }
    taken.sort();

    // Everything answered is on disk: a killed server has it all.
    let s = s.restart();
    assert_eq!(domains(&s, &token), taken);
    drop(s);
    drop(fs);
}

/// A backup that does not fit on its disk says so, and leaves no file
/// there (not even the partial copy it was writing).
#[test]
fn a_backup_without_room_says_so_and_leaves_nothing() {
    let src = tempfile::tempdir().unwrap();
    let db = src.path().join("regdesk.db");
    let (code, _, stderr) = regdesk([OsStr::new("migrate"), "--db".as_ref(), db.as_ref()]);
    assert_eq!(code, Some(0), "{stderr}");
    let dst = tempfile::tempdir().unwrap();
    let Some(fs) = Mount::tmpfs(dst.path(), "64k") else {
        eprintln!("storage test not run: cannot mount a tmpfs here (needs root)");
        return;
    };
    let copy = dst.path().join("copy.db");
    let (code, _, stderr) = backup(&db, &copy);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no room for the backup"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dst.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    drop(fs);
}

/// A database on a read-only file system (or one whose file cannot be
/// written) was opened read-only by SQLite: regdesk said it was ready, read
/// as usual and answered every write 500 "internal error". It now refuses
/// to start, saying why, whether the database was closed cleanly or left
/// with its WAL by a crash.
#[test]
fn a_database_that_can_only_be_read_is_refused_at_the_start() {
    let rw = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    let db = rw.path().join("desk.db");
    let seen = ro.path().join("desk.db");
    let (code, _, stderr) = regdesk([OsStr::new("migrate"), "--db".as_ref(), db.as_ref()]);
    assert_eq!(code, Some(0), "{stderr}");
    let Some(view) = Mount::read_only(rw.path(), ro.path()) else {
        eprintln!("storage test not run: cannot bind-mount here (needs root)");
        return;
    };
    let refusal = format!(
        "regdesk: starting: {} can only be read here (a read-only file system, or the \
         file's permissions), and regdesk writes to its database",
        seen.display()
    );
    let stderr = refused(&seen, &[], &[]);
    assert_eq!(stderr.trim_end(), refusal);
    drop(view);

    // Left by a crash: its WAL and shared memory files are there, which
    // is when SQLite opened it read-only and the start went on.
    let s = Server::start_with_db(&db, &[]);
    let (_, token) = s.customer("ann");
    drop(s);
    assert!(rw.path().join("desk.db-shm").exists());
    let Some(view) = Mount::read_only(rw.path(), ro.path()) else {
        panic!("the second bind mount failed");
    };
    let stderr = refused(&seen, &[], &[]);
    assert_eq!(stderr.trim_end(), refusal);
    drop(view);
    // Where it can be written, it serves what it holds.
    let s = Server::start_with_db(&db, &[]);
    assert_eq!(s.get("/api/v1/me", &token).status, 200);
}

/// The size the WAL file is cut back to once checkpoints can copy it all
/// back (`journal_size_limit` of the writer's connection).
const WAL_BOUND: u64 = 64 << 20;

fn wal_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

/// A `/metrics` value.
fn metric(s: &Server, name: &str) -> f64 {
    let text = s.get("/metrics", &s.operator).text;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// Sends orders until `done` says so, failing after `limit`.
fn orders_until(s: &Server, token: &str, what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    let mut i = 0;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not after {i} orders");
        let a = order(s, token, &format!("{what}-{i}.com"));
        assert_eq!(a.status, 201, "{}", a.text);
        i += 1;
    }
}

/// Another process holds a read transaction (an old snapshot) while
/// clients write: checkpoints cannot copy the WAL back, it grows past its
/// bound, and `/metrics` says checkpoints are blocked. Once the reader
/// lets go, the WAL file shrinks back to its bound while writes go on.
#[test]
fn a_wal_grown_under_a_long_reader_returns_to_its_bound() {
    let s = Server::start();
    let db = s.dir.path().join("regdesk.db");
    let (_, token) = s.customer("writer");
    order(&s, &token, "first.com");
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("begin").unwrap();
    let n: i64 = reader
        .query_row("select count(*) from requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let limit = Duration::from_secs(120);
    orders_until(&s, &token, "grow", limit, || {
        wal_bytes(&db) > WAL_BOUND + WAL_BOUND / 2
    });
    orders_until(&s, &token, "blocked", limit, || {
        metric(&s, "regdesk_db_checkpoints_blocked") > 0.0
    });
    assert!(metric(&s, "regdesk_db_wal_bytes") > WAL_BOUND as f64);

    reader.execute_batch("commit").unwrap();
    drop(reader);
    orders_until(&s, &token, "after", limit, || wal_bytes(&db) <= WAL_BOUND);
    orders_until(&s, &token, "unblocked", limit, || {
        metric(&s, "regdesk_db_checkpoints_blocked") == 0.0
    });
}
