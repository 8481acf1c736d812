//! End to end through the real daemon: a request over HTTP is called through sipp playing
//! the PBX; busy, then the retry after the dialplan's pause, then answered and transferred
//! to staff; and a request
//! whose two attempts fail ends unreachable with the "could not reach you" SMS queued.
//! Also: requests at the daemon's SIP port that are not for it get proper answers.

mod common;

use common::sipp::{Sipp, free_udp_port, have_sipp};
use common::{Daemon, Setup, WAIT, i, s};
use serde_json::{Value, json};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

/// A 24/7 service with a short pause and ring timeout, showing Kallio's caller ID.
const E2E: &str = r#"
id = "e2e"
name = "Kallion terveysasema"
capacity = 2

[caller_id]
number = "+358 9 3104 5501"
name = "Kallion terveysasema"

[hours]
holidays = "none"
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]

[attempts]
max = 2
pause = "10s"
ring_timeout = "5s"
last_call_before_close = "0s"
network_retry = "5s"

[connect]
target = "sip:hoitajat@127.0.0.1"
confirm = "none"
"#;

fn dialplans(dir: &Path) -> std::path::PathBuf {
    let d = dir.join("dialplans");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join("e2e.toml"), E2E).expect("write dialplan");
    d
}

/// Polls the request until `pred` holds, bounded by `limit`.
async fn until(
    d: &Daemon,
    id: i64,
    limit: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, v) = d.get(&format!("/v1/callbacks/{id}")).await;
        assert_eq!(status, 200);
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "request {id} never reached {what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn busy_then_retry_after_the_pause_then_answered() {
    if !have_sipp() {
        return;
    }
    let setup = Setup::new();
    let port = free_udp_port();
    setup.point_at(
        &format!("127.0.0.1:{port}"),
        &dialplans(setup.dir.path()),
        "hangup_after_answer = \"300ms\"",
    );
    let mut busy = Sipp::start("uas_busy.xml", port, 1);
    let d = Daemon::start(&setup).await;
    let (status, v) = d.post(&json!({"service": "e2e", "number": "040 123 4567"})).await;
    assert_eq!(status, 201, "{v}");
    let id = i(&v, "id");
    assert!(v["eta"].is_object(), "the intake answer tells a window: {v}");
    assert!(busy.passed(), "sipp saw the INVITE with the station's caller ID and answered busy");
    let v = until(&d, id, WAIT, "retry_wait", |v| s(v, "state") == "retry_wait").await;
    let attempts = v["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["outcome"], "busy");
    assert_eq!(attempts[0]["sip_code"], 486);
    let ended = common::t(&attempts[0], "ended_at");
    let due = common::t(&v, "due_at");
    assert_eq!(due.duration_since(ended).as_secs(), 10, "due exactly the dialplan's pause later");
    let (_, metrics) = d.get_text("/metrics").await;
    let miss_count = "callbackd_eta_miss_seconds_count{service=\"e2e\"} 1\n";
    assert!(metrics.contains(miss_count), "the first call is judged when it starts: {metrics}");

    // The patient answers the retry; the call is transferred to staff (REFER, NOTIFY 200).
    let mut answer = Sipp::start("uas_refer_ok.xml", port, 1);
    let v =
        until(&d, id, Duration::from_secs(30), "connected", |v| s(v, "state") == "connected").await;
    let attempts = v["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["outcome"], "connected");
    assert_eq!(attempts[1]["sip_code"], 200);
    assert!(common::t(&attempts[1], "started_at") >= due, "not before the pause was over");
    assert!(answer.passed(), "the REFER to the staff queue, the NOTIFY answered, our BYE");
    let (_, metrics) = d.get_text("/metrics").await;
    assert!(
        metrics.contains("callbackd_attempts_total{service=\"e2e\",outcome=\"busy\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callbackd_attempts_total{service=\"e2e\",outcome=\"connected\"} 1"),
        "{metrics}"
    );
    // Punctuality: the first call (busy) was judged against the window the intake answer
    // told, once; the retry that connected is not a first call.
    assert!(v["attempts"][0]["seq"] == 1, "{v}");
    assert!(metrics.contains(miss_count), "the retry is not judged again: {metrics}");
    let sides: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("callbackd_eta_first_calls_total{service=\"e2e\""))
        .collect();
    // Called at once with an empty queue: inside the window told a moment before.
    assert_eq!(sides, ["callbackd_eta_first_calls_total{service=\"e2e\",side=\"inside\"} 1"]);
    common::assert_logs_masked(&d.logs());
}

