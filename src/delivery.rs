//! Notification webhooks: each account's optional endpoint, the delivery
//! log, and the thread that sends pending deliveries. A delivery row is
//! written in the transaction that writes its notification (`enqueue`), and
//! sent later outside any transaction, so a crash at any moment loses none:
//! what was not marked delivered is sent again (receivers dedupe by the
//! notification id). The FIFO queue stays the source of truth. Also the
//! `Worker` loop that the mail sender shares.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::{self, Clock, Millis};
use crate::config::Config;
use crate::db::Db;
use crate::doorbell::Doorbell;
use crate::error::{Error, RepeatedFailure, Result};
use crate::registry::webhook::{self, Posted};
use crate::store::notifications;

/// Deliveries sent per round at most.
const BATCH: usize = 32;
/// Rounds per `run_until_idle` at most, so that it always returns.
const MAX_ROUNDS: usize = 1000;

// ----- endpoints ---------------------------------------------------------------

/// An account's notification webhook.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
    #[serde(serialize_with = "ser_time")]
    pub updated_at: Millis,
}

fn ser_time<S: serde::Serializer>(ms: &Millis, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&clock::format(*ms))
}

fn ser_opt_time<S: serde::Serializer>(
    ms: &Option<Millis>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&clock::format(*ms)),
        None => s.serialize_none(),
    }
}

pub fn endpoint(conn: &Connection, account_id: i64) -> Result<Option<Endpoint>> {
    Ok(conn
        .query_row(
            "select url, secret, created_at, updated_at from webhook_endpoints where account_id = ?1",
            [account_id],
            |r| {
                Ok(Endpoint {
                    url: r.get(0)?,
                    secret: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Sets an account's endpoint. Pending deliveries follow it to the new URL.
pub fn put_endpoint(
    conn: &Connection,
    account_id: i64,
    url: &str,
    secret: &str,
    now: Millis,
) -> Result<Endpoint> {
    conn.execute(
        "insert into webhook_endpoints (account_id, url, secret, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?4)
         on conflict (account_id) do update set url = ?2, secret = ?3, updated_at = ?4",
        params![account_id, url, secret, now],
    )?;
    conn.execute(
        "update webhook_deliveries set url = ?1 where account_id = ?2 and state = 'pending'",
        params![url, account_id],
    )?;
    endpoint(conn, account_id)?.ok_or_else(|| Error::Internal("endpoint vanished".into()))
}

/// Removes an account's endpoint; its pending deliveries fail, kept in the
/// log. Says whether there was one.
pub fn delete_endpoint(conn: &Connection, account_id: i64, now: Millis) -> Result<bool> {
    let removed = conn.execute(
        "delete from webhook_endpoints where account_id = ?1",
        [account_id],
    )?;
    conn.execute(
        "update webhook_deliveries set state = 'failed', last_error = 'the endpoint was removed',
                next_attempt_at = ?1
         where account_id = ?2 and state = 'pending'",
        params![now, account_id],
    )?;
    Ok(removed > 0)
}

/// Queues notification `notification_id` for the account's endpoint, if it
/// has one. Called in the transaction that writes the notification.
pub fn enqueue(
    conn: &Connection,
    account_id: i64,
    notification_id: i64,
    now: Millis,
) -> Result<()> {
    conn.exec(
        "insert into webhook_deliveries (notification_id, account_id, url, next_attempt_at, created_at)
         select ?1, account_id, url, ?2, ?2 from webhook_endpoints where account_id = ?3",
        params![notification_id, now, account_id],
    )?;
    Ok(())
}

// ----- the log -------------------------------------------------------------------

/// One notification sent (or being sent) to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: i64,
    pub url: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub next_attempt_at: Option<Millis>,
    #[serde(serialize_with = "ser_opt_time")]
    pub delivered_at: Option<Millis>,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = r.get("state")?;
    Ok(Delivery {
        id: r.get("id")?,
        notification_id: r.get("notification_id")?,
        url: r.get("url")?,
        // Only a pending delivery has a next attempt.
        next_attempt_at: if state == "pending" {
            r.get("next_attempt_at")?
        } else {
            None
        },
        state,
        attempts: r.get("attempts")?,
        last_status: r.get("last_status")?,
        last_error: r.get("last_error")?,
        delivered_at: r.get("delivered_at")?,
        created_at: r.get("created_at")?,
    })
}

/// A page of an account's deliveries, oldest first, after the cursor.
pub fn list(
    conn: &Connection,
    account_id: i64,
    state: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<Delivery>, Option<i64>)> {
    // The page is cut while reading: a bound `limit ?` compiles the
    // statement again on every call (see `store::literal`).
    let mut stmt = conn.prepare_cached(
        "select * from webhook_deliveries where account_id = ?1 and id > ?2
         and (?3 is null or state = ?3) order by id",
    )?;
    let mut rows: Vec<Delivery> = stmt
        .query_map(params![account_id, after.unwrap_or(0), state], delivery_row)?
        .take(usize::try_from(limit + 1).unwrap_or(0))
        .collect::<rusqlite::Result<_>>()?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|d| d.id)
    } else {
        None
    };
    Ok((rows, next))
}

// ----- sending -------------------------------------------------------------------

/// How deliveries are retried.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry_base_ms: u64,
    pub max_attempts: i64,
    pub timeout: Duration,
}

impl Settings {
    /// From a checked configuration (`Config::check`).
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            retry_base_ms: config.webhook_retry_base_ms,
            max_attempts: config.delivery_max_attempts,
            timeout: Duration::from_millis(config.webhook_timeout_ms),
        }
    }
}

