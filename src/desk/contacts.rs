//! Contact objects of an account (RFC 5733): checked, made, changed and
//! removed at once (they are not work requests), and turned into the
//! inline contacts a domain order takes.

use serde_json::{json, Map, Value};

use crate::error::{quoted, Error, Result};
use crate::form;
use crate::random;
use crate::store::accounts::Account;
use crate::store::contacts as table;
use crate::App;

pub use crate::store::contacts::Contact;

/// Longest postal line, name or city (RFC 5733 `postalLineType`).
const MAX_LINE: usize = 255;
/// Most street lines.
const MAX_STREET: usize = 3;
/// Most ids or names one check answers.
pub const MAX_CHECK: usize = 100;

/// A new contact as a face read it.
#[derive(Debug, Clone, Default)]
pub struct NewContact {
    pub id: String,
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
    /// None or empty: one is generated.
    pub auth_info: Option<String>,
}

/// What a change sets; `None` leaves a field as it is, and for the
/// optional fields `Some(None)` removes it.
#[derive(Debug, Clone, Default)]
pub struct ContactChange {
    pub name: Option<String>,
    pub org: Option<Option<String>>,
    pub street: Option<Vec<String>>,
    pub city: Option<String>,
    pub sp: Option<Option<String>>,
    pub pc: Option<Option<String>>,
    pub cc: Option<String>,
    pub voice: Option<Option<String>>,
    pub fax: Option<Option<String>>,
    pub email: Option<String>,
    pub auth_info: Option<String>,
}

/// Whether an id (or a host name) may be created; why not when it may not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Availability {
    pub id: String,
    pub available: bool,
    pub reason: Option<String>,
}

impl Availability {
    pub(crate) fn of(id: &str, refusal: Option<String>) -> Availability {
        Availability {
            id: id.to_string(),
            available: refusal.is_none(),
            reason: refusal,
        }
    }
}

/// A contact id: 3 to 16 characters (an EPP `clIDType`), none of them
/// white space or control characters.
pub fn valid_id(field: &str, id: &str) -> Result<()> {
    let n = id.chars().count();
    if !(3..=16).contains(&n) || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            format!("{} must be 3 to 16 characters without spaces", quoted(id)),
        ));
    }
    Ok(())
}

/// Which of `ids` may be created.
pub fn check(app: &App, ids: &[String]) -> Result<Vec<Availability>> {
    bounded("id", ids)?;
    let ids = ids.to_vec();
    app.db.read(move |conn| {
        ids.iter()
            .map(|id| {
                if let Err(e) = valid_id("id", id) {
                    return Ok(Availability::of(id, Some(e.message())));
                }
                let taken = table::get(conn, id)?.map(|_| "the id is in use".to_string());
                Ok(Availability::of(id, taken))
            })
            .collect()
    })
}

/// Refuses a check of more than `MAX_CHECK` names (`field`).
pub(crate) fn bounded(field: &str, names: &[String]) -> Result<()> {
    if names.len() > MAX_CHECK {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_CHECK} in one check"),
        ));
    }
    Ok(())
}

/// Contact `id`: the caller's own (operators: any). Another account's is
/// `NotYours` unless `auth_info` is its auth info.
pub fn get(app: &App, caller: &Account, id: &str, auth_info: Option<&str>) -> Result<Contact> {
    let id = id.to_string();
    let c = app
        .db
        .read(move |conn| table::get(conn, &id)?.ok_or_else(|| not_found(&id)))?;
    let authorised = auth_info.is_some_and(|a| !a.is_empty() && a == c.auth_info);
    if c.account_id == caller.id || caller.is_operator() || authorised {
        Ok(c)
    } else {
        Err(Error::NotYours(format!(
            "contact {:?} belongs to another account",
            c.id
        )))
    }
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("contact {}", quoted(id)))
}

/// The caller's contacts (operators: every account's).
pub fn list(app: &App, caller: &Account) -> Result<Vec<Contact>> {
    let scope = super::own_scope(caller);
    app.db.read(move |conn| table::list(conn, scope))
}

/// Makes a contact of the caller's; `Error::Exists` when the id is taken.
pub fn create(app: &App, caller: &Account, new: NewContact) -> Result<Contact> {
    valid_id("id", &new.id)?;
    let now = app.clock.now();
    let c = checked(Contact {
        id: new.id,
        account_id: caller.id,
        name: new.name,
        org: new.org,
        street: new.street,
        city: new.city,
        sp: new.sp,
        pc: new.pc,
        cc: new.cc,
        voice: new.voice,
        fax: new.fax,
        email: new.email,
        auth_info: new.auth_info.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    })?;
    let written = c.clone();
    app.db.write(move |conn| table::insert(conn, &written))?;
    Ok(c)
}

