//! Transfers of a domain from the account holding it here to another
//! account here: the row that says who is who and how it ended, the start
//! of the wait on the holder, its end (approved, rejected, cancelled, or
//! approved by time), and the notifications to the holder. The work
//! request carries the state; every move of it goes through `transition`.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use crate::clock::{Millis, DAY};
use crate::error::{Error, Result};
use crate::form;
use crate::state::{string_enum, Event, Failure, Operation, Resolution, State, WaitingOn};
use crate::store::accounts::{ser_opt_time, ser_time};
use crate::store::domains::{self, Domain};
use crate::store::notifications::NewNotification;
use crate::store::requests::{self, Request};
use crate::store::transition::{self, Change, Moves, Next, Who};
use crate::store::{deliveries, Cached};

/// Transfers started or approved by time per tick job at most.
const BATCH: i64 = 64;

string_enum!(
    /// How a transfer stands: RFC 5730's `trStatus` values.
    TransferStatus {
        Pending => "pending",
        ClientApproved => "clientApproved",
        ClientRejected => "clientRejected",
        ClientCancelled => "clientCancelled",
        ServerApproved => "serverApproved",
    }
);

impl Serialize for TransferStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A transfer between two accounts of this desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub domain: String,
    pub status: TransferStatus,
    pub gaining_account: i64,
    pub gaining_name: String,
    pub losing_account: i64,
    pub losing_name: String,
    #[serde(serialize_with = "ser_time")]
    pub requested_at: Millis,
    /// When the ticker approves it unless it is answered before.
    #[serde(serialize_with = "ser_time")]
    pub act_by: Millis,
    /// The domain's expiry once transferred.
    #[serde(serialize_with = "ser_opt_time")]
    pub expires_at: Option<Millis>,
    pub request_id: i64,
}

const SELECT: &str = "select t.domain, t.status, t.gaining_account, g.name, t.losing_account,
        l.name, t.requested_at, t.act_by, t.expires_at, t.request_id, r.state, r.failure
     from transfers t join accounts g on g.id = t.gaining_account
     join accounts l on l.id = t.losing_account join requests r on r.id = t.request_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Transfer> {
    let status: TransferStatus = super::enum_col(row, 1)?;
    let state: State = super::enum_col(row, 10)?;
    let failure: Option<Failure> = super::opt_enum_col(row, 11)?;
    Ok(Transfer {
        domain: row.get(0)?,
        status: settled(status, state, failure),
        gaining_account: row.get(2)?,
        gaining_name: row.get(3)?,
        losing_account: row.get(4)?,
        losing_name: row.get(5)?,
        requested_at: row.get(6)?,
        act_by: row.get(7)?,
        expires_at: row.get(8)?,
        request_id: row.get(9)?,
    })
}

/// A pending transfer whose request an operator closed by hand ended as
/// the request did.
fn settled(status: TransferStatus, state: State, failure: Option<Failure>) -> TransferStatus {
    match (status, state) {
        (TransferStatus::Pending, State::Finished) => TransferStatus::ServerApproved,
        (TransferStatus::Pending, _) if state != State::Processing => match failure {
            Some(Failure::Aborted) => TransferStatus::ClientCancelled,
            _ => TransferStatus::ClientRejected,
        },
        (status, _) => status,
    }
}

/// The newest transfer of `domain`, pending or ended.
pub fn latest(conn: &Connection, domain: &str) -> Result<Option<Transfer>> {
    let sql = format!("{SELECT} where t.domain = ?1 order by t.request_id desc limit 1");
    Ok(conn.one(&sql, [domain], from_row).optional()?)
}

/// The pending transfer of `domain`, if any.
pub fn pending(conn: &Connection, domain: &str) -> Result<Option<Transfer>> {
    Ok(latest(conn, domain)?.filter(|t| t.status == TransferStatus::Pending))
}

/// Whether `req`, a transfer request, is for a name another account holds
/// here: the name's row if so.
pub fn held_by_another(conn: &Connection, req: &Request) -> Result<Option<Domain>> {
    if req.operation != Operation::Transfer {
        return Ok(None);
    }
    Ok(domains::by_name(conn, &req.domain)?.filter(|d| d.account_id != req.account_id))
}

