//! Accounts and their API tokens (stored as SHA-256 digests).

use crate::store::Cached;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::{self, Millis};
use crate::error::{Error, Result};
use crate::state::string_enum;

string_enum!(
    /// What an account may do.
    Role {
        Customer => "customer",
        Operator => "operator",
    }
);

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub review_limit_cents: i64,
    pub review_all: bool,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
}

pub(crate) fn ser_time<S: serde::Serializer>(
    ms: &Millis,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&clock::format(*ms))
}

/// `ser_time` for a time that may be missing (`null`).
pub(crate) fn ser_opt_time<S: serde::Serializer>(
    ms: &Option<Millis>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => ser_time(ms, s),
        None => s.serialize_none(),
    }
}

impl Account {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }
}

/// The longest token a request may present (in bytes, after trimming).
pub const MAX_TOKEN: usize = 256;

/// Whether `token`, as a request presents it (trimmed), is worth looking
/// up: not empty and at most `MAX_TOKEN` bytes.
pub fn presentable(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN
}

/// The digest under which a token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const COLUMNS: &str = "id, name, email, role, review_limit_cents, review_all, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        // By position, in the order of `COLUMNS`.
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        role: super::enum_col(row, 3)?,
        review_limit_cents: row.get(4)?,
        review_all: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// The account a token belongs to. The lookup is by digest, so the stored
/// secret is never compared byte by byte with what the client sent.
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<Account>> {
    by_token_hash(conn, &token_hash(token))
}

/// The account holding the token whose digest (`token_hash`) is `digest`.
pub fn by_token_hash(conn: &Connection, digest: &str) -> Result<Option<Account>> {
    let sql = format!(
        "select {COLUMNS} from accounts where id = (select account_id from tokens where hash = ?1)"
    );
    Ok(conn.one(&sql, [digest], from_row).optional()?)
}

pub fn get(conn: &Connection, id: i64) -> Result<Account> {
    let sql = format!("select {COLUMNS} from accounts where id = ?1");
    conn.one(&sql, [id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("account {id}")))
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<Account>> {
    let sql = format!("select {COLUMNS} from accounts where name = ?1");
    Ok(conn.one(&sql, [name], from_row).optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Account>> {
    let sql = format!("select {COLUMNS} from accounts order by id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn operators(conn: &Connection) -> Result<Vec<Account>> {
    Ok(list(conn)?
        .into_iter()
        .filter(Account::is_operator)
        .collect())
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.one("select count(*) from accounts", [], |r| r.get(0))?)
}

/// What creating an account needs.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub email: String,
    pub role: Role,
    pub review_limit_cents: Option<i64>,
    pub review_all: bool,
}

/// Creates an account with a first token; returns it and the token (the
/// only time the token is seen).
pub fn create(conn: &Connection, new: &NewAccount, token: &str, now: Millis) -> Result<Account> {
    if by_name(conn, &new.name)?.is_some() {
        return Err(Error::Conflict(format!(
            "an account named {:?} exists",
            new.name
        )));
    }
    conn.exec(
        "insert into accounts (name, email, role, review_limit_cents, review_all, created_at)
         values (?1, ?2, ?3, coalesce(?4, 50000), ?5, ?6)",
        params![
            new.name,
            new.email,
            new.role.as_str(),
            new.review_limit_cents,
            new.review_all,
            now
        ],
    )?;
    let id = conn.last_insert_rowid();
    add_token(conn, id, token, now)?;
    conn.execute(
        "update accounts set api_key = ?1 where id = ?2",
        params![crate::random::hex(16), id],
    )?;
    get(conn, id)
}

/// What an operator may change of an account; `None` keeps it.
#[derive(Debug, Clone, Default)]
pub struct AccountEdit {
    pub email: Option<String>,
    pub role: Option<Role>,
    pub review_limit_cents: Option<i64>,
    pub review_all: Option<bool>,
}

/// Changes account `id` as `edit` says.
pub fn update(conn: &Connection, id: i64, edit: &AccountEdit) -> Result<Account> {
    get(conn, id)?;
    conn.exec(
        "update accounts set email = coalesce(?1, email), role = coalesce(?2, role),
                review_limit_cents = coalesce(?3, review_limit_cents),
                review_all = coalesce(?4, review_all)
         where id = ?5",
        params![
            edit.email,
            edit.role.map(|r| r.as_str()),
            edit.review_limit_cents,
            edit.review_all,
            id
        ],
    )?;
    get(conn, id)
}

/// One of an account's API tokens, without the token (kept only hashed).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    #[serde(serialize_with = "ser_time")]
    pub created_at: Millis,
}

/// The account's API tokens, oldest first.
pub fn tokens(conn: &Connection, account_id: i64) -> Result<Vec<TokenInfo>> {
    Ok(conn.all(
        "select id, created_at from tokens where account_id = ?1 order by id",
        [account_id],
        |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                created_at: r.get(1)?,
            })
        },
    )?)
}

