//! What every request must pass before a face sees it: credentials given
//! once, no write that a browser says comes from another site, and an XML
//! content type on the XML faces' bodies. A page on another site can make
//! a browser send a form (with `text/plain` bodies too) carrying the HTTP
//! Basic credentials it remembers; these checks keep such a form from
//! changing anything. A write made with the web desk's session cookie
//! must also carry its session's CSRF token in a header, which only the
//! desk's own pages can read.

use crate::config;
use crate::error::{quoted, Error, Result};
use crate::App;

use super::router::{self, Face};
use super::session;
use super::{Req, Resp};

/// The refusal of a request that fails a check, in its face's format; `None`
/// when it passes.
pub fn refused(app: &App, req: &Req) -> Option<Resp> {
    let face = router::face_of(&req.method, &req.path);
    let err = check(app.config.public_url.as_deref(), req, &face).err()?;
    Some(router::refusal(app, &req.method, &req.path, &err))
}

fn check(public_url: Option<&str>, req: &Req, face: &Face) -> Result<()> {
    credentials_once(req)?;
    // A HEAD is a GET by now (`http::serve`).
    if !matches!(req.method.as_str(), "GET" | "OPTIONS") {
        same_origin(public_url, req)?;
        csrf(req)?;
    }
    if matches!(face, Face::Task | Face::Xcp) && !req.body.is_empty() {
        xml_content_type(req)?;
    }
    Ok(())
}

/// Headers that name the caller: given twice, which one counts would be a
/// guess (a proxy may read the first, regdesk the last).
const CREDENTIALS: [&str; 3] = ["authorization", "x-username", "x-signature"];

fn credentials_once(req: &Req) -> Result<()> {
    for name in CREDENTIALS {
        if req.headers.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(Error::Malformed(format!(
                "the {name} header is given more than once"
            )));
        }
    }
    Ok(())
}

/// Refuses a write the browser says comes from elsewhere: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (typed or
/// bookmarked), or an `Origin` other than regdesk's own. Clients that are
/// not browsers send neither header.
fn same_origin(public_url: Option<&str>, req: &Req) -> Result<()> {
    if let Some(site) = req.header("sec-fetch-site") {
        if !matches!(site.trim(), "same-origin" | "none") {
            return Err(cross_site(format!("Sec-Fetch-Site {}", quoted(site))));
        }
    }
    let Some(origin) = req.header("origin") else {
        return Ok(());
    };
    let own = match public_url {
        Some(url) => config::public_origin(url).ok(),
        // Without a public URL, the scheme this server speaks and the Host
        // the request came with.
        None => req
            .header("host")
            .and_then(|h| origin_of(&format!("http://{h}"))),
    };
    match (origin_of(origin), own) {
        (Some(theirs), Some(own)) if theirs == own => Ok(()),
        _ => Err(cross_site(format!("Origin {}", quoted(origin)))),
    }
}

/// The writes that sign a caller in from what the body says (a password,
/// a set-password link): they need no session, and a stale cookie the
/// browser still sends must not stop them.
const SIGN_INS: [&str; 2] = ["/api/v1/session", "/api/v1/password-link"];

/// Refuses a write to the native API made with the session cookie (and no
/// `Authorization`) that lacks its session's CSRF token.
fn csrf(req: &Req) -> Result<()> {
    if !req.path.starts_with("/api/v1/") || session::has_authorization(req) {
        return Ok(());
    }
    if req.method == "POST" && SIGN_INS.contains(&req.path.trim_end_matches('/')) {
        return Ok(());
    }
    match session::cookie(req) {
        Some(secret) if !session::csrf_matches(req, secret) => Err(Error::Forbidden(format!(
            "a write made with the session cookie needs its CSRF token in the {} header \
             (GET /api/v1/session answers it)",
            session::CSRF_HEADER
        ))),
        _ => Ok(()),
    }
}

fn cross_site(what: String) -> Error {
    Error::Forbidden(format!(
        "a write from another site is refused ({what}); send it from regdesk's own pages \
         or without a browser"
    ))
}

/// The origin (`scheme://host[:port]`, lower-case, without a default port)
/// that `origin` names: an `Origin` header's value is a bare origin, as
/// `--public-url` is, and is read the same way.
fn origin_of(origin: &str) -> Option<String> {
    config::public_origin(origin).ok()
}

