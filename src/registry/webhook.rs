//! The webhook provider: each claimed request is POSTed as signed JSON to
//! the operator's URL (the outbox's bounded call, to any address), and the
//! answer decides its fate.

use std::time::Duration;

use serde_json::{json, Value};

use super::{External, Provider, Verdict};
use crate::clock::Millis;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::outbox::backoff;
use crate::outbox::http::{excerpt, post_signed, Call, Posted, Reach};
use crate::state::{Failure, WaitingOn};
use crate::store::requests::{self, Request};
use crate::store::{view, Connection};

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
        backoff(self.retry_base_ms, attempts)
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
    fn payload(&self, conn: &Connection, req: &Request, _now: Millis) -> Result<Value> {
        let request = view::request_json_read(conn, req)?;
        let entered = requests::entered_processing(conn, req.id)?;
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
        let posted = post_signed(&Call {
            url: &self.url,
            secret: &self.secret,
            body: &body,
            headers: &headers,
            timeout: self.timeout,
            reach: Reach::Any,
        });
        match posted {
            Posted::Failed { detail, .. } => Verdict::Unexpected {
                message: format!("webhook {}: {detail}", self.url),
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
    }
}
