//! `callbackd serve` as a black box: the real binary as a child process, its HTTP API, its
//! SQLite queue across crashes, the operator CLI beside it, and its logs.
//!
//! The daemon dials through a fake PBX (see `common::FakePbx`) that answers every call
//! `486 Busy Here`, so a request that is due is dialled once at once, counted busy, and then
//! waits its `pause` in `retry_wait`. Nothing here depends on today's date or the time of
//! day: exact timing is asserted only for the 24/7 service `kotka-neuvonta`; for the
//! Helsinki services only relations between instants are, and either state a request may
//! be in (dialled if the station is open, pending if not).

mod common;

use common::{
    Daemon, Setup, WAIT, assert_logs_masked, assert_no_unmasked_numbers, i, path_of, post_json, s,
    t, wait_for_exit,
};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

const KOTKA: &str = "kotka-neuvonta";
/// States of a request that is still alive.
const LIVE: [&str; 3] = ["pending", "dialing", "retry_wait"];

fn req(service: &str, number: &str) -> Value {
    json!({ "service": service, "number": number })
}

/// `eta` is null or `{from, to}` with `from <= to`; returns the pair when present.
fn eta(v: &Value) -> Option<(Timestamp, Timestamp)> {
    match &v["eta"] {
        Value::Null => None,
        e @ Value::Object(_) => {
            let (from, to) = (t(e, "from"), t(e, "to"));
            assert!(from <= to, "eta from after to: {v}");
            Some((from, to))
        }
        other => panic!("eta is neither null nor an object: {other}"),
    }
}

/// The relations every waiting request's instants keep, whatever the time of day.
fn assert_waiting_request(v: &Value, service: &str) {
    assert_eq!(s(v, "service"), service, "{v}");
    assert!(["pending", "retry_wait"].contains(&s(v, "state")), "not waiting: {v}");
    let (created, due, deadline, expires) =
        (t(v, "created_at"), t(v, "due_at"), t(v, "deadline"), t(v, "expires"));
    assert!(due >= created, "due before created: {v}");
    assert!(deadline > created, "deadline not after created: {v}");
    assert!(deadline <= expires, "deadline after expiry: {v}");
    assert!(due < expires, "due not before expiry: {v}");
    assert!(v["final_at"].is_null() && v["end_reason"].is_null(), "{v}");
    // Whether the deadline has passed depends on the time of day: only its type is fixed.
    assert!(v["deadline_missed"].is_boolean(), "{v}");
    assert_eq!(v["cancel_requested"], json!(false), "{v}");
    eta(v);
}

/// `HH:MM:SS` of an API time (they are written in the service's local time).
fn clock_of(v: &Value, key: &str) -> String {
    s(v, key)[11..19].to_owned()
}

