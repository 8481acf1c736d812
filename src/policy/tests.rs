//! Policy tests: Helsinki hours, holidays, eves, DST, windows, retries, ETA, properties.

use super::*;
use crate::calendar::{Calendar, DayRange, HolidayCalendar, Hours};
use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn r(s: &str) -> DayRange {
    s.parse().expect("range")
}

fn tz() -> TimeZone {
    TimeZone::get("Europe/Helsinki").expect("zone")
}

/// Helsinki's published hours: Mon–Thu 08–16, Fri and eves 08–15, closed on holidays.
fn helsinki() -> Calendar {
    let day = vec![r("08:00-16:00")];
    Calendar::new(
        Hours {
            weekly: [
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                vec![r("08:00-15:00")],
                vec![],
                vec![],
            ],
            eve: Some(vec![r("08:00-15:00")]),
            holiday: vec![],
            holidays: HolidayCalendar::Fi,
            closed: BTreeSet::new(),
            special: BTreeMap::new(),
        },
        tz(),
    )
}

fn always_open() -> Calendar {
    let day = vec![r("00:00-24:00")];
    Calendar::new(
        Hours {
            weekly: std::array::from_fn(|_| day.clone()),
            eve: None,
            holiday: vec![],
            holidays: HolidayCalendar::None,
            closed: BTreeSet::new(),
            special: BTreeMap::new(),
        },
        tz(),
    )
}

/// A planned request's place in the serving order.
fn key(p: &Plan, created_at: Timestamp, id: i64) -> lifecycle::ServingKey {
    lifecycle::ServingKey { deadline: p.deadline, created_at, id }
}

/// A local Helsinki time.
fn hel(s: &str) -> Timestamp {
    s.parse::<DateTime>().expect("datetime").to_zoned(tz()).expect("zoned").timestamp()
}

fn rules() -> AttemptRules {
    AttemptRules::default()
}

