//! The simulated registry (SPEC section 5): names are taken once registered,
//! transfers need an auth code and wait on the registrant, releases of a
//! locked domain are denied, backorders wait for the name to be deleted; and
//! outcome rules by name pattern and operation, editable over the API.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::clock::{self, Millis, DAY, HOUR};
use crate::error::{Error, Result};
use crate::state::{Failure, Operation, WaitingOn};
use crate::store::domains;
use crate::store::requests::Request;

use super::{Provider, Verdict};

/// How long a transfer waits for the registrant, and a release for the registry.
pub const AUTO_APPROVE: Millis = 5 * DAY;
/// Most rules the table holds.
pub const MAX_RULES: usize = 200;

/// One outcome rule: names matching `pattern` (`*` and `?` globs), for
/// `operation` (or `*`), get `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub pattern: String,
    pub operation: String,
    pub outcome: String,
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
                            "{text:?} is not an outcome: use success, registry_error, \
                             user_error:FIELD, unexpected_error or async:DURATION"
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
        if self.pattern.is_empty() || self.pattern.len() > 253 {
            return Err(Error::invalid(
                format!("{base}.pattern"),
                "1 to 253 characters",
            ));
        }
        if self.operation != "*" && self.operation.parse::<Operation>().is_err() {
            return Err(Error::invalid(
                format!("{base}.operation"),
                format!("{:?} is not an operation or \"*\"", self.operation),
            ));
        }
        Outcome::parse(&format!("{base}.outcome"), &self.outcome).map(|_| ())
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

pub fn load_rules(conn: &Connection) -> Result<Vec<Rule>> {
    let mut stmt =
        conn.prepare_cached("select pattern, operation, outcome from sim_rules order by position")?;
    let rows = stmt.query_map([], |r| {
        Ok(Rule {
            pattern: r.get(0)?,
            operation: r.get(1)?,
            outcome: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
    conn.execute("delete from sim_rules", [])?;
    for (i, rule) in rules.iter().enumerate() {
        conn.execute(
            "insert into sim_rules (position, pattern, operation, outcome) values (?1, ?2, ?3, ?4)",
            params![i as i64, rule.pattern, rule.operation, rule.outcome],
        )?;
    }
    Ok(())
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
            Operation::Renew
            | Operation::Update
            | Operation::Delete
            | Operation::Hold
            | Operation::Privacy => match mine {
                None => not_mine(),
                Some(_) => Verdict::Accept,
            },
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
        let rules = load_rules(conn)?;
        let ruled = rules
            .iter()
            .find(|r| r.matches(req))
            .and_then(|r| Outcome::parse("outcome", &r.outcome).ok())
            .or_else(|| builtin(req));
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