/// queue_depth of each service, from `GET /v1/services`.
async fn depths(d: &Daemon) -> BTreeMap<String, i64> {
    let (status, list) = d.get("/v1/services").await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .expect("services is an array")
        .iter()
        .map(|svc| (s(svc, "id").to_owned(), i(svc, "queue_depth")))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// 1. Intake: accepted, normalised, deduplicated, masked.
#[tokio::test]
async fn intake_accepts_normalises_and_deduplicates() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;

    let (status, a) = d.post(&req("kallio", "040 123 4567")).await;
    assert_eq!(status, 201, "{a}");
    let id = i(&a, "id");
    assert!(id > 0, "{a}");
    assert_eq!(a["duplicate"], json!(false));
    assert_eq!(s(&a, "state"), "pending", "a new request is pending: {a}");
    assert_eq!(s(&a, "number"), "+35840*****67", "the number is shown masked");
    assert_waiting_request(&a, "kallio");
    assert_eq!(s(&a, "channel"), "api");
    assert_eq!(s(&a, "lang"), "fi", "the service's default language");
    assert!(a["window"].is_null() && a["sms_consent"] == json!(false), "{a}");
    assert_no_unmasked_numbers("POST response", &a.to_string());

    // The same number written every accepted way is the same live request.
    for same in ["+358401234567", "00358401234567", "040 123 4567", "0401234567"] {
        let (status, b) = d.post(&req("kallio", same)).await;
        assert_eq!(status, 200, "{same}: {b}");
        assert_eq!(b["duplicate"], json!(true), "{same}: {b}");
        assert_eq!(i(&b, "id"), id, "{same}: the duplicate names the live request");
        assert!(LIVE.contains(&s(&b, "state")), "{b}");
        assert_eq!(s(&b, "number"), "+35840*****67");
        assert_eq!(b["created_at"], a["created_at"], "the original request, not a new one");
    }

    // Another service keeps its own queue: a new request.
    let (status, k) = d.post(&req(KOTKA, "+358401234567")).await;
    assert_eq!(status, 201, "{k}");
    assert_eq!(k["duplicate"], json!(false));
    let kid = i(&k, "id");
    assert_ne!(kid, id);
    assert_waiting_request(&k, KOTKA);
    // Open around the clock: due at once.
    assert_eq!(k["due_at"], k["created_at"], "a 24/7 service dials a new request at once");
    let (kf, _) = eta(&k).expect("a 24/7 service with an empty queue has an ETA");
    let created = t(&k, "created_at");
    assert!(
        kf.duration_since(created).as_secs().abs() <= 15 * 60,
        "ETA of an empty 24/7 queue starts within a quarter hour of now: {k}"
    );

    let (status, v) = d.post(&req("vuosaari", "040 123 4567")).await;
    assert_eq!(status, 201, "{v}");
    assert!(i(&v, "id") != id && i(&v, "id") != kid);
    assert_waiting_request(&v, "vuosaari");

    // Optional fields are kept; a window's due time and ETA fall inside the window.
    let body = json!({
        "service": "kallio",
        "number": "050 111 2233",
        "window": "12:00-14:00",
        "lang": "sv",
        "sms_consent": true,
        "channel": "web",
    });
    let (status, w) = d.post(&body).await;
    assert_eq!(status, 201, "{w}");
    assert_waiting_request(&w, "kallio");
    assert_eq!(s(&w, "window"), "12:00-14:00");
    assert_eq!(s(&w, "lang"), "sv");
    assert_eq!(s(&w, "channel"), "web");
    assert_eq!(w["sms_consent"], json!(true));
    assert_eq!(s(&w, "number"), "+35850*****33");
    let due = clock_of(&w, "due_at");
    // The closing margin (`last_call_before_close`) shortens the opening hours, not the
    // window: a request made at 13:57 may still be called before 14:00.
    assert!(("12:00:00".."14:00:00").contains(&due.as_str()), "due {due} outside 12-14: {w}");
    if eta(&w).is_some() {
        let (from, to) = (clock_of(&w["eta"], "from"), clock_of(&w["eta"], "to"));
        assert!(("12:00:00".."14:00:00").contains(&from.as_str()), "eta from {from}: {w}");
        assert!(("12:00:01".."14:00:01").contains(&to.as_str()), "eta to {to}: {w}");
    }

    // One ETA: the answer says whether the callback comes the same day, and a GET tells
    // the window the intake answer told while the request still waits for its first call.
    assert!(w["same_day"].is_boolean() || w["eta"].is_null(), "{w}");
    let gw = d.settled(i(&w, "id")).await;
    if s(&gw, "state") == "pending" {
        assert_eq!((&gw["eta"], &gw["same_day"]), (&w["eta"], &w["same_day"]), "{w} / {gw}");
    }

    let depth = depths(&d).await;
    assert_eq!(depth.get("kallio"), Some(&2), "{depth:?}");
    assert_eq!(depth.get(KOTKA), Some(&1), "{depth:?}");
    assert_eq!(depth.get("vuosaari"), Some(&1), "{depth:?}");
    assert_logs_masked(&d.logs());
}

