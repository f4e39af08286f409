//! The command line: every flag, each also read from `REGDESK_<FLAG>`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use lettre::message::Mailbox;

use crate::error::{quoted, Error, Result};
use crate::store::accounts::{self, MAX_TOKEN};

#[derive(Debug, Parser)]
#[command(
    name = "regdesk",
    version,
    about = "A self-hosted order desk for domain-name resellers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the XML faces and the web UI, and run the ticker.
    #[command(after_help = FIRST_TOKEN)]
    Serve(Config),
    /// Apply the database migrations and exit.
    Migrate(MigrateArgs),
    /// Copy the database to FILE while it may be in use (consistent snapshot).
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// Where to write the copy; it must not exist.
        file: PathBuf,
    },
    /// Put the backup BACKUP in place of the database (refused while a
    /// server runs on it); the replaced file is kept beside it.
    Restore {
        #[command(flatten)]
        db: DbArgs,
        /// A copy made by `regdesk backup`.
        backup: PathBuf,
    },
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the shell completion script for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    Man,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// List the migrations that would run, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where the first operator's token is shown (`serve --help`).
const FIRST_TOKEN: &str = "The first start on an empty database creates an operator account \
and prints its API token once, on stdout: `operator token: TOKEN`. To sign in again without \
it, issue another with `regdesk token new operator --db PATH`, or start with \
--operator-token TOKEN.";

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The SQLite database file.
    #[arg(long, env = "REGDESK_DB", default_value = "regdesk.db")]
    pub db: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account and print its first API token.
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// Account name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// Contact e-mail address.
        email: String,
        #[arg(long, value_enum, default_value = "customer")]
        role: RoleArg,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set an account's web password: from --password, or one line on
    /// standard input when it is not a terminal.
    Passwd {
        #[command(flatten)]
        db: DbArgs,
        /// The account's name.
        name: String,
        /// The password (8 to 128 characters); else read from standard input.
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue another API token for an account and print it.
    New {
        #[command(flatten)]
        db: DbArgs,
        /// Account name.
        account: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Customer,
    Operator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// The built-in simulated registry (demos and tests).
    Simulated,
    /// Processing waits for an operator to fulfil each request by hand.
    Manual,
    /// Each request is POSTed as signed JSON to `--webhook-url`.
    Webhook,
}

/// Everything `regdesk serve` can be told.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// The SQLite database file (created and migrated if needed).
    #[arg(long, env = "REGDESK_DB", default_value = "regdesk.db")]
    pub db: PathBuf,
    /// Keep everything in memory; nothing is written to disk.
    #[arg(long, env = "REGDESK_MEMORY")]
    pub memory: bool,
    /// Address to listen on (HOST:PORT); port 0 picks a free port.
    #[arg(long, env = "REGDESK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Make sure an operator account with this API token exists (1-256
    /// visible ASCII characters).
    #[arg(long, env = "REGDESK_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// One simulated clock for everything, moved with POST /api/v1/clock.
    #[arg(long, env = "REGDESK_TEST_CLOCK")]
    pub test_clock: bool,
    /// How requests are fulfilled.
    #[arg(
        long,
        env = "REGDESK_PROVIDER",
        value_enum,
        default_value = "simulated"
    )]
    pub provider: ProviderKind,
    /// Requests answered at once (each on its connection's thread).
    #[arg(long, env = "REGDESK_WORKERS", default_value_t = 32, value_parser = workers)]
    pub workers: usize,
    /// Milliseconds between ticks when nothing wakes the ticker (1 to an
    /// hour).
    #[arg(long, env = "REGDESK_TICK_INTERVAL_MS", default_value_t = 500)]
    pub tick_interval_ms: u64,
    /// Seed every random choice (tokens, jitter) so a run can be repeated.
    #[arg(long, env = "REGDESK_SEED")]
    pub seed: Option<u64>,
    /// Seed demo customers, domains and requests in every state (once), and
    /// print the demo customers' tokens.
    #[arg(long, env = "REGDESK_DEMO")]
    pub demo: bool,
    /// Allow operators to empty the database with POST /api/v1/admin/reset
    /// (always allowed with --test-clock).
    #[arg(long, env = "REGDESK_ALLOW_RESET")]
    pub allow_reset: bool,
    /// Serve GET /metrics without a token (else an operator token is needed).
    #[arg(long, env = "REGDESK_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Where the webhook provider POSTs each request (http://).
    #[arg(long, env = "REGDESK_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The key that signs the webhook provider's requests (HMAC-SHA256).
    #[arg(long, env = "REGDESK_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Tries of the webhook provider before a request goes to limbo.
    #[arg(long, env = "REGDESK_WEBHOOK_MAX_ATTEMPTS", default_value_t = 5)]
    pub webhook_max_attempts: i64,
    /// First retry delay of webhooks (provider and notifications), doubled
    /// at each attempt, with jitter, at most an hour.
    #[arg(long, env = "REGDESK_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub webhook_retry_base_ms: u64,
    /// How long an outgoing webhook may take as a whole: name lookup,
    /// connect and the complete answer (1 ms to an hour).
    #[arg(long, env = "REGDESK_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Tries of a notification webhook delivery before it is marked failed.
    #[arg(long, env = "REGDESK_DELIVERY_MAX_ATTEMPTS", default_value_t = 15)]
    pub delivery_max_attempts: i64,
    /// Let customers' notification webhooks reach loopback, private and
    /// other non-public addresses (test harnesses whose receiver runs on
    /// the same machine).
    #[arg(long, env = "REGDESK_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,
    /// Send the mail outbox through this server: smtp://HOST[:PORT] (no TLS).
    #[arg(long, env = "REGDESK_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The sender address of outgoing mail.
    #[arg(long, env = "REGDESK_MAIL_FROM", default_value = "regdesk@localhost")]
    pub mail_from: String,
    /// Tries of a mail before it is marked failed (it stays in the outbox).
    #[arg(long, env = "REGDESK_MAIL_MAX_ATTEMPTS", default_value_t = 15)]
    pub mail_max_attempts: i64,
    /// First retry delay of mail, doubled at each attempt, at most an hour.
    #[arg(long, env = "REGDESK_MAIL_RETRY_BASE_MS", default_value_t = 5000)]
    pub mail_retry_base_ms: u64,
    /// Client connections open at once; past it, idle ones are closed and
    /// then new ones. Default: what the descriptor limit leaves once the
    /// database, the senders and the listeners have theirs.
    #[arg(long, env = "REGDESK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Milliseconds a request's head (its request line and headers) may
    /// take from its first byte (1 ms to an hour).
    #[arg(long, env = "REGDESK_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// The URL browsers reach regdesk at (http:// or https://, no path), when
    /// a proxy in front of it changes the scheme or the Host: writes whose
    /// Origin is not this one are refused.
    #[arg(long, env = "REGDESK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve EPP over TLS on this address (HOST:PORT; port 0 picks a free
    /// port). Off unless given.
    #[arg(long, env = "REGDESK_EPP_LISTEN")]
    pub epp_listen: Option<String>,
    /// The EPP server's certificate chain (PEM); without it a test CA and a
    /// certificate it signed are made and kept in the database.
    #[arg(long, env = "REGDESK_EPP_CERT", requires = "epp_key")]
    pub epp_cert: Option<PathBuf>,
    /// The private key of --epp-cert (PEM).
    #[arg(long, env = "REGDESK_EPP_KEY", requires = "epp_cert")]
    pub epp_key: Option<PathBuf>,
    /// EPP sessions open at once, counting those not yet logged in.
    #[arg(long, env = "REGDESK_EPP_MAX_SESSIONS", default_value_t = 64)]
    pub epp_max_sessions: usize,
    /// EPP sessions one account may have open at once.
    #[arg(long, env = "REGDESK_EPP_SESSIONS_PER_ACCOUNT", default_value_t = 8)]
    pub epp_sessions_per_account: usize,
    /// Milliseconds an EPP command placing a work request waits for it to
    /// end before answering 1001 (0 to an hour).
    #[arg(long, env = "REGDESK_EPP_WAIT_MS", default_value_t = 2000)]
    pub epp_wait_ms: u64,
    /// Milliseconds from connecting to a completed EPP login (TLS handshake
    /// included) before the connection is closed.
    #[arg(long, env = "REGDESK_EPP_LOGIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub epp_login_timeout_ms: u64,
    /// Milliseconds an EPP session may stay idle before it is closed.
    #[arg(long, env = "REGDESK_EPP_IDLE_TIMEOUT_MS", default_value_t = 600_000)]
    pub epp_idle_timeout_ms: u64,
    /// Days a transfer between two accounts here waits for the holder's
    /// answer before it is approved (1 to 365, on the one clock).
    #[arg(long, env = "REGDESK_TRANSFER_AUTO_APPROVE_DAYS", default_value_t = 5)]
    pub transfer_auto_approve_days: u32,
    #[command(flatten)]
    pub lifecycle: LifecycleFlags,
}

