//! Passwords: setting one (the account itself or an operator), signing in
//! with one, and the refusal that follows repeated failures. A web password
//! and an EPP password are separate secrets with separate counters.
//!
//! Hashing and checking run in the caller's thread (argon2 is slow by
//! design); the database is read before and written after.

use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

use crate::clock::{Millis, MINUTE, SECOND};
use crate::error::{Error, Result};
use crate::store::accounts::{self, Account};
use crate::store::credentials as store;
use crate::App;

use super::require_operator;

/// Which of an account's passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// Signing in to the web desk.
    Web,
    /// An EPP `<login>`.
    Epp,
}

/// Failures within this window count towards a refusal.
const WINDOW: Millis = 15 * MINUTE;
/// How long a refusal lasts.
const REFUSAL: Millis = 15 * MINUTE;
/// Failures per account within `WINDOW` before it is refused.
const PER_ACCOUNT: i64 = 5;

impl Secret {
    fn as_str(self) -> &'static str {
        match self {
            Secret::Web => "web",
            Secret::Epp => "epp",
        }
    }

    /// Failures from one address within `WINDOW` before it is refused. The
    /// web desk's people may share an address (one office, one NAT); an EPP
    /// client is one program.
    fn per_address(self) -> i64 {
        match self {
            Secret::Web => 20,
            Secret::Epp => PER_ACCOUNT,
        }
    }

    /// Checks a new password's length (and, for EPP, what RFC 5730 allows),
    /// and that `account` may have one of this kind.
    fn check(self, account: &Account, password: &str) -> Result<()> {
        let length = password.chars().count();
        let (min, max) = match self {
            Secret::Web => (8, 128),
            Secret::Epp => (6, 16),
        };
        if length < min || length > max {
            return Err(Error::invalid(
                "password",
                format!("must be {min} to {max} characters (it has {length})"),
            ));
        }
        if self == Secret::Epp {
            if password.trim() != password || password.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "password",
                    "an EPP password has no leading or trailing spaces and no control characters",
                ));
            }
            let name = account.name.chars().count();
            if !(3..=16).contains(&name) {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "an EPP login names the account as its clID, which must be 3 to 16 \
                         characters; the account's name has {name}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Sets account `account_id`'s password of kind `secret`. The caller is
/// that account or an operator.
pub fn set_password(
    app: &App,
    caller: &Account,
    account_id: i64,
    secret: Secret,
    password: &str,
) -> Result<()> {
    if caller.id != account_id {
        require_operator(caller)?;
    }
    let account = app.db.read(move |conn| accounts::get(conn, account_id))?;
    secret.check(&account, password)?;
    let hash = hash(password)?;
    app.db
        .write(move |conn| store::set_hash(conn, account_id, secret.as_str(), &hash))
}

/// `set_password` on a connection, for what runs without an `App` (the
/// command line, the demo); hashes in the caller's thread all the same.
pub fn set_password_on(
    conn: &crate::store::Connection,
    account: &Account,
    secret: Secret,
    password: &str,
) -> Result<()> {
    secret.check(account, password)?;
    store::set_hash(conn, account.id, secret.as_str(), &hash(password)?)
}

/// Whether account `account_id` has a password of kind `secret`.
pub fn has_password(app: &App, account_id: i64, secret: Secret) -> Result<bool> {
    app.db
        .read(move |conn| Ok(store::hash(conn, account_id, secret.as_str())?.is_some()))
}

/// The account named `name`, if `password` is its password of kind
/// `secret`. An unknown name, an unset password and a wrong one are the
/// same `Unauthorized` and each counts as a failure, for the account (when
/// there is one) and for `address`; while either is refused the answer is
/// `Locked` without checking the password.
pub fn sign_in(
    app: &App,
    secret: Secret,
    name: &str,
    password: &str,
    address: IpAddr,
) -> Result<Account> {
    let now = app.clock.now();
    let kind = secret.as_str();
    let by_address = format!("address:{address}");
    let name = name.to_string();
    let (account, stored, refused) = {
        let by_address = by_address.clone();
        app.db.read(move |conn| {
            let account = accounts::by_name(conn, &name)?;
            let mut refused = store::locked_until(conn, kind, &by_address, now)?;
            let mut stored = None;
            if let Some(account) = &account {
                stored = store::hash(conn, account.id, kind)?;
                refused = refused.max(store::locked_until(conn, kind, &subject(account), now)?);
            }
            Ok((account, stored, refused))
        })?
    };
    if let Some(until) = refused {
        return Err(locked(until, now));
    }
    let matches = verify(password, stored.as_deref());
    match account {
        Some(account) if matches => {
            let by_account = subject(&account);
            app.db
                .write(move |conn| store::clear(conn, kind, &by_account, now - WINDOW))?;
            Ok(account)
        }
        account => {
            app.db.write(move |conn| {
                let limit = secret.per_address();
                if store::fail(conn, kind, &by_address, now, now - WINDOW)? >= limit {
                    store::lock(conn, kind, &by_address, now + REFUSAL)?;
                }
                if let Some(account) = &account {
                    let by_account = subject(account);
                    if store::fail(conn, kind, &by_account, now, now - WINDOW)? >= PER_ACCOUNT {
                        store::lock(conn, kind, &by_account, now + REFUSAL)?;
                    }
                }
                Ok(())
            })?;
            Err(Error::Unauthorized)
        }
    }
}

/// Lifts the refusal of account `account_id` for both kinds of password
/// (operators only).
pub fn unlock(app: &App, caller: &Account, account_id: i64) -> Result<()> {
    require_operator(caller)?;
    let now = app.clock.now();
    app.db.write(move |conn| {
        let account = accounts::get(conn, account_id)?;
        for secret in [Secret::Web, Secret::Epp] {
            store::clear(conn, secret.as_str(), &subject(&account), now - WINDOW)?;
        }
        Ok(())
    })
}

fn subject(account: &Account) -> String {
    format!("account:{}", account.id)
}

fn locked(until: Millis, now: Millis) -> Error {
    Error::Locked {
        retry_after_secs: (until - now + SECOND - 1) / SECOND,
    }
}

/// An argon2 PHC string of `password` with a fresh salt from the operating
/// system (not the seedable generator: salts must never repeat).
fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches `stored`. Without a stored hash a decoy is
/// checked, so that an unknown name takes as long as a wrong password.
fn verify(password: &str, stored: Option<&str>) -> bool {
    static DECOY: OnceLock<Option<String>> = OnceLock::new();
    match stored {
        Some(stored) => matches(password, stored),
        None => {
            let decoy = DECOY.get_or_init(|| hash("not a password of anyone").ok());
            if let Some(decoy) = decoy {
                matches(password, decoy);
            }
            false
        }
    }
}

fn matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::accounts::{NewAccount, Role};

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn server() -> (crate::Handle, Account, Account) {
        let handle = crate::start(Config::for_tests()).unwrap();
        let app = &handle.app;
        let make = |name: &str, role| {
            let new = NewAccount {
                name: name.into(),
                email: format!("{name}@example.com"),
                role,
                review_limit_cents: None,
                review_all: false,
            };
            let now = app.clock.now();
            let token = crate::random::token();
            app.db
                .write(move |conn| accounts::create(conn, &new, &token, now))
                .unwrap()
        };
        let operator = make("op", Role::Operator);
        let customer = make("acme", Role::Customer);
        (handle, operator, customer)
    }

    #[test]
    fn a_password_signs_in_and_a_wrong_one_does_not() {
        let (handle, _, acme) = server();
        let app = &handle.app;
        set_password(app, &acme, acme.id, Secret::Web, "correct horse").unwrap();
        assert!(has_password(app, acme.id, Secret::Web).unwrap());
        assert!(!has_password(app, acme.id, Secret::Epp).unwrap());
        let signed = sign_in(app, Secret::Web, "acme", "correct horse", HOME).unwrap();
        assert_eq!(signed.id, acme.id);
        let wrong = sign_in(app, Secret::Web, "acme", "correct horsf", HOME);
        assert_eq!(wrong.err(), Some(Error::Unauthorized));
        // The EPP password is another secret.
        let epp = sign_in(app, Secret::Epp, "acme", "correct horse", HOME);
        assert_eq!(epp.err(), Some(Error::Unauthorized));
        let nobody = sign_in(app, Secret::Web, "nobody", "correct horse", HOME);
        assert_eq!(nobody.err(), Some(Error::Unauthorized));
    }

    #[test]
    fn lengths_and_names_are_checked_and_only_the_owner_or_an_operator_sets() {
        let (handle, ops, acme) = server();
        let app = &handle.app;
        let short = set_password(app, &acme, acme.id, Secret::Web, "seven77");
        assert_eq!(short.unwrap_err().field(), Some("password"));
        let long = set_password(app, &acme, acme.id, Secret::Epp, "seventeen-chars-x");
        assert_eq!(long.unwrap_err().field(), Some("password"));
        let spaced = set_password(app, &acme, acme.id, Secret::Epp, " secret1");
        assert_eq!(spaced.unwrap_err().field(), Some("password"));
        // "op" is too short to be an EPP clID.
        let clid = set_password(app, &ops, ops.id, Secret::Epp, "secret1");
        assert_eq!(clid.unwrap_err().field(), Some("name"));
        let other = set_password(app, &acme, ops.id, Secret::Web, "a long password");
        assert!(matches!(other, Err(Error::Forbidden(_))));
        set_password(app, &ops, acme.id, Secret::Epp, "secret1").unwrap();
        assert!(sign_in(app, Secret::Epp, "acme", "secret1", HOME).is_ok());
    }

    #[test]
    fn five_failures_refuse_the_account_for_fifteen_minutes() {
        let (handle, ops, acme) = server();
        let app = &handle.app;
        set_password(app, &acme, acme.id, Secret::Web, "correct horse").unwrap();
        for _ in 0..PER_ACCOUNT {
            let wrong = sign_in(app, Secret::Web, "acme", "wrong guess", HOME);
            assert_eq!(wrong.err(), Some(Error::Unauthorized));
        }
        // Now even the right password is refused, from any address.
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
        let refused = sign_in(app, Secret::Web, "acme", "correct horse", elsewhere);
        assert_eq!(
            refused.err(),
            Some(Error::Locked {
                retry_after_secs: 15 * 60
            })
        );
        // The EPP password's counter is separate.
        set_password(app, &acme, acme.id, Secret::Epp, "secret1").unwrap();
        assert!(sign_in(app, Secret::Epp, "acme", "secret1", HOME).is_ok());
        // The refusal lifts by itself...
        app.clock.advance(15 * MINUTE).unwrap();
        assert!(sign_in(app, Secret::Web, "acme", "correct horse", elsewhere).is_ok());
        // ...or when an operator lifts it.
        for _ in 0..PER_ACCOUNT {
            let _ = sign_in(app, Secret::Web, "acme", "wrong guess", elsewhere);
        }
        assert!(sign_in(app, Secret::Web, "acme", "correct horse", elsewhere).is_err());
        assert!(unlock(app, &acme, acme.id).is_err());
        unlock(app, &ops, acme.id).unwrap();
        assert!(sign_in(app, Secret::Web, "acme", "correct horse", elsewhere).is_ok());
    }

    #[test]
    fn an_address_guessing_names_is_refused() {
        let (handle, _, _) = server();
        let app = &handle.app;
        for n in 0..Secret::Epp.per_address() {
            let _ = sign_in(app, Secret::Epp, &format!("guess{n}"), "secret1", HOME);
        }
        let refused = sign_in(app, Secret::Epp, "acme", "secret1", HOME);
        assert!(matches!(refused, Err(Error::Locked { .. })));
    }
}
