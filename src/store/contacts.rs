//! Contact objects (RFC 5733): their rows, and whether a domain or an open
//! request names one.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::store::accounts::ser_time;
use crate::store::Cached;

/// Most contacts a list answers.
pub const MAX_LIST: usize = 1000;

/// A contact object of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub org: Option<String>,
    pub street: Vec<String>,
    pub city: String,
    pub sp: Option<String>,
    pub pc: Option<String>,
    pub cc: String,
    pub voice: Option<String>,
    pub fax: Option<String>,
    pub email: String,
    pub auth_info: String,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
    #[serde(serialize_with = "ser_time")]
    pub updated_at: Millis,
}

macro_rules! columns {
    () => {
        "id, account_id, name, org, street, city, sp, pc, cc, voice, fax, email, auth_info, \
         created_at, updated_at"
    };
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Contact> {
    let street: String = row.get(4)?;
    Ok(Contact {
        id: row.get(0)?,
        account_id: row.get(1)?,
        name: row.get(2)?,
        org: row.get(3)?,
        street: serde_json::from_str(&street).unwrap_or_default(),
        city: row.get(5)?,
        sp: row.get(6)?,
        pc: row.get(7)?,
        cc: row.get(8)?,
        voice: row.get(9)?,
        fax: row.get(10)?,
        email: row.get(11)?,
        auth_info: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
    })
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Contact>> {
    const SQL: &str = concat!("select ", columns!(), " from contacts where id = ?1");
    Ok(conn.one(SQL, [id], from_row).optional()?)
}

/// The contacts of `account_id` (every account's for `None`), by id.
pub fn list(conn: &Connection, account_id: Option<i64>) -> Result<Vec<Contact>> {
    let sql = format!(
        "select {} from contacts where (?1 is null or account_id = ?1) order by id limit {MAX_LIST}",
        columns!()
    );
    Ok(conn.all(&sql, [account_id], from_row)?)
}

/// Writes `c` as a new contact; `Error::Exists` when its id is taken.
pub fn insert(conn: &Connection, c: &Contact) -> Result<()> {
    if get(conn, &c.id)?.is_some() {
        return Err(Error::Exists(format!("contact {:?} exists", c.id)));
    }
    write(conn, c)
}

/// Writes `c` over the contact of its id (its account and creation stay).
pub fn update(conn: &Connection, c: &Contact) -> Result<()> {
    write(conn, c)
}

fn write(conn: &Connection, c: &Contact) -> Result<()> {
    conn.exec(
        concat!(
            "insert into contacts (",
            columns!(),
            ") values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             on conflict (id) do update set name = ?3, org = ?4, street = ?5, city = ?6,
                sp = ?7, pc = ?8, cc = ?9, voice = ?10, fax = ?11, email = ?12,
                auth_info = ?13, updated_at = ?15"
        ),
        params![
            c.id,
            c.account_id,
            c.name,
            c.org,
            serde_json::to_string(&c.street)?,
            c.city,
            c.sp,
            c.pc,
            c.cc,
            c.voice,
            c.fax,
            c.email,
            c.auth_info,
            c.created_at,
            c.updated_at
        ],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.exec("delete from contacts where id = ?1", [id])?;
    Ok(())
}

/// The domain, or else the open request, whose contacts name contact `id`
/// (a domain ordered from contact objects keeps each one's `id`).
pub fn named_by(conn: &Connection, id: &str) -> Result<Option<String>> {
    super::hosts::first_naming(
        conn,
        "select d.name from domains d, json_each(d.contacts) c
         where json_extract(c.value, '$.id') = ?1 limit 1",
        "select r.id from requests r, json_each(r.params, '$.contacts') c
         where r.state not in ('failed', 'finished')
           and json_extract(c.value, '$.id') = ?1 limit 1",
        id,
    )
}
