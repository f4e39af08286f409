//! The order form: domain-name validation, the params of each operation,
//! what information is missing, what an order costs and whether it needs an
//! operator's authorisation. Pure: no I/O.

use serde_json::{Map, Value};

use crate::error::{quoted, Error, Result};
use crate::state::Operation;

/// Longest accepted `auth_code`, annotation or free-text field.
pub const MAX_TEXT: usize = 1000;
const MAX_NAMESERVERS: usize = 13;
const CONTACT_ROLES: &[&str] = &["owner", "admin", "tech", "billing"];
const CONTACT_FIELDS: &[&str] = &[
    // The contact object an order's contact came from (`desk::contacts`).
    "id",
    "name",
    "email",
    "organization",
    "phone",
    "address",
    "city",
    "postal_code",
    "country",
];

/// Validates and normalises a domain name: lower-case A-labels (LDH), at
/// least two labels, each 1-63 characters, 253 in all.
pub fn domain_name(field: &str, raw: &str) -> Result<String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| {
        Error::invalid(
            field,
            format!("{} is not a valid domain name: {why}", quoted(raw)),
        )
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if !name.is_ascii() {
        return Err(bad(
            "use the A-label (xn--) form for internationalised names",
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("needs at least two labels"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label has 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("only letters, digits and hyphens are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label cannot start or end with a hyphen"));
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the top-level label cannot be numeric"));
    }
    Ok(name)
}

fn text(field: &str, value: &Value, max: usize) -> Result<String> {
    let s = value
        .as_str()
        .ok_or_else(|| Error::invalid(field, "must be a string"))?;
    if s.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(field, "control characters are not allowed"));
    }
    Ok(s.to_string())
}

/// An e-mail address (a contact's, an account's), as mail can be sent to
/// it: at most 254 characters; before the `@` a dot-atom of at most 64
/// (RFC 5322's `atext` runs joined by single dots); after it a host name
/// of two labels or more (letters, digits and inner hyphens, at most 63
/// each; an internationalised domain in its `xn--` form). The API
/// document's `Email` pattern says the same.
pub fn email(field: &str, value: &Value) -> Result<String> {
    let s = text(field, value, 254)?;
    let valid = s
        .split_once('@')
        .is_some_and(|(local, host)| local.len() <= 64 && dot_atom(local) && host_name(host));
    if !valid {
        return Err(Error::invalid(
            field,
            format!("{} is not an email address", quoted(&s)),
        ));
    }
    Ok(s)
}

/// RFC 5322's `dot-atom-text`: runs of `atext` joined by single dots.
fn dot_atom(s: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    s.split('.')
        .all(|run| !run.is_empty() && run.bytes().all(atext))
}

/// A host name of two labels or more: letters, digits and inner hyphens,
/// 1 to 63 of them per label.
fn host_name(s: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.contains('.') && s.split('.').all(label)
}

fn contacts(value: &Value) -> Result<Value> {
    let roles = value.as_object().ok_or_else(|| {
        Error::invalid("params.contacts", "must be an object of contacts by role")
    })?;
    let mut out = Map::new();
    for (role, contact) in roles {
        let base = format!("params.contacts.{role}");
        if !CONTACT_ROLES.contains(&role.as_str()) {
            return Err(Error::invalid(
                base,
                format!(
                    "unknown contact role; use one of {}",
                    CONTACT_ROLES.join(", ")
                ),
            ));
        }
        let fields = contact
            .as_object()
            .ok_or_else(|| Error::invalid(&base, "must be an object"))?;
        let mut clean = Map::new();
        for (key, v) in fields {
            let field = format!("{base}.{key}");
            if !CONTACT_FIELDS.contains(&key.as_str()) {
                return Err(Error::invalid(field, "unknown contact field"));
            }
            let v = if key == "email" {
                email(&field, v)?
            } else {
                text(&field, v, 200)?
            };
            clean.insert(key.clone(), Value::String(v));
        }
        out.insert(role.clone(), Value::Object(clean));
    }
    Ok(Value::Object(out))
}

/// A JSON number that is a whole number, as an `i64`: `3` and `3.0` alike
/// (JSON does not tell them apart, and some encoders write every number
/// with a fraction).
pub fn whole_number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        // The range check keeps `as` from saturating.
        (f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63)).then_some(f as i64)
    })
}