/// The domain lifecycle's periods, in days.
#[derive(Debug, Clone, Args)]
pub struct LifecycleFlags {
    /// Days after expiry in which a domain can still be renewed (8 to 45).
    #[arg(long, env = "REGDESK_RENEW_GRACE_DAYS", default_value_t = 30)]
    pub renew_grace_days: i64,
    /// Days of redemption, in which only a restore brings a domain back.
    #[arg(long, env = "REGDESK_REDEMPTION_DAYS", default_value_t = 30)]
    pub redemption_days: i64,
    /// Days of pending delete, after which the name is free again.
    #[arg(long, env = "REGDESK_PENDING_DELETE_DAYS", default_value_t = 5)]
    pub pending_delete_days: i64,
    /// Days before expiry at which the owner is reminded, comma-separated.
    #[arg(
        long,
        env = "REGDESK_RENEW_REMINDER_DAYS",
        default_value = "30,7",
        value_delimiter = ','
    )]
    pub renew_reminder_days: Vec<i64>,
    /// Days before expiry at which an auto-renewal is ordered.
    #[arg(long, env = "REGDESK_AUTO_RENEW_DAYS", default_value_t = 14)]
    pub auto_renew_days: i64,
}

impl Default for LifecycleFlags {
    fn default() -> LifecycleFlags {
        LifecycleFlags {
            renew_grace_days: 30,
            redemption_days: 30,
            pending_delete_days: 5,
            renew_reminder_days: vec![30, 7],
            auto_renew_days: 14,
        }
    }
}

