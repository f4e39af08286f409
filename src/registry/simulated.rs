//! The simulated registry (SPEC section 5): names are taken once registered,
//! transfers need an auth code and wait on the registrant, releases of a
//! locked domain are denied, backorders wait for the name to be deleted; and
//! outcome rules by name pattern and operation, editable over the API. A
//! rule may run out after `times` uses (counted in the database), apply only
//! with a `probability` (drawn from `crate::random`, so `--seed` repeats it)
//! and answer `latency` late on the regdesk clock.

use crate::store::Connection;
use serde::{Deserialize, Serialize};

use crate::clock::{self, Millis, DAY, HOUR};
use crate::error::{quoted, Error, Result};
use crate::random;
use crate::state::{Failure, Operation, WaitingOn};
use crate::store::domains;
use crate::store::requests::Request;
use crate::store::simulated::{self as table, RuleRow};

use super::{Provider, Verdict};

/// How long a transfer waits for the registrant, and a release for the registry.
pub const AUTO_APPROVE: Millis = 5 * DAY;
/// Most rules the table holds.
pub const MAX_RULES: usize = 200;
/// The longest a rule may hold an answer back: latency simulates a slow
/// registry, not a wait (use `async:DURATION` for that).
pub const MAX_LATENCY: Millis = 10 * clock::SECOND;
/// Most uses a counted rule may be given.
pub const MAX_TIMES: i64 = 1_000_000;

/// One outcome rule: names matching `pattern` (`*` and `?` globs), for
/// `operation` (or `*`), get `outcome`; for the next `times` requests only
/// (when given: what the API shows is the uses left), with `probability`
/// (when given), answered `latency` late (when given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub pattern: String,
    pub operation: String,
    pub outcome: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    pub times: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// A whole number, also when written with a fraction of zero (`3.0`).
fn whole_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<i64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => crate::form::whole_number(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("must be a whole number")),
    }
}

/// A rule's outcome, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    RegistryError,
    UserError(String),
    UnexpectedError,
    Async(Millis),
}

impl Outcome {
    pub fn parse(field: &str, text: &str) -> Result<Outcome> {
        Ok(match text {
            "success" => Outcome::Success,
            "registry_error" => Outcome::RegistryError,
            "unexpected_error" => Outcome::UnexpectedError,
            _ => {
                if let Some(f) = text.strip_prefix("user_error:") {
                    if f.is_empty() || f.len() > 100 {
                        return Err(Error::invalid(field, "user_error needs a field name"));
                    }
                    Outcome::UserError(f.to_string())
                } else if let Some(d) = text.strip_prefix("async:") {
                    Outcome::Async(clock::parse_duration(field, d)?)
                } else {
                    return Err(Error::invalid(
                        field,
                        format!(
                            "{} is not an outcome: use success, registry_error, \
                             user_error:FIELD, unexpected_error or async:DURATION",
                            quoted(text)
                        ),
                    ));
                }
            }
        })
    }
}

impl Rule {
    /// Checks a rule from the API; `at` names its place in the list.
    pub fn validate(&self, at: usize) -> Result<()> {
        let base = format!("rules[{at}]");
        // Characters, as the API document's maxLength counts them.
        if self.pattern.is_empty() || self.pattern.chars().count() > 253 {
            return Err(Error::invalid(
                format!("{base}.pattern"),
                "1 to 253 characters",
            ));
        }
        if self.operation != "*" && self.operation.parse::<Operation>().is_err() {
            return Err(Error::invalid(
                format!("{base}.operation"),
                format!("{} is not an operation or \"*\"", quoted(&self.operation)),
            ));
        }
        Outcome::parse(&format!("{base}.outcome"), &self.outcome)?;
        if self.times.is_some_and(|n| !(1..=MAX_TIMES).contains(&n)) {
            return Err(Error::invalid(
                format!("{base}.times"),
                format!("must be 1 to {MAX_TIMES}"),
            ));
        }
        self.latency_ms(at)?;
        if self
            .probability
            .is_some_and(|p| !(p.is_finite() && (0.0..=1.0).contains(&p)))
        {
            return Err(Error::invalid(
                format!("{base}.probability"),
                "must be a number from 0 to 1",
            ));
        }
        Ok(())
    }

