//! The EPP face (RFC 5730-5733): a session's commands, read by `epp_xml`,
//! carried out through the desk, and answered as RFC 5730's examples are.
//! The listener (`crate::epp`) owns the connection, TLS and framing; this
//! owns what a session has said: who logged in, its failed logins, and
//! the slots each account's sessions hold. RFC 3915's registry grace
//! period extension rides on domain info and update.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::clock::{self, Millis, DAY};
use crate::desk::contacts::{self, Availability, ContactChange, NewContact};
use crate::desk::credentials::{self, Secret};
use crate::desk::epp as desk_epp;
use crate::desk::hosts;
use crate::desk::lifecycle;
use crate::desk::transfers::{self, Transfer};
use crate::error::{Error, Result};
use crate::face::json_args::{body_object, only_keys, req_str};
use crate::form;
use crate::http::{Req, Resp};
use crate::state::{Failure, Operation, State};
use crate::store::accounts::Account;
use crate::store::domains::Domain;
use crate::store::epp::Transaction;
use crate::store::requests::{NewRequest, Request};
use crate::App;

use super::epp_xml::{
    self, Answer, Command, ContactFields, DomainCreate, DomainUpdate, MsgQ, Object, Period, Report,
    Request as Frame, Restore, TransferOp, Writer, DOMAIN_NS, RGP_NS,
};

/// Wrong passwords a session may send; the next closes it.
const MAX_LOGIN_FAILURES: u32 = 3;
/// The furthest an expiry may lie ahead.
const MAX_YEARS_AHEAD: i64 = 10;

/// How many sessions each account has logged in, against a bound.
#[derive(Debug)]
pub struct AccountSlots {
    per_account: usize,
    held: Mutex<HashMap<i64, usize>>,
}

impl AccountSlots {
    pub fn new(per_account: usize) -> AccountSlots {
        AccountSlots {
            per_account,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, account: i64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(account).or_insert(0);
        if *n >= self.per_account {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, account: i64) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&account);
            }
        }
    }
}

/// What a command's answer is, before it is written.
struct Done {
    code: u16,
    res_data: Option<String>,
    msg_q: Option<MsgQ>,
    reason: Option<String>,
    extension: Option<String>,
}

impl Done {
    fn ok(code: u16) -> Done {
        Done {
            code,
            res_data: None,
            msg_q: None,
            reason: None,
            extension: None,
        }
    }

    fn with_data(code: u16, data: String) -> Done {
        Done {
            res_data: Some(data),
            ..Done::ok(code)
        }
    }
}

/// A logged-in command's circumstances: who sent it, and its
/// transaction ids (kept with the work request it places).
struct Ctx<'a> {
    app: &'a App,
    caller: &'a Account,
    cl_trid: Option<String>,
    sv_trid: String,
    /// The session's login named RFC 3915's extension: answers carry its data.
    rgp: bool,
}

impl Ctx<'_> {
    /// This command's transaction ids, to keep with its work request.
    fn transaction(&self, pending: bool) -> Transaction {
        Transaction {
            cl_trid: self.cl_trid.clone(),
            sv_trid: self.sv_trid.clone(),
            pending,
        }
    }
}

/// A refusal: its code and why.
#[derive(Debug)]
struct Fail {
    code: u16,
    reason: String,
}

fn fail(code: u16, reason: impl Into<String>) -> Fail {
    Fail {
        code,
        reason: reason.into(),
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        e.log_server_side();
        let code = match &e {
            Error::Malformed(_) => 2001,
            Error::Unauthorized => 2200,
            Error::Forbidden(_) => 2201,
            Error::NotFound(_) => 2303,
            Error::Conflict(_) => 2304,
            Error::TooLarge(_) => 2004,
            Error::Invalid { .. } => 2005,
            Error::Locked { .. } => 2502,
            Error::Exists(_) => 2302,
            Error::InUse(_) => 2305,
            Error::Prohibited(_) => 2304,
            Error::WrongAuth(_) => 2202,
            Error::TransferPending(_) => 2300,
            Error::NoTransfer(_) => 2301,
            Error::NotYours(_) => 2201,
            _ => 2400,
        };
        fail(code, e.message())
    }
}

type Outcome = Result<Done, Fail>;

/// A server transaction id: unique across restarts (the start time) and
/// within a run (a counter).
fn sv_trid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    });
    format!("RD-{start}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One EPP session: who is logged in, and how its logins have gone.
pub struct Session {
    app: Arc<App>,
    peer: IpAddr,
    slots: Arc<AccountSlots>,
    account: Option<Account>,
    failures: u32,
    /// The login named RFC 3915's extension among its `extURI`s.
    rgp: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(a) = &self.account {
            self.slots.give_back(a.id);
        }
    }
}

impl Session {
    pub fn new(app: Arc<App>, peer: IpAddr, slots: Arc<AccountSlots>) -> Session {
        Session {
            app,
            peer,
            slots,
            account: None,
            failures: 0,
            rgp: false,
        }
    }

    pub fn logged_in(&self) -> bool {
        self.account.is_some()
    }

    /// The greeting, sent on connecting and in answer to `<hello/>`.
    pub fn greeting(&self) -> String {
        let now = clock::format(self.app.clock.now());
        epp_xml::greeting("regdesk", &now)
    }

