//! regdesk: a self-hosted order desk for domain-name resellers. `start`
//! opens the database, starts the ticker and the HTTP server, and returns a
//! `Handle` to stop them. Modules in reading order: the model (`state`,
//! `form`), storage (`db`, `store`), fulfilment (`registry`, `ticker`), the
//! use cases (`desk`), and the faces (`http`, `face`).

#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod error;
pub mod random;
pub mod state;

pub mod form;

pub mod db;
pub mod store;

pub mod registry;
pub mod ticker;

pub mod desk;

pub mod doorbell;
pub mod outbox;

pub mod epp;
pub mod face;
pub mod http;

pub mod demo;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clock::Clock;
use config::{Config, ProviderKind};
use db::{Db, Location};
use error::Result;
use http::metrics::Metrics;
use http::HttpServer;
use registry::Provider;
use store::accounts::{self, NewAccount, Role};
use store::Connection;
use ticker::Ticker;

/// Everything a request handler needs.
pub struct App {
    pub db: Db,
    pub clock: Clock,
    pub ticker: Arc<Ticker>,
    pub config: Config,
    pub metrics: Metrics,
    pub ready: AtomicBool,
    pub started: Instant,
    /// The senders of notification webhooks and mail.
    pub outbox: Arc<outbox::Outbox>,
    /// Who holds which API token, remembered.
    pub tokens: accounts::TokenCache,
}

impl App {
    /// The account holding API token `token`, if any.
    pub fn authenticate(&self, token: &str) -> Result<Option<accounts::Account>> {
        self.tokens.authenticate(token, |digest| {
            self.db
                .read(move |conn| accounts::by_token_hash(conn, &digest))
        })
    }

    /// The account behind `Authorization: Bearer TOKEN`.
    pub fn bearer(&self, req: &http::Req) -> Result<accounts::Account> {
        let token = req
            .header("authorization")
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| accounts::presentable(t))
            .ok_or(error::Error::Unauthorized)?
            .to_string();
        self.authenticate(&token)?.ok_or(error::Error::Unauthorized)
    }

    /// Sends every due notification webhook and mail now (the test clock's
    /// ticks do this before they answer).
    pub fn send_due(&self) -> Result<usize> {
        self.outbox.run_until_idle()
    }
}

/// A running regdesk.
pub struct Handle {
    pub addr: SocketAddr,
    /// The operator token created on a first start, to be shown once.
    pub first_token: Option<String>,
    /// With `--demo`: each demo customer's name and token, to be shown.
    pub demo_tokens: Vec<demo::DemoToken>,
    pub app: Arc<App>,
    /// With `--epp-listen`: the EPP listener and where it listens.
    pub epp: Option<epp::EppServer>,
    http: HttpServer,
    ticker_thread: JoinHandle<()>,
    outbox_threads: Vec<JoinHandle<()>>,
}

impl Handle {
    /// Stops accepting requests, lets the ticker finish its tick, and closes
    /// the database cleanly.
    pub fn stop(self) {
        self.app.ready.store(false, Ordering::SeqCst);
        self.http.stop();
        if let Some(epp) = self.epp {
            epp.stop();
        }
        self.app.ticker.stop();
        self.ticker_thread.join().ok();
        self.app.outbox.stop();
        for thread in self.outbox_threads {
            thread.join().ok();
        }
        self.app.db.close();
    }
}

/// Makes sure an operator can sign in: with `--operator-token`, an operator
/// holding that token; on an empty database, a new operator whose token is
/// returned to be shown once. Runs when the database opens, before any other
/// write; when the operator is in place already it writes nothing, so a
/// start does not wait for a commit it does not need.
fn bootstrap(conn: &Connection, now: clock::Millis, token: Option<&str>) -> Result<Option<String>> {
    let new = |name: String| NewAccount {
        name,
        email: "operator@localhost".into(),
        role: Role::Operator,
        review_limit_cents: None,
        review_all: false,
    };
    match token {
        Some(token) => {
            if accounts::authenticate(conn, token)?.is_none() {
                let mut name = "operator".to_string();
                let mut n = 1;
                while accounts::by_name(conn, &name)?.is_some() {
                    n += 1;
                    name = format!("operator-{n}");
                }
                accounts::create(conn, &new(name), token, now)?;
            }
            Ok(None)
        }
        None if accounts::count(conn)? == 0 => {
            let token = random::token();
            accounts::create(conn, &new("operator".into()), &token, now)?;
            Ok(Some(token))
        }
        None => Ok(None),
    }
}

/// Starts regdesk as `config` says.
pub fn start(config: Config) -> Result<Handle> {
    if let Some(seed) = config.seed {
        random::seed(seed);
    }
    // Refuse bad settings before touching the database. (The command line
    // refuses some itself; a library caller builds its Config.)
    config.check()?;
    let workers = std::num::NonZeroUsize::new(config.workers)
        .ok_or_else(|| error::Error::invalid("workers", "must be at least 1"))?;
    let webhook = match config.provider {
        ProviderKind::Webhook => Some(registry::webhook::Webhook::from_config(&config)?),
        _ => None,
    };
    let location = if config.memory {
        Location::Memory
    } else {
        Location::File(config.db.clone())
    };
    let clock = if config.test_clock {
        Clock::test()
    } else {
        Clock::real()
    };
    let token = config.operator_token.as_deref();
    let (db, first_token) = Db::open_with(location, |conn| bootstrap(conn, clock.now(), token))?;
    let provider: Arc<dyn Provider> = match config.provider {
        ProviderKind::Simulated => Arc::new(registry::simulated::Simulated),
        ProviderKind::Manual => Arc::new(registry::Manual),
        ProviderKind::Webhook => match webhook {
            Some(w) => Arc::new(w),
            None => return Err(error::Error::invalid("webhook_url", "missing")),
        },
    };
    let interval = Duration::from_millis(config.tick_interval_ms);
    let outbox = outbox::Outbox::new(db.clone(), clock.clone(), &config)?;
    let transfer_wait = i64::from(config.transfer_auto_approve_days) * clock::DAY;
    let ticker = Ticker::new(db.clone(), clock.clone(), provider, interval)
        .with_transfer_wait(transfer_wait)
        .with_lifecycle(desk::lifecycle::Schedule::from_flags(&config.lifecycle));
    let ticker = Arc::new(ticker);
    let demo_tokens = if config.demo {
        demo::seed(&db, &clock, &ticker)?
    } else {
        Vec::new()
    };
    let app = Arc::new(App {
        db,
        clock,
        ticker: ticker.clone(),
        metrics: Metrics::default(),
        ready: AtomicBool::new(false),
        started: Instant::now(),
        config: config.clone(),
        outbox,
        tokens: accounts::TokenCache::default(),
    });
    let http = HttpServer::start(&config.listen, workers, app.clone())?;
    let epp = epp::EppServer::start(app.clone())?;
    // The ticker and the outbox start once the server listens: their first
    // passes (recovering claimed work, finding what is due) open read
    // connections and compile the schema, which would slow the start.
    let ticker_thread = ticker.spawn()?;
    let outbox_threads = app.outbox.spawn()?;
    app.ready.store(true, Ordering::SeqCst);
    Ok(Handle {
        addr: http.addr,
        first_token,
        demo_tokens,
        app,
        epp,
        http,
        ticker_thread,
        outbox_threads,
    })
}
