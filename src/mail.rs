//! The mail sender: a thread that sends the outbox (`mail` table) over SMTP
//! when `--smtp-url` is given. Every message stays in the outbox with its
//! state: `pending` until the server accepts it (`sent`), retried with
//! backoff, `failed` only after `--mail-max-attempts` tries. A crash between
//! the server's acceptance and the write of `sent` sends it again, with the
//! same `Message-ID` so that mail clients show it once.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};
use rusqlite::{params, Connection};

use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::db::Db;
use crate::delivery::Worker;
use crate::error::{Error, Result};
use crate::registry::webhook;

/// Messages sent per round at most.
const BATCH: usize = 16;

/// Where `smtp://HOST[:PORT]` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
}

/// Parses `smtp://HOST[:PORT]` (port 25 by default; plain SMTP, no TLS).
pub fn parse_url(url: &str) -> Result<Smtp> {
    let field = "smtp_url";
    let rest = url.trim().strip_prefix("smtp://").ok_or_else(|| {
        Error::invalid(field, format!("{url:?} is not an smtp://HOST[:PORT] URL"))
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(Error::invalid(
            field,
            "give only smtp://HOST[:PORT] (no path, no credentials)",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| Error::invalid(field, "an IPv6 address needs its closing ]"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(Error::invalid(field, "names no host"));
    }
    let port = match port {
        None => 25,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::invalid(field, format!("{p:?} is not a port")))?,
    };
    Ok(Smtp {
        host: host.to_string(),
        port,
    })
}

/// Parses the sender address given in `--mail-from`.
pub fn parse_from(from: &str) -> Result<Mailbox> {
    from.parse::<Mailbox>()
        .map_err(|e| Error::invalid("mail_from", format!("{from:?} is not an address: {e}")))
}

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
            smtp: parse_url(url)?,
            from: parse_from(&config.mail_from)?,
            retry_base_ms: config.mail_retry_base_ms,
            max_attempts: config.mail_max_attempts,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
        }))
    }
}

pub(crate) struct Due {
    id: i64,
    recipient: String,
    subject: String,
    body: String,
    attempts: i64,
}

pub(crate) const DUE: &str = "select id, recipient, subject, body, attempts from mail
     where state = 'pending' and (next_attempt_at is null or next_attempt_at <= ?1)
     order by id";

pub(crate) fn due(conn: &Connection, now: Millis) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(DUE)?;
    // Cut while reading: a bound `limit ?` compiles the statement again on
    // every call (see `store::literal`).
    let rows = stmt.query_map(params![now], |r| {
        Ok(Due {
            id: r.get(0)?,
            recipient: r.get(1)?,
            subject: r.get(2)?,
            body: r.get(3)?,
            attempts: r.get(4)?,
        })
    })?;
    Ok(rows.take(BATCH).collect::<rusqlite::Result<_>>()?)
}

/// The message for one outbox row; an error here never passes with time.
fn message(settings: &Settings, m: &Due) -> std::result::Result<Message, String> {
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

/// Sends every due message once; says how many were tried.
fn round(db: &Db, clock: &Clock, settings: &Settings) -> Result<usize> {
    let now = clock.now();
    let batch = db.read_durable(move |conn| due(conn, now))?;
    if batch.is_empty() {
        return Ok(0);
    }
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
                Some(
                    now + webhook::backoff(settings.retry_base_ms, attempts, webhook::MAX_DELAY_MS),
                ),
            ),
        };
        if let Some(e) = &error {
            log::warn!("mail {} to {} ({state}): {e}", m.id, m.recipient);
        }
        let id = m.id;
        db.write(move |conn| {
            conn.execute(
                "update mail set state = ?1, attempts = ?2, last_error = coalesce(?3, last_error),
                        next_attempt_at = ?4, sent_at = case when ?1 = 'sent' then ?5 end
                 where id = ?6 and state = 'pending'",
                params![state, attempts, error, next, now, id],
            )?;
            Ok(())
        })?;
    }
    Ok(tried)
}

/// The SMTP sender.
pub fn worker(db: Db, clock: Clock, settings: Settings, interval: Duration) -> Arc<Worker> {
    let round_clock = clock.clone();
    Worker::new(
        "regdesk-mail",
        clock,
        interval,
        Box::new(move || round(&db, &round_clock, &settings)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let ok = |url: &str, host: &str, port: u16| {
            assert_eq!(
                parse_url(url).unwrap(),
                Smtp {
                    host: host.into(),
                    port
                },
                "{url}"
            )
        };
        ok("smtp://mail.example.net", "mail.example.net", 25);
        ok("smtp://127.0.0.1:2525", "127.0.0.1", 2525);
        ok("smtp://127.0.0.1:2525/", "127.0.0.1", 2525);
        ok("smtp://[::1]:2525", "::1", 2525);
        for bad in [
            "http://x",
            "smtp://",
            "smtp://:25",
            "smtp://h:0",
            "smtp://h:99999",
            "smtp://u:p@h",
            "smtp://h/x",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert_eq!(e.field(), Some("smtp_url"), "{bad}");
        }
    }
}