impl LifecycleFlags {
    /// Refuses a period no registry would have, naming its flag.
    fn check(&self) -> Result<()> {
        days("renew_grace_days", self.renew_grace_days, 8, 45)?;
        days("redemption_days", self.redemption_days, 1, 365)?;
        days("pending_delete_days", self.pending_delete_days, 1, 365)?;
        days("auto_renew_days", self.auto_renew_days, 0, 365)?;
        if self.renew_reminder_days.len() > 10 {
            return Err(Error::invalid(
                "renew_reminder_days",
                "at most 10 reminders",
            ));
        }
        for d in &self.renew_reminder_days {
            days("renew_reminder_days", *d, 1, 365)?;
        }
        Ok(())
    }
}

fn days(field: &str, n: i64, least: i64, most: i64) -> Result<()> {
    if !(least..=most).contains(&n) {
        return Err(Error::invalid(
            field,
            format!("must be {least} to {most} days, not {n}"),
        ));
    }
    Ok(())
}

/// The longest tick interval, webhook timeout or first retry delay: an hour.
const MAX_MS: u64 = 60 * 60 * 1000;

impl Config {
    /// Refuses a value no run could use, naming its field, before anything
    /// starts: every given value is checked, whether or not this run uses it
    /// (`--mail-from` without `--smtp-url`, say), so that a mistake does not
    /// wait for the day the setting that needs it is added. (`start` makes
    /// `workers` a `NonZeroUsize`, refusing 0 there.)
    pub fn check(&self) -> Result<()> {
        listen(&self.listen)?;
        millis("tick_interval_ms", self.tick_interval_ms, 1)?;
        millis("webhook_timeout_ms", self.webhook_timeout_ms, 1)?;
        millis("webhook_retry_base_ms", self.webhook_retry_base_ms, 0)?;
        millis("mail_retry_base_ms", self.mail_retry_base_ms, 0)?;
        attempts("webhook_max_attempts", self.webhook_max_attempts)?;
        attempts("delivery_max_attempts", self.delivery_max_attempts)?;
        attempts("mail_max_attempts", self.mail_max_attempts)?;
        if let Some(url) = &self.webhook_url {
            check_http_url("webhook_url", url)?;
        }
        if let Some(url) = &self.smtp_url {
            smtp_url(url)?;
        }
        mail_from(&self.mail_from)?;
        if let Some(token) = &self.operator_token {
            operator_token(token)?;
        }
        millis("header_timeout_ms", self.header_timeout_ms, 1)?;
        if let Some(n) = self.max_connections {
            connections(n)?;
        }
        if let Some(url) = &self.public_url {
            public_origin(url)?;
        }
        if let Some(address) = &self.epp_listen {
            if let Err(Error::Invalid { message, .. }) = listen(address) {
                return Err(Error::invalid("epp_listen", message));
            }
        }
        if self.epp_cert.is_some() != self.epp_key.is_some() {
            return Err(Error::invalid(
                "epp_cert",
                "give --epp-cert and --epp-key together",
            ));
        }
        counted("epp_max_sessions", self.epp_max_sessions)?;
        counted("epp_sessions_per_account", self.epp_sessions_per_account)?;
        millis("epp_wait_ms", self.epp_wait_ms, 0)?;
        millis("epp_login_timeout_ms", self.epp_login_timeout_ms, 1)?;
        millis("epp_idle_timeout_ms", self.epp_idle_timeout_ms, 1)?;
        if !(1..=365).contains(&self.transfer_auto_approve_days) {
            return Err(Error::invalid(
                "transfer_auto_approve_days",
                "must be 1 to 365",
            ));
        }
        self.lifecycle.check()?;
        Ok(())
    }