/// Adds a token to the account: its id.
pub fn new_token(conn: &Connection, account_id: i64, token: &str, now: Millis) -> Result<i64> {
    add_token(conn, account_id, token, now)?;
    Ok(conn.one(
        "select id from tokens where hash = ?1",
        [token_hash(token)],
        |r| r.get(0),
    )?)
}

/// Revokes token `id` of the account; not found when it is not theirs,
/// a conflict when it is the one whose digest is `in_use` (the token the
/// request is made with: a program would lock itself out).
pub fn revoke_token(
    conn: &Connection,
    account_id: i64,
    id: i64,
    in_use: Option<&str>,
) -> Result<()> {
    let hash: Option<String> = conn
        .one(
            "select hash from tokens where id = ?1 and account_id = ?2",
            params![id, account_id],
            |r| r.get(0),
        )
        .optional()?;
    match hash {
        None => Err(Error::not_found(format!("token {id}"))),
        Some(h) if Some(h.as_str()) == in_use => Err(Error::Conflict(format!(
            "token {id} is the one this request is made with: revoke it with another"
        ))),
        Some(_) => {
            conn.exec("delete from tokens where id = ?1", [id])?;
            Ok(())
        }
    }
}

/// The account's XCP signing key (32 hex). It is kept as is, not hashed,
/// because checking an md5 signature needs the shared secret itself.
pub fn api_key(conn: &Connection, id: i64) -> Result<String> {
    conn.one("select api_key from accounts where id = ?1", [id], |r| {
        r.get::<_, Option<String>>(0)
    })
    .optional()?
    .flatten()
    .ok_or_else(|| Error::not_found(format!("API key of account {id}")))
}

pub fn add_token(conn: &Connection, account_id: i64, token: &str, now: Millis) -> Result<()> {
    conn.exec(
        "insert or ignore into tokens (account_id, hash, created_at) values (?1, ?2, ?3)",
        params![account_id, token_hash(token), now],
    )?;
    Ok(())
}

/// Validates an account name: 1-64 of letters, digits, `.`, `_`, `-`.
/// An account's e-mail address, checked as a contact's is.
pub fn valid_email(email: &str) -> Result<String> {
    crate::form::email("email", &serde_json::Value::from(email))
}

pub fn valid_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::invalid(
            "name",
            "1 to 64 letters, digits, dots, underscores or hyphens",
        ))
    }
}

/// Accounts by token digest, kept in memory so that an authenticated
/// request does not read the database for its caller. An entry stays true
/// until a token is revoked, an account is edited or an admin reset
/// deletes accounts: each of these clears the cache. Tokens added from
/// the command line while the server runs are found in the database on
/// their first use.
#[derive(Default)]
pub struct TokenCache {
    /// The entries, and how many times the cache was cleared: a lookup
    /// that began before a clear does not put its (maybe deleted) account
    /// back.
    inner: std::sync::Mutex<(std::collections::HashMap<String, Account>, u64)>,
}

/// Entries kept at most; the cache starts over when full.
const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    /// The account holding `token`: from memory, else from `read` (which
    /// looks the digest up in the database).
    pub fn authenticate(
        &self,
        token: &str,
        read: impl FnOnce(String) -> Result<Option<Account>>,
    ) -> Result<Option<Account>> {
        let digest = token_hash(token);
        let generation = {
            let cache = self.lock();
            if let Some(account) = cache.0.get(&digest) {
                return Ok(Some(account.clone()));
            }
            cache.1
        };
        let found = read(digest.clone())?;
        if let Some(account) = &found {
            let mut cache = self.lock();
            if cache.1 == generation {
                if cache.0.len() >= TOKEN_CACHE_MAX {
                    cache.0.clear();
                }
                cache.0.insert(digest, account.clone());
            }
        }
        Ok(found)
    }

    /// Forgets every entry (accounts were deleted).
    pub fn clear(&self) {
        let mut cache = self.lock();
        cache.0.clear();
        cache.1 += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (std::collections::HashMap<String, Account>, u64)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
