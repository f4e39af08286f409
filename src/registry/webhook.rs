//! The webhook provider: each claimed request is POSTed as signed JSON to a
//! URL, and the answer decides its fate. Also the pieces every outgoing
//! webhook shares: the Stripe-style signature, the bounded HTTP call and the
//! backoff with jitter.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{External, Provider, Verdict};
use crate::clock::Millis;
use crate::config::Config;
use crate::error::{quoted, Error, Result};
use crate::random;
use crate::state::{Failure, WaitingOn};
use crate::store::requests::Request;
use crate::store::view;

/// The header carrying `t=UNIX,v1=HEX`.
pub const SIGNATURE_HEADER: &str = "X-Regdesk-Signature";
/// Answers longer than this are cut; an outcome fits in far less.
const MAX_ANSWER: u64 = 64 * 1024;
/// No retry waits longer than this.
pub const MAX_DELAY_MS: u64 = 60 * 60 * 1000;

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

/// How long the `attempt`-th retry waits: `base * 2^(attempt-1)`, capped,
/// of which the second half is random so that retries spread out.
pub fn backoff(base_ms: u64, attempt: i64, cap_ms: u64) -> Millis {
    let shift = attempt.clamp(1, 31) - 1;
    let full = base_ms.saturating_mul(1u64 << shift).min(cap_ms);
    let half = full / 2;
    (half + (random::unit() * half as f64) as u64) as Millis
}

/// Checks a webhook URL given in `field`: plain `http://` with a host.
pub fn check_url(field: &str, url: &str) -> Result<()> {
    // Measured as given, in characters (as the API document counts), then
    // trimmed.
    if url.chars().count() > 2000 {
        return Err(Error::invalid(field, "longer than 2000 characters"));
    }
    let url = url.trim();
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        let why = if url.starts_with("https://") {
            "https is not supported; give an http:// URL (put a TLS proxy in front if needed)"
        } else {
            "must be an http:// URL"
        };
        Error::invalid(field, why)
    })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || host.contains(char::is_whitespace) {
        return Err(Error::invalid(field, "names no host"));
    }
    // What the sender will parse: a URL it cannot read would fail every
    // delivery, so it is refused here.
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host() {
            Some(url::Host::Domain(name)) if !host_name(name) => Err(Error::invalid(
                field,
                format!("{} is not a host name", quoted(name)),
            )),
            Some(_) => Ok(()),
            None => Err(Error::invalid(field, "names no host")),
        },
        Err(e) => Err(Error::invalid(field, format!("is not a URL: {e}"))),
    }
}

/// Whether `name` is a host name DNS can look up: dot-separated labels of
/// letters, digits, hyphens and underscores, no label empty or starting or
/// ending with a hyphen (one dot may end it).
fn host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What came back from one POST.
#[derive(Debug, Clone)]
pub enum Posted {
    /// Any HTTP answer, with (the start of) its body.
    Answer { status: u16, body: String },
    /// No answer: refused connection, timeout, bad address.
    Transport(String),
}

/// POSTs `body` signed with `secret` to `url`, waiting at most `timeout`
/// to connect and as long again for the answer. `headers` are added.
pub fn post_signed(
    url: &str,
    secret: &str,
    body: &str,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Posted {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .redirects(0)
        .user_agent(concat!("regdesk/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut req = agent
        .post(url)
        .set("Content-Type", "application/json")
        .set(SIGNATURE_HEADER, &signature(secret, unix_now(), body));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let resp = match req.send_string(body) {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(ureq::Error::Transport(t)) => return Posted::Transport(t.to_string()),
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
            return Posted::Transport(format!("reading the answer: {e}"));
        }
    }
    Posted::Answer { status, body: text }
}

/// A short, single-line excerpt of an answer for `last_error`.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_string()
}

/// The webhook provider's settings.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
    pub max_attempts: i64,
    pub retry_base_ms: u64,
    pub timeout: Duration,
}

impl Webhook {
    /// The provider `--provider webhook` asks for, from a checked
    /// configuration (`Config::check`); its URL and secret are required.
    pub fn from_config(config: &Config) -> Result<Webhook> {
        let url = config.webhook_url.clone().ok_or_else(|| {
            Error::invalid("webhook_url", "--provider webhook needs --webhook-url")
        })?;
        let secret = config
            .webhook_secret
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    "webhook_secret",
                    "--provider webhook needs --webhook-secret",
                )
            })?;
        Ok(Webhook {
            url: url.trim().to_string(),
            secret,
            max_attempts: config.webhook_max_attempts,
            retry_base_ms: config.webhook_retry_base_ms,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
        })
    }
}

impl Provider for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    /// Never called: the ticker calls `External::call` outside any
    /// transaction instead (see `external`).
    fn fulfil(&self, _conn: &Connection, _req: &Request, _now: Millis) -> Result<Verdict> {
        Ok(Verdict::Unexpected {
            message: "the webhook provider is only called outside transactions".into(),
        })
    }

    /// A wait on the receiver has no end time: only an event or an operator
    /// closes it.
    fn wait_over(&self, _conn: &Connection, _req: &Request, _now: Millis) -> Result<Verdict> {
        Ok(Verdict::Wait {
            on: WaitingOn::Registry,
            until: None,
            note: "waiting for the receiver's event".into(),
        })
    }

    fn retry_delay(&self, attempts: i64) -> Millis {
        backoff(self.retry_base_ms, attempts, MAX_DELAY_MS)
    }

    fn max_attempts(&self) -> i64 {
        self.max_attempts
    }

    fn external(&self) -> Option<&dyn External> {
        Some(self)
    }
}

