//! Built-in holiday calendars: the Finnish public holidays and Gregorian Easter.

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};

/// Which built-in holiday calendar a service follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolidayCalendar {
    /// Finnish public holidays (see [`fi_holiday`]), and their eves (see [`fi_holiday_eve`]).
    Fi,
    /// No holidays and no holiday eves.
    None,
}

impl HolidayCalendar {
    /// The name of the holiday on `date` under this calendar, if any.
    pub fn holiday(self, date: Date) -> Option<&'static str> {
        match self {
            HolidayCalendar::Fi => fi_holiday(date),
            HolidayCalendar::None => None,
        }
    }

    /// If `date` is a holiday eve under this calendar, the name of the holiday that follows.
    pub fn eve(self, date: Date) -> Option<&'static str> {
        match self {
            HolidayCalendar::Fi => fi_holiday_eve(date),
            HolidayCalendar::None => None,
        }
    }
}

/// Gregorian Easter Sunday (anonymous Gregorian / Meeus–Jones–Butcher algorithm).
///
/// Meant for years 1583..=9999; earlier years get the proleptic Gregorian date. Years outside
/// jiff's supported range (-9999..=9999) are clamped to it.
pub fn easter_sunday(year: i16) -> Date {
    let year = year.clamp(Date::MIN.year(), Date::MAX.year());
    let y = i32::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let n = h + l - 7 * m + 114;
    // n / 31 is 3 or 4 and n % 31 + 1 is in 1..=31: Easter falls on Mar 22..=Apr 25.
    let month = i8::try_from(n.div_euclid(31)).expect("Easter month is 3 or 4");
    let day = i8::try_from(n.rem_euclid(31) + 1).expect("Easter day is 1..=31");
    Date::new(year, month, day).expect("Mar 22..=Apr 25 of an in-range year is a valid date")
}

/// All 15 Finnish public holidays of `year`, sorted by date, with their English names.
///
/// When Ascension Day falls on May 1 (Easter on March 23, e.g. 2008) both entries share a
/// date. Empty for years jiff cannot represent (outside -9999..=9999).
pub fn fi_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let fixed = |month: i8, day: i8, name: &'static str| {
        Date::new(year, month, day).ok().map(|d| (d, name))
    };
    // Jun 19 + n and Oct 31 + n (n in 0..7) for the first given weekday on or after them.
    let first_on_or_after = |start: Date, weekday: Weekday| -> Date {
        let n = (weekday.to_monday_zero_offset() - start.weekday().to_monday_zero_offset())
            .rem_euclid(7);
        start.saturating_add(i64::from(n).days())
    };
    let Ok(jun19) = Date::new(year, 6, 19) else {
        return Vec::new();
    };
    let Ok(oct31) = Date::new(year, 10, 31) else {
        return Vec::new();
    };
    let easter = easter_sunday(year);
    let after_easter = |days: i64, name: &'static str| (easter.saturating_add(days.days()), name);
    let midsummer_eve = first_on_or_after(jun19, Weekday::Friday);
    let mut list: Vec<(Date, &'static str)> = [
        fixed(1, 1, "New Year's Day"),
        fixed(1, 6, "Epiphany"),
        Some(after_easter(-2, "Good Friday")),
        Some(after_easter(0, "Easter Sunday")),
        Some(after_easter(1, "Easter Monday")),
        fixed(5, 1, "May Day"),
        Some(after_easter(39, "Ascension Day")),
        Some(after_easter(49, "Whit Sunday")),
        Some((midsummer_eve, "Midsummer Eve")),
        Some((midsummer_eve.saturating_add(1.day()), "Midsummer Day")),
        Some((first_on_or_after(oct31, Weekday::Saturday), "All Saints' Day")),
        fixed(12, 6, "Independence Day"),
        fixed(12, 24, "Christmas Eve"),
        fixed(12, 25, "Christmas Day"),
        fixed(12, 26, "Boxing Day"),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Stable: on a shared date (May Day / Ascension Day) May Day stays first.
    list.sort_by_key(|&(date, _)| date);
    list
}

/// The Finnish public holiday on `date`, by English name ("Good Friday", "Midsummer Eve", ...).
///
/// The holidays: New Year's Day (Jan 1), Epiphany (Jan 6), Good Friday, Easter Sunday, Easter
/// Monday, May Day (May 1), Ascension Day (Easter + 39 days), Whit Sunday (Easter + 49 days),
/// Midsummer Eve (the Friday in Jun 19–25), Midsummer Day (the Saturday in Jun 20–26), All
/// Saints' Day (the Saturday in Oct 31–Nov 6), Independence Day (Dec 6), Christmas Eve,
/// Christmas Day, Boxing Day (Dec 24–26). When Ascension Day falls on May 1, this returns
/// "May Day".
pub fn fi_holiday(date: Date) -> Option<&'static str> {
    fi_holidays(date.year()).into_iter().find(|&(d, _)| d == date).map(|(_, name)| name)
}

/// If `date` is a Finnish holiday eve, the name of the holiday that follows it.
///
/// A holiday eve is a Monday–Friday that is not itself a holiday and whose next day is a
/// holiday (e.g. Apr 30, Maundy Thursday, Dec 23, Dec 31, the Thursday before Midsummer Eve).
pub fn fi_holiday_eve(date: Date) -> Option<&'static str> {
    match date.weekday() {
        Weekday::Saturday | Weekday::Sunday => return None,
        Weekday::Monday
        | Weekday::Tuesday
        | Weekday::Wednesday
        | Weekday::Thursday
        | Weekday::Friday => {}
    }
    if fi_holiday(date).is_some() {
        return None;
    }
    fi_holiday(date.tomorrow().ok()?)
}
