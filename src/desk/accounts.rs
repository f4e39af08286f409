//! Accounts: who the caller is, the operators' list and new accounts, and
//! the lookups the faces sign callers in with.

use crate::error::{Error, Result};
use crate::store::accounts::{self, Account, NewAccount};
use crate::store::Connection;
use crate::App;

use super::require_operator;

/// An account's XCP API key.
pub fn api_key(app: &App, account_id: i64) -> Result<String> {
    app.db.read(move |conn| accounts::api_key(conn, account_id))
}

/// Every account (operators only).
pub fn list(app: &App, caller: &Account) -> Result<Vec<Account>> {
    require_operator(caller)?;
    app.db.read(accounts::list)
}

/// A new account, its first token and its API key (operators only).
pub fn create(app: &App, caller: &Account, new: NewAccount) -> Result<(Account, String, String)> {
    require_operator(caller)?;
    let token = crate::random::token();
    let now = app.clock.now();
    let t = token.clone();
    let (account, key) = app.db.write(move |conn| {
        let account = accounts::create(conn, &new, &t, now)?;
        let key = accounts::api_key(conn, account.id)?;
        Ok((account, key))
    })?;
    Ok((account, token, key))
}

/// The account named `name` and its API key, if there is one (XCP signs
/// each body with the key).
pub fn signer(app: &App, name: String) -> Result<Option<(Account, String)>> {
    app.db.read(move |conn| {
        let Some(account) = accounts::by_name(conn, &name)? else {
            return Ok(None);
        };
        let key = accounts::api_key(conn, account.id)?;
        Ok(Some((account, key)))
    })
}

/// Checks that account `id` exists (an operator may name any account).
pub fn require(app: &App, id: i64) -> Result<()> {
    app.db.read(move |conn| exists(conn, id))
}

/// `require` in a transaction.
pub(crate) fn exists(conn: &Connection, id: i64) -> Result<()> {
    accounts::get(conn, id)
        .map(|_| ())
        .map_err(|_| Error::not_found(format!("user {id}")))
}
