//! The HTTP layer: the only module that touches tiny_http. Each connection's
//! thread reads its requests, reads bodies within the size limit, hands a
//! plain `Req` that passes `guard` to the router and writes its `Resp`
//! back; `limits` bounds the connections peers may hold. A panic in a
//! handler is an answer 500 for that request; the server keeps serving.

pub mod assets;
pub mod guard;
pub mod limits;
pub mod metrics;
pub mod router;
pub mod session;

use std::io::Read;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tiny_http::{Header, Server};

use crate::error::{Error, Result};
use crate::App;

/// Largest accepted request body (SPEC section 6).
pub const MAX_BODY: usize = 1024 * 1024;

/// An HTTP request, read whole and detached from the connection.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// The percent-encoded path, without the query string.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The address the connection comes from (the sign-in throttle counts
    /// failures per address).
    pub peer: Option<std::net::IpAddr>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last value of a query parameter (empty values count as absent).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A test-friendly constructor.
    pub fn new(method: &str, target: &str, body: &[u8]) -> Req {
        let (path, query) = split_target(target);
        Req {
            method: method.to_string(),
            path,
            query,
            headers: Vec::new(),
            body: body.to_vec(),
            peer: None,
        }
    }
}

fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    match target.split_once('?') {
        Some((path, q)) => (
            path.to_string(),
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ),
        None => (target.to_string(), Vec::new()),
    }
}

