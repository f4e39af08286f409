//! The one error type of the library, and its mapping to an HTTP status, a
//! stable code and a message the client can act on (shared by every face).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Characters of a client's value that an error message quotes.
const QUOTED: usize = 64;

/// A value a client sent, quoted for an error message: its first 64
/// characters, and its length when it is longer, so that a refusal names
/// the value without echoing a megabyte of it back.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

/// Everything that can go wrong while serving a request or running a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request cannot be understood at all (bad JSON, bad query string).
    Malformed(String),
    /// No valid credentials were presented.
    Unauthorized,
    /// The credentials are valid but not for this.
    Forbidden(String),
    /// The object does not exist, or belongs to another account.
    NotFound(String),
    /// The object's state does not allow this (also a reused idempotency key).
    Conflict(String),
    /// The body is over the size limit.
    TooLarge(usize),
    /// The body is not in a format this path reads (its `Content-Type`).
    UnsupportedMediaType(String),
    /// A field holds a value that is not acceptable.
    Invalid { field: String, message: String },
    /// The method is not supported on this path; the ones that are, for
    /// the `Allow` header (`GET, PATCH`).
    MethodNotAllowed(String),
    /// A bug or an I/O failure; the detail is logged, not shown.
    Internal(String),
    /// The server is shutting down or not ready.
    Unavailable(String),
    /// The disk holding the database is full: the write was rolled back.
    StorageFull,
    /// An object with this id or name exists already (EPP 2302).
    Exists(String),
    /// The object is named by a domain or an open request (EPP 2305).
    InUse(String),
    /// The domain's status forbids this, e.g. its transfer lock (EPP 2304).
    Prohibited(String),
    /// The auth code or auth info given does not match (EPP 2202).
    WrongAuth(String),
    /// A transfer of the domain is pending already (EPP 2300).
    TransferPending(String),
    /// No transfer of the domain is pending or recent (EPP 2301).
    NoTransfer(String),
    /// Another account's object, named with no right to it (EPP 2201).
    NotYours(String),
    /// Too many failed sign-ins: refused for this many more seconds.
    Locked { retry_after_secs: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Error {
        Error::NotFound(what.into())
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Malformed(_) => 400,
            Error::Unauthorized => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::Invalid { .. } => 422,
            Error::Internal(_) => 500,
            Error::Unavailable(_) => 503,
            Error::StorageFull => 507,
            Error::WrongAuth(_) | Error::NotYours(_) => 403,
            Error::Exists(_) | Error::InUse(_) | Error::Prohibited(_) => 409,
            Error::TransferPending(_) | Error::NoTransfer(_) => 409,
            Error::Locked { .. } => 429,
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::Invalid { .. } => "invalid",
            Error::Internal(_) => "internal",
            Error::Unavailable(_) => "unavailable",
            Error::StorageFull => "storage_full",
            Error::Exists(_) => "exists",
            Error::InUse(_) => "in_use",
            Error::Prohibited(_) => "prohibited",
            Error::WrongAuth(_) => "wrong_auth",
            Error::TransferPending(_) => "transfer_pending",
            Error::NoTransfer(_) => "no_transfer",
            Error::NotYours(_) => "not_yours",
            Error::Locked { .. } => "locked",
        }
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Logs what an operator must see when a client is answered with this:
    /// an internal error's detail, a full disk.
    pub fn log_server_side(&self) {
        match self {
            Error::Internal(detail) => log::error!("{detail}"),
            Error::StorageFull => {
                // Every write is refused while the disk is full: once is news.
                static ANSWERED: Mutex<RepeatedFailure> =
                    Mutex::new(RepeatedFailure::new("regdesk::http"));
                let mut answered = ANSWERED.lock().unwrap_or_else(PoisonError::into_inner);
                answered.failed("a write was refused", self);
            }
            _ => {}
        }
    }

    /// What the client is told. Internal details stay in the log.
    pub fn message(&self) -> String {
        match self {
            Error::Malformed(m) | Error::Forbidden(m) | Error::Conflict(m) => m.clone(),
            Error::UnsupportedMediaType(m) => m.clone(),
            Error::Unavailable(m) => m.clone(),
            Error::Exists(m) | Error::InUse(m) | Error::Prohibited(m) | Error::WrongAuth(m) => {
                m.clone()
            }
            Error::TransferPending(m) | Error::NoTransfer(m) | Error::NotYours(m) => m.clone(),
            Error::Unauthorized => {
                "missing or invalid credentials: send Authorization: Bearer TOKEN".into()
            }
            Error::NotFound(what) => format!("{what} not found"),
            Error::MethodNotAllowed(allowed) => {
                format!("method not allowed on this path (allowed: {allowed})")
            }
            Error::TooLarge(limit) => format!("request body is over the limit of {limit} bytes"),
            Error::Invalid { field, message } => format!("{field}: {message}"),
            Error::Internal(_) => "internal error; the details are in the server log".into(),
            Error::StorageFull => "the disk holding the database is full: nothing was written; \
                                   send it again once there is room"
                .into(),
            Error::Locked { retry_after_secs } => {
                format!("too many failed sign-ins: refused for {retry_after_secs} more seconds")
            }
        }
    }
}

