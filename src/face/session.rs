//! The web desk's sign-in over JSON: `POST/GET/DELETE /api/v1/session`
//! (sign in with a password, who this session is and its CSRF token, sign
//! out), `GET /api/v1/sessions` and `DELETE /api/v1/sessions/{id}` (the
//! caller's sessions), passwords and set-password links of accounts, and
//! lifting an account's sign-in refusal.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use crate::clock;
use crate::desk::sessions::{self, NewPassword, Opened, SESSION_DAYS};
use crate::error::{Error, Result};
use crate::face::json_args::{body_object, only_keys, opt_str, req_str};
use crate::http::session::{self as cookie, csrf_token, set_cookie};
use crate::http::{Req, Resp};
use crate::store::accounts::Account;
use crate::store::sessions::{Origin, Session};
use crate::App;

/// Characters of a browser's `User-Agent` the sessions list keeps.
const MAX_USER_AGENT: usize = 200;

/// The address a request comes from, as the sign-in throttle counts it.
fn address(req: &Req) -> IpAddr {
    req.peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn origin(req: &Req) -> Origin {
    Origin {
        address: req.peer.map(|a| a.to_string()),
        user_agent: req
            .header("user-agent")
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
    }
}

/// The answer naming a session: its account, the session and the CSRF
/// token the page sends with its writes.
fn session_json(session: &Session, account: &Account, secret: &str) -> Result<Value> {
    Ok(json!({
        "account": serde_json::to_value(account)?,
        "session": serde_json::to_value(session)?,
        "csrf_token": csrf_token(secret),
    }))
}

fn opened(app: &App, o: Opened) -> Result<Resp> {
    let v = session_json(&o.session, &o.account, &o.secret)?;
    let max_age = SESSION_DAYS * clock::DAY / 1000;
    Ok(Resp::json(200, &v).with_header("Set-Cookie", &set_cookie(app, &o.secret, max_age)))
}

/// A password from a body: present, and a string (its rules are checked
/// where passwords are kept).
fn password(body: &serde_json::Map<String, Value>) -> Result<String> {
    req_str(body, "password")
}

/// `POST /session` `{name, password}`: signs in and sets the cookie.
pub fn sign_in(app: &App, req: &Req) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["name", "password"])?;
    let name = req_str(&body, "name")?;
    let password = password(&body)?;
    opened(
        app,
        sessions::sign_in(app, name.trim(), &password, address(req), origin(req))?,
    )
}

/// `GET /session`: the session of the cookie, its account and CSRF token
/// (a new tab of the desk starts here).
pub fn current(app: &App, req: &Req) -> Result<Resp> {
    let (session, account) = cookie::current(app, req)?;
    let secret = cookie::cookie(req).unwrap_or_default();
    Ok(Resp::json(200, &session_json(&session, &account, secret)?))
}

/// `DELETE /session`: signs out (ends the session, clears the cookie).
pub fn sign_out(app: &App, req: &Req) -> Result<Resp> {
    let (session, account) = cookie::current(app, req)?;
    sessions::close(app, &account, session.id)?;
    Ok(Resp::empty(204).with_header("Set-Cookie", &set_cookie(app, "", 0)))
}

/// `GET /sessions`: the caller's sessions, the current one marked.
pub fn list(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let current = cookie::current(app, req).ok().map(|(s, _)| s.id);
    let items: Vec<Value> = sessions::list(app, caller)?
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s)?;
            v["current"] = json!(Some(s.id) == current);
            Ok(v)
        })
        .collect::<Result<_>>()?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

/// `DELETE /sessions/{id}`: ends one of the caller's sessions.
pub fn revoke(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    sessions::close(app, caller, id)?;
    Ok(Resp::empty(204))
}

/// `PUT /accounts/{id}/password` `{password, current_password?}`: the
/// account itself (with its present password, once it has one) or an
/// operator sets its web password.
pub fn set_password(app: &App, req: &Req, id: i64, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["password", "current_password"])?;
    let new = NewPassword {
        password: password(&body)?,
        current: opt_str(&body, "current_password")?,
        address: address(req),
        session: cookie::current(app, req).ok().map(|(s, _)| s.id),
    };
    sessions::set_password(app, caller, id, new)?;
    Ok(Resp::empty(204))
}

/// `POST /accounts/{id}/password-link`: a one-time set-password link,
/// mailed when SMTP is configured, else answered once.
pub fn password_link(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    let link = sessions::password_link(app, caller, id)?;
    Ok(Resp::json(
        201,
        &json!({
            "url": link.url,
            "mailed_to": link.mailed_to,
            "expires_at": clock::format(link.expires_at),
        }),
    ))
}

/// `POST /password-link` `{token, password}`: sets the password a link
/// was made for, and signs in.
pub fn use_link(app: &App, req: &Req) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["token", "password"])?;
    let token = req_str(&body, "token")?;
    if !crate::store::accounts::presentable(token.trim()) {
        return Err(Error::invalid(
            "token",
            "is not a set-password link's token",
        ));
    }
    let password = password(&body)?;
    opened(
        app,
        sessions::use_link(app, token.trim().to_string(), &password, origin(req))?,
    )
}

/// `POST /accounts/{id}/unlock`: lifts the account's sign-in refusal.
pub fn unlock(app: &App, id: i64, caller: &Account) -> Result<Resp> {
    sessions::unlock(app, caller, id)?;
    Ok(Resp::empty(204))
}
