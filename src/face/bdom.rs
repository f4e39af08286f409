//! The BDOM-style task face (SPEC section 4, seed 004):
//! `/bdom/task/OPCODE/TASK_ID/STATUS/OBJECT/NAME/USER_ID/`. A task is a work
//! request, its id the request id, USER_ID the account id. `status` lists
//! tasks, `scheduled` lists queued requests waiting for their exec date,
//! `delete` cancels scheduled tasks named in a `Task.xsd` body. Every answer,
//! errors included, is XML.

use base64::Engine as _;

use crate::clock;
use crate::desk::{self, filter::Filter};
use crate::error::{Error, Result};
use crate::face::bdom_xml::{
    self, parse_delete_body, parse_task_path, write_error, write_message, write_scheduled,
    write_tasks, ScheduledRow, TaskPath, TaskRow, TaskStatus, TaskVerb,
};
use crate::http::{Req, Resp};
use crate::state::{self, Operation};
use crate::store::accounts::{self, Account};
use crate::store::requests::Request;
use crate::App;

/// Most tasks one listing shows: the newest ones, oldest first.
pub const MAX_TASKS: i64 = 500;

const CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// Serves one request under `/bdom/task/`. Credentials are checked first,
/// then the path, the method and whose tasks are asked for.
pub fn serve(app: &App, req: &Req) -> Resp {
    match handle(app, req) {
        Ok(resp) => resp,
        Err(e) => error(&e),
    }
}

fn handle(app: &App, req: &Req) -> Result<Resp> {
    let caller = authenticate(app, req)?;
    let path =
        parse_task_path(&req.path).map_err(|e| Error::Malformed(format!("bad task path: {e}")))?;
    // The `Allow` header of a wrong method: HEAD is answered as GET.
    let (wanted, allow) = match path.verb {
        TaskVerb::Status | TaskVerb::Scheduled => ("GET", "GET, HEAD"),
        TaskVerb::Delete => ("POST", "POST"),
    };
    if req.method != wanted {
        return Err(Error::MethodNotAllowed(allow.into()));
    }
    if !caller.is_operator() && path.user_id != caller.id {
        return Err(Error::Forbidden(format!(
            "USER_ID {} is not your account ({})",
            path.user_id, caller.id
        )));
    }
    match path.verb {
        TaskVerb::Status => status(app, path),
        TaskVerb::Scheduled => scheduled(app, path),
        TaskVerb::Delete => delete(app, req, path, caller),
    }
}

fn xml(status: u16, body: String) -> Resp {
    Resp::new(status, CONTENT_TYPE, body)
}

/// An error as `<error><code/><message/></error>`, with the HTTP status of
/// the shared error mapping (also for refusals before a handler runs, see
/// `http::router::refusal`).
pub fn error(err: &Error) -> Resp {
    err.log_server_side();
    let message = match err {
        Error::Unauthorized => "missing or invalid credentials: send HTTP Basic USER_ID:TOKEN \
                                or Authorization: Bearer TOKEN"
            .into(),
        other => other.message(),
    };
    let resp = xml(err.status(), write_error(err.status(), &message));
    match err {
        Error::Unauthorized => resp.with_header("WWW-Authenticate", "Basic realm=\"regdesk\""),
        Error::MethodNotAllowed(allowed) => resp.with_header("Allow", allowed),
        _ => resp,
    }
}

// ----- credentials -----------------------------------------------------------

/// The caller, from HTTP Basic `USER_ID:TOKEN` (the token must belong to
/// that account) or `Authorization: Bearer TOKEN`.
fn authenticate(app: &App, req: &Req) -> Result<Account> {
    let header = req.header("authorization").ok_or(Error::Unauthorized)?;
    let (scheme, value) = header.trim().split_once(' ').ok_or(Error::Unauthorized)?;
    let value = value.trim();
    let (user, token) = if scheme.eq_ignore_ascii_case("basic") {
        let (user, token) = basic(value).ok_or(Error::Unauthorized)?;
        (Some(user), token)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (None, value.to_string())
    } else {
        return Err(Error::Unauthorized);
    };
    if !accounts::presentable(&token) {
        return Err(Error::Unauthorized);
    }
    let account = app.authenticate(&token)?.ok_or(Error::Unauthorized)?;
    match user {
        Some(id) if id != account.id => Err(Error::Unauthorized),
        _ => Ok(account),
    }
}

/// Decodes `base64(USER_ID:TOKEN)`; `None` when it is not that.
fn basic(value: &str) -> Option<(i64, String)> {
    if value.len() > 1024 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    let user = user.parse::<i64>().ok().filter(|id| *id > 0)?;
    Some((user, token.to_string()))
}

// ----- mapping ---------------------------------------------------------------

/// The task `opcode` of an operation: BDOM names transfers by direction.
pub fn opcode(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "create",
        Operation::Transfer => "transfer-in",
        Operation::Release => "transfer-out",
        Operation::Renew => "renew",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Hold => "hold",
        Operation::Backorder => "backorder",
        Operation::Privacy => "privacy",
        Operation::Restore => "restore",
    }
}

