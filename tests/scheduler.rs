//! The scheduler against a real SQLite file, with a scripted dialer and a manual clock:
//! retries after the pause, unreachable with the SMS queued, network failures not counted,
//! capacity, crash recovery, expiry, cancellation during a call, deadline supervision; the
//! serving order of the SQL against the lifecycle's; answered calls never dialled twice,
//! through a crash and through failed writes.

mod common;

use callbackd::call::attempt::{Call, CallResult, Dialer};
use callbackd::clock::{Clock, ManualClock};
use callbackd::dialplan::{self, Services};
use callbackd::intake::{self, RawRequest};
use callbackd::policy::Outcome;
use callbackd::policy::lifecycle::ServingKey;
use callbackd::scheduler::{Limits, Scheduler};
use callbackd::store::{Request, State, Store};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// One placed call, as the dialer saw it.
#[derive(Debug, Clone)]
struct Placed {
    at: Timestamp,
    request_id: i64,
    seq: i64,
    caller_id: String,
}

/// A dialer whose outcomes the test scripts per number; with `hold`, each call waits for
/// the test to release it.
#[derive(Debug, Default)]
struct Scripted {
    clock: Option<ManualClock>,
    outcomes: Mutex<HashMap<String, VecDeque<Outcome>>>,
    placed: Mutex<Vec<Placed>>,
    hold: bool,
    /// Report the answer (as the SIP dialer does after the 2xx) before the outcome.
    answer: bool,
    held: Mutex<Vec<oneshot::Sender<Outcome>>>,
    in_flight: Arc<Mutex<(usize, usize)>>,
    /// Per call, in the order they were handed over: the request, and how long its dialling
    /// waited after the scheduler handed it over (its booked start).
    waited: Arc<Mutex<Vec<(i64, Duration)>>>,
}

impl Scripted {
    fn script(&self, number: &str, outcomes: &[Outcome]) {
        self.outcomes
            .lock()
            .expect("lock")
            .insert(number.to_owned(), outcomes.iter().copied().collect());
    }
    fn placed(&self) -> Vec<Placed> {
        self.placed.lock().expect("lock").clone()
    }
}

impl Dialer for Scripted {
    fn dial(&self, call: Call) -> Pin<Box<dyn Future<Output = CallResult> + Send + 'static>> {
        let number = call.number.as_str().to_owned();
        let at = self.clock.as_ref().map_or_else(Timestamp::now, Clock::now);
        self.placed.lock().expect("lock").push(Placed {
            at,
            request_id: call.request_id,
            seq: call.seq,
            caller_id: call.service.caller_id.number.as_str().to_owned(),
        });
        let scripted =
            self.outcomes.lock().expect("lock").get_mut(&number).and_then(VecDeque::pop_front);
        let flight = self.in_flight.clone();
        {
            let mut f = flight.lock().expect("lock");
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        let rx = if self.hold {
            let (tx, rx) = oneshot::channel();
            self.held.lock().expect("lock").push(tx);
            Some(rx)
        } else {
            None
        };
        let answer = self.answer;
        let handed = tokio::time::Instant::now();
        let waited = self.waited.clone();
        let request_id = call.request_id;
        Box::pin(async move {
            waited.lock().expect("lock").push((request_id, handed.elapsed()));
            if answer {
                call.events.answered().await;
            }
            let outcome = match rx {
                Some(rx) => tokio::select! {
                    o = rx => o.unwrap_or(Outcome::Interrupted),
                    _ = call.hangup.cancelled() => Outcome::Interrupted,
                },
                None => scripted.unwrap_or(Outcome::Connected),
            };
            flight.lock().expect("lock").0 -= 1;
            CallResult { outcome, sip_code: None }
        })
    }
}

fn hel(s: &str) -> Timestamp {
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    s.parse::<DateTime>().expect("datetime").to_zoned(tz).expect("zoned").timestamp()
}

fn repo_services() -> Services {
    dialplan::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans"))
        .expect("dialplans")
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    clock: ManualClock,
    wake: Arc<Notify>,
    services: Services,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), callbackd::store::StoreError>>>,
    dialer: Arc<Scripted>,
    /// The trunk's call rate.
    calls_per_second: u32,
}

impl Rig {
    async fn new(start: Timestamp, services: Services, dialer: Scripted) -> Rig {
        Rig::with_rate(start, services, dialer, 1000).await
    }

