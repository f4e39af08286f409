//! `--demo`: seeds a living desk (customers, a portfolio, and work requests
//! in every state and every wait, with their notifications and mail) through
//! the real code paths: the desk's create (and submit), the ticker and
//! `transition::apply`. Nothing is inserted behind the state machine.

use crate::store::Connection;
use serde_json::{json, Value};

use crate::clock::{Clock, Millis, DAY};
use crate::db::Db;
use crate::desk;
use crate::desk::credentials::{self, Secret};
use crate::error::{Error, Result};
use crate::form;
use crate::random;
use crate::registry::simulated::{self, Rule};
use crate::state::{Event, Operation, WaitingOn};
use crate::store::accounts::{self, Account, NewAccount, Role};
use crate::store::domains;
use crate::store::requests::NewRequest;
use crate::store::transition::{self, Change, Who};
use crate::ticker::Ticker;

/// The demo customers, in the order their tokens are printed.
pub const CUSTOMERS: &[&str] = &["alice", "bob", "carol"];

/// A demo account's name, a new API token (none for the operator, whose
/// token is the one the desk was started with) and a new password for the
/// web desk and for EPP (each new at every start: all are stored hashed).
#[derive(Debug, Clone)]
pub struct DemoToken {
    pub name: String,
    pub token: Option<String>,
    pub password: String,
}

/// Seeds the demo on a desk that has none, else gives each demo customer a
/// fresh token (tokens are stored hashed, so the first ones cannot be shown
/// again). Every demo account, the first operator's too, gets a fresh
/// password. Runs before the ticker thread starts; ticks it drives itself.
pub fn seed(db: &Db, clock: &Clock, ticker: &Ticker) -> Result<Vec<DemoToken>> {
    let mut tokens: Vec<DemoToken> = CUSTOMERS
        .iter()
        .map(|name| DemoToken {
            name: name.to_string(),
            token: Some(random::token()),
            password: random::hex(8),
        })
        .collect();
    let now = clock.now();
    let fresh = {
        let tokens = tokens.clone();
        db.write(move |conn| {
            let fresh = accounts::by_name(conn, CUSTOMERS[0])?.is_none();
            for demo in &tokens {
                let token = demo.token.as_deref().unwrap_or_default();
                let a = match accounts::by_name(conn, &demo.name)? {
                    Some(a) => {
                        accounts::add_token(conn, a.id, token, now)?;
                        a
                    }
                    None => accounts::create(conn, &customer(&demo.name), token, now)?,
                };
                set_passwords(conn, &a, &demo.password)?;
            }
            Ok(fresh)
        })?
    };
    let password = random::hex(8);
    let operator = {
        let password = password.clone();
        db.write(move |conn| {
            let Some(a) = accounts::operators(conn)?.into_iter().next() else {
                return Ok(None);
            };
            credentials::set_password_on(conn, &a, Secret::Web, &password)?;
            Ok(Some(a.name))
        })?
    };
    if let Some(name) = operator {
        tokens.push(DemoToken {
            name,
            token: None,
            password,
        });
    }
    if !fresh {
        log::info!("demo data already present; issued new demo tokens");
        return Ok(tokens);
    }
    populate(db, clock, ticker)?;
    log::info!("seeded the demo desk");
    Ok(tokens)
}

fn customer(name: &str) -> NewAccount {
    NewAccount {
        name: name.to_string(),
        email: format!("{name}@example.net"),
        role: Role::Customer,
        review_limit_cents: None,
        review_all: false,
    }
}

/// The same password for the web desk and for EPP logins (16 characters,
/// within what both take).
fn set_passwords(conn: &Connection, a: &Account, password: &str) -> Result<()> {
    credentials::set_password_on(conn, a, Secret::Web, password)?;
    credentials::set_password_on(conn, a, Secret::Epp, password)
}