    /// The latency in milliseconds (0 when none), checked against its bound.
    fn latency_ms(&self, at: usize) -> Result<Millis> {
        let Some(text) = &self.latency else {
            return Ok(0);
        };
        let field = format!("rules[{at}].latency");
        let ms = clock::parse_duration(&field, text)?;
        if ms > MAX_LATENCY {
            return Err(Error::invalid(field, "must be at most 10s"));
        }
        Ok(ms)
    }

    /// The row that keeps this rule at `position` in the table.
    fn row(&self, position: usize) -> Result<RuleRow> {
        Ok(RuleRow {
            position: position as i64,
            pattern: self.pattern.clone(),
            operation: self.operation.clone(),
            outcome: self.outcome.clone(),
            times: self.times,
            latency_ms: self.latency_ms(position)?,
            probability: self.probability,
        })
    }

    fn matches(&self, req: &Request) -> bool {
        (self.operation == "*" || self.operation == req.operation.as_str())
            && glob(self.pattern.as_bytes(), req.domain.as_bytes())
    }
}

/// `*` matches any run of characters, `?` one character. Iterative, so a
/// hostile pattern cannot blow the stack.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A latency as the API shows it: whole seconds, else milliseconds.
fn show_latency(ms: Millis) -> Option<String> {
    match ms {
        0 => None,
        ms if ms % clock::SECOND == 0 => Some(format!("{}s", ms / clock::SECOND)),
        ms => Some(format!("{ms}ms")),
    }
}

/// The rules in order, each with its position in the table.
fn load_positioned(conn: &Connection) -> Result<Vec<(i64, Rule)>> {
    Ok(table::rules(conn)?
        .into_iter()
        .map(|row| (row.position, Rule::from(row)))
        .collect())
}

impl From<RuleRow> for Rule {
    fn from(row: RuleRow) -> Rule {
        Rule {
            pattern: row.pattern,
            operation: row.operation,
            outcome: row.outcome,
            times: row.times,
            latency: show_latency(row.latency_ms),
            probability: row.probability,
        }
    }
}

pub fn load_rules(conn: &Connection) -> Result<Vec<Rule>> {
    Ok(load_positioned(conn)?
        .into_iter()
        .map(|(_, rule)| rule)
        .collect())
}

/// Replaces the whole rule table.
pub fn save_rules(conn: &Connection, rules: &[Rule]) -> Result<()> {
    if rules.len() > MAX_RULES {
        return Err(Error::invalid(
            "rules",
            format!("at most {MAX_RULES} rules"),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        rule.validate(i)?;
    }
    let rows = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| rule.row(i))
        .collect::<Result<Vec<_>>>()?;
    table::replace_rules(conn, &rows)
}

/// The first rule that applies to `req`, with its latency. A counted rule
/// uses one of its uses here (in the caller's transaction); a rule with a
/// probability applies only when the draw says so, else the next rule is
/// asked.
fn choose(conn: &Connection, req: &Request) -> Result<Option<(Outcome, Millis)>> {
    for (position, rule) in load_positioned(conn)? {
        if !rule.matches(req) || rule.times.is_some_and(|n| n <= 0) {
            continue;
        }
        if rule.probability.is_some_and(|p| random::unit() >= p) {
            continue;
        }
        // Rules were checked when saved; one that no longer parses is skipped.
        let Ok(outcome) = Outcome::parse("outcome", &rule.outcome) else {
            continue;
        };
        if rule.times.is_some() {
            table::use_rule(conn, position)?;
        }
        let latency = rule.latency_ms(0).unwrap_or(0);
        return Ok(Some((outcome, latency)));
    }
    Ok(None)
}

/// An outcome as stored while its answer is held back.
fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Success => "success".to_string(),
        Outcome::RegistryError => "registry_error".to_string(),
        Outcome::UserError(f) => format!("user_error:{f}"),
        Outcome::UnexpectedError => "unexpected_error".to_string(),
        Outcome::Async(ms) => format!("async:{ms}ms"),
    }
}

