//! Every route in one table: method and path to handler.

use crate::error::{quoted, Error, Result};
use crate::face::epp;
use crate::face::json_args::id_segment;
use crate::face::native;
use crate::face::objects;
use crate::face::opensrs;
use crate::face::ops;
use crate::face::session;
use crate::face::web;
use crate::face::webhooks;
use crate::App;

use super::{assets, Req, Resp};

/// A path's segments, without the empty one a trailing slash leaves.
fn segments(path: &str) -> Vec<&str> {
    let mut segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
    }
    segments
}

/// The faces that answer in a format of their own, errors included.
pub enum Face {
    /// The task path face (`/bdom/task/…`): XML.
    Task,
    /// XCP (`POST /`, `POST /opensrs`): an `OPS_envelope`.
    Xcp,
    /// The native API, the operations endpoints and the web UI: JSON.
    Other,
}

/// Which face answers `method` on a path of `segments`: one decision for
/// `route` and for `refusal`, so that a refusal made before routing is in
/// the format of the face the request would have reached.
fn face(method: &str, segments: &[&str]) -> Face {
    match segments {
        ["bdom", "task", ..] => Face::Task,
        [""] | ["opensrs"] if method == "POST" => Face::Xcp,
        _ => Face::Other,
    }
}

/// Which face answers `method` on `path` (for the checks made before routing).
pub fn face_of(method: &str, path: &str) -> Face {
    face(method, &segments(path))
}

pub fn route(app: &App, req: &Req) -> Resp {
    let segs = segments(&req.path);
    let method = req.method.as_str();
    match face(method, &segs) {
        Face::Task => return crate::face::bdom::serve(app, req),
        Face::Xcp => return opensrs::handle(app, req),
        Face::Other => {}
    }
    match segs.as_slice() {
        ["healthz"] if method == "GET" => native::healthz(),
        ["readyz"] if method == "GET" => native::readyz(app),
        ["metrics"] if method == "GET" => ops::metrics(app, req).into(),
        ["api", "openapi.json"] if method == "GET" => ops::openapi(),
        ["healthz"] | ["readyz"] | ["metrics"] | ["api", "openapi.json"] => {
            Resp::error(&Error::MethodNotAllowed(with_head(&["GET"])))
        }
        ["api", "v1", "epp", "ca.pem"] if method == "GET" => epp::ca_pem(app),
        ["api", "v1", rest @ ..] => api(app, req, method, rest).into(),
        _ if method == "GET" => {
            assets::serve(req).unwrap_or_else(|| Resp::error(&Error::not_found(quoted(&req.path))))
        }
        _ => Resp::error(&Error::not_found(quoted(&format!(
            "{} {}",
            req.method, req.path
        )))),
    }
}

/// A refusal before a handler runs (a body over the limit, a bad query
/// string), in the format of the face `route` gives the request to: every
/// task-face answer, errors included, is XML, and so is every XCP answer
/// (an XCP client reads the refusal in an `OPS_envelope`, with HTTP 200
/// but for a body over the limit and a stopping server).
pub fn refusal(app: &App, method: &str, path: &str, err: &Error) -> Resp {
    match face(method, &segments(path)) {
        Face::Task => crate::face::bdom::error(err),
        Face::Xcp => opensrs::refusal(app.clock.now(), err),
        Face::Other => Resp::error(err),
    }
}