fn contacts(name: &str) -> Value {
    let email = format!("{}@example.net", name.to_lowercase().replace(' ', "."));
    json!({"contacts": {"owner": {"name": name, "email": email}}})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

fn account(conn: &Connection, name: &str) -> Result<Account> {
    accounts::by_name(conn, name)?.ok_or_else(|| Error::Internal(format!("no demo account {name}")))
}

/// One demo order: created by `owner`, submitted unless `submit` is false.
struct Order<'a> {
    owner: &'a str,
    domain: &'a str,
    operation: Operation,
    params: Value,
    exec_date: Option<Millis>,
    submit: bool,
}

fn order(conn: &Connection, o: &Order<'_>, now: Millis) -> Result<i64> {
    let owner = account(conn, o.owner)?;
    let new = NewRequest {
        account_id: owner.id,
        domain: o.domain.to_string(),
        operation: o.operation,
        // Checked as the API checks a client's params: the demo shows
        // only what a client could have sent.
        params: form::params(o.operation, Some(&o.params))?,
        exec_date: o.exec_date,
        depends_on: None,
    };
    let (r, _) = desk::orders::open(conn, &owner, &new, o.submit, now)?;
    Ok(r.id)
}

fn orders(db: &Db, clock: &Clock, list: Vec<Order<'static>>) -> Result<Vec<i64>> {
    let now = clock.now();
    db.write(move |conn| list.iter().map(|o| order(conn, o, now)).collect())
}

fn populate(db: &Db, clock: &Clock, ticker: &Ticker) -> Result<()> {
    let create = |owner: &'static str, domain: &'static str, params: Value| Order {
        owner,
        domain,
        operation: Operation::Create,
        params,
        exec_date: None,
        submit: true,
    };
    // The simulated registry is slow for one name: it stays `processing
    // (internal)` for ten seconds of the clock.
    db.write(|conn| {
        let mut rules = simulated::load_rules(conn)?;
        rules.push(Rule {
            pattern: "alice-busy.com".into(),
            operation: "create".into(),
            outcome: "success".into(),
            times: Some(1),
            latency: Some("10s".into()),
            probability: None,
        });
        simulated::save_rules(conn, &rules)
    })?;

    // A portfolio: registrations that finish.
    orders(
        db,
        clock,
        vec![
            create("alice", "alice-shop.com", contacts("Alice Liddell")),
            create("alice", "alice-blog.net", contacts("Alice Liddell")),
            create("bob", "bob-bakery.com", contacts("Bob Baker")),
            create("bob", "bob-bread.org", contacts("Bob Baker")),
        ],
    )?;
    ticker.run_until_idle()?;

    // Bob lifts the lock on a name so that Alice can transfer it.
    orders(
        db,
        clock,
        vec![Order {
            owner: "bob",
            domain: "bob-bakery.com",
            operation: Operation::Update,
            params: json!({"transfer_lock": false}),
            exec_date: None,
            submit: true,
        }],
    )?;
    ticker.run_until_idle()?;
    let auth_code = db
        .read(|conn| Ok(domains::by_name(conn, "bob-bakery.com")?.map(|d| d.auth_code)))?
        .unwrap_or_default();

    let now = clock.now();
    let ids = orders(
        db,
        clock,
        vec![
            // processing, waiting on the registrant (5 days).
            Order {
                owner: "alice",
                domain: "bob-bakery.com",
                operation: Operation::Transfer,
                params: with(contacts("Alice Liddell"), json!({ "auth_code": auth_code })),
                exec_date: None,
                submit: true,
            },
            // processing, waiting on the registry (an hour).
            create("alice", "alice-slow.com", contacts("Alice Liddell")),
            // processing (internal): the registry is slow to answer.
            create("alice", "alice-busy.com", contacts("Alice Liddell")),
            // queued, scheduled a month ahead.
            Order {
                owner: "alice",
                domain: "alice-shop.com",
                operation: Operation::Renew,
                params: json!({"period": 2}),
                exec_date: Some(now + 30 * DAY),
                submit: true,
            },
            // new: still in the cart.
            Order {
                submit: false,
                ..create("alice", "alice-draft.org", contacts("Alice Liddell"))
            },
            // incomplete: no owner contact.
            create("bob", "bob-cakes.com", json!({})),
            // review: a sunrise application needs an operator.
            create(
                "carol",
                "carol-studio.com",
                with(contacts("Carol Singer"), json!({"phase": "sunrise"})),
            ),
            // limbo: the registry keeps answering with unexpected errors.
            create("carol", "carol-limbo.com", contacts("Carol Singer")),
            // failed: the registry refuses.
            create("bob", "bob-fail.com", contacts("Bob Baker")),
            // failed: aborted by its owner (below).
            create("carol", "carol-maybe.net", json!({})),
            // processing, waiting on an operator (below).
            create("carol", "carol-manual.com", contacts("Carol Singer")),
        ],
    )?;
    let (aborted, manual) = (ids[9], ids[10]);
    let now = clock.now();
    // Two changes the ticker would not make by itself: the owner aborts,
    // and an operator takes one request over by hand.
    db.write(move |conn| {
        let carol = account(conn, "carol")?;
        let change = |reason: &str| Change {
            reason: Some(reason.to_string()),
            ..Change::default()
        };
        transition::apply(
            conn,
            aborted,
            Event::Abort,
            &Who::account(&carol),
            change("changed my mind"),
            now,
        )?;
        let ticker = Who::system("ticker");
        transition::apply(conn, manual, Event::Claim, &ticker, Change::default(), now)?;
        transition::apply(
            conn,
            manual,
            Event::Wait(WaitingOn::Operator),
            &Who::system("simulated"),
            change("the registry asks for a manual check of the owner's documents"),
            now,
        )?;
        Ok(())
    })?;
    ticker.run_until_idle()?;
    lifecycle(db, clock, ticker)
}

