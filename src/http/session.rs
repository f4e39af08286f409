//! The web desk's session cookie and its CSRF token: who a request of the
//! native API comes from (an API token in `Authorization`, else the
//! session cookie), the `Set-Cookie` values, and the token a page sends in
//! `X-CSRF-Token` with every write it makes with the cookie.

use sha2::{Digest, Sha256};

use crate::desk;
use crate::error::{Error, Result};
use crate::store::accounts::{self, Account};
use crate::store::sessions::Session;
use crate::App;

use super::Req;

/// The cookie's name.
pub const COOKIE: &str = "regdesk_session";
/// The header a page sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session secret in the request's cookie, if it has one worth looking
/// up.
pub fn cookie(req: &Req) -> Option<&str> {
    req.headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| accounts::presentable(v))
}

/// Whether the request names its caller with an `Authorization` header
/// (programs do); then a cookie it may carry does not count.
pub fn has_authorization(req: &Req) -> bool {
    req.header("authorization").is_some()
}

/// The CSRF token of the session whose cookie holds `secret`: derived from
/// the secret, so that checking it needs no database, and useless without
/// the cookie.
pub fn csrf_token(secret: &str) -> String {
    let digest = Sha256::digest(format!("regdesk csrf\n{secret}").as_bytes());
    hex::encode(&digest[..16])
}

/// Whether a write made with the cookie carries the session's CSRF token.
/// Compared over every byte, so that its time says nothing of a near miss.
pub fn csrf_matches(req: &Req, secret: &str) -> bool {
    let Some(given) = req.header(CSRF_HEADER) else {
        return false;
    };
    let want = csrf_token(secret);
    let given = given.trim().as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The account a request of the native API comes from: its API token, or
/// else its session.
pub fn caller(app: &App, req: &Req) -> Result<Account> {
    if has_authorization(req) {
        return app.bearer(req);
    }
    current(app, req).map(|(_, account)| account)
}

/// The session of the request's cookie, and its account.
pub fn current(app: &App, req: &Req) -> Result<(Session, Account)> {
    let secret = cookie(req).ok_or(Error::Unauthorized)?;
    desk::sessions::find(app, secret.to_string())?.ok_or(Error::Unauthorized)
}

/// The `Set-Cookie` value that keeps `secret` for `max_age_secs` (0 ends
/// it): never readable by scripts, never sent from another site's page,
/// and only over TLS when regdesk's public URL is https.
pub fn set_cookie(app: &App, secret: &str, max_age_secs: i64) -> String {
    let secure = app
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https:"));
    format!(
        "{COOKIE}={secret}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> Req {
        let mut req = Req::new("GET", "/api/v1/me", b"");
        req.headers.push(("cookie".into(), value.into()));
        req
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(
            cookie(&with_cookie("a=1; regdesk_session=abc ; b=2")),
            Some("abc")
        );
        assert_eq!(cookie(&with_cookie("regdesk_sessionx=abc")), None);
        assert_eq!(cookie(&with_cookie("regdesk_session=")), None);
        assert_eq!(cookie(&Req::new("GET", "/", b"")), None);
    }

    #[test]
    fn the_csrf_token_must_be_the_sessions_own() {
        let mut req = with_cookie("regdesk_session=abc");
        assert!(!csrf_matches(&req, "abc"));
        req.headers
            .push((CSRF_HEADER.into(), csrf_token("abd").to_string()));
        assert!(!csrf_matches(&req, "abc"));
        req.headers.pop();
        req.headers.push((CSRF_HEADER.into(), csrf_token("abc")));
        assert!(csrf_matches(&req, "abc"));
    }
}