fn api(app: &App, req: &Req, method: &str, path: &[&str]) -> Result<Resp> {
    // Signing in is what gives a caller: these two come before it.
    match (method, path) {
        ("POST", ["session"]) => return session::sign_in(app, req),
        ("POST", ["password-link"]) => return session::use_link(app, req),
        _ => {}
    }
    let caller = super::session::caller(app, req)?;
    check_query(method, path, &req.query)?;
    let c = &caller;
    match (method, path) {
        ("GET", ["me"]) => native::me(app, c),
        ("GET", ["accounts"]) => native::list_accounts(app, c),
        ("POST", ["accounts"]) => native::create_account(app, req, c),
        ("PUT", ["me", "epp-password"]) => epp::put_password(app, req, c, c.id),
        ("PUT", ["accounts", id, "epp-password"]) => {
            epp::put_password(app, req, c, id_segment("account", id)?)
        }

        ("POST", ["requests"]) => native::create_request(app, req, c),
        ("GET", ["requests"]) => native::list_requests(app, req, c),
        ("GET", ["requests.csv"]) => native::export_csv(app, req, c),
        ("POST", ["requests", "cancel-pending"]) => native::cancel_pending(app, req, c),
        ("POST", ["requests", "bulk"]) => native::bulk(app, req, c),
        // Not request ids: other methods are 405 here, not "no such request".
        (_, ["requests", "cancel-pending" | "bulk"]) => Err(unserved(path)),
        ("GET", ["requests", id]) => native::get_request(app, id_segment("request", id)?, c),
        ("PATCH", ["requests", id]) => {
            native::patch_request(app, req, id_segment("request", id)?, c)
        }
        ("POST", ["requests", id, action]) => {
            native::action(app, req, id_segment("request", id)?, action, c)
        }
        ("GET", ["scheduled"]) => native::scheduled(app, c),

        ("GET", ["domains"]) => native::list_domains(app, req, c),
        ("POST", ["domains"]) => native::order_domain(app, req, c),
        ("GET", ["domains", name]) => native::get_domain(app, name, c),
        ("POST", ["domains", name, "transfer", action]) => {
            objects::answer_transfer(app, name, action, c)
        }
        ("GET", ["contacts"]) => objects::list_contacts(app, c),
        ("POST", ["contacts"]) => objects::create_contact(app, req, c),
        ("GET", ["contacts", id]) => objects::get_contact(app, id, c),
        ("PATCH", ["contacts", id]) => objects::patch_contact(app, req, id, c),
        ("DELETE", ["contacts", id]) => objects::delete_contact(app, id, c),
        ("GET", ["hosts"]) => objects::list_hosts(app, c),
        ("POST", ["hosts"]) => objects::create_host(app, req, c),
        ("GET", ["hosts", name]) => objects::get_host(app, name, c),
        ("PATCH", ["hosts", name]) => objects::patch_host(app, req, name, c),
        ("DELETE", ["hosts", name]) => objects::delete_host(app, name, c),
        ("PATCH", ["domains", name]) => native::patch_domain(app, req, name, c),
        ("POST", ["domains", "renew"]) => native::bulk_renew(app, req, c),
        ("GET", ["auto-renew"]) => native::get_auto_renew(app, req, c),
        ("PUT", ["auto-renew"]) => native::put_auto_renew(app, req, c),

        ("GET", ["notification"]) => native::next_notification(app, c),
        ("DELETE", ["notification", id]) => {
            native::read_notification(app, id_segment("notification", id)?, c)
        }
        ("GET", ["notifications"]) => native::list_notifications(app, req, c),
        ("GET", ["events"]) => native::events(app, req, c),
        ("GET", ["mail"]) => native::mail(app, req, c),
        ("PUT", ["webhook"]) => webhooks::put(app, req, c),
        ("GET", ["webhook"]) => webhooks::get(app, c),
        ("DELETE", ["webhook"]) => webhooks::delete(app, c),
        ("GET", ["webhook-deliveries"]) => webhooks::deliveries(app, req, c),

        ("GET", ["clock"]) => native::get_clock(app),
        ("POST", ["clock"]) => native::set_clock(app, req, c),
        ("POST", ["tick"]) => native::tick(app, c),
        ("GET", ["sim", "rules"]) => native::get_rules(app, c),
        ("PUT", ["sim", "rules"]) => native::put_rules(app, req, c),
        ("POST", ["admin", "reset"]) => ops::reset(app, c),

        ("GET", ["session"]) => session::current(app, req),
        ("DELETE", ["session"]) => session::sign_out(app, req),
        ("GET", ["sessions"]) => session::list(app, req, c),
        ("DELETE", ["sessions", id]) => session::revoke(app, id_segment("session", id)?, c),
        ("PUT", ["accounts", id, "password"]) => {
            session::set_password(app, req, id_segment("account", id)?, c)
        }
        ("POST", ["accounts", id, "password-link"]) => {
            session::password_link(app, id_segment("account", id)?, c)
        }
        ("POST", ["accounts", id, "unlock"]) => session::unlock(app, id_segment("account", id)?, c),
        ("PATCH", ["accounts", id]) => web::edit_account(app, req, id_segment("account", id)?, c),
        ("GET", ["charges"]) => web::charges(app, req, c),
        ("GET", ["charges.csv"]) => web::charges_csv(app, req, c),
        ("GET", ["tokens"]) => web::tokens(app, c),
        ("POST", ["tokens"]) => web::new_token(app, c),
        ("DELETE", ["tokens", id]) => web::revoke_token(app, req, id_segment("token", id)?, c),
        ("POST", ["mail", id, "resend"]) => web::resend_mail(app, id_segment("mail", id)?, c),

        _ => Err(unserved(path)),
    }
}

