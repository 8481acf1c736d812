//! The one place that reads the wall clock. Decision code takes `now` as an argument; the
//! edges ask a [`Clock`]. Tests use [`TestClock`], which follows tokio's (pausable) clock.

use jiff::{SignedDuration, Timestamp};
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
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that starts at a chosen instant and advances with tokio's clock, so a test with
/// a paused runtime (`start_paused = true`) moves through days in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct TestClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TestClock {
    /// A clock reading `base` now.
    pub fn starting_at(base: Timestamp) -> Self {
        TestClock { base, start: tokio::time::Instant::now() }
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().duration_since(self.start);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
        self.base.saturating_add(elapsed).unwrap_or(self.base)
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
