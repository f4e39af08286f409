//! The desk: every use case the faces offer, as functions over typed
//! inputs. A face parses its wire format, calls the desk, and writes its
//! answer; the desk checks who may do what, runs one read or one write
//! through `store`, and wakes the ticker when there is work. No wire format
//! and no SQL here.

pub mod accounts;
pub mod admin;
pub mod charges;
pub mod contacts;
pub mod credentials;
pub mod epp;
pub mod feed;
pub mod filter;
pub mod hosts;
pub mod lifecycle;
pub mod orders;
pub mod requests;
pub mod sessions;
pub mod transfers;
pub mod webhooks;

use crate::error::{Error, Result};
use crate::store::accounts::Account;

/// Refuses a caller who is not an operator.
pub fn require_operator(caller: &Account) -> Result<()> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(Error::Forbidden("only operators may do this".into()))
    }
}

/// Whose objects a caller sees when it names no account: every account's
/// for operators, its own for a customer.
pub fn own_scope(caller: &Account) -> Option<i64> {
    (!caller.is_operator()).then_some(caller.id)
}

/// The account a list is about: the `account_id` asked for (any, or none,
/// for operators); a customer's own whatever was asked, and another
/// account's id is not found for them.
pub fn account_scope(asked: Option<i64>, caller: &Account) -> Result<Option<i64>> {
    if caller.is_operator() {
        return Ok(asked);
    }
    if let Some(other) = asked.filter(|a| *a != caller.id) {
        return Err(Error::not_found(format!("account {other}")));
    }
    Ok(Some(caller.id))
}