    async fn with_rate(
        start: Timestamp,
        services: Services,
        dialer: Scripted,
        calls_per_second: u32,
    ) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("queue.db").display());
        let store = Store::open(&url).await.expect("store");
        let clock = ManualClock::new(start);
        let dialer = Arc::new(Scripted { clock: Some(clock.clone()), ..dialer });
        let mut rig = Rig {
            _dir: dir,
            store,
            clock,
            wake: Arc::new(Notify::new()),
            services,
            shutdown: CancellationToken::new(),
            task: None,
            dialer,
            calls_per_second,
        };
        rig.start();
        rig
    }

    fn start(&mut self) {
        let (_tx, rx) = watch::channel(Arc::new(self.services.clone()));
        let limits = Limits {
            max_calls: 100,
            calls_per_second: self.calls_per_second,
            grace: Duration::from_secs(5),
        };
        self.shutdown = CancellationToken::new();
        let dialer: Arc<dyn Dialer> = self.dialer.clone();
        let s = Scheduler::new(
            self.store.clone(),
            rx,
            Some(dialer),
            Arc::new(self.clock.clone()),
            self.wake.clone(),
            limits,
            self.shutdown.clone(),
        );
        self.task = Some(tokio::spawn(s.run()));
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("scheduler");
        }
    }

    async fn enqueue(&self, service: &str, number: &str, window: Option<&str>) -> Request {
        let raw = RawRequest {
            service: service.into(),
            number: number.into(),
            window: window.map(Into::into),
            lang: None,
            sms_consent: Some(true),
            channel: Some("api".into()),
            team: None,
        };
        let a = intake::validate(&self.services, &raw, "api", self.clock.now()).expect("valid");
        let r = self.store.enqueue(&a.request, &a.plan).await.expect("enqueue").request;
        self.wake.notify_one();
        r
    }

    /// Five Kallio requests made a minute apart from 07:00 on 2026-11-23, before opening:
    /// all due at 08:00 with the same deadline. Their ids, oldest first.
    async fn enqueue_five_before_opening(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 0..5 {
            self.clock.set(hel("2026-11-23T07:00") + SignedDuration::from_mins(i));
            ids.push(self.enqueue("kallio", &format!("040 100 000{}", i + 1), None).await.id);
        }
        ids
    }

    async fn health(&mut self) -> String {
        match self.task.take() {
            Some(t) if t.is_finished() => format!("stopped: {:?}", t.await),
            Some(t) => {
                self.task = Some(t);
                "running".to_owned()
            }
            None => "not started".to_owned(),
        }
    }

    /// Moves the clock and wakes the scheduler.
    fn at(&self, t: Timestamp) {
        self.clock.set(t);
        self.wake.notify_one();
    }

    /// Waits (bounded) until the request satisfies `pred`.
    async fn until(&mut self, id: i64, what: &str, pred: impl Fn(&Request) -> bool) -> Request {
        for _ in 0..500 {
            let r = self.store.request(id).await.expect("read").expect("exists");
            if pred(&r) {
                return r;
            }
            self.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = self.store.request(id).await.expect("read");
        panic!(
            "request {id} never reached: {what}; last: {r:?}; scheduler: {}",
            self.health().await
        );
    }

    async fn placed_count(&mut self, n: usize) {
        for _ in 0..500 {
            if self.dialer.placed().len() >= n {
                return;
            }
            self.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} calls, saw {:?}; scheduler: {}",
            self.dialer.placed(),
            self.health().await
        );
    }
}

#[tokio::test]
async fn busy_then_retry_after_the_pause_then_connected() {
    let dialer = Scripted::default();
    dialer.script("+358401234567", &[Outcome::Busy, Outcome::Connected]);
    let mut rig = Rig::new(hel("2026-11-23T10:00"), repo_services(), dialer).await;
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    let r = rig.until(r.id, "retry_wait after busy", |r| r.state == State::RetryWait).await;
    assert_eq!(r.attempts_counted, 1);
    assert_eq!(r.due_at, Some(hel("2026-11-23T10:30")), "kallio pauses 30 minutes");
    let first = rig.dialer.placed();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].caller_id, "+358931045501", "the station's own number");

    // Not before the pause is over.
    rig.at(hel("2026-11-23T10:29"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.dialer.placed().len(), 1, "no call before the pause is over");

    rig.at(hel("2026-11-23T10:30"));
    let r = rig.until(r.id, "connected", |r| r.state == State::Connected).await;
    let placed = rig.dialer.placed();
    assert_eq!(placed.len(), 2);
    assert_eq!(placed[1].seq, 2);
    assert_eq!(placed[1].at, hel("2026-11-23T10:30"));
    let attempts = rig.store.attempts(r.id).await.expect("attempts");
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![Some(Outcome::Busy), Some(Outcome::Connected)]);
    let outbox = rig.store.outbox(Some(r.id)).await.expect("outbox");
    assert!(outbox.iter().all(|m| m.kind != "unreachable"), "{outbox:?}");
    rig.stop().await;
}