    /// Answers one frame's XML; `true` when the session ends with it.
    pub fn handle(&mut self, xml: &[u8]) -> (String, bool) {
        let sv = sv_trid();
        let (command, cl_trid) = match epp_xml::parse(xml) {
            Ok(Frame::Hello) => return (self.greeting(), false),
            Ok(Frame::Command { command, cl_trid }) => (command, cl_trid),
            Err(r) => return (answer(fail(r.code, r.message).into(), r.cl_trid, sv), false),
        };
        let outcome = match (command.as_ref(), self.account.clone()) {
            (Command::Login(_), Some(_)) => Err(fail(2002, "already logged in")),
            (Command::Login(login), None) => self.login(login),
            (Command::Logout, _) => Ok(Done::ok(1500)),
            (_, None) => Err(fail(2002, "log in first")),
            (_, Some(caller)) => {
                let ctx = Ctx {
                    app: &self.app,
                    caller: &caller,
                    cl_trid: cl_trid.clone(),
                    sv_trid: sv.clone(),
                    rgp: self.rgp,
                };
                run(&ctx, *command)
            }
        };
        let close = matches!(&outcome, Ok(d) if d.code == 1500)
            || matches!(&outcome, Err(f) if f.code >= 2500);
        let done = outcome.unwrap_or_else(Done::from);
        (answer(done, cl_trid, sv), close)
    }

