//! Several servers on one PostgreSQL queue: the store API on PostgreSQL, outcomes written
//! together (each only on a live claim), leases and fencing, shared capacity and call rate, intake dedup under races between two daemons,
//! and three daemons against one sipp PBX through a `kill -9` and a PostgreSQL restart.
//!
//! PostgreSQL: `CALLBACKD_TEST_DATABASE` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test creates its own database `cb_test_<random>` and drops it afterwards. Without a
//! reachable PostgreSQL the tests print `SKIPPED: PostgreSQL not reachable` and pass,
//! except under `CI=true`, where they fail.

mod common;

use callbackd::dialplan::{self, Services};
use callbackd::intake::{self, RawRequest};
use callbackd::policy::Outcome;
use callbackd::policy::lifecycle::{Event, Orphan, step};
use callbackd::store::lease::ClaimLimits;
use callbackd::store::{Applied, Attempt, Cancelled, Fence, ListFilter, State, Store};
use common::pg::TestDb;
use common::sipp::{free_udp_port, have_sipp};
use common::{Daemon, Setup, repo};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sqlx::{Connection, Row};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The end-to-end test restarts PostgreSQL: it runs alone (write), the others together
/// (read).
static PG: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Writes an attempt's outcome as the scheduler does (without a dialplan: a retry is due at
/// once); a take-over (`Fence::Expired`) records it as orphaned. True when written.
async fn finish(
    store: &Store,
    attempt: &Attempt,
    outcome: Outcome,
    sip: Option<u16>,
    fence: Fence,
    now: Timestamp,
) -> bool {
    let event = match fence {
        Fence::Own => Event::Ended { seq: attempt.seq, outcome },
        Fence::Expired => {
            Event::Orphaned { seq: attempt.seq, answered: false, why: Orphan::LeaseExpired }
        }
    };
    let applied = store
        .finish(attempt, sip, None, fence, now, |req, records| {
            step(None, &req.facts(records), event, now)
        })
        .await
        .expect("finish");
    matches!(applied, Applied::Written(_))
}

/// A 24/7 service; `capacity` concurrent calls.
fn dialplan_dir(dir: &Path, capacity: u32) -> PathBuf {
    let d = dir.join("dialplans");
    std::fs::create_dir_all(&d).expect("mkdir dialplans");
    let days: String = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| format!("{d} = [\"00:00-24:00\"]\n"))
        .collect();
    let toml = format!(
        "id = \"pg\"\nname = \"Kallion terveysasema\"\ncapacity = {capacity}\n\n\
         [caller_id]\nnumber = \"+358 9 3104 5501\"\nname = \"Kallion terveysasema\"\n\n\
         [hours]\nholidays = \"none\"\n{days}\n\
         [attempts]\nmax = 3\npause = \"1h\"\nring_timeout = \"5s\"\n\
         last_call_before_close = \"0s\"\nnetwork_retry = \"5s\"\n\n\
         [connect]\ntarget = \"sip:hoitajat@127.0.0.1\"\nconfirm = \"none\"\n"
    );
    std::fs::write(d.join("pg.toml"), toml).expect("write dialplan");
    d
}

/// The repository's prompts with a 20 ms `connecting` prompt, so that the 1,000 calls of
/// the end-to-end test are short.
fn short_sounds(dir: &Path) -> PathBuf {
    let out = dir.join("sounds");
    for lang in std::fs::read_dir(repo().join("sounds")).expect("sounds").flatten() {
        if !lang.path().is_dir() {
            continue;
        }
        let to = out.join(lang.file_name());
        std::fs::create_dir_all(&to).expect("mkdir sounds");
        for f in std::fs::read_dir(lang.path()).expect("lang dir").flatten() {
            if f.file_name() == "connecting.wav" {
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: 8000,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let mut w = hound::WavWriter::create(to.join("connecting.wav"), spec).expect("wav");
                for _ in 0..160 {
                    w.write_sample(0i16).expect("sample");
                }
                w.finalize().expect("finalize wav");
            } else {
                std::os::unix::fs::symlink(f.path(), to.join(f.file_name())).expect("symlink");
            }
        }
    }
    out
}

/// Points `setup` at the PostgreSQL database `url` and the PBX `pbx`.
fn configure(setup: &Setup, url: &str, pbx: &str, dialplans: &Path, cps: u32) {
    let toml = format!(
        "dialplans = {dialplans:?}\n\
         database = \"{url}\"\n\
         sounds = {sounds:?}\n\
         log_format = \"text\"\n\
         lease = \"3s\"\n\
         shutdown_grace = \"2s\"\n\
         \n\
         [sip]\n\
         bind = \"127.0.0.1:0\"\n\
         pbx = \"{pbx}\"\n\
         max_calls = 100\n\
         calls_per_second = {cps}\n\
         hangup_after_answer = \"0s\"\n\
         \n\
         [http]\n\
         bind = \"127.0.0.1:0\"\n",
        dialplans = dialplans.display().to_string(),
        sounds = short_sounds(setup.dir.path()).display().to_string(),
    );
    std::fs::write(&setup.config, toml).expect("write callbackd.toml");
}