#[tokio::test]
async fn two_failed_attempts_make_the_request_unreachable_with_an_sms_queued() {
    let dialer = Scripted::default();
    dialer.script("+358401234567", &[Outcome::NoAnswer, Outcome::Busy]);
    let mut rig = Rig::new(hel("2026-11-23T09:00"), repo_services(), dialer).await;
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    rig.until(r.id, "retry_wait", |r| r.state == State::RetryWait).await;
    rig.at(hel("2026-11-23T09:45"));
    let r = rig.until(r.id, "unreachable", |r| r.state == State::Unreachable).await;
    assert_eq!(r.attempts_counted, 2);
    assert!(r.end_reason.as_deref().is_some_and(|s| s.contains("all 2 attempts")), "{r:?}");
    let outbox = rig.store.outbox(Some(r.id)).await.expect("outbox");
    let unreachable: Vec<_> = outbox.iter().filter(|m| m.kind == "unreachable").collect();
    assert_eq!(unreachable.len(), 1, "{outbox:?}");
    assert_eq!(unreachable[0].state, "queued");
    // Nothing more is dialled.
    rig.at(hel("2026-11-23T11:00"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.dialer.placed().len(), 2);
    rig.stop().await;
}

#[tokio::test]
async fn network_failures_are_retried_without_counting() {
    let dialer = Scripted::default();
    dialer.script(
        "+358401234567",
        &[
            Outcome::NetworkFailure,
            Outcome::NetworkFailure,
            Outcome::NetworkFailure,
            Outcome::Connected,
        ],
    );
    let mut rig = Rig::new(hel("2026-11-23T09:00"), repo_services(), dialer).await;
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    let mut t = hel("2026-11-23T09:00");
    for n in 1..=3 {
        rig.placed_count(n).await;
        let r =
            rig.until(r.id, "retry after network failure", |r| r.state == State::RetryWait).await;
        assert_eq!(r.attempts_counted, 0);
        t += SignedDuration::from_mins(2);
        assert_eq!(r.due_at, Some(t), "network_retry is 2 minutes");
        rig.at(t);
    }
    let r = rig.until(r.id, "connected", |r| r.state == State::Connected).await;
    assert_eq!(r.attempts_counted, 0);
    assert_eq!(rig.store.attempts(r.id).await.expect("attempts").len(), 4);
    rig.stop().await;
}

#[tokio::test]
async fn capacity_holds_and_requests_go_in_deadline_order() {
    let src = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml"),
    )
    .expect("read")
    .replace("capacity = 6", "capacity = 2");
    let services =
        dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid dialplan");
    let dialer = Scripted { hold: true, ..Scripted::default() };
    let mut rig = Rig::new(hel("2026-11-23T07:00"), services, dialer).await;
    // Made before opening, all due at 08:00 with the same deadline: served oldest first.
    let ids = rig.enqueue_five_before_opening().await;
    // The call rate (1000/s) runs on the scheduler's clock: each start is a millisecond on.
    let ms = |n: i64| hel("2026-11-23T08:00") + SignedDuration::from_millis(n);
    rig.at(ms(0));
    rig.placed_count(1).await;
    rig.at(ms(1));
    rig.placed_count(2).await;
    rig.at(ms(2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.dialer.placed().len(), 2, "capacity 2");
    let first: Vec<i64> = rig.dialer.placed().iter().map(|p| p.request_id).collect();
    assert_eq!(first, ids[..2].to_vec(), "oldest first");
    // Release the calls one by one: each frees one slot.
    for expected in 3..=5 {
        let tx = rig.dialer.held.lock().expect("lock").remove(0);
        tx.send(Outcome::Connected).expect("release");
        rig.at(ms(expected as i64));
        rig.placed_count(expected).await;
    }
    for tx in rig.dialer.held.lock().expect("lock").drain(..) {
        tx.send(Outcome::Connected).expect("release");
    }
    for id in &ids {
        rig.until(*id, "connected", |r| r.state == State::Connected).await;
    }
    assert_eq!(rig.dialer.in_flight.lock().expect("lock").1, 2, "never more than 2 at once");
    let order: Vec<i64> = rig.dialer.placed().iter().map(|p| p.request_id).collect();
    assert_eq!(order, ids);
    rig.stop().await;
}

#[tokio::test]
async fn calls_claimed_together_start_one_rate_interval_apart() {
    let dialer = Scripted { hold: true, ..Scripted::default() };
    let mut rig = Rig::with_rate(hel("2026-11-23T07:00"), repo_services(), dialer, 100).await;
    let ids = rig.enqueue_five_before_opening().await;
    let waited = |rig: &Rig| rig.dialer.waited.lock().expect("lock").clone();
    let started = |rig: &Rig, n: usize| {
        let w = rig.dialer.waited.clone();
        async move {
            for _ in 0..500 {
                if w.lock().expect("lock").len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("expected {n} calls to start, saw {:?}", w.lock().expect("lock"));
        }
    };
    // 100 calls/s, all five due at 08:00: the starts that fit in the next 20 ms (at 0, 10
    // and 20 ms) are claimed at once, and each call waits for its own.
    let ms = |n: i64| hel("2026-11-23T08:00") + SignedDuration::from_millis(n);
    rig.at(ms(0));
    started(&rig, 3).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rig.dialer.placed().len(), 3, "the rate held the other two back");
    let w = waited(&rig);
    assert_eq!(w.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[..3].to_vec());
    for (i, (_, wait)) in w.iter().enumerate() {
        assert!(*wait >= Duration::from_millis(10 * i as u64), "call {i} waited {wait:?}");
    }
    // The rate runs on the scheduler's clock: at 15 ms, the start at 30 ms is in reach.
    rig.at(ms(15));
    started(&rig, 4).await;
    assert!(waited(&rig)[3].1 >= Duration::from_millis(15), "{:?}", waited(&rig));
    rig.at(ms(30));
    started(&rig, 5).await;
    assert!(waited(&rig)[4].1 >= Duration::from_millis(10), "{:?}", waited(&rig));
    let order: Vec<i64> = rig.dialer.placed().iter().map(|p| p.request_id).collect();
    assert_eq!(order, ids, "in serving order");
    for tx in rig.dialer.held.lock().expect("lock").drain(..) {
        tx.send(Outcome::Connected).expect("release");
    }
    for id in &ids {
        let r = rig.until(*id, "connected", |r| r.state == State::Connected).await;
        let attempts = rig.store.attempts(r.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "{attempts:?}");
    }
    rig.stop().await;
}

#[tokio::test]
async fn a_crash_mid_call_is_recovered_as_interrupted_and_retried() {
    let dialer = Scripted::default();
    let mut rig = Rig::new(hel("2026-11-23T10:00"), repo_services(), dialer).await;
    rig.stop().await;
    // As if a previous run claimed the request and died during the call.
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    let attempt =
        rig.store.claim(&r, hel("2026-11-23T10:00")).await.expect("claim").expect("claimed");
    assert_eq!(rig.store.live_attempts().await.expect("live").len(), 1);
    rig.clock.set(hel("2026-11-23T10:05"));
    rig.start();
    rig.until(r.id, "re-planned", |r| r.state == State::RetryWait).await;
    rig.at(hel("2026-11-23T10:07"));
    let r = rig.until(r.id, "connected after recovery", |r| r.state == State::Connected).await;
    let attempts = rig.store.attempts(r.id).await.expect("attempts");
    assert_eq!(attempts[0].id, attempt.id);
    assert_eq!(attempts[0].outcome, Some(Outcome::Interrupted));
    assert_eq!(attempts.len(), 2, "one retry, no duplicate call");
    assert_eq!(rig.dialer.placed().len(), 1);
    assert_eq!(rig.dialer.placed()[0].at, hel("2026-11-23T10:07"), "after network_retry");
    assert_eq!(r.attempts_counted, 0, "an interrupted attempt does not count");
    rig.stop().await;
}

#[tokio::test]
async fn requests_that_run_out_of_time_end_with_an_sms() {
    // Calls are held until the test releases them.
    let dialer = Scripted { hold: true, ..Scripted::default() };
    let mut rig = Rig::new(hel("2026-11-23T10:00"), repo_services(), dialer).await;
    let busy = rig.enqueue("vuosaari", "040 200 0001", None).await;
    rig.placed_count(1).await;
    let r = rig.enqueue("kallio", "040 200 0002", Some("14:00-16:00")).await;
    // Kallio's window is 14-16; expiry is the end of the next open day's window.
    assert_eq!(r.expires_at, hel("2026-11-24T16:00"));
    // The window opens: kallio calls, nobody answers either call.
    rig.at(hel("2026-11-23T14:00"));
    rig.placed_count(2).await;
    for tx in rig.dialer.held.lock().expect("lock").drain(..) {
        tx.send(Outcome::NoAnswer).expect("release");
    }
    rig.until(r.id, "retry", |r| r.state == State::RetryWait).await;
    rig.until(busy.id, "retry", |r| r.state == State::RetryWait).await;
    // Jump past every expiry: both end, with the unreachable SMS queued.
    rig.at(hel("2026-11-26T12:00"));
    let r = rig.until(r.id, "unreachable", |r| r.state.is_final()).await;
    assert_eq!(r.state, State::Unreachable, "it was tried once");
    let outbox = rig.store.outbox(Some(r.id)).await.expect("outbox");
    assert!(outbox.iter().any(|m| m.kind == "unreachable"), "{outbox:?}");
    rig.stop().await;
}

#[tokio::test]
async fn cancelling_during_a_call_does_not_interrupt_it_but_stops_retries() {
    let dialer = Scripted { hold: true, ..Scripted::default() };
    let mut rig = Rig::new(hel("2026-11-23T10:00"), repo_services(), dialer).await;
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    rig.placed_count(1).await;
    rig.until(r.id, "dialing", |r| r.state == State::Dialing).await;
    let c = rig.store.cancel(r.id, "test", hel("2026-11-23T10:00:10")).await.expect("cancel");
    assert_eq!(c, callbackd::store::Cancelled::AfterLiveAttempt);
    let tx = rig.dialer.held.lock().expect("lock").remove(0);
    tx.send(Outcome::Busy).expect("release");
    let r = rig.until(r.id, "cancelled", |r| r.state == State::Cancelled).await;
    assert!(r.final_at.is_some());
    rig.at(hel("2026-11-23T11:00"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.dialer.placed().len(), 1, "not retried");
    rig.stop().await;
}

#[tokio::test]
async fn deadlines_are_supervised_in_real_time() {
    let dialer = Scripted { hold: true, ..Scripted::default() };
    // Made at 15:45 (kallio starts no call after 15:50) while the scheduler is stopped:
    // not started in time, the deadline is flagged at 16:00.
    let mut rig = Rig::new(hel("2026-11-23T15:45"), repo_services(), dialer).await;
    rig.stop().await;
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    assert_eq!((r.due_at, r.deadline_at), (Some(hel("2026-11-23T15:45")), hel("2026-11-23T16:00")));
    rig.at(hel("2026-11-23T15:55"));
    rig.start();
    assert!(!r.deadline_missed);
    // Made after the last start moment: an after-hours request, owed contact tomorrow.
    let late = rig.enqueue("kallio", "040 123 4568", None).await;
    assert_eq!(late.deadline_at, hel("2026-11-24T16:00"));
    assert_eq!(late.due_at, Some(hel("2026-11-24T08:00")));
    rig.at(hel("2026-11-23T16:00"));
    let r = rig.until(r.id, "deadline missed", |r| r.deadline_missed).await;
    assert_eq!(r.state, State::Pending, "still waiting, served first tomorrow");
    assert!(rig.dialer.placed().is_empty());
    let late = rig.store.request(late.id).await.expect("read").expect("kept");
    assert!(!late.deadline_missed, "its deadline is tomorrow's");
    rig.stop().await;
}

#[tokio::test]
async fn requests_of_a_removed_service_are_kept_not_dialled() {
    let mut services = repo_services();
    let dialer = Scripted::default();
    let mut rig = Rig::new(hel("2026-11-23T10:00"), services.clone(), dialer).await;
    rig.stop().await;
    let r = rig.enqueue("vuosaari", "040 123 4567", None).await;
    services.remove("vuosaari");
    rig.services = services;
    rig.start();
    rig.at(hel("2026-11-23T10:01"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = rig.store.request(r.id).await.expect("read").expect("kept");
    assert_eq!(again.state, State::Pending);
    assert!(rig.dialer.placed().is_empty());
    rig.stop().await;
}

/// Runs SQL on the test's database file beside the store (faults, query plans).
async fn sql(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let path = url.trim_start_matches("sqlite:");
    sqlx::AnyConnection::connect(&format!("sqlite://{path}")).await.expect("connect")
}

#[tokio::test]
async fn the_stores_serving_order_is_the_lifecycles() {
    use sqlx::{Executor, Row};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("queue.db").display());
    let store = Store::open(&url).await.expect("store");
    let services = repo_services();
    // 300 requests over three days, made at 40 distinct instants: many share a deadline,
    // many share both the deadline and the instant (the id decides).
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let base = hel("2026-11-23T06:00");
    for i in 0..300 {
        let at = base + SignedDuration::from_mins(i64::try_from(next(40)).expect("small") * 97);
        let raw = RawRequest {
            service: "kallio".into(),
            number: format!("040 3{:02} {:04}", i / 100, i % 100 + next(50) * 100),
            window: None,
            lang: None,
            sms_consent: Some(false),
            channel: Some("api".into()),
            team: None,
        };
        let Ok(a) = intake::validate(&services, &raw, "api", at) else { continue };
        store.enqueue(&a.request, &a.plan).await.expect("enqueue");
    }
    let now = hel("2026-12-10T12:00");
    let stored = store.due("kallio", now, 10_000).await.expect("due");
    assert!(stored.len() > 200, "{} requests", stored.len());
    let key = |r: &Request| r.facts(&[]).serving_key();
    let mut pure = stored.clone();
    pure.sort_by_key(key);
    let ids = |v: &[Request]| v.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&stored), ids(&pure), "ORDER BY is the lifecycle's ServingKey");
    let distinct: std::collections::BTreeSet<ServingKey> = stored.iter().map(key).collect();
    assert_eq!(distinct.len(), stored.len(), "a total order: no two requests tie");
    // "Requests ahead" counts the same order.
    for i in [0, 1, 17, 100, stored.len() - 1] {
        let ahead = store.ahead_of(&pure[i], 100_000).await.expect("ahead");
        assert_eq!(ahead, i64::try_from(i).expect("small"), "ahead of position {i}");
    }
    // The serving-order index delivers the order: no sort step in the plan.
    let mut conn = sql(&url).await;
    let plan = conn
        .fetch_all(
            "EXPLAIN QUERY PLAN SELECT id FROM requests WHERE service = 'kallio' \
             AND state IN ('pending','retry_wait') AND due_at + 0 <= 0 \
             ORDER BY deadline_at, created_at, id LIMIT 16",
        )
        .await
        .expect("explain");
    let plan: Vec<String> =
        plan.iter().map(|r| r.try_get::<String, _>("detail").expect("detail")).collect();
    assert!(plan.iter().any(|d| d.contains("requests_waiting_order")), "{plan:?}");
    assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
}

/// A dialer whose calls report the answer and then never end (until hung up).
#[derive(Debug, Default)]
struct AnswersThenHangs {
    answered: Arc<Notify>,
}

impl Dialer for AnswersThenHangs {
    fn dial(&self, call: Call) -> Pin<Box<dyn Future<Output = CallResult> + Send + 'static>> {
        let answered = self.answered.clone();
        Box::pin(async move {
            call.events.answered().await;
            answered.notify_one();
            call.hangup.cancelled().await;
            CallResult { outcome: Outcome::Interrupted, sip_code: None }
        })
    }
}

