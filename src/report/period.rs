//! The period a report covers: an ISO week, a calendar month or a range of dates, in the
//! service's time zone, and the period before it of the same kind.

use jiff::civil::{Date, ISOWeekDate, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;
use std::fmt;

/// A period of whole local days, `from` up to `to` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    /// What kind of period it is (how it is named and what comes before it).
    pub kind: Kind,
    /// First day.
    pub from: Date,
    /// Last day, inclusive.
    pub to: Date,
}

/// How a period was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An ISO 8601 week, Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
    /// Any range of days.
    Range,
}

/// Why a period could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// `--week` is not `YYYY-Www`.
    #[error("week {0:?} is not an ISO week such as 2026-W48")]
    Week(String),
    /// `--month` is not `YYYY-MM`.
    #[error("month {0:?} is not a month such as 2026-11")]
    Month(String),
    /// `--to` before `--from`.
    #[error("--to {to} is before --from {from}")]
    Reversed {
        /// First day.
        from: Date,
        /// Last day.
        to: Date,
    },
    /// Over the longest period a report covers.
    #[error("the period is {0} days long; a report covers at most {MAX_DAYS} days")]
    TooLong(i64),
}

/// The longest period a report covers (a year and a day, so a leap year fits).
pub const MAX_DAYS: i64 = 367;

impl Period {
    /// The ISO week `2026-W48`.
    pub fn week(s: &str) -> Result<Period, PeriodError> {
        let bad = || PeriodError::Week(s.to_owned());
        let (y, w) = s.trim().split_once(['-']).ok_or_else(bad)?;
        let w = w.strip_prefix(['W', 'w']).ok_or_else(bad)?;
        let year: i16 = y.parse().map_err(|_| bad())?;
        let week: i8 = w.parse().map_err(|_| bad())?;
        if w.len() != 2 {
            return Err(bad());
        }
        let monday = ISOWeekDate::new(year, week, Weekday::Monday).map_err(|_| bad())?.date();
        let sunday = monday.checked_add(6.days()).map_err(|_| bad())?;
        Ok(Period { kind: Kind::Week, from: monday, to: sunday })
    }

    /// The month `2026-11`.
    pub fn month(s: &str) -> Result<Period, PeriodError> {
        let bad = || PeriodError::Month(s.to_owned());
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if m.len() != 2 {
            return Err(bad());
        }
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        let first = Date::new(year, month, 1).map_err(|_| bad())?;
        Ok(Period { kind: Kind::Month, from: first, to: first.last_of_month() })
    }

    /// The days `from` to `to`, both included.
    pub fn range(from: Date, to: Date) -> Result<Period, PeriodError> {
        if to < from {
            return Err(PeriodError::Reversed { from, to });
        }
        let p = Period { kind: Kind::Range, from, to };
        if p.days() > MAX_DAYS {
            return Err(PeriodError::TooLong(p.days()));
        }
        Ok(p)
    }

    /// The last whole ISO week before `today` (the default report).
    pub fn last_week(today: Date) -> Period {
        let monday = today
            .checked_sub(i64::from(today.weekday().to_monday_zero_offset()).days())
            .and_then(|d| d.checked_sub(7.days()))
            .unwrap_or(today);
        Period {
            kind: Kind::Week,
            from: monday,
            to: monday.checked_add(6.days()).unwrap_or(monday),
        }
    }

    /// How many days it has.
    pub fn days(&self) -> i64 {
        i64::from(self.to.since(self.from).map_or(0, |s| s.get_days())) + 1
    }