fn services(dir: &Path, capacity: u32) -> Services {
    dialplan::load_dir(&dialplan_dir(dir, capacity)).expect("valid dialplan")
}

async fn enqueue(store: &Store, services: &Services, number: &str, now: Timestamp) -> i64 {
    let raw = RawRequest {
        service: "pg".into(),
        number: number.into(),
        window: None,
        lang: None,
        sms_consent: Some(true),
        channel: Some("api".into()),
        team: None,
    };
    let a = intake::validate(services, &raw, "api", now).expect("valid request");
    store.enqueue(&a.request, &a.plan).await.expect("enqueue").request.id
}

/// Two servers' stores on `db` (two pools) and `count` requests of the `pg` service
/// (capacity `capacity`), numbers `040 <series> 00nn`, made at the instant returned (whole
/// milliseconds, as stored); the directory holds the dialplan.
async fn two_servers(
    db: &TestDb,
    capacity: u32,
    series: &str,
    count: usize,
) -> (Store, Store, Timestamp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let services = services(dir.path(), capacity);
    let a = Store::open(&db.url).await.expect("open");
    let b = Store::open(&db.url).await.expect("open a second pool (another server)");
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("now");
    for n in 0..count {
        enqueue(&a, &services, &format!("040 {series} 00{n:02}"), now).await;
    }
    (a, b, now, dir)
}

fn limits<'a>(owner: &'a str, capacity: i64, interval: Duration) -> ClaimLimits<'a> {
    ClaimLimits {
        owner,
        lease: Duration::from_secs(1),
        capacity,
        max_calls: 100,
        trunk: "pbx.test:5060",
        interval,
    }
}

#[tokio::test]
async fn every_store_query_works_on_postgres() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let services = services(dir.path(), 2);
    let store = Store::open(&db.url).await.expect("open PostgreSQL store, run migrations");
    assert_eq!(store.backend(), callbackd::store::Backend::Postgres);
    assert!(store.ping().await);
    // Reopening runs no migration twice.
    Store::open(&db.url).await.expect("reopen");
    let now = Timestamp::now();

    let a = enqueue(&store, &services, "040 123 4567", now).await;
    let b = enqueue(&store, &services, "040 765 4321", now).await;
    assert_eq!(enqueue(&store, &services, "+358401234567", now).await, a, "dedup");
    let all = store.list(&ListFilter::default()).await.expect("list");
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);
    let f = ListFilter { service: Some("pg".into()), state: Some(State::Pending), limit: 10 };
    assert_eq!(store.list(&f).await.expect("list filtered").len(), 2);
    let f = ListFilter { service: None, state: Some(State::Dialing), limit: 0 };
    assert!(store.list(&f).await.expect("list dialing").is_empty());
    let req_a = store.request(a).await.expect("request").expect("stored");
    assert_eq!(req_a.state, State::Pending);
    assert!(store.request(999_999).await.expect("request").is_none());
    let req_b = store.request(b).await.expect("request").expect("stored");
    assert_eq!(store.ahead_of(&req_b, 100).await.expect("ahead_of"), 1);
    let depth = store.depth().await.expect("depth");
    assert_eq!(depth.iter().map(|d| d.count).sum::<i64>(), 2);
    let later = now + SignedDuration::from_secs(1);
    assert!(store.next_due(&["pg".to_owned()]).await.expect("next_due").is_some());
    assert!(store.next_due_of("pg").await.expect("next_due_of").is_some_and(|d| d <= later));
    assert!(store.next_deadline().await.expect("next_deadline").is_some());
    assert!(store.next_expiry().await.expect("next_expiry").is_some());
    let due = store.due("pg", later, 10).await.expect("due");
    assert_eq!(due.len(), 2);

    // Claim, finish (busy, retry), a second finish changes nothing.
    let attempt = store.claim(&due[0], later).await.expect("claim").expect("claimed");
    assert!(store.claim(&due[0], later).await.expect("claim again").is_none());
    assert_eq!(store.live_attempts().await.expect("live").len(), 1);
    assert!(finish(&store, &attempt, Outcome::Busy, Some(486), Fence::Own, later).await);
    assert!(
        !finish(&store, &attempt, Outcome::Busy, Some(486), Fence::Own, later).await,
        "finish again"
    );
    let attempts = store.attempts(due[0].id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(Outcome::Busy));
    assert_eq!(attempts[0].sip_code, Some(486));
    assert_eq!(store.request(due[0].id).await.expect("r").expect("r").state, State::RetryWait);

    // Cancel while dialing, then while waiting; audit and outbox.
    let other = &due[1];
    let live = store.claim(other, later).await.expect("claim").expect("claimed");
    assert_eq!(
        store.cancel(other.id, "test", later).await.expect("cancel"),
        Cancelled::AfterLiveAttempt
    );
    assert!(finish(&store, &live, Outcome::NoAnswer, Some(487), Fence::Own, later).await);
    assert_eq!(store.request(other.id).await.expect("r").expect("r").state, State::Cancelled);
    assert_eq!(store.cancel(due[0].id, "test", later).await.expect("cancel"), Cancelled::Now);
    assert_eq!(store.cancel(404_404, "test", later).await.expect("cancel"), Cancelled::NotFound);
    assert!(store.audit_trail(a).await.expect("audit").len() >= 3);
    store.outbox(None).await.expect("outbox");
    store.outbox(Some(a)).await.expect("outbox of one");
    store.sms_rows(None).await.expect("sms rows");
    store.sms_rows(Some(a)).await.expect("sms rows of one");
    store.sms_due(later, 10).await.expect("sms due");
    store.sms_next_due().await.expect("sms next due");
    store.sms_backlog().await.expect("sms backlog");
    let number = req_a.number.clone().expect("number");
    assert!(store.sms_optout(&number, "test", later).await.expect("opt out"));
    assert!(store.sms_opted_out(&number).await.expect("opted out?"));
    assert!(store.sms_optin(&number).await.expect("opt in"));
    assert_eq!(store.connected_since("pg", now).await.expect("connected"), 0);

    // Supervision sweeps.
    let c = enqueue(&store, &services, "050 111 2233", now).await;
    let far = now + SignedDuration::from_hours(24 * 30);
    let missed = store.mark_missed(far).await.expect("mark missed");
    assert_eq!(missed, vec![("pg".to_owned(), 1)]);
    let expired = store.expired_waiting(far, 10).await.expect("expired");
    assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c]);
    assert_eq!(store.erase_numbers(far).await.expect("erase"), 2);
    store.close().await;
}

