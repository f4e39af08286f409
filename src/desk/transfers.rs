//! Transfers of a domain another account holds here: the gaining account
//! asks (a `transfer` work request that waits on the holder), the holder
//! approves or rejects, the gaining account may cancel, and the ticker
//! approves what is left unanswered (`store::transfers::tick`).

use serde_json::json;

use crate::clock::DAY;
use crate::error::{Error, Result};
use crate::form;
use crate::state::{Operation, State};
use crate::store::accounts::Account;
use crate::store::requests::NewRequest;
use crate::store::transfers::{self as table, TransferStatus as Status};
use crate::store::transition::Who;
use crate::store::Connection;
use crate::App;

pub use crate::store::transfers::{Transfer, TransferStatus};

/// How long a transfer waits on the holder before it is approved by time.
pub fn auto_approve_after(app: &App) -> crate::clock::Millis {
    i64::from(app.config.transfer_auto_approve_days) * DAY
}

/// The caller asks for `domain`, which another account holds here, with
/// its auth code, for `period_years` (1 by default) added to its expiry.
/// `NotFound` when no account here holds it (a transfer from outside is an
/// ordinary order); `Invalid` when the caller holds it.
pub fn request(
    app: &App,
    caller: &Account,
    domain: &str,
    auth_code: &str,
    period_years: Option<u32>,
    face: &str,
) -> Result<Transfer> {
    let name = form::domain_name("domain", domain)?;
    let period = i64::from(period_years.unwrap_or(1));
    if !(1..=10).contains(&period) {
        return Err(Error::invalid("period", "must be 1 to 10 years"));
    }
    let (caller, auth_code, face) = (caller.clone(), auth_code.to_string(), face.to_string());
    let (now, wait) = (app.clock.now(), auto_approve_after(app));
    let t = app.db.write(move |conn| {
        let held = crate::store::domains::by_name(conn, &name)?
            .ok_or_else(|| Error::not_found(format!("domain {name}")))?;
        if held.account_id == caller.id {
            return Err(Error::invalid("domain", format!("{name} is yours already")));
        }
        if let Some(refused) = table::refusal(conn, &held, &auth_code)? {
            return Err(refused);
        }
        let new = NewRequest {
            account_id: caller.id,
            domain: name.clone(),
            operation: Operation::Transfer,
            params: json!({
                "auth_code": auth_code,
                "period": period,
                "contacts": held.contacts,
                "nameservers": held.nameservers,
            }),
            exec_date: None,
            depends_on: None,
        };
        let (req, _) = super::orders::open(conn, &caller, &new, true, now)?;
        match req.state {
            State::Queued => table::start(conn, req, &held, wait, &face, now),
            // An order that needs an operator's authorisation starts to
            // wait on the holder once authorised.
            State::Review => Ok(unstarted(conn, &req, &held, now + wait, period)),
            // The domain's own contacts lack what an order needs: nothing
            // is kept.
            _ => Err(Error::invalid(
                "contacts",
                format!("{name} lacks {}", req.missing.join(", ")),
            )),
        }
    })?;
    app.ticker.wake();
    Ok(t)
}

/// A transfer whose request waits for an operator before it reaches the
/// holder, as it will stand once it does.
fn unstarted(
    conn: &Connection,
    req: &crate::store::requests::Request,
    held: &crate::store::domains::Domain,
    act_by: crate::clock::Millis,
    period: i64,
) -> Transfer {
    let name = |id| {
        crate::store::accounts::get(conn, id)
            .map(|a| a.name)
            .unwrap_or_default()
    };
    Transfer {
        domain: held.name.clone(),
        status: Status::Pending,
        gaining_account: req.account_id,
        gaining_name: name(req.account_id),
        losing_account: held.account_id,
        losing_name: name(held.account_id),
        requested_at: req.created_at,
        act_by,
        expires_at: Some(held.expires_at + period * 365 * DAY),
        request_id: req.id,
    }
}

