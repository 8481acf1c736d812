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
fn with_ample_nurses_everyone_is_called_the_same_day() {
    let svcs = services();
    let run = run(&svcs, "kallio", &params(60, 11)).expect("run");
    // Every request can be started before its deadline (one made after the day's last
    // start moment is owed contact the next open day), so ample nurses reach all of them.
    for r in &run.requests {
        assert!(r.first_call.is_some_and(|t| t < r.deadline), "{r:?}");
    }
    assert_eq!(run.report.totals.same_day, 1.0, "{:?}", run.report.totals);
    assert!(run.report.totals.utilisation < 0.2, "{:?}", run.report.totals);
}

#[test]
fn fifo_puts_a_retry_at_the_back_of_the_queue() {
    let t = |s: &str| s.parse::<Timestamp>().expect("instant");
    let made_early = t("2026-12-07T07:00:00Z");
    let retry = fifo_key(made_early, Some(t("2026-12-07T08:45:00Z")), true, 1);
    let new = fifo_key(t("2026-12-07T08:30:00Z"), Some(t("2026-12-07T08:30:00Z")), false, 2);
    assert!(new < retry, "a request made before the retry fell due is served first");
    assert_eq!(fifo_key(made_early, Some(t("2026-12-07T08:00:00Z")), false, 1).0, made_early);
    // Deadline first serves the same retry before the later request (same deadline day).
    let svcs = services();
    let mut p = params(2, 3);
    p.days = 2;
    let deadline = run(&svcs, "vuosaari", &p).expect("run");
    let fifo = run(&svcs, "vuosaari", &Params { order: Order::Fifo, ..p }).expect("run");
    assert_eq!(deadline.report.totals.requests, fifo.report.totals.requests, "same arrivals");
    assert_ne!(deadline.starts, fifo.starts, "the orders differ");
}

#[test]
fn the_told_window_is_kept_nine_times_in_ten_at_ninety_percent_load() {
    let svcs = services();
    let svc = &svcs["vuosaari"];
    let mut p = params(1, 1);
    p.window_share = 0.0;
    p.nurses = staffing_for_load(svc, &p.arrivals, p.answer_rate, p.handle, 0.9);
    let t = run(&svcs, "vuosaari", &p).expect("run").report.totals;
    assert!(t.eta_punctual >= 0.9, "{t:?}");
    assert!(t.eta_width_min < 90.0, "no wider than needed: {t:?}");
    assert!(t.same_day >= 0.995, "{t:?}");
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
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_eq!(html.matches("<svg").count(), 4, "four charts drawn by plotters: {html}");
    assert!(!html.contains("chart not drawn"), "{html}");
    assert!(html.contains("same day (first call)"), "the figures are on the page");
}
