//! `callbackd report` against a store filled with a known history: every figure computed by
//! hand, a week with Christmas (holidays), a DST week, the previous period beside, every
//! format, SQLite and PostgreSQL alike.

mod common;

use common::Setup;
use jiff::civil::date;
use jiff::tz::TimeZone;
use serde_json::Value;
use sqlx::Connection;

/// Unix ms of a Helsinki wall-clock time (the earlier one when it happens twice).
fn at(m: i8, d: i8, h: i8, min: i8) -> i64 {
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    date(2026, m, d).at(h, min, 0, 0).to_zoned(tz).expect("local time").timestamp().as_millisecond()
}

const HOUR: i64 = 3_600_000;

/// One request of the history: its attempts as (start, outcome), its SMS as (kind, state).
struct Row {
    service: &'static str,
    channel: &'static str,
    state: &'static str,
    created: i64,
    deadline: i64,
    missed: bool,
    told: Option<(i64, i64)>,
    attempts: Vec<(i64, &'static str)>,
    sms: Vec<(&'static str, &'static str)>,
}

fn row(
    service: &'static str,
    channel: &'static str,
    state: &'static str,
    created: i64,
    deadline: i64,
) -> Row {
    Row {
        service,
        channel,
        state,
        created,
        deadline,
        missed: false,
        told: None,
        attempts: vec![],
        sms: vec![],
    }
}

/// Christmas week 2026-W52 (Thu 24 eve, Fri 25 and Sat 26 holidays), the week before, and
/// the DST week 2026-W43 (Sun 25 Oct, 04:00 → 03:00).
fn history() -> Vec<Row> {
    let dl = |m, d| at(m, d, 16, 0);
    let mut a = row("kallio", "api", "connected", at(12, 21, 8, 5), dl(12, 21));
    a.told = Some((at(12, 21, 8, 30), at(12, 21, 9, 30)));
    a.attempts = vec![(at(12, 21, 8, 20), "busy"), (at(12, 21, 9, 5), "connected")];
    a.sms = vec![("notice", "sent")];
    let mut b = row("kallio", "ivr", "connected", at(12, 21, 10, 0), dl(12, 21));
    b.told = Some((at(12, 21, 10, 15), at(12, 21, 11, 0)));
    b.attempts = vec![(at(12, 21, 10, 30), "connected")];
    b.sms = vec![("notice", "failed")];
    let mut c = row("kallio", "api", "connected", at(12, 23, 15, 55), dl(12, 23));
    c.missed = true;
    c.attempts = vec![(at(12, 28, 8, 10), "connected")];
    let mut d = row("kallio", "api", "unreachable", at(12, 22, 9, 0), dl(12, 22));
    d.attempts = vec![
        (at(12, 22, 9, 10), "no_answer"),
        (at(12, 22, 10, 10), "busy"),
        (at(12, 22, 11, 10), "no_answer"),
    ];
    d.sms = vec![("unreachable", "sent")];
    let e = row("kallio", "cli", "cancelled", at(12, 22, 9, 30), dl(12, 22));
    let mut f = row("vuosaari", "api", "connected", at(12, 22, 12, 0), dl(12, 22));
    f.attempts = vec![(at(12, 22, 12, 20), "connected")];
    f.sms = vec![("notice", "sent")];
    let mut g = row("kallio", "api", "connected", at(12, 14, 8, 0), dl(12, 14));
    g.attempts = vec![(at(12, 14, 8, 45), "connected")];
    // DST week.
    let night = at(10, 25, 3, 30);
    let h1 = row("kallio", "api", "expired", night, dl(10, 26));
    let h2 = row("kallio", "api", "expired", night + HOUR, dl(10, 26));
    let mut h3 = row("kallio", "web", "connected", at(10, 19, 8, 0), dl(10, 19));
    h3.attempts = vec![(at(10, 19, 8, 30), "connected")];
    let h4 = row("kallio", "api", "expired", at(10, 26, 0, 30), dl(10, 26));
    let h5 = row("kallio", "api", "expired", at(10, 18, 23, 30), dl(10, 19));
    vec![a, b, c, d, e, f, g, h1, h2, h3, h4, h5]
}

/// Writes the history through the migrated schema of `url`.
async fn fill(url: &str) {
    let store = callbackd::store::Store::open(url).await.expect("open the store");
    store.close().await;
    sqlx::any::install_default_drivers();
    let url = url.replace("sqlite:", "sqlite://");
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    for r in history() {
        let final_at = r.attempts.last().map_or(r.created + HOUR, |a| a.0 + 60_000);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO requests (service, number, state, channel, lang, created_at, deadline_at, \
             expires_at, deadline_missed, final_at, told_from, told_to) \
             VALUES ($1, NULL, $2, $3, 'fi', $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(r.service)
        .bind(r.state)
        .bind(r.channel)
        .bind(r.created)
        .bind(r.deadline)
        .bind(r.created + 72 * HOUR)
        .bind(i64::from(r.missed))
        .bind(final_at)
        .bind(r.told.map(|t| t.0))
        .bind(r.told.map(|t| t.1))
        .fetch_one(&mut conn)
        .await
        .expect("insert request");
        for (seq, (start, outcome)) in r.attempts.iter().enumerate() {
            sqlx::query(
                "INSERT INTO attempts (request_id, seq, started_at, ended_at, outcome) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(seq as i64 + 1)
            .bind(*start)
            .bind(*start + 60_000)
            .bind(*outcome)
            .execute(&mut conn)
            .await
            .expect("insert attempt");
        }
        for (kind, state) in &r.sms {
            sqlx::query(
                "INSERT INTO outbox (request_id, kind, dedup_key, lang, created_at, not_before, state) \
                 VALUES ($1, $2, $3, 'fi', $4, $4, $5)",
            )
            .bind(id)
            .bind(*kind)
            .bind(format!("{id}:{kind}"))
            .bind(r.created)
            .bind(*state)
            .execute(&mut conn)
            .await
            .expect("insert sms");
        }
    }
    conn.close().await.expect("close");
}

fn run(setup: &Setup, args: &[&str]) -> String {
    let mut all = vec!["report", "--config", setup.config_arg()];
    all.extend_from_slice(args);
    let out = setup.cli(&all);
    assert!(
        out.status.success(),
        "report {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Keeps a sample output as a test artefact (`target/test-artefacts/`), for the docs.
fn artefact(name: &str, text: &str) {
    let dir = common::repo().join("target").join("test-artefacts");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(name), text);
}

fn section<'a>(report: &'a Value, service: Option<&str>) -> &'a Value {
    report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["service"].as_str() == service)
        .unwrap_or_else(|| panic!("no section {service:?}"))
}

/// Every figure of the Christmas week and the DST week, in every format.
fn check(setup: &Setup) {
    let json: Value =
        serde_json::from_str(&run(setup, &["--week", "2026-W52", "--format", "json"]))
            .expect("JSON");
    assert_eq!(json["period_name"], "2026-W52");
    assert_eq!(json["previous_name"], "2026-W51");
    let k = &section(&json, Some("kallio"))["current"];
    assert_eq!(k["requests"], 5);
    assert_eq!(k["by_channel"], serde_json::json!({"api": 3, "cli": 1, "ivr": 1}));
    assert_eq!(
        (k["connected"].as_u64(), k["unreachable"].as_u64(), k["cancelled"].as_u64()),
        (Some(3), Some(1), Some(1))
    );
    // Waits 60, 30 and 6735 minutes (Wed 15:55 → Mon 08:10 over Christmas).
    assert_eq!(k["to_callback"]["mean_min"], 2275.0);
    assert_eq!(k["to_callback"]["p50_min"], 60.0);
    assert_eq!(k["to_callback"]["p90_min"], 6735.0);
    assert_eq!(k["same_day"], serde_json::json!({"hits": 2, "of": 4, "rate": 0.5}));
    assert_eq!(k["deadlines_missed"], 1);
    assert_eq!(k["first_attempt"]["rate"], 0.5);
    assert_eq!(k["attempts"], 7);
    assert_eq!(k["attempts_per_request"], 1.75);
    assert_eq!(k["outcomes"], serde_json::json!({"busy": 2, "connected": 3, "no_answer": 2}));
    assert_eq!(k["sms_sent"], serde_json::json!({"notice": 1, "unreachable": 1}));
    assert_eq!(k["punctuality"]["rate"], 0.5);
    assert_eq!(k["mean_miss_min"], 10.0);
    let days: Vec<u64> = section(&json, Some("kallio"))["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["requests"].as_u64().expect("count"))
        .collect();
    assert_eq!(days, [2, 2, 1, 0, 0, 0, 0], "nothing on the Christmas days");
    let p = &section(&json, Some("kallio"))["previous"];
    assert_eq!((p["requests"].as_u64(), p["same_day"]["rate"].as_f64()), (Some(1), Some(1.0)));
    let all = &section(&json, None)["current"];
    assert_eq!((all["requests"].as_u64(), all["connected"].as_u64()), (Some(6), Some(4)));
    assert_eq!(all["same_day"], serde_json::json!({"hits": 3, "of": 5, "rate": 0.6}));

    // The DST week: two requests at 03:30 on Sunday (one an hour after the other), one on
    // Monday; a request 00:30 the next Monday is not in it, 23:30 the Sunday before is in
    // the previous week.
    let dst: Value = serde_json::from_str(&run(
        setup,
        &["--week", "2026-W43", "--service", "kallio", "--format", "json"],
    ))
    .expect("JSON");
    let s = section(&dst, Some("kallio"));
    assert_eq!(s["current"]["requests"], 3);
    assert_eq!(s["current"]["by_channel"], serde_json::json!({"api": 2, "web": 1}));
    assert_eq!(s["previous"]["requests"], 1);
    let sunday_3 =
        s["hours"].as_array().expect("hours").iter().find(|c| c["weekday"] == 7 && c["hour"] == 3);
    assert_eq!(sunday_3.expect("cell")["requests"], 2);

    let text = run(setup, &["--week", "2026-W52", "--service", "kallio"]);
    artefact("report-sample.txt", &text);
    assert!(
        text.starts_with("callbackd report 2026-W52 (2026-12-21 .. 2026-12-27, Europe/Helsinki)"),
        "{text}"
    );
    let line = |name: &str| {
        text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert_eq!(
        line("same day rate").split_whitespace().collect::<Vec<_>>(),
        ["same", "day", "rate", "50.0%", "100.0%"]
    );
    assert_eq!(line("requests").split_whitespace().collect::<Vec<_>>(), ["requests", "5", "1"]);
    assert!(line("Thu 12-24").split_whitespace().eq(["Thu", "12-24", "0", "0", "-", "-"]));

    let csv = run(setup, &["--week", "2026-W52", "--format", "csv"]);
    assert!(csv.starts_with("period,service,section,key,value\n"));
    for want in [
        "2026-W52,kallio,figures,same_day_rate,0.5000",
        "2026-W52,all,figures,requests,6",
        "2026-W51,kallio,figures,requests,1",
        "2026-W52,kallio,day,2026-12-25.requests,0",
        "2026-W52,vuosaari,figures,sms_sent.notice,1",
        "2026-W52,kallio,hour,Mon.08.mean_to_callback_min,60",
    ] {
        assert!(csv.lines().any(|l| l == want), "{want} missing in\n{csv}");
    }

    let out = setup.dir.path().join("report.html");
    let html = run(
        setup,
        &["--week", "2026-W52", "--format", "html", "--out", out.to_str().expect("UTF-8")],
    );
    assert!(html.is_empty(), "--out writes the file, not stdout");
    let page = std::fs::read_to_string(&out).expect("the HTML report");
    artefact("report-sample.html", &page);
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Sections: all, kallio, kotka-neuvonta, vuosaari; four charts each.
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    assert_eq!(page.matches("<svg").count(), 4 * 4, "four charts per section");
    assert!(page.contains("<h2 id=\"s-kallio\">kallio</h2>"));
    let bare = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for outside in ["<script", "http://", "https://", "src=", "href=", "url(", "@import", "<link"] {
        assert!(!bare.contains(outside), "{outside} in the HTML report");
    }
    for number in ["+358", "040"] {
        assert!(!csv.contains(number) && !text.contains(number), "a number in the report");
    }

    // --lang: Finnish headings and labels; the CSV keys stay the same identifiers.
    let fi = run(setup, &["--week", "2026-W52", "--service", "kallio", "--lang", "fi"]);
    artefact("report-sample-fi.txt", &fi);
    assert!(fi.starts_with("callbackd-raportti 2026-W52 (2026-12-21 .. 2026-12-27"), "{fi}");
    let line = |name: &str| {
        fi.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {fi}"))
    };
    assert!(line("tavoitettu samana päivänä").ends_with("50.0%      100.0%"), "{fi}");
    assert!(line("to 12-24").split_whitespace().eq(["to", "12-24", "0", "0", "-", "-"]));
    assert!(!fi.contains("same day rate") && !fi.contains("By day"), "{fi}");
    let csv_fi = run(setup, &["--week", "2026-W52", "--format", "csv", "--lang", "fi"]);
    assert_eq!(csv_fi, csv, "CSV is the same in every language");
    let out = setup.dir.path().join("raportti.html");
    let path = out.to_str().expect("UTF-8");
    run(setup, &["--week", "2026-W52", "--format", "html", "--lang", "sv", "--out", path]);
    let page = std::fs::read_to_string(&out).expect("the HTML report");
    assert!(page.contains("<html lang=\"sv\">"));
    assert!(page.contains("<h2 id=\"s-all\">Alla tjänster</h2>"));
    assert!(page.contains("<td>nådda samma dag</td>"));
    assert!(!page.contains(">same day rate<") && !page.contains(">All services<"));
}

#[test]
fn report_on_sqlite() {
    let setup = Setup::new();
    let url = format!("sqlite:{}", setup.database().display());
    tokio::runtime::Runtime::new().expect("runtime").block_on(fill(&url));
    check(&setup);
}

#[test]
fn report_on_postgres() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(common::pg::TestDb::create()) else { return };
    rt.block_on(fill(&db.url));
    let setup = Setup::new();
    let mut config = std::fs::read_to_string(&setup.config).expect("config");
    config = config.replace("database = \"sqlite:queue.db\"", &format!("database = {:?}", db.url));
    std::fs::write(&setup.config, config).expect("write config");
    check(&setup);
}

/// The HTML report as a supervisor opens it: from a file, in Chromium, offline. Every
/// chart is drawn, nothing is fetched from anywhere, no console error; a screenshot is kept
/// (`target/test-artefacts/report-desktop.png`, the README's `docs/report.png`).
#[tokio::test]
async fn the_html_report_in_a_browser() {
    let Some(browser) = common::browser::Browser::start().await else { return };
    let setup = Setup::new();
    fill(&format!("sqlite:{}", setup.database().display())).await;
    let out = setup.dir.path().join("raportti.html");
    let path = out.to_str().expect("UTF-8");
    run(&setup, &["--week", "2026-W52", "--format", "html", "--lang", "fi", "--out", path]);
    // Tall enough for the whole first section: charts, figures and the day table.
    browser.client().set_window_size(1000, 1800).await.expect("resize the window");
    browser.goto(&format!("file://{path}")).await;
    let text = browser.wait_for_text("callbackd-raportti 2026-W52").await;
    assert!(text.contains("Kaikki palvelut"), "{text}");
    assert!(!text.contains("+358") && !text.contains("040"), "a number in the report");
    // Every chart laid out at a readable size, not just present in the file.
    let drawn = browser
        .client()
        .execute(
            "return Array.from(document.querySelectorAll('svg')).filter(s => {
                 const r = s.getBoundingClientRect();
                 return r.width >= 200 && r.height >= 100 && s.querySelectorAll('rect, path, line, polyline').length > 5;
             }).length;",
            vec![],
        )
        .await
        .expect("count the charts");
    assert_eq!(drawn.as_u64(), Some(16), "four charts in each of four sections");
    browser.screenshot("report-desktop").await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    // A file has no origin of its own: every network request would be an outside one.
    assert_eq!(browser.external_requests("file://").await, Vec::<String>::new());
    browser.close().await;
}

