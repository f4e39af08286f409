//! The simulated registry's tables: its outcome rules (`sim_rules`, in
//! order, with the uses a counted rule has left) and the answers a rule's
//! latency holds back (`sim_deferred`). What the rules mean is the
//! registry's; this module only keeps them.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Millis;
use crate::error::Result;
use crate::store::Cached;

/// One row of `sim_rules`, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    /// Its place in the table: rules are asked in this order.
    pub position: i64,
    pub pattern: String,
    pub operation: String,
    pub outcome: String,
    /// The uses left (`None`: not counted).
    pub times: Option<i64>,
    /// How late the answer comes (0: at once).
    pub latency_ms: Millis,
    pub probability: Option<f64>,
}

/// An answer held back: its outcome (`None`: no rule applied) and when it
/// is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub outcome: Option<String>,
    pub answer_at: Millis,
}

/// The rules in order.
pub fn rules(conn: &Connection) -> Result<Vec<RuleRow>> {
    Ok(conn.all(
        "select position, pattern, operation, outcome, times, latency_ms, probability
         from sim_rules order by position",
        [],
        |r| {
            Ok(RuleRow {
                position: r.get(0)?,
                pattern: r.get(1)?,
                operation: r.get(2)?,
                outcome: r.get(3)?,
                times: r.get(4)?,
                latency_ms: r.get(5)?,
                probability: r.get(6)?,
            })
        },
    )?)
}

/// Replaces the whole rule table with `rules`.
pub fn replace_rules(conn: &Connection, rules: &[RuleRow]) -> Result<()> {
    conn.exec("delete from sim_rules", [])?;
    for rule in rules {
        conn.execute(
            "insert into sim_rules (position, pattern, operation, outcome, times, latency_ms, probability)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                rule.position,
                rule.pattern,
                rule.operation,
                rule.outcome,
                rule.times,
                rule.latency_ms,
                rule.probability
            ],
        )?;
    }
    Ok(())
}

/// Counts one use of the counted rule at `position`: the caller runs it in
/// the transaction of the outcome the rule decides.
pub fn use_rule(conn: &Connection, position: i64) -> Result<()> {
    conn.exec(
        "update sim_rules set times = times - 1 where position = ?1",
        [position],
    )?;
    Ok(())
}

/// The answer held back for `request_id`, if any.
pub fn held(conn: &Connection, request_id: i64) -> Result<Option<Held>> {
    Ok(conn
        .one(
            "select outcome, answer_at from sim_deferred where request_id = ?1",
            [request_id],
            |r| {
                Ok(Held {
                    outcome: r.get(0)?,
                    answer_at: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Holds `outcome` back for `request_id` until `answer_at`.
pub fn hold(conn: &Connection, request_id: i64, outcome: &str, answer_at: Millis) -> Result<()> {
    conn.exec(
        "insert into sim_deferred (request_id, outcome, answer_at) values (?1, ?2, ?3)",
        params![request_id, outcome, answer_at],
    )?;
    Ok(())
}

/// Forgets the answer held for `request_id`, once it is given.
pub fn release(conn: &Connection, request_id: i64) -> Result<()> {
    conn.exec(
        "delete from sim_deferred where request_id = ?1",
        [request_id],
    )?;
    Ok(())
}