#[tokio::test]
async fn outcomes_ended_together_are_each_written_only_on_a_live_claim() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let services = services(dir.path(), 4);
    let store = Store::open(&db.url).await.expect("open");
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("now");
    for n in 0..4 {
        enqueue(&store, &services, &format!("040 555 10{n:02}"), now).await;
    }
    let t = now + SignedDuration::from_secs(1);
    let due = store.due("pg", t, 10).await.expect("due");
    let attempts: Vec<Attempt> = store
        .claim_all(&due, t)
        .await
        .expect("claim")
        .into_iter()
        .map(|a| a.expect("each claimed"))
        .collect();
    assert_eq!(attempts.len(), 4);
    // The second request was claimed again since (its fencing token moved on); the third
    // attempt's lease was renewed by the server that holds it; the fourth has no lease.
    let end = t + SignedDuration::from_secs(60);
    let mut c = db.conn().await;
    for q in [
        format!("UPDATE requests SET version = version + 1 WHERE id = {}", attempts[1].request_id),
        format!(
            "UPDATE attempts SET lease_until = {} WHERE id = {}",
            end.as_millisecond() + 60_000,
            attempts[2].id
        ),
    ] {
        sqlx::query(&q).execute(&mut c).await.expect("set up");
    }
    let outcomes = [Outcome::Connected, Outcome::Busy, Outcome::Connected, Outcome::Busy];
    let fences = [Fence::Own, Fence::Own, Fence::Expired, Fence::Expired];
    let ends: Vec<_> = fences.into_iter().zip(outcomes).collect();
    let written = common::finish_together(&store, &attempts, &ends, Some(end), end).await;
    let got: Vec<bool> = written.iter().map(|a| matches!(a, Ok(Applied::Written(_)))).collect();
    assert_eq!(got, [true, false, false, true], "{written:?}");
    let want = [Some(State::Connected), None, None, Some(State::RetryWait)];
    for ((attempt, outcome), want) in attempts.iter().zip(outcomes).zip(want) {
        let stored = store.request(attempt.request_id).await.expect("read").expect("kept");
        let rows = store.attempts(attempt.request_id).await.expect("attempts");
        match want {
            Some(state) => {
                assert_eq!(stored.state, state, "{stored:?}");
                assert_eq!(rows[0].outcome, Some(outcome), "{rows:?}");
                assert_eq!(rows[0].sip_code, Some(200), "{rows:?}");
                assert_eq!(rows[0].answered_at, Some(end), "{rows:?}");
                let trail = store.audit_trail(attempt.request_id).await.expect("audit");
                let ended = trail.iter().filter(|r| r.1.as_deref() == Some("dialing")).count();
                assert_eq!(ended, 1, "{trail:?}");
            }
            None => {
                // Nothing written: the attempt stays live, its request dialling.
                assert_eq!(stored.state, State::Dialing, "{stored:?}");
                assert_eq!(rows[0].outcome, None, "{rows:?}");
            }
        }
    }
    store.close().await;
}