fn plan(cal: &Calendar, req: &RequestFacts<'_>) -> Plan {
    match decide(cal, &rules(), req) {
        Decision::Dial(p) => p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn fresh(created_at: Timestamp) -> RequestFacts<'static> {
    RequestFacts { created_at, window: None, attempts: &[] }
}

#[test]
fn request_in_opening_hours_is_due_at_once_with_a_same_day_deadline() {
    let cal = helsinki();
    let p = plan(&cal, &fresh(hel("2026-11-23T10:00")));
    assert_eq!(p.due, hel("2026-11-23T10:00"));
    assert_eq!(p.deadline, hel("2026-11-23T16:00"));
    assert_eq!(p.expires, hel("2026-11-24T16:00"), "end of the next open day");
    assert_eq!(p.counted, 0);
    assert_eq!(at(&cal, &rules(), None, &p, hel("2026-11-23T10:00")), Now::Start);
    assert!(!deadline_missed(&cal, &rules(), None, &p, hel("2026-11-23T10:00")));
}

#[test]
fn request_after_closing_is_due_at_the_next_opening() {
    let cal = helsinki();
    let p = plan(&cal, &fresh(hel("2026-11-23T17:30")));
    assert_eq!(p.due, hel("2026-11-24T08:00"));
    assert_eq!(p.deadline, hel("2026-11-24T16:00"), "the deadline day is the next open day");
    // Friday after closing: Monday.
    let p = plan(&cal, &fresh(hel("2026-11-27T15:00")));
    assert_eq!(p.due, hel("2026-11-30T08:00"));
    assert_eq!(p.expires, hel("2026-12-01T16:00"));
    // Saturday: Monday.
    let p = plan(&cal, &fresh(hel("2026-11-28T11:00")));
    assert_eq!(p.due, hel("2026-11-30T08:00"));
    assert_eq!(p.deadline, hel("2026-11-30T16:00"));
}

#[test]
fn a_request_after_the_days_last_start_is_an_after_hours_request() {
    let cal = helsinki();
    // 15:55, the hours end at 16:00 and no attempt starts in the last 10 minutes: nobody
    // can call it back today, so its deadline day is the next open day, as in the evening.
    let late = plan(&cal, &fresh(hel("2026-11-23T15:55")));
    assert_eq!(late.due, hel("2026-11-24T08:00"), "no new attempt in the last 10 minutes");
    assert_eq!(late.deadline, hel("2026-11-24T16:00"), "the deadline day is tomorrow");
    assert!(!deadline_missed(&cal, &rules(), None, &late, hel("2026-11-23T15:55")));
    assert_eq!(
        deadline(&cal, &rules(), None, hel("2026-11-23T15:55")).map(|d| d.0),
        Some(date(2026, 11, 24))
    );
    // The last start moment itself is after hours; a second before it is still today.
    assert_eq!(plan(&cal, &fresh(hel("2026-11-23T15:50"))).deadline, hel("2026-11-24T16:00"));
    let last = plan(&cal, &fresh(hel("2026-11-23T15:49:59")));
    assert_eq!((last.due, last.deadline), (hel("2026-11-23T15:49:59"), hel("2026-11-23T16:00")));
    // Friday closes at 15:00: 14:55 on Friday is Monday's.
    assert_eq!(plan(&cal, &fresh(hel("2026-11-27T14:55"))).deadline, hel("2026-11-30T16:00"));
    // With no closing margin an attempt may start until the hours end, and so may today's.
    let open_to_end = AttemptRules { last_call_before_close: SignedDuration::ZERO, ..rules() };
    assert_eq!(
        deadline(&cal, &open_to_end, None, hel("2026-11-23T15:55")),
        Some((date(2026, 11, 23), hel("2026-11-23T16:00")))
    );
    // A window: its own last moment counts (the margin is kept from the closing time only).
    let w = Some(r("12:00-14:00"));
    assert_eq!(
        deadline(&cal, &rules(), w, hel("2026-11-23T13:55")),
        Some((date(2026, 11, 23), hel("2026-11-23T14:00")))
    );
    let w = Some(r("15:00-16:00"));
    assert_eq!(
        deadline(&cal, &rules(), w, hel("2026-11-23T15:52")),
        Some((date(2026, 11, 24), hel("2026-11-24T16:00")))
    );
}

#[test]
fn a_request_that_missed_its_deadline_goes_first_at_the_next_opening() {
    let cal = helsinki();
    let missed = plan(&cal, &fresh(hel("2026-11-23T15:45")));
    assert_eq!((missed.due, missed.deadline), (hel("2026-11-23T15:45"), hel("2026-11-23T16:00")));
    assert!(!deadline_missed(&cal, &rules(), None, &missed, hel("2026-11-23T15:49")));
    assert!(
        deadline_missed(&cal, &rules(), None, &missed, hel("2026-11-23T15:50")),
        "not started in time"
    );
    let after_hours = plan(&cal, &fresh(hel("2026-11-23T15:55")));
    assert!(
        key(&missed, hel("2026-11-23T15:45"), 2) < key(&after_hours, hel("2026-11-23T15:55"), 1),
        "a missed request is served first at the next opening"
    );
    // A request made early the same day goes before a later one.
    let a = plan(&cal, &fresh(hel("2026-11-24T08:10")));
    let b = plan(&cal, &fresh(hel("2026-11-24T09:10")));
    assert!(key(&a, hel("2026-11-24T08:10"), 2) < key(&b, hel("2026-11-24T09:10"), 1));
}

#[test]
fn busy_then_retry_after_the_pause_then_unreachable() {
    let cal = helsinki();
    let one = [AttemptRecord { ended_at: hel("2026-11-23T10:00:40"), outcome: Outcome::Busy }];
    let req = RequestFacts { attempts: &one, ..fresh(hel("2026-11-23T10:00")) };
    let p = plan(&cal, &req);
    assert_eq!(p.due, hel("2026-11-23T10:30:40"));
    assert_eq!(p.counted, 1);
    let two =
        [one[0], AttemptRecord { ended_at: hel("2026-11-23T10:31"), outcome: Outcome::NoAnswer }];
    let req = RequestFacts { attempts: &two, ..req };
    assert_eq!(
        decide(&cal, &rules(), &req),
        Decision::End { end: End::Unreachable, reason: Reason::AttemptsUsed(2) }
    );
}

#[test]
fn a_retry_that_falls_after_closing_moves_to_the_next_opening() {
    let cal = helsinki();
    let a = [AttemptRecord { ended_at: hel("2026-11-23T15:40"), outcome: Outcome::NoAnswer }];
    let req = RequestFacts { attempts: &a, ..fresh(hel("2026-11-23T15:39")) };
    assert_eq!(plan(&cal, &req).due, hel("2026-11-24T08:00"));
}

#[test]
fn a_retry_after_the_expiry_ends_the_request_as_unreachable() {
    let cal = helsinki();
    let a = [AttemptRecord { ended_at: hel("2026-11-24T15:45"), outcome: Outcome::Busy }];
    let req = RequestFacts { attempts: &a, ..fresh(hel("2026-11-23T12:00")) };
    assert_eq!(
        decide(&cal, &rules(), &req),
        Decision::End { end: End::Unreachable, reason: Reason::NoTimeBeforeExpiry }
    );
    // Never dialled and past its expiry: expired, not unreachable.
    let p = plan(&cal, &fresh(hel("2026-11-23T12:00")));
    assert_eq!(at(&cal, &rules(), None, &p, hel("2026-11-25T08:00")), Now::Expire);
}

#[test]
fn network_failures_never_consume_the_patients_attempts() {
    let cal = helsinki();
    let fails: Vec<AttemptRecord> = (0..6)
        .map(|i| AttemptRecord {
            ended_at: hel("2026-11-23T10:00") + SignedDuration::from_mins(3 * i),
            outcome: if i % 2 == 0 { Outcome::NetworkFailure } else { Outcome::Interrupted },
        })
        .collect();
    let req = RequestFacts { attempts: &fails, ..fresh(hel("2026-11-23T10:00")) };
    let p = plan(&cal, &req);
    assert_eq!(p.counted, 0);
    assert_eq!(p.due, hel("2026-11-23T10:17"), "network_retry after the last failure");
}

#[test]
fn final_outcomes_end_the_request() {
    let cal = helsinki();
    for (outcome, end) in [
        (Outcome::Connected, End::Connected),
        (Outcome::InvalidNumber, End::Unreachable),
        (Outcome::Declined, End::Cancelled),
    ] {
        let a = [AttemptRecord { ended_at: hel("2026-11-23T10:01"), outcome }];
        let req = RequestFacts { attempts: &a, ..fresh(hel("2026-11-23T10:00")) };
        assert_eq!(
            decide(&cal, &rules(), &req),
            Decision::End { end, reason: Reason::FinalOutcome(outcome) }
        );
    }
}

#[test]
fn the_patients_window_bounds_due_time_and_deadline() {
    let cal = helsinki();
    let w = Some(r("12:00-14:00"));
    let req = RequestFacts { window: w, ..fresh(hel("2026-11-23T09:00")) };
    let p = plan(&cal, &req);
    assert_eq!(p.due, hel("2026-11-23T12:00"));
    assert_eq!(p.deadline, hel("2026-11-23T14:00"));
    // The closing margin applies to closing time, not to the end of a mid-day window.
    let req = RequestFacts { window: w, ..fresh(hel("2026-11-23T13:55")) };
    assert_eq!(plan(&cal, &req).due, hel("2026-11-23T13:55"));
    // Window already over today: tomorrow's window, and that is the deadline day.
    let req = RequestFacts { window: w, ..fresh(hel("2026-11-23T14:30")) };
    let p = plan(&cal, &req);
    assert_eq!(p.due, hel("2026-11-24T12:00"));
    assert_eq!(p.deadline, hel("2026-11-24T14:00"));
    // A retry that would leave the window moves to the next day's window.
    let a = [AttemptRecord { ended_at: hel("2026-11-23T13:40"), outcome: Outcome::Busy }];
    let req = RequestFacts { window: w, attempts: &a, ..fresh(hel("2026-11-23T12:00")) };
    assert_eq!(plan(&cal, &req).due, hel("2026-11-24T12:00"));
}

#[test]
fn a_window_crossing_closing_time_is_cut_at_closing() {
    let cal = helsinki();
    // Friday closes at 15:00; the window 14:00-16:00 leaves 14:00-14:50 to start in.
    let req = RequestFacts { window: Some(r("14:00-16:00")), ..fresh(hel("2026-11-27T14:45")) };
    let p = plan(&cal, &req);
    assert_eq!(p.due, hel("2026-11-27T14:45"));
    assert_eq!(p.deadline, hel("2026-11-27T15:00"));
    let req = RequestFacts { window: Some(r("14:00-16:00")), ..fresh(hel("2026-11-27T14:55")) };
    assert_eq!(plan(&cal, &req).due, hel("2026-11-30T14:00"));
}

#[test]
fn christmas_week() {
    let cal = helsinki();
    // Wed 2026-12-23 is a holiday eve (08-15); Dec 24-26 holidays; Dec 27 Sunday.
    let p = plan(&cal, &fresh(hel("2026-12-23T14:45")));
    assert_eq!(p.due, hel("2026-12-23T14:45"));
    assert_eq!(p.deadline, hel("2026-12-23T15:00"));
    assert_eq!(p.expires, hel("2026-12-28T16:00"), "the end of the next open day");
    // 14:55, after the eve's last start moment: owed contact on the next open day.
    let p = plan(&cal, &fresh(hel("2026-12-23T14:55")));
    assert_eq!(p.due, hel("2026-12-28T08:00"));
    assert_eq!(p.deadline, hel("2026-12-28T16:00"));
    assert_eq!(p.expires, hel("2026-12-29T16:00"));
    // Dec 31 (Thu) is the eve of New Year's Day; Jan 1 holiday, then the weekend.
    let p = plan(&cal, &fresh(hel("2026-12-31T15:30")));
    assert_eq!(p.due, hel("2027-01-04T08:00"));
    // Jan 5 (Tue) is the eve of Epiphany.
    let p = plan(&cal, &fresh(hel("2027-01-05T15:30")));
    assert_eq!(p.due, hel("2027-01-07T08:00"));
}

#[test]
fn midsummer_and_easter_weeks() {
    let cal = helsinki();
    // Thu 2026-06-18 is Midsummer Eve's eve: 08-15. Fri 19 and Sat 20 are holidays.
    let p = plan(&cal, &fresh(hel("2026-06-18T15:30")));
    assert_eq!(p.due, hel("2026-06-22T08:00"));
    assert_eq!(p.deadline, hel("2026-06-22T16:00"));
    // Maundy Thursday 2026-04-02 closes at 15; Good Friday to Easter Monday closed.
    let p = plan(&cal, &fresh(hel("2026-04-02T14:00")));
    assert_eq!(p.deadline, hel("2026-04-02T15:00"));
    let p = plan(&cal, &fresh(hel("2026-04-02T14:45")));
    assert_eq!(p.due, hel("2026-04-02T14:45"));
    assert_eq!(p.expires, hel("2026-04-07T16:00"));
    let p = plan(&cal, &fresh(hel("2026-04-02T14:55")));
    assert_eq!((p.due, p.deadline), (hel("2026-04-07T08:00"), hel("2026-04-07T16:00")));
    assert_eq!(p.expires, hel("2026-04-08T16:00"));
}

#[test]
fn dst_changes_keep_local_hours() {
    let cal = helsinki();
    // Spring forward on Sun 2026-03-29: Friday is UTC+2, Monday UTC+3.
    let p = plan(&cal, &fresh(hel("2026-03-27T20:00")));
    assert_eq!(p.due, "2026-03-30T05:00:00Z".parse::<Timestamp>().expect("ts"));
    assert_eq!(p.deadline, "2026-03-30T13:00:00Z".parse::<Timestamp>().expect("ts"));
    // Fall back on Sun 2026-10-25.
    let p = plan(&cal, &fresh(hel("2026-10-23T20:00")));
    assert_eq!(p.due, "2026-10-26T06:00:00Z".parse::<Timestamp>().expect("ts"));
    // Around the clock: the fall-back day is 25 hours long, the deadline its end.
    let p = plan(&always_open(), &fresh(hel("2026-10-25T00:30")));
    assert_eq!(p.deadline, hel("2026-10-26T00:00"));
    let rules0 = AttemptRules { last_call_before_close: SignedDuration::ZERO, ..rules() };
    let d = decide(&always_open(), &rules0, &fresh(hel("2026-03-29T03:30")));
    let Decision::Dial(p) = d else { panic!("{d:?}") };
    assert_eq!(p.due, hel("2026-03-29T03:30"), "03:30 is in the gap; it maps forward");
}

#[test]
fn expiry_zero_means_the_deadline() {
    let cal = helsinki();
    let rules0 = AttemptRules { expire_after_open_days: 0, ..rules() };
    let d = decide(&cal, &rules0, &fresh(hel("2026-11-23T10:00")));
    let Decision::Dial(p) = d else { panic!("{d:?}") };
    assert_eq!(p.expires, p.deadline);
    // Made after the last start moment of the day: an after-hours request, its deadline
    // (and so its expiry) the end of the next open day.
    let d = decide(&cal, &rules0, &fresh(hel("2026-11-23T15:55")));
    let Decision::Dial(p) = d else { panic!("{d:?}") };
    assert_eq!((p.due, p.expires), (hel("2026-11-24T08:00"), hel("2026-11-24T16:00")));
    // A window already over for today's last start moment: the same, on the window.
    let w = RequestFacts { window: Some(r("12:00-14:00")), ..fresh(hel("2026-11-23T14:30")) };
    let d = decide(&cal, &rules0, &w);
    let Decision::Dial(p) = d else { panic!("{d:?}") };
    assert_eq!((p.due, p.expires), (hel("2026-11-24T12:00"), hel("2026-11-24T14:00")));
}

#[test]
fn eta_walks_the_queue_through_opening_hours() {
    let cal = helsinki();
    let p = plan(&cal, &fresh(hel("2026-11-23T10:00")));
    let now = hel("2026-11-23T10:00");
    // 10 ahead at 20 an hour (3 min each), spread 0.5 × √10 × 3 min + 5 min ≈ 9.7 min:
    // from 60% of 30 min less it (10:08, floored to 10:00) to 90% of it plus it (10:36,
    // ceiled to 10:45).
    let e = eta(&cal, &rules(), None, &p, now, Ahead::due(10), 20.0).expect("eta");
    assert_eq!((e.from, e.to), (hel("2026-11-23T10:00"), hel("2026-11-23T10:45")));
    // 100 ahead: 5 h of work, spread 20 min; from 12:40 (floored to 12:30) to 14:50 (15:00).
    let e = eta(&cal, &rules(), None, &p, now, Ahead::due(100), 20.0).expect("eta");
    assert_eq!((e.from, e.to), (hel("2026-11-23T12:30"), hel("2026-11-23T15:00")));
    // 9 h of work: done only tomorrow, so the window is told tomorrow, never overnight.
    let e = eta(&cal, &rules(), None, &p, now, Ahead::due(180), 20.0).expect("eta");
    assert_eq!(e.from, hel("2026-11-24T08:00"));
    assert!(e.to > e.from && e.to <= hel("2026-11-24T16:00"), "{e:?}");
    // 20 h of work: done only after the request expires (Tuesday 16:00).
    assert_eq!(eta(&cal, &rules(), None, &p, now, Ahead::due(400), 20.0), None);
    assert_eq!(eta(&cal, &rules(), None, &p, now, Ahead::due(10), 0.0), None);
    assert_eq!(
        eta(&cal, &rules(), None, &p, now, Ahead::due(10_000), 20.0),
        None,
        "not before expiry"
    );
}

#[test]
fn retries_ahead_move_only_the_early_edge() {
    let cal = helsinki();
    let now = hel("2026-11-23T09:00");
    let p = plan(&cal, &fresh(now));
    let all_due = eta(&cal, &rules(), None, &p, now, Ahead::due(60), 30.0).expect("eta");
    let half = Ahead { all: 60, retrying: 30 };
    let retrying = eta(&cal, &rules(), None, &p, now, half, 30.0).expect("eta");
    assert!(retrying.from < all_due.from, "{retrying:?} {all_due:?}");
    assert_eq!(retrying.to, all_due.to, "every retry may come back ahead of the patient");
    let none_due = Ahead { all: 60, retrying: 60 };
    assert_eq!(eta(&cal, &rules(), None, &p, now, none_due, 30.0).map(|e| e.from), Some(now));
}

#[test]
fn the_window_widens_with_the_square_root_of_the_queue_not_beyond() {
    let cal = always_open();
    let now = hel("2026-11-23T00:00");
    let p = plan(&cal, &fresh(now));
    let width = |n: u32| {
        let e = eta(&cal, &rules(), None, &p, now, Ahead::due(n), 60.0).expect("eta");
        e.to.duration_since(e.from).as_secs_f64() / 60.0
    };
    // 0.3 × n min of work plus 2 × (0.5 √n + 5) min of spread, rounded to quarter hours.
    for n in [16u32, 64, 256] {
        let expected = 0.3 * f64::from(n) + 2.0 * (0.5 * f64::from(n).sqrt() + 5.0);
        assert!((width(n) - expected).abs() <= 30.0, "{n}: {} vs {expected}", width(n));
    }
    assert!(width(0) <= 15.0, "an empty queue: the next quarter hour");
}

#[test]
fn outcome_names_round_trip() {
    for o in Outcome::ALL {
        assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
    }
    assert!("voicemail".parse::<Outcome>().is_err());
}

/// Any instant in 2026-2027.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_767_225_600i64..1_830_297_600).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

fn window() -> impl Strategy<Value = Option<DayRange>> {
    prop_oneof![
        Just(None),
        Just(Some(r("08:00-10:00"))),
        Just(Some(r("12:00-14:00"))),
        Just(Some(r("14:00-16:00"))),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Busy),
        Just(Outcome::NoAnswer),
        Just(Outcome::NotConfirmed),
        Just(Outcome::NetworkFailure),
        Just(Outcome::Interrupted),
    ]
}