/// Why `gainer` may not have `held` transferred with `auth_code` now.
pub fn refusal(conn: &Connection, held: &Domain, auth_code: &str) -> Result<Option<Error>> {
    let name = &held.name;
    Ok(if held.transfer_lock {
        Some(Error::Prohibited(format!(
            "{name} is locked against transfers (clientTransferProhibited)"
        )))
    } else if held.auth_code != auth_code {
        Some(Error::WrongAuth(format!(
            "the auth code does not match that of {name}"
        )))
    } else if pending(conn, name)?.is_some() {
        Some(Error::TransferPending(format!(
            "a transfer of {name} is pending already"
        )))
    } else {
        None
    })
}

/// Starts the wait of `req` (queued, or processing and not waiting) on
/// the holder of `held` until `now + wait`: the request is claimed and
/// waits on its registrant, the transfer's row is written and the holder
/// told. `face` names where it was asked for, for the history.
pub fn start(
    conn: &Connection,
    req: Request,
    held: &Domain,
    wait: Millis,
    face: &str,
    now: Millis,
) -> Result<Transfer> {
    let act_by = now + wait;
    let losing = super::accounts::get(conn, held.account_id)?;
    let (request_id, gaining, period) = (req.id, req.account_id, form::period(&req.params));
    let reason = format!(
        "waiting for {} to approve the transfer (asked through {face}; approved by time at {})",
        losing.name,
        crate::clock::format(act_by)
    );
    wait_on_holder(conn, req, reason, act_by, now)?;
    conn.exec(
        "insert into transfers (request_id, domain, status, gaining_account, losing_account,
                                requested_at, act_by, expires_at)
         values (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7)",
        params![
            request_id,
            held.name,
            gaining,
            held.account_id,
            now,
            act_by,
            held.expires_at + period * 365 * DAY
        ],
    )?;
    let pending = TransferStatus::Pending;
    notify_holder(conn, request_id, held.account_id, &held.name, pending, now)?;
    by_request(conn, request_id)
}

/// Moves `req` (queued, or processing and not waiting) on to wait on its
/// registrant, the holder, until `until`: a queued one is claimed first.
fn wait_on_holder(
    conn: &Connection,
    req: Request,
    reason: String,
    until: Millis,
    now: Millis,
) -> Result<()> {
    let who = Who::system("regdesk");
    let change = Change {
        reason: Some(reason),
        wait_until: Some(until),
        ..Change::default()
    };
    let wait = Event::Wait(WaitingOn::Registrant);
    if req.state != State::Queued {
        transition::apply(conn, req, wait, &who, change, now)?;
        return Ok(());
    }
    let next = |_: &Request| {
        Ok(Some(Next {
            event: wait.clone(),
            who: who.clone(),
            change: change.clone(),
        }))
    };
    let claim = Moves::Then(Event::Claim, &next);
    transition::apply(conn, req, claim, &who, Change::default(), now)?;
    Ok(())
}

/// The transfer work request `request_id` carries, if it is one.
pub fn of_request(conn: &Connection, request_id: i64) -> Result<Option<Transfer>> {
    let sql = format!("{SELECT} where t.request_id = ?1");
    Ok(conn.one(&sql, [request_id], from_row).optional()?)
}

fn by_request(conn: &Connection, request_id: i64) -> Result<Transfer> {
    of_request(conn, request_id)?
        .ok_or_else(|| Error::Internal(format!("transfer of request {request_id} not found")))
}

/// Tells the holder (the losing account) how a transfer stands, in its
/// queue and through its webhook.
fn notify_holder(
    conn: &Connection,
    request_id: i64,
    account_id: i64,
    domain: &str,
    status: TransferStatus,
    now: Millis,
) -> Result<()> {
    let message = match status {
        TransferStatus::Pending => {
            format!("A transfer of {domain} to another account awaits your answer")
        }
        other => format!("The transfer of {domain} to another account ended: {other}"),
    };
    deliveries::notify(
        conn,
        &NewNotification {
            account_id,
            request_id: Some(request_id),
            action: "transfer",
            status: status.as_str(),
            message,
            domain,
        },
        now,
    )?;
    Ok(())
}

