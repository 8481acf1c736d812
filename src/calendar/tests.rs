//! Tests of the calendar module: ranges, holidays, day resolution, DST, iteration.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, Weekday, date};
use jiff::tz::{self, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

fn r(s: &str) -> DayRange {
    DayRange::parse(s).expect("test range is valid")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp is valid")
}

fn iv(start: &str, end: &str) -> Interval {
    Interval { start: ts(start), end: ts(end) }
}

fn helsinki() -> TimeZone {
    TimeZone::get("Europe/Helsinki").expect("Europe/Helsinki is in the bundled tzdb")
}

/// The reference Helsinki health station.
fn station_hours() -> Hours {
    let weekday = vec![r("08:00-16:00")];
    Hours {
        weekly: [
            weekday.clone(),
            weekday.clone(),
            weekday.clone(),
            weekday,
            vec![r("08:00-15:00")],
            vec![],
            vec![],
        ],
        eve: Some(vec![r("08:00-15:00")]),
        holiday: vec![],
        holidays: HolidayCalendar::Fi,
        closed: BTreeSet::new(),
        special: BTreeMap::new(),
    }
}

fn station() -> Calendar {
    Calendar::new(station_hours(), helsinki())
}

/// Same ranges every day of the week, no holidays, no exceptions.
fn every_day(ranges: &[&str]) -> Hours {
    let list: Vec<DayRange> = ranges.iter().map(|s| r(s)).collect();
    Hours {
        weekly: std::array::from_fn(|_| list.clone()),
        eve: None,
        holiday: vec![],
        holidays: HolidayCalendar::None,
        closed: BTreeSet::new(),
        special: BTreeMap::new(),
    }
}

fn regular() -> DayKind {
    DayKind::Regular
}

fn eve(before: &'static str) -> DayKind {
    DayKind::Eve { before }
}

fn holiday(name: &'static str) -> DayKind {
    DayKind::Holiday { name }
}

/// Asserts the station's days from `first` on, one expected `(kind, csv line)` per day.
fn assert_days(cal: &Calendar, first: Date, expected: &[(DayKind, &str)]) {
    let mut date = first;
    for (kind, csv) in expected {
        let day = cal.day(date);
        assert_eq!((&day.kind, day.csv_line().as_str()), (kind, *csv), "on {date}");
        date = date.tomorrow().expect("test dates are in range");
    }
}

// ---------------------------------------------------------------------------------------------
// DayRange

#[test]
fn range_parse_and_display() {
    let range = r("08:00-16:00");
    assert_eq!((range.start_minute(), range.end_minute()), (480, 960));
    assert_eq!(range.to_string(), "08:00-16:00");
    assert_eq!(r("00:00-24:00").to_string(), "00:00-24:00");
    assert_eq!(r("23:59-24:00").end_minute(), 1440);
    assert_eq!("09:30-11:15".parse::<DayRange>(), DayRange::new(570, 675));
}

#[test]
fn range_parse_errors() {
    let format = |s: &str| RangeError::Format { input: s.into() };
    for bad in [
        "8:00-16:00",
        "8-16",
        "",
        "08:00-16:00 ",
        " 08:00-16:00",
        "08:00 - 16:00",
        "08.00-16.00",
        "08:00-1600",
        "+8:00-16:00",
        "08:00–16:00",
        "0８:00-16:00",
    ] {
        assert_eq!(DayRange::parse(bad), Err(format(bad)), "{bad:?}");
    }
    let invalid = |time: &str, input: &str| RangeError::InvalidTime {
        time: time.into(),
        input: input.into(),
    };
    assert_eq!(DayRange::parse("24:00-24:00"), Err(invalid("24:00", "24:00-24:00")));
    assert_eq!(DayRange::parse("08:60-16:00"), Err(invalid("08:60", "08:60-16:00")));
    assert_eq!(DayRange::parse("08:00-24:01"), Err(invalid("24:01", "08:00-24:01")));
    assert_eq!(DayRange::parse("08:00-25:00"), Err(invalid("25:00", "08:00-25:00")));
    assert_eq!(
        DayRange::parse("16:00-08:00"),
        Err(RangeError::CloseBeforeOpen { open: 960, close: 480 })
    );
    assert_eq!(DayRange::parse("08:00-08:00"), Err(RangeError::Empty { at: 480 }));
}

#[test]
fn range_error_messages() {
    let msg = |s: &str| DayRange::parse(s).map_err(|e| e.to_string());
    assert_eq!(msg("16:00-08:00"), Err("closing time 08:00 is before opening time 16:00".into()));
    assert_eq!(msg("8-16"), Err("expected HH:MM-HH:MM, got \"8-16\"".into()));
    assert_eq!(
        msg("08:00-08:00"),
        Err("opening and closing time are both 08:00 (empty range)".into())
    );
    assert_eq!(
        msg("08:00-24:30"),
        Err("invalid time \"24:30\" in \"08:00-24:30\" (hours 00-23, minutes 00-59; \
             24:00 only as closing time)"
            .into())
    );
    assert_eq!(
        normalize_ranges(&[r("11:00-13:00"), r("08:00-12:00")]).map_err(|e| e.to_string()),
        Err("ranges 08:00-12:00 and 11:00-13:00 overlap".into())
    );
    assert_eq!(
        DayRange::new(0, 1441).map_err(|e| e.to_string()),
        Err("minute 1441 is past the end of the day (opening at most 1439, closing at most 1440)"
            .into())
    );
}

#[test]
fn range_new_checks_bounds() {
    assert!(DayRange::new(0, 1440).is_ok());
    assert_eq!(DayRange::new(1440, 1440), Err(RangeError::MinuteOutOfRange { minute: 1440 }));
    assert_eq!(DayRange::new(0, 1441), Err(RangeError::MinuteOutOfRange { minute: 1441 }));
    assert_eq!(DayRange::new(600, 540), Err(RangeError::CloseBeforeOpen { open: 600, close: 540 }));
    assert_eq!(DayRange::new(5, 5), Err(RangeError::Empty { at: 5 }));
}

#[test]
fn range_set_operations() {
    let morning = r("08:00-12:00");
    assert!(morning.contains_minute(480));
    assert!(morning.contains_minute(719));
    assert!(!morning.contains_minute(720));
    assert!(!morning.contains_minute(479));
    assert_eq!(morning.intersect(r("11:00-13:00")), Some(r("11:00-12:00")));
    assert_eq!(morning.intersect(r("12:00-13:00")), None);
    assert_eq!(morning.intersect(r("00:00-24:00")), Some(morning));
    assert!(morning.overlaps(r("07:00-08:01")));
    assert!(!morning.overlaps(r("07:00-08:00")));
}

#[test]
fn normalize_sorts_and_accepts_touching() {
    assert_eq!(
        normalize_ranges(&[r("12:00-16:00"), r("08:00-12:00")]),
        Ok(vec![r("08:00-12:00"), r("12:00-16:00")])
    );
    assert_eq!(normalize_ranges(&[]), Ok(vec![]));
    assert_eq!(
        normalize_ranges(&[r("08:00-12:00"), r("08:00-12:00")]),
        Err(RangeError::Overlap { first: r("08:00-12:00"), second: r("08:00-12:00") })
    );
    assert_eq!(
        normalize_ranges(&[r("13:00-14:00"), r("08:00-16:00"), r("20:00-21:00")]),
        Err(RangeError::Overlap { first: r("08:00-16:00"), second: r("13:00-14:00") })
    );
}

// ---------------------------------------------------------------------------------------------
// Easter and the Finnish holidays

#[test]
fn easter_known_years() {
    for (year, month, day) in [
        (1583, 4, 10),
        (1818, 3, 22),
        (1943, 4, 25),
        (2000, 4, 23),
        (2008, 3, 23),
        (2024, 3, 31),
        (2025, 4, 20),
        (2026, 4, 5),
        (2027, 3, 28),
        (2038, 4, 25),
        (2285, 3, 22),
        (9999, 3, 28),
    ] {
        assert_eq!(easter_sunday(year), date(year, month, day), "{year}");
    }
}

/// Gauss's Easter algorithm (Gregorian, with its two exceptions), as an independent oracle.
fn gauss_easter(year: i16) -> Date {
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y % 4, y % 7);
    let k = y / 100;
    let p = (13 + 8 * k) / 25;
    let q = k / 4;
    let m = (15 - p + k - q) % 30;
    let n = (4 + k - q) % 7;
    let d = (19 * a + m) % 30;
    let e = (2 * b + 4 * c + 6 * d + n) % 7;
    let march_day = 22 + d + e;
    let (month, day) = if d == 29 && e == 6 {
        (4, 19)
    } else if d == 28 && e == 6 && (11 * m + 11) % 30 < 19 {
        (4, 18)
    } else if march_day > 31 {
        (4, march_day - 31)
    } else {
        (3, march_day)
    };
    date(year, month, i8::try_from(day).expect("day of month fits i8"))
}