    /// A configuration for tests: in memory, test clock, a free port.
    pub fn for_tests() -> Config {
        Config {
            db: PathBuf::from("regdesk.db"),
            memory: true,
            listen: "127.0.0.1:0".into(),
            operator_token: None,
            test_clock: true,
            provider: ProviderKind::Simulated,
            workers: 4,
            tick_interval_ms: 500,
            seed: None,
            demo: false,
            allow_reset: false,
            metrics_public: false,
            webhook_url: None,
            webhook_secret: None,
            webhook_max_attempts: 5,
            webhook_retry_base_ms: 1000,
            webhook_timeout_ms: 10_000,
            delivery_max_attempts: 15,
            allow_private_webhooks: false,
            smtp_url: None,
            mail_from: "regdesk@localhost".into(),
            mail_max_attempts: 15,
            mail_retry_base_ms: 5000,
            max_connections: None,
            header_timeout_ms: 10_000,
            public_url: None,
            epp_listen: None,
            epp_cert: None,
            epp_key: None,
            epp_max_sessions: 64,
            epp_sessions_per_account: 8,
            epp_wait_ms: 2000,
            epp_login_timeout_ms: 10_000,
            epp_idle_timeout_ms: 600_000,
            transfer_auto_approve_days: 5,
            lifecycle: LifecycleFlags::default(),
        }
    }
}

/// `--workers`: a count of requests answered at once, at least 1.
fn workers(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number (at least 1)")),
    }
}

/// A bound on sessions: 1 to 100,000.
fn counted(field: &str, n: usize) -> Result<()> {
    if (1..=100_000).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{n} is not between 1 and 100000"),
        ))
    }
}

/// `--listen` takes an address: a port alone (`8080`) is refused with the
/// address it probably meant.
fn listen(address: &str) -> Result<()> {
    if address.parse::<u16>().is_ok() {
        return Err(Error::invalid(
            "listen",
            format!(
                "{address} is a port alone; give HOST:PORT, such as 127.0.0.1:{address} \
                 (this machine only) or 0.0.0.0:{address} (every interface)"
            ),
        ));
    }
    Ok(())
}

