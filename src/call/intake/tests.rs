//! Every phase × every event, and the scripted calls of the README's diagram.

use super::*;
use crate::number::NumberKind;

fn mobile_only() -> NumberPolicy {
    NumberPolicy { allow: vec![NumberKind::Mobile], foreign: Vec::new() }
}

fn windows() -> Vec<DayRange> {
    vec!["08:00-10:00".parse().expect("valid"), "12:00-14:00".parse().expect("valid")]
}

fn n(s: &str) -> E164 {
    NumberPolicy::default().check(s).expect("valid")
}

/// Runs `events` from the start; returns the phase and every action in order.
fn run(cx: Context<'_>, caller: Option<&str>, events: &[Event]) -> (Phase, Vec<Action>) {
    let (mut phase, mut all) = start(cx, caller);
    for e in events {
        let (p, a) = step(phase, cx, e.clone());
        phase = p;
        all.extend(a);
    }
    (phase, all)
}

fn keys(s: &str) -> Vec<Event> {
    s.chars().map(Event::Digit).collect()
}

fn stored_new() -> Event {
    Event::Stored(Told::New {
        eta: Some(Spoken { day: Day::Today, hour: 10, minute: 30 }),
        sms: true,
    })
}

fn stores(actions: &[Action]) -> Vec<(E164, Option<DayRange>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Store { number, window } => Some((number.clone(), *window)),
            Action::Play(_) | Action::Listen(_) | Action::Hangup => None,
        })
        .collect()
}

#[test]
fn happy_path_own_number_with_a_window() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w };
    let mut events = keys("1"); // this number
    events.extend(keys("2")); // 12-14
    let (phase, actions) = run(cx, Some("+358401234567"), &events);
    assert_eq!(
        phase,
        Phase::Storing { number: n("+358401234567"), window: Some(w[1]), caller_gone: false }
    );
    assert_eq!(stores(&actions), vec![(n("+358401234567"), Some(w[1]))]);
    // The number was read back nationally, digit by digit.
    assert!(
        matches!(&actions[0], Action::Play(words) if words.contains(&Word::Digits("0401234567".into())))
    );
    // The ETA only after the store answered, then BYE.
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Play(w) if w.iter().any(|x| matches!(x, Word::Eta(_)))))
    );
    let (phase, after) = step(phase, cx, stored_new());
    assert_eq!(phase, Phase::Done(End::Stored));
    assert_eq!(
        after,
        vec![
            Action::Play(vec![
                Word::Eta(Some(Spoken { day: Day::Today, hour: 10, minute: 30 })),
                Word::SmsFollows,
                Word::Goodbye
            ]),
            Action::Hangup
        ]
    );
}

#[test]
fn another_number_typed_with_hash_read_back_and_confirmed() {
    let policy = NumberPolicy::default();
    let cx = Context { numbers: &policy, windows: &[] };
    let mut events = keys("2");
    events.extend(keys("0451112223#"));
    let (phase, actions) = run(cx, Some("+358401234567"), &events);
    assert_eq!(phase, Phase::Confirm { number: n("+358451112223"), round: 1 });
    assert!(matches!(actions.last(), Some(Action::Listen(Wait::Answer))));
    let (phase, a) = step(phase, cx, Event::Digit('1'));
    // No windows: stored at once, for the first free time.
    assert_eq!(a, vec![Action::Store { number: n("+358451112223"), window: None }]);
    assert!(matches!(phase, Phase::Storing { .. }));
}

#[test]
fn anonymous_and_refused_callers_type_a_number() {
    let policy = mobile_only();
    let cx = Context { numbers: &policy, windows: &[] };
    for caller in [None, Some("anonymous"), Some(""), Some("+35893104500")] {
        let (phase, actions) = start(cx, caller);
        assert_eq!(phase, Phase::Entry { digits: String::new(), round: 1 }, "{caller:?}");
        let Action::Play(words) = &actions[0] else { panic!() };
        // A fixed-line caller where only mobiles are allowed hears why.
        assert_eq!(words.contains(&Word::Refused), caller == Some("+35893104500"), "{caller:?}");
        assert_eq!(actions[1], Action::Listen(Wait::Answer));
    }
}

