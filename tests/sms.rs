//! SMS to patients against a real local HTTP server playing the gateway: retries with
//! backoff through 500s and timeouts, exactly-once delivery across a sender restart (the
//! gateway honours the client reference), texts in fi/sv/en, quiet hours, fixed lines,
//! consent, opt-out and the survey delay — with an injected clock.

mod common;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use callbackd::call::attempt::{Call, CallResult, Dialer};
use callbackd::clock::{Clock, ManualClock};
use callbackd::config::Config;
use callbackd::dialplan::{self, Services};
use callbackd::intake::{self, RawRequest};
use callbackd::notifier::gateway::{HttpSmsGateway, SmsGateway};
use callbackd::notifier::sender::Sender;
use callbackd::policy::Outcome;
use callbackd::policy::lifecycle::{Audit, Event, Rules, SmsIntent, Survey, Transition, step};
use callbackd::scheduler::{Limits, Scheduler};
use callbackd::sms::template::Kind;
use callbackd::store::{Applied, Fence, OutboxRow, Request, State, Store};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

fn hel(s: &str) -> Timestamp {
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    s.parse::<DateTime>().expect("datetime").to_zoned(tz).expect("zoned").timestamp()
}

fn repo_services() -> Services {
    dialplan::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans"))
        .expect("dialplans")
}

/// How the fake gateway answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 500 Internal Server Error, nothing delivered.
    Fail,
    /// Hangs past the client's timeout, nothing delivered.
    Hang,
    /// Delivers, then hangs past the client's timeout: the client never learns it worked.
    DeliverAndHang,
    /// 400: refuses the message.
    Refuse,
    /// Delivers (once per reference) and answers 200.
    Accept,
}

/// A delivered message.
#[derive(Debug, Clone)]
struct Delivered {
    reference: String,
    to: String,
    from: String,
    text: String,
}

#[derive(Debug, Default)]
struct GatewayState {
    script: Mutex<VecDeque<Answer>>,
    /// Every request seen, as (reference, auth header).
    requests: Mutex<Vec<(String, String)>>,
    delivered: Mutex<Vec<Delivered>>,
}

impl GatewayState {
    fn delivered(&self) -> Vec<Delivered> {
        self.delivered.lock().expect("lock").clone()
    }
    fn requests(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
    fn deliver(&self, d: Delivered) {
        let mut all = self.delivered.lock().expect("lock");
        // Honours the client reference, like LINK's refId or GatewayAPI's userref.
        if !all.iter().any(|x| x.reference == d.reference) {
            all.push(d);
        }
    }
}

async fn gateway_handler(
    AxState(st): AxState<Arc<GatewayState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let d = Delivered {
        reference: field("refId"),
        to: field("destination"),
        from: field("source"),
        text: field("userData"),
    };
    let auth =
        headers.get("authorization").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    st.requests.lock().expect("lock").push((d.reference.clone(), auth));
    let answer = st.script.lock().expect("lock").pop_front().unwrap_or(Answer::Accept);
    match answer {
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Refuse => StatusCode::BAD_REQUEST,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK
        }
        Answer::DeliverAndHang => {
            st.deliver(d);
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK
        }
        Answer::Accept => {
            st.deliver(d);
            StatusCode::ACCEPTED
        }
    }
}

/// Starts the fake gateway; returns its URL.
async fn start_gateway(script: &[Answer]) -> (String, Arc<GatewayState>) {
    let st = Arc::new(GatewayState::default());
    st.script.lock().expect("lock").extend(script.iter().copied());
    let app = Router::new()
        .route("/sms/send", axum::routing::post(gateway_handler))
        .with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/sms/send"), st)
}

/// A daemon configuration whose `[sms]` is LINK Mobility's JSON shape, pointed at `url`.
fn sms_toml(url: &str, secret: &Path, quiet: &str) -> String {
    format!(
        "[sms]\n\
         url = \"{url}\"\n\
         body = \"json\"\n\
         sender_field = \"source\"\n\
         recipient_field = \"destination\"\n\
         text_field = \"userData\"\n\
         reference_field = \"refId\"\n\
         idempotency_header = \"Idempotency-Key\"\n\
         timeout = \"1s\"\n\
         quiet_hours = \"{quiet}\"\n\
         max_tries = 6\n\
         backoff = \"30s\"\n\
         backoff_max = \"10m\"\n\
         [sms.constants]\n\
         platformId = \"COMMON-API\"\n\
         [sms.auth]\n\
         scheme = \"basic\"\n\
         username = \"callbackd\"\n\
         secret_file = {secret:?}\n"
    )
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    clock: ManualClock,
    services: Services,
    cfg: callbackd::sms::config::SmsConfig,
    gateway: Arc<GatewayState>,
}

