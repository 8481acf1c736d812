//! Which waiting requests will not be reached by their same-day deadline ("at risk") at
//! the service's current rate, and which have already missed it.
//!
//! Pure: the caller reads the waiting requests (in serving order, [`super::lifecycle::ServingKey`],
//! deadline first) and the recent rate from the store; this module walks them through
//! the service's opening hours the same way the ETA does ([`super::eta`]): every request
//! served before a request takes `3600 / calls_per_hour` seconds of open time.
//!
//! A request is
//! - [`Fate::Missed`] when no attempt can start before its deadline any more, whatever
//!   the queue (the `callbackd_deadline_missed_total` counter counts these once);
//! - [`Fate::AtRisk`] when it could still be started in time, but the work ahead of it at
//!   this rate pushes its expected start to or past its deadline;
//! - [`Fate::OnTime`] otherwise.
//!
//! The gauge `callbackd_requests_at_risk{service}` is the [`Summary::at_risk`] of a
//! service's queue.

use super::{AttemptRules, Plan, first_start, start_slots};
use crate::calendar::{Calendar, DayRange, Interval};
use jiff::{SignedDuration, Timestamp};

/// One waiting request, as the forecast needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Its plan: due time, same-day deadline, expiry.
    pub plan: Plan,
    /// The daily window the patient chose, if any.
    pub window: Option<DayRange>,
}

/// What the forecast expects for one waiting request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Expected to start at this instant, before the deadline.
    OnTime(Timestamp),
    /// Expected at this instant, at or after the deadline (`None`: not before it expires
    /// or beyond the horizon).
    AtRisk(Option<Timestamp>),
    /// No attempt can start before the deadline any more.
    Missed,
}

/// The counts of a forecast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Waiting requests looked at.
    pub waiting: usize,
    /// Still in time, but expected after their deadline at this rate.
    pub at_risk: usize,
    /// Already past the point where they could be started in time.
    pub missed: usize,
}

impl Summary {
    /// Counts the fates.
    pub fn of(fates: &[Fate]) -> Summary {
        fates.iter().fold(Summary { waiting: fates.len(), ..Summary::default() }, |mut s, f| {
            match f {
                Fate::OnTime(_) => {}
                Fate::AtRisk(_) => s.at_risk += 1,
                Fate::Missed => s.missed += 1,
            }
            s
        })
    }
}

/// The open time a service works through, from `now` on (the service's start slots, no
/// window): a cursor that advances by each request's share of the rate.
struct Work<'a> {
    slots: Box<dyn Iterator<Item = Interval> + 'a>,
    current: Option<Interval>,
    point: Timestamp,
}

impl<'a> Work<'a> {
    fn new(cal: &'a Calendar, rules: &'a AttemptRules, now: Timestamp) -> Work<'a> {
        let mut slots: Box<dyn Iterator<Item = Interval> + 'a> =
            Box::new(start_slots(cal, rules, None, now).filter(move |iv| iv.end > now));
        let current = slots.next().map(|iv| Interval { start: iv.start.max(now), end: iv.end });
        let point = current.map_or(now, |iv| iv.start);
        Work { slots, current, point }
    }

    /// The instant after which `len` more open time has been used; `None` past the horizon.
    fn advance(&mut self, len: SignedDuration) -> Option<Timestamp> {
        let mut left = len;
        loop {
            let iv = self.current?;
            let room = iv.end.duration_since(self.point);
            if room > left {
                self.point = self.point.checked_add(left).ok()?;
                return Some(self.point);
            }
            left -= room;
            self.current = self.slots.next();
            self.point = self.current.map_or(iv.end, |n| n.start);
            if left == SignedDuration::ZERO {
                return self.current.map(|n| n.start);
            }
        }
    }
}

/// Forecasts each waiting request's fate. `queue` is in serving order (the order the
/// scheduler takes them: deadline first, then age); `calls_per_hour` is the service's
/// recent rate. With no positive rate, every request not yet missed is at risk.
///
/// A request's expected start is the first instant in its own start slots (its window)
/// not before its due time and not before the open time used by the requests ahead.
pub fn forecast(
    cal: &Calendar,
    rules: &AttemptRules,
    queue: &[Waiting],
    calls_per_hour: f64,
    now: Timestamp,
) -> Vec<Fate> {
    let rated = calls_per_hour.is_finite() && calls_per_hour > 0.0;
    let per_call = if rated {
        SignedDuration::from_secs_f64((3600.0 / calls_per_hour).min(86_400.0))
    } else {
        SignedDuration::ZERO
    };
    let mut work = Work::new(cal, rules, now);
    let mut reached: Option<Timestamp> = Some(work.point);
    queue
        .iter()
        .map(|w| {
            if super::deadline_missed(cal, rules, w.window, &w.plan, now) {
                return Fate::Missed;
            }
            if !rated {
                return Fate::AtRisk(None);
            }
            let expected = reached
                .map(|r| r.max(w.plan.due).max(now))
                .and_then(|t| first_start(cal, rules, w.window, t))
                .filter(|t| *t < w.plan.expires);
            // The request takes its share of the open time whether or not it is in time.
            reached = work.advance(per_call);
            match expected {
                Some(t) if t < w.plan.deadline => Fate::OnTime(t),
                other => Fate::AtRisk(other),
            }
        })
        .collect()
}