#[tokio::test]
async fn leases_fence_capacity_and_rate_hold_across_servers() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let (a, b, now, _dir) = two_servers(&db, 2, "555", 6).await;
    let t = now + SignedDuration::from_secs(1);

    // Capacity 2 across both servers, claimed at once from both.
    let (la, lb) = (limits("a", 2, Duration::ZERO), limits("b", 2, Duration::ZERO));
    let (x, y) = tokio::join!(
        a.claim_due("pg", t, 10, &la, |_| true),
        b.claim_due("pg", t, 10, &lb, |_| true)
    );
    let (x, y) = (x.expect("claim a"), y.expect("claim b"));
    assert_eq!(x.claimed.len() + y.claimed.len(), 2, "capacity holds across servers");
    let z = b.claim_due("pg", t, 10, &lb, |_| true).await.expect("claim b again");
    assert!(z.full && z.claimed.is_empty());
    let (winner, store, loser) = if x.claimed.is_empty() { ("b", &b, &a) } else { ("a", &a, &b) };
    let held: Vec<_> = x.claimed.iter().chain(&y.claimed).map(|(_, at)| at.clone()).collect();
    let renewed = store.renew_leases(winner, t + SignedDuration::from_secs(2)).await;
    assert_eq!(renewed.expect("renew").len(), 2);
    assert_eq!(store.lease_of(held[0].id).await.expect("lease").map(|l| l.0), Some(winner.into()));

    // Not yet expired: nothing to take over; the renewal made it 2 s.
    assert!(
        loser
            .expired_attempts(t + SignedDuration::from_millis(1500), 10)
            .await
            .expect("x")
            .is_empty()
    );
    // The winner pauses past its lease: the other server takes its attempts over.
    let late = t + SignedDuration::from_secs(5);
    let expired = loser.expired_attempts(late, 10).await.expect("expired");
    assert_eq!(expired.len(), 2);
    assert!(expired.iter().all(|(_, o)| o.as_deref() == Some(winner)));
    for (attempt, _) in &expired {
        assert!(finish(loser, attempt, Outcome::Interrupted, None, Fence::Expired, late).await);
    }
    // The paused server wakes: its outcome is fenced off, its renewal finds nothing.
    assert!(
        !finish(store, &held[0], Outcome::Connected, Some(200), Fence::Own, late).await,
        "fenced finish"
    );
    assert!(store.renew_leases(winner, late).await.expect("renew").is_empty());
    let attempts = a.attempts(held[0].request_id).await.expect("attempts");
    assert_eq!(attempts[0].outcome, Some(Outcome::Interrupted));

    // A renewal that lands first wins over a take-over.
    let c = a.claim_due("pg", late, 1, &la, |_| true).await.expect("claim");
    let (_, fresh) = &c.claimed[0];
    let later = late + SignedDuration::from_secs(10);
    let stale = b.expired_attempts(later, 10).await.expect("expired");
    assert_eq!(stale.len(), 1);
    a.renew_leases("a", later + SignedDuration::from_secs(3)).await.expect("renew");
    assert!(
        !finish(&b, fresh, Outcome::Interrupted, None, Fence::Expired, later).await,
        "take-over after renewal"
    );

    // The shared call rate: one start per interval, whichever server asks.
    let slow = limits("a", 10, Duration::from_secs(1));
    let r1 = a.claim_due("pg", later, 5, &slow, |_| true).await.expect("rate 1");
    assert_eq!(r1.claimed.len(), 1);
    assert_eq!(r1.rate_until, Some(later + SignedDuration::from_secs(1)));
    let slow_b = limits("b", 10, Duration::from_secs(1));
    let r2 = b.claim_due("pg", later, 5, &slow_b, |_| true).await.expect("rate 2");
    assert!(r2.claimed.is_empty());
    assert_eq!(r2.rate_until, Some(later + SignedDuration::from_secs(1)));
    // The check holds requests back without claiming them.
    let r3 = b
        .claim_due("pg", later + SignedDuration::from_secs(1), 5, &slow_b, |_| false)
        .await
        .expect("check");
    assert!(r3.claimed.is_empty() && !r3.skipped.is_empty());
    a.close().await;
    b.close().await;
}

/// The shared call rate lives in rows appended and removed by their key: the gate row is
/// locked by every claim but never rewritten (a long transaction elsewhere keeps every
/// version of a rewritten row, and each claim would walk them all), one start row per
/// trunk stays live, and a rate above 1,000 calls/s spaces starts by less than a
/// millisecond across servers.
#[tokio::test]
async fn the_call_rate_is_shared_without_rewriting_the_gate_row() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let (a, b, now, _dir) = two_servers(&db, 100, "557", 8).await;
    let t = now + SignedDuration::from_secs(1);
    // 4,000 calls/s: one start per 250 µs, whichever server claims.
    let (fast_a, fast_b) = (
        limits("a", 100, Duration::from_micros(250)),
        limits("b", 100, Duration::from_micros(250)),
    );
    let quarter = SignedDuration::from_micros(250);
    let first = a.claim_due("pg", t, 5, &fast_a, |_| true).await.expect("claim");
    assert_eq!(first.claimed.len(), 1, "one start per interval");
    assert_eq!(first.rate_until, Some(t + quarter));
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let gate = "SELECT ctid::text || ' ' || xmin::text FROM claim_gate";
    let before: String = sqlx::query_scalar(gate).fetch_one(&mut conn).await.expect("gate row");
    // The other server at the same instant waits for the next start, 250 µs later.
    let held = b.claim_due("pg", t, 5, &fast_b, |_| true).await.expect("claim");
    assert!(held.claimed.is_empty(), "{held:?}");
    assert_eq!(held.rate_until, Some(t + quarter));
    // Taking turns at each next start, every claim moves it one interval on.
    let mut at = t + quarter;
    for turn in 0..6 {
        let (store, limits) = if turn % 2 == 0 { (&b, &fast_b) } else { (&a, &fast_a) };
        let got = store.claim_due("pg", at, 5, limits, |_| true).await.expect("claim");
        assert_eq!(got.claimed.len(), 1, "turn {turn}: {got:?}");
        let (_, attempt) = &got.claimed[0];
        let trail = store.audit_trail(attempt.request_id).await.expect("audit");
        let last = trail.last().expect("audit row");
        assert_eq!(
            (last.2.as_str(), last.3.as_str(), last.4.as_str()),
            ("dialing", "scheduler", "attempt 1")
        );
        at += quarter;
        assert_eq!(got.rate_until, Some(at), "turn {turn}");
    }
    let after: String = sqlx::query_scalar(gate).fetch_one(&mut conn).await.expect("gate row");
    assert_eq!(before, after, "the gate row is locked by each claim, never rewritten");
    let starts: Vec<i64> = sqlx::query_scalar("SELECT next_us FROM claim_starts")
        .fetch_all(&mut conn)
        .await
        .expect("starts");
    assert_eq!(starts, [at.as_microsecond()], "one live start row per trunk");
    let _ = conn.close().await;
    a.close().await;
    b.close().await;
}

