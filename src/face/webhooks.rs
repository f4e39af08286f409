//! The native JSON API of notification webhooks: the caller's endpoint
//! (`PUT/GET/DELETE /api/v1/webhook`) and its delivery log
//! (`GET /api/v1/webhook-deliveries`).

use serde_json::json;

use crate::desk::webhooks;
use crate::error::{Error, Result};
use crate::face::json_args::{after, body_object, limit, only_keys, opt_str, req_str};
use crate::http::{Req, Resp};
use crate::random;
use crate::store::accounts::Account;
use crate::App;

/// Secrets given by the caller are at least this long.
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;

/// `PUT /webhook` `{url, secret?}`: sets the caller's endpoint. A secret is
/// generated when none is given, and shown in this answer only.
pub fn put(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["url", "secret"])?;
    let url = req_str(&body, "url")?;
    let given = opt_str(&body, "secret")?;
    if let Some(s) = &given {
        let n = s.chars().count();
        if !(MIN_SECRET..=MAX_SECRET).contains(&n) || s.chars().any(char::is_control) {
            return Err(Error::invalid(
                "secret",
                format!("must be {MIN_SECRET} to {MAX_SECRET} printable characters"),
            ));
        }
    }
    let generated = given
        .is_none()
        .then(|| format!("whsec_{}", random::hex(24)));
    let secret = given.or_else(|| generated.clone()).unwrap_or_default();
    let endpoint = webhooks::set(app, caller, url, secret)?;
    let mut v = serde_json::to_value(&endpoint)?;
    if let Some(secret) = generated {
        v["secret"] = json!(secret);
    }
    Ok(Resp::json(200, &v))
}

/// `GET /webhook`: the caller's endpoint, without its secret.
pub fn get(app: &App, caller: &Account) -> Result<Resp> {
    match webhooks::get(app, caller)? {
        Some(endpoint) => Ok(Resp::json(200, &endpoint)),
        None => Err(Error::not_found("webhook (none is set)")),
    }
}

/// `DELETE /webhook`: no more pushes; pending deliveries are marked failed.
/// Repeating it is harmless.
pub fn delete(app: &App, caller: &Account) -> Result<Resp> {
    webhooks::remove(app, caller)?;
    Ok(Resp::empty(204))
}

/// `GET /webhook-deliveries?state=&after=&limit=`: the caller's delivery
/// log, oldest first.
pub fn deliveries(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let state = match req.query("state") {
        None => None,
        Some(s @ ("pending" | "delivered" | "failed")) => Some(s.to_string()),
        Some(other) => {
            return Err(Error::invalid(
                "state",
                format!("{other:?} is not pending, delivered or failed"),
            ))
        }
    };
    let (limit, after) = (limit(req)?, after(req)?);
    let (items, next) = webhooks::deliveries(app, caller, state, after, limit)?;
    let value = json!({ "items": items, "next": next.map(|n| n.to_string()) });
    Ok(Resp::json(200, &value))
}
