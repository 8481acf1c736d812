//! The patient page against the real daemon: the notice SMS reaches a local gateway with
//! the link, the link opens the page on its own listener, the window is changed and the
//! request cancelled through the page's forms, and the store holds the new state and the
//! audit rows (actor `web`). Also: the neutral page for every bad token, no staff route on
//! the page's listener, cross-site and forged forms refused, the body cap, the rate limit,
//! the security headers, and the start refused without a usable key.

mod common;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use callbackd::store::{State, Store};
use common::{ConfigFile, Daemon, Options, WAIT, repo};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages the fake gateway received: (recipient, text).
type Inbox = Arc<Mutex<Vec<(String, String)>>>;

async fn gateway(AxState(inbox): AxState<Inbox>, body: axum::body::Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    inbox.lock().expect("inbox").push((field("destination"), field("userData")));
    StatusCode::ACCEPTED
}

async fn start_gateway() -> (String, Inbox) {
    let inbox = Inbox::default();
    let app =
        Router::new().route("/sms/send", axum::routing::post(gateway)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind gateway");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("gateway") });
    (format!("http://{addr}/sms/send"), inbox)
}

/// Kallio's dialplan, open every day 08–16 but closed today (so nothing is dialled while
/// the test runs and the ETA is tomorrow's, whatever the hour), its notices with `{link}`.
fn dialplan(dir: &Path) -> PathBuf {
    let dialplans = dir.join("dialplans");
    std::fs::create_dir_all(&dialplans).expect("mkdir");
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("kallio");
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Helsinki").expect("tz"))
        .date();
    let day = "[\"08:00-16:00\"]";
    let hours = format!(
        "[hours]\nholidays = \"none\"\nmon = {day}\ntue = {day}\nwed = {day}\nthu = {day}\n\
         fri = {day}\nsat = {day}\nsun = {day}\nclosed = [{today}]\n\n[attempts]"
    );
    let start = src.find("[hours]").expect("hours");
    let end = src.find("[attempts]").expect("attempts");
    let mut out = format!("{}{hours}{}", &src[..start], &src[end + "[attempts]".len()..]);
    for (lang, tail) in [
        ("fi", "Tähän viestiin ei voi vastata.\""),
        ("sv", "Du kan inte svara på detta meddelande.\""),
        ("en", "Please do not reply to this message.\""),
    ] {
        let notice =
            out.lines().position(|l| l == format!("[sms.{lang}]")).expect("language section") + 1;
        let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
        lines[notice] = lines[notice].replace(tail, &format!("{{link}} {tail}"));
        out = lines.join("\n");
    }
    std::fs::write(dialplans.join("kallio.toml"), out).expect("write dialplan");
    dialplans
}

struct Rig {
    dir: tempfile::TempDir,
    config: PathBuf,
    inbox: Inbox,
}

/// Kallio's dialplan in a zone where it is now 03:xx, open every day 12–16 and allowing
/// "call me on the next open day instead": a request made now is due today at 12:00 (hours
/// away, so nothing is dialled while the test runs) and may move to tomorrow 12:00.
fn next_day_dialplan(dir: &Path) -> PathBuf {
    let dialplans = dialplan(dir);
    let file = dialplans.join("kallio.toml");
    let src = std::fs::read_to_string(&file).expect("read");
    let utc_hour = i64::from(jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).hour());
    // The whole-hour offset that makes the local hour 3, in -12..=11 (Etc/GMT signs are
    // inverted: Etc/GMT-3 is UTC+3).
    let offset = (3 - utc_hour).rem_euclid(24);
    let offset = if offset > 11 { offset - 24 } else { offset };
    let zone = match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let day = "[\"12:00-16:00\"]";
    let hours = format!(
        "[hours]\nholidays = \"none\"\nmon = {day}\ntue = {day}\nwed = {day}\nthu = {day}\n\
         fri = {day}\nsat = {day}\nsun = {day}\n\n[attempts]"
    );
    let start = src.find("[hours]").expect("hours");
    let end = src.find("[attempts]").expect("attempts");
    let out = format!("{}{hours}{}", &src[..start], &src[end + "[attempts]".len()..])
        .replace("timezone = \"Europe/Helsinki\"", &format!("timezone = \"{zone}\""))
        .replace(
            "windows = [\"08:00-10:00\", \"10:00-12:00\", \"12:00-14:00\", \"14:00-16:00\"]",
            "windows = [\"12:00-14:00\", \"14:00-16:00\"]\nnext_open_day = true",
        );
    assert!(out.contains("next_open_day = true") && out.contains(&zone), "{out}");
    std::fs::write(&file, out).expect("write dialplan");
    dialplans
}