#[test]
fn easter_all_years_match_gauss_and_are_sundays() {
    for year in 1583..=9999 {
        let easter = easter_sunday(year);
        assert_eq!(easter, gauss_easter(year), "{year}");
        assert_eq!(easter.weekday(), Weekday::Sunday, "{year}");
        assert!(date(year, 3, 22) <= easter && easter <= date(year, 4, 25), "{year}");
    }
}

#[test]
fn easter_clamps_years_outside_jiff_range() {
    assert_eq!(easter_sunday(i16::MAX), easter_sunday(9999));
    assert_eq!(easter_sunday(i16::MIN).year(), -9999);
}

#[test]
fn fi_holidays_2026() {
    let expected = vec![
        (date(2026, 1, 1), "New Year's Day"),
        (date(2026, 1, 6), "Epiphany"),
        (date(2026, 4, 3), "Good Friday"),
        (date(2026, 4, 5), "Easter Sunday"),
        (date(2026, 4, 6), "Easter Monday"),
        (date(2026, 5, 1), "May Day"),
        (date(2026, 5, 14), "Ascension Day"),
        (date(2026, 5, 24), "Whit Sunday"),
        (date(2026, 6, 19), "Midsummer Eve"),
        (date(2026, 6, 20), "Midsummer Day"),
        (date(2026, 10, 31), "All Saints' Day"),
        (date(2026, 12, 6), "Independence Day"),
        (date(2026, 12, 24), "Christmas Eve"),
        (date(2026, 12, 25), "Christmas Day"),
        (date(2026, 12, 26), "Boxing Day"),
    ];
    assert_eq!(fi_holidays(2026), expected);
    assert_eq!(holidays_by_scanning(2026), expected);
}

