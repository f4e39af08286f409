//! The operations' SQL: emptying the desk for a reset, and the counts
//! `/metrics` shows.

use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::store::in_savepoint;

/// Tables a reset keeps: operators sign in with these, and the migrations'
/// own record.
const KEPT_TABLES: &[&str] = &["accounts", "tokens", "refinery_schema_history", "epp_tls"];

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Empties every table but the kept ones, and removes customer accounts.
/// Generic over the schema so that tables added later are emptied too.
pub fn wipe(conn: &Connection) -> Result<Map<String, Value>> {
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

/// How many operators there are.
pub fn operators(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "select count(*) from accounts where role = 'operator'",
        [],
        |r| r.get::<_, i64>(0),
    )?)
}

/// What `/metrics` reads from the database.
pub struct Counts {
    pub by_state: Vec<(String, i64)>,
    pub queue_depth: i64,
    /// When the longest-due queued request fell due.
    pub oldest_due: Option<Millis>,
}

pub fn counts(conn: &Connection, now: Millis) -> Result<Counts> {
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
        by_state: super::requests::count_by_state(conn)?,
        queue_depth,
        oldest_due,
    })
}
