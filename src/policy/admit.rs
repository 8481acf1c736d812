//! Admission of new calls: the service's and the trunk's capacity, and the call rate.
//!
//! Pure: the [`Admission`] keeps the earliest instant the next call may start, on the
//! domain clock (`jiff::Timestamp` from [`crate::clock`]), so tests drive it with a manual
//! clock. One server's view; with several servers on PostgreSQL the store's claim gate
//! applies the same rate across all of them ([`Admission::interval`]).

use jiff::{SignedDuration, Timestamp};

/// Free call slots for a service: its own capacity less its active calls, bounded by the
/// trunk's free slots.
pub fn free(capacity: u32, service_active: usize, max_calls: u32, total_active: usize) -> usize {
    let service = usize::try_from(capacity).unwrap_or(usize::MAX).saturating_sub(service_active);
    let trunk = usize::try_from(max_calls).unwrap_or(usize::MAX).saturating_sub(total_active);
    service.min(trunk)
}

/// The call rate: at most `calls_per_second` starts per second, evenly spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    interval: SignedDuration,
    next_start: Option<Timestamp>,
}

impl Admission {
    /// A gate for `calls_per_second` (0 is taken as 1).
    pub fn new(calls_per_second: u32) -> Self {
        let per = i64::from(calls_per_second.max(1));
        Admission { interval: SignedDuration::from_nanos(1_000_000_000 / per), next_start: None }
    }

    /// The time between two call starts.
    pub fn interval(&self) -> SignedDuration {
        self.interval
    }

    /// Whether a call may start at `now`: `Ok` books the start (the next one may start one
    /// interval later), `Err(t)` says when. A clock that went back by more than one interval
    /// (a corrected wall clock) does not hold calls back.
    pub fn start(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        let next = self.next_start.filter(|t| t.duration_since(now) <= self.interval);
        match next {
            Some(t) if t > now => Err(t),
            Some(_) | None => {
                self.next_start = Some(now.checked_add(self.interval).unwrap_or(now));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn t0() -> Timestamp {
        "2026-11-23T08:00:00Z".parse().expect("instant")
    }

    #[test]
    fn free_is_the_smaller_of_the_service_and_the_trunk() {
        assert_eq!(free(6, 0, 100, 0), 6);
        assert_eq!(free(6, 4, 100, 4), 2);
        assert_eq!(free(6, 1, 3, 2), 1, "the trunk is nearly full");
        assert_eq!(free(2, 3, 100, 3), 0, "over capacity after a reload lowered it");
        assert_eq!(free(6, 0, 10, 12), 0);
    }

    #[test]
    fn the_rate_spaces_starts_on_the_manual_clock() {
        let clock = ManualClock::new(t0());
        let mut gate = Admission::new(4);
        assert_eq!(gate.interval(), SignedDuration::from_millis(250));
        assert_eq!(gate.start(clock.now()), Ok(()));
        let next = t0() + SignedDuration::from_millis(250);
        assert_eq!(gate.start(clock.now()), Err(next), "a second start at the same instant waits");
        clock.set(t0() + SignedDuration::from_millis(249));
        assert_eq!(gate.start(clock.now()), Err(next));
        clock.set(next);
        assert_eq!(gate.start(clock.now()), Ok(()));
        // A pause longer than the interval builds no burst: one start, then spacing again.
        clock.set(t0() + SignedDuration::from_secs(10));
        assert_eq!(gate.start(clock.now()), Ok(()));
        assert!(gate.start(clock.now()).is_err());
    }

    #[test]
    fn a_clock_set_back_does_not_hold_calls() {
        let mut gate = Admission::new(1);
        assert_eq!(gate.start(t0()), Ok(()));
        let back = t0() - SignedDuration::from_mins(5);
        assert_eq!(gate.start(back), Ok(()), "the booked start lies far ahead of the clock");
        assert_eq!(gate.start(back), Err(back + SignedDuration::from_secs(1)));
    }

    #[test]
    fn high_rates_keep_a_positive_interval() {
        let gate = Admission::new(10_000);
        assert_eq!(gate.interval(), SignedDuration::from_micros(100));
        assert_eq!(Admission::new(0).interval(), SignedDuration::from_secs(1));
    }

    proptest::proptest! {
        #[test]
        fn starts_are_never_closer_than_the_interval(
            rate in 1u32..2000,
            steps in proptest::collection::vec(0i64..5_000_000, 1..200),
        ) {
            let mut gate = Admission::new(rate);
            let mut now = t0();
            let mut last: Option<Timestamp> = None;
            for step in steps {
                now += SignedDuration::from_micros(step);
                if gate.start(now).is_ok() {
                    if let Some(l) = last {
                        proptest::prop_assert!(now.duration_since(l) >= gate.interval());
                    }
                    last = Some(now);
                }
            }
        }
    }
}