#[test]
fn a_refused_typed_number_is_said_and_asked_again() {
    let policy = mobile_only();
    let cx = Context { numbers: &policy, windows: &[] };
    let (phase, actions) = run(cx, None, &keys("0600123456#"));
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 2 });
    assert_eq!(actions.last().cloned(), Some(Action::Listen(Wait::Answer)),);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Play(w) if w == &vec![Word::Refused, Word::EnterNumber]))
    );
    // Third refusal: the call ends with nothing stored.
    let mut more = keys("0600123456#");
    more.extend(keys("093104500#"));
    let (phase, actions) = run(cx, None, &[keys("0600123456#"), more].concat());
    assert_eq!(phase, Phase::Done(End::GaveUp));
    assert!(stores(&actions).is_empty());
    assert_eq!(actions.last(), Some(&Action::Hangup));
}

#[test]
fn timeouts_and_wrong_keys_repeat_twice_then_end_politely() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w };
    for bad in [Event::Timeout, Event::Digit('7')] {
        let (phase, actions) = run(cx, Some("+358401234567"), &[bad.clone(), bad.clone()]);
        assert_eq!(phase, Phase::Offer { number: n("+358401234567"), round: 3 });
        assert_eq!(actions.iter().filter(|a| matches!(a, Action::Listen(_))).count(), 3);
        let (phase, a) = step(phase, cx, bad);
        assert_eq!(phase, Phase::Done(End::GaveUp));
        assert_eq!(a, vec![Action::Play(vec![Word::NotStored]), Action::Hangup]);
    }
}

#[test]
fn hang_up_before_confirming_stores_nothing_after_stores() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w };
    // Before: offer, entry, confirm.
    for prefix in [vec![], keys("2"), keys("2045"), [keys("2"), keys("0451112223#")].concat()] {
        let (phase, actions) =
            run(cx, Some("+358401234567"), &[prefix.clone(), vec![Event::Hangup]].concat());
        assert_eq!(phase, Phase::Done(End::HungUp), "{prefix:?}");
        assert!(stores(&actions).is_empty());
    }
    // After confirming (choosing a window): stored for the first free time, nothing said.
    let (phase, actions) =
        run(cx, Some("+358401234567"), &[keys("1"), vec![Event::Hangup]].concat());
    assert_eq!(stores(&actions), vec![(n("+358401234567"), None)]);
    let (phase, a) = step(phase, cx, stored_new());
    assert_eq!((phase, a), (Phase::Done(End::Stored), vec![]));
    // While storing: the store completes, nothing is played.
    let (phase, _) = run(cx, Some("+358401234567"), &[keys("10"), vec![Event::Hangup]].concat());
    assert!(matches!(phase, Phase::Storing { caller_gone: true, .. }));
    assert_eq!(step(phase, cx, Event::StoreFailed), (Phase::Done(End::StoreFailed), vec![]));
}

#[test]
fn an_already_waiting_caller_hears_the_place() {
    let policy = NumberPolicy::default();
    let cx = Context { numbers: &policy, windows: &[] };
    let (phase, _) = run(cx, Some("+358401234567"), &keys("1"));
    let (phase, a) = step(phase, cx, Event::Stored(Told::Waiting { place: 3, eta: None }));
    assert_eq!(phase, Phase::Done(End::AlreadyWaiting));
    assert_eq!(a[0], Action::Play(vec![Word::Waiting(3), Word::Eta(None), Word::Goodbye]));
}

#[test]
fn star_restarts_typing_and_too_many_digits_is_refused() {
    let policy = NumberPolicy::default();
    let cx = Context { numbers: &policy, windows: &[] };
    let (phase, _) = run(cx, None, &keys("0409*"));
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 1 });
    let (phase, _) = run(cx, None, &keys("0123456789012345"));
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 2 });
    // `#` alone is a wrong key.
    let (phase, _) = run(cx, None, &keys("#"));
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 2 });
}

