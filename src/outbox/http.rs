//! The one outgoing HTTP call, shared by notification webhooks and the
//! webhook provider: a JSON POST signed Stripe-style, bounded as a whole
//! (name lookup, connect, request and the complete answer), never
//! following redirects, and, for a customer's endpoint, connecting only to
//! addresses `address::allowed` accepts.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::address;

/// The header carrying `t=UNIX,v1=HEX`.
pub const SIGNATURE_HEADER: &str = "X-Regdesk-Signature";
/// Answers longer than this are cut; an outcome fits in far less.
const MAX_ANSWER: u64 = 64 * 1024;

/// `t=UNIX,v1=HEX`: HMAC-SHA256 of `"{t}.{body}"` keyed with `secret`, as
/// Stripe signs its webhooks.
pub fn signature(secret: &str, t: u64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The signature timestamp is wall-clock time even under `--test-clock`:
/// receivers compare it with their own clock to refuse replays.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Which addresses a call may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any: the operator's own settings (`--webhook-url`), or a customer's
    /// under `--allow-private-webhooks`.
    Any,
    /// Public addresses only: a customer's endpoint.
    Public,
}

/// One signed POST.
pub struct Call<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub body: &'a str,
    /// Added to the request.
    pub headers: &'a [(&'a str, String)],
    /// The whole call, answer included, ends by then.
    pub timeout: Duration,
    pub reach: Reach,
}

/// What came back from one POST.
#[derive(Debug, Clone)]
pub enum Posted {
    /// Any HTTP answer, with (the start of) its body.
    Answer { status: u16, body: String },
    /// No answer: `reason` is short and fixed (what a customer may see),
    /// `detail` the whole story (for the log and the operator).
    Failed {
        reason: &'static str,
        detail: String,
    },
}

/// POSTs the call's body, signed, and reads the answer.
pub fn post_signed(call: &Call<'_>) -> Posted {
    let refused = Arc::new(AtomicBool::new(false));
    let resolver = Resolver {
        reach: call.reach,
        deadline: Instant::now() + call.timeout,
        refused: refused.clone(),
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(call.timeout)
        .redirects(0)
        .resolver(resolver)
        .user_agent(concat!("regdesk/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut req = agent
        .post(call.url)
        .set("Content-Type", "application/json")
        .set(
            SIGNATURE_HEADER,
            &signature(call.secret, unix_now(), call.body),
        );
    for (name, value) in call.headers {
        req = req.set(name, value);
    }
    let resp = match req.send_string(call.body) {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(ureq::Error::Transport(t)) => {
            let reason = if refused.load(Ordering::SeqCst) {
                "address not allowed"
            } else {
                reason(&t)
            };
            return Posted::Failed {
                reason,
                detail: t.to_string(),
            };
        }
    };
    let status = resp.status();
    let mut text = String::new();
    if let Err(e) = resp
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_string(&mut text)
    {
        // A 2xx whose body broke off is no answer we can trust.
        if (200..300).contains(&status) {
            return Posted::Failed {
                reason: io_reason(&e).unwrap_or("answer cut short"),
                detail: format!("reading the answer: {e}"),
            };
        }
    }
    Posted::Answer { status, body: text }
}

/// The short, fixed reason for a failed call.
fn reason(t: &ureq::Transport) -> &'static str {
    let io = std::error::Error::source(t).and_then(|e| e.downcast_ref::<io::Error>());
    if let Some(why) = io.and_then(io_reason) {
        return why;
    }
    match t.kind() {
        ureq::ErrorKind::Dns => "name not resolved",
        ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => "not an HTTP answer",
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => "bad URL",
        _ => "connection failed",
    }
}

fn io_reason(e: &io::Error) -> Option<&'static str> {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Some("timed out"),
        io::ErrorKind::ConnectionRefused => Some("connection refused"),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Some("connection closed"),
        _ => None,
    }
}

/// Looks names up within the call's deadline and, for `Reach::Public`,
/// drops every address the rule refuses, so that a name that resolves
/// inside (now, or only at send time) is never connected to.
struct Resolver {
    reach: Reach,
    deadline: Instant,
    refused: Arc<AtomicBool>,
}

impl ureq::Resolver for Resolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let found = address::lookup(netloc, left)?;
        if self.reach == Reach::Any {
            return Ok(found);
        }
        let kept: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| address::allowed(a.ip()))
            .collect();
        if kept.is_empty() {
            self.refused.store(true, Ordering::SeqCst);
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{netloc}: no public address"),
            ));
        }
        Ok(kept)
    }
}

/// A short, single-line excerpt of an answer, for the operator.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // HMAC-SHA256("key", "1.{}") as `openssl dgst -sha256 -hmac key` computes it.
        let sig = signature("key", 1, "{}");
        assert_eq!(
            sig,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(sig, signature("other", 1, "{}"));
        assert_ne!(sig, signature("key", 2, "{}"));
    }

    fn post(url: &str, reach: Reach) -> Posted {
        post_signed(&Call {
            url,
            secret: "s",
            body: "{}",
            headers: &[],
            timeout: Duration::from_secs(5),
            reach,
        })
    }

    /// A name that resolves inside is refused at the send, whatever it
    /// resolved to when the endpoint was set.
    #[test]
    fn a_public_call_never_connects_inside() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        for url in [
            format!("http://localhost:{port}/"),
            format!("http://127.0.0.1:{port}/"),
        ] {
            match post(&url, Reach::Public) {
                Posted::Failed { reason, .. } => assert_eq!(reason, "address not allowed"),
                other => panic!("{url}: {other:?}"),
            }
        }
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "nothing connected");
        drop(listener);
        match post(&format!("http://127.0.0.1:{port}/"), Reach::Any) {
            Posted::Failed { reason, .. } => assert_eq!(reason, "connection refused"),
            other => panic!("{other:?}"),
        }
    }
}