impl External for Webhook {
    /// The payload: the request as the API shows it, and an event id that
    /// stays the same across retries of one round of processing (the id of
    /// the transition that entered processing), so receivers can dedupe.
    fn prepare(&self, conn: &Connection, req: &Request, _now: Millis) -> Result<Value> {
        let request = view::request_json_read(conn, req)?;
        let entered: Option<i64> = conn
            .query_row(
                "select max(id) from transitions where request_id = ?1 and to_state = 'processing'
                 and (from_state is null or from_state != 'processing')",
                [req.id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        Ok(json!({
            "event_id": format!("evt_{}_{}", req.id, entered.unwrap_or(0)),
            "type": "request.fulfil",
            "attempt": req.attempts + 1,
            "request": request,
        }))
    }

    fn call(&self, payload: &Value, _now: Millis) -> Verdict {
        let body = payload.to_string();
        let event = payload["event_id"].as_str().unwrap_or_default().to_string();
        let headers = [("X-Regdesk-Event", event)];
        match post_signed(&self.url, &self.secret, &body, &headers, self.timeout) {
            Posted::Transport(e) => Verdict::Unexpected {
                message: format!("webhook {}: {e}", self.url),
            },
            Posted::Answer { status: 202, .. } => Verdict::Wait {
                on: WaitingOn::Registry,
                until: None,
                note: "the receiver answers later (202)".into(),
            },
            Posted::Answer { status, body } if (200..300).contains(&status) => {
                verdict_of(status, &body)
            }
            Posted::Answer { status, body } => Verdict::Unexpected {
                message: format!("webhook answered {status}: {}", excerpt(&body)),
            },
        }
    }
}

/// Reads `{"outcome": success|error|user_error|denied, "message"?, "field"?}`.
fn verdict_of(status: u16, body: &str) -> Verdict {
    let bad = |why: &str| Verdict::Unexpected {
        message: format!("webhook answered {status} {why}: {}", excerpt(body)),
    };
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return bad("without a JSON outcome");
    };
    let message = v["message"]
        .as_str()
        .map(|m| m.chars().take(1000).collect::<String>())
        .filter(|m| !m.trim().is_empty());
    let text = |default: &str| message.clone().unwrap_or_else(|| default.to_string());
    match v["outcome"].as_str() {
        Some("success") => Verdict::Accept,
        Some("error") => Verdict::Refuse {
            failure: Failure::Registry,
            message: text("the registry refused the request"),
        },
        Some("denied") => Verdict::Refuse {
            failure: Failure::Declined,
            message: text("the registry declined the request"),
        },
        Some("user_error") => {
            let field = v["field"]
                .as_str()
                .filter(|f| !f.is_empty() && f.len() <= 100)
                .unwrap_or("params")
                .to_string();
            Verdict::UserError {
                message: text(&format!("the registry refused {field}")),
                field,
            }
        }
        _ => bad("with an unknown outcome"),
    }
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

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = backoff(100, attempt, 10_000);
            let full = (100u64 << (attempt.min(31) - 1).min(30)).min(10_000) as i64;
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(verdict_of(200, r#"{"outcome":"success"}"#), Verdict::Accept);
        assert!(matches!(
            verdict_of(200, r#"{"outcome":"denied"}"#),
            Verdict::Refuse {
                failure: Failure::Declined,
                ..
            }
        ));
        assert!(matches!(
            verdict_of(200, r#"{"outcome":"user_error","field":"auth_code"}"#),
            Verdict::UserError { ref field, .. } if field == "auth_code"
        ));
        assert!(matches!(verdict_of(200, "ok"), Verdict::Unexpected { .. }));
        assert!(check_url("u", "http://127.0.0.1:9/x").is_ok());
        assert!(check_url("u", "https://example.net/").is_err());
        assert!(check_url("u", "http://").is_err());
        assert!(check_url("u", "ftp://x").is_err());
        // Hosts the sender could not parse are refused up front.
        assert!(check_url("u", "http://[").is_err());
        assert!(check_url("u", "http://[::1/x").is_err());
        assert!(check_url("u", "http://exa mple.net/").is_err());
        assert!(check_url("u", "http://[::1]:9/x").is_ok());
        assert!(check_url("u", "http://hooks.example.net:8080/in?x=1").is_ok());
        assert!(check_url("u", "http://hooks.example.net./in").is_ok());
        for bad in [
            "http://a*b.example/",
            "http://-a.example/",
            "http://a..b/",
            "http://a.b../x",
        ] {
            assert!(check_url("u", bad).is_err(), "{bad}");
        }
        // 2,000 characters as given: leading spaces count, and a character
        // of two bytes counts once.
        let long = |pad: &str, n: usize| format!("{pad}http://h.example/{}", "é".repeat(n));
        assert!(check_url("u", &long("", 2000 - 17)).is_ok());
        assert!(check_url("u", &long("", 2001 - 17)).is_err());
        assert!(check_url("u", &long("  ", 1999 - 17)).is_err());
    }
}