async fn rig(public_extra: &str) -> Rig {
    rig_with(public_extra, dialplan).await
}

async fn rig_with(public_extra: &str, dialplan: fn(&Path) -> PathBuf) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, inbox) = start_gateway().await;
    let dialplans = dialplan(dir.path());
    let secret = dir.path().join("sms-secret");
    std::fs::write(&secret, "s3cret\n").expect("secret");
    let key = dir.path().join("link.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef-test-key\n").expect("key");
    let extra_top = format!(
        "[public]\nurl = \"https://soita.example.fi\"\nbind = \"127.0.0.1:0\"\n\
         key_file = {key:?}\n{public_extra}\n\
         [sms]\nurl = \"{url}\"\nbody = \"json\"\nsender_field = \"source\"\n\
         recipient_field = \"destination\"\ntext_field = \"userData\"\n\
         reference_field = \"refId\"\ntimeout = \"2s\"\nquiet_hours = \"none\"\n\
         [sms.auth]\nscheme = \"basic\"\nusername = \"callbackd\"\nsecret_file = {secret:?}\n"
    );
    let config = dir.path().join("callbackd.toml");
    // No PBX: the service is closed today, so nothing is dialled while the test runs.
    ConfigFile { extra_top, ..ConfigFile::new("127.0.0.1:9", &dialplans) }.write(&config);
    Rig { dir, config, inbox }
}

impl Rig {
    async fn start(&self) -> Daemon {
        Daemon::spawn(self.dir.path(), &self.config, &Options::default()).await
    }