#[tokio::test]
async fn an_answered_call_is_never_dialled_again_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("queue.db").display());
    let services = repo_services();
    let clock = ManualClock::new(hel("2026-11-23T10:00"));
    let limits = Limits { max_calls: 10, calls_per_second: 100, grace: Duration::from_secs(5) };
    let request = {
        let store = Store::open(&url).await.expect("store");
        let raw = RawRequest {
            service: "kallio".into(),
            number: "040 123 4567".into(),
            window: None,
            lang: None,
            sms_consent: Some(true),
            channel: Some("api".into()),
            team: None,
        };
        let a = intake::validate(&services, &raw, "api", clock.now()).expect("valid");
        let r = store.enqueue(&a.request, &a.plan).await.expect("enqueue").request;
        let dialer = Arc::new(AnswersThenHangs::default());
        let answered = dialer.answered.clone();
        let (_tx, rx) = watch::channel(Arc::new(services.clone()));
        let s = Scheduler::new(
            store.clone(),
            rx,
            Some(dialer),
            Arc::new(clock.clone()),
            Arc::new(Notify::new()),
            limits,
            CancellationToken::new(),
        );
        let task = tokio::spawn(s.run());
        tokio::time::timeout(Duration::from_secs(10), answered.notified())
            .await
            .expect("the call was answered");
        // The process dies right after the answer: nothing else is written.
        task.abort();
        let _ = task.await;
        let attempts = store.attempts(r.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].answered_at.is_some(), "the answer was durable first");
        assert_eq!(attempts[0].outcome, None);
        r
    };
    // The next start: recovery, then hours of the scheduler's time.
    let store = Store::open(&url).await.expect("reopen");
    let dialer = Arc::new(Scripted { clock: Some(clock.clone()), ..Scripted::default() });
    clock.set(hel("2026-11-23T10:05"));
    let (_tx, rx) = watch::channel(Arc::new(services.clone()));
    let wake = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let dyn_dialer: Arc<dyn Dialer> = dialer.clone();
    let s = Scheduler::new(
        store.clone(),
        rx,
        Some(dyn_dialer),
        Arc::new(clock.clone()),
        wake.clone(),
        limits,
        shutdown.clone(),
    );
    let recovered = s.recovered_flag();
    let task = tokio::spawn(s.run());
    for _ in 0..500 {
        if recovered.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recovered.load(std::sync::atomic::Ordering::Acquire), "recovery finished");
    for t in ["2026-11-23T10:07", "2026-11-23T11:00", "2026-11-24T09:00"] {
        clock.set(hel(t));
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dialer.placed().is_empty(), "dialled again: {:?}", dialer.placed());
    let r = store.request(request.id).await.expect("read").expect("kept");
    assert_eq!(r.state, State::Connected, "{r:?}");
    assert_eq!(r.due_at, None, "not due again");
    let attempts = store.attempts(r.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(Outcome::Connected));
    let trail = store.audit_trail(r.id).await.expect("audit");
    assert!(
        trail.iter().any(|(_, _, to, actor, detail)| to == "connected"
            && actor == "recovery"
            && detail.contains("answered, outcome unknown")),
        "{trail:?}"
    );
    shutdown.cancel();
    task.await.expect("join").expect("scheduler");
}

