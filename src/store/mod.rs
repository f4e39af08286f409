//! SQL for everything regdesk keeps: one module per kind of row. Every
//! function takes a `&Connection` so it can run on a reader or inside the
//! writer's transaction.

pub mod accounts;
pub mod domains;
pub mod notifications;
pub mod order_events;
pub mod requests;
pub mod transition;

use rusqlite::types::FromSql;
use rusqlite::Row;
use std::str::FromStr;

/// Reads a column holding one of the `string_enum!` values.
pub(crate) fn enum_col<T: FromStr>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unexpected value {text:?} in column {idx}").into(),
        )
    })
}

/// Reads a nullable column holding one of the `string_enum!` values.
pub(crate) fn opt_enum_col<T: FromStr>(row: &Row<'_>, idx: &str) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| {
        t.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unexpected value {t:?} in column {idx}").into(),
            )
        })
    })
    .transpose()
}

/// Reads a column holding JSON text.
pub(crate) fn json_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// `row.get` for optional columns, named for readability at call sites.
pub(crate) fn opt<T: FromSql>(row: &Row<'_>, idx: &str) -> rusqlite::Result<Option<T>> {
    row.get(idx)
}

/// `execute` and `query_row` through the connection's statement cache: the
/// hot paths run the same few statements thousands of times a second, and
/// compiling them each time was a third of the writer's time.
pub trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for rusqlite::Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
