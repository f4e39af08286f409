//! The regdesk benchmark: drives the real release binary (a child process on
//! 127.0.0.1:0 with a temporary on-disk database) over loopback keep-alive
//! HTTP, and reports every figure next to a floor measured in the same run on
//! the same machine. `cargo bench` runs it; `cargo bench -- --quick` uses
//! smaller counts. Results: a table on stdout, `bench-results.json` (compared
//! with the previous file when there is one), progress on stderr.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde_json::{json, Value};

mod epp;

const OPERATOR: &str = "rd_bench_operator_token_0123456789";
const CLIENTS: usize = 16;
const OWNER: &str = r#"{"contacts":{"owner":{"name":"Bench Owner","email":"owner@example.net"}}}"#;

/// Counts and durations of one run.
struct Plan {
    quick: bool,
    /// B1/B2 measuring time per side, in `rounds` rounds.
    window: Duration,
    rounds: u32,
    b3_requests: i64,
    big_db_rows: i64,
    b4_runs: usize,
    b5_rounds: usize,
    b5_pages: usize,
    b7_domains: i64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                window: Duration::from_secs(3),
                rounds: 3,
                b3_requests: 10_000,
                big_db_rows: 100_000,
                b4_runs: 5,
                b5_rounds: 10,
                b5_pages: 3,
                b7_domains: 100_000,
            }
        } else {
            Plan {
                quick,
                window: Duration::from_secs(10),
                rounds: 5,
                b3_requests: 100_000,
                big_db_rows: 1_000_000,
                b4_runs: 20,
                b5_rounds: 60,
                b5_pages: 5,
                b7_domains: 1_000_000,
            }
        }
    }
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not,
    // and a debug build of a minutes-long benchmark is no test: only say so.
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "benchmarks run with `cargo bench --bench bench` (add `-- --quick` for a short run)"
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only B1,B3` runs some benchmarks (for profiling one of them).
    let only: Option<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.to_ascii_uppercase());
    let wanted = |id: &str| only.as_ref().is_none_or(|o| o.split(',').any(|x| x == id));
    let plan = Plan::new(quick);
    let bin = PathBuf::from(
        std::env::var("REGDESK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_regdesk").into()),
    );
    let out = PathBuf::from(
        std::env::var("BENCH_OUT")
            .unwrap_or_else(|_| format!("{}/bench-results.json", env!("CARGO_MANIFEST_DIR"))),
    );
    let tmp = tempfile::Builder::new()
        .prefix("regdesk-bench")
        .tempdir()
        .expect("a temporary directory");
    let ctx = Ctx {
        bin,
        dir: tmp.path().to_path_buf(),
        plan,
        peak_rss_kb: AtomicU64::new(0),
        seq: AtomicU64::new(0),
    };
    let started = Instant::now();
    progress(&format!(
        "{} run, binary {}, work in {}",
        if quick { "quick" } else { "full" },
        ctx.bin.display(),
        ctx.dir.display()
    ));

    let mut rows: Vec<Row> = Vec::new();
    if wanted("B1") {
        rows.push(b1(&ctx));
    }
    if wanted("B2") {
        rows.push(b2(&ctx));
    }
    if wanted("B3") {
        rows.push(b3(&ctx));
    }
    if wanted("B4") || wanted("B5") {
        let big = big_db(&ctx);
        if wanted("B4") {
            rows.extend(b4(&ctx, &big));
        }
        if wanted("B5") {
            rows.extend(b5(&ctx, &big));
        }
    }
    if wanted("B7") {
        rows.extend(b7(&ctx));
    }
    if wanted("B6") {
        rows.extend(b6(&ctx));
    }
    if wanted("B8") {
        rows.extend(epp::b8(&ctx));
    }
    progress(&format!("done in {:.0} s", started.elapsed().as_secs_f64()));

    if only.is_some() {
        // A partial run is for iterating: print it, keep the results file.
        print_table(&ctx, &rows, None);
        return;
    }
    let previous = std::fs::read_to_string(&out)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok());
    print_table(&ctx, &rows, previous.as_ref());
    let results = json!({
        "date": date_utc(),
        "quick": quick,
        "machine": machine(),
        "results": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    match std::fs::write(
        &out,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    ) {
        Ok(()) => progress(&format!("wrote {}", out.display())),
        Err(e) => progress(&format!("cannot write {}: {e}", out.display())),
    }
}

struct Ctx {
    bin: PathBuf,
    dir: PathBuf,
    plan: Plan,
    peak_rss_kb: AtomicU64,
    seq: AtomicU64,
}

impl Ctx {
    fn fresh_path(&self, what: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{what}-{n}.db"))
    }

    fn migrated(&self, what: &str) -> PathBuf {
        let path = self.fresh_path(what);
        let status = Command::new(&self.bin)
            .args(["migrate", "--db"])
            .arg(&path)
            .stdout(Stdio::null())
            .env("RUST_LOG", "warn")
            .status()
            .expect("running regdesk migrate");
        assert!(status.success(), "regdesk migrate failed");
        path
    }
}

/// One line of the result table.
struct Row {
    id: &'static str,
    what: String,
    value: f64,
    unit: &'static str,
    floor: Option<f64>,
    goal: Goal,
    note: String,
}

#[derive(Clone, Copy)]
enum Goal {
    /// value / floor at least this.
    RatioAtLeast(f64),
    /// value at most this.
    AtMost(f64),
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.floor.filter(|f| *f > 0.0).map(|f| self.value / f)
    }

    fn met(&self) -> bool {
        match self.goal {
            Goal::RatioAtLeast(r) => self.ratio().is_some_and(|x| x >= r),
            Goal::AtMost(m) => self.value <= m,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::RatioAtLeast(r) => format!(">= {r}x floor"),
            Goal::AtMost(m) => format!("<= {} {}", num(m), self.unit),
        }
    }

    fn key(&self) -> String {
        format!("{} {}", self.id, self.what)
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "what": self.what,
            "value": self.value,
            "unit": self.unit,
            "floor": self.floor,
            "ratio": self.ratio(),
            "goal": self.goal_text(),
            "met": self.met(),
            "note": self.note,
        })
    }
}

fn num(x: f64) -> String {
    if x >= 1000.0 {
        let mut s = format!("{:.0}", x);
        let mut i = s.len() as isize - 3;
        while i > 0 {
            s.insert(i as usize, ',');
            i -= 3;
        }
        s
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn print_table(ctx: &Ctx, rows: &[Row], previous: Option<&Value>) {
    let prev = |key: &str| -> Option<f64> {
        previous?["results"].as_array()?.iter().find_map(|r| {
            let k = format!("{} {}", r["id"].as_str()?, r["what"].as_str()?);
            (k == key).then(|| r["value"].as_f64()).flatten()
        })
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nregdesk benchmarks ({} run, {}, {})\n",
        if ctx.plan.quick { "quick" } else { "full" },
        date_utc(),
        machine()["cpu"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "| bench | figure | value | floor | ratio | goal | met | previous |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|---|---:|");
    for r in rows {
        let floor = r.floor.map(|f| format!("{} {}", num(f), r.unit));
        let ratio = r.ratio().map(|x| format!("{x:.2}x"));
        let previous = prev(&r.key()).map(|p| {
            let change = if p != 0.0 {
                format!(" ({:+.0}%)", (r.value - p) / p * 100.0)
            } else {
                String::new()
            };
            format!("{}{change}", num(p))
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
            r.id,
            r.what,
            num(r.value),
            r.unit,
            floor.unwrap_or_else(|| "-".into()),
            ratio.unwrap_or_else(|| "-".into()),
            r.goal_text(),
            if r.met() { "yes" } else { "NO" },
            previous.unwrap_or_else(|| "-".into()),
        );
    }
    let notes: Vec<&Row> = rows.iter().filter(|r| !r.note.is_empty()).collect();
    if !notes.is_empty() {
        out.push('\n');
        for r in notes {
            let _ = writeln!(out, "- {} {}: {}", r.id, r.what, r.note);
        }
    }
    println!("{out}");
}

fn date_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown cpu")
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    json!({
        "cpu": cpu,
        "cores": thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "kernel": kernel,
        "load": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

// ----- the server under test --------------------------------------------------

struct Server {
    child: Child,
    addr: SocketAddr,
    /// With `--epp-listen`: where EPP is served.
    epp: Option<SocketAddr>,
}

impl Server {
    fn start(ctx: &Ctx, db: &Path, extra: &[&str]) -> Server {
        let (server, _) = Server::spawn(ctx, db, extra);
        server
    }

    /// Starts `regdesk serve` and returns it with the time from exec to its
    /// first line on stdout.
    fn spawn(ctx: &Ctx, db: &Path, extra: &[&str]) -> (Server, Instant) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ctx.dir.join("server.log"))
            .expect("the server log");
        let t0 = Instant::now();
        let mut child = Command::new(&ctx.bin)
            .arg("serve")
            .arg("--db")
            .arg(db)
            .args(["--listen", "127.0.0.1:0", "--operator-token", OPERATOR])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting regdesk serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        lines
            .read_line(&mut line)
            .expect("reading the server's stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the server did not say where it listens ({line:?}); see {}",
                    ctx.dir.join("server.log").display()
                )
            });
        let epp = extra.contains(&"--epp-listen").then(|| {
            line.clear();
            lines.read_line(&mut line).expect("the EPP line");
            let epp = line.trim().strip_prefix("epp listening on ");
            epp.and_then(|a| a.parse().ok()).expect("the EPP address")
        });
        // Keep draining stdout so the server never blocks on a full pipe.
        thread::spawn(move || {
            let mut sink = Vec::new();
            lines.read_to_end(&mut sink).ok();
        });
        (Server { child, addr, epp }, t0)
    }

    fn conn(&self) -> Conn {
        Conn::new(self.addr)
    }

    fn vm_hwm_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Records the peak RSS, asks the server to stop (SIGTERM) and waits.
    fn stop(mut self, ctx: &Ctx) {
        ctx.peak_rss_kb
            .fetch_max(self.vm_hwm_kb(), Ordering::Relaxed);
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .ok();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
        progress("the server did not stop within 20 s; killing it");
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// CPU time the server has used so far (user and system, all threads,
    /// finished ones included), in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses: utime and
        // stime are the 12th and 13th of them, in clock ticks.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ticks: f64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<f64>().ok())
            .sum();
        ticks / clock_ticks_per_sec()
    }

    /// Figures of one `/metrics` page (NaN where one is missing).
    fn metrics<const N: usize>(&self, names: [&str; N]) -> [f64; N] {
        let body = match self.conn().call("GET", "/metrics", Some(OPERATOR), None) {
            Ok((200, body)) => String::from_utf8_lossy(&body).into_owned(),
            _ => String::new(),
        };
        names.map(|name| {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(f64::NAN)
        })
    }

    fn commit_counters(&self) -> Commits {
        let [commits, writes, syncs] = self.metrics([
            "regdesk_db_commits_total",
            "regdesk_db_writes_total",
            "regdesk_db_syncs_total",
        ]);
        Commits {
            commits,
            writes,
            syncs,
        }
    }

    /// Waits (at most a minute) until nothing is queued or processing, so
    /// that the next round, ours or the floor's, starts on an idle machine.
    fn wait_idle(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let [queued, processing] = self.metrics([
                "regdesk_requests{state=\"queued\"}",
                "regdesk_requests{state=\"processing\"}",
            ]);
            if queued + processing == 0.0 {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        progress("  the server was still fulfilling after a minute");
    }

    fn account(&self, name: &str) -> (i64, String) {
        let body = json!({"name": name, "email": format!("{name}@example.net")}).to_string();
        let (status, body) = self
            .conn()
            .call(
                "POST",
                "/api/v1/accounts",
                Some(OPERATOR),
                Some(body.as_bytes()),
            )
            .expect("creating an account");
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("account JSON");
        (
            v["id"].as_i64().expect("id"),
            v["token"].as_str().expect("token").to_string(),
        )
    }
}

/// The writer's counters (`/metrics`), or what they grew by.
#[derive(Default, Clone, Copy)]
struct Commits {
    commits: f64,
    writes: f64,
    syncs: f64,
}

impl Commits {
    fn add(&mut self, before: Commits, after: Commits) {
        self.commits += after.commits - before.commits;
        self.writes += after.writes - before.writes;
        self.syncs += after.syncs - before.syncs;
    }

    /// "N commits, writes per commit and per sync".
    fn describe(&self) -> String {
        format!(
            "{} commits, {:.1} writes per commit, {:.1} per sync",
            num(self.commits),
            self.writes / self.commits,
            self.writes / self.syncs
        )
    }
}

/// Sides of a benchmark measured in turn, in rounds.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Floor,
    /// A second floor, reported beside the result (B2's handler mode).
    OtherFloor,
    Ours,
}

/// The order of the sides in round `r`: as given in even rounds, reversed
/// in odd ones (floor, ours, ours, floor, ...), so that a machine getting
/// faster or slower during the run weighs on every side alike.
fn order(r: u32, sides: &[Side]) -> Vec<Side> {
    let mut sides = sides.to_vec();
    if r % 2 == 1 {
        sides.reverse();
    }
    sides
}

/// What one side did over its rounds.
#[derive(Default)]
struct Tally {
    n: u64,
    secs: f64,
    rates: Vec<f64>,
}

impl Tally {
    fn add(&mut self, n: u64, secs: f64) {
        self.n += n;
        self.secs += secs;
        self.rates.push(n as f64 / secs);
    }

    fn rate(&self) -> f64 {
        self.n as f64 / self.secs
    }

    /// "ratio by round A-Bx": the lowest and highest of the rounds' ratios
    /// of this side to `floor`.
    fn round_ratios(&self, floor: &Tally) -> String {
        let ratios: Vec<f64> = self
            .rates
            .iter()
            .zip(&floor.rates)
            .map(|(ours, floor)| ours / floor)
            .collect();
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        format!(
            "{} rounds, ratio by round {low:.2}x-{high:.2}x",
            ratios.len()
        )
    }
}

/// "server CPU N µs per `what`": `secs` of the server's CPU over `n` of them.
fn cpu_per(secs: f64, n: u64, what: &str) -> String {
    format!(
        "server CPU {:.0} µs per {what}",
        secs * 1e6 / n.max(1) as f64
    )
}

/// The kernel's clock tick for `/proc` CPU times (`getconf CLK_TCK`).
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

// ----- a small HTTP/1.1 keep-alive client ---------------------------------------

/// One keep-alive connection; reconnects once when the server closed it.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(1024),
        }
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        match self.try_call(method, path, token, body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.stream = None;
                self.try_call(method, path, token, body)
            }
        }
    }

    fn try_call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let reader = self.stream.as_mut().expect("connected");
        self.buf.clear();
        let _ = write!(
            self.buf,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
            self.addr
        );
        if let Some(t) = token {
            let _ = write!(self.buf, "Authorization: Bearer {t}\r\n");
        }
        if let Some(b) = body {
            let _ = write!(
                self.buf,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                b.len()
            );
            self.buf.extend_from_slice(b);
        } else {
            self.buf.extend_from_slice(b"\r\n");
        }
        reader.get_mut().write_all(&self.buf)?;
        let (status, body, close) = read_response(reader)?;
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads one response: status, body, and whether the server closes the connection.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.eq_ignore_ascii_case("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
        }
    }
    let mut body = Vec::new();
    if status == 204 || status == 304 {
        // No body, whatever the headers say.
    } else if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
            if n == 0 {
                line.clear();
                r.read_line(&mut line)?;
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        close = true;
    }
    Ok((status, body, close))
}

/// Runs `f(client index, stop flag)` on `CLIENTS` threads for `window`;
/// returns the sum of what they counted and the measured seconds.
fn clients<F>(window: Duration, f: F) -> (u64, u64, f64)
where
    F: Fn(usize, &AtomicBool) -> (u64, u64) + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (f, stop, barrier) = (f.clone(), stop.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                f(i, &stop)
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    progress(&format!(
        "  {CLIENTS} clients for {} s",
        window.as_secs_f64()
    ));
    thread::sleep(window);
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut errors) = (0, 0);
    for h in handles {
        let (o, e) = h.join().unwrap_or((0, 1));
        ok += o;
        errors += e;
    }
    (ok, errors, t0.elapsed().as_secs_f64())
}

fn sqlite(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("opening the database");
    conn.busy_timeout(Duration::from_secs(30)).ok();
    conn.execute_batch(
        "pragma journal_mode = wal; pragma synchronous = full; pragma foreign_keys = on;",
    )
    .expect("pragmas");
    conn
}

fn insert_account(conn: &Connection, name: &str) -> i64 {
    conn.execute(
        "insert into accounts (name, email, role, created_at) values (?1, ?2, 'customer', 0)",
        params![name, format!("{name}@example.net")],
    )
    .expect("an account row");
    conn.last_insert_rowid()
}

const INSERT_REQUEST: &str = "insert into requests
    (account_id, domain, operation, params, state, waiting_on, exec_date, wait_until, created_at, updated_at)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)";

/// One queued create of `domain` by `account`, as the floors write it.
fn insert_queued_row(stmt: &mut rusqlite::Statement<'_>, account: i64, domain: &str, at: i64) {
    stmt.execute(params![
        account,
        domain,
        "create",
        OWNER,
        "queued",
        None::<String>,
        None::<i64>,
        None::<i64>,
        at
    ])
    .expect("a queued request");
}

/// `n` unread notifications of account `id` (in the caller's transaction).
fn unread_notifications(conn: &Connection, id: i64, n: usize) {
    let mut stmt = conn
        .prepare_cached(
            "insert into notifications (account_id, type, action, status, message, domain, created_at)
             values (?1, 'domain', 'create', 'success', 'the domain is registered', ?2, ?3)",
        )
        .expect("insert");
    for i in 0..n {
        stmt.execute(params![id, format!("n{i}-{id}.com"), now_ms()])
            .expect("a notification");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ----- B1 durable ingest --------------------------------------------------------

fn b1(ctx: &Ctx) -> Row {
    progress(&format!(
        "B1 durable ingest: POST /api/v1/requests (submit) from 16 keep-alive connections, \
         in {} rounds with the floor (one raw insert per commit, WAL, FULL)",
        ctx.plan.rounds
    ));
    let floor_db = ctx.migrated("b1-floor");
    let floor_conn = sqlite(&floor_db);
    let floor_account = insert_account(&floor_conn, "floor");
    let mut insert = floor_conn.prepare(INSERT_REQUEST).expect("insert");
    let mut floor_rows = 0u64;

    let db = ctx.fresh_path("b1");
    let server = Server::start(ctx, &db, &[]);
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|i| server.account(&format!("ingest{i}")).1)
        .collect();
    let tokens = Arc::new(tokens);
    let addr = server.addr;
    let window = ctx.plan.window / ctx.plan.rounds;
    let (mut floor, mut ours) = (Tally::default(), Tally::default());
    let (mut grouping, mut cpu, mut errors, mut finished) = (Commits::default(), 0.0, 0, 0.0);
    // Time from the end of each of our rounds to the last of its requests
    // finished.
    let mut backlog = 0.0;
    let finished_now = || server.metrics(["regdesk_requests{state=\"finished\"}"])[0];
    for round in 0..ctx.plan.rounds {
        for side in order(round, &[Side::Floor, Side::Ours]) {
            // Fulfilment of the last round's requests must not take from
            // the floor's round, nor start ours with a backlog.
            server.wait_idle();
            if side == Side::Floor {
                let t0 = Instant::now();
                let mut n = 0u64;
                while t0.elapsed() < window {
                    insert_queued_row(
                        &mut insert,
                        floor_account,
                        &format!("floor-{floor_rows}.com"),
                        now_ms(),
                    );
                    n += 1;
                    floor_rows += 1;
                }
                floor.add(n, t0.elapsed().as_secs_f64());
                continue;
            }
            let tokens = tokens.clone();
            let (counters, cpu0, finished0) =
                (server.commit_counters(), server.cpu_secs(), finished_now());
            let (ok, errs, secs) = clients(window, move |i, stop| {
                let mut conn = Conn::new(addr);
                let (mut ok, mut errors) = (0, 0);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(
                        r#"{{"domain":"b1-{round}-{i}-{n}.com","operation":"create","params":{OWNER},"submit":true}}"#
                    );
                    n += 1;
                    match conn.call(
                        "POST",
                        "/api/v1/requests",
                        Some(&tokens[i]),
                        Some(body.as_bytes()),
                    ) {
                        Ok((201, _)) => ok += 1,
                        _ => errors += 1,
                    }
                }
                (ok, errors)
            });
            cpu += server.cpu_secs() - cpu0;
            grouping.add(counters, server.commit_counters());
            finished += finished_now() - finished0;
            let t0 = Instant::now();
            server.wait_idle();
            backlog += t0.elapsed().as_secs_f64();
            errors += errs;
            ours.add(ok, secs);
        }
    }
    drop(insert);
    drop(floor_conn);
    server.stop(ctx);
    // Fulfilment yields to clients' writes but must not stop.
    let note = format!(
        "{}; {}; {}; {} of the {} fulfilled within the rounds, all {:.2} s after them \
         on average ({} req/s sent and finished)",
        ours.round_ratios(&floor),
        grouping.describe(),
        cpu_per(cpu, ours.n, "request"),
        num(finished),
        num(ours.n as f64),
        backlog / ctx.plan.rounds as f64,
        num(ours.n as f64 / (ours.secs + backlog))
    );
    rounds_row(
        ("B1", "durable ingest, POST /requests, 16 conns", "req/s"),
        Goal::RatioAtLeast(2.0),
        (&ours, &floor),
        (errors, "answers were not 201"),
        note,
    )
}

/// The row of a benchmark that took turns with its floor, after a progress
/// line; `errors` of `failed` (what went wrong) lead the note.
fn rounds_row(
    (id, what, unit): (&'static str, &str, &'static str),
    goal: Goal,
    (ours, floor): (&Tally, &Tally),
    (errors, failed): (u64, &str),
    note: String,
) -> Row {
    progress(&format!(
        "{id}: {} {unit} against {} ({errors} errors; {note})",
        num(ours.rate()),
        num(floor.rate())
    ));
    Row {
        id,
        what: what.into(),
        value: ours.rate(),
        unit,
        floor: Some(floor.rate()),
        goal,
        note: if errors > 0 {
            format!("{errors} {failed}; {note}")
        } else {
            note
        },
    }
}

// ----- B2 notification cycle ----------------------------------------------------

fn cycle_clients(window: Duration, addr: SocketAddr, tokens: Arc<Vec<String>>) -> (u64, u64, f64) {
    clients(window, move |i, stop| {
        let mut conn = Conn::new(addr);
        let (mut ok, mut errors) = (0, 0);
        let token = tokens[i].as_str();
        while !stop.load(Ordering::Relaxed) {
            let id = match conn.call("GET", "/api/v1/notification", Some(token), None) {
                Ok((200, body)) => serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_i64()),
                _ => None,
            };
            let Some(id) = id else {
                errors += 1;
                continue;
            };
            match conn.call(
                "DELETE",
                &format!("/api/v1/notification/{id}"),
                Some(token),
                None,
            ) {
                Ok((204, _)) => ok += 1,
                _ => errors += 1,
            }
        }
        (ok, errors)
    })
}

/// The floor's answer: a constant notification to a `GET`, 204 otherwise.
fn floor_answer(req: tiny_http::Request) {
    let resp = if req.method() == &tiny_http::Method::Get {
        tiny_http::Response::from_data(
            &br#"{"id":1,"type":"domain","action":"create","status":"success","message":"done","domain":"example.com"}"#[..],
        )
        .with_status_code(200)
    } else {
        tiny_http::Response::from_data(&b""[..]).with_status_code(204)
    };
    req.respond(resp).ok();
}

fn b2(ctx: &Ctx) -> Row {
    progress(&format!(
        "B2 notification cycle: GET /notification + DELETE /notification/{{id}}, 16 accounts, \
         in {} rounds with the floor (bare tiny_http, constant bodies)",
        ctx.plan.rounds
    ));
    let floor_tokens = Arc::new(vec![OPERATOR.to_string(); CLIENTS]);
    // tiny_http as published: connection threads queue requests, 4 workers
    // answer them.
    let floor_server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("floor server"));
    let floor_addr = floor_server.server_addr().to_ip().expect("an IP address");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = floor_server.clone();
            thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    floor_answer(req);
                }
            })
        })
        .collect();
    // For reference, not the ratio: the same answers in the handler mode of
    // the vendored tiny_http (each request answered on its connection's
    // thread), which regdesk uses.
    let handler_server = tiny_http::Server::http_with_handler(
        "127.0.0.1:0",
        Arc::new(|req| {
            floor_answer(req);
            true
        }),
    )
    .expect("floor server");
    let handler_addr = handler_server.server_addr().to_ip().expect("an IP address");

    let db = ctx.fresh_path("b2");
    let server = Server::start(ctx, &db, &[]);
    let accounts: Vec<(i64, String)> = (0..CLIENTS)
        .map(|i| server.account(&format!("poller{i}")))
        .collect();
    // Enough unread notifications that no account runs dry in the rounds.
    let per_account = if ctx.plan.quick { 5_000 } else { 20_000 };
    {
        let conn = sqlite(&db);
        conn.execute_batch("begin").expect("begin");
        for (id, _) in &accounts {
            unread_notifications(&conn, *id, per_account);
        }
        conn.execute_batch("commit").expect("commit");
    }
    let tokens = Arc::new(accounts.into_iter().map(|(_, t)| t).collect::<Vec<_>>());

    let window = ctx.plan.window / ctx.plan.rounds;
    let (mut floor, mut handler, mut ours) = (Tally::default(), Tally::default(), Tally::default());
    let (mut grouping, mut cpu, mut errors) = (Commits::default(), 0.0, 0);
    for round in 0..ctx.plan.rounds {
        for side in order(round, &[Side::Floor, Side::OtherFloor, Side::Ours]) {
            match side {
                Side::Floor => {
                    let (ok, _, secs) = cycle_clients(window, floor_addr, floor_tokens.clone());
                    floor.add(ok, secs);
                }
                Side::OtherFloor => {
                    let (ok, _, secs) = cycle_clients(window, handler_addr, floor_tokens.clone());
                    handler.add(ok, secs);
                }
                Side::Ours => {
                    let (counters, cpu0) = (server.commit_counters(), server.cpu_secs());
                    let (ok, errs, secs) = cycle_clients(window, server.addr, tokens.clone());
                    cpu += server.cpu_secs() - cpu0;
                    grouping.add(counters, server.commit_counters());
                    errors += errs;
                    ours.add(ok, secs);
                }
            }
        }
    }
    server.stop(ctx);
    for _ in &workers {
        floor_server.unblock();
    }
    for w in workers {
        w.join().ok();
    }
    drop(handler_server);
    let note = format!(
        "{}; {}; {}; floor in tiny_http's handler mode {} cycles/s ({:.2}x)",
        ours.round_ratios(&floor),
        grouping.describe(),
        cpu_per(cpu, ours.n, "cycle"),
        num(handler.rate()),
        ours.rate() / handler.rate()
    );
    rounds_row(
        (
            "B2",
            "notification cycle, GET+DELETE, 16 accounts",
            "cycles/s",
        ),
        Goal::RatioAtLeast(0.5),
        (&ours, &floor),
        (errors, "cycles failed"),
        note,
    )
}

// ----- B3 ticker throughput -----------------------------------------------------

fn insert_queued(conn: &Connection, account: i64, prefix: &str, n: i64) {
    let now = now_ms() - 1000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        conn.execute_batch("begin").expect("begin");
        {
            let mut stmt = conn.prepare_cached(INSERT_REQUEST).expect("insert");
            for i in chunk {
                insert_queued_row(&mut stmt, account, &format!("{prefix}-{i}.com"), now);
            }
        }
        conn.execute_batch("commit").expect("commit");
    }
}

fn b3(ctx: &Ctx) -> Row {
    let n = ctx.plan.b3_requests;
    progress(&format!(
        "B3 ticker throughput: floor ({n} rows, 1,000 per transaction)"
    ));
    // The floor runs before and after ours (each on a new file), and
    // counts as their mean: one long run of ours cannot take turns with it.
    let floor_run = || {
        let path = ctx.migrated("b3-floor");
        let conn = sqlite(&path);
        let account = insert_account(&conn, "floor");
        let t0 = Instant::now();
        insert_queued(&conn, account, "floor", n);
        n as f64 / t0.elapsed().as_secs_f64()
    };
    let floor_before = floor_run();
    progress(&format!("B3 floor: {} rows/s", num(floor_before)));

    progress(&format!(
        "B3 ticker throughput: {n} queued create requests to finished"
    ));
    let db = ctx.migrated("b3");
    {
        let conn = sqlite(&db);
        let account = insert_account(&conn, "bulk");
        insert_queued(&conn, account, "b3", n);
    }
    let reader = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("a reader");
    reader.busy_timeout(Duration::from_secs(30)).ok();
    let finished = || -> i64 {
        reader
            .query_row(
                "select count(*) from requests where state in ('finished', 'failed')",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    let (server, t0) = Server::spawn(ctx, &db, &[]);
    let deadline = Duration::from_secs(if ctx.plan.quick { 120 } else { 600 });
    let mut last_report = Instant::now();
    let mut done = 0;
    while t0.elapsed() < deadline {
        done = finished();
        if done >= n {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            progress(&format!(
                "B3: {done}/{n} done after {:.0} s",
                t0.elapsed().as_secs_f64()
            ));
            last_report = Instant::now();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_per(server.cpu_secs(), done.max(0) as u64, "request");
    let failed: i64 = reader
        .query_row(
            "select count(*) from requests where state = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    drop(reader);
    server.stop(ctx);
    let rate = done as f64 / secs;
    progress(&format!("B3: {} rows/s ({cpu})", num(rate)));
    progress("B3 floor, again");
    let floor_after = floor_run();
    let floor = (floor_before + floor_after) / 2.0;
    let mut note = vec![format!(
        "floor {} rows/s before and {} after",
        num(floor_before),
        num(floor_after)
    )];
    if done < n {
        note.push(format!("only {done} of {n} finished before the deadline"));
    }
    if failed > 0 {
        note.push(format!("{failed} failed"));
    }
    note.push(cpu);
    Row {
        id: "B3",
        what: format!("ticker, {} queued creates to finished", num(n as f64)),
        value: rate,
        unit: "rows/s",
        floor: Some(floor),
        goal: Goal::RatioAtLeast(0.25),
        note: note.join("; "),
    }
}

// ----- the big database for B4 and B5 -------------------------------------------

struct BigDb {
    path: PathBuf,
    rows: i64,
    accounts: Vec<i64>,
}

/// States of the generated requests, by share of 100. Nothing in it is due:
/// queued requests wait for a future exec date and processing ones for the
/// registry until far in the future, so the ticker only looks.
const MIX: [(&str, Option<&str>, u32); 8] = [
    ("finished", None, 70),
    ("failed", None, 10),
    ("queued", None, 5),
    ("processing", Some("registry"), 4),
    ("limbo", None, 2),
    ("incomplete", None, 4),
    ("new", None, 3),
    ("review", None, 2),
];

fn big_db(ctx: &Ctx) -> BigDb {
    let rows = ctx.plan.big_db_rows;
    progress(&format!(
        "generating a database of {} requests",
        num(rows as f64)
    ));
    let t0 = Instant::now();
    let path = ctx.migrated("big");
    let conn = sqlite(&path);
    conn.execute_batch("pragma synchronous = off; pragma cache_size = -200000;")
        .expect("pragmas");
    let accounts: Vec<i64> = (0..100)
        .map(|i| insert_account(&conn, &format!("customer{i}")))
        .collect();
    let future = now_ms() + 365 * 86_400_000;
    let mut states = Vec::new();
    for (state, waiting, share) in MIX {
        states.extend(std::iter::repeat_n((state, waiting), share as usize));
    }
    let mut i = 0i64;
    while i < rows {
        conn.execute_batch("begin").expect("begin");
        {
            let mut stmt = conn.prepare_cached(INSERT_REQUEST).expect("insert");
            let end = (i + 50_000).min(rows);
            while i < end {
                // A cheap scramble so states, accounts and names do not line up.
                let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                let (state, waiting) = states[(h % 100) as usize];
                let account = accounts[((h >> 8) % accounts.len() as u64) as usize];
                let exec_date = (state == "queued").then_some(future);
                let wait_until = (state == "processing").then_some(future);
                let created = now_ms() - 86_400_000 * 400 + i * 30;
                stmt.execute(params![
                    account,
                    format!("n{:03}x{i}.com", (h >> 16) % 1000),
                    "create",
                    OWNER,
                    state,
                    waiting,
                    exec_date,
                    wait_until,
                    created
                ])
                .expect("a request");
                i += 1;
            }
        }
        conn.execute_batch("commit").expect("commit");
    }
    conn.execute_batch("pragma wal_checkpoint(truncate)").ok();
    drop(conn);
    progress(&format!(
        "generated in {:.1} s ({} MB)",
        t0.elapsed().as_secs_f64(),
        std::fs::metadata(&path)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0)
    ));
    BigDb {
        path,
        rows,
        accounts,
    }
}

// ----- B4 start to ready --------------------------------------------------------

fn ready_time(ctx: &Ctx, db: &Path) -> f64 {
    let (server, t0) = Server::spawn(ctx, db, &[]);
    let mut conn = server.conn();
    let mut ok = false;
    for _ in 0..10_000 {
        if let Ok((200, _)) = conn.call("GET", "/readyz", None, None) {
            ok = true;
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    drop(conn);
    server.stop(ctx);
    if ok {
        ms
    } else {
        f64::INFINITY
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn b4(ctx: &Ctx, big: &BigDb) -> Vec<Row> {
    let runs = ctx.plan.b4_runs;
    progress(&format!(
        "B4 start to ready: {runs} starts on a new database"
    ));
    let empty: Vec<f64> = (0..runs)
        .map(|_| ready_time(ctx, &ctx.fresh_path("b4")))
        .collect();
    progress(&format!(
        "B4 new database: median {:.1} ms",
        median(empty.clone())
    ));
    progress(&format!(
        "B4 start to ready: {runs} starts on {} requests",
        num(big.rows as f64)
    ));
    let full: Vec<f64> = (0..runs).map(|_| ready_time(ctx, &big.path)).collect();
    progress(&format!(
        "B4 big database: median {:.1} ms",
        median(full.clone())
    ));
    let spread = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        format!(
            "min {:.1} ms, max {:.1} ms over {} starts",
            s.first().copied().unwrap_or(f64::NAN),
            s.last().copied().unwrap_or(f64::NAN),
            s.len()
        )
    };
    vec![
        Row {
            id: "B4",
            what: "exec to first 200 /readyz, new database (median)".into(),
            value: median(empty.clone()),
            unit: "ms",
            floor: None,
            goal: Goal::AtMost(20.0),
            note: spread(&empty),
        },
        Row {
            id: "B4",
            what: format!(
                "exec to first 200 /readyz, {} requests (median)",
                num(big.rows as f64)
            ),
            value: median(full.clone()),
            unit: "ms",
            floor: None,
            goal: Goal::AtMost(100.0),
            note: spread(&full),
        },
    ]
}

// ----- B5 list latency ----------------------------------------------------------

fn b5(ctx: &Ctx, big: &BigDb) -> Vec<Row> {
    progress(&format!(
        "B5 list latency on {} requests",
        num(big.rows as f64)
    ));
    let server = Server::start(ctx, &big.path, &[]);
    let account = big.accounts[7];
    let filters: Vec<(String, String)> = vec![
        ("by state".into(), "state=failed".into()),
        (
            "by internal status".into(),
            "internal_status=needs_attention".into(),
        ),
        ("by domain prefix".into(), "domain_prefix=n042x".into()),
        ("by account".into(), format!("account_id={account}")),
    ];
    let mut conn = server.conn();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for (name, query) in &filters {
        let mut samples = Vec::new();
        let mut items = 0usize;
        for round in 0..ctx.plan.b5_rounds {
            let mut next: Option<String> = None;
            for _ in 0..ctx.plan.b5_pages {
                let path = match &next {
                    Some(after) => format!("/api/v1/requests?{query}&after={after}"),
                    None => format!("/api/v1/requests?{query}"),
                };
                let t0 = Instant::now();
                let (status, body) = conn
                    .call("GET", &path, Some(OPERATOR), None)
                    .expect("listing");
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                // The first round warms the caches.
                if round > 0 {
                    samples.push(ms);
                }
                let v: Value = serde_json::from_slice(&body).expect("list JSON");
                items += v["items"].as_array().map_or(0, Vec::len);
                next = v["next"].as_str().map(str::to_string);
                if next.is_none() {
                    break;
                }
            }
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        all.extend(samples.iter().copied());
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        progress(&format!(
            "B5 {name}: p50 {p50:.2} ms, p99 {p99:.2} ms ({} pages, {items} items)",
            samples.len()
        ));
        rows.push(Row {
            id: "B5",
            what: format!("list {name}, p99"),
            value: p99,
            unit: "ms",
            floor: None,
            goal: Goal::AtMost(5.0),
            note: format!("p50 {p50:.2} ms, {} pages of 50 ({query})", samples.len()),
        });
    }
    drop(conn);
    server.stop(ctx);
    all.sort_by(|a, b| a.total_cmp(b));
    rows.insert(
        0,
        Row {
            id: "B5",
            what: "list, all filters, p50".into(),
            value: percentile(&all, 0.5),
            unit: "ms",
            floor: None,
            goal: Goal::AtMost(5.0),
            note: String::new(),
        },
    );
    rows
}

// ----- B6 memory and size -------------------------------------------------------

fn b6(ctx: &Ctx) -> Vec<Row> {
    let rss_mb = ctx.peak_rss_kb.load(Ordering::Relaxed) as f64 / 1024.0;
    let size_mb = std::fs::metadata(&ctx.bin)
        .map(|m| m.len() as f64 / 1_000_000.0)
        .unwrap_or(f64::NAN);
    vec![
        Row {
            id: "B6",
            what: "peak RSS of the server (VmHWM) over B1-B5".into(),
            value: rss_mb,
            unit: "MB",
            floor: None,
            goal: Goal::AtMost(50.0),
            note: String::new(),
        },
        Row {
            id: "B6",
            what: "release binary size (stripped)".into(),
            value: size_mb,
            unit: "MB",
            floor: None,
            goal: Goal::AtMost(15.0),
            note: String::new(),
        },
    ]
}

// ----- B7 the lifecycle's sweep ---------------------------------------------------

/// The clock the lifecycle benchmark starts at: 2030-01-01T00:00:00Z.
const B7_START: i64 = 1_893_456_000_000;
const DAY_MS: i64 = 86_400_000;

/// The next step of a domain expiring at `expires` as the server's
/// schedule has it at `B7_START` (default periods: reminders 30 and 7 days
/// before, auto-renew 14), for expiries within the coming year.
fn b7_next_step(expires: i64) -> (&'static str, i64) {
    [
        ("reminder-30", expires - 30 * DAY_MS),
        ("auto-renew", expires - 14 * DAY_MS),
        ("reminder-7", expires - 7 * DAY_MS),
        ("expired", expires),
    ]
    .into_iter()
    .find(|(_, at)| *at > B7_START)
    .unwrap_or(("expired", expires))
}

/// `n` domains of one customer, expiring evenly over the year from
/// `B7_START`, each with its next step, written with SQL.
fn b7_load(ctx: &Ctx, n: i64) -> PathBuf {
    let path = ctx.migrated("lifecycle");
    let conn = sqlite(&path);
    conn.execute_batch("pragma synchronous = off; pragma cache_size = -200000;")
        .expect("pragmas");
    let account = insert_account(&conn, "lifecycle");
    let mut i = 0i64;
    while i < n {
        conn.execute_batch("begin").expect("begin");
        {
            let mut stmt = conn
                .prepare_cached(
                    "insert into domains (account_id, name, status, expires_at, auth_code,
                         created_at, updated_at, auto_renew, lifecycle, step, step_at)
                     values (?1, ?2, 'active', ?3, 'c0de', ?4, ?4, 0, 'active', ?5, ?6)",
                )
                .expect("insert");
            let end = (i + 50_000).min(n);
            while i < end {
                let expires = B7_START + 60_000 + i * 365 * DAY_MS / n;
                let (step, at) = b7_next_step(expires);
                stmt.execute(params![
                    account,
                    format!("d{i}.com"),
                    expires,
                    expires - 365 * DAY_MS,
                    step,
                    at
                ])
                .expect("a domain");
                i += 1;
            }
        }
        conn.execute_batch("commit").expect("commit");
    }
    conn.execute_batch("pragma wal_checkpoint(truncate)").ok();
    path
}

fn b7(ctx: &Ctx) -> Vec<Row> {
    let n = ctx.plan.b7_domains;
    progress(&format!(
        "B7 lifecycle sweep: loading {} domains",
        num(n as f64)
    ));
    let path = b7_load(ctx, n);
    let day_end = B7_START + DAY_MS;
    // The floor: the same rows found by the same index, by a raw query.
    let conn = sqlite(&path);
    let (expiring, due): (i64, i64) = conn
        .query_row(
            "select (select count(*) from domains where expires_at >= ?1 and expires_at < ?2),
                    (select count(*) from domains where step_at <= ?2)",
            params![B7_START, day_end],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts");
    let t = Instant::now();
    let ids: Vec<i64> = conn
        .prepare("select id from domains where step_at <= ?1 order by step_at, id")
        .and_then(|mut s| s.query_map([day_end], |r| r.get(0))?.collect())
        .expect("the raw query");
    let raw = t.elapsed().as_secs_f64();
    assert_eq!(ids.len() as i64, due);
    drop(conn);
    let server = Server::start(ctx, &path, &["--test-clock"]);
    let mut http = server.conn();
    let clock = |http: &mut Conn, body: &str| {
        let (status, answer) = http
            .call(
                "POST",
                "/api/v1/clock",
                Some(OPERATOR),
                Some(body.as_bytes()),
            )
            .expect("POST /api/v1/clock");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        serde_json::from_slice::<Value>(&answer).unwrap_or_default()
    };
    clock(
        &mut http,
        r#"{"set": "2030-01-01T00:00:00Z", "freeze": true}"#,
    );
    progress(&format!(
        "B7 one day's sweep: {} steps due, {} expiring",
        num(due as f64),
        num(expiring as f64)
    ));
    let t = Instant::now();
    let answer = clock(&mut http, r#"{"advance": "1d"}"#);
    let swept = t.elapsed().as_secs_f64();
    let steps = answer["ticked"].as_i64().unwrap_or_default();
    server.stop(ctx);
    vec![Row {
        id: "B7",
        what: format!("one day's lifecycle sweep at {} domains", num(n as f64)),
        value: swept,
        unit: "s",
        floor: Some(raw),
        goal: Goal::AtMost(1.0),
        note: format!(
            "{} steps ({} expiring that day), notifications and mail included; floor: the raw indexed query for the same due rows",
            num(steps as f64),
            num(expiring as f64)
        ),
    }]
}