/// A body for an XML face must say it is XML: `text/xml`,
/// `application/xml` or a `+xml` type, with any parameters. (A form on
/// another site can send only `text/plain` and two form types without
/// asking the server first.)
fn xml_content_type(req: &Req) -> Result<()> {
    let given = req.header("content-type").unwrap_or_default();
    let essence = given
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let xml = match essence.split_once('/') {
        Some(("text" | "application", "xml")) => true,
        Some((kind, sub)) => !kind.is_empty() && sub.len() > 4 && sub.ends_with("+xml"),
        None => false,
    };
    if xml {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(format!(
            "the body must be XML (Content-Type text/xml or application/xml), not {}",
            quoted(given)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Req {
        let mut req = Req::new(method, "/api/v1/requests", b"{}");
        req.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        req
    }

    #[test]
    fn writes_from_another_origin_are_refused() {
        let host = ("host", "127.0.0.1:8080");
        // (method, headers, --public-url, allowed)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>, bool);
        let cases: &[Case] = &[
            ("POST", &[host], None, true),
            (
                "POST",
                &[host, ("origin", "http://127.0.0.1:8080")],
                None,
                true,
            ),
            (
                "POST",
                &[
                    ("host", "Desk.Example:80"),
                    ("origin", "http://desk.example"),
                ],
                None,
                true,
            ),
            (
                "POST",
                &[host, ("origin", "http://evil.example")],
                None,
                false,
            ),
            ("POST", &[host, ("origin", "null")], None, false),
            ("POST", &[("origin", "http://127.0.0.1:8080")], None, false),
            (
                "DELETE",
                &[host, ("sec-fetch-site", "cross-site")],
                None,
                false,
            ),
            ("PUT", &[host, ("sec-fetch-site", "same-site")], None, false),
            (
                "POST",
                &[host, ("sec-fetch-site", "same-origin")],
                None,
                true,
            ),
            ("POST", &[host, ("sec-fetch-site", "none")], None, true),
            (
                "GET",
                &[host, ("origin", "http://evil.example")],
                None,
                true,
            ),
            (
                "OPTIONS",
                &[host, ("sec-fetch-site", "cross-site")],
                None,
                true,
            ),
            (
                "POST",
                &[host, ("origin", "https://desk.example")],
                Some("https://desk.example/"),
                true,
            ),
            (
                "POST",
                &[host, ("origin", "http://127.0.0.1:8080")],
                Some("https://desk.example"),
                false,
            ),
        ];
        for (method, headers, public, allowed) in cases {
            let got = check(*public, &req(method, headers), &Face::Other);
            assert_eq!(
                got.is_ok(),
                *allowed,
                "{method} {headers:?} {public:?}: {got:?}"
            );
        }
    }

    #[test]
    fn cookie_writes_need_the_sessions_csrf_token() {
        let cookie = ("cookie", "regdesk_session=s3cret");
        let token = session::csrf_token("s3cret");
        let other = session::csrf_token("other");
        // (method, path, headers, allowed)
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, bool);
        let cases: &[Case] = &[
            ("POST", "/api/v1/requests", vec![cookie], false),
            (
                "POST",
                "/api/v1/requests",
                vec![cookie, ("x-csrf-token", &other)],
                false,
            ),
            (
                "POST",
                "/api/v1/requests",
                vec![cookie, ("x-csrf-token", &token)],
                true,
            ),
            ("DELETE", "/api/v1/session", vec![cookie], false),
            ("GET", "/api/v1/requests", vec![cookie], true),
            ("POST", "/api/v1/session", vec![cookie], true),
            (
                "POST",
                "/api/v1/requests",
                vec![cookie, ("authorization", "Bearer t")],
                true,
            ),
            ("POST", "/api/v1/requests", vec![], true),
        ];
        for (method, path, headers, allowed) in cases {
            let mut r = Req::new(method, path, b"{}");
            r.headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let got = check(None, &r, &Face::Other);
            assert_eq!(
                got.is_ok(),
                *allowed,
                "{method} {path} {headers:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_public_url_is_an_http_origin_without_a_path() {
        for good in ["http://desk.example", "https://desk.example:8443/"] {
            assert!(config::public_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "desk.example",
            "ftp://desk.example",
            "https://desk.example/app",
            "http://u:p@desk.example",
            "https://desk.example/?a=1",
            "http://",
        ] {
            let err = config::public_origin(bad).expect_err(bad);
            assert_eq!(err.field(), Some("public_url"), "{bad}");
        }
    }

    #[test]
    fn xml_bodies_need_an_xml_content_type() {
        let with = |ct: &str| {
            let mut r = req("POST", &[]);
            if !ct.is_empty() {
                r.headers.push(("content-type".into(), ct.into()));
            }
            xml_content_type(&r).is_ok()
        };
        for good in [
            "text/xml",
            "application/xml; charset=utf-8",
            "Application/Soap+XML",
        ] {
            assert!(with(good), "{good}");
        }
        for bad in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/xmlx",
            "application/+xml",
        ] {
            assert!(!with(bad), "{bad}");
        }
    }

    #[test]
    fn credentials_given_twice_are_refused() {
        let twice = req(
            "GET",
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
        );
        assert_eq!(credentials_once(&twice).map_err(|e| e.status()), Err(400));
        assert!(credentials_once(&req("GET", &[("authorization", "Bearer a")])).is_ok());
    }
}