/// The refusal of a method `api` does not serve on `path`: 405 naming the
/// methods it does serve, or 404 when it serves none.
fn unserved(path: &[&str]) -> Error {
    match allowed(path) {
        Some(allowed) => Error::MethodNotAllowed(allowed),
        None => Error::not_found(quoted(&format!("/api/v1/{}", path.join("/")))),
    }
}

/// The routes of `ROUTES` that serve `path` (under `/api/v1/`), as
/// (method, pattern); none when no method does. A route naming a segment
/// wins over one with a parameter there: `requests/bulk` is not the
/// request `{id}`.
fn fitting(path: &[&str]) -> Vec<(&'static str, &'static str)> {
    let mut fitting: Vec<(usize, &str, &str)> = ROUTES
        .iter()
        .filter_map(|(method, pattern)| {
            let parts: Vec<&str> = pattern.trim_start_matches("/api/v1/").split('/').collect();
            let fits = parts.len() == path.len()
                && parts
                    .iter()
                    .zip(path)
                    .all(|(p, seg)| p.starts_with('{') || p == seg);
            let params = parts.iter().filter(|p| p.starts_with('{')).count();
            fits.then_some((params, *method, *pattern))
        })
        .collect();
    let fewest = fitting.iter().map(|(params, ..)| *params).min();
    fitting.retain(|(params, ..)| Some(*params) == fewest);
    fitting
        .into_iter()
        .map(|(_, method, pattern)| (method, pattern))
        .collect()
}

/// The methods `api` serves on `path`, as an `Allow` header lists them;
/// `None` when no method does (404).
fn allowed(path: &[&str]) -> Option<String> {
    let methods: Vec<&str> = fitting(path).into_iter().map(|(m, _)| m).collect();
    (!methods.is_empty()).then(|| with_head(&methods))
}

/// Refuses a query parameter the operation on `path` does not take (the
/// API document lists each operation's), and one given twice: a typo such
/// as `?stat=new` would otherwise list everything, and of `state=new&
/// state=queued` only one would count. A path no route serves is left to
/// the 404 or 405 that follows.
fn check_query(method: &str, path: &[&str], query: &[(String, String)]) -> Result<()> {
    if query.is_empty() {
        return Ok(());
    }
    let Some((_, pattern)) = fitting(path).into_iter().find(|(m, _)| *m == method) else {
        return Ok(());
    };
    let takes = ops::query_parameters(method, pattern);
    for (i, (name, value)) in query.iter().enumerate() {
        if !takes.contains(&name.as_str()) {
            let takes = match takes.as_slice() {
                [] => "none".to_string(),
                names => names.join(", "),
            };
            // The name is the client's: quoted, and cut when long.
            return Err(Error::invalid(
                "query",
                format!(
                    "unknown parameter {}; this operation takes {takes}",
                    quoted(name)
                ),
            ));
        }
        let again = query[..i].iter().any(|(n, v)| n == name && !v.is_empty());
        if again && !value.is_empty() {
            return Err(Error::invalid(
                name.as_str(),
                "given more than once (several values go in one, separated by commas)",
            ));
        }
    }
    Ok(())
}