/// Changes a contact of the caller's (operators: any).
pub fn update(app: &App, caller: &Account, id: &str, change: ContactChange) -> Result<Contact> {
    let c = own(app, caller, id)?;
    let changed = checked(Contact {
        name: change.name.unwrap_or(c.name),
        org: change.org.unwrap_or(c.org),
        street: change.street.unwrap_or(c.street),
        city: change.city.unwrap_or(c.city),
        sp: change.sp.unwrap_or(c.sp),
        pc: change.pc.unwrap_or(c.pc),
        cc: change.cc.unwrap_or(c.cc),
        voice: change.voice.unwrap_or(c.voice),
        fax: change.fax.unwrap_or(c.fax),
        email: change.email.unwrap_or(c.email),
        auth_info: change.auth_info.unwrap_or(c.auth_info),
        updated_at: app.clock.now(),
        ..c
    })?;
    let written = changed.clone();
    app.db.write(move |conn| table::update(conn, &written))?;
    Ok(changed)
}

/// Removes a contact of the caller's; `Error::InUse` while a domain or an
/// open request names it.
pub fn delete(app: &App, caller: &Account, id: &str) -> Result<()> {
    let c = own(app, caller, id)?;
    app.db.write(move |conn| {
        if let Some(user) = table::named_by(conn, &c.id)? {
            return Err(Error::InUse(format!(
                "contact {:?} is named by {user}",
                c.id
            )));
        }
        table::delete(conn, &c.id)
    })
}

/// Contact `id` if the caller may change it.
fn own(app: &App, caller: &Account, id: &str) -> Result<Contact> {
    get(app, caller, id, None)
}

/// The inline contacts of a domain order (`contacts.owner` and the other
/// roles) from contact objects of the caller's: the registrant and
/// (role, id) pairs, role one of admin, tech and billing. Each keeps its
/// `id`, which is how a domain names its contact objects.
pub fn order_contacts(
    app: &App,
    caller: &Account,
    registrant: &str,
    others: &[(String, String)],
) -> Result<Value> {
    let mut out = Map::new();
    out.insert("owner".into(), inline(&own(app, caller, registrant)?));
    for (role, id) in others {
        if !["admin", "tech", "billing"].contains(&role.as_str()) {
            return Err(Error::invalid(
                "contacts",
                format!("{} is not admin, tech or billing", quoted(role)),
            ));
        }
        out.insert(role.clone(), inline(&own(app, caller, id)?));
    }
    Ok(Value::Object(out))
}

/// A contact object as the order form's inline contact.
fn inline(c: &Contact) -> Value {
    let mut v = json!({
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "city": c.city,
        "country": c.cc,
    });
    let optional = [
        ("organization", c.org.clone()),
        ("phone", c.voice.clone()),
        ("postal_code", c.pc.clone()),
        (
            "address",
            (!c.street.is_empty()).then(|| c.street.join(", ")),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            v[key] = json!(value);
        }
    }
    v
}

/// `c` with every field checked and normalised (country upper-case, an
/// empty auth info generated), or the first field at fault.
fn checked(mut c: Contact) -> Result<Contact> {
    c.name = line("name", &c.name, MAX_LINE)?;
    c.city = line("city", &c.city, MAX_LINE)?;
    c.org = optional_line("org", c.org, MAX_LINE)?;
    c.sp = optional_line("sp", c.sp, MAX_LINE)?;
    c.pc = optional_line("pc", c.pc, 16)?;
    if c.street.len() > MAX_STREET {
        return Err(Error::invalid(
            "street",
            format!("at most {MAX_STREET} lines"),
        ));
    }
    for (i, s) in c.street.iter_mut().enumerate() {
        *s = line(&format!("street[{i}]"), s, MAX_LINE)?;
    }
    c.cc = country(&c.cc)?;
    c.voice = c.voice.map(|v| phone("voice", &v)).transpose()?;
    c.fax = c.fax.map(|v| phone("fax", &v)).transpose()?;
    c.email = form::email("email", &Value::String(c.email))?;
    c.auth_info = auth_info(&c.auth_info)?;
    Ok(c)
}

/// A required line of text: no control characters, not blank, at most
/// `max` characters; kept trimmed. (The API document's patterns say the
/// same.)
fn line(field: &str, value: &str, max: usize) -> Result<String> {
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "control characters are not allowed"));
    }
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "is required and cannot be blank"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(value.trim().to_string())
}

/// An optional line: empty is none.
fn optional_line(field: &str, value: Option<String>, max: usize) -> Result<Option<String>> {
    match value {
        Some(v) if !v.is_empty() => line(field, &v, max).map(Some),
        _ => Ok(None),
    }
}

