//! Test support: start the real `regdesk` binary on 127.0.0.1:0 with a
//! temporary database, and talk to it: the one way to spawn it and read its
//! first line (`launch`), to make an HTTP call (`call`, `send`), to sign an
//! XCP body (`xcp_signature`) and to read an XML answer (`xml_tree`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_regdesk");

/// A running server. Killed when dropped.
pub struct Server {
    pub base: String,
    pub operator: String,
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub extra_args: Vec<String>,
    _stdout: BufReader<ChildStdout>,
}

/// An HTTP answer: status, headers we care about, and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    /// The `Allow` header (a 405 lists the methods the path serves).
    pub allow: Option<String>,
    pub text: String,
    /// Every header of the answer, as sent.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const OPERATOR_TOKEN: &str = "rd_test_operator_token";

impl Server {
    /// A server on a fresh on-disk database with the test clock.
    pub fn start() -> Server {
        Server::start_with(&["--test-clock"])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Server::spawn(dir, args)
    }

    /// A server whose database lives in `dir` (say, a small file system
    /// mounted there).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Server {
        Server::spawn(dir, args.iter().map(|s| s.to_string()).collect())
    }

    /// A server on the database file `db`, which outlives it.
    pub fn start_with_db(db: &std::path::Path, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = args.iter().map(|s| s.to_string()).collect();
        Server::spawn_on(dir, db, args)
    }

    fn spawn(dir: tempfile::TempDir, extra_args: Vec<String>) -> Server {
        let db = dir.path().join("regdesk.db");
        Server::spawn_on(dir, &db, extra_args)
    }

    fn spawn_on(dir: tempfile::TempDir, db: &std::path::Path, extra_args: Vec<String>) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(db)
            .arg("--operator-token")
            .arg(OPERATOR_TOKEN)
            .arg("--tick-interval-ms")
            .arg("50")
            .args(&extra_args)
            .env("RUST_LOG", "warn");
        let (child, stdout, base) = launch(cmd);
        Server {
            base,
            operator: OPERATOR_TOKEN.to_string(),
            child,
            dir,
            extra_args,
            _stdout: stdout,
        }
        .frozen()
    }

    /// Freezes the test clock so that nothing happens but what a test asks
    /// for (the ticker idles while the clock is frozen).
    fn frozen(self) -> Server {
        if self.extra_args.iter().any(|a| a == "--test-clock") {
            let a = self.post("/api/v1/clock", &self.operator, json!({"freeze": true}));
            assert_eq!(a.status, 200, "{}", a.text);
        }
        self
    }

    /// Kills the process (as `kill -9` would) and starts it again on the
    /// same database file.
    pub fn restart(mut self) -> Server {
        self.child.kill().ok();
        self.child.wait().ok();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        Server::spawn(dir, self.extra_args.clone())
    }

    /// The next line the server printed on stdout after the first.
    pub fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        self._stdout.read_line(&mut line).expect("a line on stdout");
        line.trim_end().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Any request; never panics on an HTTP error status.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        self.call_with(method, path, token, body, &[])
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        call_at(&self.base, method, path, token, body, headers)
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None)
    }

    /// A POST of raw bytes (which need not be UTF-8) with extra headers.
    pub fn post_bytes(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        let result = request(
            &agent(PATIENT),
            "POST",
            &self.url(path),
            headers,
            Some(body),
        );
        answer(result.map_err(|e| *e), "POST", path)
    }

    /// `body` signed by `who` and posted to the XCP face at `/`.
    pub fn xcp(&self, who: &Reseller, body: &[u8]) -> Answer {
        let sig = xcp_signature(body, &who.key);
        self.post_bytes(
            "/",
            body,
            &[
                ("X-Username", &who.name),
                ("X-Signature", &sig),
                ("Content-Type", "text/xml"),
            ],
        )
    }

    /// A new customer account that also speaks XCP.
    pub fn reseller(&self, name: &str) -> Reseller {
        let a = self.post(
            "/api/v1/accounts",
            &self.operator,
            json!({"name": name, "email": format!("{name}@example.net")}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        let v = a.json();
        Reseller {
            id: v["id"].as_i64().expect("id"),
            name: name.to_string(),
            token: v["token"].as_str().expect("token").to_string(),
            key: v["api_key"].as_str().expect("api_key").to_string(),
        }
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call("POST", path, Some(token), Some(&body.to_string()))
    }

    /// A new customer account; returns (id, token).
    pub fn customer(&self, name: &str) -> (i64, String) {
        let a = self.post(
            "/api/v1/accounts",
            &self.operator,
            json!({"name": name, "email": format!("{name}@example.net")}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        let v = a.json();
        (
            v["id"].as_i64().expect("id"),
            v["token"].as_str().expect("token").to_string(),
        )
    }

    /// Creates (and by default submits) a request; returns its JSON.
    pub fn order(&self, token: &str, domain: &str, operation: &str, params: Value) -> Value {
        let a = self.post(
            "/api/v1/requests",
            token,
            json!({"domain": domain, "operation": operation, "params": params, "submit": true}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        a.json()
    }

    /// Runs the ticker until nothing is due.
    pub fn tick(&self) -> Value {
        let a = self.call("POST", "/api/v1/tick", Some(&self.operator), None);
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    pub fn advance(&self, by: &str) -> Value {
        let a = self.post("/api/v1/clock", &self.operator, json!({ "advance": by }));
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    /// `GET /api/v1/requests/{id}` as `token`.
    pub fn request(&self, token: &str, id: i64) -> Value {
        let a = self.get(&format!("/api/v1/requests/{id}"), token);
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    pub fn action(&self, token: &str, id: i64, action: &str, body: Value) -> Answer {
        self.post(&format!("/api/v1/requests/{id}/{action}"), token, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The server's `HOST:PORT`.
pub fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Sends raw bytes on a new connection and reads the answer until the
/// server closes it (or 10 s pass). Returns the status (0 when the server
/// closed without answering) and the whole answer as text.
pub fn raw(s: &Server, bytes: &[u8]) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(addr(s)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading everything (413).
    std::io::Write::write_all(&mut conn, bytes).ok();
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

/// `regdesk serve ARGS` on a new database file, with `env` set, when it
/// must refuse to start: as `refused`, and the database file was never
/// made.
pub fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("x.db");
    let stderr = refused(&db, args, env);
    assert!(!db.exists(), "{args:?} {env:?} touched the database");
    stderr
}

/// `regdesk serve --db DB ARGS`, with `env` set, when it must refuse to
/// start: checks that it ended with an error within 10 s (else it is
/// killed and the test fails), and returns what it printed on stderr.
pub fn refused(db: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start regdesk");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for regdesk") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut out) = child.stderr.take() {
        out.read_to_string(&mut stderr).ok();
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "{args:?} {env:?} started: {stderr}"
    );
    stderr
}

/// Runs the binary with `args` until it ends by itself: its exit code, and
/// what it printed on stdout and stderr (trailing whitespace trimmed).
pub fn regdesk<I, S>(args: I) -> (Option<i32>, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(BIN).args(args).output().expect("run regdesk");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `regdesk backup --db DB FILE`, as `regdesk` runs it.
pub fn backup(db: &std::path::Path, file: &std::path::Path) -> (Option<i32>, String, String) {
    regdesk([
        std::ffi::OsStr::new("backup"),
        "--db".as_ref(),
        db.as_ref(),
        file.as_ref(),
    ])
}

/// The answer to `method path`, whatever its status (the body read as
/// UTF-8, invalid bytes replaced); only a failure to talk at all panics.
pub fn answer(result: Result<ureq::Response, ureq::Error>, method: &str, path: &str) -> Answer {
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => read_answer(r).0,
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// Timeouts for a server that is expected to answer: any time to connect,
/// 30 s for the whole exchange.
pub const PATIENT: (Option<Duration>, Duration) = (None, Duration::from_secs(30));

/// Timeouts for a server that may be killed at any moment: 2 s to
/// connect, 20 s for the whole exchange.
pub const WARY: (Option<Duration>, Duration) =
    (Some(Duration::from_secs(2)), Duration::from_secs(20));

/// An HTTP client with `(connect, whole exchange)` timeouts.
pub fn agent((connect, whole): (Option<Duration>, Duration)) -> ureq::Agent {
    let builder = ureq::AgentBuilder::new().timeout(whole);
    match connect {
        Some(c) => builder.timeout_connect(c),
        None => builder,
    }
    .build()
}

/// Any HTTP request to `base`; never panics on an error status.
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    call_at(base, method, path, token, body, &[])
}

/// Any request to `base` + `path`, with a bearer `token`, `headers` and a
/// JSON `body`; never panics on an HTTP error status, only when no answer
/// came at all.
pub fn call_at(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut all: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    // JSON unless the caller says otherwise (the XML faces need XML): a
    // later header replaces an earlier one of the same name.
    if body.is_some() {
        all.push(("Content-Type", "application/json"));
    }
    all.extend_from_slice(headers);
    let url = format!("{base}{path}");
    let result = request(&agent(PATIENT), method, &url, &all, body.map(str::as_bytes));
    answer(result.map_err(|e| *e), method, path)
}

/// One HTTP exchange: `headers` set in order (a later one replaces an
/// earlier one of the same name). Any status is an `Answer`; `Err` when no
/// whole answer came (the connection failed, timed out or was cut short).
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Answer, Box<ureq::Error>> {
    let resp = match request(agent, method, url, headers, body).map_err(|e| *e) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(Box::new(e)),
    };
    let (answer, whole) = read_answer(resp);
    whole.map_err(|e| Box::new(e.into()))?;
    Ok(answer)
}

/// Sends one request; an HTTP error status is `Err(Status)` as ureq has it
/// (boxed: ureq's error is large).
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<ureq::Response, Box<ureq::Error>> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    }
    .map_err(Box::new)
}

/// An answer with as much of its body (at most 64 MiB, invalid UTF-8
/// replaced) as arrived, and whether all of it did.
fn read_answer(resp: ureq::Response) -> (Answer, std::io::Result<()>) {
    let status = resp.status();
    let content_type = resp.header("Content-Type").unwrap_or_default().to_string();
    let allow = resp.header("Allow").map(str::to_string);
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|k| {
            let values: Vec<String> = resp.all(&k).into_iter().map(str::to_string).collect();
            values.into_iter().map(move |v| (k.clone(), v))
        })
        .collect();
    let mut bytes = Vec::new();
    let whole = resp
        .into_reader()
        .take(64 * 1024 * 1024)
        .read_to_end(&mut bytes)
        .map(drop);
    let answer = Answer {
        status,
        content_type,
        allow,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    };
    (answer, whole)
}

/// Spawns `cmd` (regdesk serve, or a wrapper that executes it) with stdout
/// piped, and reads its first stdout line, `listening on URL`: the child,
/// its stdout (read the later lines from it, or keep it open so that they
/// never meet a closed pipe) and the URL.
pub fn launch(mut cmd: Command) -> (Child, BufReader<ChildStdout>, String) {
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start regdesk");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, stdout, base)
}

/// An account as the XCP face and the task face know it: id (the task
/// face's USER_ID), name (`X-Username`), native token and XCP API key.
#[derive(Debug, Clone)]
pub struct Reseller {
    pub id: i64,
    pub name: String,
    pub token: String,
    pub key: String,
}

/// OpenSRS's `md5(md5(body + key) + key)`, computed here independently of
/// the server's code.
pub fn xcp_signature(body: &[u8], key: &str) -> String {
    use md5::{Digest, Md5};
    let inner = hex::encode(Md5::new().chain_update(body).chain_update(key).finalize());
    hex::encode(Md5::digest(format!("{inner}{key}").as_bytes()))
}

/// An XCP request envelope as OpenSRS clients send it; `items` are the
/// `<item>`s of its `attributes` (inserted verbatim, so they may be hostile).
pub fn xcp_envelope(action: &str, object: &str, items: &str) -> String {
    format!(
        "<?xml version='1.0' encoding='UTF-8' standalone='no' ?>\n\
         <!DOCTYPE OPS_envelope SYSTEM 'ops.dtd'>\n\
         <OPS_envelope><header><version>0.9</version></header><body><data_block><dt_assoc>\
         <item key=\"protocol\">XCP</item><item key=\"action\">{action}</item>\
         <item key=\"object\">{object}</item>\
         <item key=\"attributes\"><dt_assoc>{items}</dt_assoc></item>\
         </dt_assoc></data_block></body></OPS_envelope>"
    )
}

/// The top `dt_assoc` of an XCP answer, which must be HTTP 200 with an
/// `OPS_envelope` (every XCP answer is, refusals included).
pub fn xcp_reply(a: &Answer) -> regdesk::face::xcp_xml::XcpValue {
    assert_eq!(a.status, 200, "every XCP answer is HTTP 200: {}", a.text);
    regdesk::face::xcp_xml::parse_envelope(a.text.as_bytes())
        .unwrap_or_else(|e| panic!("not an XCP envelope ({e}): {:.500}", a.text))
}

/// Order params with the required owner contact.
pub fn owner() -> Value {
    json!({"contacts": {"owner": {"name": "Ada Lovelace", "email": "ada@example.net"}}})
}

/// The error code and field of an error answer.
pub fn error_of(a: &Answer) -> (u16, String, Option<String>) {
    let v = a.json();
    (
        a.status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["field"].as_str().map(String::from),
    )
}

/// An XML element as the tests read it: name, its own text (trimmed), and
/// its child elements; attributes, comments and the prolog are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct El {
    pub name: String,
    pub text: String,
    pub children: Vec<El>,
}

impl El {
    /// The first child called `name`; panics naming it when there is none.
    pub fn child(&self, name: &str) -> &El {
        self.children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no <{name}> in {self:?}"))
    }

    /// The text of `name` in each `<response>` of a `<multiresponse>`.
    pub fn column(&self, name: &str) -> Vec<String> {
        assert_eq!(self.name, "multiresponse", "{self:?}");
        self.children
            .iter()
            .map(|r| r.child(name).text.clone())
            .collect()
    }

    /// The text of every element called `name` at any depth, this one
    /// included, in document order.
    pub fn texts(&self, name: &str) -> Vec<String> {
        let mine = (self.name == name).then(|| self.text.clone());
        mine.into_iter()
            .chain(self.children.iter().flat_map(|c| c.texts(name)))
            .collect()
    }
}

/// The element tree of `xml`; panics, quoting it, when it is not
/// well-formed.
pub fn xml_tree(xml: &str) -> El {
    try_xml_tree(xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

/// The element tree of `xml`, or what is wrong with it. Predefined entities
/// and character references are resolved; any other reference is an error.
pub fn try_xml_tree(xml: &str) -> Result<El, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<El> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| format!("bad XML ({e})"))? {
            Event::Start(e) => stack.push(El {
                name: e.name().as_ref().to_string(),
                text: String::new(),
                children: Vec::new(),
            }),
            Event::End(_) => {
                let mut done = stack.pop().ok_or("an end tag without a start")?;
                done.text = done.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name: &str = &r;
                        quick_xml::escape::resolve_predefined_entity(name)
                            .ok_or_else(|| format!("entity &{name};"))?
                            .to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err("no root element".into()),
            _ => {}
        }
    }
}

/// An HTTP Basic `Authorization` value for the task face: `USER_ID:TOKEN`.
pub fn basic(user: i64, token: &str) -> String {
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    format!("Basic {creds}")
}