// 2. Bad input is refused with a field-naming JSON error, and nothing is stored.
#[tokio::test]
async fn intake_refuses_bad_input_and_stores_nothing() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;

    // An Estonian mobile is fine for the advice line that allows EE.
    let (status, ee) = d.post(&req(KOTKA, "+372 5123 4567")).await;
    assert_eq!(status, 201, "{ee}");
    assert_eq!(s(&ee, "number"), "+37251****67");
    let before = depths(&d).await;
    assert_eq!(before.values().sum::<i64>(), 1, "{before:?}");

    let n = "040 123 4567";
    let cases: Vec<(Value, u16, &[&str], &str)> = vec![
        (req("nosuch", n), 404, &["unknown_service"], "service"),
        (req("", n), 404, &["unknown_service"], "service"),
        (req("kallio", "hello"), 422, &["invalid_number"], "number"),
        (req("kallio", "040 123"), 422, &["invalid_number"], "number"),
        (req("kallio", ""), 422, &["invalid_number"], "number"),
        (req("kallio", "1234567890"), 422, &["invalid_number"], "number"),
        (req("kallio", "0700 123 456"), 422, &["premium_rate_number"], "number"),
        (req(KOTKA, "0700 123 456"), 422, &["premium_rate_number"], "number"),
        (req("kallio", "0800 123 456"), 422, &["service_number"], "number"),
        (req("kallio", "112"), 422, &["service_number", "invalid_number"], "number"),
        (req("kallio", "116117"), 422, &["service_number", "invalid_number"], "number"),
        (req("kallio", "+46 70 123 45 67"), 422, &["foreign_number"], "number"),
        (req(KOTKA, "+46 70 123 45 67"), 422, &["foreign_number"], "number"),
        (req("kallio", "+372 5123 4567"), 422, &["foreign_number"], "number"),
        (
            json!({"service": "kallio", "number": n, "window": "18:00-20:00"}),
            422,
            &["window_not_offered"],
            "window",
        ),
        (
            json!({"service": "kallio", "number": n, "window": "noon"}),
            422,
            &["window_not_offered"],
            "window",
        ),
        (
            json!({"service": "vuosaari", "number": n, "window": "08:00-10:00"}),
            422,
            &["window_not_offered"],
            "window",
        ),
        (
            json!({"service": "kallio", "number": n, "lang": "de"}),
            422,
            &["unknown_language"],
            "lang",
        ),
        (
            json!({"service": "kallio", "number": n, "channel": "Web Form!"}),
            422,
            &["invalid_channel"],
            "channel",
        ),
    ];
    for (body, want_status, codes, field) in &cases {
        let (status, e) = d.post(body).await;
        assert_eq!(status, *want_status, "{body} -> {e}");
        assert!(codes.contains(&s(&e, "error")), "{body}: error {} not in {codes:?}", e["error"]);
        assert_eq!(s(&e, "field"), *field, "{body} -> {e}");
        assert!(!s(&e, "message").is_empty(), "{body} -> {e}");
    }
    // "offered: none" tells the caller why no window works at Vuosaari.
    let (_, e) = d.post(&cases[16].0).await;
    assert!(s(&e, "message").contains("none"), "{e}");

    // Bodies that are not a callback request at all.
    for raw in [
        "{not json",
        "",
        "[]",
        r#"{"service": "kallio"}"#,
        r#"{"number": "040 123 4567"}"#,
        r#"{"service": "kallio", "number": "040 123 4567", "colour": "red"}"#,
        r#"{"service": "kallio", "number": 401234567}"#,
    ] {
        let (status, e) = d.post_raw(raw).await;
        assert_eq!(status, 400, "{raw:?} -> {e}");
        assert_eq!(s(&e, "error"), "invalid_body", "{raw:?} -> {e}");
        assert!(!s(&e, "message").is_empty(), "{raw:?} -> {e}");
    }
    let (_, e) =
        d.post_raw(r#"{"service": "kallio", "number": "040 123 4567", "colour": "red"}"#).await;
    assert!(s(&e, "message").contains("colour"), "the unknown field is named: {e}");

    // Nothing of the above was stored.
    assert_eq!(depths(&d).await, before, "a rejected request must not be stored");
    let (status, ok) = d.post(&req("kallio", n)).await;
    assert_eq!(status, 201, "the number was never stored for kallio: {ok}");
    assert_eq!(ok["duplicate"], json!(false));
    assert_logs_masked(&d.logs());
}

// 3. A request's status.
#[tokio::test]
async fn status_shows_state_attempts_place_and_eta() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let (_, a) = d.post(&req(KOTKA, "050 111 2233")).await;
    let (_, b) = d.post(&req(KOTKA, "040 777 8899")).await;
    let (_, c) = d.post(&req("kallio", "040 777 8899")).await;
    let (a_id, b_id, c_id) = (i(&a, "id"), i(&b, "id"), i(&c, "id"));

    // Open 24/7: dialled at once, busy, then waiting its pause.
    let ga = d.settled(a_id).await;
    assert_waiting_request(&ga, KOTKA);
    assert_eq!(i(&ga, "id"), a_id);
    assert_eq!(s(&ga, "state"), "retry_wait", "{ga}");
    let attempts = ga["attempts"].as_array().expect("attempts is an array");
    assert_eq!(attempts.len(), 1, "one attempt: {ga}");
    let attempt = &attempts[0];
    assert_eq!((i(attempt, "seq"), s(attempt, "outcome")), (1, "busy"), "{attempt}");
    assert_eq!(i(attempt, "sip_code"), 486, "{attempt}");
    let ended = t(attempt, "ended_at");
    assert!(t(attempt, "started_at") >= t(&ga, "created_at") && ended >= t(attempt, "started_at"));
    assert_eq!(
        t(&ga, "due_at").duration_since(ended).as_secs(),
        20 * 60,
        "kotka-neuvonta retries a busy number after its 20 min pause: {ga}"
    );
    assert_eq!(i(&ga, "place"), 1, "first in its queue: {ga}");
    assert_eq!(s(&ga, "number"), "+35850*****33");
    for key in ["created_at", "deadline", "expires", "number", "channel", "lang"] {
        assert_eq!(ga[key], a[key], "{key} differs between POST and GET");
    }
    let gb = d.settled(b_id).await;
    assert_eq!(i(&gb, "place"), 2, "second in its queue: {gb}");
    assert_waiting_request(&gb, KOTKA);
    // Kallio: pending if closed now, dialled once if open; first in its own queue anyway.
    let gc = d.settled(c_id).await;
    assert_waiting_request(&gc, "kallio");
    assert_eq!(i(&gc, "place"), 1, "places are counted per service: {gc}");
    let tried = gc["attempts"].as_array().map_or(0, Vec::len);
    assert_eq!(tried, usize::from(s(&gc, "state") == "retry_wait"), "{gc}");
    assert!(setup.pbx.invites() >= 2, "the PBX saw the calls");
    assert_no_unmasked_numbers("GET response", &format!("{ga}{gb}{gc}"));

    let (status, e) = d.get(&path_of(999_999)).await;
    assert_eq!((status, s(&e, "error"), s(&e, "field")), (404, "not_found", "id"), "{e}");
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let (status, e) = d.get(&format!("/v1/callbacks/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {e}");
        assert_eq!((s(&e, "error"), s(&e, "field")), ("invalid_id", "id"), "{bad}: {e}");
    }
    let (status, e) = d.get("/v1/nothing-here").await;
    assert_eq!((status, s(&e, "error")), (404, "not_found"), "{e}");
    assert_logs_masked(&d.logs());
}