    fn login(&mut self, login: &epp_xml::Login) -> Outcome {
        if login.version != "1.0" {
            return Err(fail(2100, "only EPP version 1.0 is served"));
        }
        if login.lang != "en" {
            return Err(fail(2102, "only lang \"en\" is served"));
        }
        let signed =
            credentials::sign_in(&self.app, Secret::Epp, &login.cl_id, &login.pw, self.peer);
        let account = match signed {
            Ok(a) => a,
            Err(Error::Unauthorized) => {
                self.failures += 1;
                if self.failures >= MAX_LOGIN_FAILURES {
                    return Err(fail(2501, "too many failed logins in this session"));
                }
                return Err(fail(2200, "wrong clID or pw"));
            }
            Err(Error::Locked { retry_after_secs }) => {
                return Err(fail(
                    2501,
                    format!(
                        "logins refused after repeated failures; retry in {retry_after_secs} s"
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        if !self.slots.take(account.id) {
            return Err(fail(2502, "this account has as many sessions as it may"));
        }
        if let Some(new_pw) = &login.new_pw {
            let changed =
                credentials::set_password(&self.app, &account, account.id, Secret::Epp, new_pw);
            if let Err(e) = changed {
                self.slots.give_back(account.id);
                return Err(e.into());
            }
        }
        self.account = Some(account);
        self.rgp = login.ext_uris.iter().any(|u| u == RGP_NS);
        Ok(Done::ok(1000))
    }
}

impl From<Fail> for Done {
    fn from(f: Fail) -> Done {
        Done {
            reason: Some(f.reason),
            ..Done::ok(f.code)
        }
    }
}

/// A logged-in session's command.
fn run(ctx: &Ctx<'_>, command: Command) -> Outcome {
    match command {
        Command::PollReq => poll(ctx),
        Command::PollAck(id) => ack(ctx, &id),
        Command::Check(Object::Domain, names) => domain_check(ctx, names),
        Command::Info(Object::Domain, name, auth) => domain_info(ctx, &name, auth),
        Command::DomainCreate(c) => domain_create(ctx, c),
        Command::DomainRenew {
            name,
            cur_exp_date,
            period,
        } => domain_renew(ctx, &name, &cur_exp_date, period),
        Command::DomainUpdate(u) => domain_update(ctx, u),
        Command::Delete(Object::Domain, name) => domain_delete(ctx, &name),
        Command::Transfer {
            op,
            object: Object::Domain,
            name,
            auth,
            period,
        } => domain_transfer(ctx, op, &name, auth, period),
        Command::Check(Object::Contact, ids) => contact_check(ctx, ids),
        Command::Info(Object::Contact, id, auth) => contact_info(ctx, &id, auth),
        Command::ContactCreate(id, fields) => contact_create(ctx, id, fields),
        Command::ContactUpdate(id, fields) => contact_update(ctx, &id, fields),
        Command::Delete(Object::Contact, id) => {
            contacts::delete(ctx.app, ctx.caller, &id)?;
            Ok(Done::ok(1000))
        }
        Command::Check(Object::Host, names) => host_check(ctx, names),
        Command::Info(Object::Host, name, _) => host_info(ctx, &name),
        Command::HostCreate(name, addrs) => host_create(ctx, name, &addrs),
        Command::HostUpdate {
            name,
            add,
            rem,
            new_name,
        } => {
            let (add, rem) = (addresses(&add)?, addresses(&rem)?);
            hosts::update(ctx.app, ctx.caller, &name, add, rem, new_name)?;
            Ok(Done::ok(1000))
        }
        Command::Delete(Object::Host, name) => {
            hosts::delete(ctx.app, ctx.caller, &name)?;
            Ok(Done::ok(1000))
        }
        _ => Err(fail(
            2101,
            "this command is not implemented for this object",
        )),
    }
}

fn answer(done: Done, cl_trid: Option<String>, sv_trid: String) -> String {
    epp_xml::response(&Answer {
        code: done.code,
        reason: done.reason,
        msg_q: done.msg_q,
        res_data: done.res_data,
        extension: done.extension,
        cl_trid,
        sv_trid,
    })
}

/// `<domain:TAG xmlns:domain="…">` … `</domain:TAG>`, filled by `f`.
fn domain_data(tag: &str, f: impl FnOnce(&mut Writer)) -> String {
    object_data("domain", DOMAIN_NS, tag, f)
}

/// An object's `clID`, `crID`, `crDate` and `upDate`: its account made it.
fn sponsor_and_dates(
    w: &mut Writer,
    prefix: &str,
    sponsor: &str,
    created: Millis,
    updated: Millis,
) {
    w.text(&format!("{prefix}:clID"), &[], sponsor)
        .text(&format!("{prefix}:crID"), &[], sponsor)
        .text(&format!("{prefix}:crDate"), &[], &clock::format(created))
        .text(&format!("{prefix}:upDate"), &[], &clock::format(updated));
}

/// `<PREFIX:authInfo><PREFIX:pw>`, for the object's own account only.
fn auth_info(w: &mut Writer, prefix: &str, pw: &str) {
    let tag = format!("{prefix}:authInfo");
    w.open(&tag, &[])
        .text(&format!("{prefix}:pw"), &[], pw)
        .close(&tag);
}

fn bool_attr(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn domain_check(ctx: &Ctx<'_>, names: Vec<String>) -> Outcome {
    if names.len() > contacts::MAX_CHECK {
        let most = contacts::MAX_CHECK;
        return Err(fail(2004, format!("at most {most} names in one check")));
    }
    let valid: Vec<Result<String, String>> = names
        .iter()
        .map(|raw| form::domain_name("name", raw).map_err(|e| e.message()))
        .collect();
    let known: Vec<String> = valid.iter().filter_map(|v| v.clone().ok()).collect();
    let mut held = desk_epp::held(ctx.app, known)?.into_iter();
    let checked: Vec<Availability> = names
        .into_iter()
        .zip(valid)
        .map(|(id, valid)| {
            let reason = match valid {
                Err(why) => Some(why),
                Ok(_) if held.next().unwrap_or(true) => Some("In use".to_string()),
                Ok(_) => None,
            };
            Availability {
                id,
                available: reason.is_none(),
                reason,
            }
        })
        .collect();
    let data = chk_data("domain", DOMAIN_NS, "name", &checked);
    Ok(Done::with_data(1000, data))
}

/// A domain name as a command sent it: 2005 when it is not one.
fn name_of(raw: &str) -> Result<String, Fail> {
    form::domain_name("name", raw).map_err(|e| fail(2005, e.message()))
}

/// The caller's domain `name` (operators: any): 2303 when no one holds
/// it, 2201 when another account does.
fn own_domain(app: &App, caller: &Account, name: &str) -> Result<(Domain, String), Fail> {
    let (d, sponsor) = desk_epp::domain(app, name_of(name)?)?
        .ok_or_else(|| fail(2303, format!("{name} is not registered here")))?;
    if d.account_id != caller.id && !caller.is_operator() {
        return Err(fail(2201, format!("{name} is another account's")));
    }
    Ok((d, sponsor))
}

/// The EPP statuses of a domain; in redemption and after it, RFC 3915's
/// `pendingDelete`.
fn statuses(d: &Domain, transferring: bool, rgp: Option<&str>) -> Vec<&'static str> {
    let mut out = Vec::new();
    if transferring {
        out.push("pendingTransfer");
    }
    let deleting = matches!(
        rgp,
        Some("redemptionPeriod" | "pendingRestore" | "pendingDelete")
    );
    match d.status.as_str() {
        "on_hold" => out.push("clientHold"),
        "pending_release" => out.push("pendingDelete"),
        _ if deleting => out.push("pendingDelete"),
        _ => {}
    }
    if d.transfer_lock {
        out.push("clientTransferProhibited");
    }
    if out.is_empty() {
        out.push("ok");
    }
    out
}

/// The contact object id a domain's contact of `role` came from, if any.
fn contact_id(d: &Domain, role: &str) -> Option<String> {
    d.contacts
        .get(role)
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn domain_info(ctx: &Ctx<'_>, name: &str, auth: Option<String>) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let (d, sponsor) = desk_epp::domain(app, name_of(name)?)?
        .ok_or_else(|| fail(2303, format!("{name} is not registered here")))?;
    let sponsoring = d.account_id == caller.id || caller.is_operator();
    if !sponsoring {
        match auth {
            None => return Err(fail(2201, format!("{name} is another account's"))),
            Some(a) if a != d.auth_code => return Err(fail(2202, "the authInfo does not match")),
            Some(_) => {}
        }
    }
    let transferring = transfers::pending_for(app, caller, &d.name)?.is_some();
    let rgp = lifecycle::rgp(app, d.name.clone())?;
    let data = domain_data("infData", |w| {
        w.text("domain:name", &[], &d.name)
            .text("domain:roid", &[], &format!("D{}-REGDESK", d.id));
        for s in statuses(&d, transferring, rgp) {
            w.empty("domain:status", &[("s", s)]);
        }
        if let Some(id) = contact_id(&d, "owner") {
            w.text("domain:registrant", &[], &id);
        }
        for role in ["admin", "tech", "billing"] {
            if let Some(id) = contact_id(&d, role) {
                w.text("domain:contact", &[("type", role)], &id);
            }
        }
        let hosts = hosts_of(&d);
        if !hosts.is_empty() {
            w.open("domain:ns", &[]);
            for h in &hosts {
                w.text("domain:hostObj", &[], h);
            }
            w.close("domain:ns");
        }
        sponsor_and_dates(w, "domain", &sponsor, d.created_at, d.updated_at);
        w.text("domain:exDate", &[], &clock::format(d.expires_at));
        if sponsoring {
            auth_info(w, "domain", &d.auth_code);
        }
    });
    Ok(Done {
        extension: rgp_data(ctx, "infData", rgp),
        ..Done::with_data(1000, data)
    })
}

/// RFC 3915's `<rgp:TAG>` with the RGP status, for a session that asked
/// for the extension, when the domain has a status.
fn rgp_data(ctx: &Ctx<'_>, tag: &str, status: Option<&str>) -> Option<String> {
    let status = status.filter(|_| ctx.rgp)?;
    Some(object_data("rgp", RGP_NS, tag, |w| {
        w.empty("rgp:rgpStatus", &[("s", status)]);
    }))
}

/// A period in whole years, 1 to 10 (default 1).
fn years(period: Option<Period>) -> Result<i64, Fail> {
    let Some(p) = period else {
        return Ok(1);
    };
    let years = if p.months {
        if p.value % 12 != 0 {
            return Err(fail(2004, "periods are whole years (12, 24, … months)"));
        }
        p.value / 12
    } else {
        p.value
    };
    if !(1..=10).contains(&years) {
        return Err(fail(2004, "the period must be 1 to 10 years"));
    }
    Ok(i64::from(years))
}

/// Places a work request for the caller and waits for its end (within
/// `--epp-wait-ms`): the request as it then stands, or the refusal its
/// end is.
fn place(ctx: &Ctx<'_>, name: &str, operation: Operation, params: Value) -> Result<Request, Fail> {
    let (app, caller) = (ctx.app, ctx.caller);
    let new = NewRequest {
        account_id: caller.id,
        domain: name.to_string(),
        operation,
        params,
        exec_date: None,
        depends_on: None,
    };
    let r = desk_epp::place(app, caller, new, ctx.transaction(false))?;
    let wait = Duration::from_millis(app.config.epp_wait_ms);
    let r = desk_epp::wait(app, r.id, wait)?;
    match r.state {
        State::Finished => Ok(r),
        State::Failed => Err(failed(&r)),
        State::Incomplete if !r.missing.is_empty() => {
            Err(fail(2003, format!("missing: {}", r.missing.join(", "))))
        }
        State::Incomplete => Err(fail(
            2306,
            r.last_error.clone().unwrap_or_else(|| "sent back".into()),
        )),
        _ => {
            desk_epp::mark_pending(app, r.id)?;
            Ok(r)
        }
    }
}

fn failed(r: &Request) -> Fail {
    let why = r
        .last_error
        .clone()
        .unwrap_or_else(|| format!("request {} failed", r.id));
    match r.failure {
        Some(Failure::Invalid | Failure::Declined) => fail(2306, why),
        _ => fail(2400, why),
    }
}

/// 1000 with `data` when the request finished, else 1001 saying where it
/// stands.
fn pending_or(r: &Request, data: impl FnOnce() -> Result<String, Fail>) -> Outcome {
    if r.state == State::Finished {
        Ok(Done::with_data(1000, data()?))
    } else {
        Ok(pending_or_done(r))
    }
}

/// 1000 when the request finished, else 1001 saying where it stands.
fn pending_or_done(r: &Request) -> Done {
    if r.state == State::Finished {
        return Done::ok(1000);
    }
    Done {
        reason: Some(format!("request {} is {}", r.id, r.state)),
        ..Done::ok(1001)
    }
}

/// The domain `name` as it is now (after a finished request).
fn current(app: &App, name: &str) -> Result<Domain, Fail> {
    desk_epp::domain(app, name.to_string())?
        .map(|(d, _)| d)
        .ok_or_else(|| fail(2400, format!("{name} is not in the portfolio")))
}

fn domain_create(ctx: &Ctx<'_>, c: DomainCreate) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let name = name_of(&c.name)?;
    let period = years(c.period)?;
    if desk_epp::domain(app, name.clone())?.is_some() {
        return Err(fail(2302, format!("{name} is registered already")));
    }
    let mut params = Map::new();
    params.insert("period".into(), json!(period));
    params.insert("transfer_lock".into(), json!(false));
    params.insert("nameservers".into(), json!(nameservers(&c.nameservers)?));
    params.insert("contacts".into(), create_contacts(app, caller, &c)?);
    if let Some(pw) = c.auth {
        params.insert("auth_code".into(), json!(pw));
    }
    let params = form::params(Operation::Create, Some(&Value::Object(params)))?;
    let r = place(ctx, &name, Operation::Create, params)?;
    pending_or(&r, || {
        let d = current(app, &name)?;
        Ok(domain_data("creData", |w| {
            w.text("domain:name", &[], &d.name)
                .text("domain:crDate", &[], &clock::format(d.created_at))
                .text("domain:exDate", &[], &clock::format(d.expires_at));
        }))
    })
}

fn nameservers(hosts: &[String]) -> Result<Vec<String>, Fail> {
    hosts
        .iter()
        .map(|h| form::domain_name("hostObj", h).map_err(|e| fail(2005, e.message())))
        .collect()
}

/// The order form's contacts for a domain create, from the caller's
/// contact objects; without a registrant, the account itself is the owner.
fn create_contacts(app: &App, caller: &Account, c: &DomainCreate) -> Result<Value, Fail> {
    match &c.registrant {
        Some(registrant) => Ok(contacts::order_contacts(
            app,
            caller,
            registrant,
            &c.contacts,
        )?),
        None if c.contacts.is_empty() => {
            Ok(json!({"owner": {"name": caller.name, "email": caller.email}}))
        }
        None => Err(fail(
            2003,
            "a domain with contacts needs a <domain:registrant>",
        )),
    }
}

/// The transfer lock an update's `add` or `rem` status sets, the only
/// status a client sets here.
fn updated_lock(u: &DomainUpdate) -> Result<Option<bool>, Fail> {
    let mut lock = None;
    for (statuses, on) in [(&u.add.statuses, true), (&u.rem.statuses, false)] {
        for s in statuses {
            if s != "clientTransferProhibited" {
                let why = format!("status {s} cannot be set here; only clientTransferProhibited");
                return Err(fail(2306, why));
            }
            lock = Some(on);
        }
    }
    Ok(lock)
}

/// A domain's name servers.
fn hosts_of(d: &Domain) -> Vec<String> {
    let hosts = d.nameservers.as_array().into_iter().flatten();
    hosts
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A domain's name servers after an update's `rem` and `add`; `None` when
/// it names none.
fn updated_hosts(d: &Domain, u: &DomainUpdate) -> Result<Option<Vec<String>>, Fail> {
    if u.add.nameservers.is_empty() && u.rem.nameservers.is_empty() {
        return Ok(None);
    }
    let rem = nameservers(&u.rem.nameservers)?;
    let mut hosts = hosts_of(d);
    hosts.retain(|h| !rem.contains(h));
    for h in nameservers(&u.add.nameservers)? {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    Ok(Some(hosts))
}

/// A domain's contacts after an update's `rem`, `add` and `chg registrant`
/// (each added one from the caller's contact objects); `None` when the
/// update changes none.
fn updated_contacts(
    app: &App,
    caller: &Account,
    d: &Domain,
    u: &DomainUpdate,
) -> Result<Option<Value>, Fail> {
    if u.add.contacts.is_empty() && u.rem.contacts.is_empty() && u.registrant.is_none() {
        return Ok(None);
    }
    let mut roles = d.contacts.as_object().cloned().unwrap_or_default();
    for (role, id) in &u.rem.contacts {
        if contact_id(d, role).as_deref() == Some(id.as_str()) {
            roles.remove(role);
        }
    }
    let added = u.add.contacts.iter().map(|(r, id)| (r.as_str(), id));
    for (role, id) in added.chain(u.registrant.iter().map(|id| ("owner", id))) {
        if !["owner", "admin", "tech", "billing"].contains(&role) {
            return Err(fail(
                2005,
                format!("contact type {role:?} is not admin, tech or billing"),
            ));
        }
        let one = contacts::order_contacts(app, caller, id, &[])?;
        roles.insert(role.to_string(), one["owner"].clone());
    }
    Ok(Some(Value::Object(roles)))
}

fn domain_renew(ctx: &Ctx<'_>, name: &str, cur_exp_date: &str, period: Option<Period>) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let (d, _) = own_domain(app, caller, name)?;
    let years = years(period)?;
    if clock::format_date(d.expires_at) != cur_exp_date {
        return Err(fail(
            2306,
            format!(
                "curExpDate {cur_exp_date} is not the expiry date {}",
                clock::format_date(d.expires_at)
            ),
        ));
    }
    let after = d.expires_at + years * 365 * DAY;
    if after > app.clock.now() + MAX_YEARS_AHEAD * 365 * DAY {
        return Err(fail(
            2306,
            format!("the expiry may be at most {MAX_YEARS_AHEAD} years ahead"),
        ));
    }
    let r = place(ctx, &d.name, Operation::Renew, json!({"period": years}))?;
    pending_or(&r, || {
        let d = current(app, &d.name)?;
        Ok(ren_data(&d.name, d.expires_at))
    })
}

fn domain_update(ctx: &Ctx<'_>, u: DomainUpdate) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let (d, _) = own_domain(app, caller, &u.name)?;
    if let Some(restore) = u.restore.clone() {
        if u.changes() {
            return Err(fail(
                2306,
                "a restore is an update of its own: an empty <domain:chg/> and nothing else",
            ));
        }
        return match restore {
            Restore::Request => restore_request(ctx, &d),
            Restore::Report(report) => restore_report(ctx, &d, &report),
        };
    }
    let mut params = Map::new();
    if let Some(pw) = &u.auth {
        // An empty <domain:pw/> asks for a new one, as at create.
        params.insert("auth_code".into(), json!(pw));
    }
    if let Some(on) = updated_lock(&u)? {
        params.insert("transfer_lock".into(), json!(on));
    }
    if let Some(hosts) = updated_hosts(&d, &u)? {
        params.insert("nameservers".into(), json!(hosts));
    }
    if let Some(contacts) = updated_contacts(app, caller, &d, &u)? {
        params.insert("contacts".into(), contacts);
    }
    if params.is_empty() {
        return Err(fail(2003, "nothing to change: add, rem or chg"));
    }
    let params = form::params(Operation::Update, Some(&Value::Object(params)))?;
    let r = place(ctx, &d.name, Operation::Update, params)?;
    Ok(pending_or_done(&r))
}

/// RFC 3915's restore request: a `restore` order, which goes to review
/// (an operator authorises it); 2304 outside redemption.
fn restore_request(ctx: &Ctx<'_>, d: &Domain) -> Outcome {
    let r = place(ctx, &d.name, Operation::Restore, json!({}))?;
    let mut done = pending_or_done(&r);
    let status = lifecycle::rgp(ctx.app, d.name.clone())?;
    done.extension = rgp_data(ctx, "upData", status);
    Ok(done)
}

/// RFC 3915's restore report: an annotation on the restore that waits for
/// review, for the operator to read before authorising it.
fn restore_report(ctx: &Ctx<'_>, d: &Domain, report: &Report) -> Outcome {
    let fields = [
        ("preData", &report.pre_data),
        ("postData", &report.post_data),
        ("resReason", &report.res_reason),
    ];
    let others = report.statements.iter().chain(&report.other);
    for (name, text) in fields.into_iter().chain(others.map(|t| ("statement", t))) {
        if text.chars().count() > form::MAX_TEXT {
            let most = form::MAX_TEXT;
            return Err(fail(
                2004,
                format!("<rgp:{name}> is longer than {most} characters"),
            ));
        }
    }
    for (name, time) in [("delTime", &report.del_time), ("resTime", &report.res_time)] {
        // An xs:dateTime: a date alone is not one.
        if time.len() <= 10 || clock::parse(name, time).is_err() {
            return Err(fail(
                2005,
                format!("<rgp:{name}> {time:?} is not a date and time"),
            ));
        }
    }
    let text = report_text(report);
    desk_epp::restore_report(ctx.app, ctx.caller, d.name.clone(), text)?;
    Ok(Done::ok(1000))
}

/// A restore report as the operator reads it among the request's notes.
fn report_text(r: &Report) -> String {
    let mut text = format!(
        "Restore report (RFC 3915), sent through EPP\n\
         Deleted at: {}\nRestore requested at: {}\nReason: {}\n\
         Before deletion: {}\nNow: {}\n",
        r.del_time, r.res_time, r.res_reason, r.pre_data, r.post_data
    );
    for s in &r.statements {
        text.push_str(&format!("Statement: {s}\n"));
    }
    if let Some(other) = &r.other {
        text.push_str(&format!("Other: {other}\n"));
    }
    text
}

fn domain_delete(ctx: &Ctx<'_>, name: &str) -> Outcome {
    let (d, _) = own_domain(ctx.app, ctx.caller, name)?;
    let r = place(ctx, &d.name, Operation::Delete, json!({}))?;
    Ok(pending_or_done(&r))
}

/// A transfer: between two accounts here when one holds the name, else
/// an ordinary transfer order.
fn domain_transfer(
    ctx: &Ctx<'_>,
    op: TransferOp,
    name: &str,
    auth: Option<String>,
    period: Option<Period>,
) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let name = name_of(name)?;
    let t = match op {
        TransferOp::Request => return transfer_request(ctx, &name, auth, period),
        TransferOp::Query => transfers::query(app, caller, &name)?,
        TransferOp::Approve => transfers::approve(app, caller, &name)?,
        TransferOp::Reject => transfers::reject(app, caller, &name)?,
        TransferOp::Cancel => transfers::cancel(app, caller, &name)?,
    };
    Ok(Done::with_data(1000, trn_data(&t)))
}

/// What a transfer's answers and poll messages say of it.
fn trn_data(t: &Transfer) -> String {
    domain_data("trnData", |w| {
        w.text("domain:name", &[], &t.domain)
            .text("domain:trStatus", &[], t.status.as_str())
            .text("domain:reID", &[], &t.gaining_name)
            .text("domain:reDate", &[], &clock::format(t.requested_at))
            .text("domain:acID", &[], &t.losing_name)
            .text("domain:acDate", &[], &clock::format(t.act_by));
        if let Some(ex) = t.expires_at {
            w.text("domain:exDate", &[], &clock::format(ex));
        }
    })
}

fn transfer_request(
    ctx: &Ctx<'_>,
    name: &str,
    auth: Option<String>,
    period: Option<Period>,
) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let auth = auth.ok_or_else(|| fail(2003, "authInfo is required for a transfer"))?;
    let years = years(period)?;
    match transfers::request(app, caller, name, &auth, u32::try_from(years).ok(), "epp") {
        Ok(t) => {
            desk_epp::remember(app, t.request_id, ctx.transaction(true))?;
            Ok(Done::with_data(1001, trn_data(&t)))
        }
        Err(Error::NotFound(_)) => outside_transfer(ctx, name, auth, years),
        // The caller holds it already.
        Err(Error::Invalid { field, message }) if field == "domain" => Err(fail(2106, message)),
        Err(e) => Err(e.into()),
    }
}

/// A transfer of a name no account here holds: an ordinary transfer order.
fn outside_transfer(ctx: &Ctx<'_>, name: &str, auth: String, years: i64) -> Outcome {
    let (app, caller) = (ctx.app, ctx.caller);
    let params = json!({
        "auth_code": auth,
        "period": years,
        "contacts": {"owner": {"name": caller.name, "email": caller.email}},
    });
    let params = form::params(Operation::Transfer, Some(&params))?;
    let r = place(ctx, name, Operation::Transfer, params)?;
    pending_or(&r, || {
        let d = current(app, name)?;
        Ok(domain_data("trnData", |w| {
            w.text("domain:name", &[], &d.name)
                .text("domain:trStatus", &[], "serverApproved")
                .text("domain:reID", &[], &caller.name)
                .text("domain:reDate", &[], &clock::format(r.created_at))
                .text("domain:acID", &[], "regdesk")
                .text("domain:acDate", &[], &clock::format(r.updated_at))
                .text("domain:exDate", &[], &clock::format(d.expires_at));
        }))
    })
}

const CONTACT_NS: &str = epp_xml::CONTACT_NS;
const HOST_NS: &str = epp_xml::HOST_NS;

/// `<PREFIX:TAG xmlns:PREFIX="NS">` … `</PREFIX:TAG>`, filled by `f`.
fn object_data(prefix: &str, ns: &str, tag: &str, f: impl FnOnce(&mut Writer)) -> String {
    let mut w = Writer::new();
    let (tag, xmlns) = (format!("{prefix}:{tag}"), format!("xmlns:{prefix}"));
    w.open(&tag, &[(&xmlns, ns)]);
    f(&mut w);
    w.close(&tag);
    w.finish()
}

/// A check's answer: per id or name, available or not and why.
fn chk_data(prefix: &str, ns: &str, key: &str, checked: &[Availability]) -> String {
    object_data(prefix, ns, "chkData", |w| {
        let (cd, key_tag, reason) = (
            format!("{prefix}:cd"),
            format!("{prefix}:{key}"),
            format!("{prefix}:reason"),
        );
        for a in checked {
            w.open(&cd, &[])
                .text(&key_tag, &[("avail", bool_attr(a.available))], &a.id);
            if let Some(r) = &a.reason {
                w.text(&reason, &[], r);
            }
            w.close(&cd);
        }
    })
}

fn contact_check(ctx: &Ctx<'_>, ids: Vec<String>) -> Outcome {
    let checked = contacts::check(ctx.app, &ids)?;
    Ok(Done::with_data(
        1000,
        chk_data("contact", CONTACT_NS, "id", &checked),
    ))
}

fn contact_info(ctx: &Ctx<'_>, id: &str, auth: Option<String>) -> Outcome {
    let c = contacts::get(ctx.app, ctx.caller, id, auth.as_deref())?;
    let sponsor = desk_epp::account_name(ctx.app, c.account_id)?;
    let own = c.account_id == ctx.caller.id || ctx.caller.is_operator();
    let data = object_data("contact", CONTACT_NS, "infData", |w| {
        w.text("contact:id", &[], &c.id)
            .text("contact:roid", &[], &format!("C-{}-REGDESK", c.id))
            .empty("contact:status", &[("s", "ok")])
            .open("contact:postalInfo", &[("type", "loc")])
            .text("contact:name", &[], &c.name);
        if let Some(org) = &c.org {
            w.text("contact:org", &[], org);
        }
        w.open("contact:addr", &[]);
        for street in &c.street {
            w.text("contact:street", &[], street);
        }
        w.text("contact:city", &[], &c.city);
        if let Some(sp) = &c.sp {
            w.text("contact:sp", &[], sp);
        }
        if let Some(pc) = &c.pc {
            w.text("contact:pc", &[], pc);
        }
        w.text("contact:cc", &[], &c.cc)
            .close("contact:addr")
            .close("contact:postalInfo");
        if let Some(voice) = &c.voice {
            w.text("contact:voice", &[], voice);
        }
        if let Some(fax) = &c.fax {
            w.text("contact:fax", &[], fax);
        }
        w.text("contact:email", &[], &c.email);
        sponsor_and_dates(w, "contact", &sponsor, c.created_at, c.updated_at);
        if own {
            auth_info(w, "contact", &c.auth_info);
        }
    });
    Ok(Done::with_data(1000, data))
}

/// A required contact field: 2003 when it is absent.
fn required(value: Option<String>, what: &str) -> Result<String, Fail> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        fail(
            2003,
            format!("required parameter missing: <contact:{what}>"),
        )
    })
}

/// An optional field as a change: an empty element removes it.
fn cleared(value: Option<String>) -> Option<Option<String>> {
    value.map(|v| (!v.is_empty()).then_some(v))
}

fn contact_create(ctx: &Ctx<'_>, id: String, f: ContactFields) -> Outcome {
    let new = NewContact {
        id,
        name: required(f.name, "name")?,
        org: f.org.filter(|v| !v.is_empty()),
        street: f.street.unwrap_or_default(),
        city: required(f.city, "city")?,
        sp: f.sp.filter(|v| !v.is_empty()),
        pc: f.pc.filter(|v| !v.is_empty()),
        cc: required(f.cc, "cc")?,
        voice: f.voice.filter(|v| !v.is_empty()),
        fax: f.fax.filter(|v| !v.is_empty()),
        email: required(f.email, "email")?,
        auth_info: f.auth.filter(|v| !v.is_empty()),
    };
    let c = contacts::create(ctx.app, ctx.caller, new)?;
    let data = object_data("contact", CONTACT_NS, "creData", |w| {
        w.text("contact:id", &[], &c.id)
            .text("contact:crDate", &[], &clock::format(c.created_at));
    });
    Ok(Done::with_data(1000, data))
}

fn contact_update(ctx: &Ctx<'_>, id: &str, f: ContactFields) -> Outcome {
    let change = ContactChange {
        name: f.name,
        org: cleared(f.org),
        street: f.street,
        city: f.city,
        sp: cleared(f.sp),
        pc: cleared(f.pc),
        cc: f.cc,
        voice: cleared(f.voice),
        fax: cleared(f.fax),
        email: f.email,
        auth_info: f.auth,
    };
    contacts::update(ctx.app, ctx.caller, id, change)?;
    Ok(Done::ok(1000))
}

fn addresses(texts: &[String]) -> Result<Vec<IpAddr>, Fail> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|_| fail(2005, format!("{t:?} is not an IP address")))
        })
        .collect()
}