/// Milliseconds given in `field`: `least` to an hour.
fn millis(field: &str, ms: u64, least: u64) -> Result<()> {
    if (least..=MAX_MS).contains(&ms) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be {least} to {MAX_MS} (an hour), not {ms}"),
        ))
    }
}

/// The bound on open client connections.
fn connections(n: usize) -> Result<()> {
    if (1..=MAX_CONNECTIONS).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(
            "max_connections",
            format!("must be 1 to {MAX_CONNECTIONS}, not {n}"),
        ))
    }
}

/// The most client connections `--max-connections` may allow.
const MAX_CONNECTIONS: usize = 1_000_000;

/// A count of tries given in `field`.
fn attempts(field: &str, n: i64) -> Result<()> {
    if (1..=100).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("must be 1 to 100, not {n}")))
    }
}

/// An operator token must be one a client can send back: what a request's
/// `Authorization` header carries is trimmed and at most 256 bytes, and a
/// header holds no control characters. An empty one (an unset variable in
/// a compose file) would make an operator no one can sign in as.
fn operator_token(token: &str) -> Result<()> {
    let field = "operator_token";
    if token.is_empty() {
        return Err(Error::invalid(field, "is empty"));
    }
    if !accounts::presentable(token) {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_TOKEN} characters"),
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "may hold only visible ASCII characters (no spaces)",
        ));
    }
    Ok(())
}

// ----- outgoing addresses: leaf checks the senders use as well --------------------

/// Checks a webhook URL given in `field`: plain `http://` with a host;
/// the URL as parsed.
pub fn check_http_url(field: &str, url: &str) -> Result<url::Url> {
    // Measured as given, in characters (as the API document counts), then
    // trimmed.
    if url.chars().count() > 2000 {
        return Err(Error::invalid(field, "longer than 2000 characters"));
    }
    let url = url.trim();
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        let why = if url.starts_with("https://") {
            "https is not supported; give an http:// URL (put a TLS proxy in front if needed)"
        } else {
            "must be an http:// URL"
        };
        Error::invalid(field, why)
    })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || host.contains(char::is_whitespace) {
        return Err(Error::invalid(field, "names no host"));
    }
    // What the sender will parse: a URL it cannot read would fail every
    // delivery, so it is refused here.
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host() {
            Some(url::Host::Domain(name)) if !host_name(name) => Err(Error::invalid(
                field,
                format!("{} is not a host name", quoted(name)),
            )),
            Some(_) => Ok(parsed),
            None => Err(Error::invalid(field, "names no host")),
        },
        Err(e) => Err(Error::invalid(field, format!("is not a URL: {e}"))),
    }
}

/// Whether `name` is a host name DNS can look up: dot-separated labels of
/// letters, digits, hyphens and underscores, no label empty or starting or
/// ending with a hyphen (one dot may end it).
fn host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Where `smtp://HOST[:PORT]` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
}

