//! Opening hours and the holiday calendar of a service.
//!
//! This module owns the answer to "when may we call?": weekly opening hours, holiday-eve and
//! holiday hours, operator exceptions (closed dates, special hours), the built-in Finnish
//! holiday calendar, and the conversion of a service's local hours into UTC instants,
//! DST-correct. It is pure: no clock reads and no I/O; every answer is a function of the
//! [`Hours`], the time zone and the timestamps passed in.

mod holidays;
mod range;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::iter::FusedIterator;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

pub use holidays::{HolidayCalendar, easter_sunday, fi_holiday, fi_holiday_eve, fi_holidays};
pub use range::{DayRange, MINUTES_PER_DAY, RangeError, normalize_ranges};

/// Weekly hours plus exceptions of one service (all in the service's local time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    /// Index 0 = Monday … 6 = Sunday; each list sorted and non-overlapping; empty = closed.
    pub weekly: [Vec<DayRange>; 7],
    /// Hours on a holiday eve; `None` = the weekly hours apply on eves too.
    ///
    /// A weekday whose weekly list is empty stays closed on an eve.
    pub eve: Option<Vec<DayRange>>,
    /// Hours on a holiday; empty = closed (the normal case).
    pub holiday: Vec<DayRange>,
    /// Which built-in holiday calendar (holidays and eves) applies.
    pub holidays: HolidayCalendar,
    /// Operator exceptions: extra closed dates. They are not holidays: they create no eves.
    pub closed: BTreeSet<Date>,
    /// Operator exceptions: special hours on given dates (override everything else; an empty
    /// list = closed).
    pub special: BTreeMap<Date, Vec<DayRange>>,
}

impl Hours {
    /// Sorts every list and merges overlapping ranges into their union, so that the documented
    /// invariants hold even for hand-built values. Lists accepted by [`normalize_ranges`] are
    /// only sorted.
    fn canonicalize(&mut self) {
        for list in &mut self.weekly {
            range::canonicalize(list);
        }
        if let Some(list) = &mut self.eve {
            range::canonicalize(list);
        }
        range::canonicalize(&mut self.holiday);
        for list in self.special.values_mut() {
            range::canonicalize(list);
        }
    }
}

/// Why a date has the hours it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayKind {
    /// Weekly hours apply.
    Regular,
    /// A holiday eve: eve hours apply.
    Eve {
        /// Name of the holiday on the next day.
        before: &'static str,
    },
    /// A holiday: holiday hours apply.
    Holiday {
        /// Name of the holiday.
        name: &'static str,
    },
    /// Operator exception: closed on this date.
    Closed,
    /// Operator exception: special hours on this date.
    Special,
}

/// The resolved hours of one local date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// The local date.
    pub date: Date,
    /// Why the date has these hours.
    pub kind: DayKind,
    /// The opening hours, sorted and non-overlapping; empty = closed.
    pub ranges: Vec<DayRange>,
}

impl Day {
    /// One CSV line: `2026-12-24,closed`, `2026-12-23,08:00-15:00` or
    /// `2026-05-04,08:00-12:00;13:00-16:00`.
    pub fn csv_line(&self) -> String {
        if self.ranges.is_empty() {
            return format!("{},closed", self.date);
        }
        let ranges: Vec<String> = self.ranges.iter().map(DayRange::to_string).collect();
        format!("{},{}", self.date, ranges.join(";"))
    }
}

/// An instant interval `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// First instant inside the interval.
    pub start: Timestamp,
    /// First instant after the interval.
    pub end: Timestamp,
}

impl Interval {
    /// Whether `t` lies in `[start, end)`.
    pub fn contains(self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// The opening hours of one service in its time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    hours: Hours,
    tz: TimeZone,
}

impl Calendar {
    /// Creates the calendar of a service.
    ///
    /// Every range list of `hours` is sorted, and overlapping ranges (which [`normalize_ranges`]
    /// would reject) are merged into their union, so [`Calendar::hours`] may differ from the
    /// input only for lists that violated the documented invariants.
    pub fn new(mut hours: Hours, tz: TimeZone) -> Calendar {
        hours.canonicalize();
        Calendar { hours, tz }
    }