/// The `tld_id` of a domain's TLD: a fixed table (`.de` is 7, as in the
/// seed's examples); a TLD not in it is 0.
pub fn tld_id(domain: &str) -> i64 {
    const TLDS: [&str; 25] = [
        "com", "net", "org", "info", "biz", "eu", "de", "at", "ch", "nl", "be", "uk", "fr", "it",
        "es", "us", "io", "co", "me", "tv", "cc", "name", "mobi", "dk", "pl",
    ];
    let tld = domain.rsplit('.').next().unwrap_or_default();
    TLDS.iter()
        .position(|t| t.eq_ignore_ascii_case(tld))
        .map_or(0, |i| i as i64 + 1)
}

fn task_row(r: &Request) -> TaskRow {
    TaskRow {
        date: clock::format_plain(r.created_at),
        name: r.domain.clone(),
        object: bdom_xml::TaskObject::Domain.as_str().into(),
        opcode: opcode(r.operation).into(),
        status: state::task_status(r.state, r.waiting_on, r.failure).into(),
        task_id: r.id,
        user_id: r.account_id,
    }
}

fn scheduled_row(r: &Request) -> ScheduledRow {
    ScheduledRow {
        class: "RELAUNCH".into(),
        exec_date: r.exec_date.map(clock::format_date).unwrap_or_default(),
        name: r.domain.clone(),
        object: bdom_xml::TaskObject::Domain.as_str().into(),
        opcode: opcode(r.operation).into(),
        task_id: r.id,
        time: clock::format_plain(r.created_at),
        tld_id: tld_id(&r.domain),
        r#type: "COMPLEX".into(),
    }
}

// ----- queries ---------------------------------------------------------------

/// The filter of a path: the tasks of `path.user_id`, narrowed by its
/// TASK_ID, NAME and STATUS. Every task is about a domain, so OBJECT
/// `domain` filters nothing.
fn path_filter(path: &TaskPath) -> Filter {
    Filter {
        account_id: Some(path.user_id),
        id: path.task_id,
        domain: path.name.clone(),
        task_status: path.status.map(TaskStatus::as_str),
        ..Filter::default()
    }
}

// ----- handlers --------------------------------------------------------------

/// `GET …/status/…`: the newest [`MAX_TASKS`] matching tasks, oldest first.
/// A TASK_ID that matches nothing is 404; a NAME that matches nothing is an
/// empty list.
fn status(app: &App, path: TaskPath) -> Result<Resp> {
    desk::accounts::require(app, path.user_id)?;
    let listed = desk::filter::list(app, path_filter(&path), None, MAX_TASKS)?;
    let mut rows = listed.rows;
    rows.reverse();
    if let (Some(id), true) = (path.task_id, rows.is_empty()) {
        return Err(Error::not_found(format!(
            "task {id} of user {} matching this path",
            path.user_id
        )));
    }
    let single = path.task_id.is_some() || path.name.is_some();
    let rows: Vec<TaskRow> = rows.iter().map(task_row).collect();
    Ok(xml(200, write_tasks(&rows, single)))
}

/// `GET …/scheduled/…`: queued requests whose exec date is still ahead,
/// soonest first (at most `desk::filter::MAX_SCHEDULED`).
fn scheduled(app: &App, path: TaskPath) -> Result<Resp> {
    desk::accounts::require(app, path.user_id)?;
    let listed = desk::filter::scheduled(app, path_filter(&path))?;
    let rows: Vec<ScheduledRow> = listed.rows.iter().map(scheduled_row).collect();
    Ok(xml(200, write_scheduled(&rows)))
}

/// `POST …/delete/-/-/-/-/USER_ID/`: aborts every task the body names, all
/// or nothing. Each must be a scheduled task of USER_ID; otherwise the
/// error comes back out of the write, whose savepoint then rolls back.
fn delete(app: &App, req: &Req, path: TaskPath, caller: Account) -> Result<Resp> {
    if path.task_id.is_some() || path.status.is_some() || path.object.is_some() {
        return Err(Error::Malformed(
            "delete names its tasks in the body: TASK_ID, STATUS, OBJECT and NAME must be -".into(),
        ));
    }
    let mut ids = parse_delete_body(&req.body)
        .map_err(|e| Error::Malformed(format!("the body is not valid against Task.xsd: {e}")))?;
    // A task named twice is cancelled once.
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    desk::requests::cancel_scheduled(app, &caller, path.user_id, ids)?;
    Ok(xml(200, write_message("delete ok")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_and_tld_ids() {
        let ops: Vec<&str> = Operation::ALL.iter().map(|o| opcode(*o)).collect();
        assert_eq!(
            ops,
            [
                "create",
                "transfer-in",
                "renew",
                "update",
                "transfer-out",
                "delete",
                "hold",
                "backorder",
                "privacy",
                "restore"
            ]
        );
        assert_eq!(tld_id("nic-domain-example.de"), 7);
        assert_eq!(tld_id("example.com"), 1);
        assert_eq!(tld_id("example.DE"), 7);
        assert_eq!(tld_id("example.zz"), 0);
    }

    #[test]
    fn basic_credentials() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(basic(&enc("13048:tok:en")), Some((13048, "tok:en".into())));
        assert_eq!(basic(&enc("13048:")), Some((13048, String::new())));
        assert_eq!(basic(&enc("alice:tok")), None);
        assert_eq!(basic(&enc("0:tok")), None);
        assert_eq!(basic(&enc("13048")), None);
        assert_eq!(basic("%%%"), None);
    }
}