#[test]
fn fi_holidays_2027() {
    let expected = vec![
        (date(2027, 1, 1), "New Year's Day"),
        (date(2027, 1, 6), "Epiphany"),
        (date(2027, 3, 26), "Good Friday"),
        (date(2027, 3, 28), "Easter Sunday"),
        (date(2027, 3, 29), "Easter Monday"),
        (date(2027, 5, 1), "May Day"),
        (date(2027, 5, 6), "Ascension Day"),
        (date(2027, 5, 16), "Whit Sunday"),
        (date(2027, 6, 25), "Midsummer Eve"),
        (date(2027, 6, 26), "Midsummer Day"),
        (date(2027, 11, 6), "All Saints' Day"),
        (date(2027, 12, 6), "Independence Day"),
        (date(2027, 12, 24), "Christmas Eve"),
        (date(2027, 12, 25), "Christmas Day"),
        (date(2027, 12, 26), "Boxing Day"),
    ];
    assert_eq!(fi_holidays(2027), expected);
    assert_eq!(holidays_by_scanning(2027), expected);
}

/// Every date of `year` for which [`fi_holiday`] answers, in order.
fn holidays_by_scanning(year: i16) -> Vec<(Date, &'static str)> {
    date(year, 1, 1)
        .series(1.day())
        .take_while(|d| d.year() == year)
        .filter_map(|d| fi_holiday(d).map(|name| (d, name)))
        .collect()
}

#[test]
fn ascension_on_may_day_2008() {
    let list = fi_holidays(2008);
    assert_eq!(list.len(), 15);
    assert!(list.contains(&(date(2008, 5, 1), "Ascension Day")));
    assert!(list.contains(&(date(2008, 5, 1), "May Day")));
    assert_eq!(fi_holiday(date(2008, 5, 1)), Some("May Day"));
    assert_eq!(holidays_by_scanning(2008).len(), 14);
    assert_eq!(fi_holiday_eve(date(2008, 4, 30)), Some("May Day"));
}

#[test]
fn fi_eves_2026() {
    let eves: Vec<(Date, &str)> = date(2026, 1, 1)
        .series(1.day())
        .take_while(|d| d.year() == 2026)
        .filter_map(|d| fi_holiday_eve(d).map(|before| (d, before)))
        .collect();
    assert_eq!(
        eves,
        vec![
            (date(2026, 1, 5), "Epiphany"),
            (date(2026, 4, 2), "Good Friday"),
            (date(2026, 4, 30), "May Day"),
            (date(2026, 5, 13), "Ascension Day"),
            (date(2026, 6, 18), "Midsummer Eve"),
            (date(2026, 10, 30), "All Saints' Day"),
            (date(2026, 12, 23), "Christmas Eve"),
            (date(2026, 12, 31), "New Year's Day"),
        ]
    );
    // Dec 5 is an eve when it is a weekday (2025: Friday).
    assert_eq!(fi_holiday_eve(date(2025, 12, 5)), Some("Independence Day"));
}

