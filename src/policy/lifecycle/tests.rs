//! Lifecycle tests: each transition of the diagram, then properties over every state and
//! event.

use super::*;
use crate::calendar::{Calendar, DayRange, HolidayCalendar, Hours};
use crate::number::E164;
use crate::policy::AttemptRules;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn tz() -> TimeZone {
    TimeZone::get("Europe/Helsinki").expect("zone")
}

fn hel(s: &str) -> Timestamp {
    s.parse::<DateTime>().expect("datetime").to_zoned(tz()).expect("zoned").timestamp()
}

/// Mon–Fri 08–16, closed at weekends and on Finnish holidays.
fn weekdays() -> Calendar {
    let day = vec!["08:00-16:00".parse::<DayRange>().expect("range")];
    Calendar::new(
        Hours {
            weekly: [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]],
            eve: None,
            holiday: vec![],
            holidays: HolidayCalendar::Fi,
            closed: BTreeSet::new(),
            special: BTreeMap::new(),
        },
        tz(),
    )
}

struct Fixture {
    cal: Calendar,
    attempts: AttemptRules,
}

impl Fixture {
    fn new() -> Self {
        Fixture { cal: weekdays(), attempts: AttemptRules::default() }
    }
    fn rules(&self, survey: bool) -> Rules<'_> {
        Rules {
            calendar: &self.cal,
            attempts: &self.attempts,
            survey: survey.then_some(Survey {
                delay: SignedDuration::from_hours(1),
                period: SignedDuration::from_hours(24 * 30),
            }),
            next_open_day: true,
        }
    }
}

/// A request made Monday 23 Nov 2026 09:00: deadline 16:00, expiry Tuesday 16:00.
fn facts(state: State, attempts: &[AttemptRecord]) -> Facts<'_> {
    Facts {
        id: 7,
        state,
        created_at: hel("2026-11-23T09:00"),
        window: None,
        due: state.is_waiting().then(|| hel("2026-11-23T09:00")),
        deadline: hel("2026-11-23T16:00"),
        expires: hel("2026-11-24T16:00"),
        counted: 0,
        cancel_requested: false,
        deadline_missed: false,
        sms_consent: true,
        attempts,
    }
}

fn ended(outcome: Outcome) -> Event<'static> {
    Event::Ended { seq: 1, outcome }
}

#[test]
fn a_due_request_is_claimed_in_the_hours() {
    let f = Fixture::new();
    let t = step(
        Some(&f.rules(false)),
        &facts(State::Pending, &[]),
        Event::Serve,
        hel("2026-11-23T09:00"),
    )
    .expect("serve");
    assert_eq!((t.from, t.to, t.due), (State::Pending, State::Dialing, None));
    assert!(t.sms.is_empty() && t.attempt.is_none());
}

#[test]
fn a_request_not_yet_startable_is_moved_not_claimed() {
    let f = Fixture::new();
    // Saturday: the next start is Monday 08:00.
    let mut fa = facts(State::RetryWait, &[]);
    fa.expires = hel("2026-12-01T16:00");
    let t = step(Some(&f.rules(false)), &fa, Event::Serve, hel("2026-11-28T10:00")).expect("serve");
    assert_eq!((t.to, t.due), (State::RetryWait, Some(hel("2026-11-30T08:00"))));
    assert_eq!(t.audit.expect("audit").detail, "replanned");
}

#[test]
fn a_request_with_no_opening_left_ends_with_the_unreachable_sms() {
    let f = Fixture::new();
    let mut fa = facts(State::RetryWait, &[]);
    fa.counted = 1;
    let t = step(Some(&f.rules(false)), &fa, Event::Serve, hel("2026-11-24T15:55")).expect("serve");
    assert_eq!(t.to, State::Unreachable, "it was tried");
    assert_eq!(t.end_reason.as_deref(), Some("no opening left before the expiry"));
    assert_eq!(t.sms.len(), 1);
    assert_eq!(t.sms[0].kind, Kind::Unreachable);
    let fa = facts(State::Pending, &[]);
    let t =
        step(Some(&f.rules(false)), &fa, Event::Expire, hel("2026-11-24T16:00")).expect("expire");
    assert_eq!(t.to, State::Expired, "never tried");
    assert_eq!(t.audit.expect("audit").detail, "replanned: expired before it could be served");
    let early = step(None, &fa, Event::Expire, hel("2026-11-24T15:59"));
    assert_eq!(early, Err(Refused { state: State::Pending, event: "expire" }));
}

