//! The EPP listener (RFC 5734): TLS over TCP, one thread per session
//! under `--epp-max-sessions` (so a slow peer holds only its own thread),
//! RFC 5734 framing, and the session's deadlines: TLS handshake and login
//! within `--epp-login-timeout-ms` of connecting, and no more than
//! `--epp-idle-timeout-ms` between commands afterwards. What a session's
//! commands mean is `face::epp`'s.

pub mod frame;
pub mod tls;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::desk::epp as desk_epp;
use crate::error::{Error, Result};
use crate::face::epp::{AccountSlots, Session};
use crate::App;

/// How long one write to a peer may block: a peer that reads nothing
/// does not hold its thread for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running EPP listener.
pub struct EppServer {
    pub addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What every session thread shares.
struct Shared {
    app: Arc<App>,
    tls: Arc<ServerConfig>,
    slots: Arc<AccountSlots>,
}

/// The server's TLS configuration: the operator's files, or the test
/// material kept in the database (made on the first start).
fn tls_config(app: &App) -> Result<Arc<ServerConfig>> {
    let c = &app.config;
    if let (Some(cert), Some(key)) = (&c.epp_cert, &c.epp_key) {
        let read = |field: &str, path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| Error::invalid(field, format!("cannot read {}: {e}", path.display())))
        };
        return tls::server_config(&read("epp_cert", cert)?, &read("epp_key", key)?);
    }
    let kept = desk_epp::tls(app, tls::make_test_material)?;
    tls::server_config(kept.cert.as_bytes(), kept.key.as_bytes())
}

impl EppServer {
    /// Listens when `--epp-listen` is given.
    pub fn start(app: Arc<App>) -> Result<Option<EppServer>> {
        let Some(address) = app.config.epp_listen.clone() else {
            return Ok(None);
        };
        let tls = tls_config(&app)?;
        let listener = TcpListener::bind(&address).map_err(|e| {
            Error::invalid("epp_listen", format!("cannot listen on {address}: {e}"))
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            slots: Arc::new(AccountSlots::new(app.config.epp_sessions_per_account)),
            app,
            tls,
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = thread::Builder::new()
            .name("regdesk-epp".into())
            .spawn(move || accept_loop(listener, shared, stop))?;
        Ok(Some(EppServer {
            addr,
            stopping,
            thread,
        }))
    }

    /// Stops accepting; open sessions end at their next deadline or command.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // The accept loop blocks in accept: a connection wakes it.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        self.thread.join().ok();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stopping: Arc<AtomicBool>) {
    let max = shared.app.config.epp_max_sessions;
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let tcp = match stream {
            Ok(tcp) => tcp,
            Err(e) => {
                // Out of descriptors, a reset before accept: wait a moment
                // rather than spin, and keep listening.
                log::warn!("epp: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // Counted before the thread starts, so that a burst cannot pass
        // the bound; given back when the place is dropped (the session
        // ended, or its thread could not start).
        let Some(place) = Place::take(&shared.app, max) else {
            log::warn!("epp: {max} sessions open; a connection was closed");
            continue;
        };
        let shared2 = shared.clone();
        let spawned = thread::Builder::new()
            .name("regdesk-epp-session".into())
            .spawn(move || {
                let _place = place;
                if let Err(e) = serve(&shared2, tcp) {
                    log::debug!("epp: session ended: {e}");
                }
            });
        if let Err(e) = spawned {
            log::warn!("epp: no thread for a session: {e}");
        }
    }
}

/// One of the `--epp-max-sessions` places, counted in the
/// `regdesk_epp_sessions` gauge while it is held.
struct Place(Arc<App>);

impl Place {
    fn take(app: &Arc<App>, max: usize) -> Option<Place> {
        let open = &app.metrics.epp_sessions;
        open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Place(app.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.metrics.epp_sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream whose reads end by a deadline, however the peer trickles.
struct Timed {
    tcp: TcpStream,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// One session: the greeting, then a frame in and an answer out until the
/// session ends, a deadline passes or the peer breaks the framing.
fn serve(shared: &Shared, tcp: TcpStream) -> io::Result<()> {
    let config = &shared.app.config;
    let peer = tcp.peer_addr()?.ip();
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let login_by = Instant::now() + Duration::from_millis(config.epp_login_timeout_ms);
    let idle = Duration::from_millis(config.epp_idle_timeout_ms);
    let conn = ServerConnection::new(shared.tls.clone()).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(
        conn,
        Timed {
            tcp,
            deadline: login_by,
        },
    );
    let mut session = Session::new(shared.app.clone(), peer, shared.slots.clone());
    frame::write_frame(&mut stream, session.greeting().as_bytes())?;
    loop {
        stream.sock.deadline = if session.logged_in() {
            Instant::now() + idle
        } else {
            login_by
        };
        let xml = frame::read_frame(&mut stream)?;
        let (answer, close) = session.handle(&xml);
        frame::write_frame(&mut stream, answer.as_bytes())?;
        if close {
            break;
        }
    }
    stream.conn.send_close_notify();
    stream.flush()
}