/// True when an attempt may start at `t`: open, at least the closing margin before the
/// end of the open interval, and inside the window.
fn startable(cal: &Calendar, window: Option<DayRange>, t: Timestamp) -> bool {
    let margin = rules().last_call_before_close;
    let Some((date, iv)) = cal.intervals_from(t, 2).find(|(_, iv)| iv.start <= t && t < iv.end)
    else {
        return false;
    };
    let in_window =
        window.is_none_or(|w| cal.range_on(date, w).is_some_and(|wi| wi.start <= t && t < wi.end));
    in_window && t + margin < iv.end
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn due_is_always_inside_hours_and_window(
        created in instant(),
        w in window(),
        steps in proptest::collection::vec((0i64..4000, outcome()), 0..4),
    ) {
        let cal = helsinki();
        let mut attempts = Vec::new();
        let mut t = created;
        for (gap_min, o) in steps {
            t += SignedDuration::from_mins(gap_min);
            attempts.push(AttemptRecord { ended_at: t, outcome: o });
        }
        let req = RequestFacts { created_at: created, window: w, attempts: &attempts };
        if let Decision::Dial(p) = decide(&cal, &rules(), &req) {
            prop_assert!(startable(&cal, w, p.due), "due {} not startable", p.due);
            prop_assert!(p.due >= created);
            prop_assert!(p.due < p.expires);
            prop_assert!(p.deadline <= p.expires);
            if let Some(last) = attempts.last() {
                prop_assert!(p.due >= last.ended_at);
            } else {
                // A new request is never born late: its first start moment lies before
                // its deadline, whenever it is made.
                prop_assert!(p.due < p.deadline, "due {} deadline {}", p.due, p.deadline);
                prop_assert!(!deadline_missed(&cal, &rules(), w, &p, created));
            }
        }
    }

    #[test]
    fn an_unchanged_request_never_gets_an_earlier_start(
        created in instant(),
        w in window(),
        a in 0i64..(3 * 24 * 60),
        b in 0i64..(3 * 24 * 60),
    ) {
        let cal = helsinki();
        let req = RequestFacts { created_at: created, window: w, attempts: &[] };
        let Decision::Dial(p) = decide(&cal, &rules(), &req) else { return Ok(()) };
        let (a, b) = (a.min(b), a.max(b));
        let start = |now: Timestamp| match at(&cal, &rules(), w, &p, now) {
            Now::Start => Some(now),
            Now::Wait(t) => Some(t),
            Now::Expire => None,
        };
        let t1 = created + SignedDuration::from_mins(a);
        let t2 = created + SignedDuration::from_mins(b);
        match (start(t1), start(t2)) {
            (Some(s1), Some(s2)) => {
                prop_assert!(s1 <= s2);
                prop_assert!(s1 >= p.due);
                prop_assert!(startable(&cal, w, s1));
            }
            (None, Some(_)) => prop_assert!(false, "expired, then startable again"),
            (_, None) => {}
        }
    }

    #[test]
    fn a_new_failed_attempt_never_brings_the_due_time_forward(
        created in instant(),
        w in window(),
        late_min in 0i64..600,
        o in outcome(),
    ) {
        let cal = helsinki();
        let req = RequestFacts { created_at: created, window: w, attempts: &[] };
        let Decision::Dial(p) = decide(&cal, &rules(), &req) else { return Ok(()) };
        let a = [AttemptRecord { ended_at: p.due + SignedDuration::from_mins(late_min), outcome: o }];
        let req2 = RequestFacts { attempts: &a, ..req };
        if let Decision::Dial(p2) = decide(&cal, &rules(), &req2) {
            prop_assert!(p2.due > p.due);
            prop_assert_eq!(p2.deadline, p.deadline);
            prop_assert_eq!(p2.expires, p.expires);
        }
    }
}