#[test]
fn busy_waits_the_pause_and_counts() {
    let f = Fixture::new();
    let now = hel("2026-11-23T10:00");
    let t = step(Some(&f.rules(false)), &facts(State::Dialing, &[]), ended(Outcome::Busy), now)
        .expect("ended");
    assert_eq!(t.to, State::RetryWait);
    assert_eq!(t.due, Some(hel("2026-11-23T10:30")));
    assert_eq!(t.counted, 1);
    assert_eq!(t.attempt, Some(AttemptEnd { outcome: Outcome::Busy, counted: true }));
    let a = t.audit.expect("audit");
    assert_eq!((a.actor.as_str(), a.detail.as_str()), ("dialer", "attempt 1 busy"));
}

#[test]
fn the_last_counted_attempt_ends_unreachable_with_the_sms() {
    let f = Fixture::new();
    let before = [AttemptRecord { ended_at: hel("2026-11-23T09:01"), outcome: Outcome::NoAnswer }];
    let mut fa = facts(State::Dialing, &before);
    fa.counted = 1;
    let t = step(
        Some(&f.rules(true)),
        &fa,
        Event::Ended { seq: 2, outcome: Outcome::Busy },
        hel("2026-11-23T09:45"),
    )
    .expect("ended");
    assert_eq!((t.to, t.counted), (State::Unreachable, 2));
    assert_eq!(t.end_reason.as_deref(), Some("all 2 attempts were used"));
    assert_eq!(t.sms.iter().map(|s| s.kind).collect::<Vec<_>>(), [Kind::Unreachable]);
}

#[test]
fn connected_ends_with_the_survey_when_the_service_sends_one() {
    let f = Fixture::new();
    let now = hel("2026-11-23T10:00");
    let fa = facts(State::Dialing, &[]);
    let t = step(Some(&f.rules(true)), &fa, ended(Outcome::Connected), now).expect("ended");
    assert_eq!(t.to, State::Connected);
    assert_eq!(t.sms.len(), 1);
    assert_eq!(t.sms[0].kind, Kind::Feedback);
    assert_eq!(t.sms[0].not_before, hel("2026-11-23T11:00"));
    let t = step(Some(&f.rules(false)), &fa, ended(Outcome::Connected), now).expect("ended");
    assert!(t.sms.is_empty());
}

#[test]
fn final_outcomes_end_the_request() {
    let f = Fixture::new();
    let now = hel("2026-11-23T10:00");
    let fa = facts(State::Dialing, &[]);
    for (outcome, to) in [
        (Outcome::InvalidNumber, State::Unreachable),
        (Outcome::Declined, State::Cancelled),
        (Outcome::Connected, State::Connected),
    ] {
        let t = step(Some(&f.rules(false)), &fa, ended(outcome), now).expect("ended");
        assert_eq!(t.to, to, "{outcome}");
        assert!(t.due.is_none());
    }
}

#[test]
fn cancel_ends_a_waiting_request_and_flags_a_dialling_one() {
    let now = hel("2026-11-23T10:00");
    let t = step(None, &facts(State::Pending, &[]), Event::Cancel { actor: "api" }, now);
    assert_eq!(Cancelled::of(&t), Cancelled::Now);
    let t = t.expect("cancel");
    assert_eq!((t.to, t.end_reason.as_deref()), (State::Cancelled, Some("cancelled by api")));
    let t = step(None, &facts(State::Dialing, &[]), Event::Cancel { actor: "cli" }, now);
    assert_eq!(Cancelled::of(&t), Cancelled::AfterLiveAttempt);
    let t = t.expect("cancel");
    assert_eq!((t.to, t.cancel_requested), (State::Dialing, true));
    assert_eq!(t.audit.expect("audit").detail, "cancel requested");
    let t = step(None, &facts(State::Connected, &[]), Event::Cancel { actor: "api" }, now);
    assert_eq!(Cancelled::of(&t), Cancelled::AlreadyFinal(State::Connected));
}

