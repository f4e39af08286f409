//! Web sessions: signing in with a password, the sessions an account has
//! open (listed and revocable), signing out, passwords set by their owner
//! or an operator, and one-time set-password links.

use std::net::IpAddr;

use crate::clock::DAY;
use crate::desk::credentials::{self, Secret};
use crate::error::{Error, Result};
use crate::store::accounts::{self, Account};
use crate::store::notifications;
use crate::store::sessions::{self, Origin, Session};
use crate::App;

use super::require_operator;

/// How long a session lasts after its sign-in.
pub const SESSION_DAYS: i64 = 14;
/// How long a set-password link can be used.
pub const LINK_DAYS: i64 = 3;

/// A session just opened: the cookie's secret is in `secret`, seen only
/// here.
pub struct Opened {
    pub session: Session,
    pub account: Account,
    pub secret: String,
}

/// Signs `name` in with its web password and opens a session. The
/// failed-sign-in throttle of `credentials` applies (per account and per
/// `address`).
pub fn sign_in(
    app: &App,
    name: &str,
    password: &str,
    address: IpAddr,
    origin: Origin,
) -> Result<Opened> {
    let account = credentials::sign_in(app, Secret::Web, name, password, address)?;
    open(app, account, origin)
}

fn open(app: &App, account: Account, origin: Origin) -> Result<Opened> {
    let secret = crate::random::token();
    let now = app.clock.now();
    let (id, s) = (account.id, secret.clone());
    let session = app.db.write(move |conn| {
        sessions::forget_expired(conn, now)?;
        sessions::open(conn, id, &s, &origin, now, now + SESSION_DAYS * DAY)
    })?;
    Ok(Opened {
        session,
        account,
        secret,
    })
}

/// The session a cookie's `secret` names, with its account, while it lasts.
pub fn find(app: &App, secret: String) -> Result<Option<(Session, Account)>> {
    let now = app.clock.now();
    app.db.read(move |conn| sessions::find(conn, &secret, now))
}

/// The caller's sessions, newest first.
pub fn list(app: &App, caller: &Account) -> Result<Vec<Session>> {
    let (id, now) = (caller.id, app.clock.now());
    app.db.read(move |conn| sessions::list(conn, id, now))
}

/// Ends one of the caller's sessions (signing out is ending one's own).
pub fn close(app: &App, caller: &Account, session_id: i64) -> Result<()> {
    let id = caller.id;
    app.db
        .write(move |conn| sessions::close(conn, id, session_id))
}

/// A web password to set, and what the change must prove and keep.
pub struct NewPassword {
    pub password: String,
    /// The caller's present password: needed to change one's own once
    /// one is set, so that an open session alone cannot take the account.
    pub current: Option<String>,
    /// Where the caller's request comes from (a wrong `current` counts as
    /// a failed sign-in).
    pub address: IpAddr,
    /// The session making the change, which stays signed in.
    pub session: Option<i64>,
}

/// Sets account `account_id`'s web password: the account itself (with its
/// present password, once it has one) or an operator. The account's other
/// sessions end.
pub fn set_password(app: &App, caller: &Account, account_id: i64, new: NewPassword) -> Result<()> {
    if caller.id == account_id && credentials::has_password(app, account_id, Secret::Web)? {
        let current = new.current.as_deref().ok_or_else(|| {
            Error::invalid(
                "current_password",
                "is required to change your own password",
            )
        })?;
        credentials::sign_in(app, Secret::Web, &caller.name, current, new.address).map_err(
            |e| match e {
                Error::Unauthorized => Error::invalid("current_password", "is not your password"),
                other => other,
            },
        )?;
    }
    credentials::set_password(app, caller, account_id, Secret::Web, &new.password)?;
    let keep = new.session.filter(|_| caller.id == account_id);
    app.db
        .write(move |conn| sessions::close_others(conn, account_id, keep))?;
    Ok(())
}

/// A one-time set-password link made by an operator.
pub struct Link {
    /// The link, unless it went out by mail.
    pub url: Option<String>,
    /// The address it was mailed to.
    pub mailed_to: Option<String>,
    pub expires_at: crate::clock::Millis,
}

/// Makes a set-password link for account `account_id` (operators): mailed
/// to the account when SMTP is configured, else answered to be handed over.
pub fn password_link(app: &App, caller: &Account, account_id: i64) -> Result<Link> {
    require_operator(caller)?;
    let secret = crate::random::token();
    let base = app.config.public_url.clone().unwrap_or_default();
    let url = format!("{}/#set-password={secret}", base.trim_end_matches('/'));
    let mail = app.config.smtp_url.is_some();
    let now = app.clock.now();
    let expires_at = now + LINK_DAYS * DAY;
    let body = url.clone();
    let mailed_to = app.db.write(move |conn| {
        let account = accounts::get(conn, account_id)?;
        sessions::add_link(conn, account_id, &secret, now, expires_at)?;
        if !mail {
            return Ok(None);
        }
        let text = format!(
            "A password for the regdesk account {} can be set at\n\n{body}\n\n\
             The link works once, for {LINK_DAYS} days.\n",
            account.name
        );
        let subject = "[regdesk] set your password";
        notifications::queue_mail(conn, None, &account.email, subject, &text, now)?;
        Ok(Some(account.email))
    })?;
    Ok(Link {
        url: mailed_to.is_none().then_some(url),
        mailed_to,
        expires_at,
    })
}

/// Uses a set-password link: sets the password and signs its account in.
pub fn use_link(app: &App, secret: String, password: &str, origin: Origin) -> Result<Opened> {
    web_password(password)?;
    let now = app.clock.now();
    let account = app.db.write(move |conn| {
        let id = sessions::take_link(conn, &secret, now)?.ok_or_else(|| {
            Error::invalid(
                "token",
                "this link is not valid: it was used already, has expired, or a newer one replaced it",
            )
        })?;
        accounts::get(conn, id)
    })?;
    credentials::set_password(app, &account, account.id, Secret::Web, password)?;
    open(app, account, origin)
}

/// Refuses a web password the link could not set, before the link is
/// used up: 8 to 128 characters, as `credentials` checks again.
fn web_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid("password", "must be 8 to 128 characters"))
    }
}

/// Lifts the failed-sign-in refusal of an account (operators).
pub fn unlock(app: &App, caller: &Account, account_id: i64) -> Result<()> {
    credentials::unlock(app, caller, account_id)
}
