//! Every random choice (tokens, jitter) comes from here, so that `--seed N`
//! makes a whole run repeatable. Without a seed the generator is seeded from
//! the operating system.

use std::sync::{Mutex, OnceLock, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

static RNG: OnceLock<Mutex<StdRng>> = OnceLock::new();

fn rng() -> &'static Mutex<StdRng> {
    RNG.get_or_init(|| Mutex::new(StdRng::from_entropy()))
}

/// Reseeds the generator: the same seed gives the same choices from here on.
pub fn seed(seed: u64) {
    *rng().lock().unwrap_or_else(PoisonError::into_inner) = StdRng::seed_from_u64(seed);
}

/// `n` random bytes as lower-case hex.
pub fn hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rng()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .fill(bytes.as_mut_slice());
    hex::encode(bytes)
}

/// A float in [0, 1), for jitter and probabilistic rules.
pub fn unit() -> f64 {
    rng().lock().unwrap_or_else(PoisonError::into_inner).gen()
}

/// A new API token: `rd_` and 32 random bytes in hex.
pub fn token() -> String {
    format!("rd_{}", hex(32))
}
