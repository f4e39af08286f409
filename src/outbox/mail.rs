//! Mail: the outbox (`mail` table) sent over SMTP when `--smtp-url` is
//! given. Every message stays in the outbox with its state: `pending` until
//! the server accepts it (`sent`), retried with `backoff`, `failed` only
//! after `--mail-max-attempts` tries. A crash between the server's
//! acceptance and the write of `sent` sends it again, with the same
//! `Message-ID` so that mail clients show it once. The SMTP server is one
//! endpoint of the outbox: one batch at a time.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};

use super::backoff;
use crate::clock::Clock;
use crate::config::{self, Config, Smtp};
use crate::db::Db;
use crate::error::Result;
use crate::store::deliveries::{self, DueMail};

/// Messages one job sends at most.
pub(super) const BATCH: usize = 16;

/// How mail is sent.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smtp: Smtp,
    pub from: Mailbox,
    pub retry_base_ms: u64,
    pub max_attempts: i64,
    pub timeout: Duration,
}

impl Settings {
    /// The SMTP sender's settings, or `None` without `--smtp-url` (mail then
    /// waits in the outbox).
    pub fn from_config(config: &Config) -> Result<Option<Settings>> {
        let Some(url) = &config.smtp_url else {
            return Ok(None);
        };
        Ok(Some(Settings {
            smtp: config::smtp_url(url)?,
            from: config::mail_from(&config.mail_from)?,
            retry_base_ms: config.mail_retry_base_ms,
            max_attempts: config.mail_max_attempts,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
        }))
    }
}

/// The message for one outbox row; an error here never passes with time.
fn message(settings: &Settings, m: &DueMail) -> std::result::Result<Message, String> {
    let to = m
        .recipient
        .parse::<Mailbox>()
        .map_err(|e| format!("recipient {:?}: {e}", m.recipient))?;
    let domain = settings.from.email.domain().to_string();
    Message::builder()
        .from(settings.from.clone())
        .to(to)
        .subject(m.subject.clone())
        .message_id(Some(format!("<regdesk-mail-{}@{domain}>", m.id)))
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.clone())
        .map_err(|e| format!("building the message: {e}"))
}

/// What became of one message.
enum Outcome {
    Sent,
    Retry(String),
    Hopeless(String),
}

/// Sends a batch of due messages; says how many were tried.
pub(super) fn send(
    db: &Db,
    clock: &Clock,
    settings: &Settings,
    batch: Vec<DueMail>,
) -> Result<usize> {
    let transport = SmtpTransport::builder_dangerous(settings.smtp.host.as_str())
        .port(settings.smtp.port)
        .timeout(Some(settings.timeout))
        .build();
    let tried = batch.len();
    for m in batch {
        let outcome = match message(settings, &m) {
            Err(e) => Outcome::Hopeless(e),
            Ok(msg) => match transport.send(&msg) {
                Ok(_) => Outcome::Sent,
                // A permanent refusal (5xx) of a message may still pass once
                // the server is fixed; it counts as an attempt like the rest.
                Err(e) => Outcome::Retry(e.to_string()),
            },
        };
        let attempts = m.attempts + 1;
        let now = clock.now();
        let (state, error, next) = match outcome {
            Outcome::Sent => ("sent", None, None),
            Outcome::Hopeless(e) => ("failed", Some(e), None),
            Outcome::Retry(e) if attempts >= settings.max_attempts => ("failed", Some(e), None),
            Outcome::Retry(e) => (
                "pending",
                Some(e),
                Some(now + backoff(settings.retry_base_ms, attempts)),
            ),
        };
        if let Some(e) = &error {
            log::warn!("mail {} to {} ({state}): {e}", m.id, m.recipient);
        }
        let id = m.id;
        db.write(move |conn| {
            deliveries::record_mail(conn, id, state, attempts, error.as_deref(), next, now)
        })?;
    }
    Ok(tried)
}