#[test]
fn holiday_calendar_none_has_no_holidays_or_eves() {
    assert_eq!(HolidayCalendar::None.holiday(date(2026, 12, 24)), None);
    assert_eq!(HolidayCalendar::None.eve(date(2026, 12, 23)), None);
    let mut hours = station_hours();
    hours.holidays = HolidayCalendar::None;
    let cal = Calendar::new(hours, helsinki());
    assert_days(
        &cal,
        date(2026, 12, 23),
        &[
            (regular(), "2026-12-23,08:00-16:00"),
            (regular(), "2026-12-24,08:00-16:00"),
            (regular(), "2026-12-25,08:00-15:00"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Day resolution for the reference station

#[test]
fn christmas_2026_to_epiphany_2027() {
    assert_days(
        &station(),
        date(2026, 12, 21),
        &[
            (regular(), "2026-12-21,08:00-16:00"),
            (regular(), "2026-12-22,08:00-16:00"),
            (eve("Christmas Eve"), "2026-12-23,08:00-15:00"),
            (holiday("Christmas Eve"), "2026-12-24,closed"),
            (holiday("Christmas Day"), "2026-12-25,closed"),
            (holiday("Boxing Day"), "2026-12-26,closed"),
            (regular(), "2026-12-27,closed"),
            (regular(), "2026-12-28,08:00-16:00"),
            (regular(), "2026-12-29,08:00-16:00"),
            (regular(), "2026-12-30,08:00-16:00"),
            (eve("New Year's Day"), "2026-12-31,08:00-15:00"),
            (holiday("New Year's Day"), "2027-01-01,closed"),
            (regular(), "2027-01-02,closed"),
            (regular(), "2027-01-03,closed"),
            (regular(), "2027-01-04,08:00-16:00"),
            (eve("Epiphany"), "2027-01-05,08:00-15:00"),
            (holiday("Epiphany"), "2027-01-06,closed"),
        ],
    );
}

#[test]
fn midsummer_week_2026() {
    assert_days(
        &station(),
        date(2026, 6, 15),
        &[
            (regular(), "2026-06-15,08:00-16:00"),
            (regular(), "2026-06-16,08:00-16:00"),
            (regular(), "2026-06-17,08:00-16:00"),
            (eve("Midsummer Eve"), "2026-06-18,08:00-15:00"),
            (holiday("Midsummer Eve"), "2026-06-19,closed"),
            (holiday("Midsummer Day"), "2026-06-20,closed"),
            (regular(), "2026-06-21,closed"),
            (regular(), "2026-06-22,08:00-16:00"),
        ],
    );
}

#[test]
fn easter_week_2026() {
    assert_days(
        &station(),
        date(2026, 3, 30),
        &[
            (regular(), "2026-03-30,08:00-16:00"),
            (regular(), "2026-03-31,08:00-16:00"),
            (regular(), "2026-04-01,08:00-16:00"),
            (eve("Good Friday"), "2026-04-02,08:00-15:00"),
            (holiday("Good Friday"), "2026-04-03,closed"),
            (regular(), "2026-04-04,closed"),
            (holiday("Easter Sunday"), "2026-04-05,closed"),
            (holiday("Easter Monday"), "2026-04-06,closed"),
            (regular(), "2026-04-07,08:00-16:00"),
        ],
    );
}

#[test]
fn csv_line_with_several_ranges() {
    let day = Day {
        date: date(2026, 5, 4),
        kind: DayKind::Special,
        ranges: vec![r("08:00-12:00"), r("13:00-16:00")],
    };
    assert_eq!(day.csv_line(), "2026-05-04,08:00-12:00;13:00-16:00");
}

#[test]
fn eve_hours_none_uses_weekly_hours() {
    let mut hours = station_hours();
    hours.eve = None;
    let cal = Calendar::new(hours, helsinki());
    assert_days(&cal, date(2026, 12, 23), &[(eve("Christmas Eve"), "2026-12-23,08:00-16:00")]);
}

#[test]
fn eve_on_weekday_closed_weekly_stays_closed() {
    let mut hours = station_hours();
    hours.weekly[2] = vec![]; // Wednesdays closed; 2026-12-23 is a Wednesday.
    let cal = Calendar::new(hours, helsinki());
    assert_days(&cal, date(2026, 12, 23), &[(eve("Christmas Eve"), "2026-12-23,closed")]);
}

#[test]
fn holiday_hours_apply_on_holidays() {
    let mut hours = station_hours();
    hours.holiday = vec![r("10:00-14:00")];
    let cal = Calendar::new(hours, helsinki());
    assert_days(&cal, date(2026, 12, 24), &[(holiday("Christmas Eve"), "2026-12-24,10:00-14:00")]);
}

#[test]
fn operator_exceptions_override() {
    let mut hours = station_hours();
    // Special hours open a holiday.
    hours.special.insert(date(2026, 12, 24), vec![r("09:00-12:00")]);
    // A closed date closes a weekday, and is not a holiday: the day before is no eve.
    hours.closed.insert(date(2026, 3, 10));
    // Special hours win over a closed date on the same day.
    hours.closed.insert(date(2026, 3, 11));
    hours.special.insert(date(2026, 3, 11), vec![r("12:00-14:00"), r("10:00-11:00")]);
    // An empty special list closes the day; special hours override an eve.
    hours.special.insert(date(2026, 3, 12), vec![]);
    hours.special.insert(date(2026, 12, 23), vec![r("08:00-18:00")]);
    let cal = Calendar::new(hours, helsinki());
    assert_days(
        &cal,
        date(2026, 3, 9),
        &[
            (regular(), "2026-03-09,08:00-16:00"),
            (DayKind::Closed, "2026-03-10,closed"),
            (DayKind::Special, "2026-03-11,10:00-11:00;12:00-14:00"),
            (DayKind::Special, "2026-03-12,closed"),
        ],
    );
    assert_days(
        &cal,
        date(2026, 12, 23),
        &[
            (DayKind::Special, "2026-12-23,08:00-18:00"),
            (DayKind::Special, "2026-12-24,09:00-12:00"),
            (holiday("Christmas Day"), "2026-12-25,closed"),
        ],
    );
    assert!(cal.is_open(ts("2026-12-24T07:30:00Z")));
    assert!(!cal.is_open(ts("2026-03-10T10:00:00Z")));
}

#[test]
fn calendar_new_sorts_and_merges_hand_built_lists() {
    let mut hours = every_day(&[]);
    hours.weekly[0] = vec![r("12:00-16:00"), r("08:00-13:00"), r("17:00-18:00")];
    let cal = Calendar::new(hours, helsinki());
    assert_eq!(cal.hours().weekly[0], vec![r("08:00-16:00"), r("17:00-18:00")]);
    assert_eq!(cal.tz(), &helsinki());
}

// ---------------------------------------------------------------------------------------------
// Instants and DST

#[test]
fn weekday_intervals_in_winter_and_summer() {
    let cal = station();
    assert_eq!(
        cal.intervals_on(date(2026, 3, 27)),
        vec![iv("2026-03-27T06:00:00Z", "2026-03-27T13:00:00Z")]
    );
    assert_eq!(
        cal.intervals_on(date(2026, 3, 30)),
        vec![iv("2026-03-30T05:00:00Z", "2026-03-30T13:00:00Z")]
    );
    assert_eq!(cal.intervals_on(date(2026, 3, 29)), vec![]);
}

#[test]
fn dst_spring_forward_2026() {
    let tz = helsinki();
    let office = Calendar::new(every_day(&["08:00-16:00"]), tz.clone());
    assert_eq!(
        office.intervals_on(date(2026, 3, 28)),
        vec![iv("2026-03-28T06:00:00Z", "2026-03-28T14:00:00Z")]
    );
    assert_eq!(
        office.intervals_on(date(2026, 3, 29)),
        vec![iv("2026-03-29T05:00:00Z", "2026-03-29T13:00:00Z")]
    );

    let all_day = Calendar::new(every_day(&["00:00-24:00"]), tz.clone());
    let day = all_day.intervals_on(date(2026, 3, 29));
    assert_eq!(day, vec![iv("2026-03-28T22:00:00Z", "2026-03-29T21:00:00Z")]);
    assert_eq!(day[0].end.duration_since(day[0].start), SignedDuration::from_hours(23));

    // 03:15-03:45 does not exist on the clock; it maps forward to 04:15-04:45 EEST.
    let gap = Calendar::new(every_day(&["03:15-03:45"]), tz.clone());
    assert_eq!(
        gap.intervals_on(date(2026, 3, 29)),
        vec![iv("2026-03-29T01:15:00Z", "2026-03-29T01:45:00Z")]
    );
    // 03:30-04:10: the start maps forward past the end, so the range is dropped.
    let inverted = Calendar::new(every_day(&["03:30-04:10"]), tz.clone());
    assert_eq!(inverted.intervals_on(date(2026, 3, 29)), vec![]);
    // 03:15-03:45 plus 04:00-05:00 come to overlap after conversion and are merged.
    let merged = Calendar::new(every_day(&["03:15-03:45", "04:00-05:00"]), tz);
    assert_eq!(
        merged.intervals_on(date(2026, 3, 29)),
        vec![iv("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")]
    );
}

#[test]
fn dst_fall_back_2026() {
    let tz = helsinki();
    let office = Calendar::new(every_day(&["08:00-16:00"]), tz.clone());
    assert_eq!(
        office.intervals_on(date(2026, 10, 24)),
        vec![iv("2026-10-24T05:00:00Z", "2026-10-24T13:00:00Z")]
    );
    assert_eq!(
        office.intervals_on(date(2026, 10, 25)),
        vec![iv("2026-10-25T06:00:00Z", "2026-10-25T14:00:00Z")]
    );

    let all_day = Calendar::new(every_day(&["00:00-24:00"]), tz.clone());
    let day = all_day.intervals_on(date(2026, 10, 25));
    assert_eq!(day, vec![iv("2026-10-24T21:00:00Z", "2026-10-25T22:00:00Z")]);
    assert_eq!(day[0].end.duration_since(day[0].start), SignedDuration::from_hours(25));

    // 03:15-03:45 happens twice; the earlier (EEST) occurrence is used.
    let fold = Calendar::new(every_day(&["03:15-03:45"]), tz.clone());
    assert_eq!(
        fold.intervals_on(date(2026, 10, 25)),
        vec![iv("2026-10-25T00:15:00Z", "2026-10-25T00:45:00Z")]
    );
    assert!(fold.is_open(ts("2026-10-25T00:30:00Z")));
    assert!(!fold.is_open(ts("2026-10-25T01:30:00Z")));
    // A range from inside the fold to after it covers the repeated hour.
    let across = Calendar::new(every_day(&["03:30-04:30"]), tz);
    assert_eq!(
        across.intervals_on(date(2026, 10, 25)),
        vec![iv("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z")]
    );
}

#[test]
fn intervals_from_all_day_yields_one_interval_per_date() {
    let cal = Calendar::new(every_day(&["00:00-24:00"]), helsinki());
    let got: Vec<(Date, Interval)> = cal.intervals_from(ts("2026-03-28T12:00:00Z"), 3).collect();
    assert_eq!(
        got,
        vec![
            (date(2026, 3, 28), iv("2026-03-27T22:00:00Z", "2026-03-28T22:00:00Z")),
            (date(2026, 3, 29), iv("2026-03-28T22:00:00Z", "2026-03-29T21:00:00Z")),
            (date(2026, 3, 30), iv("2026-03-29T21:00:00Z", "2026-03-30T21:00:00Z")),
        ]
    );
}

#[test]
fn intervals_from_skips_past_and_keeps_current_unclipped() {
    let cal = station();
    // Thursday 2026-05-07 12:00 local (09:00Z): the current interval is yielded whole.
    let got: Vec<(Date, Interval)> = cal.intervals_from(ts("2026-05-07T09:00:00Z"), 4).collect();
    assert_eq!(
        got,
        vec![
            (date(2026, 5, 7), iv("2026-05-07T05:00:00Z", "2026-05-07T13:00:00Z")),
            (date(2026, 5, 8), iv("2026-05-08T05:00:00Z", "2026-05-08T12:00:00Z")),
        ]
    );
    // At the closing instant the day's interval is over.
    let at_close: Vec<Date> =
        cal.intervals_from(ts("2026-05-07T13:00:00Z"), 2).map(|(d, _)| d).collect();
    assert_eq!(at_close, vec![date(2026, 5, 8)]);
    assert_eq!(cal.intervals_from(ts("2026-05-07T09:00:00Z"), 0).next(), None);
}

#[test]
fn is_open_at_boundaries() {
    let cal = station();
    assert!(!cal.is_open(ts("2026-05-07T04:59:59Z")));
    assert!(cal.is_open(ts("2026-05-07T05:00:00Z")));
    assert!(cal.is_open(ts("2026-05-07T12:59:59.999999999Z")));
    assert!(!cal.is_open(ts("2026-05-07T13:00:00Z")));
    assert!(!cal.is_open(ts("2026-05-09T09:00:00Z"))); // Saturday
}

#[test]
fn next_open_examples() {
    let cal = station();
    let open = ts("2026-05-07T09:00:00Z");
    assert_eq!(cal.next_open(open, 0), Some(open));
    // Friday after closing -> Monday 08:00 EEST.
    assert_eq!(cal.next_open(ts("2026-05-08T12:30:00Z"), 7), Some(ts("2026-05-11T05:00:00Z")));
    // Christmas Eve eve after closing -> Monday Dec 28 08:00 EET.
    assert_eq!(cal.next_open(ts("2026-12-23T13:00:00Z"), 7), Some(ts("2026-12-28T06:00:00Z")));
    // Horizon too short: Dec 23 .. Dec 27 has nothing after closing.
    assert_eq!(cal.next_open(ts("2026-12-23T13:00:00Z"), 5), None);
    assert_eq!(cal.next_open(ts("2026-12-23T13:00:00Z"), 6), Some(ts("2026-12-28T06:00:00Z")));
    // Closed forever.
    let never = Calendar::new(every_day(&[]), helsinki());
    assert_eq!(never.next_open(open, 400), None);
}

#[test]
fn extreme_dates_do_not_panic() {
    let cal = Calendar::new(every_day(&["00:00-24:00"]), helsinki());
    let _ = cal.intervals_on(Date::MAX);
    let _ = cal.intervals_on(Date::MIN);
    assert!(cal.intervals_from(Timestamp::MAX, 5).count() <= 2);
    assert!(cal.intervals_from(Timestamp::MIN, 3).count() <= 4);
    let _ = cal.is_open(Timestamp::MAX);
    let _ = cal.next_open(Timestamp::MIN, 3);
    let _ = fi_holiday(Date::MAX);
    let _ = fi_holiday_eve(Date::MAX);
    assert_eq!(fi_holidays(-9999).len(), 15);
    assert_eq!(fi_holidays(i16::MAX), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Zones with interesting transitions: DST, 30-minute DST (Lord Howe), fall-back across
/// midnight (Santiago), a skipped whole day (Apia, 2011-12-30), none (UTC, fixed +02:00).
fn arb_tz() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        Just("Europe/Helsinki"),
        Just("America/Santiago"),
        Just("Australia/Lord_Howe"),
        Just("Pacific/Apia"),
        Just("America/New_York"),
    ]
    .prop_map(|name| TimeZone::get(name).expect("zone is in the bundled tzdb"))
}

fn arb_list() -> impl Strategy<Value = Vec<DayRange>> {
    prop::collection::btree_set(0u16..=MINUTES_PER_DAY, 0..=6).prop_map(|cuts| {
        let cuts: Vec<u16> = cuts.into_iter().collect();
        cuts.chunks_exact(2)
            .map(|pair| DayRange::new(pair[0], pair[1]).expect("strictly increasing cuts"))
            .collect()
    })
}

fn arb_date() -> impl Strategy<Value = Date> {
    (2009i16..=2032, 1i8..=12, 1i8..=28).prop_map(|(y, m, d)| date(y, m, d))
}

fn arb_hours() -> impl Strategy<Value = Hours> {
    (
        prop::array::uniform7(arb_list()),
        prop::option::of(arb_list()),
        arb_list(),
        prop_oneof![Just(HolidayCalendar::Fi), Just(HolidayCalendar::None)],
        prop::collection::btree_set(arb_date(), 0..20),
        prop::collection::btree_map(arb_date(), arb_list(), 0..20),
    )
        .prop_map(|(weekly, eve, holiday, holidays, closed, special)| Hours {
            weekly,
            eve,
            holiday,
            holidays,
            closed,
            special,
        })
}

/// An instant in 2009..2032, often within a few days of one of the zone's transitions.
fn arb_instant(tz: TimeZone) -> impl Strategy<Value = Timestamp> {
    let lo = ts("2009-01-01T00:00:00Z").as_second();
    let hi = ts("2032-01-01T00:00:00Z").as_second();
    (lo..hi, any::<bool>(), -3 * 86_400i64..3 * 86_400).prop_map(move |(s, near, jitter)| {
        let t = Timestamp::from_second(s).expect("in range");
        let base = if near { tz.following(t).next().map_or(t, |tr| tr.timestamp()) } else { t };
        base.saturating_add(SignedDuration::from_secs(jitter)).expect("no calendar units")
    })
}

fn arb_case() -> impl Strategy<Value = (Calendar, Timestamp)> {
    (arb_tz(), arb_hours()).prop_flat_map(|(tz, hours)| {
        let cal = Calendar::new(hours, tz.clone());
        arb_instant(tz).prop_map(move |t| (cal.clone(), t))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_intervals_on_nonempty_sorted_disjoint(
        (cal, t) in arb_case(),
        shift in -3i64..=3,
    ) {
        let day = cal.local_date(t).saturating_add(shift.days());
        let ivs = cal.intervals_on(day);
        for iv in &ivs {
            prop_assert!(iv.start < iv.end);
        }
        for pair in ivs.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start);
        }
    }

    #[test]
    fn prop_intervals_from_ordered_and_after_from((cal, t) in arb_case(), horizon in 0u32..12) {
        let got: Vec<(Date, Interval)> = cal.intervals_from(t, horizon).collect();
        let first = cal.local_date(t);
        for (date, iv) in &got {
            prop_assert!(iv.start < iv.end);
            prop_assert!(iv.end > t);
            prop_assert!(*date >= first.saturating_add((-1).days()));
            prop_assert!(*date < first.saturating_add(i64::from(horizon).days()));
        }
        for pair in got.windows(2) {
            prop_assert!(pair[0].1.start < pair[1].1.start);
            prop_assert!(pair[0].1.end <= pair[1].1.start);
            prop_assert!(pair[0].0 <= pair[1].0);
        }
    }

    #[test]
    fn prop_is_open_agrees_with_intervals_from((cal, t) in arb_case()) {
        let covered = cal
            .intervals_from(t, 2)
            .next()
            .is_some_and(|(_, iv)| iv.start <= t);
        prop_assert_eq!(cal.is_open(t), covered);
    }

    #[test]
    fn prop_next_open_is_open_and_first((cal, t) in arb_case(), horizon in 0u32..10) {
        match cal.next_open(t, horizon) {
            Some(next) => {
                prop_assert!(next >= t);
                prop_assert!(cal.is_open(next));
                prop_assert_eq!(next == t, cal.is_open(t));
                if next > t {
                    let just_before = next - SignedDuration::from_nanos(1);
                    prop_assert!(!cal.is_open(just_before));
                }
            }
            None => {
                prop_assert!(!cal.is_open(t));
                prop_assert!(cal.intervals_from(t, horizon).next().is_none());
            }
        }
    }

    /// Without transitions, being open is exactly "the local minute is in one of the day's
    /// ranges".
    #[test]
    fn prop_is_open_matches_local_ranges_without_dst(
        hours in arb_hours(),
        offset_hours in -12i8..=14,
        second in ts("2009-01-01T00:00:00Z").as_second()..ts("2032-01-01T00:00:00Z").as_second(),
    ) {
        let tz = if offset_hours == 0 {
            TimeZone::UTC
        } else {
            TimeZone::fixed(tz::offset(offset_hours))
        };
        let cal = Calendar::new(hours, tz.clone());
        let t = Timestamp::from_second(second).expect("in range");
        let local = tz.to_datetime(t);
        let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
            .expect("minute of day fits u16");
        let expected = cal
            .day(local.date())
            .ranges
            .iter()
            .any(|r| r.contains_minute(minute));
        prop_assert_eq!(cal.is_open(t), expected);
    }

    #[test]
    fn prop_eves(y in 1583i16..=9999, doy in 0i64..366) {
        let day = date(y, 1, 1).saturating_add(doy.days());
        let cal = Calendar::new(station_hours(), helsinki());
        let next = day.tomorrow().expect("in range");
        let weekday = !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday);
        let should_be_eve = weekday && fi_holiday(day).is_none() && fi_holiday(next).is_some();
        match cal.day(day).kind {
            DayKind::Eve { before } => {
                prop_assert!(should_be_eve);
                prop_assert_eq!(Some(before), fi_holiday(next));
            }
            DayKind::Holiday { name } => prop_assert_eq!(Some(name), fi_holiday(day)),
            DayKind::Regular => {
                prop_assert!(!should_be_eve);
                prop_assert!(fi_holiday(day).is_none());
            }
            DayKind::Closed | DayKind::Special => prop_assert!(false, "no exceptions set"),
        }
    }

    #[test]
    fn prop_fifteen_holidays_per_year(y in 1583i16..=9999) {
        let list = fi_holidays(y);
        prop_assert_eq!(list.len(), 15);
        for (d, name) in &list {
            prop_assert_eq!(d.year(), y);
            prop_assert!(fi_holiday(*d).is_some(), "{} {}", d, name);
        }
        let ascension_on_may_day = easter_sunday(y) == date(y, 3, 23);
        let expected = if ascension_on_may_day { 14 } else { 15 };
        prop_assert_eq!(holidays_by_scanning(y).len(), expected);
        let midsummer_eve = list.iter().find(|(_, n)| *n == "Midsummer Eve").map(|(d, _)| *d);
        prop_assert!(midsummer_eve.is_some_and(|d| d.weekday() == Weekday::Friday
            && (date(y, 6, 19)..=date(y, 6, 25)).contains(&d)));
        let all_saints = list.iter().find(|(_, n)| *n == "All Saints' Day").map(|(d, _)| *d);
        prop_assert!(all_saints.is_some_and(|d| d.weekday() == Weekday::Saturday
            && (date(y, 10, 31)..=date(y, 11, 6)).contains(&d)));
    }

    #[test]
    fn prop_range_display_parse_round_trip(
        a in 0u16..=MINUTES_PER_DAY,
        b in 0u16..=MINUTES_PER_DAY,
    ) {
        match DayRange::new(a, b) {
            Ok(range) => {
                prop_assert!(a < b);
                prop_assert_eq!(DayRange::parse(&range.to_string()), Ok(range));
            }
            Err(_) => prop_assert!(a >= b || a == MINUTES_PER_DAY),
        }
    }

    #[test]
    fn prop_range_parse_never_panics_and_round_trips(s in "[0-9:\\-]{0,12}") {
        if let Ok(range) = DayRange::parse(&s) {
            prop_assert_eq!(range.to_string(), s);
        }
    }

    #[test]
    fn prop_normalize_ranges(list in prop::collection::vec(
        (0u16..MINUTES_PER_DAY, 1u16..=240), 0..6)
    ) {
        let ranges: Vec<DayRange> = list
            .iter()
            .map(|&(s, len)| DayRange::new(s, (s + len).min(MINUTES_PER_DAY)))
            .collect::<Result<_, _>>()
            .expect("non-empty by construction");
        match normalize_ranges(&ranges) {
            Ok(sorted) => {
                prop_assert_eq!(sorted.len(), ranges.len());
                for pair in sorted.windows(2) {
                    prop_assert!(pair[0].end_minute() <= pair[1].start_minute());
                }
            }
            Err(RangeError::Overlap { first, second }) => {
                prop_assert!(first.overlaps(second));
                prop_assert!(first <= second);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

#[test]
fn skipped_day_has_no_interval() {
    // Samoa skipped 2011-12-30 entirely (UTC-10 -> UTC+14).
    let tz = TimeZone::get("Pacific/Apia").expect("Pacific/Apia is in the bundled tzdb");
    let cal = Calendar::new(every_day(&["00:00-24:00"]), tz.clone());
    assert_eq!(cal.intervals_on(date(2011, 12, 30)), vec![]);
    let dates: Vec<Date> =
        cal.intervals_from(ts("2011-12-29T12:00:00Z"), 3).map(|(d, _)| d).collect();
    assert_eq!(dates, vec![date(2011, 12, 29), date(2011, 12, 31)]);

    // Hours of its own on the skipped Friday would land on Saturday's instants, out of order
    // with Saturday's earlier hours (a case the property tests found): the skipped date has
    // none, and the next opening is Saturday's first.
    let mut hours = every_day(&[]);
    hours.weekly[4] = vec![r("04:55-07:37")];
    hours.weekly[5] = vec![r("01:55-12:58")];
    let cal = Calendar::new(hours, tz);
    assert_eq!(cal.intervals_on(date(2011, 12, 30)), vec![]);
    let midnight = ts("2011-12-30T10:00:00Z"); // Saturday 00:00 local (UTC+14)
    assert_eq!(cal.next_open(midnight, 5), Some(ts("2011-12-30T11:55:00Z")));
    assert!(!cal.is_open(ts("2011-12-30T11:54:59Z")));
}

#[test]
fn range_on_converts_any_range() {
    let cal = station();
    // Saturday: closed, but a window is still converted.
    assert_eq!(
        cal.range_on(date(2026, 5, 9), r("17:00-24:00")),
        Some(iv("2026-05-09T14:00:00Z", "2026-05-09T21:00:00Z"))
    );
    assert_eq!(
        cal.range_on(date(2026, 3, 29), r("03:15-03:45")),
        Some(iv("2026-03-29T01:15:00Z", "2026-03-29T01:45:00Z"))
    );
    assert_eq!(cal.range_on(date(2026, 3, 29), r("03:30-04:10")), None);
}