fn host_check(ctx: &Ctx<'_>, names: Vec<String>) -> Outcome {
    let checked = hosts::check(ctx.app, &names)?;
    Ok(Done::with_data(
        1000,
        chk_data("host", HOST_NS, "name", &checked),
    ))
}

fn host_info(ctx: &Ctx<'_>, name: &str) -> Outcome {
    let h = hosts::get(ctx.app, ctx.caller, name)?;
    let sponsor = desk_epp::account_name(ctx.app, h.account_id)?;
    let data = object_data("host", HOST_NS, "infData", |w| {
        w.text("host:name", &[], &h.name)
            .text("host:roid", &[], &format!("H-{}-REGDESK", h.name))
            .empty("host:status", &[("s", "ok")]);
        for a in &h.addresses {
            let ip = if a.is_ipv4() { "v4" } else { "v6" };
            w.text("host:addr", &[("ip", ip)], &a.to_string());
        }
        sponsor_and_dates(w, "host", &sponsor, h.created_at, h.updated_at);
    });
    Ok(Done::with_data(1000, data))
}

fn host_create(ctx: &Ctx<'_>, name: String, addrs: &[String]) -> Outcome {
    let h = hosts::create(ctx.app, ctx.caller, name, addresses(addrs)?)?;
    let data = object_data("host", HOST_NS, "creData", |w| {
        w.text("host:name", &[], &h.name)
            .text("host:crDate", &[], &clock::format(h.created_at));
    });
    Ok(Done::with_data(1000, data))
}

