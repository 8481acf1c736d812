//! Figures against a small history computed by hand.

use super::*;
use crate::lang::Lang;
use jiff::civil::date;

fn tz() -> TimeZone {
    TimeZone::get("Europe/Helsinki").expect("test value")
}

/// A local Helsinki time.
fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
    date(y, m, d).at(h, min, 0, 0).to_zoned(tz()).expect("test value").timestamp()
}

fn req(
    id: i64,
    service: &str,
    state: State,
    created: Timestamp,
    deadline: Timestamp,
) -> RequestRow {
    RequestRow {
        id,
        service: service.into(),
        channel: "api".into(),
        state,
        created_at: created,
        deadline_at: deadline,
        deadline_missed: false,
        told: None,
    }
}

fn att(request_id: i64, seq: i64, started: Timestamp, outcome: Outcome) -> AttemptRow {
    AttemptRow { request_id, seq, started_at: started, answered_at: None, outcome: Some(outcome) }
}

fn mins(t: Timestamp, m: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_mins(m)).expect("test value")
}

/// Week 2026-W48 (Mon 23 Nov .. Sun 29 Nov) and a request in W47 for the previous column.
fn history() -> History {
    let mon8 = at(2026, 11, 23, 8, 0);
    let dl_mon = at(2026, 11, 23, 16, 0);
    let tue9 = at(2026, 11, 24, 9, 30);
    let dl_tue = at(2026, 11, 24, 16, 0);
    let mut r1 = req(1, "kallio", State::Connected, mon8, dl_mon);
    r1.told = Some((mins(mon8, 20), mins(mon8, 50))); // first call at +30: inside
    let mut r2 = req(2, "kallio", State::Connected, mins(mon8, 10), dl_mon);
    r2.channel = "ivr".into();
    r2.told = Some((mins(mon8, 20), mins(mon8, 40))); // first call at +80: 40 min after the window
    let mut r3 = req(3, "kallio", State::Unreachable, tue9, dl_tue);
    r3.deadline_missed = true;
    let r4 = req(4, "kallio", State::Cancelled, mins(tue9, 5), dl_tue); // declined
    let r5 = req(5, "kallio", State::Cancelled, mins(tue9, 6), dl_tue); // cancelled by staff
    let r6 = req(6, "kallio", State::Pending, at(2026, 11, 29, 10, 0), at(2026, 11, 30, 16, 0));
    let r7 = req(7, "toolo", State::Connected, tue9, dl_tue);
    // Connected the next day: after its deadline.
    let mut r8 = req(8, "kallio", State::Connected, at(2026, 11, 24, 15, 50), dl_tue);
    r8.deadline_missed = true;
    // Previous week.
    let r9 = req(9, "kallio", State::Connected, at(2026, 11, 17, 8, 0), at(2026, 11, 17, 16, 0));
    // Outside both periods.
    let r10 = req(10, "kallio", State::Connected, at(2026, 11, 1, 8, 0), at(2026, 11, 1, 16, 0));
    History {
        requests: vec![r1, r2, r3, r4, r5, r6, r7, r8, r9, r10],
        attempts: vec![
            att(1, 1, mins(mon8, 30), Outcome::Connected),
            att(2, 1, mins(mon8, 80), Outcome::Busy),
            att(2, 2, mins(mon8, 130), Outcome::Connected),
            att(3, 1, mins(tue9, 10), Outcome::NoAnswer),
            att(3, 2, mins(tue9, 70), Outcome::NoAnswer),
            att(3, 3, mins(tue9, 130), Outcome::Busy),
            att(4, 1, mins(tue9, 20), Outcome::Declined),
            AttemptRow {
                request_id: 7,
                seq: 1,
                started_at: mins(tue9, 5),
                answered_at: Some(mins(tue9, 6)),
                outcome: Some(Outcome::Connected),
            },
            att(8, 1, at(2026, 11, 25, 8, 50), Outcome::Connected),
            att(9, 1, at(2026, 11, 17, 9, 0), Outcome::Connected),
            att(10, 1, at(2026, 11, 1, 9, 0), Outcome::Connected),
        ],
        sms: vec![
            SmsRow { request_id: 1, kind: "notice".into(), state: "sent".into() },
            SmsRow { request_id: 2, kind: "notice".into(), state: "sent".into() },
            SmsRow { request_id: 3, kind: "unreachable".into(), state: "sent".into() },
            SmsRow { request_id: 6, kind: "notice".into(), state: "queued".into() },
            SmsRow { request_id: 9, kind: "notice".into(), state: "sent".into() },
        ],
    }
}

fn query() -> Query {
    Query {
        period: Period::week("2026-W48").expect("test value"),
        services: vec!["kallio".into(), "toolo".into()],
        tz: tz(),
    }
}

