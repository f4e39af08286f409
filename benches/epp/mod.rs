//! B8: the EPP face beside the JSON face doing the same, in the same run
//! and on the same server: a domain check, a domain's info, and a poll
//! with its ack, each per second over kept-open sessions (TLS, logged in
//! once), 16 clients, each its own account. The JSON side's "check" is
//! `GET /api/v1/domains/{name}` of a free name (404), the lookup a check
//! makes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::params;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{
    clients, now_ms, order, progress, rounds_row, sqlite, unread_notifications, Conn, Ctx, Goal,
    Row, Server, Side, Tally, CLIENTS,
};

const PASSWORD: &str = "bench-pw-1";
const EPP_NS: &str = "urn:ietf:params:xml:ns:epp-1.0";
const DOMAIN_NS: &str = "urn:ietf:params:xml:ns:domain-1.0";

/// One EPP session over TLS, logged in.
struct Session {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Session {
    fn open(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> io::Result<Session> {
        let server = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let conn = rustls::ClientConnection::new(config, server).map_err(io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut s = Session {
            tls: rustls::StreamOwned::new(conn, tcp),
        };
        s.read()?;
        let login = s.call(&format!(
            "<login><clID>{name}</clID><pw>{PASSWORD}</pw><options><version>1.0</version>\
             <lang>en</lang></options><svcs><objURI>{DOMAIN_NS}</objURI></svcs></login>"
        ))?;
        if !login.contains("code=\"1000\"") {
            return Err(io::Error::other(format!("login refused: {login}")));
        }
        Ok(s)
    }

    fn read(&mut self) -> io::Result<String> {
        let mut header = [0u8; 4];
        self.tls.read_exact(&mut header)?;
        let len = (u32::from_be_bytes(header) as usize).saturating_sub(4);
        let mut body = vec![0u8; len];
        self.tls.read_exact(&mut body)?;
        String::from_utf8(body).map_err(io::Error::other)
    }

    /// Sends `command` in a command frame and reads the answer.
    fn call(&mut self, command: &str) -> io::Result<String> {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><epp xmlns=\"{EPP_NS}\"><command>{command}\
             <clTRID>bench-1</clTRID></command></epp>"
        );
        let mut frame = ((xml.len() + 4) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(xml.as_bytes());
        self.tls.write_all(&frame)?;
        self.tls.flush()?;
        self.read()
    }
}

fn domain_command(verb: &str, name: &str) -> String {
    format!(
        "<{verb}><domain:{verb} xmlns:domain=\"{DOMAIN_NS}\"><domain:name>{name}</domain:name>\
         </domain:{verb}></{verb}>"
    )
}

/// The id of the message a poll answer carries.
fn message_id(answer: &str) -> Option<&str> {
    let rest = answer.split_once("<msgQ ")?.1;
    let rest = rest.split_once(" id=\"")?.1;
    rest.split_once('"').map(|(id, _)| id)
}

/// What each side does, once per count.
#[derive(Clone, Copy)]
enum Op {
    Check,
    Info,
    PollAck,
}

impl Op {
    fn epp(self, s: &mut Session, i: usize, n: u64) -> bool {
        let ok = |r: io::Result<String>, want: &str| r.is_ok_and(|a| a.contains(want));
        match self {
            Op::Check => ok(
                s.call(&domain_command("check", &format!("free-{i}-{n}.com"))),
                "avail=\"1\"",
            ),
            Op::Info => ok(
                s.call(&domain_command("info", &format!("epp-held-{i}.com"))),
                "code=\"1000\"",
            ),
            Op::PollAck => {
                let Ok(polled) = s.call("<poll op=\"req\"/>") else {
                    return false;
                };
                let Some(id) = message_id(&polled) else {
                    return false;
                };
                ok(
                    s.call(&format!("<poll op=\"ack\" msgID=\"{id}\"/>")),
                    "code=\"1000\"",
                )
            }
        }
    }

    fn json(self, conn: &mut Conn, token: &str, i: usize, n: u64) -> bool {
        let get = |conn: &mut Conn, path: &str| conn.call("GET", path, Some(token), None);
        match self {
            Op::Check => matches!(
                get(conn, &format!("/api/v1/domains/free-{i}-{n}.com")),
                Ok((404, _))
            ),
            Op::Info => matches!(
                get(conn, &format!("/api/v1/domains/json-held-{i}.com")),
                Ok((200, _))
            ),
            Op::PollAck => {
                let id = match get(conn, "/api/v1/notification") {
                    Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["id"].as_i64()),
                    _ => None,
                };
                let Some(id) = id else { return false };
                let path = format!("/api/v1/notification/{id}");
                matches!(conn.call("DELETE", &path, Some(token), None), Ok((204, _)))
            }
        }
    }
}

/// A TLS configuration trusting the CA the server serves.
fn trusting(server: &Server) -> Arc<rustls::ClientConfig> {
    let (status, pem) = server
        .conn()
        .call("GET", "/api/v1/epp/ca.pem", None, None)
        .expect("the EPP CA");
    assert_eq!(status, 200, "GET /api/v1/epp/ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA");
    }
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The accounts of one side, each with a domain and unread notifications.
fn accounts(
    server: &Server,
    db: &std::path::Path,
    side: &str,
    per: usize,
) -> Vec<(String, String)> {
    let made: Vec<(i64, String, String)> = (0..CLIENTS)
        .map(|i| {
            let name = format!("{side}{i}");
            let (id, token) = server.account(&name);
            (id, name, token)
        })
        .collect();
    let conn = sqlite(db);
    conn.execute_batch("begin").expect("begin");
    {
        let mut domain = conn
            .prepare(
                "insert into domains (account_id, name, status, expires_at, transfer_lock, privacy,
                                      auth_code, contacts, nameservers, created_at, updated_at)
                 values (?1, ?2, 'active', ?3, 1, 0, 'auth-code', '{}', '[\"ns1.example.net\"]', ?4, ?4)",
            )
            .expect("insert");
        for (i, (id, ..)) in made.iter().enumerate() {
            let (held, now) = (format!("{side}-held-{i}.com"), now_ms());
            domain
                .execute(params![id, held, now + 365 * 86_400_000, now])
                .expect("a domain");
            unread_notifications(&conn, *id, per);
        }
    }
    conn.execute_batch("commit").expect("commit");
    made.into_iter()
        .map(|(_, name, token)| (name, token))
        .collect()
}

pub fn b8(ctx: &Ctx) -> Vec<Row> {
    progress(&format!(
        "B8 EPP beside JSON: check, info, poll+ack; {CLIENTS} clients on kept-open sessions, {} rounds",
        ctx.plan.rounds
    ));
    let db = ctx.fresh_path("b8");
    let server = Server::start(ctx, &db, &["--epp-listen", "127.0.0.1:0"]);
    let epp_addr = server.epp.expect("the EPP listener's address");
    let per = if ctx.plan.quick { 10_000 } else { 30_000 };
    let json_side = Arc::new(accounts(&server, &db, "json", per));
    let epp_side = accounts(&server, &db, "epp", per);
    for (_, token) in &epp_side {
        let (status, _) = server
            .conn()
            .call(
                "PUT",
                "/api/v1/me/epp-password",
                Some(token),
                Some(format!("{{\"password\":\"{PASSWORD}\"}}").as_bytes()),
            )
            .expect("an EPP password");
        assert_eq!(status, 204, "PUT /api/v1/me/epp-password");
    }
    let config = trusting(&server);
    let names: Arc<Vec<String>> = Arc::new(epp_side.into_iter().map(|(n, _)| n).collect());
    let ops = [
        (
            Op::Check,
            "EPP domain check beside the JSON lookup",
            "checks/s",
        ),
        (
            Op::Info,
            "EPP domain info beside the JSON domain",
            "infos/s",
        ),
        (
            Op::PollAck,
            "EPP poll+ack beside the JSON notification cycle",
            "messages/s",
        ),
    ];
    let window = ctx.plan.window / ctx.plan.rounds;
    let mut rows = Vec::new();
    for (op, what, unit) in ops {
        let (mut epp, mut json, mut errors) = (Tally::default(), Tally::default(), 0);
        for round in 0..ctx.plan.rounds {
            for side in order(round, &[Side::Floor, Side::Ours]) {
                let (ok, errs, secs) = if side == Side::Ours {
                    epp_clients(window, epp_addr, config.clone(), names.clone(), op)
                } else {
                    json_clients(window, server.addr, json_side.clone(), op)
                };
                errors += errs;
                if side == Side::Ours {
                    epp.add(ok, secs);
                } else {
                    json.add(ok, secs);
                }
            }
        }
        let note = epp.round_ratios(&json);
        rows.push(rounds_row(
            ("B8", what, unit),
            Goal::RatioAtLeast(0.8),
            (&epp, &json),
            (errors, "answers were not as expected"),
            note,
        ));
    }
    server.stop(ctx);
    rows
}

fn epp_clients(
    window: Duration,
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    names: Arc<Vec<String>>,
    op: Op,
) -> (u64, u64, f64) {
    // Sessions are opened before the window and kept open through it.
    let sessions: Vec<std::sync::Mutex<Option<Session>>> = names
        .iter()
        .map(|name| std::sync::Mutex::new(Session::open(addr, config.clone(), name).ok()))
        .collect();
    let sessions = Arc::new(sessions);
    clients(window, move |i, stop: &AtomicBool| {
        let mut guard = sessions[i].lock().unwrap_or_else(|e| e.into_inner());
        let Some(session) = guard.as_mut() else {
            return (0, 1);
        };
        let (mut ok, mut errors, mut n) = (0, 0, 0u64);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            if op.epp(session, i, n) {
                ok += 1;
            } else {
                errors += 1;
            }
        }
        (ok, errors)
    })
}

fn json_clients(
    window: Duration,
    addr: SocketAddr,
    accounts: Arc<Vec<(String, String)>>,
    op: Op,
) -> (u64, u64, f64) {
    clients(window, move |i, stop: &AtomicBool| {
        let mut conn = Conn::new(addr);
        let token = accounts[i].1.as_str();
        let (mut ok, mut errors, mut n) = (0, 0, 0u64);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            if op.json(&mut conn, token, i, n) {
                ok += 1;
            } else {
                errors += 1;
            }
        }
        (ok, errors)
    })
}