fn poll(ctx: &Ctx<'_>) -> Outcome {
    let (next, count) = desk_epp::poll(ctx.app, ctx.caller)?;
    let Some(m) = next else {
        return Ok(Done::ok(1300));
    };
    let n = &m.notification;
    Ok(Done {
        res_data: message_data(ctx, &m)?,
        msg_q: Some(MsgQ {
            count,
            id: n.id,
            message: Some((clock::format(n.created_at), message_text(&m))),
        }),
        ..Done::ok(1301)
    })
}

/// What a message carries beside its text: a transfer between accounts
/// its `trnData`; the end of a request its command was answered 1001 for,
/// `panData` with that command's ids; a renewal's success (an
/// auto-renewal's) `renData` with the new expiry; a failed renewal's or a
/// restore's end `panData` with the request's own server id; the other
/// steps of the lifecycle (reminders, expiry, deletion) nothing.
fn message_data(ctx: &Ctx<'_>, m: &desk_epp::Message) -> Result<Option<String>, Fail> {
    let n = &m.notification;
    let Some(id) = n.request_id else {
        return Ok(None);
    };
    if let Some(t) = transfers::for_request(ctx.app, ctx.caller, id)? {
        return Ok(Some(trn_data(&t)));
    }
    if let Some(t) = m.transaction.as_ref().filter(|t| t.pending) {
        return Ok(Some(pan_data(n, t)));
    }
    let own = Transaction {
        cl_trid: None,
        sv_trid: format!("RD-request-{id}"),
        pending: true,
    };
    Ok(match (n.action.as_str(), n.status.as_str(), m.expires_at) {
        ("renew", "success", Some(ex)) => Some(ren_data(&n.domain, ex)),
        ("renew", "error", _) | ("restore", _, _) => Some(pan_data(n, &own)),
        _ => None,
    })
}