#[test]
fn an_attempt_ending_after_a_cancel_is_not_retried() {
    let f = Fixture::new();
    let mut fa = facts(State::Dialing, &[]);
    fa.cancel_requested = true;
    let now = hel("2026-11-23T10:00");
    let t = step(Some(&f.rules(false)), &fa, ended(Outcome::Busy), now).expect("ended");
    assert_eq!(t.to, State::Cancelled);
    assert_eq!(t.end_reason.as_deref(), Some("cancelled during a live attempt"));
    assert_eq!(t.attempt.map(|a| a.outcome), Some(Outcome::Busy), "the outcome is still kept");
    // A final outcome wins over the cancel.
    let t = step(Some(&f.rules(false)), &fa, ended(Outcome::Connected), now).expect("ended");
    assert_eq!(t.to, State::Connected);
}

#[test]
fn an_orphaned_attempt_that_was_answered_is_never_dialled_again() {
    let f = Fixture::new();
    let now = hel("2026-11-23T10:05");
    let fa = facts(State::Dialing, &[]);
    let event = Event::Orphaned { seq: 1, answered: true, why: Orphan::Restart };
    let t = step(Some(&f.rules(true)), &fa, event, now).expect("recover");
    assert_eq!(t.to, State::Connected);
    assert_eq!(t.attempt, Some(AttemptEnd { outcome: Outcome::Connected, counted: false }));
    let a = t.audit.expect("audit");
    assert_eq!(a.actor, "recovery");
    assert!(a.detail.contains("answered, outcome unknown"), "{}", a.detail);
    assert!(t.sms.is_empty(), "no survey for an unknown outcome");
}

#[test]
fn an_orphaned_attempt_not_answered_is_retried_without_counting() {
    let f = Fixture::new();
    let now = hel("2026-11-23T10:05");
    let fa = facts(State::Dialing, &[]);
    let event = Event::Orphaned { seq: 1, answered: false, why: Orphan::LeaseExpired };
    let t = step(Some(&f.rules(false)), &fa, event, now).expect("recover");
    assert_eq!((t.to, t.due, t.counted), (State::RetryWait, Some(hel("2026-11-23T10:07")), 0));
    assert_eq!(t.attempt.map(|a| a.outcome), Some(Outcome::Interrupted));
    // Without its dialplan it waits, due at once, until the service is back.
    let t = step(None, &fa, event, now).expect("recover");
    assert_eq!((t.to, t.due), (State::RetryWait, Some(now)));
}

#[test]
fn the_deadline_flag_is_set_once_after_the_deadline() {
    let fa = facts(State::Pending, &[]);
    assert!(step(None, &fa, Event::DeadlinePassed, hel("2026-11-23T15:59")).is_err());
    let t = step(None, &fa, Event::DeadlinePassed, hel("2026-11-23T16:00")).expect("missed");
    assert!(t.deadline_missed && t.audit.is_none() && t.to == State::Pending);
    let flagged = Facts { deadline_missed: true, ..fa };
    assert!(step(None, &flagged, Event::DeadlinePassed, hel("2026-11-23T17:00")).is_err());
}

#[test]
fn sms_fate_follows_consent_numbers_and_the_opt_out() {
    let mobile = E164::from_stored("+358401234567".to_owned());
    let fixed = E164::from_stored("+358931045501".to_owned());
    let intent = |kind| SmsIntent {
        kind,
        key: "k".to_owned(),
        not_before: hel("2026-11-23T10:00"),
        once_per: None,
    };
    let base = SmsFacts {
        number: Some(&mobile),
        consent: true,
        exists: false,
        opted_out: false,
        surveyed_recently: false,
    };
    assert_eq!(sms_fate(&intent(Kind::Notice), &base), SmsFate::Queue);
    assert_eq!(sms_fate(&intent(Kind::Notice), &SmsFacts { exists: true, ..base }), SmsFate::Drop);
    assert_eq!(
        sms_fate(&intent(Kind::Unreachable), &SmsFacts { number: None, ..base }),
        SmsFate::Skip("number erased")
    );
    assert!(matches!(
        sms_fate(&intent(Kind::Unreachable), &SmsFacts { number: Some(&fixed), ..base }),
        SmsFate::Skip(_)
    ));
    let survey = intent(Kind::Feedback);
    assert_eq!(sms_fate(&survey, &base), SmsFate::Queue);
    assert_eq!(sms_fate(&survey, &SmsFacts { consent: false, ..base }), SmsFate::Drop);
    assert_eq!(sms_fate(&survey, &SmsFacts { surveyed_recently: true, ..base }), SmsFate::Drop);
    assert_eq!(
        sms_fate(&survey, &SmsFacts { opted_out: true, ..base }),
        SmsFate::Skip("opted out of surveys")
    );
    // Notices need no consent of their own (intake asked for them).
    assert_eq!(
        sms_fate(&intent(Kind::Notice), &SmsFacts { consent: false, ..base }),
        SmsFate::Queue
    );
}

