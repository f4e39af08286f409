//! Notification webhooks: each notification pushed, signed, to its
//! account's endpoint, in order, retried with `backoff` until delivered or
//! `--delivery-max-attempts` tries have failed. The FIFO queue stays the
//! source of truth; receivers dedupe by the notification id. What the
//! account sees of a failure is the status code or a short fixed reason,
//! never the receiver's words or the socket's error text (those go to the
//! log).

use std::time::Duration;

use super::http::{self, Call, Posted, Reach};
use super::{address, backoff};
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::db::Db;
use crate::error::Result;
use crate::store::deliveries::{self, Due, Outcome};

/// Deliveries one endpoint's job sends in a row before its thread goes
/// back to the pool.
const RUN: usize = 16;

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry_base_ms: u64,
    pub max_attempts: i64,
    pub timeout: Duration,
    pub reach: Reach,
}

impl Settings {
    /// From a checked configuration (`Config::check`).
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            retry_base_ms: config.webhook_retry_base_ms,
            max_attempts: config.delivery_max_attempts,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
            reach: match config.allow_private_webhooks {
                true => Reach::Any,
                false => Reach::Public,
            },
        }
    }
}

/// Checks an endpoint URL a customer gives: a plain `http://` URL, no user
/// name or password, and (unless `allow_private`) a public address.
pub fn check_endpoint(url: &str, allow_private: bool) -> Result<()> {
    let parsed = config::check_http_url("url", url)?;
    address::check_host(&parsed, allow_private)
}

/// Sends `first` and, while they are delivered, the endpoint's next due
/// deliveries (a bounded run); returns how many were tried.
pub(super) fn send(db: &Db, clock: &Clock, settings: &Settings, first: Due) -> Result<usize> {
    let mut d = first;
    let mut tried = 0;
    loop {
        let delivered = send_one(db, clock, settings, &d)?;
        tried += 1;
        if !delivered || tried >= RUN {
            return Ok(tried);
        }
        let (account, after, now) = (d.account_id, d.id, clock.now());
        match db.read_durable(move |conn| deliveries::next_due(conn, account, after, now))? {
            Some(next) => d = next,
            None => return Ok(tried),
        }
    }
}

/// Sends one delivery and writes its outcome; says whether it was
/// delivered.
fn send_one(db: &Db, clock: &Clock, settings: &Settings, d: &Due) -> Result<bool> {
    let headers = [
        ("X-Regdesk-Delivery", d.id.to_string()),
        ("X-Regdesk-Notification", d.notification_id.to_string()),
    ];
    let posted = http::post_signed(&Call {
        url: &d.url,
        secret: &d.secret,
        body: &d.body,
        headers: &headers,
        timeout: settings.timeout,
        reach: settings.reach,
    });
    let (status, failure) = match posted {
        Posted::Answer { status, .. } if (200..300).contains(&status) => (Some(status), None),
        Posted::Answer { status, body } => (
            Some(status),
            Some((format!("HTTP {status}"), http::excerpt(&body))),
        ),
        Posted::Failed { reason, detail } => (None, Some((reason.to_string(), detail))),
    };
    let attempts = d.attempts + 1;
    let state = match &failure {
        None => "delivered",
        Some(_) if attempts >= settings.max_attempts => "failed",
        Some(_) => "pending",
    };
    if let Some((reason, detail)) = &failure {
        log::warn!(
            "delivery {} to {} ({state}): {reason}: {detail}",
            d.id,
            d.url
        );
    }
    let now = clock.now();
    let outcome = Outcome {
        state,
        attempts,
        status,
        error: failure.map(|(reason, _)| reason),
        next_attempt_at: now + backoff(settings.retry_base_ms, attempts),
    };
    let id = d.id;
    db.write(move |conn| deliveries::record(conn, id, &outcome, now))?;
    Ok(state == "delivered")
}