/// Parses `smtp://HOST[:PORT]` (port 25 by default; plain SMTP, no TLS).
pub fn smtp_url(url: &str) -> Result<Smtp> {
    let field = "smtp_url";
    let rest = url.trim().strip_prefix("smtp://").ok_or_else(|| {
        Error::invalid(field, format!("{url:?} is not an smtp://HOST[:PORT] URL"))
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(Error::invalid(
            field,
            "give only smtp://HOST[:PORT] (no path, no credentials)",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| Error::invalid(field, "an IPv6 address needs its closing ]"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(Error::invalid(field, "names no host"));
    }
    let port = match port {
        None => 25,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::invalid(field, format!("{p:?} is not a port")))?,
    };
    Ok(Smtp {
        host: host.to_string(),
        port,
    })
}

/// Parses the sender address given in `--mail-from`.
pub fn mail_from(from: &str) -> Result<Mailbox> {
    from.parse::<Mailbox>()
        .map_err(|e| Error::invalid("mail_from", format!("{from:?} is not an address: {e}")))
}

/// The origin of `--public-url`: an http(s) URL with a host and no path
/// beyond `/`, no query, fragment or credentials.
pub fn public_origin(url: &str) -> Result<String> {
    let field = "public_url";
    let parsed = url::Url::parse(url.trim())
        .map_err(|e| Error::invalid(field, format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(field, "must be an http:// or https:// URL"));
    }
    if parsed.host().is_none() {
        return Err(Error::invalid(field, "names no host"));
    }
    let bare = parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if !bare {
        return Err(Error::invalid(
            field,
            "must be only a scheme, a host and a port (no path, query or user)",
        ));
    }
    Ok(parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epp_settings_are_checked_naming_each() {
        let field = |change: &dyn Fn(&mut Config)| {
            let mut c = Config::for_tests();
            change(&mut c);
            c.check().err().and_then(|e| e.field().map(str::to_string))
        };
        assert_eq!(field(&|_| {}), None);
        assert_eq!(
            field(&|c| c.epp_listen = Some("7000".into())).as_deref(),
            Some("epp_listen")
        );
        assert_eq!(
            field(&|c| c.epp_cert = Some("c.pem".into())).as_deref(),
            Some("epp_cert")
        );
        assert_eq!(
            field(&|c| c.epp_max_sessions = 0).as_deref(),
            Some("epp_max_sessions")
        );
        let per_account = field(&|c| c.epp_sessions_per_account = 0);
        assert_eq!(per_account.as_deref(), Some("epp_sessions_per_account"));
        assert_eq!(
            field(&|c| c.epp_login_timeout_ms = 0).as_deref(),
            Some("epp_login_timeout_ms")
        );
        assert_eq!(field(&|c| c.epp_wait_ms = 0), None);
    }

    #[test]
    fn http_urls() {
        let u = |url: &str| check_http_url("u", url);
        assert!(u("http://127.0.0.1:9/x").is_ok());
        assert!(u("https://example.net/").is_err());
        assert!(u("http://").is_err());
        assert!(u("ftp://x").is_err());
        // Hosts the sender could not parse are refused up front.
        assert!(u("http://[").is_err());
        assert!(u("http://[::1/x").is_err());
        assert!(u("http://exa mple.net/").is_err());
        assert!(u("http://[::1]:9/x").is_ok());
        assert!(u("http://hooks.example.net:8080/in?x=1").is_ok());
        assert!(u("http://hooks.example.net./in").is_ok());
        for bad in [
            "http://a*b.example/",
            "http://-a.example/",
            "http://a..b/",
            "http://a.b../x",
        ] {
            assert!(u(bad).is_err(), "{bad}");
        }
        // 2,000 characters as given: leading spaces count, and a character
        // of two bytes counts once.
        let long = |pad: &str, n: usize| format!("{pad}http://h.example/{}", "é".repeat(n));
        assert!(u(&long("", 2000 - 17)).is_ok());
        assert!(u(&long("", 2001 - 17)).is_err());
        assert!(u(&long("  ", 1999 - 17)).is_err());
    }

    #[test]
    fn smtp_urls() {
        let ok = |url: &str, host: &str, port: u16| {
            assert_eq!(
                smtp_url(url).unwrap(),
                Smtp {
                    host: host.into(),
                    port
                },
                "{url}"
            )
        };
        ok("smtp://mail.example.net", "mail.example.net", 25);
        ok("smtp://127.0.0.1:2525", "127.0.0.1", 2525);
        ok("smtp://127.0.0.1:2525/", "127.0.0.1", 2525);
        ok("smtp://[::1]:2525", "::1", 2525);
        for bad in [
            "http://x",
            "smtp://",
            "smtp://:25",
            "smtp://h:0",
            "smtp://h:99999",
            "smtp://u:p@h",
            "smtp://h/x",
        ] {
            let e = smtp_url(bad).unwrap_err();
            assert_eq!(e.field(), Some("smtp_url"), "{bad}");
        }
    }
}
