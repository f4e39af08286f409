//! Host objects of an account (RFC 5732): name servers a domain may
//! delegate to, made, changed and removed at once.

use std::net::IpAddr;

use crate::error::{quoted, Error, Result};
use crate::form;
use crate::store::accounts::Account;
use crate::store::domains;
use crate::store::hosts as table;
use crate::store::Connection;
use crate::App;

pub use super::contacts::Availability;
pub use crate::store::hosts::Host;

/// Most addresses a host has.
pub const MAX_ADDRESSES: usize = 13;

/// Which of `names` may be created.
pub fn check(app: &App, names: &[String]) -> Result<Vec<Availability>> {
    super::contacts::bounded("name", names)?;
    let names = names.to_vec();
    app.db.read(move |conn| {
        names
            .iter()
            .map(|raw| {
                let name = match form::domain_name("name", raw) {
                    Ok(name) => name,
                    Err(e) => return Ok(Availability::of(raw, Some(e.message()))),
                };
                let taken = table::get(conn, &name)?.map(|_| "the name is in use".to_string());
                Ok(Availability::of(raw, taken))
            })
            .collect()
    })
}

/// Host `name`: the caller's own (operators: any); another account's is
/// `NotYours`.
pub fn get(app: &App, caller: &Account, name: &str) -> Result<Host> {
    let name = form::domain_name("name", name).map_err(|_| not_found(name))?;
    let h = app
        .db
        .read(move |conn| table::get(conn, &name)?.ok_or_else(|| not_found(&name)))?;
    if h.account_id == caller.id || caller.is_operator() {
        Ok(h)
    } else {
        Err(Error::NotYours(format!(
            "host {} belongs to another account",
            h.name
        )))
    }
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!("host {}", quoted(name)))
}

/// The caller's hosts (operators: every account's).
pub fn list(app: &App, caller: &Account) -> Result<Vec<Host>> {
    let scope = super::own_scope(caller);
    app.db.read(move |conn| table::list(conn, scope))
}

/// Makes a host of the caller's; `Error::Exists` when the name is taken.
pub fn create(app: &App, caller: &Account, name: String, addresses: Vec<IpAddr>) -> Result<Host> {
    let name = form::domain_name("name", &name)?;
    let now = app.clock.now();
    let h = Host {
        name,
        account_id: caller.id,
        addresses: distinct("addresses", addresses, &[])?,
        created_at: now,
        updated_at: now,
    };
    let (written, caller) = (h.clone(), caller.clone());
    app.db.write(move |conn| {
        under_own_domain(conn, &caller, &written.name)?;
        table::insert(conn, &written)
    })?;
    Ok(h)
}

/// Refuses a host name under a domain another account holds here (its
/// glue is that account's to set; RFC 5732's superordinate domain).
fn under_own_domain(conn: &Connection, caller: &Account, name: &str) -> Result<()> {
    let parents = name.match_indices('.').map(|(i, _)| &name[i + 1..]);
    for parent in parents {
        if let Some(d) = domains::by_name(conn, parent)? {
            if d.account_id != caller.id && !caller.is_operator() {
                return Err(Error::NotYours(format!(
                    "{name} is under {parent}, which another account holds"
                )));
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Adds and removes addresses of a host of the caller's and renames it
/// (a host a domain delegates to keeps its name: `Error::InUse`).
pub fn update(
    app: &App,
    caller: &Account,
    name: &str,
    add: Vec<IpAddr>,
    remove: Vec<IpAddr>,
    new_name: Option<String>,
) -> Result<Host> {
    let h = get(app, caller, name)?;
    for a in &remove {
        if !h.addresses.contains(a) {
            return Err(Error::invalid(
                "remove",
                format!("{a} is not an address of {}", h.name),
            ));
        }
    }
    let kept: Vec<IpAddr> = h
        .addresses
        .iter()
        .copied()
        .filter(|a| !remove.contains(a))
        .collect();
    let new_name = new_name
        .map(|n| form::domain_name("new_name", &n))
        .transpose()?;
    let changed = Host {
        addresses: distinct("add", add, &kept)?,
        name: new_name.clone().unwrap_or_else(|| h.name.clone()),
        updated_at: app.clock.now(),
        ..h.clone()
    };
    let (written, caller) = (changed.clone(), caller.clone());
    app.db.write(move |conn| {
        if new_name.is_some_and(|n| n != h.name) {
            if let Some(user) = table::named_by(conn, &h.name)? {
                return Err(Error::InUse(format!("host {} is named by {user}", h.name)));
            }
            under_own_domain(conn, &caller, &written.name)?;
            if table::get(conn, &written.name)?.is_some() {
                return Err(Error::Exists(format!("host {} exists", written.name)));
            }
        }
        table::update(conn, &h.name, &written)
    })?;
    Ok(changed)
}

/// `kept` and then `added`, refusing an address given twice and more than
/// `MAX_ADDRESSES`.
fn distinct(field: &str, added: Vec<IpAddr>, kept: &[IpAddr]) -> Result<Vec<IpAddr>> {
    let mut all = kept.to_vec();
    for a in added {
        if all.contains(&a) {
            return Err(Error::invalid(field, format!("{a} is given twice")));
        }
        all.push(a);
    }
    if all.len() > MAX_ADDRESSES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_ADDRESSES} addresses"),
        ));
    }
    Ok(all)
}

/// Removes a host of the caller's; `Error::InUse` while a domain or an
/// open request delegates to it.
pub fn delete(app: &App, caller: &Account, name: &str) -> Result<()> {
    let h = get(app, caller, name)?;
    app.db.write(move |conn| {
        if let Some(user) = table::named_by(conn, &h.name)? {
            return Err(Error::InUse(format!("host {} is named by {user}", h.name)));
        }
        table::delete(conn, &h.name)
    })
}