/// What the rules say of a request: an outcome (`None`: no rule applies),
/// or that a rule's answer is held back until a time.
enum Ruled {
    Now(Option<Outcome>),
    HeldUntil(Millis),
}

/// Asks the rules about `req`. An answer a rule's latency held back is
/// given once its time comes (and forgotten then); a rule with a latency
/// holds its answer back.
fn ruled(conn: &Connection, req: &Request, now: Millis) -> Result<Ruled> {
    if let Some(held) = table::held(conn, req.id)? {
        if held.answer_at > now {
            return Ok(Ruled::HeldUntil(held.answer_at));
        }
        table::release(conn, req.id)?;
        let outcome = held
            .outcome
            .and_then(|t| Outcome::parse("outcome", &t).ok());
        return Ok(Ruled::Now(outcome));
    }
    Ok(match choose(conn, req)? {
        Some((outcome, latency)) if latency > 0 => {
            let at = now + latency;
            table::hold(conn, req.id, &outcome_text(&outcome), at)?;
            Ruled::HeldUntil(at)
        }
        chosen => Ruled::Now(chosen.map(|(outcome, _)| outcome)),
    })
}

/// The built-in rules: a first label ending `-fail`, `-limbo` or `-slow`.
fn builtin(req: &Request) -> Option<Outcome> {
    let first = req.domain.split('.').next().unwrap_or_default();
    if first.ends_with("-fail") {
        Some(Outcome::RegistryError)
    } else if first.ends_with("-limbo") {
        Some(Outcome::UnexpectedError)
    } else if first.ends_with("-slow") {
        Some(Outcome::Async(HOUR))
    } else {
        None
    }
}

pub struct Simulated;

impl Simulated {
    /// What the registry itself says, rules aside.
    fn decide(conn: &Connection, req: &Request, now: Millis) -> Result<Verdict> {
        let existing = domains::by_name(conn, &req.domain)?;
        let mine = existing.as_ref().filter(|d| d.account_id == req.account_id);
        let not_mine = || Verdict::Refuse {
            failure: Failure::Invalid,
            message: format!("{} is not in your portfolio", req.domain),
        };
        Ok(match req.operation {
            Operation::Create => match existing {
                Some(_) => Verdict::Refuse {
                    failure: Failure::Registry,
                    message: format!("{} is already registered", req.domain),
                },
                None => Verdict::Accept,
            },
            Operation::Backorder => match existing {
                Some(_) => Verdict::Wait {
                    on: WaitingOn::Registry,
                    until: None,
                    note: "waiting for the name to be deleted".into(),
                },
                None => Verdict::Accept,
            },
            Operation::Transfer => {
                let code = req
                    .params
                    .get("auth_code")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                match &existing {
                    _ if code == "wrong" => Verdict::UserError {
                        field: "auth_code".into(),
                        message: "the registry refused the auth code".into(),
                    },
                    Some(d) if d.account_id == req.account_id => Verdict::Refuse {
                        failure: Failure::Invalid,
                        message: format!("{} is already in your portfolio", req.domain),
                    },
                    Some(d) if d.transfer_lock => Verdict::Refuse {
                        failure: Failure::Registry,
                        message: format!("{} is locked against transfers", req.domain),
                    },
                    Some(d) if d.auth_code != code => Verdict::UserError {
                        field: "auth_code".into(),
                        message: "the auth code does not match".into(),
                    },
                    _ => Verdict::Wait {
                        on: WaitingOn::Registrant,
                        until: Some(now + AUTO_APPROVE),
                        note: "waiting for the registrant to approve (auto-approved after 5 days)"
                            .into(),
                    },
                }
            }
            Operation::Release => match mine {
                None => not_mine(),
                Some(d) if d.transfer_lock => Verdict::Refuse {
                    failure: Failure::Declined,
                    message: format!("{} is locked: lift the transfer lock first", req.domain),
                },
                Some(_) => Verdict::Wait {
                    on: WaitingOn::Registry,
                    until: Some(now + AUTO_APPROVE),
                    note: "release pending at the registry (completes after 5 days)".into(),
                },
            },
            Operation::Renew | Operation::Restore => match mine {
                None => not_mine(),
                Some(d) => match crate::store::lifecycle::refusal(conn, d.id, req.operation)? {
                    Some(message) => Verdict::Refuse {
                        failure: Failure::Invalid,
                        message,
                    },
                    None => Verdict::Accept,
                },
            },
            Operation::Update | Operation::Delete | Operation::Hold | Operation::Privacy => {
                match mine {
                    None => not_mine(),
                    Some(_) => Verdict::Accept,
                }
            }
        })
    }
}

