//! The bounds on what HTTP peers may hold: open connections (by default,
//! what the process's descriptor limit leaves for them) and the time a
//! request head may take.

use std::time::Duration;

use crate::config::Config;

/// Descriptors kept for everything but client connections: the listener
/// (and a future EPP one), the log, the database (the writer, the
/// checkpointer and the flusher, each with its database and WAL files) and
/// the senders' outgoing connections.
const RESERVED: usize = 64;

/// Descriptors kept per worker: a pooled read connection to the database
/// (its database and WAL files) and room for what a request opens.
const RESERVED_PER_WORKER: usize = 4;

/// The default bound is kept within these: a small descriptor limit still
/// serves a few clients (running out is survived, see tiny_http's
/// `PATCHED.md`), and a large one does not start a thread for each of a
/// million connections.
const DEFAULT_LEAST: usize = 16;
const DEFAULT_MOST: usize = 10_000;

pub fn from_config(config: &Config) -> tiny_http::Limits {
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| default_max_connections(open_files_limit(), config.workers));
    tiny_http::Limits {
        max_connections,
        header_timeout: Duration::from_millis(config.header_timeout_ms),
    }
}

/// What a descriptor limit of `nofile` leaves for client connections (one
/// descriptor each) with `workers` requests answered at once.
fn default_max_connections(nofile: Option<usize>, workers: usize) -> usize {
    // Without a readable limit, assume the usual soft limit.
    let nofile = nofile.unwrap_or(1024);
    let reserved = RESERVED + RESERVED_PER_WORKER * workers;
    nofile
        .saturating_sub(reserved)
        .clamp(DEFAULT_LEAST, DEFAULT_MOST)
}

/// The soft limit on open descriptors (`getrlimit(RLIMIT_NOFILE)`), read
/// from `/proc/self/limits` (no unsafe code); `None` where that file does
/// not exist.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    soft_open_files(&limits)
}

fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_descriptor_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95464                95464                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files(limits), Some(1024));
        assert_eq!(
            soft_open_files("Max open files unlimited unlimited files"),
            Some(usize::MAX)
        );
        assert_eq!(soft_open_files("nothing here"), None);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn the_default_bound_leaves_room_for_the_rest() {
        assert_eq!(default_max_connections(Some(1024), 32), 1024 - 64 - 128);
        assert_eq!(default_max_connections(Some(128), 32), DEFAULT_LEAST);
        assert_eq!(default_max_connections(Some(usize::MAX), 32), DEFAULT_MOST);
        assert_eq!(default_max_connections(None, 4), 1024 - 64 - 16);
    }
}
