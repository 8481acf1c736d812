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
            Action::Speak(_) | Action::Play(_) | Action::Listen(_) | Action::Hangup => None,
        })
        .collect()
}

#[test]
fn happy_path_own_number_with_a_window() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w, language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &[], language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &[], language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &[], language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &w, language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &w, language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &[], language: Lang::Fi, choices: &[] };
    let (phase, _) = run(cx, Some("+358401234567"), &keys("1"));
    let (phase, a) = step(phase, cx, Event::Stored(Told::Waiting { place: 3, eta: None }));
    assert_eq!(phase, Phase::Done(End::AlreadyWaiting));
    assert_eq!(a[0], Action::Play(vec![Word::Waiting(3), Word::Eta(None), Word::Goodbye]));
}

#[test]
fn star_restarts_typing_and_too_many_digits_is_refused() {
    let policy = NumberPolicy::default();
    let cx = Context { numbers: &policy, windows: &[], language: Lang::Fi, choices: &[] };
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
    let cx = Context { numbers: &policy, windows: &w, language: Lang::Fi, choices: &[] };
    let (phase, _) = run(cx, Some("+358401234567"), &keys("13"));
    assert_eq!(phase, Phase::Window { number: n("+358401234567"), round: 2 });
    let (_, a) = run(cx, Some("+358401234567"), &keys("10"));
    assert_eq!(stores(&a), vec![(n("+358401234567"), None)]);
}

fn all_phases() -> Vec<Phase> {
    let num = n("+358401234567");
    let mut out = Vec::new();
    for round in 1..=MAX_ROUNDS {
        for caller in [None, Some("+358401234567".to_owned()), Some("0600123456".to_owned())] {
            out.push(Phase::Language { caller, round });
        }
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
        Event::Resumed,
        stored_new(),
        Event::Stored(Told::Waiting { place: 2, eta: None }),
        Event::StoreFailed,
    ]);
    out
}

/// Every phase × every event, with and without the language menu: the invariants every
/// transition keeps.
#[test]
fn every_phase_takes_every_event() {
    let policy = NumberPolicy::default();
    let w = windows();
    let menu = [Lang::Fi, Lang::Sv, Lang::En];
    for choices in [&menu[..], &[]] {
        let cx = Context { numbers: &policy, windows: &w, language: Lang::Fi, choices };
        every_event_in(cx);
    }
}

fn every_event_in(cx: Context<'_>) {
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
                Phase::Language { round, .. }
                | Phase::Offer { round, .. }
                | Phase::Entry { round, .. }
                | Phase::Confirm { round, .. }
                | Phase::Window { round, .. } => assert!(*round <= MAX_ROUNDS, "{case}"),
                Phase::Storing { .. } | Phase::Done(_) => {}
            }
            // The language is chosen only at the menu, by a key of it, before anything else.
            let speaks: Vec<Lang> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Speak(l) => Some(*l),
                    Action::Play(_) | Action::Listen(_) | Action::Store { .. } | Action::Hangup => {
                        None
                    }
                })
                .collect();
            if !speaks.is_empty() {
                assert!(matches!(phase, Phase::Language { .. }), "{case}");
                assert!(matches!(event, Event::Digit('1'..='3')), "{case}");
                assert_eq!(actions.first(), Some(&Action::Speak(speaks[0])), "{case}");
                assert_eq!(speaks.len(), 1, "{case}");
            }
            // The menu never ends the call: without a choice it goes on in the call's own
            // language.
            if matches!(phase, Phase::Language { .. }) && event != Event::Hangup {
                assert!(!matches!(next, Phase::Done(_)), "{case}");
            }
            // Back from hold: the same question, the same round.
            if event == Event::Resumed {
                if let (Phase::Entry { round: a, .. }, Phase::Entry { round: b, digits }) =
                    (&phase, &next)
                {
                    assert_eq!((a, digits.as_str()), (b, ""), "{case}");
                } else {
                    assert_eq!(next, phase, "{case}");
                }
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
                    Phase::Language { .. }
                        | Phase::Offer { .. }
                        | Phase::Entry { .. }
                        | Phase::Confirm { .. }
                )
            {
                assert_eq!((&next, actions.len()), (&Phase::Done(End::HungUp), 0), "{case}");
            }
            // A live phase always listens next; a finished call with the caller still there
            // hangs up; nothing is said to a caller who is gone.
            match &next {
                Phase::Language { .. }
                | Phase::Offer { .. }
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

/// The language the call speaks after `actions` (the last `Speak`), from `first`.
fn spoken_in(first: Lang, actions: &[Action]) -> Lang {
    actions.iter().fold(first, |l, a| match a {
        Action::Speak(chosen) => *chosen,
        Action::Play(_) | Action::Listen(_) | Action::Store { .. } | Action::Hangup => l,
    })
}

fn plays(actions: &[Action]) -> Vec<Vec<Word>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play(w) => Some(w.clone()),
            Action::Speak(_) | Action::Listen(_) | Action::Store { .. } | Action::Hangup => None,
        })
        .collect()
}