impl Rig {
    async fn new(start: Timestamp, script: &[Answer], quiet: &str) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite:{}", dir.path().join("q.db").display()))
            .await
            .expect("store");
        let secret = dir.path().join("sms-secret");
        std::fs::write(&secret, "s3cret\n").expect("secret");
        let (url, gateway) = start_gateway(script).await;
        let src = format!("[sip]\npbx = \"127.0.0.1:5060\"\n{}", sms_toml(&url, &secret, quiet));
        let cfg =
            Config::from_toml(&dir.path().join("c.toml"), &src).expect("config").sms.expect("sms");
        let clock = ManualClock::new(start);
        Rig { _dir: dir, store, clock, services: repo_services(), cfg, gateway }
    }

    /// A fresh sender, as after a restart of the daemon.
    fn sender(&self) -> Sender {
        let secret = Some("s3cret".to_owned());
        let gw: Arc<dyn SmsGateway> =
            Arc::new(HttpSmsGateway::new(self.cfg.gateway.clone(), secret).expect("gateway"));
        let (_tx, rx) = watch::channel(Arc::new(self.services.clone()));
        Sender::new(
            self.store.clone(),
            rx,
            gw,
            self.cfg.clone(),
            Arc::new(self.clock.clone()),
            CancellationToken::new(),
        )
    }

    async fn enqueue(&self, number: &str, lang: &str, consent: bool) -> Request {
        let raw = RawRequest {
            service: "kallio".into(),
            number: number.into(),
            window: None,
            lang: Some(lang.into()),
            sms_consent: Some(consent),
            channel: Some("web".into()),
            team: None,
        };
        let a = intake::validate(&self.services, &raw, "api", self.clock.now()).expect("valid");
        self.store.enqueue(&a.request, &a.plan).await.expect("enqueue").request
    }

    /// Ends a waiting request as unreachable, as the scheduler does at expiry.
    async fn unreachable(&self, req: &Request) {
        let now = self.clock.now();
        let applied = self
            .store
            .apply(req.id, now, |r, _| {
                Ok(Transition {
                    from: r.state,
                    to: State::Unreachable,
                    due: None,
                    counted: 0,
                    attempt: None,
                    end_reason: Some("test".into()),
                    cancel_requested: false,
                    deadline_missed: false,
                    audit: Some(Audit { actor: "test".into(), detail: "test".into() }),
                    sms: vec![SmsIntent {
                        kind: Kind::Unreachable,
                        key: "unreachable".into(),
                        not_before: now,
                        once_per: None,
                    }],
                    replan: None,
                })
            })
            .await
            .expect("apply");
        assert!(matches!(applied, Applied::Written(_)), "{applied:?}");
    }

    async fn rows(&self, request: i64) -> Vec<OutboxRow> {
        self.store.sms_rows(Some(request)).await.expect("rows")
    }

    async fn turn(&self, sender: &Sender) {
        sender.turn().await.expect("turn");
    }
}