#[test]
fn figures_of_a_week_and_the_one_before() {
    let now = at(2026, 11, 30, 9, 0);
    let r = compute(&history(), &query(), now);
    assert_eq!(r.period_name, "2026-W48");
    assert_eq!(r.previous_name, "2026-W47");
    let names: Vec<_> = r.sections.iter().map(|s| s.service.clone()).collect();
    assert_eq!(names, [None, Some("kallio".into()), Some("toolo".into())]);
    let k = &r.sections[1].current;
    assert_eq!(k.requests, 7);
    assert_eq!(k.by_channel, BTreeMap::from([("api".into(), 6), ("ivr".into(), 1)]));
    assert_eq!(
        (k.connected, k.unreachable, k.expired, k.cancelled, k.declined, k.open),
        (3, 1, 0, 1, 1, 1)
    );
    // Waits: r1 30 min, r2 120 min, r8 1020 min (15:50 → 08:50 next day).
    let w = k.to_callback.expect("test value");
    assert_eq!(w.n, 3);
    assert!((w.mean_min - 390.0).abs() < 1e-9);
    assert_eq!((w.p50_min, w.p90_min), (120.0, 1020.0));
    // Same day: r1, r2 yes; r3 (unreachable) and r8 (late) no; r4, r5 cancelled out; r6
    // pending with its deadline ahead: out. 2 of 4.
    assert_eq!((k.same_day.hits, k.same_day.of), (2, 4));
    assert_eq!(k.same_day.rate, Some(0.5));
    assert_eq!(k.deadlines_missed, 2);
    // First attempts: r1 connected, r2 busy, r3 no answer, r4 declined, r8 connected.
    assert_eq!((k.first_attempt.hits, k.first_attempt.of), (2, 5));
    // Attempts 1 + 2 + 3 + 1 + 1 = 8 over 5 requests with calls.
    assert_eq!(k.attempts, 8);
    assert_eq!(k.attempts_per_request, Some(1.6));
    assert_eq!(
        k.outcomes,
        BTreeMap::from([
            ("busy".into(), 2),
            ("connected".into(), 3),
            ("declined".into(), 1),
            ("no_answer".into(), 2)
        ])
    );
    assert_eq!(k.sms_sent, BTreeMap::from([("notice".into(), 2), ("unreachable".into(), 1)]));
    assert_eq!((k.punctuality.hits, k.punctuality.of), (1, 2));
    assert_eq!(k.mean_miss_min, Some(40.0));
    // The previous week: r9 only (r10 is outside both).
    let p = &r.sections[1].previous;
    assert_eq!((p.requests, p.connected, p.same_day.rate), (1, 1, Some(1.0)));
    assert_eq!(p.sms_sent, BTreeMap::from([("notice".into(), 1)]));
    // Töölö: the patient answered six minutes after the request (the answer, not the start).
    let t = &r.sections[2].current;
    assert_eq!(t.to_callback.expect("test value").mean_min, 6.0);
    // All services add up.
    let all = &r.sections[0].current;
    assert_eq!((all.requests, all.connected, all.same_day.hits, all.same_day.of), (8, 4, 3, 5));
}

#[test]
fn days_and_hours() {
    let r = compute(&history(), &query(), at(2026, 11, 30, 9, 0));
    let k = &r.sections[1];
    let per_day: Vec<u64> = k.days.iter().map(|d| d.requests).collect();
    assert_eq!(per_day, [2, 4, 0, 0, 0, 0, 1]);
    assert_eq!(k.days[0].same_day.rate, Some(1.0));
    assert_eq!(k.days[0].mean_to_callback_min, Some(75.0));
    // Tuesday: r3 no, r8 no; r4, r5 out.
    assert_eq!((k.days[1].same_day.hits, k.days[1].same_day.of), (0, 2));
    assert_eq!(k.days[6].same_day.of, 0);
    assert_eq!(k.hours.len(), 7 * 24);
    let cell = |wd: i8, h: i8| {
        k.hours.iter().find(|c| c.weekday == wd && c.hour == h).expect("test value")
    };
    assert_eq!(cell(1, 8).requests, 2);
    assert_eq!(cell(1, 8).mean_to_callback_min, Some(75.0));
    assert_eq!(cell(2, 9).requests, 3);
    assert_eq!(cell(2, 15).mean_to_callback_min, Some(1020.0));
    assert_eq!(k.hour_of_day[8].requests, 2);
    assert_eq!(k.hour_of_day[9].requests, 3);
}