#[test]
fn the_language_menu_chooses_the_calls_language_and_the_requests() {
    let policy = NumberPolicy::default();
    let menu = [Lang::Fi, Lang::Sv, Lang::En];
    let cx = Context { numbers: &policy, windows: &[], language: Lang::Fi, choices: &menu };
    let (phase, actions) = start(cx, Some("+358401234567"));
    assert_eq!(phase, Phase::Language { caller: Some("+358401234567".into()), round: 1 });
    // Greeted in the call's language, then each option in its own.
    assert_eq!(
        plays(&actions),
        vec![vec![
            Word::Greeting,
            Word::LanguageOption { key: 1, lang: Lang::Fi },
            Word::LanguageOption { key: 2, lang: Lang::Sv },
            Word::LanguageOption { key: 3, lang: Lang::En },
        ]]
    );
    // 2 = Swedish: greeted again in Swedish, the number offered, stored in Swedish.
    let mut events = keys("21");
    events.push(stored_new());
    let (phase, actions) = run(cx, Some("+358401234567"), &events);
    assert_eq!(phase, Phase::Done(End::Stored));
    let at = actions.iter().position(|a| *a == Action::Speak(Lang::Sv)).expect("speak sv");
    assert_eq!(
        actions[at + 1],
        Action::Play(vec![
            Word::Greeting,
            Word::YourNumber,
            Word::Digits("0401234567".into()),
            Word::ThisOrOther
        ])
    );
    let store = actions.iter().position(|a| matches!(a, Action::Store { .. })).expect("store");
    assert_eq!(spoken_in(Lang::Fi, &actions[..store]), Lang::Sv);
    // 1 = the call's own language: not greeted twice.
    let (phase, actions) = run(cx, None, &keys("1"));
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 1 });
    assert_eq!(plays(&actions)[1], vec![Word::EnterNumber]);
    assert_eq!(spoken_in(Lang::Sv, &actions), Lang::Fi);
    // Wrong keys and silence repeat the menu (without the greeting); after the last round
    // the call goes on in its own language, nothing chosen.
    let (phase, actions) = run(cx, None, &[Event::Digit('4'), Event::Digit('0')]);
    assert_eq!(phase, Phase::Language { caller: None, round: 3 });
    assert_eq!(plays(&actions)[1].first(), Some(&Word::LanguageOption { key: 1, lang: Lang::Fi }));
    let (phase, actions) = run(cx, None, &[Event::Timeout, Event::Timeout, Event::Timeout]);
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 1 });
    assert!(!actions.iter().any(|a| matches!(a, Action::Speak(_))), "{actions:?}");
    assert_eq!(plays(&actions).last(), Some(&vec![Word::EnterNumber]));
    // A hang-up at the menu stores nothing.
    let (phase, _) = run(cx, None, &[Event::Hangup]);
    assert_eq!(phase, Phase::Done(End::HungUp));
    // Only the offered languages are keys: with two, 3 is wrong.
    let two = [Lang::Sv, Lang::Fi];
    let cx2 = Context { choices: &two, language: Lang::Sv, ..cx };
    let (phase, _) = run(cx2, None, &keys("3"));
    assert_eq!(phase, Phase::Language { caller: None, round: 2 });
    let (_, actions) = run(cx2, None, &keys("2"));
    assert_eq!(spoken_in(Lang::Sv, &actions), Lang::Fi);
    // One language (or none): no menu.
    let one = [Lang::Fi];
    let (phase, _) = start(Context { choices: &one, ..cx }, None);
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 1 });
}

#[test]
fn back_from_hold_the_question_is_asked_again_in_the_same_round() {
    let policy = NumberPolicy::default();
    let w = windows();
    let cx = Context { numbers: &policy, windows: &w, language: Lang::Fi, choices: &[] };
    let mut events = vec![Event::Timeout, Event::Resumed];
    let (phase, actions) = run(cx, Some("+358401234567"), &events);
    assert_eq!(phase, Phase::Offer { number: n("+358401234567"), round: 2 });
    assert_eq!(
        plays(&actions).last(),
        Some(&vec![Word::YourNumber, Word::Digits("0401234567".into()), Word::ThisOrOther])
    );
    // A number half typed is typed again.
    let (phase, actions) = run(cx, None, &[Event::Digit('0'), Event::Digit('4'), Event::Resumed]);
    assert_eq!(phase, Phase::Entry { digits: String::new(), round: 1 });
    assert_eq!(plays(&actions).last(), Some(&vec![Word::EnterNumber]));
    // Then the call goes on and stores.
    events = keys("1");
    events.push(Event::Resumed);
    events.extend(keys("1"));
    let (phase, actions) = run(cx, Some("+358401234567"), &events);
    assert_eq!(
        phase,
        Phase::Storing { number: n("+358401234567"), window: Some(w[0]), caller_gone: false }
    );
    assert_eq!(stores(&actions).len(), 1);
}

#[test]
fn language_options_are_said_in_their_own_language() {
    let s = stems_in(
        &[Word::Greeting, Word::LanguageOption { key: 2, lang: Lang::Sv }, Word::Goodbye],
        "g",
    );
    assert_eq!(
        s,
        [
            (None, "g".to_owned()),
            (Some(Lang::Sv), "intake-language".to_owned()),
            (Some(Lang::Sv), "num-2".to_owned()),
            (None, "intake-goodbye".to_owned()),
        ]
    );
    assert_eq!(crate::media::INTAKE_LANGUAGE, "intake-language");
}