#[tokio::test]
async fn retries_through_failures_and_delivers_exactly_once_across_a_restart() {
    use Answer::*;
    let rig = Rig::new(
        hel("2026-11-23T10:00"),
        &[Fail, Hang, Fail, DeliverAndHang, Accept, Accept],
        "21:00-08:00",
    )
    .await;
    let req = rig.enqueue("040 123 4567", "fi", true).await;
    let rows = rig.rows(req.id).await;
    assert_eq!(rows.len(), 1, "the notice is queued with the request: {rows:?}");
    assert_eq!((rows[0].kind, rows[0].state.as_str()), (Kind::Notice, "queued"));

    let sender = rig.sender();
    let t0 = rig.clock.now();
    // Try 1: 500 → retry after 30 s.
    rig.turn(&sender).await;
    let r = &rig.rows(req.id).await[0];
    assert_eq!((r.state.as_str(), r.tries), ("queued", 1));
    assert_eq!(r.not_before, t0.checked_add(SignedDuration::from_secs(30)).expect("t"));
    assert_eq!(r.reason.as_deref(), Some("http_5xx"));
    // Not before the backoff is over.
    rig.clock.set(t0.checked_add(SignedDuration::from_secs(29)).expect("t"));
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.requests(), 1);
    // Try 2: the gateway hangs → timeout → retry after 60 s.
    rig.clock.set(t0.checked_add(SignedDuration::from_secs(30)).expect("t"));
    rig.turn(&sender).await;
    let r = &rig.rows(req.id).await[0];
    assert_eq!((r.tries, r.reason.as_deref()), (2, Some("timeout")));
    // Try 3: 500 again → 120 s.
    rig.clock.set(t0.checked_add(SignedDuration::from_secs(90)).expect("t"));
    rig.turn(&sender).await;
    assert_eq!(rig.rows(req.id).await[0].tries, 3);
    // Try 4: the gateway delivers but the answer never arrives.
    rig.clock.set(t0.checked_add(SignedDuration::from_secs(210)).expect("t"));
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), 1);
    assert_eq!(rig.rows(req.id).await[0].state, "queued", "we never learned it was sent");

    // The daemon restarts: a new sender, a new HTTP client, same store.
    drop(sender);
    let sender = rig.sender();
    rig.clock.set(t0.checked_add(SignedDuration::from_secs(10 * 60)).expect("t"));
    rig.turn(&sender).await;
    let r = &rig.rows(req.id).await[0];
    assert_eq!((r.state.as_str(), r.tries), ("sent", 5), "{r:?}");
    let delivered = rig.gateway.delivered();
    assert_eq!(delivered.len(), 1, "one SMS despite five tries: {delivered:?}");
    let refs: Vec<String> =
        rig.gateway.requests.lock().expect("lock").iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(refs, vec![format!("callbackd-{}", r.id); 5], "the same reference on every try");
    let auth = rig.gateway.requests.lock().expect("lock")[0].1.clone();
    assert!(auth.starts_with("Basic "), "{auth}");
    assert_eq!(delivered[0].to, "+358401234567");
    assert_eq!(delivered[0].from, "Kallio TA");

    // A crash right after a row was claimed (try counted, lease taken) and the gateway
    // accepted: after the lease the next sender sends again with the same reference.
    let other = rig.enqueue("040 765 4321", "en", false).await;
    rig.unreachable(&other).await;
    let rows = rig.rows(other.id).await;
    assert_eq!(rows.len(), 2, "notice and unreachable: {rows:?}");
    // The notice is moot once the request ended.
    rig.turn(&sender).await;
    let rows = rig.rows(other.id).await;
    assert_eq!(rows[0].state, "skipped");
    assert_eq!(rows[0].reason.as_deref(), Some("request no longer waiting"));
    assert_eq!(rows[1].state, "sent");
    let n = rig.gateway.delivered().len();
    assert_eq!(n, 2);
    // Every row reached a final state; nothing was delivered twice.
    let mut refs: Vec<String> =
        rig.gateway.delivered().iter().map(|d| d.reference.clone()).collect();
    refs.dedup();
    assert_eq!(refs.len(), 2);
    assert_eq!(rig.store.sms_backlog().await.expect("backlog"), 0);
}

#[tokio::test]
async fn a_claimed_but_unmarked_message_is_resent_with_the_same_reference_after_a_crash() {
    let rig = Rig::new(hel("2026-11-23T10:00"), &[], "none").await;
    let req = rig.enqueue("040 123 4567", "sv", false).await;
    rig.unreachable(&req).await;
    let row =
        rig.rows(req.id).await.into_iter().find(|r| r.kind == Kind::Unreachable).expect("row");
    // What a sender does before calling the gateway; then it "crashes".
    let lease = rig.clock.now().checked_add(SignedDuration::from_secs(60)).expect("t");
    assert!(rig.store.sms_claim(&row, lease).await.expect("claim"));
    rig.gateway.deliver(Delivered {
        reference: format!("callbackd-{}", row.id),
        to: "+358401234567".into(),
        from: "Kallio TA".into(),
        text: "first".into(),
    });
    let sender = rig.sender();
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.requests(), 0, "the lease holds the row");
    rig.clock.set(lease);
    rig.turn(&sender).await;
    let r = rig.rows(req.id).await.into_iter().find(|r| r.kind == Kind::Unreachable).expect("row");
    assert_eq!((r.state.as_str(), r.tries), ("sent", 2));
    assert_eq!(rig.gateway.delivered().len(), 1, "the gateway dropped the repeat");
}