/// An `Allow` value: `methods`, sorted, with HEAD wherever GET is (the
/// HTTP layer answers HEAD as GET).
pub fn with_head(methods: &[&str]) -> String {
    let mut methods = methods.to_vec();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

/// Every route of `api` as data (method, path with `{param}` segments), for
/// the OpenAPI document's test. A unit test below keeps it equal to the
/// match arms of `api`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/accounts"),
    ("POST", "/api/v1/accounts"),
    ("PUT", "/api/v1/me/epp-password"),
    ("PUT", "/api/v1/accounts/{id}/epp-password"),
    ("POST", "/api/v1/requests"),
    ("GET", "/api/v1/requests"),
    ("GET", "/api/v1/requests.csv"),
    ("POST", "/api/v1/requests/cancel-pending"),
    ("POST", "/api/v1/requests/bulk"),
    ("GET", "/api/v1/requests/{id}"),
    ("PATCH", "/api/v1/requests/{id}"),
    ("POST", "/api/v1/requests/{id}/{action}"),
    ("GET", "/api/v1/scheduled"),
    ("GET", "/api/v1/domains"),
    ("POST", "/api/v1/domains"),
    ("GET", "/api/v1/domains/{name}"),
    ("POST", "/api/v1/domains/{name}/transfer/{action}"),
    ("GET", "/api/v1/contacts"),
    ("POST", "/api/v1/contacts"),
    ("GET", "/api/v1/contacts/{id}"),
    ("PATCH", "/api/v1/contacts/{id}"),
    ("DELETE", "/api/v1/contacts/{id}"),
    ("GET", "/api/v1/hosts"),
    ("POST", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/{name}"),
    ("PATCH", "/api/v1/hosts/{name}"),
    ("DELETE", "/api/v1/hosts/{name}"),
    ("PATCH", "/api/v1/domains/{name}"),
    ("POST", "/api/v1/domains/renew"),
    ("GET", "/api/v1/auto-renew"),
    ("PUT", "/api/v1/auto-renew"),
    ("GET", "/api/v1/notification"),
    ("DELETE", "/api/v1/notification/{id}"),
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/mail"),
    ("GET", "/api/v1/clock"),
    ("POST", "/api/v1/clock"),
    ("POST", "/api/v1/tick"),
    ("GET", "/api/v1/sim/rules"),
    ("PUT", "/api/v1/sim/rules"),
    ("POST", "/api/v1/admin/reset"),
    ("PUT", "/api/v1/webhook"),
    ("GET", "/api/v1/webhook"),
    ("DELETE", "/api/v1/webhook"),
    ("GET", "/api/v1/webhook-deliveries"),
    ("POST", "/api/v1/session"),
    ("POST", "/api/v1/password-link"),
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/sessions"),
    ("DELETE", "/api/v1/sessions/{id}"),
    ("PUT", "/api/v1/accounts/{id}/password"),
    ("POST", "/api/v1/accounts/{id}/password-link"),
    ("POST", "/api/v1/accounts/{id}/unlock"),
    ("PATCH", "/api/v1/accounts/{id}"),
    ("GET", "/api/v1/charges"),
    ("GET", "/api/v1/charges.csv"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("POST", "/api/v1/mail/{id}/resend"),
];

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// The `(method, [segments])` patterns of the match arms in `api`, read
    /// from this file's source, as (method, path) with `{}` for a variable.
    fn arms() -> Vec<(String, String)> {
        let source = include_str!("router.rs");
        let body = source
            .split("fn api(")
            .nth(1)
            .and_then(|s| s.split("\n}\n").next())
            .unwrap_or_default();
        body.lines()
            .filter_map(|line| {
                let line = line.trim();
                let rest = line.strip_prefix("(\"")?;
                let (method, rest) = rest.split_once("\", [")?;
                let (segs, _) = rest.split_once("])")?;
                let path: Vec<String> = segs
                    .split(", ")
                    .map(|seg| match seg.strip_prefix('"') {
                        Some(lit) => lit.trim_end_matches('"').to_string(),
                        None => "{}".to_string(),
                    })
                    .collect();
                Some((method.to_string(), format!("/api/v1/{}", path.join("/"))))
            })
            .collect()
    }

    fn normalised(path: &str) -> String {
        path.split('/')
            .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn routes_list_every_arm_of_the_api_match() {
        let mut arms = arms();
        let mut listed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), normalised(p)))
            .collect();
        assert!(arms.len() > 20, "parsed only {arms:?}");
        arms.sort();
        listed.sort();
        assert_eq!(arms, listed);
    }
}
