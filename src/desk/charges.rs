//! Charges: a month of invoice items, the caller's own or (operators) any
//! account's or every account's.

use crate::clock::{self, Millis};
use crate::error::{Error, Result};
use crate::store::charges::{self, Charge};
use crate::App;

/// Items listed at most for one month.
pub const MAX_ITEMS: i64 = 10_000;

/// The first instant of month `YYYY-MM` and of the month after it.
pub fn month_bounds(month: &str) -> Result<(Millis, Millis)> {
    let bad = || Error::invalid("month", format!("{month:?} is not a month as YYYY-MM"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i64, i64) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1970..=9998).contains(&y) || !(1..=12).contains(&m) || month.len() != 7 {
        return Err(bad());
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let from = clock::parse("month", &format!("{y:04}-{m:02}-01"))?;
    let to = clock::parse("month", &format!("{ny:04}-{nm:02}-01"))?;
    Ok((from, to))
}

/// The month `YYYY-MM` that `at` falls in.
pub fn month_of(at: Millis) -> String {
    clock::format_date(at).chars().take(7).collect()
}

/// The charges of `month` of the account `account` names (already scoped
/// to the caller: `desk::account_scope`), or of every account.
pub fn list(app: &App, account: Option<i64>, month: &str) -> Result<Vec<Charge>> {
    let (from, to) = month_bounds(month)?;
    app.db
        .read(move |conn| charges::list(conn, account, from, to, MAX_ITEMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_its_first_day_to_the_next_months() {
        let (from, to) = month_bounds("2026-12").unwrap();
        assert_eq!(clock::format(from), "2026-12-01T00:00:00Z");
        assert_eq!(clock::format(to), "2027-01-01T00:00:00Z");
        assert_eq!(month_of(from), "2026-12");
        for bad in ["2026-13", "2026-1", "26-01", "december", "2026-00", ""] {
            assert_eq!(
                month_bounds(bad).unwrap_err().field(),
                Some("month"),
                "{bad}"
            );
        }
    }
}