#[test]
fn window_keys_beyond_the_offer_are_wrong() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w };
    let (phase, _) = run(cx, Some("+358401234567"), &keys("13"));
    assert_eq!(phase, Phase::Window { number: n("+358401234567"), round: 2 });
    let (_, a) = run(cx, Some("+358401234567"), &keys("10"));
    assert_eq!(stores(&a), vec![(n("+358401234567"), None)]);
}

fn all_phases() -> Vec<Phase> {
    let num = n("+358401234567");
    let mut out = Vec::new();
    for round in 1..=MAX_ROUNDS {
        out.push(Phase::Offer { number: num.clone(), round });
        out.push(Phase::Entry { digits: String::new(), round });
        out.push(Phase::Entry { digits: "040".into(), round });
        out.push(Phase::Entry { digits: "0".repeat(MAX_DIGITS), round });
        out.push(Phase::Confirm { number: num.clone(), round });
        out.push(Phase::Window { number: num.clone(), round });
    }
    for caller_gone in [false, true] {
        out.push(Phase::Storing { number: num.clone(), window: None, caller_gone });
    }
    for end in [End::Stored, End::AlreadyWaiting, End::HungUp, End::GaveUp, End::StoreFailed] {
        out.push(Phase::Done(end));
    }
    out
}

fn all_events() -> Vec<Event> {
    let mut out: Vec<Event> = "0123456789*#".chars().map(Event::Digit).collect();
    out.extend([
        Event::Timeout,
        Event::Hangup,
        stored_new(),
        Event::Stored(Told::Waiting { place: 2, eta: None }),
        Event::StoreFailed,
    ]);
    out
}

/// Every phase × every event: the invariants every transition keeps.
#[test]
fn every_phase_takes_every_event() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w };
    for phase in all_phases() {
        for event in all_events() {
            let (next, actions) = step(phase.clone(), cx, event.clone());
            let case = format!("{phase:?} × {event:?} → {next:?} {actions:?}");
            // Done absorbs everything.
            if let Phase::Done(_) = phase {
                assert_eq!((&next, actions.len()), (&phase, 0), "{case}");
                continue;
            }
            // Rounds never pass the limit.
            match &next {
                Phase::Offer { round, .. }
                | Phase::Entry { round, .. }
                | Phase::Confirm { round, .. }
                | Phase::Window { round, .. } => assert!(*round <= MAX_ROUNDS, "{case}"),
                Phase::Storing { .. } | Phase::Done(_) => {}
            }
            // A store is asked for only with a confirmed number, exactly when entering Storing.
            let asked = stores(&actions).len();
            let entered =
                matches!(next, Phase::Storing { .. }) && !matches!(phase, Phase::Storing { .. });
            assert_eq!(asked, usize::from(entered), "{case}");
            if entered {
                assert!(
                    matches!(
                        phase,
                        Phase::Offer { .. } | Phase::Confirm { .. } | Phase::Window { .. }
                    ),
                    "{case}"
                );
            }
            // Nothing is stored after a hang-up before confirming.
            if event == Event::Hangup
                && matches!(
                    phase,
                    Phase::Offer { .. } | Phase::Entry { .. } | Phase::Confirm { .. }
                )
            {
                assert_eq!((&next, actions.len()), (&Phase::Done(End::HungUp), 0), "{case}");
            }
            // A live phase always listens next; a finished call with the caller still there
            // hangs up; nothing is said to a caller who is gone.
            match &next {
                Phase::Offer { .. }
                | Phase::Entry { .. }
                | Phase::Confirm { .. }
                | Phase::Window { .. } => {
                    // Only the store's (impossible here) answers are ignored.
                    let ignored = matches!(event, Event::Stored(_) | Event::StoreFailed);
                    assert_eq!(actions.is_empty(), ignored, "{case}");
                    if ignored {
                        assert_eq!(next, phase, "{case}");
                    } else {
                        assert!(matches!(actions.last(), Some(Action::Listen(_))), "{case}");
                    }
                }
                Phase::Done(End::HungUp) => assert!(actions.is_empty(), "{case}"),
                Phase::Done(_) => {
                    let gone = matches!(phase, Phase::Storing { caller_gone: true, .. });
                    assert_eq!(actions.last() == Some(&Action::Hangup), !gone, "{case}");
                    assert_eq!(actions.is_empty(), gone, "{case}");
                }
                Phase::Storing { .. } => {
                    assert!(
                        !actions.iter().any(|a| matches!(a, Action::Listen(_) | Action::Hangup)),
                        "{case}"
                    );
                }
            }
            // The ETA is said only on the store's answer.
            let says_eta = actions.iter().any(
                |a| matches!(a, Action::Play(w) if w.iter().any(|x| matches!(x, Word::Eta(_)))),
            );
            assert_eq!(
                says_eta,
                matches!(event, Event::Stored(_))
                    && matches!(phase, Phase::Storing { caller_gone: false, .. }),
                "{case}"
            );
        }
    }
}