/// The newest transfer of `domain`, for the gaining or the losing account
/// (or an operator); `NoTransfer` when there is none.
pub fn query(app: &App, caller: &Account, domain: &str) -> Result<Transfer> {
    let t = newest(app, domain)?;
    if party(caller, &t) {
        Ok(t)
    } else {
        Err(Error::NotYours(format!(
            "the transfer of {} is between other accounts",
            t.domain
        )))
    }
}

fn newest(app: &App, domain: &str) -> Result<Transfer> {
    let name = form::domain_name("domain", domain)?;
    app.db
        .read(move |conn| table::latest(conn, &name))?
        .ok_or_else(|| Error::NoTransfer(format!("no transfer of {domain} is pending or recent")))
}

fn party(caller: &Account, t: &Transfer) -> bool {
    caller.is_operator() || caller.id == t.gaining_account || caller.id == t.losing_account
}

/// The holder (or an operator) approves the pending transfer of `domain`:
/// the domain moves to the gaining account.
pub fn approve(app: &App, caller: &Account, domain: &str) -> Result<Transfer> {
    answer(app, caller, domain, Status::ClientApproved)
}

/// The holder (or an operator) rejects the pending transfer of `domain`.
pub fn reject(app: &App, caller: &Account, domain: &str) -> Result<Transfer> {
    answer(app, caller, domain, Status::ClientRejected)
}

/// The gaining account (or an operator) withdraws its pending transfer.
pub fn cancel(app: &App, caller: &Account, domain: &str) -> Result<Transfer> {
    answer(app, caller, domain, Status::ClientCancelled)
}

/// Ends the pending transfer of `domain` as `status`, if the caller is
/// the side that may.
fn answer(app: &App, caller: &Account, domain: &str, status: Status) -> Result<Transfer> {
    let name = form::domain_name("domain", domain)?;
    let (caller, now) = (caller.clone(), app.clock.now());
    app.db.write(move |conn| {
        let t = table::latest(conn, &name)?
            .filter(|t| party(&caller, t))
            .ok_or_else(|| Error::NoTransfer(format!("no transfer of {name} is pending")))?;
        if t.status != Status::Pending {
            return Err(Error::NoTransfer(format!(
                "the transfer of {name} is not pending: {}",
                t.status
            )));
        }
        let side = match status {
            Status::ClientCancelled => t.gaining_account,
            _ => t.losing_account,
        };
        if caller.id != side && !caller.is_operator() {
            return Err(Error::Forbidden(match status {
                Status::ClientCancelled => "only the gaining account may cancel a transfer".into(),
                _ => "only the account holding the domain may answer its transfer".into(),
            }));
        }
        let who = Who::system(&caller.name);
        table::end(conn, &t, status, &who, now)
    })
}

/// The transfer of work request `request_id` if the caller is a side of
/// it (a notification names the request: what a poll message shows).
pub fn for_request(app: &App, caller: &Account, request_id: i64) -> Result<Option<Transfer>> {
    let t = app
        .db
        .read(move |conn| table::of_request(conn, request_id))?;
    Ok(t.filter(|t| party(caller, t)))
}