#[tokio::test]
async fn texts_are_right_in_all_three_languages() {
    let rig = Rig::new(hel("2026-11-23T10:00"), &[], "21:00-08:00").await;
    let sender = rig.sender();
    let mut ids = Vec::new();
    for (lang, number) in [("fi", "040 111 1111"), ("sv", "040 222 2222"), ("en", "040 333 3333")] {
        let r = rig.enqueue(number, lang, true).await;
        rig.turn(&sender).await;
        rig.unreachable(&r).await;
        rig.turn(&sender).await;
        ids.push(r.id);
    }
    let texts: Vec<String> = rig.gateway.delivered().iter().map(|d| d.text.clone()).collect();
    assert_eq!(texts.len(), 6, "{texts:#?}");
    let notice = |lang: &str| -> &str {
        match lang {
            "fi" => "Kallion terveysasema: soitamme sinulle 23.11. noin klo 10:",
            "sv" => "Kallion terveysasema: vi ringer dig 23.11. cirka kl. 10:",
            _ => "Kallion terveysasema: we will call you on 23.11. at about 10:",
        }
    };
    for (i, lang) in ["fi", "sv", "en"].iter().enumerate() {
        assert!(texts[2 * i].starts_with(notice(lang)), "{lang} notice: {}", texts[2 * i]);
        assert!(texts[2 * i].contains("09 31045501"), "the station's number: {}", texts[2 * i]);
    }
    assert_eq!(
        texts[1],
        "Kallion terveysasema: emme tavoittaneet sinua takaisinsoittopyyntösi vuoksi. Ota \
         uudelleen yhteyttä puhelimitse 09 31045501, chatissa tai verkossa www.hel.fi. Tähän \
         viestiin ei voi vastata."
    );
    assert!(texts[3].starts_with("Kallion terveysasema: vi nådde dig inte"), "{}", texts[3]);
    assert!(texts[5].starts_with("Kallion terveysasema: we could not reach you"), "{}", texts[5]);
    for t in &texts {
        assert!(callbackd::sms::template::parts(t) <= 2, "{t}");
    }
}

#[tokio::test]
async fn quiet_hours_hold_messages_until_morning() {
    let rig = Rig::new(hel("2026-11-23T15:00"), &[], "21:00-08:00").await;
    let sender = rig.sender();
    let req = rig.enqueue("040 123 4567", "fi", false).await;
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), 1, "the notice goes in the afternoon");
    rig.clock.set(hel("2026-11-23T22:10"));
    rig.unreachable(&req).await;
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.requests(), 1, "nothing at night");
    let r = rig.rows(req.id).await.into_iter().find(|r| r.kind == Kind::Unreachable).expect("row");
    assert_eq!((r.state.as_str(), r.not_before, r.tries), ("queued", hel("2026-11-24T08:00"), 0));
    rig.clock.set(hel("2026-11-24T07:59"));
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.requests(), 1, "still quiet at 07:59");
    rig.clock.set(hel("2026-11-24T08:00"));
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), 2, "sent at 08:00");
}

#[tokio::test]
async fn a_slipped_window_gets_a_new_notice() {
    // Kallio's notice_slip is 30 minutes. No dialer runs: the request keeps waiting.
    let rig = Rig::new(hel("2026-11-23T10:00"), &[], "none").await;
    let sender = rig.sender();
    let req = rig.enqueue("040 123 4567", "fi", false).await;
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), 1, "the first notice");
    // Still inside the promised window (plus the slip): nothing new.
    let told = rig.store.told(req.id).await.expect("read").expect("a window was told");
    assert!(told.to > hel("2026-11-23T10:00") && told.to < hel("2026-11-23T12:00"), "{told:?}");
    let slip = jiff::SignedDuration::from_mins(30);
    let inside = told.to.checked_add(slip - jiff::SignedDuration::from_mins(1)).expect("time");
    rig.clock.set(inside);
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), 1);
    // Long after the window: a new notice with the window of now.
    rig.clock.set(hel("2026-11-23T13:00"));
    rig.turn(&sender).await;
    rig.turn(&sender).await;
    let delivered = rig.gateway.delivered();
    assert_eq!(delivered.len(), 2, "one new notice: {delivered:?}");
    let notices = rig.rows(req.id).await.into_iter().filter(|r| r.kind == Kind::Notice).count();
    assert_eq!(notices, 2);
    // And not again while the new window holds.
    rig.clock.set(hel("2026-11-23T13:20"));
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), 2);
}

