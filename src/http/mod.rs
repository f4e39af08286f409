//! The HTTP layer: the only module that touches tiny_http. Worker threads take
//! requests off the server, read bodies within the size limit, hand a plain
//! `Req` to the router and write its `Resp` back. A panic in a handler is an
//! answer 500 for that request; the server keeps serving.

pub mod assets;
pub mod metrics;
pub mod router;

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

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
        if let Error::Internal(detail) = err {
            log::error!("{detail}");
        }
        let mut e = serde_json::json!({ "code": err.code(), "message": err.message() });
        if let Some(field) = err.field() {
            e["field"] = field.into();
        }
        let body = serde_json::json!({ "error": e }).to_string();
        let mut resp = Resp::new(err.status(), "application/json", body);
        if matches!(err, Error::Unauthorized) {
            resp.headers
                .push(("WWW-Authenticate".into(), "Bearer realm=\"regdesk\"".into()));
        }
        resp
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

/// A running HTTP server.
pub struct HttpServer {
    server: Arc<Server>,
    /// Every worker, once spawned.
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The thread that spawns the workers after the first.
    spawner: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

/// Workers spawned before `start` returns; the others follow on a thread of
/// their own. A start spent a third of its time spawning 32 workers (about
/// 90 µs each here), and one worker can answer the first requests.
const FIRST_WORKERS: usize = 2;

impl HttpServer {
    /// Binds `listen` and starts `workers` threads that serve `app`.
    pub fn start(listen: &str, workers: usize, app: Arc<App>) -> Result<HttpServer> {
        let server = Server::http(listen)
            .map_err(|e| Error::Internal(format!("cannot listen on {listen}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Internal("the server has no IP address".into()))?;
        let server = Arc::new(server);
        let workers = workers.max(1);
        let spawn = {
            let (server, app) = (server.clone(), app.clone());
            move |i: usize| {
                let (server, app) = (server.clone(), app.clone());
                thread::Builder::new()
                    .name(format!("regdesk-http-{i}"))
                    .spawn(move || {
                        while let Ok(request) = server.recv() {
                            serve(&app, request);
                        }
                    })
            }
        };
        let first = workers.min(FIRST_WORKERS);
        let handles = (0..first)
            .map(&spawn)
            .collect::<std::io::Result<Vec<_>>>()?;
        let handles = Arc::new(Mutex::new(handles));
        let spawner = if workers > first {
            let handles = handles.clone();
            Some(
                thread::Builder::new()
                    .name("regdesk-http-spawn".into())
                    .spawn(move || {
                        for i in first..workers {
                            match spawn(i) {
                                Ok(h) => handles
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(h),
                                Err(e) => {
                                    log::error!("cannot start HTTP worker {i}: {e}");
                                    break;
                                }
                            }
                        }
                    })?,
            )
        } else {
            None
        };
        Ok(HttpServer {
            server,
            workers: handles,
            spawner,
            addr,
        })
    }

    /// Stops accepting, lets the workers finish what they hold, and joins them.
    pub fn stop(self) {
        if let Some(spawner) = self.spawner {
            spawner.join().ok();
        }
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for _ in &workers {
            self.server.unblock();
        }
        for w in workers {
            w.join().ok();
        }
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

fn serve(app: &App, mut request: tiny_http::Request) {
    let started = Instant::now();
    let method = request.method().as_str().to_ascii_uppercase();
    let (path, query) = split_target(request.url());
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
    let (resp, close) = match check_target(request.url()).and_then(|()| read_body(&mut request)) {
        Err(e) => (router::refusal(&method, &path, &e), true),
        Ok(body) => {
            let req = Req {
                method,
                path,
                query,
                headers,
                body,
            };
            let resp =
                catch_unwind(AssertUnwindSafe(|| router::route(app, &req))).unwrap_or_else(|_| {
                    Resp::error(&Error::Internal(format!(
                        "handler panicked on {} {}",
                        req.method, req.path
                    )))
                });
            (resp, false)
        }
    };
    app.metrics.observe(resp.status, started.elapsed());
    write(request, resp, close);
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
    if close {
        // The unread body makes the connection unusable for another request.
        if let Some(h) = header("Connection", "close") {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!("writing a response failed: {e}");
    }
}