#[tokio::test]
async fn outcomes_and_answers_that_cannot_be_written_are_kept_and_written_later() {
    use sqlx::Executor;
    let dialer = Scripted { hold: true, answer: true, ..Scripted::default() };
    let mut rig = Rig::new(hel("2026-11-23T10:00"), repo_services(), dialer).await;
    let url = format!("sqlite:{}", rig._dir.path().join("queue.db").display());
    let mut conn = sql(&url).await;
    // The database refuses every write on attempts (as a full disk would) from now on.
    conn.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON attempts \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END",
    )
    .await
    .expect("trigger");
    let r = rig.enqueue("kallio", "040 123 4567", None).await;
    rig.placed_count(1).await;
    // The answer could not be written; the call goes on and connects.
    for _ in 0..500 {
        if !rig.dialer.held.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tx = rig.dialer.held.lock().expect("lock").remove(0);
    tx.send(Outcome::Connected).expect("release");
    // Hours pass while the outcome is kept in memory: the request is still dialling and is
    // never dialled again.
    for t in ["2026-11-23T10:05", "2026-11-23T11:00"] {
        rig.at(hel(t));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let live = rig.store.request(r.id).await.expect("read").expect("kept");
    assert_eq!(live.state, State::Dialing, "nothing written yet");
    assert_eq!(rig.dialer.placed().len(), 1, "not dialled again");
    // The disk has room again: the kept answer and outcome are written.
    conn.execute("DROP TRIGGER refuse").await.expect("drop trigger");
    let r = rig.until(r.id, "connected", |r| r.state == State::Connected).await;
    let attempts = rig.store.attempts(r.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(Outcome::Connected));
    assert!(attempts[0].answered_at.is_some(), "the kept answer was written");
    assert_eq!(rig.dialer.placed().len(), 1);
    rig.stop().await;
}

#[tokio::test]
async fn an_outcome_that_cannot_be_written_does_not_hold_back_the_others() {
    use sqlx::Executor;
    let dialer = Scripted { hold: true, ..Scripted::default() };
    let mut rig = Rig::new(hel("2026-11-23T10:00"), repo_services(), dialer).await;
    let url = format!("sqlite:{}", rig._dir.path().join("queue.db").display());
    let mut conn = sql(&url).await;
    let a = rig.enqueue("kallio", "040 123 4567", None).await;
    let b = rig.enqueue("kallio", "040 765 4321", None).await;
    rig.placed_count(2).await;
    for _ in 0..500 {
        if rig.dialer.held.lock().expect("lock").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The database refuses to end A's attempt (as it would a corrupt row), not B's.
    conn.execute(
        format!(
            "CREATE TRIGGER refuse BEFORE UPDATE OF outcome ON attempts \
             WHEN NEW.request_id = {} BEGIN SELECT RAISE(ABORT, 'refused (test)'); END",
            a.id
        )
        .as_str(),
    )
    .await
    .expect("trigger");
    // Both calls end at the same moment: their outcomes are written together.
    for tx in rig.dialer.held.lock().expect("lock").drain(..) {
        tx.send(Outcome::Connected).expect("release");
    }
    rig.until(b.id, "connected", |r| r.state == State::Connected).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let kept = rig.store.request(a.id).await.expect("read").expect("kept");
    assert_eq!(kept.state, State::Dialing, "A's outcome is kept, B's was written");
    conn.execute("DROP TRIGGER refuse").await.expect("drop trigger");
    rig.until(a.id, "connected", |r| r.state == State::Connected).await;
    for id in [a.id, b.id] {
        let attempts = rig.store.attempts(id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].outcome, Some(Outcome::Connected));
    }
    assert_eq!(rig.dialer.placed().len(), 2, "neither dialled again");
    rig.stop().await;
}

/// A batch of claims in which one request's attempt is refused after its row was updated
/// (a stray live attempt, as a foreign writer could leave): that claim alone is undone and
/// its request stays waiting; the others are claimed and committed.
#[tokio::test]
async fn a_claim_refused_inside_a_batch_is_undone_alone() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}", dir.path().join("queue.db").display());
    let store = Store::open(&url).await.expect("open the store");
    let t = hel("2026-11-23T09:00");
    let mut ids = Vec::new();
    for i in 0..3 {
        let (new, plan) = common::fill::api_request("kallio", &format!("+35840555010{i}"), t);
        ids.push(store.enqueue(&new, &plan).await.expect("enqueue").request.id);
    }
    let stray = ids[1];
    let mut conn = sql(&url).await;
    conn.execute(
        format!("INSERT INTO attempts (request_id, seq, started_at) VALUES ({stray}, 9, 0)")
            .as_str(),
    )
    .await
    .expect("a stray live attempt");
    let now = t + SignedDuration::from_mins(1);
    let due = store.due("kallio", now, 10).await.expect("due");
    assert_eq!(due.len(), 3, "{due:?}");
    let claimed = store.claim_all(&due, now).await.expect("the batch is committed");
    assert_eq!(claimed.len(), 3);
    for (req, attempt) in due.iter().zip(&claimed) {
        let stored = store.request(req.id).await.expect("read").expect("kept");
        let attempts = store.attempts(req.id).await.expect("attempts");
        if req.id == stray {
            assert!(attempt.is_none(), "{attempt:?}");
            assert_eq!(stored.state, State::Pending, "the refused claim is undone");
            assert_eq!(attempts.len(), 1, "only the stray attempt: {attempts:?}");
        } else {
            let attempt = attempt.as_ref().expect("claimed");
            assert_eq!(attempt.request_id, req.id);
            assert_eq!(stored.state, State::Dialing);
            assert_eq!(attempts.len(), 1, "{attempts:?}");
        }
    }
    store.close().await;
}

