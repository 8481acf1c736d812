//! A log scan: every error path reachable over HTTP and the CLI is driven with phone
//! numbers (valid, invalid, with letters, duplicate, foreign, premium, service, short,
//! malformed bodies, oversize bodies, the opt-out list), then the daemon's logs, in the
//! text and the JSON format, and the CLI's output are searched for any unmasked number.

mod common;

use common::{Daemon, Setup, assert_no_unmasked_numbers, i, path_of};
use serde_json::{Value, json};

const KOTKA: &str = "kotka-neuvonta";

/// Digits (and raw spellings) of the numbers only this test sends, besides
/// [`common::TEST_NUMBER_DIGITS`]: none may appear in a log.
const MORE: &[&str] = &[
    "405234571", // 040 l23 4571 read as keypad digits
    "402255631", // 040 CALL ME1 read as keypad digits
    "l23 4571",
    "CALL ME1",
    "800123456", // 0800 123 456
    "443332211", // 044 333 2211 (CLI)
    "406543210", // 040 654 3210
];

fn scan(what: &str, text: &str) {
    assert_no_unmasked_numbers(what, text);
    for needle in MORE {
        assert!(!text.contains(needle), "{what} contains {needle:?}:\n{text}");
    }
}

async fn post(d: &Daemon, path: &str, body: String) -> u16 {
    let r = d
        .client()
        .post(d.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    r.status().as_u16()
}

async fn drive(setup: &Setup, d: &Daemon) {
    let req = |service: &str, number: &str| json!({"service": service, "number": number});
    let (status, a) = d.post(&req("kallio", "040 123 4567")).await;
    assert_eq!(status, 201, "{a}");
    let (status, _) = d.post(&req("kallio", "00358401234567")).await;
    assert_eq!(status, 200, "duplicate");
    let (_, k) = d.post(&req(KOTKA, "040 765 4321")).await;
    for (number, code) in [
        ("040 l23 4571", "invalid_number"),
        ("040 CALL ME1", "invalid_number"),
        ("1234567890", "invalid_number"),
        ("+46 70 123 45 67", "foreign_number"),
        ("0700 123 456", "premium_rate_number"),
        ("0800 123 456", "service_number"),
        ("112", "invalid_number"),
    ] {
        let (status, v) = d.post(&req("kallio", number)).await;
        assert_eq!((status, v["error"].as_str()), (422, Some(code)), "{number}: {v}");
    }
    let with = |key: &str, value: Value| {
        let mut v = req("kallio", "040 654 3210");
        v[key] = value;
        v
    };
    for body in [
        with("lang", json!("de")),
        with("window", json!("03:00-04:00")),
        with("channel", json!("fax")),
        with("sms_consent", json!("yes")),
        with("extra", json!(1)),
        req("nowhere", "040 654 3210"),
        json!({"service": "kallio", "number": 401234567}),
    ] {
        let (status, v) = d.post(&body).await;
        assert!((400..500).contains(&status), "{body}: {status} {v}");
    }
    assert_eq!(
        post(d, "/v1/callbacks", r#"{"service": "kallio", "number": "040 654 3210""#.into()).await,
        400
    );
    let big = format!(
        r#"{{"service": "kallio", "number": "040 654 3210", "x": "{}"}}"#,
        "9".repeat(70_000)
    );
    assert_eq!(post(d, "/v1/callbacks", big).await, 413);
    let r = d.client().put(d.url("/v1/callbacks")).body(r#"{"number": "040 654 3210"}"#).send();
    assert_eq!(r.await.expect("PUT").status(), 405);

    // The opt-out list.
    let optout = |n: &str| json!({"number": n}).to_string();
    assert_eq!(post(d, "/v1/sms/optout", optout("050 111 2233")).await, 201);
    assert_eq!(post(d, "/v1/sms/optout", optout("050 111 2233")).await, 200);
    assert_eq!(post(d, "/v1/sms/optout", optout("040 l23 4571")).await, 422);
    assert_eq!(post(d, "/v1/sms/optout", r#"{"number": 407778899}"#.into()).await, 400);
    let r = d.client().delete(d.url("/v1/sms/optout")).body(optout("040 777 8899")).send();
    assert_eq!(r.await.expect("DELETE").status(), 404);

    // Dialled (the fake PBX is busy), cancelled, shown, scraped.
    d.settled(i(&a, "id")).await;
    d.delete(&path_of(i(&a, "id"))).await;
    d.delete(&path_of(i(&a, "id"))).await;
    d.get(&path_of(i(&a, "id"))).await;
    d.settled(i(&k, "id")).await;
    let (_, scrape) = d.get_text("/metrics").await;
    scan("/metrics", &scrape);

    // The CLI on the same queue.
    let cfg = setup.config_arg();
    let mut cli = String::new();
    for number in
        ["044 333 2211", "044 333 2211", "040 l23 4571", "0700 123 456", "+46 70 123 45 67"]
    {
        let out = setup.cli(&["enqueue", "kallio", number, "--config", cfg]);
        cli.push_str(&String::from_utf8_lossy(&out.stdout));
        cli.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    for args in [vec!["list"], vec!["show", "1"], vec!["cancel", "1"]] {
        let out = setup.cli(&[args.as_slice(), &["--config", cfg]].concat());
        cli.push_str(&String::from_utf8_lossy(&out.stdout));
        cli.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    scan("CLI output", &cli);
}

async fn scan_format(format: &str) {
    let setup = Setup::new();
    let toml = std::fs::read_to_string(&setup.config).expect("read config");
    let toml = toml.replace("log_format = \"text\"", &format!("log_format = \"{format}\""));
    std::fs::write(&setup.config, toml).expect("write config");
    let d = Daemon::start(&setup).await;
    drive(&setup, &d).await;
    let (status, logs) = d.terminate();
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("request accepted"), "the scan saw the logs: {logs}");
    if format == "json" {
        assert!(logs.lines().any(|l| l.starts_with('{')), "JSON lines: {logs}");
    }
    scan(&format!("daemon logs ({format})"), &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_number_in_text_logs_on_any_error_path() {
    scan_format("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_number_in_json_logs_on_any_error_path() {
    scan_format("json").await;
}
