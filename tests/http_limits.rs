//! The HTTP server's limits against the real daemon: idle and slow-header connections
//! under a low file limit (`prlimit` from util-linux), the idle and body timeouts, and the
//! JSON error shape of the answers no handler gives (405, 408, 413), the bearer scheme in
//! any case, letters in numbers and unknown channels.

mod common;

use common::{Daemon, Setup, WAIT, repo};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait on the flood is bounded by this (the backlog drains a batch per header
/// timeout).
const FLOOD_WAIT: Duration = Duration::from_secs(90);

/// Appends keys to the configuration's `[http]` table (the last table `Setup` writes).
fn http_keys(setup: &Setup, keys: &str) {
    let mut toml = std::fs::read_to_string(&setup.config).expect("read callbackd.toml");
    assert!(toml.trim_end().ends_with("bind = \"127.0.0.1:0\""), "[http] is last: {toml}");
    toml.push_str(keys);
    std::fs::write(&setup.config, toml).expect("write callbackd.toml");
}

fn host(d: &Daemon) -> String {
    d.base.strip_prefix("http://").expect("http base").to_owned()
}

/// Reads until the peer closes (EOF or reset); false if it is still open after `limit`.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends raw bytes on a new connection and reads the whole answer (the server closes or
/// the answer's body is complete), bounded by [`WAIT`].
async fn raw(d: &Daemon, request: &[u8]) -> (u16, Value) {
    let mut conn = TcpStream::connect(host(d)).await.expect("connect");
    conn.write_all(request).await.expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no complete answer within {WAIT:?}: {text}"),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn metric(scrape: &str, prefix: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// 1. Hundreds of idle connections and a slow-header one, more than the process may open
//    files: health, intake, the SIP trunk and a dialplan reload keep working; the idle
//    and slow ones are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_under_a_low_file_limit() {
    if common::tool("prlimit", "util-linux").is_none() {
        return;
    }
    let setup = Setup::new();
    let plans = setup.dir.path().join("dialplans");
    std::fs::create_dir(&plans).expect("dialplans dir");
    for f in ["kallio.toml", "kotka-neuvonta.toml", "vuosaari.toml"] {
        std::fs::copy(repo().join("dialplans").join(f), plans.join(f)).expect("copy dialplan");
    }
    setup.point_at(&setup.pbx.addr, &plans, "");
    http_keys(&setup, "header_timeout = \"500ms\"\nidle_timeout = \"1s\"\nbody_timeout = \"1s\"\n");
    // 512 descriptors; the test config's 100 calls reserve 464: 48 connections at once.
    let d = Daemon::start_under(&setup, &["prlimit", "--nofile=512:512"], None).await;
    assert!(d.logs().contains("http.max_connections lowered"), "{}", d.logs());

    // A client that sends its headers one line at a time and never ends them.
    let mut slow = TcpStream::connect(host(&d)).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("send");
    let slow_writer = tokio::spawn(async move {
        for _ in 0..600 {
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed_within(&mut slow, Duration::from_millis(1)).await
    });

    // More idle connections than the daemon may open files.
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(TcpStream::connect(host(&d)).await.expect("connect an idle connection"));
    }

    let client = reqwest::Client::builder().timeout(FLOOD_WAIT).build().expect("client");
    let r = client.get(d.url("/healthz")).send().await.expect("/healthz during the flood");
    assert_eq!(r.status(), 200);
    let r = client
        .post(d.url("/v1/callbacks"))
        .json(&json!({"service": "kallio", "number": "040 123 4567"}))
        .send()
        .await
        .expect("intake during the flood");
    assert_eq!(r.status(), 201, "{}", d.logs());

    // The SIP trunk answers OPTIONS.
    let sip = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sip.set_read_timeout(Some(WAIT)).expect("timeout");
    let me = sip.local_addr().expect("addr");
    let options = format!(
        "OPTIONS sip:callbackd@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKflood1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=f1\r\nTo: <sip:callbackd@{to}>\r\n\
         Call-ID: flood-1@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        to = d.sip_addr()
    );
    sip.send_to(options.as_bytes(), d.sip_addr()).expect("send OPTIONS");
    let mut buf = [0u8; 4096];
    let (n, _) = sip.recv_from(&mut buf).expect("an answer to OPTIONS during the flood");
    assert!(buf[..n].starts_with(b"SIP/2.0 200"), "{}", String::from_utf8_lossy(&buf[..n]));

    // A dialplan reload (it opens files) still succeeds.
    let kallio = plans.join("kallio.toml");
    let mut text = std::fs::read_to_string(&kallio).expect("read");
    text.push_str("\n# touched during the flood\n");
    std::fs::write(&kallio, text).expect("touch the dialplan");
    let deadline = Instant::now() + FLOOD_WAIT;
    loop {
        let scrape = client.get(d.url("/metrics")).send().await.expect("/metrics");
        let scrape = scrape.text().await.expect("body");
        if metric(&scrape, "callbackd_dialplan_reloads_total{result=\"ok\"}") >= 1.0 {
            break;
        }
        assert!(
            metric(&scrape, "callbackd_dialplan_reloads_total{result=\"error\"}") == 0.0,
            "reload failed during the flood:\n{}",
            d.logs()
        );
        assert!(Instant::now() < deadline, "no reload within {FLOOD_WAIT:?}:\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every idle connection and the slow one are closed by the daemon.
    for (n, conn) in idle.iter_mut().enumerate() {
        assert!(closed_within(conn, FLOOD_WAIT).await, "idle connection {n} still open");
    }
    assert!(slow_writer.await.expect("slow writer"), "the slow-header connection stayed open");

    let scrape = client.get(d.url("/metrics")).send().await.expect("/metrics");
    let scrape = scrape.text().await.expect("body");
    assert!(metric(&scrape, "callbackd_http_timeouts_total{kind=\"header\"}") >= 600.0, "{scrape}");
    assert_eq!(metric(&scrape, "callbackd_http_accept_errors_total"), 0.0, "{scrape}");
    let logs = d.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    common::assert_logs_masked(&logs);
}

// 2. A kept-alive connection that sends nothing more is closed after the idle timeout; a
//    body that stops arriving gets 408; 405 and 413 in the JSON error shape.
#[tokio::test]
async fn idle_and_body_timeouts_and_json_errors() {
    let setup = Setup::new();
    http_keys(&setup, "header_timeout = \"2s\"\nidle_timeout = \"1s\"\nbody_timeout = \"1s\"\n");
    let d = Daemon::start(&setup).await;

    let mut conn = TcpStream::connect(host(&d)).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(closed_within(&mut conn, WAIT).await, "kept-alive idle connection not closed");

    let (status, v) = raw(
        &d,
        b"POST /v1/callbacks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"service\":",
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (408, Some("body_timeout")), "{v}");

    let big = format!(r#"{{"service": "kallio", "number": "{}"}}"#, "1".repeat(100_000));
    let r = d.client().post(d.url("/v1/callbacks")).body(big).send().await.expect("POST");
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.expect("413 is JSON");
    assert_eq!(v["error"], "body_too_large", "{v}");

    let r = d.client().put(d.url("/v1/callbacks")).send().await.expect("PUT");
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some(), "405 keeps Allow");
    let v: Value = r.json().await.expect("405 is JSON");
    assert_eq!(v["error"], "method_not_allowed", "{v}");

    let (status, v) = d.get("/nowhere").await;
    assert_eq!((status, v["error"].as_str()), (404, Some("not_found")));
}

// 3. Letters in numbers are refused, not read as keypad digits; `channel` comes from the
//    documented list and never becomes a metric label; errors cut what they echo; the
//    bearer scheme is case-insensitive.
#[tokio::test]
async fn hostile_fields_are_refused_and_never_echoed_whole() {
    let setup = Setup::new();
    std::fs::write(setup.dir.path().join("token"), "s3cret\n").expect("token");
    http_keys(&setup, "token_file = \"token\"\n");
    let d = Daemon::start(&setup).await;
    let post = |auth: &'static str, body: Value| {
        let r = d.client().post(d.url("/v1/callbacks")).header("authorization", auth).json(&body);
        async move {
            let r = r.send().await.expect("POST");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for number in ["040 l23 4571", "040 CALL ME1", "O40 123 4567"] {
        let (status, v) =
            post("Bearer s3cret", json!({"service": "kallio", "number": number})).await;
        assert_eq!((status, v["error"].as_str()), (422, Some("invalid_number")), "{number}: {v}");
    }
    let (status, v) = post(
        "bearer s3cret",
        json!({"service": "kallio", "number": "040 123 4567", "channel": "fax"}),
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (422, Some("invalid_channel")), "{v}");
    let (status, v) = post(
        "BEARER s3cret",
        json!({"service": "kallio", "number": "040 123 4567", "channel": "ivr"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, _) = post("Basic s3cret", json!({"service": "kallio", "number": "1"})).await;
    assert_eq!(status, 401);

    let long = "x".repeat(5000);
    for body in [
        json!({"service": long, "number": "040 123 4567"}),
        json!({"service": "kallio", "number": "040 123 4567", "window": long}),
        json!({"service": "kallio", "number": "040 123 4567", "lang": long}),
        json!({"service": "kallio", "number": long}),
        json!({"service": "kallio", "number": "040 123 4567", long.clone(): 1}),
        json!({"service": "kallio", "number": 4012345}),
    ] {
        let (status, v) = post("Bearer s3cret", body).await;
        assert!((400..500).contains(&status), "{status}");
        let msg = v["message"].as_str().expect("message");
        assert!(msg.len() < 200, "{status} echoes too much: {msg}");
        assert!(v["error"].is_string(), "{v}");
    }

    let (_, scrape) = d.get_text("/metrics").await;
    for line in scrape.lines().filter(|l| l.contains("channel=\"")) {
        let channel = line.split("channel=\"").nth(1).and_then(|s| s.split('"').next());
        let known = ["api", "cli", "ivr", "web", "chat", "app", "phone", "invalid"];
        assert!(channel.is_some_and(|c| known.contains(&c)), "label from client text: {line}");
    }
    assert!(!scrape.contains("fax"), "{scrape}");
}