    /// The (canonicalized) hours.
    pub fn hours(&self) -> &Hours {
        &self.hours
    }

    /// The service's time zone.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// The hours of a local date.
    ///
    /// Resolution order: special date, then closed date, then holiday (if the holiday calendar
    /// has one), then holiday eve, then weekly. On an eve, a weekday whose weekly list is empty
    /// stays closed; otherwise the eve hours apply (or the weekly hours if [`Hours::eve`] is
    /// `None`).
    pub fn day(&self, date: Date) -> Day {
        let h = &self.hours;
        let weekly = &h.weekly[weekday_index(date.weekday())];
        let (kind, ranges) = if let Some(ranges) = h.special.get(&date) {
            (DayKind::Special, ranges.clone())
        } else if h.closed.contains(&date) {
            (DayKind::Closed, Vec::new())
        } else if let Some(name) = h.holidays.holiday(date) {
            (DayKind::Holiday { name }, h.holiday.clone())
        } else if let Some(before) = h.holidays.eve(date) {
            let ranges = match &h.eve {
                Some(_) if weekly.is_empty() => Vec::new(),
                Some(eve) => eve.clone(),
                None => weekly.clone(),
            };
            (DayKind::Eve { before }, ranges)
        } else {
            (DayKind::Regular, weekly.clone())
        };
        Day { date, kind, ranges }
    }

    /// The service-local date of instant `t`.
    pub fn local_date(&self, t: Timestamp) -> Date {
        self.tz.to_datetime(t).date()
    }

    /// The date's ranges as UTC instants, sorted, DST-correct.
    ///
    /// Local times are resolved with jiff's "compatible" disambiguation: a time in a
    /// spring-forward gap maps forward by the gap's length (03:15 on a 03:00→04:00 gap day is
    /// the instant of 04:15), a time in a fall-back fold maps to the earlier instant. A range
    /// ending 24:00 ends at the next date's 00:00 local. Ranges that become empty after
    /// conversion (e.g. 03:30-04:10 on that gap day) are dropped, ranges that come to overlap
    /// are merged, and ranges jiff cannot represent (at the very ends of its supported range,
    /// years -9999 and 9999) are dropped. A date the zone skipped entirely has none.
    pub fn intervals_on(&self, date: Date) -> Vec<Interval> {
        // A date the zone skipped entirely (Samoa's 2011-12-30) has no hours: its local
        // times would resolve onto the next date's instants, out of order with that date's
        // own hours.
        if self.instant(date, 0).is_some_and(|t| self.local_date(t) != date) {
            return Vec::new();
        }
        let mut intervals: Vec<Interval> =
            self.day(date).ranges.iter().filter_map(|&r| self.range_on(date, r)).collect();
        intervals.sort_unstable();
        let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
        for iv in intervals {
            match merged.last_mut() {
                Some(last) if last.end > iv.start => last.end = last.end.max(iv.end),
                _ => merged.push(iv),
            }
        }
        merged
    }

    /// Any local range (e.g. a patient's preferred call window) on `date` as a UTC interval,
    /// converted exactly as [`Calendar::intervals_on`] converts opening hours (compatible
    /// disambiguation, 24:00 = next date's 00:00). `None` if the range becomes empty after
    /// conversion or cannot be represented. Does not look at the opening hours.
    pub fn range_on(&self, date: Date, range: DayRange) -> Option<Interval> {
        let start = self.instant(date, range.start_minute())?;
        let end = self.instant(date, range.end_minute())?;
        (start < end).then_some(Interval { start, end })
    }

    /// The instant of local `minute` (0..=1440) on `date`; `None` if jiff cannot represent it.
    fn instant(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let (date, minute) = if minute >= MINUTES_PER_DAY {
            (date.tomorrow().ok()?, minute - MINUTES_PER_DAY)
        } else {
            (date, minute)
        };
        let hour = i8::try_from(minute / 60).ok()?;
        let minute = i8::try_from(minute % 60).ok()?;
        let time = Time::new(hour, minute, 0, 0).ok()?;
        self.tz.to_timestamp(date.to_datetime(time)).ok()
    }