#[tokio::test]
async fn two_failed_attempts_end_unreachable_with_the_sms_queued() {
    if !have_sipp() {
        return;
    }
    let setup = Setup::new();
    let port = free_udp_port();
    setup.point_at(&format!("127.0.0.1:{port}"), &dialplans(setup.dir.path()), "");
    let mut sipp = Sipp::start("uas_busy.xml", port, 2);
    let d = Daemon::start(&setup).await;
    let (status, v) = d.post(&json!({"service": "e2e", "number": "040 123 4567"})).await;
    assert_eq!(status, 201, "{v}");
    let id = i(&v, "id");
    let v =
        until(&d, id, Duration::from_secs(40), "unreachable", |v| s(v, "state") == "unreachable")
            .await;
    assert_eq!(v["attempts"].as_array().map(Vec::len), Some(2));
    assert!(sipp.passed());
    let out = setup.cli(&["show", &id.to_string(), "--config", setup.config_arg()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unreachable (fi, queued)"), "the SMS is in the outbox:\n{text}");
    assert!(text.contains("all 2 attempts were used"), "{text}");
}

fn sip_request(method: &str, to: &str, local: &str, extra: &str) -> String {
    format!(
        "{method} sip:callbackd@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-test-{method}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe1\r\n\
         To: <sip:callbackd@{to}>\r\n\
         Call-ID: probe-{method}@test\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:probe@{local}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

fn status_of(sock: &UdpSocket, request: &str, to: &str) -> Option<String> {
    sock.send_to(request.as_bytes(), to).expect("send");
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let first = text.lines().next().unwrap_or_default().to_owned();
            if first.starts_with("SIP/2.0 1") {
                continue;
            }
            return Some(first);
        }
    }
    None
}

#[tokio::test]
async fn requests_that_are_not_ours_get_proper_answers_and_garbage_is_ignored() {
    let setup = Setup::new();
    // The probe is a stranger (not the PBX): its INVITE gets 403 (tests/intake.rs has
    // what the trusted PBX gets).
    let dialplans = common::repo().join("dialplans");
    setup.point_at(&setup.pbx.addr, &dialplans, "trusted = [\"192.0.2.1\"]");
    let d = Daemon::start(&setup).await;
    let sip = d.sip_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let local = sock.local_addr().expect("addr").to_string();
    // Garbage first: nothing must break.
    for junk in
        [&b"\x00\x01\x02garbage"[..], b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n", &[0xff; 1500]]
    {
        sock.send_to(junk, &sip).expect("send junk");
    }
    let answers = [
        ("OPTIONS", "SIP/2.0 200"),
        ("INVITE", "SIP/2.0 403"),
        ("REGISTER", "SIP/2.0 405"),
        ("SUBSCRIBE", "SIP/2.0 405"),
        ("BYE", "SIP/2.0 481"),
    ];
    for (method, expected) in answers {
        let extra = if method == "SUBSCRIBE" { "Event: presence\r\nExpires: 60\r\n" } else { "" };
        let got = status_of(&sock, &sip_request(method, &sip, &local, extra), &sip);
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with(expected)),
            "{method}: expected {expected}, got {got:?}"
        );
    }
    // Still alive and serving.
    let (status, _) = d.get_text("/healthz").await;
    assert_eq!(status, 200);
    let got = status_of(&sock, &sip_request("OPTIONS", &sip, &local, ""), &sip);
    assert!(got.is_some_and(|g| g.starts_with("SIP/2.0 200")));
}