/// Ends the pending transfer `t` as `status` (any but pending), with the
/// request's matching move made by `who`; the holder is told (the gainer
/// is told by the request's own move).
pub fn end(
    conn: &Connection,
    t: &Transfer,
    status: TransferStatus,
    who: &Who,
    now: Millis,
) -> Result<Transfer> {
    let (resolution, why) = match status {
        TransferStatus::ClientApproved => (Resolution::Finished, "approved by the holder"),
        TransferStatus::ServerApproved => (Resolution::Finished, "approved by time"),
        TransferStatus::ClientRejected => (
            Resolution::Failed(Failure::Declined),
            "rejected by the holder",
        ),
        TransferStatus::ClientCancelled => (
            Resolution::Failed(Failure::Aborted),
            "cancelled by the gaining account",
        ),
        TransferStatus::Pending => {
            return Err(Error::Internal("a transfer cannot end as pending".into()))
        }
    };
    let why = format!("transfer {why}");
    let change = Change {
        reason: Some(why.clone()),
        last_error: matches!(resolution, Resolution::Failed(_)).then_some(why),
        ..Change::default()
    };
    transition::apply(
        conn,
        t.request_id,
        Event::Resolve(resolution),
        who,
        change,
        now,
    )?;
    conn.exec(
        "update transfers set status = ?2, ended_at = ?3 where request_id = ?1",
        params![t.request_id, status.as_str(), now],
    )?;
    notify_holder(conn, t.request_id, t.losing_account, &t.domain, status, now)?;
    by_request(conn, t.request_id)
}

/// What a tick does for transfers between accounts: starts the wait of
/// transfer requests for names another account holds (those placed
/// through any face and claimed or authorised since), and approves those
/// whose time to answer has passed. How many it moved.
pub fn tick(conn: &Connection, now: Millis, wait: Millis) -> Result<usize> {
    let mut moved = 0;
    let to_start: Vec<i64> = conn.all(
        &format!(
            "select r.id from requests r indexed by requests_open_transfers
             join domains d on d.name = r.domain
             where r.operation = 'transfer' and r.state in ('queued', 'processing')
               and d.account_id <> r.account_id
               and ((r.state = 'queued' and (r.exec_date is null or r.exec_date <= +?1)
                     and (r.depends_on is null or exists (select 1 from requests p
                          where p.id = r.depends_on and p.state = 'finished')))
                    or r.waiting_on = 'internal')
             order by r.id limit {BATCH}"
        ),
        [now],
        |r| r.get(0),
    )?;
    for id in to_start {
        moved += isolated(conn, id, || {
            start_or_refuse(conn, requests::load(conn, id)?, wait, now)
        })?;
    }
    let overdue: Vec<(i64, String)> = conn.all(
        &format!(
            "select t.request_id, t.domain from transfers t join requests r on r.id = t.request_id
             where t.status = 'pending' and t.act_by <= +?1
               and r.state = 'processing' and r.waiting_on = 'registrant'
             order by t.act_by limit {BATCH}"
        ),
        [now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (id, domain) in overdue {
        moved += isolated(conn, id, || {
            let Some(t) = pending(conn, &domain)? else {
                return Ok(());
            };
            let who = Who::system("system");
            end(conn, &t, TransferStatus::ServerApproved, &who, now).map(|_| ())
        })?;
    }
    Ok(moved)
}

/// Runs `f` for request `id` in a savepoint: a request that cannot be
/// moved is logged and left as it was, and the others go on. 1 when it
/// moved.
fn isolated(conn: &Connection, id: i64, f: impl FnOnce() -> Result<()>) -> Result<usize> {
    match super::in_savepoint(conn, "transfer", f)? {
        Ok(()) => Ok(1),
        Err(e) => {
            log::error!("transfer request {id}: {e}");
            Ok(0)
        }
    }
}

/// Starts the wait of a transfer request the ticker found, or refuses it
/// as the registry would: locked, a wrong auth code (which the owner can
/// fix), or another transfer pending.
fn start_or_refuse(conn: &Connection, req: Request, wait: Millis, now: Millis) -> Result<()> {
    let Some(held) = held_by_another(conn, &req)? else {
        return Ok(());
    };
    let code = req
        .params
        .get("auth_code")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let who = Who::system("regdesk");
    let claimed = if req.state == State::Queued {
        None
    } else {
        Some(req.clone())
    };
    let Some(refused) = refusal(conn, &held, code)? else {
        start(conn, req, &held, wait, "the order", now)?;
        return Ok(());
    };
    let req = match claimed {
        Some(req) => req,
        None => transition::apply(conn, req, Event::Claim, &who, Change::default(), now)?,
    };
    let message = refused.message();
    let (event, change) = match refused {
        Error::WrongAuth(_) => (
            Event::UserError,
            Change {
                reason: Some(message.clone()),
                annotation: Some(message),
                missing: Some(vec!["auth_code".into()]),
                ..Change::default()
            },
        ),
        _ => (
            Event::Refused(Failure::Registry),
            Change {
                reason: Some(message),
                ..Change::default()
            },
        ),
    };
    transition::apply(conn, req, event, &who, change, now)?;
    Ok(())
}
