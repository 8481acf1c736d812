//! The simulator's invariants, on the repository's dialplans.

use super::*;
use crate::dialplan;
use std::path::PathBuf;

fn services() -> Services {
    dialplan::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans"))
        .expect("dialplans")
}

fn params(nurses: u32, seed: u64) -> Params {
    Params {
        start: jiff::civil::date(2026, 12, 7),
        days: 3,
        arrivals: Arrivals::parse(DEFAULT_ARRIVALS).expect("arrivals"),
        nurses: Staffing::constant(nurses),
        handle: SignedDuration::from_mins(6),
        answer_rate: 0.75,
        window_share: 0.3,
        seed,
        order: Order::Deadline,
    }
}

#[test]
fn the_example_arrivals_parse_and_bad_lines_are_named() {
    let a = Arrivals::parse(DEFAULT_ARRIVALS).expect("arrivals");
    assert!((2000.0..2600.0).contains(&a.weekly()), "{}", a.weekly());
    assert!(a.0[0][8] > a.0[1][8], "Monday peak");
    assert!(a.0[1][8] > a.0[1][15], "morning peak");
    let e = Arrivals::parse("weekday,hour,requests\nmon,8,3\nfri,24,1\n").expect_err("hour 24");
    assert_eq!(e.line, 3);
    assert!(Arrivals::parse("mon,8,-1").is_err());
    assert!(Arrivals::parse("mon,8,1\nmon,8,2").is_err(), "listed twice");
    assert!(Staffing::parse("xyz,8,1").is_err());
}

#[test]
fn every_request_ends_and_no_call_is_outside_the_hours_or_the_window() {
    let svcs = services();
    let svc = &svcs["kallio"];
    let run = run(&svcs, "kallio", &params(3, 7)).expect("run");
    assert!(run.report.totals.requests > 500, "{}", run.report.totals.requests);
    assert!(run.requests.iter().all(|r| r.state.is_final()), "every request ends");
    assert!(run.requests.iter().any(|r| r.window.is_some()), "some chose a window");
    for c in &run.starts {
        assert_eq!(
            policy::first_start(&svc.calendar, &svc.attempts, c.window, c.at),
            Some(c.at),
            "request {} called at {} outside its hours or window {:?}",
            c.request,
            c.at,
            c.window
        );
    }
    assert!(run.starts.len() >= run.report.totals.requests / 2);
}

#[test]
fn with_ample_nurses_everyone_who_can_be_is_called_the_same_day() {
    let svcs = services();
    let svc = &svcs["kallio"];
    let run = run(&svcs, "kallio", &params(60, 11)).expect("run");
    for r in &run.requests {
        // A request made after the day's last start (e.g. 15:55, closing at 16:00) has no
        // same-day chance whatever the staffing.
        let possible = policy::first_start(&svc.calendar, &svc.attempts, r.window, r.created)
            .is_some_and(|t| t < r.deadline);
        if possible {
            assert!(r.first_call.is_some_and(|t| t < r.deadline), "{r:?}");
        }
    }
    assert!(run.report.totals.same_day > 0.97, "{:?}", run.report.totals);
    assert!(run.report.totals.utilisation < 0.2, "{:?}", run.report.totals);
}

#[test]
fn the_same_seed_gives_the_same_result_and_another_seed_another() {
    let svcs = services();
    let a = run(&svcs, "kallio", &params(2, 42)).expect("run");
    let b = run(&svcs, "kallio", &params(2, 42)).expect("run");
    assert_eq!(a.report, b.report);
    assert_eq!(a.starts, b.starts);
    let c = run(&svcs, "kallio", &params(2, 43)).expect("run");
    assert_ne!(a.report.totals, c.report.totals);
}

#[test]
fn too_few_nurses_miss_deadlines_and_find_nurses_finds_the_least() {
    let svcs = services();
    let short = run(&svcs, "vuosaari", &params(1, 5)).expect("run");
    assert!(short.report.totals.same_day < 0.9, "{:?}", short.report.totals);
    assert!(short.report.totals.deadlines_missed > 0);
    let mut p = params(1, 5);
    p.days = 2;
    let (n, best) = find_nurses(&svcs, "vuosaari", &p, 0.95).expect("run").expect("reachable");
    assert!(best.report.totals.same_day >= 0.95);
    let fewer =
        run(&svcs, "vuosaari", &Params { nurses: Staffing::constant(n - 1), ..p }).expect("run");
    assert!(fewer.report.totals.same_day < 0.95, "{n} is the least");
}

#[test]
fn reports_render() {
    let svcs = services();
    let mut p = params(3, 1);
    p.days = 1;
    let run = run(&svcs, "kallio", &p).expect("run");
    let text = run.report.text();
    assert!(text.contains("same day (first call)"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run.report.json()).expect("json");
    assert_eq!(json["totals"]["requests"], serde_json::json!(run.report.totals.requests));
    let html = run.report.html();
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg"), "{html}");
}
