//! Every route in one table: method and path to handler.

use crate::error::{Error, Result};
use crate::face::native::{self, id_segment};
use crate::face::webhooks;
use crate::store::accounts::{self, Account};
use crate::App;

use super::{assets, Req, Resp};

/// The account behind `Authorization: Bearer TOKEN`.
pub fn bearer(app: &App, req: &Req) -> Result<Account> {
    let token = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(Error::Unauthorized)?
        .to_string();
    app.db
        .read(move |conn| accounts::authenticate(conn, &token))?
        .ok_or(Error::Unauthorized)
}

pub fn route(app: &App, req: &Req) -> Resp {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let segs: &[&str] = if segments.last() == Some(&"") && segments.len() > 1 {
        &segments[..segments.len() - 1]
    } else {
        &segments
    };
    let method = req.method.as_str();
    match segs {
        ["healthz"] if method == "GET" => native::healthz(),
        ["readyz"] if method == "GET" => native::readyz(app),
        ["api", "v1", rest @ ..] => api(app, req, method, rest).into(),
        _ if method == "GET" || method == "HEAD" => assets::serve(req)
            .unwrap_or_else(|| Resp::error(&Error::not_found(req.path.to_string()))),
        _ => Resp::error(&Error::not_found(format!("{} {}", req.method, req.path))),
    }
}

fn api(app: &App, req: &Req, method: &str, path: &[&str]) -> Result<Resp> {
    let caller = bearer(app, req)?;
    let c = &caller;
    match (method, path) {
        ("GET", ["me"]) => native::me(app, c),
        ("GET", ["accounts"]) => native::list_accounts(app, c),
        ("POST", ["accounts"]) => native::create_account(app, req, c),

        ("POST", ["requests"]) => native::create_request(app, req, c),
        ("GET", ["requests"]) => native::list_requests(app, req, c),
        ("GET", ["requests.csv"]) => native::export_csv(app, req, c),
        ("POST", ["requests", "cancel-pending"]) => native::cancel_pending(app, req, c),
        ("POST", ["requests", "bulk"]) => native::bulk(app, req, c),
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

        (_, _) if known(path) => Err(Error::MethodNotAllowed),
        _ => Err(Error::not_found(format!("/api/v1/{}", path.join("/")))),
    }
}

/// Whether some method serves `path` (for 405 rather than 404).
fn known(path: &[&str]) -> bool {
    matches!(
        path,
        ["me"]
            | ["accounts"]
            | ["requests"]
            | ["requests.csv"]
            | ["requests", _]
            | ["requests", _, _]
            | ["scheduled"]
            | ["domains"]
            | ["domains", _]
            | ["notification"]
            | ["notification", _]
            | ["notifications"]
            | ["events"]
            | ["mail"]
            | ["webhook"]
            | ["webhook-deliveries"]
            | ["clock"]
            | ["tick"]
            | ["sim", "rules"]
    )
}
