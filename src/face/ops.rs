//! The operations endpoints: `POST /api/v1/admin/reset` (empty the desk for
//! the next test), `GET /metrics` (Prometheus text) and the OpenAPI document
//! of the native API.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::clock;
use crate::desk;
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::state::State;
use crate::store::accounts::Account;
use crate::App;

/// The OpenAPI 3 document of the native API, maintained by hand and kept
/// true by `tests/it/harness.rs` against `http::router::ROUTES`.
pub const OPENAPI: &str = include_str!("openapi.json");

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

/// `POST /api/v1/admin/reset`: back to an empty desk in one transaction
/// (see `desk::admin::reset`).
pub fn reset(app: &App, caller: &Account) -> Result<Resp> {
    let reset = desk::admin::reset(app, caller)?;
    Ok(Resp::json(
        200,
        &json!({
            "reset": true,
            "deleted": reset.deleted,
            "kept": { "operators": reset.operators },
            "clock": clock::format(app.clock.now()),
        }),
    ))
}

// ----- metrics ---------------------------------------------------------------

/// `GET /metrics`: Prometheus text. Needs an operator token unless
/// `--metrics-public`, since the counts tell how busy the desk is.
pub fn metrics(app: &App, req: &Req) -> Result<Resp> {
    if !app.config.metrics_public {
        let caller = app.bearer(req)?;
        if !caller.is_operator() {
            return Err(Error::Forbidden(
                "only operators may read the metrics (or start with --metrics-public)".into(),
            ));
        }
    }
    let now = app.clock.now();
    let c = desk::admin::counts(app, now)?;
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