// 4. Cancellation.
#[tokio::test]
async fn cancel_ends_a_request_once_and_frees_the_number() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let (_, a) = d.post(&req(KOTKA, "044 333 2211")).await;
    let (_, b) = d.post(&req(KOTKA, "040 654 3210")).await;
    let (a_id, b_id) = (i(&a, "id"), i(&b, "id"));
    // Wait until neither is being dialled (a live call is not interrupted by a cancel).
    d.settled(a_id).await;
    let gb = d.settled(b_id).await;
    assert_eq!(i(&gb, "place"), 2);

    let (status, c) = d.delete(&path_of(a_id)).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c, json!({ "id": a_id, "state": "cancelled" }));

    let (status, ga) = d.get(&path_of(a_id)).await;
    assert_eq!(status, 200);
    assert_eq!(s(&ga, "state"), "cancelled", "{ga}");
    assert_eq!(s(&ga, "end_reason"), "cancelled by api", "{ga}");
    assert!(t(&ga, "final_at") >= t(&ga, "created_at"), "{ga}");
    assert!(ga["due_at"].is_null() && ga["place"].is_null() && ga["eta"].is_null(), "{ga}");
    let (_, gb) = d.get(&path_of(b_id)).await;
    assert_eq!(i(&gb, "place"), 1, "the cancelled request no longer stands ahead: {gb}");

    let (status, e) = d.delete(&path_of(a_id)).await;
    assert_eq!((status, s(&e, "error"), s(&e, "field")), (409, "already_final", "id"), "{e}");
    assert!(s(&e, "message").contains("cancelled"), "{e}");
    let (status, e) = d.delete(&path_of(999_999)).await;
    assert_eq!((status, s(&e, "error")), (404, "not_found"), "{e}");
    let (status, e) = d.delete("/v1/callbacks/abc").await;
    assert_eq!((status, s(&e, "error")), (400, "invalid_id"), "{e}");

    // The number may leave a new request once the old one ended.
    let (status, again) = d.post(&req(KOTKA, "044 333 2211")).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["duplicate"], json!(false));
    assert!(i(&again, "id") != a_id && i(&again, "id") != b_id, "{again}");
    assert_eq!(depths(&d).await.get(KOTKA), Some(&2));
    // The old one stays cancelled.
    let (_, ga) = d.get(&path_of(a_id)).await;
    assert_eq!(s(&ga, "state"), "cancelled");
    assert_logs_masked(&d.logs());
}

// 5 and 6. Services, health and readiness.
#[tokio::test]
async fn services_health_and_readiness() {
    let started = Timestamp::now();
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;

    let (status, body) = d.get_text("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = d.get_text("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    let (status, list) = d.get("/v1/services").await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("an array");
    let ids: BTreeSet<&str> = list.iter().map(|v| s(v, "id")).collect();
    assert_eq!(ids, BTreeSet::from(["kallio", "kotka-neuvonta", "vuosaari"]));
    for svc in list {
        assert!(!s(svc, "name").is_empty(), "{svc}");
        assert_eq!(i(svc, "queue_depth"), 0, "{svc}");
        let open = svc["open_now"].as_bool().unwrap_or_else(|| panic!("open_now: {svc}"));
        if open {
            assert!(svc["next_opening"].is_null(), "open now, so no next opening: {svc}");
        } else {
            assert!(t(svc, "next_opening") > started, "next opening lies ahead: {svc}");
        }
        assert!(svc["windows"].is_array(), "{svc}");
        eta(svc);
    }
    let by_id: BTreeMap<&str, &Value> = list.iter().map(|v| (s(v, "id"), v)).collect();
    let kotka = by_id[KOTKA];
    assert_eq!(kotka["open_now"], json!(true), "24/7: {kotka}");
    assert!(kotka["next_opening"].is_null(), "{kotka}");
    assert!(eta(kotka).is_some(), "an open 24/7 service can tell its ETA: {kotka}");
    assert_eq!(by_id["kallio"]["windows"].as_array().map(Vec::len), Some(4));
    assert_eq!(by_id["vuosaari"]["windows"], json!([]));

    d.post(&req(KOTKA, "050 111 2233")).await;
    d.post(&req("kallio", "050 111 2233")).await;
    let depth = depths(&d).await;
    assert_eq!(
        depth,
        BTreeMap::from([
            ("kallio".to_owned(), 1),
            (KOTKA.to_owned(), 1),
            ("vuosaari".to_owned(), 0)
        ])
    );
    assert_logs_masked(&d.logs());
}

fn metric(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap_or_else(|e| panic!("metric value in {v:?}: {e}")))
}