/// A server whose clock runs an hour ahead sets the shared call-rate stop an hour ahead.
/// A server with the right clock does not obey it (it lies beyond one interval plus the
/// lease from its clock): it replaces it with a stop one interval after its own clock and
/// claims nothing in that turn, then claims at that stop. One wrong clock, or one put right
/// after it set the stop, does not stop every server's calls for an hour.
#[tokio::test]
async fn a_rate_stop_set_by_a_clock_far_ahead_is_replaced() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let (a, b, now, _dir) = two_servers(&db, 100, "558", 4).await;
    let t = now + SignedDuration::from_secs(1);
    let interval = Duration::from_millis(100);
    let (ahead, right) = (limits("ahead", 100, interval), limits("right", 100, interval));
    let hour = SignedDuration::from_hours(1);
    let tenth = SignedDuration::from_millis(100);
    let wrong = a.claim_due("pg", t + hour, 5, &ahead, |_| true).await.expect("claim");
    assert_eq!(wrong.claimed.len(), 1);
    assert_eq!((wrong.rate_until, wrong.replaced), (Some(t + hour + tenth), None));
    // Within one interval plus the lease (1 s here) a stop holds, whoever set it.
    let near = b.claim_due("pg", t + hour - SignedDuration::from_secs(1), 5, &right, |_| true);
    let near = near.await.expect("claim");
    assert!(near.claimed.is_empty(), "{near:?}");
    assert_eq!((near.rate_until, near.replaced), (Some(t + hour + tenth), None));
    // An hour ahead it does not hold: the right clock replaces it and claims nothing now.
    let reset = b.claim_due("pg", t, 5, &right, |_| true).await.expect("claim");
    assert!(reset.claimed.is_empty(), "{reset:?}");
    assert_eq!((reset.rate_until, reset.replaced), (Some(t + tenth), Some(t + hour + tenth)));
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let starts = "SELECT next_us FROM claim_starts";
    let left: Vec<i64> = sqlx::query_scalar(starts).fetch_all(&mut conn).await.expect("starts");
    assert_eq!(left, [(t + tenth).as_microsecond()], "the far stop was replaced, not kept");
    // The replaced stop holds as any other, and the right clock claims at it.
    let held = b.claim_due("pg", t, 5, &right, |_| true).await.expect("claim");
    assert!(held.claimed.is_empty(), "{held:?}");
    assert_eq!((held.rate_until, held.replaced), (Some(t + tenth), None));
    let got = b.claim_due("pg", t + tenth, 5, &right, |_| true).await.expect("claim");
    assert_eq!(got.claimed.len(), 1, "{got:?}");
    assert_eq!((got.rate_until, got.replaced), (Some(t + tenth + tenth), None));
    let left: Vec<i64> = sqlx::query_scalar(starts).fetch_all(&mut conn).await.expect("starts");
    assert_eq!(left, [(t + tenth + tenth).as_microsecond()]);
    let _ = conn.close().await;
    a.close().await;
    b.close().await;
}