/// The domain lifecycle at every step. Names registered here are given an
/// expiry as if they had come with one (brought in from elsewhere), and the
/// ticker's sweep moves each along from there: reminded, auto-renewed,
/// expired (in grace), in redemption with a restore waiting for an
/// operator, pending delete, and deleted, which frees the name for a
/// backorder waiting for it.
fn lifecycle(db: &Db, clock: &Clock, ticker: &Ticker) -> Result<()> {
    // (owner, name, days from now to its expiry, auto-renew)
    const DOMAINS: [(&str, &str, i64, bool); 6] = [
        ("alice", "alice-soon.com", 20, false),
        ("alice", "alice-auto.com", 10, true),
        ("alice", "alice-grace.com", -10, false),
        ("bob", "bob-redeem.com", -40, false),
        ("bob", "bob-lapse.com", -62, false),
        ("carol", "carol-gone.com", -70, false),
    ];
    let create = |(owner, domain, ..): (&'static str, &'static str, i64, bool)| Order {
        owner,
        domain,
        operation: Operation::Create,
        params: contacts("Demo Owner"),
        exec_date: None,
        submit: true,
    };
    orders(db, clock, DOMAINS.into_iter().map(create).collect())?;
    ticker.run_until_idle()?;
    let now = clock.now();
    db.write(move |conn| {
        for (_, name, days, auto_renew) in DOMAINS {
            if let Some(d) = crate::store::lifecycle::by_name(conn, name)? {
                crate::store::lifecycle::set_expiry(conn, d.id, now + days * DAY)?;
                crate::store::lifecycle::set_auto_renew(conn, d.id, auto_renew, now)?;
            }
        }
        Ok(())
    })?;
    // Alice waits for Carol's name, which is about to be deleted.
    let backorder = Order {
        operation: Operation::Backorder,
        ..create(("alice", "carol-gone.com", 0, false))
    };
    orders(db, clock, vec![backorder])?;
    ticker.run_until_idle()?;
    let restore = Order {
        owner: "bob",
        domain: "bob-redeem.com",
        operation: Operation::Restore,
        params: json!({}),
        exec_date: None,
        submit: true,
    };
    orders(db, clock, vec![restore])?;
    ticker.run_until_idle()?;
    Ok(())
}