/// A batch of outcomes in which one fails after its attempt was ended (its audit row is
/// refused): that outcome alone is undone (its attempt stays live, its request dialling),
/// and the others are written and committed.
#[tokio::test]
async fn an_outcome_failing_after_it_wrote_is_undone_alone() {
    use callbackd::policy::lifecycle::{Event, step};
    use callbackd::store::{Applied, Fence, Finish};
    use sqlx::Executor;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, url, due, attempts, now) = claimed_together(dir.path(), "+35840555020", 3).await;
    // Claimed together: each attempt is its own request's, with its audit row.
    for (req, attempt) in due.iter().zip(&attempts) {
        assert_eq!((attempt.request_id, attempt.seq), (req.id, 1), "{attempt:?}");
        let trail = store.audit_trail(req.id).await.expect("audit");
        let claims: Vec<_> = trail.iter().filter(|(_, _, to, _, _)| to == "dialing").collect();
        assert_eq!(claims.len(), 1, "{trail:?}");
        let (_, from, _, actor, detail) = claims[0];
        assert_eq!(
            (from.as_deref(), actor.as_str(), detail.as_str()),
            (Some("pending"), "scheduler", "attempt 1")
        );
    }
    let failing = due[1].id;
    let mut conn = sql(&url).await;
    conn.execute(
        format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.request_id = {failing} \
             AND NEW.to_state = 'connected' BEGIN SELECT RAISE(ABORT, 'refused (test)'); END"
        )
        .as_str(),
    )
    .await
    .expect("trigger");
    let end = now + SignedDuration::from_mins(2);
    let ends = attempts
        .iter()
        .map(|attempt| {
            let finish =
                Finish { attempt, sip_code: Some(200), answered_at: None, fence: Fence::Own };
            let event = Event::Ended { seq: attempt.seq, outcome: Outcome::Connected };
            (finish, move |req: &Request, records: &[_]| {
                step(None, &req.facts(records), event, end)
            })
        })
        .collect();
    let written = store.finish_all(ends, end).await.expect("the batch is committed");
    assert_eq!(written.len(), 3);
    for (req, applied) in due.iter().zip(&written) {
        let stored = store.request(req.id).await.expect("read").expect("kept");
        let attempts = store.attempts(req.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        if req.id == failing {
            assert!(applied.is_err(), "{applied:?}");
            assert_eq!(stored.state, State::Dialing, "the failed outcome is undone");
            assert_eq!(attempts[0].outcome, None, "its attempt is still live");
        } else {
            assert!(matches!(applied, Ok(Applied::Written(_))), "{applied:?}");
            assert_eq!(stored.state, State::Connected);
            assert_eq!(attempts[0].outcome, Some(Outcome::Connected));
        }
    }
    store.close().await;
}