impl Provider for Simulated {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn fulfil(&self, conn: &Connection, req: &Request, now: Millis) -> Result<Verdict> {
        // No rule makes the registry act on a name the account does not
        // hold: the portfolio effects of such an answer could not be applied.
        let needs_own = !matches!(
            req.operation,
            Operation::Create | Operation::Backorder | Operation::Transfer
        );
        if needs_own
            && domains::by_name(conn, &req.domain)?.is_none_or(|d| d.account_id != req.account_id)
        {
            return Ok(Verdict::Refuse {
                failure: Failure::Invalid,
                message: format!("{} is not in your portfolio", req.domain),
            });
        }
        let ruled = match ruled(conn, req, now)? {
            Ruled::HeldUntil(until) => return Ok(Verdict::Defer { until }),
            Ruled::Now(outcome) => outcome.or_else(|| builtin(req)),
        };
        Ok(match ruled {
            // "success" injects nothing: the registry's own answer stands.
            None | Some(Outcome::Success) => Self::decide(conn, req, now)?,
            Some(Outcome::RegistryError) => Verdict::Refuse {
                failure: Failure::Registry,
                message: "the registry refused the operation".into(),
            },
            Some(Outcome::UserError(field)) => Verdict::UserError {
                message: format!("the registry refused {field}"),
                field,
            },
            Some(Outcome::UnexpectedError) => Verdict::Unexpected {
                message: "the registry answered with an unexpected error".into(),
            },
            Some(Outcome::Async(after)) => Verdict::Wait {
                on: WaitingOn::Registry,
                until: Some(now + after),
                note: format!(
                    "the registry answers asynchronously (after {}s)",
                    after / 1000
                ),
            },
        })
    }

    fn wait_over(&self, conn: &Connection, req: &Request, now: Millis) -> Result<Verdict> {
        Ok(match (req.waiting_on, req.operation) {
            (Some(WaitingOn::Registrant), _) | (_, Operation::Release) => Verdict::Accept,
            _ => match Self::decide(conn, req, now)? {
                // A wait that a rule began ends with the registry's own answer.
                Verdict::Wait { on, note, .. } if on == WaitingOn::Registry => Verdict::Wait {
                    on,
                    until: None,
                    note,
                },
                other => other,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule's pattern is 1 to 253 characters, not bytes (as the API
    /// document's maxLength counts).
    #[test]
    fn a_pattern_is_measured_in_characters() {
        let rule = |pattern: String| Rule {
            pattern,
            operation: "*".into(),
            outcome: "success".into(),
            times: None,
            latency: None,
            probability: None,
        };
        assert!(rule("é".repeat(253)).validate(0).is_ok());
        assert!(rule("é".repeat(254)).validate(0).is_err());
        assert!(rule(String::new()).validate(0).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob(b"*-fail.*", b"x-fail.com"));
        assert!(glob(b"*", b""));
        assert!(glob(b"a?c.com", b"abc.com"));
        assert!(!glob(b"a?c.com", b"ac.com"));
        assert!(!glob(b"*.net", b"a.com"));
        assert!(glob(b"**a**b**", b"xxaxxbxx"));
        let long = "a".repeat(200);
        assert!(!glob(
            format!("{}b", "*a".repeat(50)).as_bytes(),
            long.as_bytes()
        ));
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            Outcome::parse("o", "async:1h").unwrap(),
            Outcome::Async(HOUR)
        );
        assert_eq!(
            Outcome::parse("o", "user_error:auth_code").unwrap(),
            Outcome::UserError("auth_code".into())
        );
        for bad in ["", "ok", "async:", "async:soon", "user_error:"] {
            assert!(Outcome::parse("o", bad).is_err(), "{bad}");
        }
    }
}
