//! The operations endpoints: `POST /api/v1/admin/reset` (empty the desk for
//! the next test), `GET /metrics` (Prometheus text) and the OpenAPI document
//! of the native API.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};

use crate::clock::{self, Millis};
use crate::error::{Error, Result};
use crate::http::router::bearer;
use crate::http::{Req, Resp};
use crate::random;
use crate::state::State;
use crate::store::accounts::Account;
use crate::store::in_savepoint;
use crate::store::requests;
use crate::App;

/// The OpenAPI 3 document of the native API, maintained by hand and kept
/// true by `tests/it/harness.rs` against `http::router::ROUTES`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Tables a reset keeps: operators sign in with these, and the migrations'
/// own record.
const KEPT_TABLES: &[&str] = &["accounts", "tokens", "refinery_schema_history"];

pub fn openapi() -> Resp {
    Resp::new(200, "application/json", OPENAPI)
}

/// The query parameters the document gives the operation `method` on
/// `pattern` (a path of `ROUTES`, `{param}` segments and all), read from
/// the document once.
pub fn query_parameters(method: &str, pattern: &str) -> Vec<&'static str> {
    static TAKEN: OnceLock<HashMap<(String, String), Vec<String>>> = OnceLock::new();
    let taken = TAKEN.get_or_init(|| {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        let shared = &doc["components"]["parameters"];
        let mut taken = HashMap::new();
        // A parameter given on the path applies to each of its operations.
        let query_names = |parameters: &Value| -> Vec<String> {
            parameters
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match p["$ref"].as_str() {
                    Some(r) => &shared[r.rsplit('/').next().unwrap_or_default()],
                    None => p,
                })
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        };
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let on_path = query_names(&item["parameters"]);
            for (verb, operation) in item.as_object().into_iter().flatten() {
                if verb == "parameters" {
                    continue;
                }
                let mut names = on_path.clone();
                names.extend(query_names(&operation["parameters"]));
                taken.insert((verb.to_ascii_uppercase(), path.clone()), names);
            }
        }
        taken
    });
    taken
        .get(&(method.to_string(), pattern.to_string()))
        .map(|names| names.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

// ----- reset -----------------------------------------------------------------

/// `POST /api/v1/admin/reset`: back to an empty desk in one transaction.
/// Operator accounts and their tokens survive; everything else (customers,
/// requests, domains, notifications, events, mail, invoice items,
/// idempotency keys, simulated-registry rules) goes. The test clock returns
/// to the real time, running, and `--seed` starts over.
pub fn reset(app: &App, caller: &Account) -> Result<Resp> {
    if !caller.is_operator() {
        return Err(Error::Forbidden("only operators may reset the desk".into()));
    }
    if !(app.clock.is_test() || app.config.allow_reset) {
        return Err(Error::Conflict(
            "reset is off: start regdesk with --allow-reset (or --test-clock) to allow it".into(),
        ));
    }
    // No tick may run between emptying the tables and moving the clock back.
    let deleted = app.ticker.exclusive(|| -> Result<Map<String, Value>> {
        let deleted = app.db.write(wipe)?;
        // Customers' accounts and tokens are gone.
        app.tokens.clear();
        if app.clock.is_test() {
            app.clock.reset()?;
        }
        if let Some(seed) = app.config.seed {
            random::seed(seed);
        }
        Ok(deleted)
    })?;
    let operators = app.db.read(|conn| {
        Ok(conn.query_row(
            "select count(*) from accounts where role = 'operator'",
            [],
            |r| r.get::<_, i64>(0),
        )?)
    })?;
    log::warn!("the desk was reset");
    Ok(Resp::json(
        200,
        &json!({
            "reset": true,
            "deleted": deleted,
            "kept": { "operators": operators },
            "clock": clock::format(app.clock.now()),
        }),
    ))
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Empties every table but the kept ones, and removes customer accounts.
/// Generic over the schema so that tables added later are emptied too.
fn wipe(conn: &Connection) -> Result<Map<String, Value>> {
    let mut stmt = conn.prepare(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'
         order by name",
    )?;
    let mut pending: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?
        .into_iter()
        .filter(|t| !KEPT_TABLES.contains(&t.as_str()))
        .collect();
    drop(stmt);
    // The append-only triggers guard the audit log against edits; a reset
    // removes the log as a whole, so they are lifted inside this transaction
    // and put back exactly as they were.
    let mut stmt = conn.prepare(
        "select name, sql from sqlite_master where type = 'trigger' and sql is not null
         order by name",
    )?;
    let triggers: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    for (name, _) in &triggers {
        conn.execute_batch(&format!("drop trigger {}", quoted(name)))?;
    }
    let mut deleted = Map::new();
    // Foreign keys decide the order; rather than keep a list in step with
    // the schema, delete what can be deleted until nothing is left.
    for _ in 0..=pending.len() {
        if pending.is_empty() {
            break;
        }
        let mut left = Vec::new();
        for table in pending {
            let sql = format!("delete from {}", quoted(&table));
            match in_savepoint(conn, "wipe_table", || Ok(conn.execute(&sql, [])?))? {
                Ok(n) => {
                    deleted.insert(table, json!(n));
                }
                Err(_) => left.push(table),
            }
        }
        pending = left;
    }
    if !pending.is_empty() {
        return Err(Error::Internal(format!(
            "reset could not empty {}",
            pending.join(", ")
        )));
    }
    conn.execute(
        "delete from tokens where account_id in (select id from accounts where role <> 'operator')",
        [],
    )?;
    let customers = conn.execute("delete from accounts where role <> 'operator'", [])?;
    deleted.insert("customer_accounts".into(), json!(customers));
    for (_, sql) in &triggers {
        conn.execute_batch(sql)?;
    }
    Ok(deleted)
}

// ----- metrics ---------------------------------------------------------------

/// What `/metrics` reads from the database.
struct Counts {
    by_state: Vec<(String, i64)>,
    queue_depth: i64,
    /// When the longest-due queued request fell due.
    oldest_due: Option<Millis>,
}

fn counts(conn: &Connection, now: Millis) -> Result<Counts> {
    // "Due" as the ticker's claim sees it: exec date reached and the
    // dependency (if any) finished. It fell due when it was queued or at its
    // exec date, whichever is later.
    let (queue_depth, oldest_due) = conn.query_row(
        "select count(*), min(max(coalesce(r.exec_date, 0), r.updated_at)) from requests r
         where r.state = 'queued' and (r.exec_date is null or r.exec_date <= ?1)
           and (r.depends_on is null
                or exists (select 1 from requests d where d.id = r.depends_on and d.state = 'finished'))",
        params![now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Counts {
        by_state: requests::count_by_state(conn)?,
        queue_depth,
        oldest_due,
    })
}

/// `GET /metrics`: Prometheus text. Needs an operator token unless
/// `--metrics-public`, since the counts tell how busy the desk is.
pub fn metrics(app: &App, req: &Req) -> Result<Resp> {
    if !app.config.metrics_public {
        let caller = bearer(app, req)?;
        if !caller.is_operator() {
            return Err(Error::Forbidden(
                "only operators may read the metrics (or start with --metrics-public)".into(),
            ));
        }
    }
    let now = app.clock.now();
    let c = app.db.read(move |conn| counts(conn, now))?;
    let mut out = String::new();
    out.push_str("# HELP regdesk_requests Work requests by state.\n");
    out.push_str("# TYPE regdesk_requests gauge\n");
    for state in State::ALL {
        let n = c
            .by_state
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "regdesk_requests{{state=\"{state}\"}} {n}");
    }
    let lag = c
        .oldest_due
        .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
    let ticker = &app.ticker.stats;
    let stats = app.db.stats();
    let gauges: [(&str, &str, &str, String); 11] = [
        (
            "regdesk_queue_depth",
            "gauge",
            "Queued requests that are due.",
            c.queue_depth.to_string(),
        ),
        (
            "regdesk_tick_lag_seconds",
            "gauge",
            "How long the longest-due queued request has waited.",
            lag.to_string(),
        ),
        (
            "regdesk_ticker_ticks_total",
            "counter",
            "Ticks run.",
            ticker.ticks.load(Ordering::Relaxed).to_string(),
        ),
        (
            "regdesk_ticker_progressed_total",
            "counter",
            "Requests the ticker moved on.",
            ticker.progressed.load(Ordering::Relaxed).to_string(),
        ),
        (
            "regdesk_ticker_running",
            "gauge",
            "1 while the ticker thread runs.",
            u8::from(ticker.running.load(Ordering::Relaxed)).to_string(),
        ),
        (
            "regdesk_db_commits_total",
            "counter",
            "Transactions the writer committed.",
            stats.commits.load(Ordering::Relaxed).to_string(),
        ),
        (
            "regdesk_db_writes_total",
            "counter",
            "Writes the writer ran (several share a commit).",
            stats.writes.load(Ordering::Relaxed).to_string(),
        ),
        (
            "regdesk_db_syncs_total",
            "counter",
            "Syncs of the database to disk (several commits share one).",
            stats.syncs.load(Ordering::Relaxed).to_string(),
        ),
        (
            "regdesk_db_wal_bytes",
            "gauge",
            "Size of the WAL file at the last checkpoint.",
            stats.wal_bytes.load(Ordering::Relaxed).to_string(),
        ),
        (
            "regdesk_db_checkpoints_blocked",
            "gauge",
            "Checkpoints in a row that could not copy the WAL back while it was over its bound.",
            stats
                .checkpoints_blocked
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        (
            "regdesk_uptime_seconds",
            "gauge",
            "Seconds since start.",
            app.started.elapsed().as_secs().to_string(),
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    app.metrics.render(&mut out);
    Ok(Resp::new(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        out,
    ))
}