/// An HTTP response before it is written.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Resp {
        match serde_json::to_vec(value) {
            Ok(body) => Resp::new(status, "application/json", body),
            Err(e) => Resp::error(&Error::Internal(format!("serialising a response: {e}"))),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp::new(status, "text/plain; charset=utf-8", Vec::new())
    }

    /// The JSON error body of the native API: `{"error":{code,message,field?}}`.
    pub fn error(err: &Error) -> Resp {
        err.log_server_side();
        let mut e = serde_json::json!({ "code": err.code(), "message": err.message() });
        if let Some(field) = err.field() {
            e["field"] = field.into();
        }
        let body = serde_json::json!({ "error": e }).to_string();
        let resp = Resp::new(err.status(), "application/json", body);
        match err {
            Error::Unauthorized => resp.with_header("WWW-Authenticate", "Bearer realm=\"regdesk\""),
            Error::MethodNotAllowed(allowed) => resp.with_header("Allow", allowed),
            Error::Locked { retry_after_secs } => {
                resp.with_header("Retry-After", &retry_after_secs.to_string())
            }
            _ => resp,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl From<Result<Resp>> for Resp {
    fn from(r: Result<Resp>) -> Resp {
        r.unwrap_or_else(|e| Resp::error(&e))
    }
}

/// A running HTTP server. Each request is answered on the thread that read
/// it from its connection (tiny_http's handler mode, see
/// vendor/tiny_http/PATCHED.md): handing it to a worker thread through
/// tiny_http's queue cost a thread switch per request.
pub struct HttpServer {
    /// Dropped to stop accepting connections.
    server: Server,
    gate: Arc<Gate>,
    pub addr: SocketAddr,
}

/// How long a stop waits for the requests being answered.
const STOP_WAIT: Duration = Duration::from_secs(10);

impl HttpServer {
    /// Binds `listen` and serves `app`, answering at most `workers`
    /// requests at once.
    pub fn start(listen: &str, workers: NonZeroUsize, app: Arc<App>) -> Result<HttpServer> {
        let gate = Arc::new(Gate::new(workers.get()));
        let limits = limits::from_config(&app.config);
        log::debug!(
            "serving at most {} connections at once",
            limits.max_connections
        );
        let handler: tiny_http::Handler = {
            let gate = gate.clone();
            Arc::new(move |request| {
                let answered = catch_unwind(AssertUnwindSafe(|| serve(&app, &gate, request)));
                answered.unwrap_or_else(|_| {
                    log::error!("answering a request panicked");
                    false
                })
            })
        };
        let server = Server::http_with_limits(listen, handler, limits)
            .map_err(|e| Error::Internal(format!("cannot listen on {listen}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Internal("the server has no IP address".into()))?;
        Ok(HttpServer { server, gate, addr })
    }

    /// Stops accepting, refuses requests on open connections from now on,
    /// and waits (at most `STOP_WAIT`) for those being answered.
    pub fn stop(self) {
        drop(self.server);
        if !self.gate.close(STOP_WAIT) {
            log::warn!("stopped with requests still being answered");
        }
    }
}

/// Lets at most `limit` requests be answered at once; once closed, lets
/// none in.
struct Gate {
    limit: usize,
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Requests being answered: at most `limit`.
    inside: usize,
    /// Requests whose answers are being written (no limit).
    writing: usize,
    waiting: usize,
    closed: bool,
}

/// A request's place inside the gate, given back when dropped.
struct Pass<'a> {
    gate: &'a Gate,
    /// Whether the request holds a place (it is being answered) rather
    /// than having its answer written.
    placed: bool,
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate {
            limit,
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a place; `None` once the gate is closed.
    fn enter(&self) -> Option<Pass<'_>> {
        let mut state = self.lock();
        while !state.closed && state.inside >= self.limit {
            state.waiting += 1;
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        if state.closed {
            return None;
        }
        state.inside += 1;
        Some(Pass {
            gate: self,
            placed: true,
        })
    }

    /// Wakes the waiters; a wake costs a system call, so only when there
    /// are any.
    fn wake(&self, state: &GateState) {
        if state.waiting > 0 {
            self.changed.notify_all();
        }
    }

    /// Closes the gate and waits until no request is inside or having its
    /// answer written; false when `wait` ran out first.
    fn close(&self, wait: Duration) -> bool {
        let mut state = self.lock();
        state.closed = true;
        self.changed.notify_all();
        let deadline = Instant::now() + wait;
        while state.inside + state.writing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state.waiting += 1;
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        }
        true
    }
}

impl Pass<'_> {
    /// Gives the place back to another request; the gate still counts this
    /// one until its answer is written (until the pass is dropped).
    fn writing(&mut self) {
        if !self.placed {
            return;
        }
        self.placed = false;
        let mut state = self.gate.lock();
        state.inside -= 1;
        state.writing += 1;
        self.gate.wake(&state);
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        if self.placed {
            state.inside -= 1;
        } else {
            state.writing -= 1;
        }
        self.gate.wake(&state);
    }
}

fn declared_length(request: &tiny_http::Request) -> Option<usize> {
    request.body_length()
}

/// Reads the body within `MAX_BODY`; refuses before reading when the
/// declared length is already over it.
fn read_body(request: &mut tiny_http::Request) -> Result<Vec<u8>> {
    if declared_length(request).is_some_and(|n| n > MAX_BODY) {
        return Err(Error::TooLarge(MAX_BODY));
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::Malformed(format!("cannot read the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(Error::TooLarge(MAX_BODY));
    }
    Ok(body)
}

/// Refuses a query string that is not UTF-8 once percent-decoded: decoding
/// it lossily would turn a filter into something the client did not send.
fn check_target(url: &str) -> Result<()> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    if percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .is_err()
    {
        return Err(Error::Malformed(
            "the query string is not valid UTF-8".into(),
        ));
    }
    Ok(())
}

/// Answers `request`; returns whether its connection may carry another.
/// The body is read before the request takes its place at `gate`: a client
/// that sends its body slowly holds its own connection's thread, not one of
/// the places every request needs. Refusals close the connection: those
/// made before the body is read, and those of a stopping server.
fn serve(app: &App, gate: &Gate, mut request: tiny_http::Request) -> bool {
    let started = Instant::now();
    // HEAD is answered as GET (RFC 9110 9.3.2: every general-purpose
    // server supports both); tiny_http sends its headers, Content-Length
    // included, without the body.
    let method = match request.method().as_str().to_ascii_uppercase() {
        head if head == "HEAD" => "GET".to_string(),
        other => other,
    };
    let (path, query) = split_target(request.url());
    let peer = request.remote_addr().map(|a| a.ip());
    let headers = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let read = check_target(request.url()).and_then(|()| read_body(&mut request));
    let (resp, close, mut pass) = match read {
        Err(e) => (router::refusal(app, &method, &path, &e), true, None),
        Ok(body) => {
            let req = Req {
                method,
                path,
                query,
                headers,
                body,
                peer,
            };
            answer(app, gate, &req)
        }
    };
    app.metrics.observe(resp.status, started.elapsed());
    // Writing to a client that reads slowly holds no place, but a stop
    // still waits for the answer to be written.
    if let Some(pass) = &mut pass {
        pass.writing();
    }
    write(request, resp, close);
    !close
}

/// The answer to a request read whole, whether to close its connection,
/// and its place at `gate` (none when stopping).
fn answer<'g>(app: &App, gate: &'g Gate, req: &Req) -> (Resp, bool, Option<Pass<'g>>) {
    let Some(pass) = gate.enter() else {
        let stopping = Error::Unavailable("regdesk is stopping".into());
        return (
            router::refusal(app, &req.method, &req.path, &stopping),
            true,
            None,
        );
    };
    if let Some(refused) = guard::refused(app, req) {
        return (refused, false, Some(pass));
    }
    let resp = catch_unwind(AssertUnwindSafe(|| router::route(app, req))).unwrap_or_else(|_| {
        Resp::error(&Error::Internal(format!(
            "handler panicked on {} {}",
            req.method, req.path
        )))
    });
    (resp, false, Some(pass))
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn write(request: tiny_http::Request, resp: Resp, close: bool) {
    let mut response = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    if let Some(h) = header("Content-Type", &resp.content_type) {
        response.add_header(h);
    }
    for (k, v) in &resp.headers {
        if let Some(h) = header(k, v) {
            response.add_header(h);
        }
    }
    // Answers carry tokens, API keys and customers' data: no cache keeps
    // them (the web UI's files set their own), and no browser reads a JSON
    // or XML answer as something else.
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    for (name, value) in [
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        if !has(name) {
            if let Some(h) = header(name, value) {
                response.add_header(h);
            }
        }
    }
    if close {
        // The connection is closed after this answer: an unread body makes
        // it unusable for another request, and a stopping server takes none.
        if let Some(h) = header("Connection", "close") {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!("writing a response failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;

    /// Whether `rx` hears within a moment (long against a thread's start).
    fn hears(rx: &mpsc::Receiver<()>) -> bool {
        rx.recv_timeout(Duration::from_millis(200)).is_ok()
    }

    /// Closes `gate` on a thread of its own, which tells `tx` when the
    /// close returns, and returns whether it emptied.
    fn close_on_a_thread(gate: &Arc<Gate>, tx: mpsc::Sender<()>) -> thread::JoinHandle<bool> {
        let gate = gate.clone();
        thread::spawn(move || {
            let emptied = gate.close(Duration::from_secs(30));
            tx.send(()).ok();
            emptied
        })
    }

    #[test]
    fn the_gate_lets_in_at_most_its_limit() {
        let gate = Arc::new(Gate::new(2));
        let first = gate.enter();
        let second = gate.enter();
        assert!(first.is_some() && second.is_some());
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let gate = gate.clone();
            thread::spawn(move || {
                let pass = gate.enter();
                tx.send(()).ok();
                pass.is_some()
            })
        };
        assert!(!hears(&rx), "a third request went in beside two");
        drop(first);
        assert!(hears(&rx), "a place given back was not taken");
        assert!(waiter.join().expect("the waiter"));
        drop(second);
        assert_eq!(gate.lock().inside, 0);
    }

    #[test]
    fn a_closed_gate_refuses_and_waits_for_those_inside() {
        let gate = Arc::new(Gate::new(1));
        let inside = gate.enter();
        let (tx, rx) = mpsc::channel();
        let queued = {
            let (gate, tx) = (gate.clone(), tx.clone());
            thread::spawn(move || {
                let refused = gate.enter().is_none();
                tx.send(()).ok();
                refused
            })
        };
        assert!(!hears(&rx));
        let closer = close_on_a_thread(&gate, tx);
        // The waiting request is refused at once; the close waits for the
        // request inside.
        assert!(hears(&rx));
        assert!(queued.join().expect("the queued request"));
        assert!(!hears(&rx), "the close did not wait for the request inside");
        drop(inside);
        assert!(hears(&rx));
        assert!(closer.join().expect("the closer"));
        assert!(gate.enter().is_none());
    }

    #[test]
    fn an_answer_being_written_frees_its_place_but_holds_a_close() {
        let gate = Arc::new(Gate::new(1));
        let mut writing = gate.enter().expect("a place");
        writing.writing();
        let next = gate.enter();
        assert!(next.is_some(), "the place was not given back");
        drop(next);
        let (tx, rx) = mpsc::channel();
        let closer = close_on_a_thread(&gate, tx);
        assert!(!hears(&rx), "the close did not wait for the answer");
        drop(writing);
        assert!(hears(&rx));
        assert!(closer.join().expect("the closer"));
    }

    #[test]
    fn a_close_gives_up_after_its_wait() {
        let gate = Gate::new(1);
        let _inside = gate.enter();
        assert!(!gate.close(Duration::from_millis(20)));
    }
}