/// Validates the params of `operation` and returns them normalised. Unknown
/// keys are refused so that a typo does not silently drop information.
pub fn params(operation: Operation, value: Option<&Value>) -> Result<Value> {
    let empty = Map::new();
    let fields = match value {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(Error::invalid("params", "must be an object")),
    };
    let mut out = Map::new();
    for (key, v) in fields {
        let field = format!("params.{key}");
        let clean = match key.as_str() {
            "period" => {
                let n = whole_number(v)
                    .filter(|n| (1..=10).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(&field, "must be a whole number of years, 1 to 10")
                    })?;
                Value::from(n)
            }
            "contacts" => contacts(v)?,
            "nameservers" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| Error::invalid(&field, "must be a list of host names"))?;
                if list.len() > MAX_NAMESERVERS {
                    return Err(Error::invalid(
                        &field,
                        format!("at most {MAX_NAMESERVERS} name servers"),
                    ));
                }
                let mut hosts = Vec::new();
                for (i, host) in list.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    let s = host
                        .as_str()
                        .ok_or_else(|| Error::invalid(&f, "must be a host name"))?;
                    hosts.push(Value::String(domain_name(&f, s)?));
                }
                Value::Array(hosts)
            }
            "auth_code" => Value::String(text(&field, v, 64)?),
            "phase" => match v.as_str() {
                Some(p @ ("sunrise" | "landrush")) => Value::String(p.into()),
                _ => {
                    return Err(Error::invalid(
                        &field,
                        "must be \"sunrise\" or \"landrush\"",
                    ))
                }
            },
            "premium" | "transfer_lock" | "privacy" => Value::Bool(
                v.as_bool()
                    .ok_or_else(|| Error::invalid(&field, "must be true or false"))?,
            ),
            _ => return Err(Error::invalid(field, "unknown parameter")),
        };
        out.insert(key.clone(), clean);
    }
    let _ = operation;
    Ok(Value::Object(out))
}