/// Four servers claim at once, round after round: the claims of a round add up exactly to
/// the limit (the service's capacity, or the trunk's `max_calls` when lower), no request is
/// claimed twice, and a watcher reading the committed state meanwhile never sees more live
/// attempts than the limit or a request with two live attempts.
#[tokio::test]
async fn four_servers_claiming_at_once_keep_capacity_and_never_share_a_request() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let services = services(dir.path(), 100);
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Store::open(&db.url).await.expect("open a server's pool"));
    }
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("now");
    for n in 0..80 {
        enqueue(&stores[0], &services, &format!("040 556 {n:04}"), now).await;
    }
    let t = now + SignedDuration::from_secs(1);
    let owners = ["s0", "s1", "s2", "s3"];

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut watch = sqlx::PgConnection::connect(&db.url).await.expect("watcher");
    let watching = stop.clone();
    let watcher = tokio::spawn(async move {
        let (mut most_live, mut shared, mut samples) = (0, 0, 0);
        while !watching.load(std::sync::atomic::Ordering::Relaxed) {
            most_live = most_live.max(
                count(&mut watch, "SELECT COUNT(*) FROM requests WHERE state = 'dialing'").await,
            );
            shared += count(
                &mut watch,
                "SELECT COUNT(*) FROM (SELECT request_id FROM attempts WHERE outcome IS NULL \
                 GROUP BY request_id HAVING COUNT(*) > 1) x",
            )
            .await;
            samples += 1;
        }
        (most_live, shared, samples)
    });

    let mut most_limit = 0;
    for round in 0..8 {
        // Even rounds: the service's capacity limits; odd rounds: the trunk's max_calls.
        let (capacity, max_calls) = if round % 2 == 0 { (5, 100) } else { (100, 3) };
        let limit = capacity.min(max_calls);
        most_limit = most_limit.max(limit);
        let claim = |i: usize| {
            let limits = ClaimLimits {
                owner: owners[i],
                lease: Duration::from_secs(60),
                capacity,
                max_calls,
                trunk: "pbx.test:5060",
                interval: Duration::ZERO,
            };
            let store = &stores[i];
            async move { store.claim_due("pg", t, 4, &limits, |_| true).await.expect("claim") }
        };
        let (b0, b1, b2, b3) = tokio::join!(claim(0), claim(1), claim(2), claim(3));
        let batches = [b0, b1, b2, b3];
        let mut ids = HashSet::new();
        let mut held = Vec::new();
        for (store, batch) in stores.iter().zip(batches) {
            for (req, attempt) in batch.claimed {
                assert!(ids.insert(req.id), "round {round}: request {} claimed twice", req.id);
                held.push((store, attempt));
            }
        }
        assert_eq!(held.len() as i64, limit, "round {round}: claims add up to the limit");
        for (store, attempt) in &held {
            assert!(finish(store, attempt, Outcome::Connected, Some(200), Fence::Own, t).await);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (most_live, shared, samples) = watcher.await.expect("watcher");
    assert!(samples > 0);
    assert!(most_live <= most_limit, "{most_live} live attempts seen, limit {most_limit}");
    assert_eq!(shared, 0, "a request with two live attempts");
    for store in stores {
        store.close().await;
    }
}

#[tokio::test]
async fn the_same_number_through_two_servers_at_once_is_one_request() {
    let _shared = PG.read().await;
    let Some(db) = TestDb::create().await else { return };
    let (s1, s2) = (Setup::new(), Setup::new());
    let plans = dialplan_dir(s1.dir.path(), 2);
    configure(&s1, &db.url, &s1.pbx.addr, &plans, 5);
    configure(&s2, &db.url, &s2.pbx.addr, &plans, 5);
    let d1 = Daemon::start(&s1).await;
    let d2 = Daemon::start(&s2).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        for k in 0..8 {
            let d = if k % 2 == 0 { &d1 } else { &d2 };
            let (http, url) = (d.client(), d.url("/v1/callbacks"));
            let body = json!({"service": "pg", "number": format!("040 555 00{n:02}")});
            tasks.spawn(async move { (n, common::post_json(&http, &url, &body).await) });
        }
    }
    let mut ids: HashMap<i32, HashSet<i64>> = HashMap::new();
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        let (n, (status, v)) = r.expect("task");
        assert!(status == 201 || status == 200, "{status} {v}");
        created += usize::from(status == 201);
        ids.entry(n).or_default().insert(common::i(&v, "id"));
    }
    assert_eq!(created, 20, "one 201 per number, the rest duplicates");
    assert!(ids.values().all(|s| s.len() == 1), "every answer names the one request: {ids:?}");
    let mut conn = db.conn().await;
    let dup: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT number FROM requests GROUP BY number \
         HAVING COUNT(*) > 1) AS d",
    )
    .fetch_one(&mut conn)
    .await
    .expect("query")
    .get("n");
    assert_eq!(dup, 0);
    let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM requests")
        .fetch_one(&mut conn)
        .await
        .expect("q")
        .get("n");
    assert_eq!(total, 20);
    let _ = conn.close().await;
    drop((d1, d2));
}