    /// The first SMS to `to`, waiting for it (bounded).
    async fn sms_to(&self, to: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((_, text)) =
                self.inbox.lock().expect("inbox").iter().find(|(n, _)| n.ends_with(&to[1..]))
            {
                return text.clone();
            }
            assert!(Instant::now() < deadline, "no SMS to {to}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .expect("client")
}

/// The token of the first `https://soita.example.fi/r/TOKEN` in `text`.
fn token_in(text: &str) -> String {
    let at = text.find("https://soita.example.fi/r/").expect("a link") + 27;
    text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn form_mac(html: &str) -> String {
    let at = html.find("name=\"f\" value=\"").expect("a form") + 16;
    html[at..].chars().take_while(|c| *c != '"').collect()
}

async fn page(http: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = http.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    origin: &str,
    body: String,
) -> (u16, Option<String>) {
    let r = http
        .post(url)
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST");
    let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    (r.status().as_u16(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_opens_the_sms_link_changes_the_window_and_cancels() {
    let rig = rig("").await;
    let daemon = rig.start().await;
    let public = daemon.public_base();
    let http = client();

    // A request from the web channel: its answer carries the link at once.
    let number = "+358401234567";
    let (status, created) = common::post_json(
        &http,
        &daemon.url("/v1/callbacks"),
        &json!({ "service": "kallio", "number": number, "channel": "web", "sms_consent": true }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = common::i(&created, "id");
    let answered_link = common::s(&created, "link").to_owned();
    assert!(answered_link.starts_with("https://soita.example.fi/r/"), "{answered_link}");

    // The notice SMS carries the same link.
    let sms = rig.sms_to(number).await;
    let token = token_in(&sms);
    assert_eq!(answered_link, format!("https://soita.example.fi/r/{token}"), "{sms}");
    assert_eq!(token.len(), callbackd::link::TOKEN_LEN);

    // The page: service, state, place, tomorrow's ETA, caller ID, masked number.
    let url = format!("{public}/r/{token}");
    let (status, headers, html) = page(&http, &url).await;
    assert_eq!(status, 200, "{html}");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(header("content-security-policy"), callbackd::http::public::CSP);
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert!(html.contains("<html lang=\"fi\">"));
    assert!(html.contains("Kallion terveysasema"));
    assert!(html.contains("Odottaa soittoa"));
    assert!(html.contains("<dd class=\"place\">1</dd>"), "{html}");
    assert!(html.contains("<dd class=\"eta\">huomenna 08:00–"), "{html}");
    // One ETA: the page tells exactly the window the intake answer (and the SMS) told.
    let hhmm = |k: &str| created["eta"][k].as_str().expect("eta")[11..16].to_owned();
    let told = format!("<dd class=\"eta\">huomenna {}–{}</dd>", hhmm("from"), hhmm("to"));
    assert!(html.contains(&told), "{told} in {html}");
    assert!(html.contains("href=\"tel:+358931045501\">09 31045501</a>"));
    assert!(html.contains("+35840*****67"));
    common::assert_no_unmasked_numbers("page", &html.replace("+358931045501", ""));
    for window in ["08:00-10:00", "10:00-12:00", "12:00-14:00", "14:00-16:00", "any"] {
        assert!(html.contains(&format!("value=\"{window}\"")), "{window} offered");
    }
    let mac = form_mac(&html);

    // Other languages.
    let (_, _, sv) = page(&http, &format!("{url}?lang=sv")).await;
    assert!(sv.contains("<html lang=\"sv\">") && sv.contains("i morgon 08:00–"), "{sv}");
    let (_, _, en) = page(&http, &format!("{url}?lang=en")).await;
    assert!(en.contains("<html lang=\"en\">") && en.contains("Waiting for the call"));

    // The vCard, the stylesheet and the script are the page's own.
    let (status, headers, vcf) = page(&http, &format!("{url}/contact.vcf")).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("text/vcard"));
    assert!(vcf.contains("TEL;TYPE=WORK,VOICE:+358931045501"), "{vcf}");
    for asset in ["/static/page.css", "/static/page.js"] {
        assert_eq!(page(&http, &format!("{public}{asset}")).await.0, 200, "{asset}");
    }

    // Forms from another site, without the page's MAC, or too large: refused, no change.
    let action = format!("{url}/window");
    let body = format!("f={mac}&window=14%3A00-16%3A00");
    assert_eq!(post_form(&http, &action, "https://evil.example", body.clone()).await.0, 403);
    let forged = "f=AAAAAAAAAAAAAAAAAAAAAA&window=14%3A00-16%3A00".to_owned();
    assert_eq!(post_form(&http, &action, &public, forged).await.0, 403);
    let huge = format!("{body}&pad={}", "x".repeat(4096));
    assert_eq!(post_form(&http, &action, &public, huge).await.0, 413);
    let bad = format!("f={mac}&window=03%3A00-04%3A00");
    assert_eq!(post_form(&http, &action, &public, bad).await.0, 422);

    // Change the window: back to the page, which shows the new ETA.
    let (status, location) = post_form(&http, &action, &public, body).await;
    assert_eq!(status, 303);
    assert_eq!(location, Some(format!("/r/{token}?done=window")));
    let (_, _, html) = page(&http, &format!("{public}/r/{token}?done=window")).await;
    assert!(html.contains("Soittoaika vaihdettu."), "{html}");
    assert!(html.contains("<dd class=\"eta\">huomenna 14:00–"), "{html}");
    assert!(html.contains("<dd class=\"window\">14:00–16:00</dd>"), "{html}");

    // Cancel.
    let (status, location) =
        post_form(&http, &format!("{url}/cancel?lang=en"), &public, format!("f={mac}")).await;
    assert_eq!(status, 303);
    let (_, _, html) = page(&http, &format!("{public}{}", location.expect("location"))).await;
    assert!(html.contains("The callback has been cancelled."), "{html}");
    assert!(html.contains("state-cancelled"));
    assert!(!html.contains("<form"), "nothing left to change");

    // The store: cancelled, the window written, both changes audited as `web`.
    let db = format!("sqlite:{}", rig.dir.path().join("queue.db").display());
    let store = Store::open(&db).await.expect("open the daemon's store");
    let req = store.request(id).await.expect("read").expect("request");
    assert_eq!(req.state, State::Cancelled);
    assert_eq!(req.window.map(|w| w.to_string()).as_deref(), Some("14:00-16:00"));
    let trail = store.audit_trail(id).await.expect("audit");
    // Intake's own row has the channel (`web`) as actor too; the changes come after it.
    let web: Vec<_> = trail.iter().filter(|a| a.3 == "web" && a.1.is_some()).collect();
    assert_eq!(web.len(), 2, "{trail:?}");
    assert_eq!((web[0].2.as_str(), web[0].4.as_str()), ("pending", "window 14:00-16:00"));
    assert_eq!(web[1].2, "cancelled");
    store.close().await;

    // A second cancel changes nothing and says so.
    let (status, location) =
        post_form(&http, &format!("{url}/cancel"), &public, format!("f={mac}")).await;
    assert_eq!((status, location), (303, Some(format!("/r/{token}?done=refused"))));

    // Bad tokens, staff routes and anything else: the same neutral page.
    let (status, _, neutral) = page(&http, &format!("{public}/r/{}", "A".repeat(34))).await;
    assert_eq!(status, 404);
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'B' { b'C' } else { b'B' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for path in [
        format!("/r/{tampered}"),
        "/r/x".to_owned(),
        "/v1/callbacks".to_owned(),
        format!("/v1/callbacks/{id}"),
        "/metrics".to_owned(),
        "/readyz".to_owned(),
        "/".to_owned(),
    ] {
        let (status, _, body) = page(&http, &format!("{public}{path}")).await;
        assert_eq!((status, body.as_str()), (404, neutral.as_str()), "{path}");
    }
    // A request from the API channel gets no link in its answer.
    let (_, created) = common::post_json(
        &http,
        &daemon.url("/v1/callbacks"),
        &json!({ "service": "kallio", "number": "+358401234568" }),
    )
    .await;
    assert!(created.get("link").is_none(), "{created}");
    common::assert_logs_masked(&daemon.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_asks_to_be_called_on_the_next_open_day_instead() {
    let rig = rig_with("", next_day_dialplan).await;
    let daemon = rig.start().await;
    let public = daemon.public_base();
    let http = client();
    let (status, created) = common::post_json(
        &http,
        &daemon.url("/v1/callbacks"),
        &json!({ "service": "kallio", "number": "+358401234567", "channel": "web", "lang": "en" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = common::i(&created, "id");
    let token = token_in(common::s(&created, "link"));
    let url = format!("{public}/r/{token}");

    // Due today at 12:00; the next open day is offered with the ETA it would give.
    let (status, _, html) = page(&http, &format!("{url}?lang=en")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<dd class=\"eta\">today 12:00–"), "{html}");
    assert!(html.contains(&format!("action=\"/r/{token}/next-day?lang=en\"")), "{html}");
    assert!(html.contains("Call me on the next open day"), "{html}");
    assert!(html.contains("id=\"next-day-eta\">estimate: tomorrow 12:00–"), "{html}");
    let mac = form_mac(&html);
    let before = {
        let db = format!("sqlite:{}", rig.dir.path().join("queue.db").display());
        let store = Store::open(&db).await.expect("open the daemon's store");
        let req = store.request(id).await.expect("read").expect("request");
        store.close().await;
        req
    };

    // Cross-site and forged forms are refused.
    let action = format!("{url}/next-day?lang=en");
    assert_eq!(post_form(&http, &action, "https://evil.example", format!("f={mac}")).await.0, 403);
    let forged = "f=AAAAAAAAAAAAAAAAAAAAAA".to_owned();
    assert_eq!(post_form(&http, &action, &public, forged).await.0, 403);

    // Moved: the page says so and shows tomorrow's ETA; it is not offered again.
    let (status, location) = post_form(&http, &action, &public, format!("f={mac}")).await;
    assert_eq!(status, 303);
    assert_eq!(location, Some(format!("/r/{token}?lang=en&done=next-day")));
    let (_, _, html) = page(&http, &format!("{public}/r/{token}?lang=en&done=next-day")).await;
    assert!(html.contains("We will call you on the next day we are open."), "{html}");
    assert!(html.contains("<dd class=\"eta\">tomorrow 12:00–"), "{html}");
    assert!(!html.contains("/next-day"), "offered once: {html}");
    // A second post changes nothing and says so.
    let (status, location) = post_form(&http, &action, &public, format!("f={mac}")).await;
    assert_eq!((status, location), (303, Some(format!("/r/{token}?lang=en&done=refused"))));

    // The store: still pending, due and deadline one day later, one audit row by `web`.
    let db = format!("sqlite:{}", rig.dir.path().join("queue.db").display());
    let store = Store::open(&db).await.expect("open the daemon's store");
    let req = store.request(id).await.expect("read").expect("request");
    assert_eq!(req.state, State::Pending);
    let day = jiff::SignedDuration::from_hours(24);
    assert_eq!(req.due_at, before.due_at.map(|d| d + day), "{req:?}");
    assert_eq!(req.deadline_at, before.deadline_at + day, "{req:?}");
    assert_eq!(req.expires_at, before.expires_at, "the expiry is kept");
    let trail = store.audit_trail(id).await.expect("audit");
    let web: Vec<_> = trail.iter().filter(|a| a.3 == "web" && a.1.is_some()).collect();
    assert_eq!(web.len(), 1, "{trail:?}");
    assert_eq!(web[0].2, "pending", "{trail:?}");
    assert!(web[0].4.starts_with("next open day "), "{trail:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_is_opened_too_often_is_slowed_down() {
    let rig = rig("per_link_per_minute = 5\nper_address_per_minute = 1000").await;
    let daemon = rig.start().await;
    let http = client();
    let (status, created) = common::post_json(
        &http,
        &daemon.url("/v1/callbacks"),
        &json!({ "service": "kallio", "number": "+358401234567", "channel": "chat" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token = token_in(common::s(&created, "link"));
    let url = format!("{}/r/{token}", daemon.public_base());
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(page(&http, &url).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
}

#[test]
fn the_daemon_refuses_to_start_without_a_usable_link_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("short.key");
    std::fs::write(&key, "too short\n").expect("key");
    let config = dir.path().join("callbackd.toml");
    let public = format!(
        "[public]\nurl = \"https://soita.example.fi\"\nbind = \"127.0.0.1:0\"\nkey_file = {key:?}\n"
    );
    ConfigFile { extra_top: public, ..ConfigFile::new("127.0.0.1:9", &repo().join("dialplans")) }
        .write(&config);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["serve", "--config", config.to_str().expect("utf8")])
        .current_dir(dir.path())
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has 9 bytes, at least 32 are needed"), "{err}");
    // No key file and no systemd credential.
    let public =
        "[public]\nurl = \"https://soita.example.fi\"\nbind = \"127.0.0.1:0\"\n".to_owned();
    ConfigFile { extra_top: public, ..ConfigFile::new("127.0.0.1:9", &repo().join("dialplans")) }
        .write(&config);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["serve", "--config", config.to_str().expect("utf8")])
        .current_dir(dir.path())
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("callbackd-link-key") && err.contains("LoadCredential"), "{err}");
}

#[tokio::test]
async fn check_measures_notices_with_the_configured_link() {
    let rig = rig("").await;
    let run = |config: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
            .args(["check", "--config", config.to_str().expect("utf8")])
            .output()
            .expect("run check")
    };
    let out = run(&rig.config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A very long public URL makes the Swedish notice too long for two parts.
    let src = std::fs::read_to_string(&rig.config).expect("read");
    let long = format!("https://{}.example.fi", "takaisinsoitto".repeat(12));
    std::fs::write(&rig.config, src.replace("https://soita.example.fi", &long)).expect("write");
    let out = run(&rig.config);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sms.sv.notice: with the link of [public] url"), "{err}");
    // Without [public], a notice with {link} is an error.
    let src = std::fs::read_to_string(&rig.config).expect("read");
    let start = src.find("[public]").expect("public");
    let end = src.find("[sms]").expect("sms");
    std::fs::write(&rig.config, format!("{}{}", &src[..start], &src[end..])).expect("write");
    let out = run(&rig.config);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uses {link} but the daemon configuration has no [public] section"),
        "{err}"
    );
}

/// axe-core's source (`npm ci --prefix tests/browser`); `None` after a skip (a failure
/// under `CI=true`) when it is not installed.
fn axe_source() -> Option<String> {
    let path = repo().join("tests/browser/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(src) => Some(src),
        Err(_) => {
            common::skip(&format!(
                "{} is missing: run `npm ci --prefix tests/browser`",
                path.display()
            ));
            None
        }
    }
}

/// The page's WCAG 2.1 A and AA violations as axe-core finds them in the browser.
async fn axe_violations(browser: &common::browser::Browser, axe: &str) -> Vec<String> {
    let client = browser.client();
    client.execute(axe, Vec::new()).await.expect("inject axe-core");
    let result = client
        .execute_async(
            "var done = arguments[arguments.length - 1];\n\
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })\n\
               .then(function (r) { done(r.violations.map(function (v) {\n\
                 return v.id + ': ' + v.help + ' ' + v.nodes.map(function (n) { return n.html; }).join(' | ');\n\
               })); })\n\
               .catch(function (e) { done(['axe-core failed: ' + e]); });",
            Vec::new(),
        )
        .await
        .expect("run axe-core");
    serde_json::from_value(result).expect("a list of violations")
}

/// Waits (bounded) until the browser has followed a form's redirect to a URL containing
/// `needle`, so the page's text is read from the new document.
async fn wait_for_url(browser: &common::browser::Browser, needle: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(url) = browser.client().current_url().await {
            if url.as_str().contains(needle) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the browser never reached a URL with {needle:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_page_is_accessible_and_its_forms_work() {
    let Some(browser) = common::browser::Browser::start().await else { return };
    let Some(axe) = axe_source() else { return };
    let rig = rig("").await;
    let daemon = rig.start().await;
    let public = daemon.public_base();
    let number = "+358401234567";
    let (status, created) = common::post_json(
        &client(),
        &daemon.url("/v1/callbacks"),
        &json!({ "service": "kallio", "number": number, "channel": "ivr", "sms_consent": true }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = common::i(&created, "id");
    // The link as the patient gets it: from the SMS the gateway received.
    let token = token_in(&rig.sms_to(number).await);
    let url = format!("{public}/r/{token}");
    let origin = format!("{public}/");

    browser.phone().await;
    for (lang, waiting) in
        [("sv", "Väntar på samtal"), ("en", "Waiting for the call"), ("fi", "Odottaa soittoa")]
    {
        browser.goto(&format!("{url}?lang={lang}")).await;
        browser.wait_for_text(waiting).await;
        browser.screenshot(&format!("public-page-{lang}")).await;
        assert_eq!(axe_violations(&browser, &axe).await, Vec::<String>::new(), "{lang}");
    }
    let text = browser.text().await;
    assert!(text.contains("Paikkasi jonossa\n1"), "{text}");
    assert!(text.contains("huomenna 08:00–"), "{text}");
    assert!(text.contains("09 31045501"), "{text}");

    // Change the window with the page's own form.
    let c = browser.client();
    c.find(fantoccini::Locator::Css("input[value='14:00-16:00']"))
        .await
        .expect("the 14-16 window")
        .click()
        .await
        .expect("choose it");
    c.find(fantoccini::Locator::Css("form[action*='/window'] button"))
        .await
        .expect("the window form's button")
        .click()
        .await
        .expect("send the form");
    wait_for_url(&browser, "done=window").await;
    let text = browser.wait_for_text("Soittoaika vaihdettu.").await;
    assert!(text.contains("huomenna 14:00–"), "the new ETA: {text}");
    assert!(text.contains("14:00–16:00"), "{text}");
    browser.screenshot("public-page-window-changed").await;
    assert_eq!(axe_violations(&browser, &axe).await, Vec::<String>::new());

    // Cancel.
    browser
        .client()
        .find(fantoccini::Locator::Css("form[action*='/cancel'] button"))
        .await
        .expect("the cancel button")
        .click()
        .await
        .expect("cancel");
    wait_for_url(&browser, "done=cancelled").await;
    browser.wait_for_text("Takaisinsoitto on peruttu.").await;
    browser.screenshot("public-page-cancelled").await;
    assert_eq!(axe_violations(&browser, &axe).await, Vec::<String>::new());

    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    assert_eq!(browser.external_requests(&origin).await, Vec::<String>::new());
    browser.close().await;

    let db = format!("sqlite:{}", rig.dir.path().join("queue.db").display());
    let store = Store::open(&db).await.expect("open the daemon's store");
    let req = store.request(id).await.expect("read").expect("request");
    assert_eq!(req.state, State::Cancelled);
    assert_eq!(req.end_reason.as_deref(), Some("cancelled by web"));
    let trail = store.audit_trail(id).await.expect("audit");
    let changes: Vec<(&str, &str)> =
        trail.iter().filter(|a| a.3 == "web").map(|a| (a.2.as_str(), a.4.as_str())).collect();
    assert_eq!(changes, [("pending", "window 14:00-16:00"), ("cancelled", "")], "{trail:?}");
    store.close().await;
}