#[test]
fn a_dst_week_counts_local_hours_and_days() {
    // 2026-10-25, Sunday: clocks go back at 04:00 EEST → 03:00 EET. Requests at 03:30 local
    // happen twice; a request at 23:30 on Sunday is still in week 43.
    let tz = tz();
    let first =
        date(2026, 10, 25).at(3, 30, 0, 0).to_zoned(tz.clone()).expect("test value").timestamp();
    let second = first.checked_add(SignedDuration::from_hours(1)).expect("test value");
    let late = at(2026, 10, 25, 23, 30);
    let monday_after = at(2026, 10, 26, 0, 10);
    let dl = at(2026, 10, 26, 16, 0);
    let h = History {
        requests: vec![
            req(1, "kallio", State::Expired, first, dl),
            req(2, "kallio", State::Expired, second, dl),
            req(3, "kallio", State::Expired, late, dl),
            req(4, "kallio", State::Expired, monday_after, dl),
        ],
        ..History::default()
    };
    let q = Query {
        period: Period::week("2026-W43").expect("test value"),
        services: vec!["kallio".into()],
        tz,
    };
    let r = compute(&h, &q, at(2026, 11, 30, 9, 0));
    assert_eq!(r.sections.len(), 1, "one service: no all-services section");
    let s = &r.sections[0];
    assert_eq!(s.current.requests, 3);
    assert_eq!(s.current.expired, 3);
    assert_eq!(s.days[6].requests, 3);
    let sunday = |h: i8| {
        s.hours.iter().find(|c| c.weekday == 7 && c.hour == h).expect("test value").requests
    };
    assert_eq!((sunday(3), sunday(23)), (2, 1));
    // Expired requests count against the same-day rate.
    assert_eq!((s.current.same_day.hits, s.current.same_day.of), (0, 3));
}

#[test]
fn an_empty_period_has_no_rates() {
    let q = Query {
        period: Period::month("2026-12").expect("test value"),
        services: vec!["kallio".into()],
        tz: tz(),
    };
    let r = compute(&history(), &q, at(2027, 1, 2, 9, 0));
    let s = &r.sections[0];
    assert_eq!(s.current.requests, 0);
    assert_eq!(s.current.same_day.rate, None);
    assert_eq!(s.current.to_callback, None);
    assert_eq!(s.days.len(), 31);
    // The previous month (November) has r1..r10's kallio requests but r7.
    assert_eq!(s.previous.requests, 9);
}

#[test]
fn every_format_shows_the_figures() {
    let r = compute(&history(), &query(), at(2026, 11, 30, 9, 0));
    let text = render::text(&r, Lang::En);
    assert!(text.contains("callbackd report 2026-W48"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("same day rate") && l.contains("50.0%")), "{text}");
    assert!(text.contains("Mean minutes to callback by hour of request"));
    let csv = render::csv(&r);
    assert!(csv.starts_with("period,service,section,key,value\n"));
    assert!(csv.contains("2026-W48,kallio,figures,same_day_rate,0.5000\n"), "{csv}");
    assert!(csv.contains("2026-W47,kallio,figures,requests,1\n"));
    assert!(csv.contains("2026-W48,kallio,day,2026-11-24.requests,4\n"));
    assert!(csv.contains("2026-W48,kallio,hour,Mon.08.mean_to_callback_min,75\n"));
    assert!(csv.lines().all(|l| l.split(',').count() == 5), "every row has 5 fields");
    let json: serde_json::Value = serde_json::from_str(&render::json(&r)).expect("test value");
    assert_eq!(json["sections"][1]["current"]["same_day"]["rate"], 0.5);
    assert_eq!(json["sections"][1]["current"]["requests"], 7);
    let page = html::html(&r, Lang::En);
    assert_eq!(page.matches("<svg").count(), 4 * 3, "four charts per section");
    // Nothing outside the file: no script, no link, no URL but the SVG namespace.
    let bare = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for outside in ["<script", "http://", "https://", "src=", "href=", "url(", "@import"] {
        assert!(!bare.contains(outside), "{outside} in the page");
    }
}

#[test]
fn integer_ranks_are_the_nearest_ranks() {
    // The store computes ⌈n/2⌉ and ⌈9n/10⌉ in integers; the same as ⌈p·n⌉ in floating point.
    for n in 1..=1_000_000_u64 {
        let float = |p: f64| ((p * n as f64).ceil() as u64).clamp(1, n);
        assert_eq!(ranks(n), (float(0.5), float(0.9)), "n = {n}");
    }
}

