//! Accounts: who the caller is, the operators' list and new accounts, and
//! the lookups the faces sign callers in with.

use crate::error::{Error, Result};
use crate::store::accounts::{self, Account, AccountEdit, NewAccount, TokenInfo};
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

/// Changes an account's e-mail, role or review rule (operators). Callers
/// are remembered by token, so the memory of them starts over.
pub fn edit(app: &App, caller: &Account, id: i64, edit: AccountEdit) -> Result<Account> {
    require_operator(caller)?;
    if id == caller.id && edit.role.is_some_and(|r| r != caller.role) {
        return Err(Error::Conflict(
            "an operator cannot change their own role: ask another operator".into(),
        ));
    }
    let account = app
        .db
        .write(move |conn| accounts::update(conn, id, &edit))?;
    app.tokens.clear();
    Ok(account)
}

/// The caller's API tokens (their ids and ages: the tokens are kept hashed).
pub fn tokens(app: &App, caller: &Account) -> Result<Vec<TokenInfo>> {
    let id = caller.id;
    app.db.read(move |conn| accounts::tokens(conn, id))
}

/// A new API token for the caller: its id and the token, shown this once.
pub fn new_token(app: &App, caller: &Account) -> Result<(i64, String)> {
    let token = crate::random::token();
    let (id, now, t) = (caller.id, app.clock.now(), token.clone());
    let token_id = app
        .db
        .write(move |conn| accounts::new_token(conn, id, &t, now))?;
    Ok((token_id, token))
}

/// Revokes one of the caller's API tokens; it stops working at once. The
/// token the request is made with (`in_use`, if any) is kept.
pub fn revoke_token(
    app: &App,
    caller: &Account,
    token_id: i64,
    in_use: Option<String>,
) -> Result<()> {
    let id = caller.id;
    let digest = in_use.map(|t| accounts::token_hash(&t));
    app.db
        .write(move |conn| accounts::revoke_token(conn, id, token_id, digest.as_deref()))?;
    app.tokens.clear();
    Ok(())
}