/// sipp answering every call, with its message log (for the overlap check).
#[derive(Debug)]
struct Pbx {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Pbx {
    fn start() -> Pbx {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_udp_port();
        let child = Command::new("sipp")
            .args(["-t", "u1", "-sf"])
            .arg(repo().join("tests/sipp/uas_answer_all.xml"))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", "1000000", "-timeout", "300", "-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        for _ in 0..100 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Pbx { child, dir, port }
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the PBX saw, from sipp's message log.
#[derive(Debug)]
struct Seen {
    /// Calls (distinct Call-IDs).
    invites: usize,
    /// New calls to a number while an earlier call to it was up (INVITE, no BYE yet).
    overlapping: Vec<String>,
    /// Most calls up at once (INVITE to BYE).
    most_live: usize,
}

/// Reads sipp's message log. Calls placed by `dead` (the SIP address of the daemon killed
/// with -9) never end; they count neither as overlapping nor as live.
fn overlaps(log: &str, dead: &str) -> Seen {
    let mut invites = 0;
    let mut most_live = 0;
    let mut seen: HashSet<String> = HashSet::new();
    let mut number_of: HashMap<String, String> = HashMap::new();
    let mut live: HashMap<String, (String, String)> = HashMap::new();
    let mut bad = Vec::new();
    for block in log.split("----------------------------------------------- ") {
        if !block.contains("message received") {
            continue;
        }
        let Some(start) =
            block.lines().position(|l| l.starts_with("INVITE ") || l.starts_with("BYE "))
        else {
            continue;
        };
        let lines: Vec<&str> = block.lines().skip(start).collect();
        let header = |name: &str| {
            lines
                .iter()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let call = header("Call-ID");
        if lines[0].starts_with("BYE ") {
            if let Some(number) = number_of.get(&call) {
                if live.get(number).is_some_and(|(c, _)| *c == call) {
                    live.remove(number);
                }
            }
            continue;
        }
        if seen.contains(&call) {
            continue; // a retransmission
        }
        seen.insert(call.clone());
        invites += 1;
        let number = lines[0]
            .split_once("sip:")
            .and_then(|(_, r)| r.split_once('@'))
            .map(|(n, _)| n.to_owned())
            .unwrap_or_default();
        let via = header("Via");
        if let Some((_, other_via)) = live.get(&number) {
            if !other_via.contains(dead) {
                bad.push(format!("{number}: {call} while another call from {other_via} was up"));
            }
        }
        number_of.insert(call.clone(), number.clone());
        live.insert(number, (call, via));
        most_live = most_live.max(live.values().filter(|(_, v)| !v.contains(dead)).count());
    }
    Seen { invites, overlapping: bad, most_live }
}

async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(conn).await.expect(sql).get::<i64, _>(0)
}

fn pg_ctl(action: &str) -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else { return false };
    let Some(version) = versions.flatten().next().map(|e| e.file_name()) else { return false };
    Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .arg(version)
        .args(["main", action])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn alive(pid: u32) -> bool {
    Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success())
}

const FINAL: &str = "('connected','unreachable','expired','cancelled')";
const REQUESTS: usize = 1000;
/// The shared call rate: 1,000 calls take about 20 s, long enough to kill a daemon and
/// restart PostgreSQL in the middle.
const CPS: u32 = 50;

#[tokio::test]
async fn three_servers_one_pbx_survive_kill_9_and_a_postgres_restart() {
    if !have_sipp() {
        return;
    }
    let _alone = PG.write().await;
    let Some(db) = TestDb::create().await else { return };
    let started = Instant::now();
    let pbx = Pbx::start();
    let setups = [Setup::new(), Setup::new(), Setup::new()];
    let plans = dialplan_dir(setups[0].dir.path(), 4);
    let pbx_addr = format!("127.0.0.1:{}", pbx.port);
    let mut daemons = Vec::new();
    for s in &setups {
        configure(s, &db.url, &pbx_addr, &plans, CPS);
        daemons.push(Some(Daemon::start(s).await));
    }
    let sip_of: Vec<String> = daemons
        .iter()
        .flatten()
        .map(|d| d.sip_addr().rsplit(':').next().unwrap_or("").to_owned())
        .collect();

    // Intake through all three, 24 at a time.
    let mut tasks = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(24));
    for n in 0..REQUESTS {
        let d = daemons[n % 3].as_ref().expect("daemon");
        let (http, url, sem) = (d.client(), d.url("/v1/callbacks"), sem.clone());
        let body = json!({"service": "pg", "number": format!("+35840100{n:04}")});
        tasks.spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore");
            common::post_json(&http, &url, &body).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (status, v) = r.expect("task");
        assert_eq!(status, 201, "{v}");
    }

    let mut conn = db.conn().await;
    // kill -9 one server while it has a call of its own in progress (bounded wait); the
    // owner (instance id) is host:pid:random.
    let victim = daemons[1].take().expect("daemon 2");
    let owned = format!(
        "SELECT COUNT(*) FROM attempts WHERE outcome IS NULL AND owner LIKE '%:{}:%'",
        victim.pid()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(&mut conn, "SELECT COUNT(*) FROM requests WHERE state = 'connected'").await;
        let owned = count(&mut conn, &owned).await;
        if n >= 300 && owned > 0 {
            break;
        }
        if Instant::now() > deadline {
            let d0 = daemons[0].as_ref().expect("daemon 1");
            let logs = d0.logs();
            let tail: Vec<&str> =
                logs.lines().filter(|l| !l.contains("reload")).rev().take(30).collect();
            panic!(
                "never a call of daemon 2 after 300 ({n}) connected; daemon 1 (reversed):\n{}",
                tail.join("\n")
            );
        }
    }
    let _logs = victim.kill9();
    eprintln!("killed daemon 2 (-9) at {:?}", started.elapsed());