#[test]
fn words_become_prompt_stems() {
    let range: DayRange = "08:00-10:30".parse().expect("valid");
    let s = stems(
        &[
            Word::Greeting,
            Word::Digits("045".into()),
            Word::WindowOption { key: 1, range },
            Word::Eta(Some(Spoken { day: Day::Tomorrow, hour: 10, minute: 35 })),
            Word::Waiting(21),
        ],
        "intake-greeting-kallio",
    );
    assert_eq!(
        s,
        [
            "intake-greeting-kallio",
            "num-0",
            "num-4",
            "num-5",
            "intake-press",
            "num-1",
            "at",
            "num-8",
            "intake-until",
            "num-10",
            "num-30",
            "intake-eta-tomorrow",
            "at",
            "num-10",
            "num-30",
            "num-5",
            "intake-waiting",
            "intake-place",
            "num-20",
            "num-1",
        ]
    );
    // Every fixed stem a word can produce is in PROMPTS (checked by `callbackd check`).
    let every = [
        Word::YourNumber,
        Word::ThisOrOther,
        Word::EnterNumber,
        Word::YouTyped,
        Word::ConfirmNumber,
        Word::Refused,
        Word::Windows,
        Word::FirstFree,
        Word::Eta(None),
        Word::Eta(Some(Spoken { day: Day::Today, hour: 9, minute: 0 })),
        Word::Eta(Some(Spoken { day: Day::Later, hour: 9, minute: 0 })),
        Word::SmsFollows,
        Word::Waiting(1),
        Word::Goodbye,
        Word::NotStored,
    ];
    for stem in stems(&every, "g") {
        assert!(
            PROMPTS.contains(&stem.as_str()) || crate::media::TIME_WORDS.contains(&stem.as_str()),
            "{stem}"
        );
    }
}

#[test]
fn spoken_eta_rounds_to_five_minutes_and_names_the_day() {
    let tz = TimeZone::get("Europe/Helsinki").expect("valid");
    let now: Timestamp = "2026-11-30T08:00:00Z".parse().expect("valid"); // 10:00 local
    let eta =
        |from: &str| Eta { from: from.parse().expect("valid"), to: from.parse().expect("valid") };
    assert_eq!(
        spoken(&eta("2026-11-30T08:32:00Z"), &tz, now),
        Spoken { day: Day::Today, hour: 10, minute: 30 }
    );
    assert_eq!(
        spoken(&eta("2026-11-30T21:58:00Z"), &tz, now),
        Spoken { day: Day::Tomorrow, hour: 0, minute: 0 }
    );
    assert_eq!(spoken(&eta("2026-12-02T06:03:00Z"), &tz, now).day, Day::Later);
}
