//! How a background thread (the ticker, the outbox) is asked to work now
//! rather than at its next interval, and told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// A ring that is not lost when it comes while the thread works: the
/// thread's next `wait` returns at once.
#[derive(Debug, Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cvar: Condvar,
    stop: AtomicBool,
}

impl Doorbell {
    pub fn new() -> Doorbell {
        Doorbell::default()
    }

    /// Asks the thread to work now.
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cvar.notify_one();
    }

    /// Asks the thread to stop after the work in progress.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.ring();
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps until rung or until `interval` has passed; returns at once
    /// when rung since the last wait or stopped.
    pub fn wait(&self, interval: Duration) {
        let mut rung = self.rung.lock().unwrap_or_else(PoisonError::into_inner);
        if !*rung && !self.stopped() {
            rung = self
                .cvar
                .wait_timeout(rung, interval)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        *rung = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_ring_before_the_wait_is_kept_and_a_stop_wakes() {
        let bell = Arc::new(Doorbell::new());
        bell.ring();
        let t = Instant::now();
        bell.wait(Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(10), "a ring was lost");
        let waiting = {
            let bell = bell.clone();
            std::thread::spawn(move || bell.wait(Duration::from_secs(30)))
        };
        bell.stop();
        waiting.join().unwrap();
        assert!(bell.stopped());
        assert!(t.elapsed() < Duration::from_secs(10), "a stop did not wake");
    }
}
