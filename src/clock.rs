//! The one place that reads the wall clock. Decision code takes `now` as an argument; the
//! edges ask a [`Clock`]. Tests use [`ManualClock`], which they set by hand.

use jiff::Timestamp;
use std::fmt::Debug;

/// A source of the current instant.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the one place that reads the wall clock")]
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that reads what it was last set to: for tests that move through days of the
/// calendar (and the scheduler's decisions) without waiting. Clones share one reading.
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<Timestamp>>);

impl ManualClock {
    /// A clock reading `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(t)))
    }

    /// Moves the clock (forwards or back) to `t`.
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long to sleep from `now` until `then` (zero if past).
pub fn until(now: Timestamp, then: Timestamp) -> std::time::Duration {
    let d = then.duration_since(now);
    if d.is_negative() {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::try_from(d).unwrap_or(std::time::Duration::from_secs(86_400))
    }
}