fn any_state() -> impl Strategy<Value = State> {
    proptest::sample::select(State::ALL.to_vec())
}

fn any_outcome() -> impl Strategy<Value = Outcome> {
    proptest::sample::select(Outcome::ALL.to_vec())
}

fn any_event() -> impl Strategy<Value = Event<'static>> {
    prop_oneof![
        Just(Event::Serve),
        any_outcome().prop_map(|outcome| Event::Ended { seq: 3, outcome }),
        (any::<bool>(), any::<bool>()).prop_map(|(answered, lease)| Event::Orphaned {
            seq: 3,
            answered,
            why: if lease { Orphan::LeaseExpired } else { Orphan::Restart },
        }),
        Just(Event::Cancel { actor: "api" }),
        Just(Event::Expire),
        Just(Event::DeadlinePassed),
        proptest::sample::select(vec![None, Some("08:00-10:00"), Some("14:00-16:00")]).prop_map(
            |w| Event::Window { actor: "web", window: w.map(|w| w.parse().expect("range")) }
        ),
        Just(Event::NextOpenDay { actor: "web" }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever happens: a final request stays final, due times exist exactly in waiting
    /// states, counted attempts never go down, only attempt events write an outcome, a
    /// cancelled-while-dialling request is never retried, and an answered attempt is never
    /// followed by another one.
    #[test]
    fn every_transition_keeps_the_invariants(
        state in any_state(),
        event in any_event(),
        minutes in 0i64..(60 * 24 * 4),
        counted in 0u8..2,
        cancel_requested in any::<bool>(),
        deadline_missed in any::<bool>(),
        with_rules in any::<bool>(),
        survey in any::<bool>(),
        earlier in proptest::collection::vec(any_outcome(), 0..2),
    ) {
        let f = Fixture::new();
        let rules = f.rules(survey);
        let rules = with_rules.then_some(&rules);
        let records: Vec<AttemptRecord> = earlier
            .iter()
            .map(|o| AttemptRecord { ended_at: hel("2026-11-23T09:05"), outcome: *o })
            .collect();
        let fa = Facts {
            counted,
            cancel_requested: cancel_requested && state == State::Dialing,
            deadline_missed,
            ..facts(state, &records)
        };
        let now = hel("2026-11-23T09:00") + SignedDuration::from_mins(minutes);
        let Ok(t) = step(rules, &fa, event, now) else { return Ok(()) };
        prop_assert_eq!(t.from, state);
        if state.is_final() {
            prop_assert_eq!(t.to, state, "a final request stays final");
        }
        if t.to.is_waiting() {
            prop_assert!(t.due.is_some(), "waiting without a due time: {:?}", t);
        } else {
            prop_assert!(t.due.is_none(), "due time outside waiting: {:?}", t);
        }
        if t.to.is_final() {
            prop_assert!(t.end_reason.is_some() || state.is_final());
        }
        prop_assert!(t.counted >= fa.counted || state != State::Dialing || t.attempt.is_some());
        match event {
            Event::Ended { .. } | Event::Orphaned { .. } => prop_assert!(t.attempt.is_some()),
            Event::Serve
            | Event::Cancel { .. }
            | Event::Expire
            | Event::DeadlinePassed
            | Event::Window { .. }
            | Event::NextOpenDay { .. } => {
                prop_assert!(t.attempt.is_none());
            }
        }
        if fa.cancel_requested && t.attempt.is_some() {
            prop_assert!(t.to != State::RetryWait, "retried after a cancel: {:?}", t);
        }
        if let Event::Orphaned { answered: true, .. } = event {
            prop_assert!(!t.to.is_waiting() && t.to != State::Dialing, "re-dialled: {:?}", t);
        }
        if t.to != t.from || t.attempt.is_some() {
            prop_assert!(t.audit.is_some(), "no audit row: {:?}", t);
        }
        if let Event::Window { window, .. } = event {
            prop_assert_eq!(t.to, state, "a window change keeps the state");
            let r = t.replan.expect("a window change writes the window");
            prop_assert_eq!(r.window, window);
            prop_assert!(t.due.is_some_and(|d| d >= now && d < fa.expires), "{:?}", t);
            prop_assert!(t.audit.is_some());
        } else if let Event::NextOpenDay { .. } = event {
            prop_assert_eq!(t.to, state, "moving to the next open day keeps the state");
            let r = t.replan.expect("the next open day writes its deadline");
            prop_assert_eq!(r.window, fa.window, "and keeps the window");
            let due = t.due.expect("due");
            prop_assert!(due > now && due < fa.expires, "{:?}", t);
            prop_assert!(f.cal.local_date(due) > f.cal.local_date(now), "{:?}", t);
            prop_assert!(r.deadline > due, "{:?}", t);
            prop_assert!(t.audit.is_some());
        } else {
            prop_assert!(t.replan.is_none());
        }
        for sms in &t.sms {
            prop_assert!(t.ends(), "SMS without an end: {:?}", t);
            prop_assert!(sms.kind != Kind::Notice);
        }
    }

    /// The serving order is a total order that puts the earlier deadline first, then the
    /// older request, then the lower id.
    #[test]
    fn the_serving_order_is_deadline_then_age_then_id(
        a in (0i64..5, 0i64..5, 0i64..5),
        b in (0i64..5, 0i64..5, 0i64..5),
    ) {
        let t = |m: i64| hel("2026-11-23T08:00") + SignedDuration::from_mins(m);
        let ka = ServingKey { deadline: t(a.0), created_at: t(a.1), id: a.2 };
        let kb = ServingKey { deadline: t(b.0), created_at: t(b.1), id: b.2 };
        prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
    }
}

#[test]
fn intake_enters_pending_with_its_audit_row_and_the_notice_when_consented() {
    let now = hel("2026-11-23T09:00");
    let plan = Plan {
        due: hel("2026-11-23T09:30"),
        deadline: hel("2026-11-23T16:00"),
        expires: hel("2026-11-24T16:00"),
        counted: 0,
    };
    let with = intake(&plan, "ivr", true, now);
    assert_eq!(with.to, State::Pending);
    assert_eq!(with.due, plan.due);
    assert_eq!(with.audit, Audit { actor: "ivr".into(), detail: String::new() });
    assert_eq!(
        with.sms,
        vec![SmsIntent {
            kind: Kind::Notice,
            key: "notice".into(),
            not_before: now,
            once_per: None
        }]
    );
    let without = intake(&plan, "api", false, now);
    assert!(without.sms.is_empty(), "no notice without consent or a notice template");
    assert_eq!(without.audit.actor, "api");
}

fn range(s: &str) -> DayRange {
    s.parse().expect("range")
}

#[test]
fn a_waiting_patient_may_move_to_a_window_that_can_still_be_served() {
    let f = Fixture::new();
    let rules = f.rules(false);
    let fa = facts(State::Pending, &[]);
    let now = hel("2026-11-23T09:00");
    // Later today: due at 14:00, the deadline moves to the window's end.
    let t = step(
        Some(&rules),
        &fa,
        Event::Window { actor: "web", window: Some(range("14:00-16:00")) },
        now,
    )
    .expect("served today");
    assert_eq!(t.to, State::Pending);
    assert_eq!(t.due, Some(hel("2026-11-23T14:00")));
    assert_eq!(
        t.replan,
        Some(Replan { window: Some(range("14:00-16:00")), deadline: hel("2026-11-23T16:00") })
    );
    assert_eq!(t.audit, Some(Audit { actor: "web".into(), detail: "window 14:00-16:00".into() }));
    // A morning window that has passed today: tomorrow morning, before the expiry.
    let t = step(
        Some(&rules),
        &fa,
        Event::Window { actor: "web", window: Some(range("08:00-09:00")) },
        now,
    )
    .expect("tomorrow");
    assert_eq!(t.due, Some(hel("2026-11-24T08:00")));
    // Any time again: due now.
    let t =
        step(Some(&rules), &fa, Event::Window { actor: "web", window: None }, now).expect("now");
    assert_eq!(t.due, Some(now));
    // At Tuesday 10:00 the morning window cannot come before the expiry (Tuesday 16:00):
    // refused, and not offered.
    let late = hel("2026-11-24T10:00");
    let e = Event::Window { actor: "web", window: Some(range("08:00-09:00")) };
    assert!(step(Some(&rules), &fa, e, late).is_err());
    assert_eq!(replan(&rules, &fa, Some(range("08:00-09:00")), late), None);
    assert!(replan(&rules, &fa, Some(range("14:00-16:00")), late).is_some());
    // Not while dialling, not after the end, not without a dialplan.
    for state in [State::Dialing, State::Connected, State::Cancelled] {
        assert!(step(Some(&rules), &facts(state, &[]), e, now).is_err(), "{state:?}");
    }
    assert!(step(None, &fa, e, now).is_err());
}

#[test]
fn a_waiting_patient_may_ask_for_the_next_open_day_where_the_service_allows_it() {
    let f = Fixture::new();
    let rules = f.rules(false);
    let fa = facts(State::Pending, &[]);
    let e = Event::NextOpenDay { actor: "web" };
    // Monday 09:00, due now: moves to Tuesday's opening, the deadline to Tuesday's close.
    let now = hel("2026-11-23T09:00");
    let t = step(Some(&rules), &fa, e, now).expect("allowed");
    assert_eq!(t.to, State::Pending);
    assert_eq!(t.due, Some(hel("2026-11-24T08:00")));
    assert_eq!(t.replan, Some(Replan { window: None, deadline: hel("2026-11-24T16:00") }));
    assert_eq!(
        t.audit,
        Some(Audit { actor: "web".into(), detail: "next open day 2026-11-24".into() })
    );
    assert_eq!(
        next_day(&rules, &fa, now).map(|p| p.due),
        t.due,
        "the page offers what step writes"
    );
    // The patient's window is kept: its start on the next open day.
    let morning = Facts { window: Some(range("14:00-16:00")), ..fa };
    let t = step(Some(&rules), &morning, e, now).expect("allowed");
    assert_eq!(t.due, Some(hel("2026-11-24T14:00")));
    assert_eq!(t.replan.map(|r| r.window), Some(Some(range("14:00-16:00"))));
    // Friday: the next open day is Monday (the weekend is closed).
    let friday = Facts {
        created_at: hel("2026-11-27T09:00"),
        due: Some(hel("2026-11-27T09:00")),
        deadline: hel("2026-11-27T16:00"),
        expires: hel("2026-11-30T16:00"),
        ..fa
    };
    let t = step(Some(&rules), &friday, e, hel("2026-11-27T10:00")).expect("allowed");
    assert_eq!(t.due, Some(hel("2026-11-30T08:00")));
    // Already on its last day (Tuesday, expiring at 16:00): no next open day before expiry.
    let late = hel("2026-11-24T10:00");
    assert!(step(Some(&rules), &fa, e, late).is_err());
    assert_eq!(next_day(&rules, &fa, late), None);
    // Already due on the next open day: nothing to move.
    let moved = Facts { due: Some(hel("2026-11-24T08:00")), ..fa };
    assert_eq!(next_day(&rules, &moved, now), None);
    // Not where the dialplan does not allow it, not while dialling or after the end, not
    // without a dialplan.
    let off = Rules { next_open_day: false, ..rules };
    assert!(step(Some(&off), &fa, e, now).is_err());
    assert_eq!(next_day(&off, &fa, now), None);
    for state in [State::Dialing, State::Connected, State::Cancelled] {
        assert!(step(Some(&rules), &facts(state, &[]), e, now).is_err(), "{state:?}");
    }
    assert!(step(None, &fa, e, now).is_err());
}