    // Restart PostgreSQL: down long enough to be noticed, then up again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&mut conn, "SELECT COUNT(*) FROM requests WHERE state = 'connected'").await < 600 {
        assert!(Instant::now() < deadline, "never reached 600 connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = conn.close().await;
    let restarted = pg_ctl("stop");
    if restarted {
        eprintln!("PostgreSQL stopped at {:?}", started.elapsed());
        let d0 = daemons[0].as_ref().expect("daemon 1");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _) = d0.get_text("/readyz").await;
            if status == 503 {
                break;
            }
            assert!(Instant::now() < deadline, "/readyz stayed {status} with PostgreSQL down");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(pg_ctl("start"), "PostgreSQL did not start again");
        eprintln!("PostgreSQL started at {:?}", started.elapsed());
        for d in daemons.iter().flatten() {
            assert!(alive(d.pid()), "a daemon died with PostgreSQL down:\n{}", d.logs());
            d.wait_ready().await;
        }
    } else {
        common::skip("(part) cannot restart PostgreSQL here (pg_ctlcluster, package postgresql)");
    }

    // Everything ends, nothing lost.
    let mut conn = db.conn().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done =
            count(&mut conn, &format!("SELECT COUNT(*) FROM requests WHERE state IN {FINAL}"))
                .await;
        if done == REQUESTS as i64 {
            break;
        }
        let logs = daemons.iter().flatten().map(Daemon::logs).collect::<Vec<_>>().join("\n");
        let tail: String = logs.lines().rev().take(40).collect::<Vec<_>>().join("\n");
        assert!(
            Instant::now() < deadline,
            "only {done} of {REQUESTS} final; logs (reversed):\n{tail}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("all {REQUESTS} final at {:?}", started.elapsed());
    let connected =
        count(&mut conn, "SELECT COUNT(*) FROM requests WHERE state = 'connected'").await;
    assert_eq!(connected, REQUESTS as i64, "the PBX answers every call: all connected");
    let twice = count(
        &mut conn,
        &format!(
            "SELECT COUNT(*) FROM (SELECT request_id FROM audit WHERE to_state IN {FINAL} \
             GROUP BY request_id HAVING COUNT(*) <> 1) AS x"
        ),
    )
    .await;
    assert_eq!(twice, 0, "every request reached exactly one final state once");
    let connected_twice = count(
        &mut conn,
        "SELECT COUNT(*) FROM (SELECT request_id FROM attempts WHERE outcome = 'connected' \
         GROUP BY request_id HAVING COUNT(*) > 1) AS x",
    )
    .await;
    assert_eq!(connected_twice, 0, "no request was connected twice");
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM attempts WHERE outcome IS NULL").await, 0);
    let interrupted =
        count(&mut conn, "SELECT COUNT(*) FROM attempts WHERE outcome = 'interrupted'").await;
    eprintln!("attempts interrupted (taken over or lost): {interrupted}");

    // The shared call rate: never more than CPS starts in one second, all servers together.
    let rows = sqlx::query("SELECT started_at FROM attempts")
        .fetch_all(&mut conn)
        .await
        .expect("attempts");
    let mut per_second: HashMap<i64, u32> = HashMap::new();
    for r in &rows {
        *per_second.entry(r.get::<i64, _>("started_at") / 1000).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    assert!(busiest <= CPS, "{busiest} calls started in one second, limit {CPS}");
    let _ = conn.close().await;

    // The PBX never saw two overlapping INVITEs for one number.
    let dead = format!("127.0.0.1:{}", sip_of[1]);
    let seen = overlaps(&pbx.messages(), &dead);
    assert!(seen.invites >= REQUESTS, "sipp logged {} INVITEs", seen.invites);
    assert!(seen.overlapping.is_empty(), "overlapping INVITEs: {:#?}", seen.overlapping);
    // The service's capacity held across the three servers, as the PBX saw it.
    assert!(seen.most_live <= 4, "the PBX saw {} calls at once, capacity 4", seen.most_live);
    let invites = seen.invites;
    eprintln!("{invites} INVITEs, took {:?}", started.elapsed());
    for d in daemons.into_iter().flatten() {
        let (status, logs) = d.terminate();
        assert!(status.success(), "{status}:\n{logs}");
    }
}

/// `sslmode=require` in the database URL gives an encrypted connection (rustls).
#[tokio::test]
async fn the_store_connects_over_tls_when_the_url_asks_for_it() {
    let Some(db) = TestDb::create().await else { return };
    let mut conn = db.conn().await;
    let ssl: Option<String> =
        sqlx::query_scalar("SHOW ssl").fetch_optional(&mut conn).await.ok().flatten();
    let _ = conn.close().await;
    if ssl.as_deref() != Some("on") {
        common::skip("(part) this PostgreSQL server has ssl = off");
        return;
    }
    let url = format!("{}?sslmode=require", db.url);
    let store = callbackd::store::Store::open(&url).await.expect("open over TLS");
    assert!(store.ping().await);
    store.close().await;
    let mut tls = sqlx::PgConnection::connect(&url).await.expect("TLS connection");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut tls)
            .await
            .expect("pg_stat_ssl");
    assert!(encrypted, "the connection is encrypted");
    let _ = tls.close().await;
}
