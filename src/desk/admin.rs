//! Operations: emptying the desk for the next test, and the counts the
//! metrics show.

use serde_json::{Map, Value};

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::random;
use crate::store::accounts::Account;
use crate::store::admin::{self, Counts};
use crate::App;

/// What a reset did.
pub struct Reset {
    /// Rows deleted, by table.
    pub deleted: Map<String, Value>,
    /// Operators kept.
    pub operators: i64,
}

/// Back to an empty desk in one transaction. Operator accounts and their
/// tokens survive; everything else goes. The test clock returns to the
/// real time, running, and `--seed` starts over.
pub fn reset(app: &App, caller: &Account) -> Result<Reset> {
    if !caller.is_operator() {
        return Err(Error::Forbidden("only operators may reset the desk".into()));
    }
    if !(app.clock.is_test() || app.config.allow_reset) {
        return Err(Error::Conflict(
            "reset is off: start regdesk with --allow-reset (or --test-clock) to allow it".into(),
        ));
    }
    // No tick may run between emptying the tables and moving the clock back.
    let deleted = app.ticker.exclusive(|| -> Result<Map<String, Value>> {
        let deleted = app.db.write(admin::wipe)?;
        // Customers' accounts and tokens are gone.
        app.tokens.clear();
        if app.clock.is_test() {
            app.clock.reset()?;
        }
        if let Some(seed) = app.config.seed {
            random::seed(seed);
        }
        Ok(deleted)
    })?;
    let operators = app.db.read(admin::operators)?;
    log::warn!("the desk was reset");
    Ok(Reset { deleted, operators })
}

/// The counts `/metrics` shows, at `now`.
pub fn counts(app: &App, now: Millis) -> Result<Counts> {
    app.db.read(move |conn| admin::counts(conn, now))
}