/// Outcomes of calls of distinct requests ended together are decided on their requests as
/// read at once, and each written on its own request.
#[tokio::test]
async fn outcomes_ended_together_are_each_written_on_their_own_request() {
    use callbackd::policy::lifecycle::{Event, step};
    use callbackd::store::{Applied, Fence, Finish};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, _, _, attempts, now) = claimed_together(dir.path(), "+35840555030", 4).await;
    // Two answered, two busy: the busy ones wait for their retry.
    let outcomes = [Outcome::Connected, Outcome::Busy, Outcome::Connected, Outcome::Busy];
    let end = now + SignedDuration::from_mins(2);
    let ends = attempts
        .iter()
        .zip(outcomes)
        .map(|(attempt, outcome)| {
            let finish = Finish { attempt, sip_code: None, answered_at: None, fence: Fence::Own };
            let event = Event::Ended { seq: attempt.seq, outcome };
            (finish, move |req: &Request, records: &[_]| {
                step(None, &req.facts(records), event, end)
            })
        })
        .collect();
    let written = store.finish_all(ends, end).await.expect("committed");
    for ((attempt, outcome), applied) in attempts.iter().zip(outcomes).zip(&written) {
        let Ok(Applied::Written(t)) = applied else { panic!("{applied:?}") };
        let stored = store.request(attempt.request_id).await.expect("read").expect("kept");
        assert_eq!(stored.state, t.to, "{stored:?}");
        let want = if outcome == Outcome::Connected { State::Connected } else { State::RetryWait };
        assert_eq!(stored.state, want);
        let rows = store.attempts(attempt.request_id).await.expect("attempts");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].outcome, Some(outcome));
        // The audit rows of the batch are written together, each on its own request.
        let trail = store.audit_trail(attempt.request_id).await.expect("audit");
        let ended: Vec<_> =
            trail.iter().filter(|(_, from, _, _, _)| from.as_deref() == Some("dialing")).collect();
        assert_eq!(ended.len(), 1, "{trail:?}");
        assert_eq!(ended[0].2, want.as_str(), "{trail:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn outcomes_ended_together_are_each_written_only_on_a_live_claim() {
    use callbackd::store::{Applied, Fence};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, url, _, attempts, now) = claimed_together(dir.path(), "+35840555040", 4).await;
    let end = now + SignedDuration::from_mins(2);
    let mut c = sql(&url).await;
    // The second request was claimed again since (its fencing token moved on); the third
    // attempt's lease was renewed by the server that holds it, so it cannot be taken over;
    // the fourth has no lease and can.
    let later = end.as_millisecond() + 60_000;
    for q in [
        format!("UPDATE requests SET version = version + 1 WHERE id = {}", attempts[1].request_id),
        format!("UPDATE attempts SET lease_until = {later} WHERE id = {}", attempts[2].id),
    ] {
        sqlx::query(&q).execute(&mut c).await.expect("set up");
    }
    let c = Outcome::Connected;
    let ends = [(Fence::Own, c), (Fence::Own, c), (Fence::Expired, c), (Fence::Expired, c)];
    let written = common::finish_together(&store, &attempts, &ends, None, end).await;
    let got: Vec<bool> = written.iter().map(|a| matches!(a, Ok(Applied::Written(_)))).collect();
    assert_eq!(got, [true, false, false, true], "{written:?}");
    assert!(matches!(written[1], Ok(Applied::Gone)) && matches!(written[2], Ok(Applied::Gone)));
    for (attempt, live) in attempts.iter().zip([true, false, false, true]) {
        let stored = store.request(attempt.request_id).await.expect("read").expect("kept");
        let rows = store.attempts(attempt.request_id).await.expect("attempts");
        if live {
            assert_eq!(stored.state, State::Connected, "{stored:?}");
            assert_eq!(rows[0].outcome, Some(Outcome::Connected), "{rows:?}");
        } else {
            // Nothing written: the attempt stays live, its request dialling.
            assert_eq!(stored.state, State::Dialing, "{stored:?}");
            assert_eq!(rows[0].outcome, None, "{rows:?}");
        }
    }
    store.close().await;
}

