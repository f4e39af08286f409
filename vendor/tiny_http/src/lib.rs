//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::{Backoff, MessagesQueue, Tracker};

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;
pub use util::Limits;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

/// (regdesk patch) Answers one request on its connection's thread, and
/// returns whether to read another request from that connection (`false`
/// closes it); see `Server::http_with_handler`.
pub type Handler = Arc<dyn Fn(Request) -> bool + Send + Sync>;

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
#[allow(dead_code)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// (regdesk patch) Builds a plain HTTP server that calls `handler` for
    /// each request on the thread that read it from its connection, instead
    /// of queueing it for `recv()`. `handler` must answer or drop the request
    /// before it returns: the connection's next request is read after that,
    /// unless it returns `false`, which closes the connection. `recv()` on
    /// such a server only ever returns errors.
    pub fn http_with_handler<A>(
        addr: A,
        handler: Handler,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Self::http_with_limits(addr, handler, Limits::default())
    }

    /// (regdesk patch) As `http_with_handler`, with the bounds on what
    /// peers may hold given (see `Limits`).
    pub fn http_with_limits<A>(
        addr: A,
        handler: Handler,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        let listener = ConfigListenAddr::from_socket_addrs(addr)?.bind()?;
        Self::start(listener, None, Some(handler), limits)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::start(listener.into(), ssl_config, None, Limits::default())
    }

    fn start(
        listener: Listener,
        ssl_config: Option<SslConfig>,
        handler: Option<Handler>,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let accepting = Accepting {
            listener: server,
            ssl,
            handler,
            messages: messages.clone(),
            close: close_trigger.clone(),
            tracker: Tracker::new(limits),
        };
        // (regdesk patch: named, and a refused thread is an error, not a panic)
        thread::Builder::new()
            .name("regdesk-accept".into())
            .spawn(move || accepting.run())?;

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        unimplemented!()
        //self.requests_receiver.lock().len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

#[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
type SslContext = ();
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
type SslContext = crate::ssl::SslContextImpl;

/// (regdesk patch) The accept thread's state. Upstream ended the accept
/// loop at the first failed `accept` (out of descriptors, say) and
/// panicked when it could not clone a socket, after which no connection was
/// ever accepted again; now a failure is waited out (`Backoff`), idle
/// connections are closed to free descriptors, and the number of open
/// connections is bounded (`Tracker`).
struct Accepting {
    listener: Listener,
    ssl: Option<SslContext>,
    handler: Option<Handler>,
    messages: Arc<MessagesQueue<Message>>,
    close: Arc<AtomicBool>,
    tracker: Arc<Tracker>,
}

/// The log of failed `accept`s: the first, then at most one a minute while
/// they go on (out of descriptors, every connection attempt fails).
#[derive(Default)]
struct Failures {
    logged: Option<std::time::Instant>,
    unlogged: u64,
}

impl Failures {
    const QUIET: Duration = Duration::from_secs(60);

    fn log(&mut self, e: &IoError) {
        if self.logged.is_some_and(|at| at.elapsed() < Self::QUIET) {
            self.unlogged += 1;
            return;
        }
        log::warn!(
            "accepting a connection failed (retrying; {} more failures since the last line): {}",
            self.unlogged,
            e
        );
        self.logged = Some(std::time::Instant::now());
        self.unlogged = 0;
    }
}

/// Idle connections closed when the process has run out of descriptors:
/// enough for the connection waiting and for what the server opens itself.
const ROOM_ON_EMFILE: usize = 8;

impl Accepting {
    fn run(self) {
        // a tasks pool is used to dispatch the connections into threads
        let tasks_pool = util::TaskPool::new();
        let mut backoff = Backoff::new();
        let mut failures = Failures::default();
        log::debug!("Running accept thread");
        while !self.close.load(Relaxed) {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    backoff.reset();
                    if let Some(client) = self.client(Arc::new(sock)) {
                        tasks_pool.spawn(self.task(client));
                    }
                }
                Err(e) => {
                    failures.log(&e);
                    self.wait_out(&e, &mut backoff);
                }
            }
        }
        log::debug!("Terminating accept thread");
    }

    /// After a failed `accept`: out of descriptors (EMFILE, ENFILE), closes
    /// idle connections; then pauses.
    fn wait_out(&self, e: &IoError, backoff: &mut Backoff) {
        if matches!(e.raw_os_error(), Some(23) | Some(24)) {
            self.tracker.make_room(ROOM_ON_EMFILE);
        }
        thread::sleep(backoff.pause());
    }

    /// The connection of an accepted socket, or `None` when it was closed
    /// (no room, or a TLS handshake that failed).
    fn client(&self, sock: Arc<Connection>) -> Option<ClientConnection> {
        let Some(slot) = self.tracker.admit(sock.clone()) else {
            log::debug!("too many open connections: one closed at once");
            return None;
        };
        use util::RefinedTcpStream;
        let (read_closable, write_closable) = match self.ssl {
            None => RefinedTcpStream::new(sock),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Some(ref ssl) => {
                // trying to apply SSL over the connection
                // if an error occurs, we just close the socket and resume listening
                // (regdesk patch: TLS takes a socket of its own, a second
                // descriptor as upstream; the tracker keeps this one, to
                // close the connection and to time its heads)
                RefinedTcpStream::new(ssl.accept(sock.try_clone().ok()?).ok()?)
            }
            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
            Some(ref _ssl) => unreachable!(),
        };
        let timeout = self.tracker.limits().header_timeout;
        Some(ClientConnection::new(
            write_closable,
            read_closable,
            slot,
            timeout,
        ))
    }

    /// The task that reads the connection's requests on a thread of its own.
    fn task(&self, client: ClientConnection) -> Box<dyn FnMut() + Send> {
        let messages = self.messages.clone();
        let handler = self.handler.clone();
        let mut client = Some(client);
        Box::new(move || {
            let Some(client) = client.take() else { return };
            if let Some(handler) = &handler {
                for rq in client {
                    if !handler(rq) {
                        break;
                    }
                }
            } else {
                // Synchronization is needed for HTTPS requests to avoid a deadlock
                if client.secure() {
                    let (sender, receiver) = mpsc::channel();
                    for rq in client {
                        messages.push(rq.with_notify_sender(sender.clone()).into());
                        if receiver.recv().is_err() {
                            break;
                        }
                    }
                } else {
                    for rq in client {
                        messages.push(rq.into());
                    }
                }
            }
        })
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
