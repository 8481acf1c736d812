//! The supervisor's live figures (`GET /v1/live`) and page (`/ui`) on the real daemon: the
//! figures follow the queue, the page and its assets carry a strict CSP and no outside
//! resource, and with an API token the page's login cookie reads the figures and nothing
//! else.

mod common;

use common::{Daemon, Setup};
use serde_json::{Value, json};

fn service<'a>(live: &'a Value, id: &str) -> &'a Value {
    live["services"].as_array().expect("services").iter().find(|s| s["id"] == id).expect("service")
}

#[tokio::test]
async fn live_figures_follow_the_queue() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let (status, before) = d.get("/v1/live").await;
    assert_eq!(status, 200, "{before}");
    let ids: Vec<&str> = before["services"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["kallio", "kotka-neuvonta", "vuosaari"]);
    let k = service(&before, "kallio");
    for key in [
        "open_now",
        "next_opening",
        "waiting",
        "due_now",
        "in_call",
        "oldest_waiting_s",
        "at_risk",
        "missed_today",
        "requests_today",
        "same_day_today",
        "eta_new",
        "last_hour",
    ] {
        assert!(k.get(key).is_some(), "{key} missing in {k}");
    }
    assert_eq!(
        (k["waiting"].as_i64(), k["in_call"].as_i64(), k["requests_today"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    // The same ETA a new request gets from GET /v1/services.
    let (_, services) = d.get("/v1/services").await;
    let listed =
        services.as_array().expect("array").iter().find(|s| s["id"] == "kallio").expect("kallio");
    // The same window, read a moment apart: its start (now, to the second) may have moved
    // on by one second between the two reads.
    assert_eq!(listed["eta"]["to"], k["eta_new"]["to"], "{listed} {k}");
    let from = |v: &serde_json::Value| -> Option<jiff::Timestamp> {
        v["from"].as_str().map(|t| t.parse().expect("an instant"))
    };
    match (from(&k["eta_new"]), from(&listed["eta"])) {
        (Some(a), Some(b)) => {
            assert!(
                a.duration_since(b).abs() <= jiff::SignedDuration::from_secs(1),
                "{listed} {k}"
            );
        }
        (a, b) => assert_eq!(a, b, "{listed} {k}"),
    }
    assert_eq!(listed["open_now"], k["open_now"]);

    let (status, v) =
        d.post(&json!({"service": "kallio", "number": "040 555 0101", "channel": "web"})).await;
    assert_eq!(status, 201, "{v}");
    let (_, after) = d.get("/v1/live").await;
    let k = service(&after, "kallio");
    assert_eq!(k["requests_today"], 1, "{k}");
    let live = k["waiting"].as_i64().unwrap_or(0) + k["in_call"].as_i64().unwrap_or(0);
    let (_, req) = d.get(&format!("/v1/callbacks/{}", v["id"])).await;
    let state = req["state"].as_str().unwrap_or_default().to_owned();
    if ["pending", "retry_wait", "dialing"].contains(&state.as_str()) {
        assert_eq!(live, 1, "{k}");
    }
    let text = after.to_string();
    assert!(!text.contains("555") && !text.contains("+358"), "no number in the live figures");
}

#[tokio::test]
async fn the_page_is_self_contained_and_strict() {
    let setup = Setup::new();
    let d = Daemon::start(&setup).await;
    let http = reqwest::Client::new();
    for (path, kind) in
        [("/ui", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")]
    {
        let r = http.get(d.url(path)).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = r.headers().clone();
        assert!(h["content-type"].to_str().expect("ascii").starts_with(kind), "{path}");
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = r.text().await.expect("body");
        for outside in ["http://", "https://", "//cdn", "innerHTML", "eval(", "style=\"", "onclick"]
        {
            assert!(!body.contains(outside), "{outside} in {path}");
        }
    }
    let (_, page) = d.get_text("/ui").await;
    assert!(page.contains("<script src=\"/ui/app.js\" defer></script>"));
    assert!(page.matches("<script").count() == 1, "one script, no inline code");
    let (_, js) = d.get_text("/ui/app.js").await;
    for lang in ["fi: {", "sv: {", "en: {"] {
        assert!(js.contains(lang), "{lang} texts");
    }
}

#[tokio::test]
async fn with_a_token_the_page_logs_in_with_a_cookie_for_the_figures_only() {
    let setup = Setup::new();
    std::fs::write(setup.dir.path().join("api-token"), "s3cret-token\n").expect("token");
    let config = std::fs::read_to_string(&setup.config).expect("read");
    std::fs::write(&setup.config, format!("{config}token_file = \"api-token\"\n")).expect("write");
    let d = Daemon::start(&setup).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    assert_eq!(http.get(d.url("/v1/live")).send().await.expect("GET").status().as_u16(), 401);
    let r = http.get(d.url("/v1/live")).bearer_auth("s3cret-token").send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        http.get(d.url("/ui")).send().await.expect("GET").status().as_u16(),
        200,
        "the page itself is open"
    );

    let r = http.post(d.url("/ui/login")).form(&[("token", "wrong")]).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers().get("set-cookie").is_none());
    let r = http
        .post(d.url("/ui/login"))
        .form(&[("token", "s3cret-token")])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/ui");
    let cookie = r.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value").to_owned();

    let r = http.get(d.url("/v1/live")).header("cookie", &pair).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 200, "the cookie reads the figures");
    let r = http.get(d.url("/v1/services")).header("cookie", &pair).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 401, "and nothing else");
    let r = http
        .post(d.url("/v1/callbacks"))
        .header("cookie", &pair)
        .json(&json!({"service": "kallio", "number": "040 555 0101"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401, "never a change");
    let r = http.post(d.url("/ui/logout")).send().await.expect("POST");
    assert!(r.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"));
}
