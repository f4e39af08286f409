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