// 7. Metrics, checked by promtool.
#[tokio::test]
async fn metrics_count_requests_and_pass_promtool() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let mut ids = Vec::new();
    for (service, number, want) in [
        (KOTKA, "040 999 8801", 201),
        (KOTKA, "040 999 8802", 201),
        (KOTKA, "+358409998801", 200),
        (KOTKA, "0700 123 456", 422),
        ("kallio", "040 999 8803", 201),
    ] {
        let (status, v) = d.post(&req(service, number)).await;
        assert_eq!(status, want, "{number}: {v}");
        if status == 201 {
            ids.push(i(&v, "id"));
        }
    }
    for id in ids {
        d.settled(id).await;
    }

    let (status, scrape) = d.get_text("/metrics").await;
    assert_eq!(status, 200);
    let k = ("service", KOTKA);
    let requests = "callbackd_requests_total";
    assert_eq!(metric(&scrape, requests, &[k, ("result", "accepted")]), Some(2.0), "{scrape}");
    assert_eq!(metric(&scrape, requests, &[k, ("result", "duplicate")]), Some(1.0), "{scrape}");
    assert_eq!(metric(&scrape, requests, &[k, ("result", "rejected")]), Some(1.0), "{scrape}");
    assert!(metric(&scrape, requests, &[k, ("channel", "api")]).is_some(), "{scrape}");
    let depth = "callbackd_queue_depth";
    let live = |service: &str| -> f64 {
        LIVE.iter()
            .map(|state| {
                metric(&scrape, depth, &[("service", service), ("state", state)])
                    .unwrap_or_else(|| panic!("no {depth} for {service} {state}:\n{scrape}"))
            })
            .sum()
    };
    assert_eq!((live(KOTKA), live("kallio"), live("vuosaari")), (2.0, 1.0, 0.0), "{scrape}");
    assert_eq!(metric(&scrape, depth, &[k, ("state", "retry_wait")]), Some(2.0), "{scrape}");
    let attempts = "callbackd_attempts_total";
    assert_eq!(metric(&scrape, attempts, &[k, ("outcome", "busy")]), Some(2.0), "{scrape}");
    assert_eq!(metric(&scrape, "callbackd_build_info", &[]), Some(1.0), "{scrape}");
    assert!(scrape.contains("# TYPE callbackd_requests_total counter"), "{scrape}");
    assert!(scrape.contains("# TYPE callbackd_queue_depth gauge"), "{scrape}");
    assert_no_unmasked_numbers("/metrics", &scrape);

    // The exposition format as Prometheus itself reads it.
    let Some(promtool) = common::tool("promtool", "prometheus") else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        // Dropping stdin at the end of this block closes it: promtool reads to EOF.
        let mut stdin = child.stdin.take().expect("promtool stdin");
        stdin.write_all(scrape.as_bytes()).expect("pipe the scrape to promtool");
    }
    let status = wait_for_exit(&mut child, WAIT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("promtool did not finish within {WAIT:?}");
    });
    let mut report = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut report).expect("promtool stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut report).expect("promtool stderr");
    }
    assert!(
        status.success(),
        "promtool check metrics failed ({status}):\n{report}\n--- scrape ---\n{scrape}"
    );
    assert_logs_masked(&d.logs());
}