/// An ISO 3166 alpha-2 code, kept upper-case.
fn country(cc: &str) -> Result<String> {
    if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Error::invalid(
            "cc",
            format!("{} is not a two-letter country code", quoted(cc)),
        ));
    }
    Ok(cc.to_ascii_uppercase())
}

/// A telephone number as RFC 5733 writes it: `+CC.NUMBER` (E.164, at most
/// 17 characters).
fn phone(field: &str, value: &str) -> Result<String> {
    let ok = value.len() <= 17
        && value
            .strip_prefix('+')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(cc, n)| {
                (1..=3).contains(&cc.len())
                    && !n.is_empty()
                    && n.len() <= 14
                    && cc.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
            });
    if !ok {
        return Err(Error::invalid(
            field,
            format!("{} is not a number such as +1.7035555555", quoted(value)),
        ));
    }
    Ok(value.to_string())
}

/// Auth info given (6 to 64 characters, no white space at the ends), or
/// generated when empty.
pub(crate) fn auth_info(value: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(random::hex(8));
    }
    let n = value.chars().count();
    if !(6..=64).contains(&n) || value.trim() != value || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "auth_info",
            "must be 6 to 64 characters, with no space at either end",
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::accounts::{self, NewAccount, Role};

    /// A customer account made for a test.
    pub(crate) fn account(app: &App, name: &str) -> Account {
        let new = NewAccount {
            name: name.into(),
            email: format!("{name}@example.net"),
            role: Role::Customer,
            review_limit_cents: None,
            review_all: false,
        };
        let token = format!("rd_{name}_token_for_tests");
        app.db
            .write(move |conn| accounts::create(conn, &new, &token, 0))
            .unwrap()
    }

    fn new(id: &str) -> NewContact {
        NewContact {
            id: id.into(),
            name: "Ada Lovelace".into(),
            city: "London".into(),
            cc: "gb".into(),
            email: "ada@example.net".into(),
            street: vec!["1 Main St".into(), "Floor 2".into()],
            voice: Some("+44.2079460000".into()),
            auth_info: Some(String::new()),
            ..NewContact::default()
        }
    }

    /// What the EPP face relies on: a check per id, another account's
    /// contact with and without its auth info, and an order's contacts made
    /// from contact objects that remember where they came from.
    #[test]
    fn objects_become_an_orders_inline_contacts_and_others_need_auth_info() {
        let handle = crate::start(Config::for_tests()).unwrap();
        let app = &handle.app;
        let (alice, bob) = (account(app, "alice"), account(app, "bob"));
        let c = create(app, &alice, new("ada-1")).unwrap();
        assert_eq!(c.auth_info.len(), 16);
        create(app, &alice, new("ada-2")).unwrap();
        assert!(matches!(
            create(app, &bob, new("ada-1")),
            Err(Error::Exists(_))
        ));

        let ids = ["ada-1", "free-1", "x"].map(String::from);
        let avail = check(app, &ids).unwrap();
        let seen: Vec<(bool, bool)> = avail
            .iter()
            .map(|a| (a.available, a.reason.is_some()))
            .collect();
        assert_eq!(seen, [(false, true), (true, false), (false, true)]);

        assert!(matches!(
            get(app, &bob, "ada-1", None),
            Err(Error::NotYours(_))
        ));
        assert!(matches!(
            get(app, &bob, "ada-1", Some("wrong")),
            Err(Error::NotYours(_))
        ));
        assert_eq!(get(app, &bob, "ada-1", Some(&c.auth_info)).unwrap(), c);
        assert!(matches!(
            get(app, &bob, "nobody", None),
            Err(Error::NotFound(_))
        ));

        let others = [("tech".to_string(), "ada-2".to_string())];
        let v = order_contacts(app, &alice, "ada-1", &others).unwrap();
        assert_eq!(v["owner"]["id"], "ada-1");
        assert_eq!(v["owner"]["address"], "1 Main St, Floor 2");
        assert_eq!(v["owner"]["phone"], "+44.2079460000");
        assert_eq!(v["tech"]["id"], "ada-2");
        assert_eq!(
            form::params(
                crate::state::Operation::Create,
                Some(&json!({ "contacts": v }))
            )
            .map(|_| ()),
            Ok(())
        );
        let bad_role = [("owner2".to_string(), "ada-2".to_string())];
        let refused = order_contacts(app, &alice, "ada-1", &bad_role).unwrap_err();
        assert_eq!(refused.field(), Some("contacts"));
        assert!(matches!(
            order_contacts(app, &bob, "ada-1", &[]),
            Err(Error::NotYours(_))
        ));
        handle.stop();
    }
}
