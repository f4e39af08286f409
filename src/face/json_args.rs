//! The JSON arguments every JSON endpoint reads: the body as an object,
//! typed fields, path ids, and a list's `limit` and `after`. A helper of
//! the JSON faces, not a face.

use serde_json::{Map, Value};

use crate::error::{quoted, Error, Result};
use crate::form;
use crate::http::Req;
use crate::store::requests;

/// The body as a JSON object; an empty body is an empty object.
pub fn body_object(req: &Req) -> Result<Map<String, Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Error::Malformed(format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::Malformed("the body must be a JSON object".into())),
    }
}

pub fn opt_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(field, "must be a string")),
    }
}

pub fn req_str(obj: &Map<String, Value>, field: &str) -> Result<String> {
    opt_str(obj, field)?.ok_or_else(|| Error::invalid(field, "is required"))
}

pub fn opt_i64(obj: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => form::whole_number(v)
            .map(Some)
            .ok_or_else(|| Error::invalid(field, "must be a whole number")),
    }
}

pub fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(field, "must be true or false")),
    }
}

/// Refuses keys that a body does not know, naming the first.
pub fn only_keys(obj: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::invalid(k.as_str(), "unknown field")),
        None => Ok(()),
    }
}

/// A bounded free text (annotations, reasons).
pub fn text(field: &str, value: String, required: bool) -> Result<Option<String>> {
    let trimmed = value.trim().to_string();
    if trimmed.is_empty() {
        return if required {
            Err(Error::invalid(field, "is required and cannot be blank"))
        } else {
            Ok(None)
        };
    }
    if trimmed.chars().count() > form::MAX_TEXT {
        return Err(Error::invalid(
            field,
            format!("longer than {} characters", form::MAX_TEXT),
        ));
    }
    Ok(Some(trimmed))
}

/// Parses a path segment that is an id.
pub fn id_segment(what: &str, seg: &str) -> Result<i64> {
    seg.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::not_found(format!("{what} {seg:?}")))
}

pub fn query_i64(req: &Req, name: &str) -> Result<Option<i64>> {
    req.query(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::invalid(name, format!("{} is not a whole number", quoted(v))))
        })
        .transpose()
}

/// The `limit` of a list (1 to `MAX_LIMIT`, `DEFAULT_LIMIT` when not given).
pub fn limit(req: &Req) -> Result<i64> {
    match query_i64(req, "limit")? {
        None => Ok(requests::DEFAULT_LIMIT),
        Some(n) if (1..=requests::MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid(
            "limit",
            format!("must be 1 to {}", requests::MAX_LIMIT),
        )),
    }
}

/// The `after` cursor of a list: the `next` of the page before.
pub fn after(req: &Req) -> Result<Option<i64>> {
    match query_i64(req, "after")? {
        Some(n) if n < 0 => Err(Error::invalid("after", "must not be negative")),
        other => Ok(other),
    }
}

pub fn list_of<T: std::str::FromStr>(name: &str, raw: Option<&str>, what: &str) -> Result<Vec<T>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| Error::invalid(name, format!("{} is not a {what}", quoted(s))))
        })
        .collect()
}

/// A CSV field: always quoted, and a leading `= + - @` neutralised so that
/// a spreadsheet does not read it as a formula.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}