/// A message's text: it names its domain, and says why when the system
/// placed its request (an auto-renewal, a deletion at the end of the
/// lifecycle).
fn message_text(m: &desk_epp::Message) -> String {
    let n = &m.notification;
    let mut text = if n.domain.is_empty() || n.message.contains(&n.domain) {
        n.message.clone()
    } else {
        format!("{}: {}", n.domain, n.message)
    };
    if m.placed_by.as_deref() == Some("system") {
        match n.action.as_str() {
            "renew" => text.push_str(" (auto-renewal)"),
            "delete" => {
                text.push_str(" (its redemption and pending delete ended; the name is free)")
            }
            _ => {}
        }
    }
    text
}

/// `renData`: a domain's name and its expiry after a renewal.
fn ren_data(name: &str, expires_at: Millis) -> String {
    domain_data("renData", |w| {
        w.text("domain:name", &[], name)
            .text("domain:exDate", &[], &clock::format(expires_at));
    })
}

/// What a message about the end of a request answered 1001 carries.
fn pan_data(n: &crate::store::notifications::Notification, t: &Transaction) -> String {
    let ok = bool_attr(n.status == "finished" || n.status == "success");
    domain_data("panData", |w| {
        w.text("domain:name", &[("paResult", ok)], &n.domain)
            .open("domain:paTRID", &[]);
        if let Some(cl) = &t.cl_trid {
            w.text("clTRID", &[], cl);
        }
        w.text("svTRID", &[], &t.sv_trid)
            .close("domain:paTRID")
            .text("domain:paDate", &[], &clock::format(n.created_at));
    })
}