fn has_text(params: &Value, pointer: &str) -> bool {
    params
        .pointer(pointer)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// The required fields that `params` lacks for `operation` (SPEC section 3).
pub fn missing(operation: Operation, params: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(
        operation,
        Operation::Create | Operation::Transfer | Operation::Backorder
    ) {
        if !has_text(params, "/contacts/owner/name") {
            out.push("contacts.owner.name".to_string());
        }
        if !has_text(params, "/contacts/owner/email") {
            out.push("contacts.owner.email".to_string());
        }
    }
    if operation == Operation::Transfer && !has_text(params, "/auth_code") {
        out.push("auth_code".to_string());
    }
    if operation == Operation::Update
        && ["contacts", "nameservers", "transfer_lock", "auth_code"]
            .iter()
            .all(|k| params.get(k).is_none())
    {
        out.push("contacts|nameservers|transfer_lock|auth_code".to_string());
    }
    out
}

/// Years the order covers (default 1).
pub fn period(params: &Value) -> i64 {
    params.get("period").and_then(Value::as_i64).unwrap_or(1)
}

pub fn is_premium(params: &Value) -> bool {
    params
        .get("premium")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// One line of the price list: what an operation charges, per year.
pub fn price_per_year_cents(operation: Operation) -> Option<i64> {
    match operation {
        Operation::Create | Operation::Backorder => Some(1_200),
        Operation::Transfer => Some(900),
        Operation::Renew => Some(1_200),
        _ => None,
    }
}

/// The premium surcharge, charged once.
pub const PREMIUM_CENTS: i64 = 25_000;

/// The charges an order creates while processing: `(kind, description, cents)`.
pub fn charges(operation: Operation, domain: &str, params: &Value) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    if let Some(per_year) = price_per_year_cents(operation) {
        let years = period(params);
        out.push((
            operation.as_str().to_string(),
            format!("{operation} {domain}, {years} year(s)"),
            per_year * years,
        ));
    }
    if operation == Operation::Restore {
        out.push((
            "restore".to_string(),
            format!("restore {domain} from redemption"),
            RESTORE_FEE_CENTS,
        ));
        out.push((
            "renew".to_string(),
            format!("renew {domain}, 1 year(s)"),
            price_per_year_cents(Operation::Renew).unwrap_or_default(),
        ));
    }
    if is_premium(params) && operation == Operation::Create {
        out.push((
            "premium".to_string(),
            format!("premium name {domain}"),
            PREMIUM_CENTS,
        ));
    }
    out
}

/// Whether an operator must authorise the order before it runs.
pub fn needs_review(
    operation: Operation,
    domain: &str,
    params: &Value,
    review_limit_cents: i64,
    review_all: bool,
) -> bool {
    let amount: i64 = charges(operation, domain, params)
        .iter()
        .map(|(_, _, cents)| cents)
        .sum();
    // A registry asks a report for every restore: an operator writes it.
    review_all
        || operation == Operation::Restore
        || is_premium(params)
        || params.get("phase").is_some()
        || amount > review_limit_cents
}

/// The registry's fee for restoring a name in redemption, besides the
/// year of renewal a restore includes.
pub const RESTORE_FEE_CENTS: i64 = 8_000;

/// Years a renewal adds: a restore adds one, whatever its form says.
pub fn renewal_years(operation: Operation, params: &Value) -> i64 {
    match operation {
        Operation::Restore => 1,
        _ => period(params),
    }
}

/// The furthest a renewal may take an expiry: ten years past now.
pub const MAX_RENEWAL_YEARS: i64 = 10;

/// Whether a renewal or a restore may be ordered for a domain in
/// `lifecycle` (the other operations always may, as far as the lifecycle
/// goes).
pub fn lifecycle_allows(operation: Operation, lifecycle: &str) -> Result<()> {
    match (operation, lifecycle) {
        (Operation::Renew, "redemption") => Err(Error::Conflict(
            "the domain is in redemption: only a restore brings it back".into(),
        )),
        (Operation::Renew | Operation::Restore, "pending_delete") => Err(Error::Conflict(
            "the domain is pending deletion: nothing brings it back".into(),
        )),
        (Operation::Restore, "redemption") => Ok(()),
        (Operation::Restore, _) => Err(Error::Conflict(
            "only a domain in redemption can be restored".into(),
        )),
        _ => Ok(()),
    }
}

/// Refuses a renewal that would take an expiry (`expires_at`) more than
/// ten years past `now`.
pub fn renewal_within_limit(params: &Value, expires_at: i64, now: i64) -> Result<()> {
    const YEAR: i64 = 365 * 24 * 60 * 60 * 1000;
    if expires_at + period(params) * YEAR > now + MAX_RENEWAL_YEARS * YEAR {
        return Err(Error::invalid(
            "params.period",
            format!(
                "the renewal would take the expiry more than {MAX_RENEWAL_YEARS} years past now"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        for (v, want) in [
            (json!(3), Some(3)),
            (json!(3.0), Some(3)),
            (json!(-2.0), Some(-2)),
            (json!(0.0), Some(0)),
            // Exact only when the text is read exactly (float_roundtrip).
            (
                serde_json::from_str("2251799813685247.0").unwrap(),
                Some(2251799813685247),
            ),
            (json!(3.5), None),
            (json!(1e300), None),
            (json!(-1e19), None),
            (json!("3"), None),
            (json!(null), None),
        ] {
            assert_eq!(whole_number(&v), want, "{v}");
        }
        let p = params(Operation::Create, Some(&json!({"period": 2.0}))).unwrap();
        assert_eq!(p["period"], json!(2));
    }

    #[test]
    fn domain_names() {
        assert_eq!(domain_name("d", "Example.COM.").unwrap(), "example.com");
        assert_eq!(
            domain_name("d", "xn--bcher-kva.de").unwrap(),
            "xn--bcher-kva.de"
        );
        for bad in [
            "",
            "com",
            "-a.com",
            "a-.com",
            "a..com",
            "ex ample.com",
            "bücher.de",
            "a.123",
            "a_b.com",
            "'; drop table requests; --.com",
        ] {
            let err = domain_name("domain", bad).unwrap_err();
            assert_eq!(err.field(), Some("domain"), "{bad}");
        }
        assert!(domain_name("d", &format!("{}.com", "a".repeat(64))).is_err());
        assert!(domain_name("d", &format!("{}com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn params_are_checked_field_by_field() {
        let ok = params(
            Operation::Create,
            Some(
                &json!({"period": 2, "contacts": {"owner": {"name": "A", "email": "a@b.c"}},
                         "nameservers": ["NS1.Example.net"]}),
            ),
        )
        .unwrap();
        assert_eq!(ok["nameservers"][0], "ns1.example.net");
        let cases = [
            (json!({"period": 0}), "params.period"),
            (json!({"period": "2"}), "params.period"),
            (json!({"colour": 1}), "params.colour"),
            (
                json!({"contacts": {"owner": {"email": "nope"}}}),
                "params.contacts.owner.email",
            ),
            (json!({"contacts": {"pilot": {}}}), "params.contacts.pilot"),
            (
                json!({"nameservers": ["ok.net", 5]}),
                "params.nameservers[1]",
            ),
            (json!({"phase": "general"}), "params.phase"),
            (json!([1]), "params"),
        ];
        for (value, field) in cases {
            let err = params(Operation::Create, Some(&value)).unwrap_err();
            assert_eq!(err.field(), Some(field), "{value}");
        }
    }

    #[test]
    fn missing_information() {
        let empty = json!({});
        assert_eq!(
            missing(Operation::Transfer, &empty),
            vec!["contacts.owner.name", "contacts.owner.email", "auth_code"]
        );
        assert_eq!(missing(Operation::Renew, &empty), Vec::<String>::new());
        assert_eq!(missing(Operation::Update, &empty).len(), 1);
        assert!(missing(Operation::Update, &json!({"transfer_lock": false})).is_empty());
        assert!(missing(Operation::Update, &json!({"auth_code": "n3w"})).is_empty());
    }

    #[test]
    fn review_rules() {
        let plain = json!({});
        assert!(!needs_review(
            Operation::Create,
            "a.com",
            &plain,
            50_000,
            false
        ));
        assert!(needs_review(
            Operation::Create,
            "a.com",
            &plain,
            50_000,
            true
        ));
        assert!(needs_review(
            Operation::Create,
            "a.com",
            &json!({"premium": true}),
            50_000,
            false
        ));
        assert!(needs_review(
            Operation::Create,
            "a.com",
            &json!({"phase": "sunrise"}),
            50_000,
            false
        ));
        assert!(needs_review(
            Operation::Create,
            "a.com",
            &json!({"period": 10}),
            10_000,
            false
        ));
    }

    /// What the mail sender (lettre) can send to is what `email` takes: each
    /// address it takes parses as a recipient, and those it refuses are the
    /// ones mail could not go to (they were taken before, and every mail to
    /// such an account failed).
    #[test]
    fn email_addresses_are_those_mail_can_be_sent_to() {
        let check = |a: &str| email("e", &json!(a)).is_ok();
        let local64 = format!("{}@example.net", "a".repeat(64));
        let label63 = format!("a@{}.net", "b".repeat(63));
        for good in [
            "a@b.co",
            "A.B@EXAMPLE.NET",
            "a+tag@example.com",
            "o'brien@example.ie",
            "!#$%&'*+/=?^_`{|}~-@a.bc",
            "a@xn--exmple-cua.fr",
            "a@1.2",
            &local64,
            &label63,
        ] {
            assert!(check(good), "{good} refused");
            assert!(good.parse::<lettre::Address>().is_ok(), "{good}");
        }
        let local65 = format!("{}@example.net", "a".repeat(65));
        let label64 = format!("a@{}.net", "b".repeat(64));
        for bad in [
            "\u{a3}\u{a4}@x+.",
            "a\"b@c.de",
            "a,b@c.de",
            "<a>@b.co",
            "a@b..co",
            "a@.co",
            "a@b.co.",
            "a@-b.co",
            "a@b-.co",
            "a..b@c.de",
            ".a@c.de",
            "a.@c.de",
            "a@b_c.de",
            "\u{e9}mile@ex\u{e4}mple.fr",
            "x@localhost",
            "a b@c.de",
            "\"a b\"@c.de",
            "a@b@c.de",
            "@b.co",
            "a@",
            &local65,
            &label64,
        ] {
            assert!(!check(bad), "{bad} taken");
        }
        // Addresses made at random from the rule's own parts all parse.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let atext = b"abcXYZ019!#$%&'*+/=?^_`{|}~-";
        let ldh = b"abcXYZ019-";
        for _ in 0..2_000 {
            let mut a = String::new();
            for run in 0..1 + next(3) {
                if run > 0 {
                    a.push('.');
                }
                (0..1 + next(8)).for_each(|_| a.push(atext[next(atext.len())] as char));
            }
            a.push('@');
            for label in 0..2 + next(3) {
                if label > 0 {
                    a.push('.');
                }
                a.push('x');
                (0..next(10)).for_each(|_| a.push(ldh[next(ldh.len())] as char));
                a.push('9');
            }
            assert!(check(&a), "{a} refused");
            assert!(a.parse::<lettre::Address>().is_ok(), "{a}");
        }
    }
}