#[tokio::test]
async fn fixed_lines_are_skipped_with_a_reason_and_refusals_fail_at_once() {
    let rig = Rig::new(hel("2026-11-23T10:00"), &[Answer::Refuse], "none").await;
    let sender = rig.sender();
    let fixed = rig.enqueue("09 310 5015", "fi", true).await;
    let rows = rig.rows(fixed.id).await;
    assert_eq!(rows[0].state, "skipped", "{rows:?}");
    assert_eq!(rows[0].reason.as_deref(), Some("not a mobile number: cannot receive SMS"));
    let mobile = rig.enqueue("040 123 4567", "fi", true).await;
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.requests(), 1, "only the mobile number is tried");
    let r = &rig.rows(mobile.id).await[0];
    assert_eq!((r.state.as_str(), r.reason.as_deref()), ("failed", Some("http_4xx")));
}

/// A dialer answering per number: the scripted outcomes, then `Connected`.
#[derive(Debug, Default)]
struct Scripted(Mutex<HashMap<String, VecDeque<Outcome>>>);

impl Dialer for Scripted {
    fn dial(&self, call: Call) -> Pin<Box<dyn Future<Output = CallResult> + Send + 'static>> {
        let outcome = self
            .0
            .lock()
            .expect("lock")
            .get_mut(call.number.as_str())
            .and_then(VecDeque::pop_front)
            .unwrap_or(Outcome::Connected);
        Box::pin(async move { CallResult { outcome, sip_code: None } })
    }
}