#[test]
fn rows_fold_the_last_finished_attempt_and_the_latest_connected_call() {
    let mon8 = at(2026, 11, 23, 8, 0);
    let dl = at(2026, 11, 23, 16, 0);
    let live = AttemptRow {
        request_id: 1,
        seq: 3,
        started_at: mins(mon8, 90),
        answered_at: None,
        outcome: None,
    };
    let h = History {
        requests: vec![req(1, "kallio", State::Cancelled, mon8, dl)],
        // Out of order, the last finished one declined, a live third one.
        attempts: vec![
            live,
            att(1, 2, mins(mon8, 60), Outcome::Declined),
            att(1, 1, mins(mon8, 30), Outcome::Busy),
        ],
        sms: vec![],
    };
    let q = Query { services: vec!["kallio".into()], ..query() };
    let read = read_rows(&h, &q, at(2026, 11, 30, 9, 0));
    let c = read.current[0].calls;
    assert_eq!(c.finished, 2);
    assert!(c.declined);
    assert_eq!(c.first, Some((mins(mon8, 30), Some(Outcome::Busy))));
    let r = compute_read(&read, &q, at(2026, 11, 30, 9, 0));
    assert_eq!((r.sections[0].current.declined, r.sections[0].current.cancelled), (1, 0));
}

/// The English headings and labels a report prints (figure labels of every key the
/// report has, table headings, captions).
fn english_words(r: &Report) -> Vec<String> {
    let en = words::words(Lang::En);
    let mut out: Vec<String> = r
        .sections
        .iter()
        .flat_map(|s| render::paired(s).into_iter().map(|(k, _, _)| en.figure(&k)))
        .collect();
    out.extend(
        [en.title, en.compared_with, en.made, en.all_services, en.figure, en.by_day, en.hour]
            .map(str::to_owned),
    );
    out.extend(
        [en.requests_by_hour, en.mean_by_hour, en.no_requests, en.hour_note].map(str::to_owned),
    );
    out.extend(en.day_columns.map(str::to_owned));
    out.extend(en.charts.map(str::to_owned));
    out.extend(en.legend.map(str::to_owned));
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_finnish_report_has_finnish_headings_and_no_english_ones() {
    let r = compute(&history(), &query(), at(2026, 11, 30, 9, 0));
    let english = english_words(&r);
    assert!(english.len() > 30, "{english:?}");

    let page = html::html(&r, Lang::Fi);
    assert!(page.contains("<html lang=\"fi\">"));
    assert!(page.contains("<h1>callbackd-raportti 2026-W48</h1>"), "{page}");
    assert!(page.contains("<h2 id=\"s-all\">Kaikki palvelut</h2>"));
    assert!(page.contains("<th>tunnusluku</th>"));
    assert!(page.contains("<td>soitto luvattuna aikana</td>"));
    assert!(page.contains("<td>tavoitettu samana päivänä</td>"));
    assert!(page.contains("<figcaption>Pyynnöt ja takaisinsoitot päivittäin</figcaption>"));
    assert!(page.contains("<th>päivä</th><th>pyynnöt</th>"));
    assert!(page.contains("<td>ti 2026-11-24</td>"), "weekdays in Finnish");
    assert!(page.contains("<th>ma</th><th>ti</th>"));
    for en in &english {
        // As a whole cell, heading, caption or legend text: `>label<`.
        let cell = format!(">{}<", html::escape(en));
        assert!(!page.contains(&cell), "English {en:?} left in the Finnish page");
    }
    assert!(!page.contains(">Tue 2026-11-24<"));

    let text = render::text(&r, Lang::Fi);
    assert!(text.starts_with("callbackd-raportti 2026-W48"), "{text}");
    assert!(text.contains("verrattuna jaksoon 2026-W47"), "{text}");
    assert!(text.contains("== kaikki palvelut =="), "{text}");
    assert!(text.contains("Päivittäin (2026-W48)"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("tavoitettu samana päivänä") && l.contains("50.0%")),
        "{text}"
    );
    for en in &english {
        let starts = text.lines().any(|l| l.trim_start().starts_with(en.as_str()));
        assert!(!starts && !text.contains(&format!("\n{en}\n")), "English {en:?} in\n{text}");
    }

    let sv = html::html(&r, Lang::Sv);
    assert!(sv.contains("<html lang=\"sv\">") && sv.contains("<td>samtal inom utlovad tid</td>"));
}

/// A request's calls do not depend on the order its attempts come in.
#[test]
fn calls_fold_the_same_in_any_order() {
    let mon8 = at(2026, 11, 23, 8, 0);
    let mut connected = att(1, 2, mins(mon8, 60), Outcome::Connected);
    connected.answered_at = Some(mins(mon8, 61));
    let rows = [
        att(1, 1, mins(mon8, 30), Outcome::Busy),
        connected,
        att(1, 3, mins(mon8, 90), Outcome::Declined),
    ];
    let want = Calls {
        finished: 3,
        first: Some((mins(mon8, 30), Some(Outcome::Busy))),
        connected_at: Some(mins(mon8, 61)),
        declined: true,
    };
    for order in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let mut fold = CallsFold::default();
        for i in order {
            fold.add(&rows[i]);
        }
        assert_eq!(fold.finish(), want, "{order:?}");
    }
}