#[test]
fn bad_input_and_a_missing_store() {
    let setup = Setup::new();
    let code = |args: &[&str]| {
        let mut all = vec!["report", "--config", setup.config_arg()];
        all.extend_from_slice(args);
        let out = setup.cli(&all);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (c, err) = code(&["--week", "2026-W54"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("not an ISO week"), "{err}");
    assert_eq!(code(&["--month", "2026-13"]).0, Some(2));
    assert_eq!(code(&["--from", "2026-11-02", "--to", "2026-11-01"]).0, Some(2));
    let (c, err) = code(&["--lang", "de"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("expected one of fi, sv, en"), "{err}");
    let (c, err) = code(&["--service", "nowhere"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("unknown service"), "{err}");
    // A report never creates the queue: no file, a runtime failure, still no file.
    let (c, err) = code(&["--week", "2026-W52"]);
    assert_eq!(c, Some(1), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!setup.database().exists());
    // Services in different time zones have no common days and hours: refused, by name.
    let plans = setup.dir.path().join("dialplans");
    std::fs::create_dir(&plans).expect("dialplans dir");
    for f in ["kallio.toml", "kotka-neuvonta.toml", "vuosaari.toml"] {
        let text = std::fs::read_to_string(common::repo().join("dialplans").join(f)).expect(f);
        let text = if f == "kotka-neuvonta.toml" {
            text.replace("capacity = 10", "capacity = 10\ntimezone = \"Europe/Stockholm\"")
        } else {
            text
        };
        std::fs::write(plans.join(f), text).expect("write dialplan");
    }
    setup.point_at(&setup.pbx.addr, &plans, "");
    let (c, err) = code(&["--week", "2026-W52"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("kotka-neuvonta (Europe/Stockholm)"), "{err}");
    assert!(err.contains("kallio (Europe/Helsinki)"), "{err}");
    // One service alone is one zone: past the check (and on to the missing store).
    let (c, err) = code(&["--week", "2026-W52", "--service", "kotka-neuvonta"]);
    assert_eq!(c, Some(1), "{err}");
    std::fs::write(&setup.config, "nonsense = [").expect("write");
    assert_eq!(code(&[]).0, Some(64));
}

/// A declined request (its last finished attempt declined) and a request still in a call
/// (a live attempt after an answered one), beside the history, for [`both_ways`].
async fn fill_more(url: &str) {
    let url = url.replace("sqlite:", "sqlite://");
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let rows = [
        (
            "cancelled",
            at(12, 22, 8, 0),
            vec![
                (at(12, 22, 8, 10), Some("busy"), None),
                (at(12, 22, 9, 0), Some("declined"), None),
            ],
        ),
        (
            "dialing",
            at(12, 23, 10, 0),
            vec![
                (at(12, 23, 10, 5), Some("no_answer"), None),
                (at(12, 23, 11, 0), None, Some(at(12, 23, 11, 1))),
            ],
        ),
        ("pending", at(12, 28, 9, 0), vec![]),
    ];
    for (state, created, attempts) in rows {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO requests (service, number, state, channel, lang, created_at, deadline_at, \
             expires_at, told_from, told_to) \
             VALUES ('vuosaari', NULL, $1, 'ivr', 'fi', $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(state)
        .bind(created)
        .bind(created + 6 * HOUR)
        .bind(created + 72 * HOUR)
        .bind(created + HOUR)
        .bind(created + 2 * HOUR)
        .fetch_one(&mut conn)
        .await
        .expect("insert request");
        for (seq, (start, outcome, answered)) in attempts.iter().enumerate() {
            sqlx::query(
                "INSERT INTO attempts (request_id, seq, started_at, ended_at, outcome, answered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(seq as i64 + 1)
            .bind(*start)
            .bind(outcome.map(|_| *start + 60_000))
            .bind(*outcome)
            .bind(*answered)
            .execute(&mut conn)
            .await
            .expect("insert attempt");
        }
    }
    conn.close().await.expect("close");
}

/// The store's read (both periods' requests joined to their attempts in one ordered pass,
/// the SMS counted in SQL) against the same figures computed from the plain rows of both
/// periods read apart: the previous period's sums and percentiles, and the whole report,
/// equal.
async fn both_ways(url: &str) {
    use callbackd::report::{self, Period, Query};
    let store = callbackd::store::Store::open(url).await.expect("open the store");
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    let all: Vec<String> = ["kallio", "kotka-neuvonta", "vuosaari"].map(String::from).to_vec();
    let cases = [
        (Period::week("2026-W52"), all.clone()),
        (Period::week("2027-W01"), all.clone()), // the Christmas week is the previous one
        (Period::week("2026-W44"), vec!["kallio".to_owned()]), // after the DST week
        (Period::month("2027-01"), all.clone()),
        (Period::month("2026-11"), all.clone()),
        (
            Period::range(date(2026, 12, 24), date(2026, 12, 31)),
            vec!["vuosaari".to_owned(), "kallio".to_owned()],
        ),
    ];
    // Before some deadlines (undecided requests) and after all of them.
    for now in [at(12, 23, 12, 0), at(12, 31, 12, 0)] {
        let now = jiff::Timestamp::from_millisecond(now).expect("instant");
        for (period, services) in &cases {
            let query = Query {
                period: period.clone().expect("period"),
                services: services.clone(),
                tz: tz.clone(),
            };
            let (from, _) = query.period.previous().instants(&tz);
            let (_, to) = query.period.instants(&tz);
            let rows = store.history(&query.services, from, to).await.expect("rows");
            let by_rows = report::read_rows(&rows, &query, now);
            let by_sql = callbackd::store::report::read(url, &query, now).await.expect("read");
            assert_eq!(by_sql.previous, by_rows.previous, "{} at {now}", query.period);
            assert!(by_sql.previous.services.iter().any(|t| t.requests > 0), "a previous period");
            let json = |r: &report::Report| serde_json::to_value(r).expect("JSON");
            assert_eq!(
                json(&report::compute_read(&by_sql, &query, now)),
                json(&report::compute(&rows, &query, now)),
                "{} at {now}",
                query.period
            );
        }
    }
    store.close().await;
}

/// Every statement of the report's read finds its requests through `requests_created`, on
/// the created-at range (SQLite's plans; PostgreSQL chooses by its statistics).
async fn plans(url: &str) {
    use callbackd::report::{Period, Query};
    let query = Query {
        period: Period::month("2026-12").expect("month"),
        services: vec!["kallio".to_owned(), "vuosaari".to_owned()],
        tz: TimeZone::get("Europe/Helsinki").expect("tz"),
    };
    let now = jiff::Timestamp::from_millisecond(at(12, 31, 12, 0)).expect("instant");
    let plans = callbackd::store::report::explain(url, &query, now).await.expect("explain");
    for (name, plan) in &plans {
        println!("-- {name}\n{plan}");
        if url.starts_with("sqlite:") {
            assert!(
                plan.contains("INDEX requests_created (created_at>? AND created_at<?)"),
                "{name}: {plan}"
            );
        }
    }
    assert_eq!(plans.len(), 2);
}

#[test]
fn sql_sums_equal_rows_on_sqlite() {
    let setup = Setup::new();
    let url = format!("sqlite:{}", setup.database().display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        fill(&url).await;
        fill_more(&url).await;
        both_ways(&url).await;
        plans(&url).await;
    });
}

#[test]
fn sql_sums_equal_rows_on_postgres() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(common::pg::TestDb::create()) else { return };
    rt.block_on(async {
        fill(&db.url).await;
        fill_more(&db.url).await;
        both_ways(&db.url).await;
        plans(&db.url).await;
    });
}
