//! A customer's notification webhook: the endpoint the outbox pushes to and
//! the log of what it delivered.

use crate::error::Result;
use crate::outbox::webhooks::check_endpoint;
use crate::store::accounts::Account;
use crate::store::deliveries::{self, Delivery, Endpoint};
use crate::App;

/// Sets the caller's endpoint (one per account), replacing any before it:
/// a plain `http://` URL without user info, to a public address unless the
/// server allows private ones (`outbox::webhooks::check_endpoint`).
pub fn set(app: &App, caller: &Account, url: String, secret: String) -> Result<Endpoint> {
    check_endpoint(&url, app.config.allow_private_webhooks)?;
    let url = url.trim().to_string();
    let (account, now) = (caller.id, app.clock.now());
    app.db
        .write(move |conn| deliveries::put_endpoint(conn, account, &url, &secret, now))
}

/// The caller's endpoint, if one is set.
pub fn get(app: &App, caller: &Account) -> Result<Option<Endpoint>> {
    let account = caller.id;
    app.db.read(move |conn| deliveries::endpoint(conn, account))
}

/// Removes the caller's endpoint; its pending deliveries fail. Harmless
/// when none is set.
pub fn remove(app: &App, caller: &Account) -> Result<()> {
    let (account, now) = (caller.id, app.clock.now());
    app.db
        .write(move |conn| deliveries::delete_endpoint(conn, account, now))?;
    Ok(())
}

/// A page of the caller's deliveries, oldest first, and the next cursor.
pub fn deliveries(
    app: &App,
    caller: &Account,
    state: Option<String>,
    after: Option<i64>,
    limit: i64,
) -> Result<(Vec<Delivery>, Option<i64>)> {
    let account = caller.id;
    app.db
        .read(move |conn| deliveries::list(conn, account, state.as_deref(), after, limit))
}