    /// Every day of the period, in order.
    pub fn dates(&self) -> impl Iterator<Item = Date> + '_ {
        self.from.series(1.day()).take_while(|d| *d <= self.to)
    }

    /// The period before: the week before, the month before, or as many days just before.
    pub fn previous(&self) -> Period {
        match self.kind {
            Kind::Week => {
                let from = self.from.checked_sub(7.days()).unwrap_or(self.from);
                Period { kind: Kind::Week, from, to: self.from.yesterday().unwrap_or(self.from) }
            }
            Kind::Month => {
                let to = self.from.yesterday().unwrap_or(self.from);
                Period { kind: Kind::Month, from: to.first_of_month(), to }
            }
            Kind::Range => {
                let to = self.from.yesterday().unwrap_or(self.from);
                let from = self.from.checked_sub((self.days()).days()).unwrap_or(self.from);
                Period { kind: Kind::Range, from, to }
            }
        }
    }

    /// The instants the period spans in `tz`: its first local midnight (inclusive) and the
    /// one after its last day (exclusive). A DST week is 167 or 169 hours long.
    pub fn instants(&self, tz: &TimeZone) -> (Timestamp, Timestamp) {
        let start =
            |d: Date| d.to_zoned(tz.clone()).map_or_else(|_| Timestamp::MIN, |z| z.timestamp());
        let end = self.to.tomorrow().map_or(Timestamp::MAX, start);
        (start(self.from), end)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Week => {
                let w = self.from.iso_week_date();
                write!(f, "{:04}-W{:02}", w.year(), w.week())
            }
            Kind::Month => write!(f, "{}", self.from.strftime("%Y-%m")),
            Kind::Range => write!(f, "{}..{}", self.from, self.to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn weeks_months_ranges_and_their_previous() {
        let w = Period::week("2026-W48").expect("test value");
        assert_eq!((w.from, w.to), (date(2026, 11, 23), date(2026, 11, 29)));
        assert_eq!(w.to_string(), "2026-W48");
        assert_eq!(w.previous().to_string(), "2026-W47");
        // Week 1 of 2026 starts in 2025; the week before it is 2025-W52.
        let w1 = Period::week("2026-W01").expect("test value");
        assert_eq!(w1.from, date(2025, 12, 29));
        assert_eq!(w1.previous().to_string(), "2025-W52");
        let m = Period::month("2026-03").expect("test value");
        assert_eq!((m.from, m.to, m.days()), (date(2026, 3, 1), date(2026, 3, 31), 31));
        assert_eq!(m.previous(), Period::month("2026-02").expect("test value"));
        assert_eq!(m.previous().days(), 28);
        let r = Period::range(date(2026, 11, 10), date(2026, 11, 12)).expect("test value");
        assert_eq!(
            r.previous(),
            Period { kind: Kind::Range, from: date(2026, 11, 7), to: date(2026, 11, 9) }
        );
        assert_eq!(r.dates().count(), 3);
        assert_eq!(Period::last_week(date(2026, 12, 2)).to_string(), "2026-W48");
        assert_eq!(Period::last_week(date(2026, 11, 30)).to_string(), "2026-W48");
    }

    #[test]
    fn bad_periods_say_what_is_wrong() {
        for bad in ["2026-48", "2026-W54", "2026W48", "2026-W4", "x-W01"] {
            assert!(matches!(Period::week(bad), Err(PeriodError::Week(_))), "{bad}");
        }
        for bad in ["2026-13", "2026-1", "2026", "nov"] {
            assert!(matches!(Period::month(bad), Err(PeriodError::Month(_))), "{bad}");
        }
        assert!(matches!(
            Period::range(date(2026, 11, 2), date(2026, 11, 1)),
            Err(PeriodError::Reversed { .. })
        ));
        assert!(matches!(
            Period::range(date(2025, 1, 1), date(2026, 12, 31)),
            Err(PeriodError::TooLong(730))
        ));
    }

    #[test]
    fn a_dst_week_is_not_168_hours() {
        let tz = TimeZone::get("Europe/Helsinki").expect("test value");
        // 2026-03-29 is the spring change (03:00 → 04:00): week 13 has 167 hours.
        let (a, b) = Period::week("2026-W13").expect("test value").instants(&tz);
        assert_eq!(b.duration_since(a).as_hours(), 167);
        // 2026-10-25 is the autumn change: week 43 has 169 hours.
        let (a, b) = Period::week("2026-W43").expect("test value").instants(&tz);
        assert_eq!(b.duration_since(a).as_hours(), 169);
        assert_eq!(a.to_string(), "2026-10-18T21:00:00Z");
    }
}