/// A due delivery with what it takes to send it.
struct Due {
    id: i64,
    url: String,
    secret: String,
    attempts: i64,
    body: String,
    notification_id: i64,
}

/// The deliveries due, cut to `BATCH` while reading: a bound `limit ?`
/// compiles the statement again on every call (see `store::literal`).
const DUE: &str = "select d.id, d.url, e.secret, d.attempts, d.notification_id
     from webhook_deliveries d join webhook_endpoints e on e.account_id = d.account_id
     where d.state = 'pending' and d.next_attempt_at <= ?1
     order by d.next_attempt_at, d.id";

fn due(conn: &Connection, now: Millis) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(DUE)?;
    let rows = stmt
        .query_map(params![now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .take(BATCH)
        .collect::<rusqlite::Result<Vec<(i64, String, String, i64, i64)>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, url, secret, attempts, notification_id) in rows {
        let n = notifications::get(conn, notification_id)?;
        out.push(Due {
            id,
            url,
            secret,
            attempts,
            body: serde_json::to_string(&n)?,
            notification_id,
        });
    }
    Ok(out)
}

/// Sends every due delivery once; says how many were tried.
fn round(db: &Db, clock: &Clock, settings: &Settings) -> Result<usize> {
    let now = clock.now();
    let batch = db.read_durable(move |conn| due(conn, now))?;
    let tried = batch.len();
    for d in batch {
        let headers = [
            ("X-Regdesk-Delivery", d.id.to_string()),
            ("X-Regdesk-Notification", d.notification_id.to_string()),
        ];
        let posted = webhook::post_signed(&d.url, &d.secret, &d.body, &headers, settings.timeout);
        let attempts = d.attempts + 1;
        let (status, error) = match posted {
            Posted::Answer { status, .. } if (200..300).contains(&status) => (Some(status), None),
            Posted::Answer { status, body } => (
                Some(status),
                Some(format!("answered {status}: {}", webhook::excerpt(&body))),
            ),
            Posted::Transport(e) => (None, Some(e)),
        };
        let now = clock.now();
        let next = now + webhook::backoff(settings.retry_base_ms, attempts, webhook::MAX_DELAY_MS);
        let state = match &error {
            None => "delivered",
            Some(_) if attempts >= settings.max_attempts => "failed",
            Some(_) => "pending",
        };
        if let Some(e) = &error {
            log::warn!("delivery {} to {} ({state}): {e}", d.id, d.url);
        }
        db.write(move |conn| {
            conn.execute(
                "update webhook_deliveries set state = ?1, attempts = ?2, last_status = ?3,
                        last_error = coalesce(?4, last_error), next_attempt_at = ?5,
                        delivered_at = case when ?1 = 'delivered' then ?6 end
                 where id = ?7 and state = 'pending'",
                params![state, attempts, status, error, next, now, d.id],
            )?;
            Ok(())
        })?;
    }
    Ok(tried)
}

/// The notification webhook sender.
pub fn worker(db: Db, clock: Clock, settings: Settings, interval: Duration) -> Arc<Worker> {
    let round_clock = clock.clone();
    Worker::new(
        "regdesk-delivery",
        clock,
        interval,
        Box::new(move || round(&db, &round_clock, &settings)),
    )
}

// ----- the sender loop ---------------------------------------------------------------

type Round = Box<dyn Fn() -> Result<usize> + Send + Sync>;

/// A background sender: a thread that runs its round until nothing is due,
/// then sleeps for its interval or until woken. Like the ticker, it idles
/// while the test clock is frozen; `run_until_idle` drives it directly.
pub struct Worker {
    name: &'static str,
    clock: Clock,
    interval: Duration,
    round: Round,
    /// One round at a time, whoever runs it, so nothing is sent twice.
    running: Mutex<()>,
    bell: Doorbell,
}

impl Worker {
    pub fn new(name: &'static str, clock: Clock, interval: Duration, round: Round) -> Arc<Worker> {
        Arc::new(Worker {
            name,
            clock,
            interval,
            round,
            running: Mutex::new(()),
            bell: Doorbell::new(),
        })
    }

    /// Runs rounds until one finds nothing due (bounded); returns how many
    /// sends were tried.
    pub fn run_until_idle(&self) -> Result<usize> {
        let _guard = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0;
        for _ in 0..MAX_ROUNDS {
            if self.bell.stopped() {
                break;
            }
            let tried = (self.round)()?;
            total += tried;
            if tried == 0 {
                break;
            }
        }
        Ok(total)
    }

    pub fn spawn(self: &Arc<Self>) -> Result<JoinHandle<()>> {
        let me = self.clone();
        Ok(thread::Builder::new()
            .name(self.name.into())
            .spawn(move || me.thread_loop())?)
    }

    fn thread_loop(&self) {
        let mut failures = RepeatedFailure::new(module_path!());
        while !self.bell.stopped() {
            if !self.clock.is_frozen() {
                match self.run_until_idle() {
                    Ok(_) => failures.succeeded(format_args!("{} works", self.name)),
                    Err(Error::Unavailable(_)) => {}
                    Err(e) => {
                        failures.failed(self.name, &e);
                    }
                }
            }
            self.bell.wait(self.interval);
        }
    }

    /// Asks the thread to send now rather than at the next interval.
    pub fn wake(&self) {
        self.bell.ring();
    }

    /// Asks the thread to stop after the send in progress.
    pub fn stop(&self) {
        self.bell.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_senders_due_queries_are_compiled_once() {
        crate::store::assert_compiled_once(DUE, |conn, now| {
            due(conn, now).unwrap();
        });
        crate::store::assert_compiled_once(crate::mail::DUE, |conn, now| {
            crate::mail::due(conn, now).unwrap();
        });
    }
}