/// Logs a failure that can repeat every few milliseconds while its cause
/// lasts (a full disk fails every commit and every tick): the first time,
/// then at most once a minute while it repeats unchanged, with how many
/// went unlogged; and once when it stops.
#[derive(Debug)]
pub struct RepeatedFailure {
    /// The log target: the module that fails (`module_path!()`).
    target: &'static str,
    last: Option<(String, Instant)>,
    unlogged: u64,
}

impl RepeatedFailure {
    const QUIET: Duration = Duration::from_secs(60);

    pub const fn new(target: &'static str) -> RepeatedFailure {
        RepeatedFailure {
            target,
            last: None,
            unlogged: 0,
        }
    }

    /// Logs `what: err` unless it is a repeat; says whether it logged.
    pub fn failed(&mut self, what: &str, err: &Error) -> bool {
        let text = format!("{what}: {err}");
        if let Some((last, at)) = &self.last {
            if *last == text && at.elapsed() < Self::QUIET {
                self.unlogged += 1;
                return false;
            }
        }
        match std::mem::take(&mut self.unlogged) {
            0 => log::error!(target: self.target, "{text}"),
            n => {
                log::error!(target: self.target, "{text} (and {n} times since it was last logged)")
            }
        }
        self.last = Some((text, Instant::now()));
        true
    }

    /// Says `what` works again if it failed last (`what` is only
    /// formatted then).
    pub fn succeeded(&mut self, what: impl fmt::Display) {
        if self.last.take().is_some() {
            log::info!(target: self.target, "{what} again");
            self.unlogged = 0;
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Internal(detail) => write!(f, "internal error: {detail}"),
            other => f.write_str(&other.message()),
        }
    }
}

impl std::error::Error for Error {}

/// A refused event is a conflict with the request's state.
impl From<crate::state::Refusal> for Error {
    fn from(r: crate::state::Refusal) -> Self {
        Error::Conflict(r.message())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("json: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Error::StorageFull;
        }
        Error::Internal(format!("io: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::{quoted, Error, RepeatedFailure};

    #[test]
    fn a_repeated_failure_is_logged_once_until_it_changes_or_stops() {
        let mut f = RepeatedFailure::new(module_path!());
        assert!(f.failed("commit failed", &Error::StorageFull));
        assert!(!f.failed("commit failed", &Error::StorageFull));
        assert!(!f.failed("commit failed", &Error::StorageFull));
        assert!(f.failed("tick failed", &Error::StorageFull));
        assert!(f.failed("tick failed", &Error::Internal("io".into())));
        f.succeeded("ticks work");
        assert!(f.failed("tick failed", &Error::Internal("io".into())));
    }

    #[test]
    fn quoted_keeps_short_values_and_cuts_long_ones_at_a_character() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let short = "é".repeat(64);
        assert_eq!(quoted(&short), format!("{short:?}"));
        let long = "é".repeat(65);
        assert_eq!(
            quoted(&long),
            format!("{:?}... (130 bytes)", "é".repeat(64))
        );
    }
}
