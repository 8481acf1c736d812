//! The supervisor page `/ui` in a real browser (headless Chromium) against the real daemon
//! with an API token: the login form, the figures the API gives, an update after a request
//! is added, no console error and no outside request, screenshots at phone and desktop
//! width (`target/test-artefacts/ui-phone.png`, `ui-desktop.png`).

mod common;

use common::browser::Browser;
use common::{Daemon, Setup, WAIT};
use fantoccini::Locator;
use serde_json::{Value, json};
use std::time::Duration;

async fn figure(browser: &Browser, service: &str, name: &str) -> String {
    let css = format!("section[data-service=\"{service}\"] [data-figure=\"{name}\"]");
    match browser.client().find(Locator::Css(&css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn api_live(d: &Daemon) -> Value {
    let r = reqwest::Client::new()
        .get(d.url("/v1/live"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("JSON")
}

/// Waits until the page shows `want` for the figure, bounded by [`WAIT`].
async fn wait_figure(browser: &Browser, service: &str, name: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = figure(browser, service, name).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service} {name}: the page shows {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_live_page_in_a_browser() {
    let Some(browser) = Browser::start().await else { return };
    let setup = Setup::new();
    std::fs::write(setup.dir.path().join("api-token"), "s3cret-token\n").expect("token");
    let config = std::fs::read_to_string(&setup.config).expect("read");
    std::fs::write(&setup.config, format!("{config}token_file = \"api-token\"\n")).expect("write");
    let d = Daemon::start(&setup).await;
    let origin = d.url("/");

    browser.desktop().await;
    browser.goto(&d.url("/ui?lang=en")).await;
    browser.wait_for_text("API token").await;
    // Before logging in, the only error is the figures' 401 that shows the form.
    for e in browser.console_errors().await {
        assert!(e.contains("/v1/live") && e.contains("401"), "unexpected console error: {e}");
    }
    let c = browser.client();
    c.find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys("s3cret-token")
        .await
        .expect("type");
    c.find(Locator::Css("#login button"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("click");
    browser.wait_for_text("Callbacks now").await;
    browser.wait_for_text("oldest waiting").await;

    // The page shows the API's figures.
    let api = api_live(&d).await;
    for s in api["services"].as_array().expect("services") {
        let id = s["id"].as_str().expect("id");
        wait_figure(&browser, id, "waiting", &s["waiting"].to_string()).await;
        wait_figure(&browser, id, "in_call", &s["in_call"].to_string()).await;
        wait_figure(&browser, id, "at_risk", &s["at_risk"].to_string()).await;
    }
    let text = browser.text().await;
    assert!(text.contains("Kallio") || text.contains("kallio"), "{text}");

    // A request added: the page follows by itself.
    let r = reqwest::Client::new()
        .post(d.url("/v1/callbacks"))
        .bearer_auth("s3cret-token")
        .json(&json!({"service": "kallio", "number": "040 555 0101"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 201);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let waiting: i64 = figure(&browser, "kallio", "waiting").await.parse().unwrap_or(0);
        let in_call: i64 = figure(&browser, "kallio", "in_call").await.parse().unwrap_or(0);
        if waiting + in_call == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the page never showed the new request");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!browser.text().await.contains("555"), "no number on the page");

    browser.screenshot("ui-desktop").await;
    browser.phone().await;
    browser.goto(&d.url("/ui?lang=fi")).await;
    browser.wait_for_text("Takaisinsoitot nyt").await;
    browser.wait_for_text("odottaa").await;
    browser.screenshot("ui-phone").await;
    // Swedish at a click.
    browser
        .client()
        .find(Locator::Css("button[data-lang=sv]"))
        .await
        .expect("sv")
        .click()
        .await
        .expect("click");
    browser.wait_for_text("Återuppringningar nu").await;

    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    assert_eq!(browser.external_requests(&origin).await, Vec::<String>::new());
    browser.close().await;
}