// Concurrent intakes share a commit and are written together: each answered on its own
// (a repeated number as the duplicate of the one stored), each told window stored with its
// request, and the batch counted as written together, none after a refusal.
#[tokio::test]
async fn concurrent_intakes_are_written_together_and_each_keeps_its_answer() {
    use sqlx::Connection;
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    // Holding SQLite's write lock from another connection makes the daemon's writer wait
    // on its first batch, so every intake posted meanwhile joins the next one.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(setup.database());
    let mut lock = sqlx::SqliteConnection::connect_with(&opts).await.expect("side connection");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.expect("take the write lock");
    let numbers: Vec<String> = (0..20)
        .map(|i| format!("040 555 {:04}", 1000 + i))
        .chain(["040 555 1003".to_owned(), "040 555 1007".to_owned()])
        .collect();
    let bodies: Vec<Value> = numbers.iter().map(|n| req(KOTKA, n)).collect();
    let posts = bodies.iter().map(|b| d.post(b));
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        sqlx::query("COMMIT").execute(&mut lock).await.expect("release the write lock");
    };
    let (answers, ()) = tokio::join!(futures_util::future::join_all(posts), release);
    let mut by_number: BTreeMap<String, Vec<(u16, Value)>> = BTreeMap::new();
    for (n, (status, v)) in numbers.iter().zip(answers) {
        by_number.entry(n.clone()).or_default().push((status, v));
    }
    assert_eq!(by_number.len(), 20);
    for (n, answers) in &by_number {
        let created: Vec<&Value> = answers.iter().filter(|a| a.0 == 201).map(|a| &a.1).collect();
        assert_eq!(created.len(), 1, "{n}: one request stored: {answers:?}");
        for (status, v) in answers {
            assert!(*status == 201 || *status == 200, "{n}: {status} {v}");
            assert_eq!(i(v, "id"), i(created[0], "id"), "{n}: one request: {answers:?}");
        }
        // The window the intake told is the one stored with the request.
        let got = d.settled(i(created[0], "id")).await;
        if s(&got, "state") == "pending" {
            assert_eq!(got["eta"], created[0]["eta"], "{n}: {got}");
        }
    }
    let (_, scrape) = d.get_text("/metrics").await;
    let batches = "callbackd_intake_batches_total";
    let together = metric(&scrape, batches, &[("written", "together")]).unwrap_or(0.0);
    assert!(together >= 1.0, "a batch written together:\n{scrape}");
    let refused = metric(&scrape, batches, &[("written", "after_refusal")]);
    assert_eq!(refused, None, "no batch fell back to one at a time:\n{scrape}");
}

// Client text never becomes a metric label.
#[tokio::test]
async fn rejected_requests_do_not_add_client_text_to_metrics() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let junk = json!({"service": "no-such-service-7f3a", "number": "040 123 4567"});
    assert_eq!(d.post(&junk).await.0, 404);
    let junk =
        json!({"service": "kallio", "number": "0700 123 456", "channel": "Bad Channel 9c1e"});
    assert_eq!(d.post(&junk).await.0, 422);
    let (_, scrape) = d.get_text("/metrics").await;
    assert!(!scrape.contains("no-such-service-7f3a"), "unknown service became a label:\n{scrape}");
    assert!(!scrape.contains("Bad Channel 9c1e"), "unchecked channel became a label:\n{scrape}");
}

/// The fields of a request that must survive a restart unchanged.
fn durable(v: &Value) -> Value {
    let keys = [
        "id",
        "service",
        "state",
        "number",
        "channel",
        "lang",
        "window",
        "sms_consent",
        "created_at",
        "due_at",
        "deadline",
        "expires",
        "cancel_requested",
        "final_at",
        "end_reason",
        "attempts",
    ];
    Value::Object(keys.iter().map(|k| ((*k).to_owned(), v[*k].clone())).collect())
}

// 8. Durability: kill -9 loses nothing; SIGTERM stops cleanly.
#[tokio::test]
async fn requests_survive_kill_9_and_sigterm_stops_cleanly() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let mut ids = Vec::new();
    for n in 0..50 {
        let mut body = req(KOTKA, &format!("040 555 00{n:02}"));
        body["lang"] = json!(["fi", "sv", "en"][n % 3]);
        body["sms_consent"] = json!(n % 2 == 0);
        let (status, v) = d.post(&body).await;
        assert_eq!(status, 201, "request {n}: {v}");
        ids.push(i(&v, "id"));
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 50, "50 distinct ids");
    for id in &ids {
        d.settled(*id).await;
    }
    for id in ids.iter().step_by(7) {
        assert_eq!(d.delete(&path_of(*id)).await.0, 200);
    }
    let mut before = Vec::new();
    for id in &ids {
        let (status, v) = d.get(&path_of(*id)).await;
        assert_eq!(status, 200, "{v}");
        before.push(durable(&v));
    }
    let states: BTreeSet<&str> = before.iter().map(|v| s(v, "state")).collect();
    assert_eq!(states, BTreeSet::from(["cancelled", "retry_wait"]), "{before:?}");
    let depth_before = depths(&d).await;
    assert_eq!(depth_before[KOTKA], 50 - 8, "{depth_before:?}");

    // One more, killed wherever it is (pending, mid-call or waiting).
    let (status, late) = d.post(&req(KOTKA, "040 555 0050")).await;
    assert_eq!(status, 201, "{late}");
    let late = i(&late, "id");

    // kill -9: no shutdown, no WAL checkpoint.
    let mut logs = d.kill9();
    let d = Daemon::start(&setup).await;
    for (id, want) in ids.iter().zip(&before) {
        let (status, v) = d.get(&path_of(*id)).await;
        assert_eq!(status, 200, "request {id} lost by kill -9: {v}");
        assert_eq!(&durable(&v), want, "request {id} changed across kill -9");
    }
    // A call cut by the crash is recorded, never left live; the request waits again.
    let v = d.settled(late).await;
    assert_eq!(s(&v, "state"), "retry_wait", "{v}");
    let attempts = v["attempts"].as_array().expect("attempts");
    assert!(!attempts.is_empty() && attempts.iter().all(|a| a["outcome"].is_string()), "{v}");
    assert_eq!(depths(&d).await[KOTKA], depth_before[KOTKA] + 1);
    // Deduplication still holds against the recovered queue.
    let (status, dup) = d.post(&req(KOTKA, "040 555 0001")).await;
    assert_eq!((status, i(&dup, "id")), (200, ids[1]), "{dup}");

    // SIGTERM: a clean stop, exit status 0.
    let (status, more) = d.terminate();
    logs.push_str(&more);
    assert_eq!(status.code(), Some(0), "SIGTERM exit status {status}; logs:\n{more}");
    assert!(more.contains("SIGTERM"), "the shutdown is logged:\n{more}");

    // And again after the clean stop.
    let d = Daemon::start(&setup).await;
    for (id, want) in ids.iter().zip(&before).step_by(5) {
        let (_, v) = d.get(&path_of(*id)).await;
        assert_eq!(&durable(&v), want, "request {id} changed across SIGTERM");
    }
    logs.push_str(&d.logs());
    assert_logs_masked(&logs);
}