    /// Open intervals in time order, starting with the local date of `from`, skipping intervals
    /// that end at or before `from` (an interval containing `from` is yielded whole, not
    /// clipped), lazily day by day.
    ///
    /// The iterator ends after `horizon_days` consecutive local dates (the date of `from`
    /// first) have been scanned; with `horizon_days == 0` it yields nothing. The date before
    /// `from`'s date is looked at too (not counted in the horizon), so an interval of that date
    /// still open at `from` (possible around DST transitions at midnight) is not missed.
    ///
    /// Adjacent intervals across midnight (e.g. 00:00-24:00 every day) are yielded separately,
    /// one per date, each tagged with its date. Yielded intervals are non-empty, non-overlapping
    /// and strictly increasing; should a time zone's transitions make two dates' intervals
    /// overlap, the later one is clipped to start where the earlier one ends.
    pub fn intervals_from(&self, from: Timestamp, horizon_days: u32) -> OpenIntervals<'_> {
        let first = self.local_date(from);
        let (next_date, remaining) = if horizon_days == 0 {
            (None, 0)
        } else {
            match first.yesterday() {
                Ok(before) => (Some(before), horizon_days.saturating_add(1)),
                Err(_) => (Some(first), horizon_days),
            }
        };
        OpenIntervals {
            calendar: self,
            from,
            next_date,
            remaining,
            pending: VecDeque::new(),
            last_end: None,
        }
    }

    /// Whether the service is open at instant `t`.
    pub fn is_open(&self, t: Timestamp) -> bool {
        let date = self.local_date(t);
        [date.yesterday().ok(), Some(date), date.tomorrow().ok()]
            .into_iter()
            .flatten()
            .any(|d| self.intervals_on(d).iter().any(|iv| iv.contains(t)))
    }

    /// `t` itself if open, else the start of the next open interval among the `horizon_days`
    /// local dates starting with `t`'s (see [`Calendar::intervals_from`]); `None` if there is
    /// none.
    pub fn next_open(&self, t: Timestamp, horizon_days: u32) -> Option<Timestamp> {
        if self.is_open(t) {
            return Some(t);
        }
        self.intervals_from(t, horizon_days).next().map(|(_, iv)| iv.start)
    }
}

/// Index into [`Hours::weekly`]: 0 = Monday … 6 = Sunday.
fn weekday_index(weekday: Weekday) -> usize {
    match weekday {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

/// Lazy, bounded iterator over open intervals; see [`Calendar::intervals_from`].
#[derive(Debug, Clone)]
pub struct OpenIntervals<'a> {
    calendar: &'a Calendar,
    from: Timestamp,
    /// Next local date to scan; `None` past jiff's last date.
    next_date: Option<Date>,
    /// Local dates still to scan.
    remaining: u32,
    /// Intervals of the last scanned date not yet yielded.
    pending: VecDeque<(Date, Interval)>,
    /// End of the last yielded interval.
    last_end: Option<Timestamp>,
}

impl Iterator for OpenIntervals<'_> {
    type Item = (Date, Interval);

    fn next(&mut self) -> Option<(Date, Interval)> {
        loop {
            while let Some((date, mut iv)) = self.pending.pop_front() {
                if iv.end <= self.from {
                    continue;
                }
                if let Some(last_end) = self.last_end {
                    iv.start = iv.start.max(last_end);
                }
                if iv.start >= iv.end {
                    continue;
                }
                self.last_end = Some(iv.end);
                return Some((date, iv));
            }
            if self.remaining == 0 {
                return None;
            }
            let Some(date) = self.next_date else {
                self.remaining = 0;
                return None;
            };
            self.remaining -= 1;
            self.next_date = date.tomorrow().ok();
            self.pending =
                self.calendar.intervals_on(date).into_iter().map(|iv| (date, iv)).collect();
        }
    }
}

impl FusedIterator for OpenIntervals<'_> {}