fn ack(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let n: i64 = id
        .parse()
        .map_err(|_| fail(2005, format!("msgID {id:?} is not a message id")))?;
    let left = desk_epp::ack(ctx.app, ctx.caller, n)?;
    Ok(Done {
        msg_q: Some(MsgQ {
            count: left,
            id: n,
            message: None,
        }),
        ..Done::ok(1000)
    })
}

/// `GET /api/v1/epp/ca.pem` (no token): the test CA's certificate, which
/// a client trusts to reach the EPP listener; 404 when the operator's own
/// certificate is served or EPP is off.
pub fn ca_pem(app: &App) -> Resp {
    let own = app.config.epp_cert.is_some() || app.config.epp_listen.is_none();
    match desk_epp::ca_pem(app) {
        Ok(Some(pem)) if !own => Resp::new(200, "application/x-pem-file", pem),
        Ok(_) => Resp::error(&Error::not_found("the EPP test CA")),
        Err(e) => Resp::error(&e),
    }
}

/// `PUT /api/v1/me/epp-password` and `PUT /api/v1/accounts/{id}/epp-password`
/// `{"password": "…"}`: sets an account's EPP password (204).
pub fn put_password(app: &App, req: &Req, caller: &Account, account_id: i64) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["password"])?;
    let password = req_str(&body, "password")?;
    credentials::set_password(app, caller, account_id, Secret::Epp, &password)?;
    Ok(Resp::empty(204))
}