/// The pending transfer of `domain` if the caller is a side of it (what
/// `GET /api/v1/domains/{name}` shows its holder).
pub fn pending_for(app: &App, caller: &Account, domain: &str) -> Result<Option<Transfer>> {
    let name = form::domain_name("domain", domain)?;
    let t = app.db.read(move |conn| table::pending(conn, &name))?;
    Ok(t.filter(|t| party(caller, t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::desk::contacts::tests::account;
    use crate::store::Cached;

    /// `name`, held by `holder`, with auth code `code-1234`, locked or not.
    fn held(app: &App, holder: &Account, name: &str, locked: bool) {
        let (id, name) = (holder.id, name.to_string());
        app.db
            .write(move |conn| {
                conn.exec(
                    "insert into domains (account_id, name, status, expires_at, transfer_lock,
                                          auth_code, contacts, created_at, updated_at)
                     values (?1, ?2, 'active', 1000, ?3, 'code-1234',
                             '{\"owner\":{\"name\":\"H\",\"email\":\"h@example.net\"}}', 0, 0)",
                    rusqlite::params![id, name, locked],
                )?;
                Ok(())
            })
            .unwrap();
    }

    /// What the EPP face relies on: each refusal as its own error, then a
    /// pending transfer both sides (and no one else) see, until the gaining
    /// account cancels it.
    #[test]
    fn a_request_is_refused_for_each_reason_and_otherwise_pending_until_cancelled() {
        let handle = crate::start(Config::for_tests()).unwrap();
        let app = &handle.app;
        let (holder, gainer, stranger) = (
            account(app, "holder"),
            account(app, "gainer"),
            account(app, "stranger"),
        );
        held(app, &holder, "open.example", false);
        held(app, &holder, "locked.example", true);
        let ask =
            |who: &Account, name: &str, code: &str| request(app, who, name, code, None, "test");
        assert!(matches!(
            ask(&gainer, "nobody.example", "x"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            ask(&holder, "open.example", "code-1234"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            ask(&gainer, "locked.example", "code-1234"),
            Err(Error::Prohibited(_))
        ));
        assert!(matches!(
            ask(&gainer, "open.example", "wrong"),
            Err(Error::WrongAuth(_))
        ));
        held(app, &holder, "bare.example", false);
        app.db
            .write(|conn| {
                Ok(conn.exec(
                    "update domains set contacts = '{}' where name = 'bare.example'",
                    [],
                )?)
            })
            .unwrap();
        let bare = ask(&gainer, "bare.example", "code-1234").unwrap_err();
        assert_eq!(bare.field(), Some("contacts"), "{bare}");
        assert!(matches!(
            query(app, &gainer, "bare.example"),
            Err(Error::NoTransfer(_))
        ));
        let bad_period = request(app, &gainer, "open.example", "code-1234", Some(11), "test");
        assert_eq!(bad_period.unwrap_err().field(), Some("period"));
        assert!(matches!(
            query(app, &gainer, "open.example"),
            Err(Error::NoTransfer(_))
        ));

        let t = ask(&gainer, "open.example", "code-1234").unwrap();
        assert_eq!(t.status, TransferStatus::Pending);
        assert_eq!(
            (t.gaining_name.as_str(), t.losing_name.as_str()),
            ("gainer", "holder")
        );
        assert_eq!(t.act_by, t.requested_at + 5 * DAY);
        assert_eq!(t.expires_at, Some(1000 + 365 * DAY));
        let again = ask(&stranger, "open.example", "code-1234");
        assert!(matches!(again, Err(Error::TransferPending(_))));
        assert_eq!(query(app, &holder, "open.example").unwrap(), t);
        assert!(matches!(
            query(app, &stranger, "open.example"),
            Err(Error::NotYours(_))
        ));
        assert_eq!(
            pending_for(app, &holder, "open.example").unwrap(),
            Some(t.clone())
        );
        assert_eq!(pending_for(app, &stranger, "open.example").unwrap(), None);
        assert!(matches!(
            cancel(app, &holder, "open.example"),
            Err(Error::Forbidden(_))
        ));

        let ended = cancel(app, &gainer, "open.example").unwrap();
        assert_eq!(ended.status, TransferStatus::ClientCancelled);
        let of_request = |who| for_request(app, who, t.request_id).unwrap();
        assert_eq!(of_request(&holder), Some(ended.clone()));
        assert_eq!(of_request(&stranger), None);
        assert_eq!(
            query(app, &gainer, "open.example").unwrap().status,
            ended.status
        );
        assert!(matches!(
            approve(app, &holder, "open.example"),
            Err(Error::NoTransfer(_))
        ));
        assert_eq!(pending_for(app, &holder, "open.example").unwrap(), None);
        handle.stop();
    }
}
