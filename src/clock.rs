//! The one clock every timestamp, exec date and timeout reads, and the time
//! formats of the API. With `--test-clock` it can be moved, set and frozen.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{quoted, Error, Result};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const SECOND: Millis = 1000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

#[derive(Debug, Clone, Copy)]
struct TestState {
    /// Added to the real time.
    offset: Millis,
    /// When frozen, the time stands here.
    frozen_at: Option<Millis>,
}

/// A wall clock, or a test clock that runs with the wall clock unless frozen.
#[derive(Debug, Clone)]
pub struct Clock {
    test: Option<Arc<Mutex<TestState>>>,
}

fn real_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl Clock {
    pub fn real() -> Clock {
        Clock { test: None }
    }

    pub fn test() -> Clock {
        Clock {
            test: Some(Arc::new(Mutex::new(TestState {
                offset: 0,
                frozen_at: None,
            }))),
        }
    }

    pub fn is_test(&self) -> bool {
        self.test.is_some()
    }

    pub fn now(&self) -> Millis {
        match &self.test {
            None => real_now(),
            Some(state) => {
                let s = *state.lock().unwrap_or_else(PoisonError::into_inner);
                s.frozen_at.unwrap_or_else(|| real_now() + s.offset)
            }
        }
    }

    pub fn is_frozen(&self) -> bool {
        self.test.as_ref().is_some_and(|state| {
            state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .frozen_at
                .is_some()
        })
    }

    fn with_test<T>(&self, f: impl FnOnce(&mut TestState) -> T) -> Result<T> {
        let state = self.test.as_ref().ok_or_else(|| {
            Error::Conflict("the clock can only be changed with --test-clock".into())
        })?;
        let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(f(&mut guard))
    }

    /// Moves the clock forward (never back: waits that ended stay ended).
    pub fn advance(&self, by: Millis) -> Result<Millis> {
        if by < 0 {
            return Err(Error::invalid("advance", "the clock only moves forward"));
        }
        self.with_test(|s| match &mut s.frozen_at {
            Some(at) => *at += by,
            None => s.offset += by,
        })?;
        Ok(self.now())
    }

    /// Sets the clock to `at`, keeping it frozen if it was.
    pub fn set(&self, at: Millis) -> Result<Millis> {
        self.with_test(|s| match &mut s.frozen_at {
            Some(frozen) => *frozen = at,
            None => s.offset = at - real_now(),
        })?;
        Ok(self.now())
    }

    /// Stops the clock where it is, or lets it run again from there.
    pub fn freeze(&self, frozen: bool) -> Result<Millis> {
        self.with_test(|s| match (frozen, s.frozen_at) {
            (true, None) => s.frozen_at = Some(real_now() + s.offset),
            (false, Some(at)) => {
                s.offset = at - real_now();
                s.frozen_at = None;
            }
            _ => {}
        })?;
        Ok(self.now())
    }

    /// Back to the real time, running.
    pub fn reset(&self) -> Result<Millis> {
        self.with_test(|s| {
            s.offset = 0;
            s.frozen_at = None;
        })?;
        Ok(self.now())
    }
}

/// RFC 3339 in UTC with a `Z`, to the second: `2026-11-22T10:00:00Z`.
pub fn format(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as the task face shows times.
pub fn format_plain(ms: Millis) -> String {
    let s = format(ms);
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// `YYYY-MM-DD` in UTC.
pub fn format_date(ms: Millis) -> String {
    format(ms).chars().take(10).collect()
}

/// Parses RFC 3339 (any offset) or a plain `YYYY-MM-DD` (that day, 00:00 UTC).
pub fn parse(field: &str, text: &str) -> Result<Millis> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "{} is not a date (YYYY-MM-DD) or an RFC 3339 time",
                quoted(text)
            ),
        )
    };
    let text = text.trim();
    let parsed = if text.len() == 10 {
        OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339)
    } else {
        OffsetDateTime::parse(text, &Rfc3339)
    };
    let t = parsed.map_err(|_| bad())?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).map_err(|_| bad())
}

/// Parses a duration such as `90s`, `10m`, `1h` or `5d` (one number, one unit).
pub fn parse_duration(field: &str, text: &str) -> Result<Millis> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "{} is not a duration such as 90s, 10m, 1h or 5d",
                quoted(text)
            ),
        )
    };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        "w" => 7 * DAY,
        _ => return Err(bad()),
    };
    // Bounded so that adding it to a timestamp can never overflow.
    if n > 100 * 365 * DAY / unit_ms {
        return Err(Error::invalid(field, "duration is over 100 years"));
    }
    Ok(n * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_plain(1_000), "1970-01-01 00:00:01");
        assert_eq!(parse("d", "2030-01-01").unwrap(), 1_893_456_000_000);
        assert_eq!(
            parse("d", "2030-01-01T01:00:00+01:00").unwrap(),
            1_893_456_000_000
        );
        assert_eq!(format_date(1_893_456_000_000), "2030-01-01");
        assert!(parse("exec_date", "tomorrow").is_err());
        assert!(parse("exec_date", "2030-13-01").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("a", "90s").unwrap(), 90_000);
        assert_eq!(parse_duration("a", "5d").unwrap(), 5 * DAY);
        for bad in ["", "5", "d", "-5d", "5y", "99999999999999d", "1.5h"] {
            assert!(parse_duration("a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_clock_moves_sets_and_freezes() {
        let c = Clock::test();
        let t0 = c.freeze(true).unwrap();
        assert_eq!(c.now(), t0);
        assert_eq!(c.advance(5 * DAY).unwrap(), t0 + 5 * DAY);
        assert_eq!(c.set(1_000).unwrap(), 1_000);
        assert!(c.advance(-1).is_err());
        assert!(Clock::real().advance(1).is_err());
    }
}