/// The counts of [`forecast`]: the figure the `callbackd_requests_at_risk` gauge shows.
pub fn assess(
    cal: &Calendar,
    rules: &AttemptRules,
    queue: &[Waiting],
    calls_per_hour: f64,
    now: Timestamp,
) -> Summary {
    Summary::of(&forecast(cal, rules, queue, calls_per_hour, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{HolidayCalendar, Hours};
    use crate::policy::{Decision, RequestFacts, decide};
    use jiff::civil::DateTime;
    use jiff::tz::TimeZone;
    use std::collections::{BTreeMap, BTreeSet};

    fn tz() -> TimeZone {
        TimeZone::get("Europe/Helsinki").expect("zone")
    }

    fn hel(s: &str) -> Timestamp {
        s.parse::<DateTime>().expect("datetime").to_zoned(tz()).expect("zoned").timestamp()
    }

    /// Mon–Fri 08:00–16:00.
    fn weekdays() -> Calendar {
        let day = vec!["08:00-16:00".parse().expect("range")];
        Calendar::new(
            Hours {
                weekly: [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]],
                eve: None,
                holiday: vec![],
                holidays: HolidayCalendar::None,
                closed: BTreeSet::new(),
                special: BTreeMap::new(),
            },
            tz(),
        )
    }

    fn waiting(cal: &Calendar, created: Timestamp, window: Option<&str>) -> Waiting {
        let window = window.map(|w| w.parse().expect("window"));
        let facts = RequestFacts { created_at: created, window, attempts: &[] };
        match decide(cal, &AttemptRules::default(), &facts) {
            Decision::Dial(plan) => Waiting { plan, window },
            other => panic!("no plan: {other:?}"),
        }
    }

    #[test]
    fn a_short_queue_is_on_time() {
        let cal = weekdays();
        let now = hel("2026-12-07T09:00");
        let q: Vec<_> = (0..10).map(|_| waiting(&cal, now, None)).collect();
        let fates = forecast(&cal, &AttemptRules::default(), &q, 12.0, now);
        assert_eq!(fates[0], Fate::OnTime(now));
        assert_eq!(fates[1], Fate::OnTime(hel("2026-12-07T09:05")));
        assert_eq!(
            Summary::of(&fates),
            Summary { waiting: 10, at_risk: 0, missed: 0 },
            "ten calls at 12 an hour end before noon"
        );
    }

    #[test]
    fn the_tail_beyond_the_days_capacity_is_at_risk() {
        let cal = weekdays();
        let now = hel("2026-12-07T14:00");
        // Start slots end at 15:50: 110 minutes at 6 calls an hour is 11 calls (the 11th
        // starts at 15:40); the 12th would start at 15:50, which is no longer in time.
        let q: Vec<_> = (0..20).map(|_| waiting(&cal, hel("2026-12-07T13:00"), None)).collect();
        let fates = forecast(&cal, &AttemptRules::default(), &q, 6.0, now);
        assert_eq!(fates[10], Fate::OnTime(hel("2026-12-07T15:40")));
        assert!(matches!(fates[11], Fate::AtRisk(Some(t)) if t == hel("2026-12-08T08:00")));
        assert_eq!(assess(&cal, &AttemptRules::default(), &q, 6.0, now).at_risk, 9);
        // Twice the rate: everyone in time.
        assert_eq!(assess(&cal, &AttemptRules::default(), &q, 12.0, now).at_risk, 0);
    }

    #[test]
    fn a_request_past_its_last_start_is_missed_not_at_risk() {
        let cal = weekdays();
        let q = [waiting(&cal, hel("2026-12-07T10:00"), None)];
        let s = assess(&cal, &AttemptRules::default(), &q, 60.0, hel("2026-12-07T15:55"));
        assert_eq!(s, Summary { waiting: 1, at_risk: 0, missed: 1 });
    }

    #[test]
    fn a_window_moves_the_expected_start_and_its_deadline() {
        let cal = weekdays();
        let now = hel("2026-12-07T09:00");
        let q = [waiting(&cal, now, Some("12:00-13:00")), waiting(&cal, now, None)];
        let fates = forecast(&cal, &AttemptRules::default(), &q, 6.0, now);
        assert_eq!(fates[0], Fate::OnTime(hel("2026-12-07T12:00")));
        assert_eq!(fates[1], Fate::OnTime(hel("2026-12-07T09:10")));
        // A window too short for the work ahead: 20 calls at 6 an hour come before 09:00-09:30.
        let mut q: Vec<_> = (0..20).map(|_| waiting(&cal, now, None)).collect();
        q.push(waiting(&cal, now, Some("09:00-09:30")));
        let fates = forecast(&cal, &AttemptRules::default(), &q, 6.0, now);
        assert!(matches!(fates[20], Fate::AtRisk(_)), "{:?}", fates[20]);
    }

    #[test]
    fn no_rate_puts_everything_at_risk() {
        let cal = weekdays();
        let now = hel("2026-12-07T09:00");
        let q = [waiting(&cal, now, None)];
        assert_eq!(assess(&cal, &AttemptRules::default(), &q, 0.0, now).at_risk, 1);
        assert_eq!(assess(&cal, &AttemptRules::default(), &q, f64::NAN, now).at_risk, 1);
    }

    #[test]
    fn closed_now_counts_from_the_next_opening() {
        let cal = weekdays();
        let created = hel("2026-12-05T11:00"); // Saturday: deadline Monday 16:00
        let q: Vec<_> = (0..3).map(|_| waiting(&cal, created, None)).collect();
        let fates = forecast(&cal, &AttemptRules::default(), &q, 6.0, created);
        assert_eq!(fates[2], Fate::OnTime(hel("2026-12-07T08:20")));
    }
}
