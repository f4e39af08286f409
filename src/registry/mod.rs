//! Fulfilment providers: what answers for the registry when the ticker
//! processes a request. The simulated registry is the default.

pub mod simulated;
pub mod webhook;

use crate::store::Connection;
use serde_json::Value;

use crate::clock::Millis;
use crate::error::Result;
use crate::state::{Failure, WaitingOn};
use crate::store::requests::Request;

/// Fulfilment attempts before an unexpected error sends a request to limbo,
/// unless the provider says otherwise.
pub const MAX_ATTEMPTS: i64 = 3;

/// A provider's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done: the request finishes.
    Accept,
    /// The answer comes later; `until` ends the wait (`None`: only an event
    /// or an operator ends it).
    Wait {
        on: WaitingOn,
        until: Option<Millis>,
        note: String,
    },
    /// Refused for a reason the owner can fix in `field`.
    UserError { field: String, message: String },
    /// Refused for good.
    Refuse { failure: Failure, message: String },
    /// Something went wrong that may pass: retried, then limbo.
    Unexpected { message: String },
    /// No answer yet: ask again (fulfil) at `until`. The request stays
    /// `processing (internal)`; nothing else changes.
    Defer { until: Millis },
}

/// A fulfilment back end.
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Fulfils a claimed request. Runs inside the write transaction that
    /// commits the outcome, so an in-database registry changes atomically
    /// with the request.
    fn fulfil(&self, conn: &Connection, req: &Request, now: Millis) -> Result<Verdict>;

    /// The wait of a processing request ended (`wait_until` passed).
    fn wait_over(&self, conn: &Connection, req: &Request, now: Millis) -> Result<Verdict>;

    /// How long to wait before retrying after an unexpected error.
    fn retry_delay(&self, attempts: i64) -> Millis {
        let _ = attempts;
        0
    }

    /// Fulfilment attempts before an unexpected error sends a request to
    /// limbo.
    fn max_attempts(&self) -> i64 {
        MAX_ATTEMPTS
    }

    /// A provider that calls out of the process. The ticker then never calls
    /// `fulfil`: it prepares each claimed request in a read, calls the
    /// provider outside any transaction (a slow receiver must not stall
    /// every write), and commits the verdict in a write of its own.
    fn external(&self) -> Option<&dyn External> {
        None
    }
}

/// The out-of-process half of a provider (see `Provider::external`).
pub trait External: Send + Sync {
    /// What to send for a claimed request; runs in a read.
    fn payload(&self, conn: &Connection, req: &Request, now: Millis) -> Result<Value>;

    /// Sends it and reads the answer; runs outside any transaction.
    fn call(&self, prepared: &Value, now: Millis) -> Verdict;
}

/// Processing waits on an operator, who resolves each request by hand.
pub struct Manual;

impl Provider for Manual {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn fulfil(&self, _conn: &Connection, _req: &Request, _now: Millis) -> Result<Verdict> {
        Ok(Verdict::Wait {
            on: WaitingOn::Operator,
            until: None,
            note: "waiting for an operator to fulfil it by hand".into(),
        })
    }

    fn wait_over(&self, conn: &Connection, req: &Request, now: Millis) -> Result<Verdict> {
        self.fulfil(conn, req, now)
    }
}