/// The value of `key:` in the CLI's `describe` output.
fn cli_field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{key}:` line in:\n{out}"))
}

// 9. The operator CLI on the same SQLite file while the daemon runs.
#[tokio::test]
async fn cli_and_daemon_share_the_queue() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let cfg = setup.config_arg();
    let mut cli_output = String::new();

    let out = setup.cli(&["enqueue", KOTKA, "040 765 4321", "--config", cfg]);
    let stdout = text(&out.stdout);
    cli_output.push_str(&stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let id: i64 = cli_field(&stdout, "id").parse().expect("numeric id");
    assert_eq!(cli_field(&stdout, "state"), "pending");
    assert_eq!(cli_field(&stdout, "service"), KOTKA);
    assert_eq!(cli_field(&stdout, "number"), "+35840*****21");
    assert_eq!(cli_field(&stdout, "channel"), "cli");

    // The daemon sees it, and deduplicates against it.
    let (status, v) = d.get(&path_of(id)).await;
    assert_eq!(status, 200, "{v}");
    assert!(LIVE.contains(&s(&v, "state")) && s(&v, "channel") == "cli", "{v}");
    let (status, dup) = d.post(&req(KOTKA, "+358407654321")).await;
    assert_eq!((status, i(&dup, "id"), &dup["duplicate"]), (200, id, &json!(true)), "{dup}");
    let out = setup.cli(&["enqueue", KOTKA, "0407654321", "--config", cfg]);
    let stdout = text(&out.stdout);
    cli_output.push_str(&stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.starts_with("duplicate:"), "{stdout}");
    assert_eq!(cli_field(&stdout, "id"), id.to_string());

    let out = setup.cli(&["list", "--config", cfg, "--service", KOTKA]);
    let stdout = text(&out.stdout);
    cli_output.push_str(&stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("request {id} not listed:\n{stdout}"));
    assert!(row.contains(KOTKA) && row.contains("+35840*****21"), "{row}");
    assert!(LIVE.iter().any(|st| row.contains(st)), "{row}");
    let out = setup.cli(&["list", "--config", cfg, "--service", "kallio"]);
    assert_eq!(text(&out.stdout).lines().count(), 1, "only the header for kallio");

    let out = setup.cli(&["show", &id.to_string(), "--config", cfg]);
    let stdout = text(&out.stdout);
    cli_output.push_str(&stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(LIVE.contains(&cli_field(&stdout, "state")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("audit ") && l.contains("- -> pending by cli")));

    // The daemon dials what the CLI queued (it looks at the store at least every 5 s).
    let v = d.settled(id).await;
    assert_eq!(s(&v, "state"), "retry_wait", "{v}");
    let out = setup.cli(&["show", &id.to_string(), "--config", cfg]);
    let stdout = text(&out.stdout);
    cli_output.push_str(&stdout);
    assert_eq!(cli_field(&stdout, "state"), "retry_wait");
    assert!(stdout.lines().any(|l| l.starts_with("attempt 1: ") && l.contains("busy (SIP 486)")));
    assert!(stdout.lines().any(|l| l.contains("pending -> dialing by scheduler")), "{stdout}");

    let out = setup.cli(&["cancel", &id.to_string(), "--config", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("request {id} cancelled\n"));

    // The HTTP API reports what the CLI did.
    let (_, v) = d.get(&path_of(id)).await;
    assert_eq!(s(&v, "state"), "cancelled", "{v}");
    assert_eq!(s(&v, "end_reason"), "cancelled by cli", "{v}");
    assert_eq!(d.delete(&path_of(id)).await.0, 409);
    assert_eq!(depths(&d).await.get(KOTKA), Some(&0));

    let out = setup.cli(&["show", &id.to_string(), "--config", cfg]);
    let stdout = text(&out.stdout);
    cli_output.push_str(&stdout);
    assert_eq!(cli_field(&stdout, "state"), "cancelled");
    let cancelled = "retry_wait -> cancelled by cli";
    assert!(stdout.lines().any(|l| l.starts_with("audit ") && l.contains(cancelled)), "{stdout}");
    let out = setup.cli(&["cancel", &id.to_string(), "--config", cfg]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("already ended: cancelled"));

    // Refusals: exit code 2 for bad input, 1 for a missing request.
    let out = setup.cli(&["enqueue", KOTKA, "0700 123 456", "--config", cfg]);
    assert_eq!(out.status.code(), Some(2), "premium number: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("refused (number)"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let out = setup.cli(&["show", "999999", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = setup.cli(&["cancel", "999999", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    assert_no_unmasked_numbers("CLI output", &cli_output);
    assert_logs_masked(&d.logs());
}

// 10. Concurrent intake of one number: exactly one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_make_exactly_one_request() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let url = d.url("/v1/callbacks");

    let burst = |service: &'static str, number: &'static str| {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (http, url) = (d.client(), url.clone());
            set.spawn(async move { post_json(&http, &url, &req(service, number)).await });
        }
        set
    };
    for service in [KOTKA, "kallio"] {
        let mut set = burst(service, "045 550 0012");
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.expect("POST task"));
        }
        let created: Vec<&Value> =
            results.iter().filter(|(st, _)| *st == 201).map(|r| &r.1).collect();
        assert_eq!(created.len(), 1, "{service}: exactly one 201 of 20: {results:?}");
        let id = i(created[0], "id");
        for (status, v) in &results {
            assert!(*status == 201 || *status == 200, "{service}: {status} {v}");
            assert_eq!(i(v, "id"), id, "{service}: every answer names the one request: {v}");
            assert_eq!(v["duplicate"], json!(*status == 200), "{v}");
        }
    }
    let depth = depths(&d).await;
    assert_eq!((depth[KOTKA], depth["kallio"]), (1, 1), "{depth:?}");

    // Twenty different numbers at once: twenty requests, no store errors.
    let mut set = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (http, url) = (d.client(), url.clone());
        set.spawn(async move {
            post_json(&http, &url, &req(KOTKA, &format!("045 550 01{n:02}"))).await
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(r) = set.join_next().await {
        let (status, v) = r.expect("POST task");
        assert_eq!(status, 201, "{v}");
        ids.insert(i(&v, "id"));
    }
    assert_eq!(ids.len(), 20);
    assert_eq!(depths(&d).await[KOTKA], 21);
    assert_logs_masked(&d.logs());
}

// 11. The logs of a whole session never show a full number, but do show masked ones.
#[tokio::test]
async fn logs_never_show_a_full_phone_number() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    session_with_every_kind_of_number(&d).await;
    let (status, logs) = d.terminate();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("+35840*****67"), "accepted requests are logged (masked):\n{logs}");
    assert_logs_masked(&logs);
}

// Every line of the log, the SIP stack's included.
#[tokio::test]
async fn sip_stack_logs_never_show_a_full_phone_number() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    session_with_every_kind_of_number(&d).await;
    let (status, logs) = d.terminate();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert_no_unmasked_numbers("daemon logs, SIP stack included", &logs);
}

/// Accepted, duplicate, rejected, malformed, dialled, cancelled and scraped requests.
async fn session_with_every_kind_of_number(d: &Daemon) {
    let (_, a) = d.post(&req("kallio", "040 123 4567")).await;
    d.post(&req("kallio", "00358401234567")).await;
    d.post(&req(KOTKA, "+372 5123 4567")).await;
    let (_, k) = d.post(&req(KOTKA, "040 765 4321")).await;
    for bad in ["0700 123 456", "+46 70 123 45 67", "1234567890", "112"] {
        d.post(&req("kallio", bad)).await;
    }
    d.post(&json!({"service": "kallio", "number": "040 654 3210", "lang": "de"})).await;
    d.post_raw(r#"{"service": "kallio", "number": "040 654 3210", "x": 1}"#).await;
    d.settled(i(&a, "id")).await;
    d.delete(&path_of(i(&a, "id"))).await;
    d.get(&path_of(i(&a, "id"))).await;
    d.settled(i(&k, "id")).await;
    let (_, scrape) = d.get_text("/metrics").await;
    assert_no_unmasked_numbers("/metrics", &scrape);
}