/// A batch of ends larger than one statement takes (300 rows; a statement writes at most
/// 256) writes each audit row on its own request with its own values: the rows are split
/// across statements, and each statement's parameters are bound in the order they appear.
#[tokio::test]
async fn a_batch_of_ends_larger_than_one_statement_writes_each_audit_row_on_its_request() {
    use callbackd::store::{Applied, Fence};
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = 300;
    let (store, _, _, attempts, now) = claimed_together(dir.path(), "+358405551", n).await;
    let end = now + SignedDuration::from_mins(2);
    let ends = vec![(Fence::Own, Outcome::Connected); n];
    let written = common::finish_together(&store, &attempts, &ends, None, end).await;
    assert!(written.iter().all(|a| matches!(a, Ok(Applied::Written(_)))), "{written:?}");
    for attempt in &attempts {
        let trail = store.audit_trail(attempt.request_id).await.expect("audit");
        let claim: Vec<_> = trail.iter().filter(|(_, _, to, _, _)| to == "dialing").collect();
        assert_eq!(claim.len(), 1, "{trail:?}");
        assert_eq!((claim[0].0, claim[0].4.as_str()), (now, "attempt 1"), "{trail:?}");
        let ended: Vec<_> =
            trail.iter().filter(|(_, from, _, _, _)| from.as_deref() == Some("dialing")).collect();
        assert_eq!(ended.len(), 1, "{trail:?}");
        assert_eq!((ended[0].0, ended[0].2.as_str()), (end, "connected"), "{trail:?}");
    }
    store.close().await;
}

/// A store in `dir` with `n` requests of kallio (numbers `prefix` and one digit) enqueued at
/// 09:00 and claimed together a minute later: the store, its URL, the requests as due, their
/// attempts and the instant of the claim.
async fn claimed_together(
    dir: &std::path::Path,
    prefix: &str,
    n: usize,
) -> (Store, String, Vec<Request>, Vec<callbackd::store::Attempt>, Timestamp) {
    let url = format!("sqlite:{}", dir.join("queue.db").display());
    let store = Store::open(&url).await.expect("open the store");
    let t = hel("2026-11-23T09:00");
    for i in 0..n {
        let (new, plan) = common::fill::api_request("kallio", &format!("{prefix}{i}"), t);
        store.enqueue(&new, &plan).await.expect("enqueue");
    }
    let now = t + SignedDuration::from_mins(1);
    let due = store.due("kallio", now, n as i64).await.expect("due");
    assert_eq!(due.len(), n, "{due:?}");
    let claimed = store.claim_all(&due, now).await.expect("claimed");
    let attempts = claimed.into_iter().map(|a| a.expect("each claimed")).collect();
    (store, url, due, attempts, now)
}
