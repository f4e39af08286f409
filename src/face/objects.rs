//! The native JSON API of contact and host objects (`/api/v1/contacts`,
//! `/api/v1/hosts`) and of the holder's answer to a transfer between
//! accounts (`POST /api/v1/domains/{name}/transfer/approve|reject`).
//! A customer's lookup of another account's object is "not found" here.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::desk::contacts::{self, ContactChange, NewContact};
use crate::desk::{hosts, transfers};
use crate::error::{quoted, Error, Result};
use crate::face::json_args::{body_object, only_keys, opt_str, req_str};
use crate::http::{Req, Resp};
use crate::store::accounts::Account;
use crate::App;

/// Another account's object (`kind` `id`) is not found on this face.
fn hidden<'a>(kind: &'a str, id: &'a str) -> impl Fn(Error) -> Error + 'a {
    move |e| match e {
        Error::NotYours(_) => Error::not_found(format!("{kind} {}", quoted(id))),
        other => other,
    }
}

// ----- contacts --------------------------------------------------------------

const CONTACT_FIELDS: &[&str] = &[
    "name",
    "org",
    "street",
    "city",
    "sp",
    "pc",
    "cc",
    "voice",
    "fax",
    "email",
    "auth_info",
];

pub fn list_contacts(app: &App, caller: &Account) -> Result<Resp> {
    let items = contacts::list(app, caller)?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

pub fn get_contact(app: &App, id: &str, caller: &Account) -> Result<Resp> {
    let c = contacts::get(app, caller, id, None).map_err(hidden("contact", id))?;
    Ok(Resp::json(200, &c))
}

/// `POST /contacts`: 201 with the contact (its auth info generated when
/// none or an empty one is given).
pub fn create_contact(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    let mut known = CONTACT_FIELDS.to_vec();
    known.push("id");
    only_keys(&body, &known)?;
    let new = NewContact {
        id: req_str(&body, "id")?,
        name: req_str(&body, "name")?,
        org: opt_str(&body, "org")?,
        street: street(&body)?.unwrap_or_default(),
        city: req_str(&body, "city")?,
        sp: opt_str(&body, "sp")?,
        pc: opt_str(&body, "pc")?,
        cc: req_str(&body, "cc")?,
        voice: opt_str(&body, "voice")?,
        fax: opt_str(&body, "fax")?,
        email: req_str(&body, "email")?,
        auth_info: opt_str(&body, "auth_info")?,
    };
    Ok(Resp::json(201, &contacts::create(app, caller, new)?))
}

/// `PATCH /contacts/{id}`: the fields given change; `null` removes an
/// optional one.
pub fn patch_contact(app: &App, req: &Req, id: &str, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, CONTACT_FIELDS)?;
    let required = |field: &str| -> Result<Option<String>> {
        match body.get(field) {
            Some(Value::Null) => Err(Error::invalid(field, "is required and cannot be null")),
            _ => opt_str(&body, field),
        }
    };
    let optional = |field: &str| -> Result<Option<Option<String>>> {
        match body.get(field) {
            None => Ok(None),
            Some(_) => opt_str(&body, field).map(Some),
        }
    };
    let change = ContactChange {
        name: required("name")?,
        org: optional("org")?,
        street: street(&body)?,
        city: required("city")?,
        sp: optional("sp")?,
        pc: optional("pc")?,
        cc: required("cc")?,
        voice: optional("voice")?,
        fax: optional("fax")?,
        email: required("email")?,
        auth_info: required("auth_info")?,
    };
    let c = contacts::update(app, caller, id, change).map_err(hidden("contact", id))?;
    Ok(Resp::json(200, &c))
}

pub fn delete_contact(app: &App, id: &str, caller: &Account) -> Result<Resp> {
    contacts::delete(app, caller, id).map_err(hidden("contact", id))?;
    Ok(Resp::empty(204))
}

/// `street`: a list of up to three lines; `null` is none.
fn street(body: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    match body.get("street") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(lines)) => lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::invalid(format!("street[{i}]"), "must be a string"))
            })
            .collect::<Result<Vec<String>>>()
            .map(Some),
        Some(_) => Err(Error::invalid("street", "must be a list of lines")),
    }
}

// ----- hosts -----------------------------------------------------------------

pub fn list_hosts(app: &App, caller: &Account) -> Result<Resp> {
    let items = hosts::list(app, caller)?;
    Ok(Resp::json(200, &json!({ "items": items })))
}

pub fn get_host(app: &App, name: &str, caller: &Account) -> Result<Resp> {
    let h = hosts::get(app, caller, name).map_err(hidden("host", name))?;
    Ok(Resp::json(200, &h))
}

/// `POST /hosts` `{name, addresses?}`: 201 with the host.
pub fn create_host(app: &App, req: &Req, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["name", "addresses"])?;
    let name = req_str(&body, "name")?;
    let addresses = addresses(&body, "addresses")?;
    Ok(Resp::json(
        201,
        &hosts::create(app, caller, name, addresses)?,
    ))
}

/// `PATCH /hosts/{name}` `{add?, remove?, name?}`: addresses added and
/// removed, and a new name.
pub fn patch_host(app: &App, req: &Req, name: &str, caller: &Account) -> Result<Resp> {
    let body = body_object(req)?;
    only_keys(&body, &["add", "remove", "name"])?;
    let (add, remove) = (addresses(&body, "add")?, addresses(&body, "remove")?);
    let new_name = opt_str(&body, "name")?;
    // Another account's host is not found; a new name under another
    // account's domain is that account's (403).
    hosts::get(app, caller, name).map_err(hidden("host", name))?;
    let h = hosts::update(app, caller, name, add, remove, new_name)?;
    Ok(Resp::json(200, &h))
}

pub fn delete_host(app: &App, name: &str, caller: &Account) -> Result<Resp> {
    hosts::delete(app, caller, name).map_err(hidden("host", name))?;
    Ok(Resp::empty(204))
}

/// A list of IPv4 and IPv6 addresses; absent or `null` is none.
fn addresses(body: &Map<String, Value>, field: &str) -> Result<Vec<IpAddr>> {
    let list = match body.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) if list.len() <= hosts::MAX_ADDRESSES => list,
        Some(_) => {
            return Err(Error::invalid(
                field,
                format!(
                    "must be a list of at most {} addresses",
                    hosts::MAX_ADDRESSES
                ),
            ))
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let text = a.as_str().unwrap_or_default();
            text.parse().map_err(|_| {
                Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{} is not an IPv4 or IPv6 address", quoted(&a.to_string())),
                )
            })
        })
        .collect()
}

// ----- transfers between accounts ----------------------------------------------

/// `POST /domains/{name}/transfer/approve|reject|cancel`: the holder's
/// answer to the pending transfer, or the gaining account's withdrawal;
/// the transfer as it ended.
pub fn answer_transfer(app: &App, name: &str, action: &str, caller: &Account) -> Result<Resp> {
    // As for `GET /domains/{name}`: a name that cannot be is not found.
    let name = &crate::form::domain_name("name", name)
        .map_err(|_| Error::not_found(format!("domain {}", quoted(name))))?;
    let t = match action {
        "approve" => transfers::approve(app, caller, name)?,
        "reject" => transfers::reject(app, caller, name)?,
        "cancel" => transfers::cancel(app, caller, name)?,
        other => {
            return Err(Error::not_found(format!(
                "transfer action {}",
                quoted(other)
            )))
        }
    };
    Ok(Resp::json(200, &t))
}
