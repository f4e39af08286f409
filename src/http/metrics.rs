//! Counters of the servers for `/metrics`: HTTP answers by status class, a
//! latency histogram, and the EPP sessions open.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
pub const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    /// Answers by status class: 1xx..5xx at indexes 1..5.
    pub by_class: [AtomicU64; 6],
    /// Cumulative counts per bucket (the last slot is +Inf).
    pub latency: [AtomicU64; BUCKETS.len() + 1],
    pub latency_sum_micros: AtomicU64,
    /// EPP connections open, logged in or not (what `--epp-max-sessions`
    /// bounds).
    pub epp_sessions: AtomicUsize,
}

impl Metrics {
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).min(5);
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.latency[slot].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP regdesk_epp_sessions EPP connections open, logged in or not.\n");
        out.push_str("# TYPE regdesk_epp_sessions gauge\n");
        let sessions = self.epp_sessions.load(Ordering::Relaxed);
        let _ = writeln!(out, "regdesk_epp_sessions {sessions}");
        out.push_str("# HELP regdesk_http_responses_total HTTP responses by status class.\n");
        out.push_str("# TYPE regdesk_http_responses_total counter\n");
        for class in 1..=5 {
            let n = self.by_class[class].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "regdesk_http_responses_total{{class=\"{class}xx\"}} {n}"
            );
        }
        out.push_str("# HELP regdesk_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE regdesk_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "regdesk_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "regdesk_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "regdesk_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "regdesk_http_request_duration_seconds_count {cumulative}"
        );
    }
}
