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
    /// How far ahead of the clock the next start may lie when the clock is right: one
    /// interval, plus the farthest [`Admission::book`] has booked ahead. A next start
    /// farther ahead means the clock went back.
    reach: SignedDuration,
}

impl Admission {
    /// A gate for `calls_per_second` (0 is taken as 1).
    pub fn new(calls_per_second: u32) -> Self {
        let per = i64::from(calls_per_second.max(1));
        let interval = SignedDuration::from_nanos(1_000_000_000 / per);
        Admission { interval, next_start: None, reach: interval }
    }

    /// The time between two call starts.
    pub fn interval(&self) -> SignedDuration {
        self.interval
    }

    /// Whether a call may start at `now`: `Ok` books the start (the next one may start one
    /// interval later), `Err(t)` says when. A clock that went back by more than one interval
    /// (and more than [`Admission::book`] books ahead; a corrected wall clock) does not hold
    /// calls back.
    pub fn start(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        let next = self.next_start.filter(|t| t.duration_since(now) <= self.reach);
        match next {
            Some(t) if t > now => Err(t),
            Some(_) | None => {
                self.next_start = Some(now.checked_add(self.interval).unwrap_or(now));
                Ok(())
            }
        }
    }

    /// The earliest instant the next start may be booked at, once one was.
    pub fn next(&self) -> Option<Timestamp> {
        self.next_start
    }

    /// Books up to `want` starts, evenly spaced one interval apart, the first at `now` or
    /// at the next start already booked, none later than `now + ahead`: the instant each
    /// may start at, in order. `Err(t)` when not even one fits: none may start before `t`.
    /// `ahead` zero books at most one start, at `now` ([`Admission::start`]). The spacing
    /// is that of [`Admission::start`]: booking `n` at once books what `n` starts at their
    /// instants would.
    pub fn book(
        &mut self,
        now: Timestamp,
        want: usize,
        ahead: SignedDuration,
    ) -> Result<Vec<Timestamp>, Timestamp> {
        let ahead = ahead.max(SignedDuration::ZERO);
        let horizon = now.checked_add(ahead).unwrap_or(now);
        self.reach = self.reach.max(self.interval.checked_add(ahead).unwrap_or(self.reach));
        let next = self.next_start.filter(|t| t.duration_since(now) <= self.reach);
        let mut at = match next {
            Some(t) if t > horizon => return Err(t),
            Some(t) => t.max(now),
            None => now,
        };
        let mut slots = Vec::with_capacity(want.min(64));
        while slots.len() < want && at <= horizon {
            slots.push(at);
            at = at.checked_add(self.interval).unwrap_or(at);
        }
        if let Some(last) = slots.last() {
            self.next_start = Some(last.checked_add(self.interval).unwrap_or(*last));
        }
        Ok(slots)
    }
}

/// Whether a call-rate stop shared by several servers (the store's claim gate), lying at
/// `next`, holds a claim at `now`. A server with a right clock sets it at most one
/// `interval` past its own clock, and the servers' clocks agree to within `skew` (they run
/// NTP to well within the lease). A stop farther ahead was set by a clock running ahead:
/// obeyed, it would hold every server back for as long as that clock stays ahead, so it
/// is replaced, as [`Admission::start`] passes over a booking left by a clock set back.
pub fn shared_stop_holds(
    next: Timestamp,
    now: Timestamp,
    interval: SignedDuration,
    skew: SignedDuration,
) -> bool {
    let reach = interval.checked_add(skew).unwrap_or(SignedDuration::MAX);
    next.duration_since(now) <= reach
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
    fn a_shared_stop_set_by_a_clock_far_ahead_does_not_hold() {
        let (interval, skew) = (SignedDuration::from_millis(250), SignedDuration::from_secs(30));
        let holds = |next| shared_stop_holds(next, t0(), interval, skew);
        assert!(holds(t0() + interval), "one interval ahead: set by a right clock");
        assert!(holds(t0() + interval + skew), "within the servers' skew");
        assert!(!holds(t0() + interval + skew + SignedDuration::from_micros(1)));
        assert!(!holds(t0() + SignedDuration::from_hours(1)), "a clock an hour ahead");
        assert!(holds(t0() - SignedDuration::from_hours(1)), "a stop in the past holds nothing");
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

    #[test]
    fn booking_spaces_starts_up_to_the_horizon() {
        let ms = SignedDuration::from_millis;
        let mut gate = Admission::new(1000);
        // 1 ms apart, from now, no later than 5 ms ahead: 6 starts fit, 4 are wanted.
        let slots = gate.book(t0(), 4, ms(5)).expect("room");
        assert_eq!(slots, [t0(), t0() + ms(1), t0() + ms(2), t0() + ms(3)]);
        // The next booking goes on from the last start, at the same instant too.
        let slots = gate.book(t0(), 10, ms(5)).expect("room");
        assert_eq!(slots, [t0() + ms(4), t0() + ms(5)]);
        assert_eq!(gate.book(t0(), 10, ms(5)), Err(t0() + ms(6)), "booked up to the horizon");
        assert_eq!(gate.start(t0() + ms(5)), Err(t0() + ms(6)), "start sees the bookings");
        // Later: the first start is now, not at the end of a pause (no burst).
        let later = t0() + SignedDuration::from_secs(10);
        assert_eq!(gate.book(later, 3, ms(1)).expect("room"), [later, later + ms(1)]);
        // No horizon: one start, as `start` would.
        let mut gate = Admission::new(1000);
        assert_eq!(gate.book(t0(), 5, SignedDuration::ZERO).expect("room"), [t0()]);
        assert_eq!(gate.book(t0(), 5, SignedDuration::ZERO), Err(t0() + ms(1)));
        assert_eq!(gate.book(t0(), 0, ms(5)).expect("nothing wanted"), []);
    }

    #[test]
    fn a_clock_set_back_does_not_hold_booked_calls() {
        let ms = SignedDuration::from_millis;
        let mut gate = Admission::new(1000);
        assert_eq!(gate.book(t0(), 20, ms(20)).expect("room").len(), 20);
        // Still within the booking's reach: the booked starts hold.
        assert_eq!(gate.book(t0() + ms(1), 1, SignedDuration::ZERO), Err(t0() + ms(20)));
        let back = t0() - SignedDuration::from_mins(5);
        assert_eq!(gate.book(back, 2, ms(1)).expect("room"), [back, back + ms(1)]);
    }

    proptest::proptest! {
        #[test]
        fn booked_starts_are_never_closer_than_the_interval(
            rate in 1u32..20_000,
            steps in proptest::collection::vec((0i64..50_000, 0usize..40, 0i64..30_000), 1..100),
        ) {
            let mut gate = Admission::new(rate);
            let mut now = t0();
            let mut last: Option<Timestamp> = None;
            for (step, want, ahead) in steps {
                now += SignedDuration::from_micros(step);
                let ahead = SignedDuration::from_micros(ahead);
                if let Ok(slots) = gate.book(now, want, ahead) {
                    proptest::prop_assert!(slots.len() <= want);
                    for at in slots {
                        proptest::prop_assert!(at >= now && at <= now + ahead);
                        if let Some(l) = last {
                            proptest::prop_assert!(at.duration_since(l) >= gate.interval());
                        }
                        last = Some(at);
                    }
                }
            }
        }
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