async fn until_final(store: &Store, id: i64, wake: &Notify) -> Request {
    for _ in 0..500 {
        let r = store.request(id).await.expect("read").expect("exists");
        if r.state.is_final() {
            return r;
        }
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("request {id} never ended");
}

#[tokio::test]
async fn scheduler_outcomes_queue_unreachable_and_the_consented_survey_after_its_delay() {
    let rig = Rig::new(hel("2026-11-23T10:00"), &[], "21:00-08:00").await;
    rig.store
        .sms_optout(&callbackd::sms::normalize("040 444 4444").expect("n"), "api", rig.clock.now())
        .await
        .expect("optout");
    let dialer = Scripted::default();
    dialer.0.lock().expect("lock").insert(
        "+358405555555".into(),
        [Outcome::NoAnswer, Outcome::NoAnswer].into_iter().collect(),
    );
    let consent = rig.enqueue("040 111 1111", "fi", true).await;
    let no_consent = rig.enqueue("040 222 2222", "sv", false).await;
    let opted_out = rig.enqueue("040 444 4444", "en", true).await;
    let twice = rig.enqueue("040 555 5555", "fi", true).await;

    let (_tx, rx) = watch::channel(Arc::new(rig.services.clone()));
    let wake = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let limits = Limits { max_calls: 10, calls_per_second: 1000, grace: Duration::from_secs(1) };
    let dialer: Arc<dyn Dialer> = Arc::new(dialer);
    let task = tokio::spawn(
        Scheduler::new(
            rig.store.clone(),
            rx,
            Some(dialer),
            Arc::new(rig.clock.clone()),
            wake.clone(),
            limits,
            shutdown.clone(),
        )
        .run(),
    );
    // The call rate runs on the scheduler's clock: one millisecond between starts.
    let t0 = hel("2026-11-23T10:00");
    for (ms, id) in [consent.id, no_consent.id, opted_out.id].into_iter().enumerate() {
        rig.clock.set(t0 + SignedDuration::from_millis(ms as i64));
        assert_eq!(until_final(&rig.store, id, &wake).await.state, State::Connected);
    }
    rig.clock.set(t0 + SignedDuration::from_millis(3));
    // Two unanswered attempts, 30 minutes apart, make the request unreachable.
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.clock.set(hel("2026-11-23T10:31"));
    assert_eq!(until_final(&rig.store, twice.id, &wake).await.state, State::Unreachable);
    shutdown.cancel();
    task.await.expect("join").expect("scheduler");

    let kinds = |rows: Vec<OutboxRow>| -> Vec<(Kind, String)> {
        rows.into_iter().map(|r| (r.kind, r.state)).collect()
    };
    let fb =
        rig.rows(consent.id).await.into_iter().find(|r| r.kind == Kind::Feedback).expect("survey");
    assert_eq!(fb.not_before, hel("2026-11-25T10:00"), "48 hours after the callback");
    assert!(!kinds(rig.rows(no_consent.id).await).iter().any(|(k, _)| *k == Kind::Feedback));
    let out =
        rig.rows(opted_out.id).await.into_iter().find(|r| r.kind == Kind::Feedback).expect("row");
    assert_eq!(
        (out.state.as_str(), out.reason.as_deref()),
        ("skipped", Some("opted out of surveys"))
    );
    assert!(kinds(rig.rows(twice.id).await).contains(&(Kind::Unreachable, "queued".into())));

    let sender = rig.sender();
    rig.turn(&sender).await; // notices (moot now) and the unreachable message
    let before = rig.gateway.delivered().len();
    assert!(rig.gateway.delivered().iter().any(|d| d.text.contains("emme tavoittaneet")));
    rig.clock.set(hel("2026-11-25T09:59"));
    rig.turn(&sender).await;
    assert_eq!(rig.gateway.delivered().len(), before, "no survey before 48 h");
    rig.clock.set(hel("2026-11-25T10:00"));
    rig.turn(&sender).await;
    let after = rig.gateway.delivered();
    assert_eq!(after.len(), before + 1);
    let survey = &after[before];
    assert_eq!(survey.to, "+358401111111");
    assert!(survey.text.contains("https://palaute.hel.example/kallio"), "{}", survey.text);

    // At most one survey per number per period: a second connected callback for the same
    // number two days later gets none.
    let again = rig.enqueue("040 111 1111", "fi", true).await;
    let attempt = rig.store.claim(&again, rig.clock.now()).await.expect("claim").expect("claimed");
    let svc = &rig.services["kallio"];
    let rule = svc.sms.as_ref().and_then(|s| s.feedback);
    let rules = Rules {
        calendar: &svc.calendar,
        attempts: &svc.attempts,
        survey: rule.map(|f| Survey { delay: f.delay, period: f.period }),
        next_open_day: svc.next_open_day,
    };
    let now = rig.clock.now();
    let event = Event::Ended { seq: attempt.seq, outcome: Outcome::Connected };
    rig.store
        .finish(&attempt, None, None, Fence::Own, now, |req, records| {
            step(Some(&rules), &req.facts(records), event, now)
        })
        .await
        .expect("finish");
    assert!(!kinds(rig.rows(again.id).await).iter().any(|(k, _)| *k == Kind::Feedback));
}

#[tokio::test]
async fn opt_out_endpoint_and_the_daemon_deliver_with_masked_logs() {
    let (url, gateway) = start_gateway(&[]).await;
    let setup = common::Setup::new();
    let secret = setup.dir.path().join("sms-secret");
    std::fs::write(&secret, "s3cret\n").expect("secret");
    let mut cfg = std::fs::read_to_string(&setup.config).expect("read");
    cfg.push_str(&sms_toml(&url, &secret, "none"));
    std::fs::write(&setup.config, cfg).expect("write");
    let daemon = common::Daemon::start(&setup).await;
    let body =
        serde_json::json!({"service": "kallio", "number": "040 123 4567", "sms_consent": true});
    let (status, _) = daemon.post(&body).await;
    assert_eq!(status, 201);
    let http = daemon.client();
    let optout = serde_json::json!({"number": "+358 40 123 4567"});
    let (s1, v) = common::post_json(&http, &daemon.url("/v1/sms/optout"), &optout).await;
    assert_eq!(s1, 201, "{v}");
    assert_eq!(v["number"], "+35840*****67");
    let (s2, _) = common::post_json(&http, &daemon.url("/v1/sms/optout"), &optout).await;
    assert_eq!(s2, 200, "already on the list");
    let (s3, _) = common::post_json(
        &http,
        &daemon.url("/v1/sms/optout"),
        &serde_json::json!({"number": "x"}),
    )
    .await;
    assert_eq!(s3, 422);
    // The notice may wait for a closed service's quiet hours; it is queued either way.
    for _ in 0..100 {
        if !gateway.delivered().is_empty() || gateway.requests() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, logs) = daemon.terminate();
    assert_eq!(gateway.delivered().len(), 1, "the notice reached the gateway");
    assert!(logs.contains("SMS sent"), "{logs}");
    common::assert_logs_masked(&logs);
    for d in gateway.delivered() {
        assert!(!logs.contains(&d.text), "the message body is never logged");
    }
}

/// The text between "klo " and the next space: the window a Finnish notice tells.
fn told_window(text: &str) -> &str {
    let from = text.find("klo ").expect("klo") + 4;
    text[from..].split(' ').next().expect("window")
}

#[tokio::test]
async fn the_notice_tells_the_window_intake_told_even_when_the_estimate_moves() {
    let rig = Rig::new(hel("2026-11-23T10:00"), &[], "none").await;
    let sender = rig.sender();
    let svc = rig.services.get("kallio").expect("kallio").clone();
    let req = rig.enqueue("040 123 4567", "fi", false).await;
    // Intake counts every waiting request of its cached depth as ahead (here 30): the
    // window it tells is recorded.
    let told = callbackd::eta::tell_at(
        &rig.store,
        &svc,
        &req,
        callbackd::policy::Ahead::due(30),
        36.0,
        rig.clock.now(),
    )
    .await
    .expect("tell");
    let eta = told.eta.expect("an ETA");
    assert!(told.same_day, "{told:?}");
    // Three seconds later the exact place is 1, a different estimate: the SMS and a GET
    // still tell the recorded window.
    rig.clock.set(hel("2026-11-23T10:00:03"));
    let fresh = callbackd::eta::of_waiting(&rig.store, &svc, &req, rig.clock.now())
        .await
        .expect("fresh")
        .1
        .expect("fresh ETA");
    assert_ne!(fresh, eta, "the estimate moved");
    let again = callbackd::eta::tell(&rig.store, &svc, &req, rig.clock.now()).await.expect("tell");
    assert_eq!(again.eta, Some(eta), "GET tells the same window");
    rig.turn(&sender).await;
    let text = rig.gateway.delivered()[0].text.clone();
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    let window = format!(
        "{}-{}",
        eta.from.to_zoned(tz.clone()).strftime("%H:%M"),
        eta.to.to_zoned(tz).strftime("%H:%M")
    );
    assert_eq!(told_window(&text), window, "{text}");
    assert!(text.starts_with("Kallion terveysasema: soitamme sinulle 23.11."), "{text}");
}

#[tokio::test]
async fn a_full_day_is_told_honestly_by_tell_and_in_the_sms() {
    // 15:00 on a Monday, Kallio closes at 16:00 and starts no call after 15:50: with 300
    // waiting ahead at 36 calls an hour the callback comes on Tuesday.
    let rig = Rig::new(hel("2026-11-23T15:00"), &[], "none").await;
    let sender = rig.sender();
    let svc = rig.services.get("kallio").expect("kallio").clone();
    for (lang, number, late) in [
        ("fi", "040 111 1111", "Tämän päivän soittoajat ovat täynnä. soitamme sinulle 24.11."),
        ("sv", "040 222 2222", "Dagens tider för återuppringning är fulla. vi ringer dig 24.11."),
        ("en", "040 333 3333", "Today's callback times are full. we will call you on 24.11."),
    ] {
        let req = rig.enqueue(number, lang, false).await;
        let told = callbackd::eta::tell_at(
            &rig.store,
            &svc,
            &req,
            callbackd::policy::Ahead::due(300),
            36.0,
            rig.clock.now(),
        )
        .await
        .expect("tell");
        assert!(!told.same_day, "{told:?}");
        let eta = told.eta.expect("a window on a later day");
        assert!(eta.from > req.deadline_at, "{eta:?} after the deadline {}", req.deadline_at);
        rig.turn(&sender).await;
        let text = rig.gateway.delivered().last().expect("sent").text.clone();
        assert!(text.starts_with(&format!("Kallion terveysasema: {late}")), "{text}");
    }
    // A request told it is not the same day keeps being told so by a GET.
    let req = rig.enqueue("040 444 4444", "en", false).await;
    let first = callbackd::eta::tell_at(
        &rig.store,
        &svc,
        &req,
        callbackd::policy::Ahead::due(300),
        36.0,
        rig.clock.now(),
    )
    .await
    .expect("tell");
    let again = callbackd::eta::tell(&rig.store, &svc, &req, rig.clock.now()).await.expect("tell");
    assert_eq!((again.eta, again.same_day), (first.eta, false));
}
