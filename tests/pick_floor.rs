//! The pick floor (migrations 0015, 0016, PostgreSQL): where a claim's pick starts in the
//! serving order, so that it no longer passes over the index entries of every request
//! claimed since the oldest open transaction began, nor stays behind a retry's pause at the
//! front of the order. The floor must never lie above a waiting
//! request: every way a request becomes waiting, or moves forward in the order, lowers it;
//! a claim not yet committed holds it; a raise racing with retries and intakes from other
//! connections hides nothing; and a write in a transaction that cannot see a newer floor
//! is refused with a clear error. Against the real PostgreSQL (`CALLBACKD_TEST_DATABASE`,
//! default `postgres://postgres@127.0.0.1:5432/test`); unreachable, the tests say SKIPPED
//! (and fail under `CI=true`).

mod common;

use callbackd::store::Store;
use callbackd::store::lease::ClaimLimits;
use common::pg::TestDb;
use jiff::{SignedDuration, Timestamp};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

const SVC: &str = "kallio";
type Key = (i64, i64, i64);

fn limits(owner: &str) -> ClaimLimits<'_> {
    ClaimLimits {
        owner,
        lease: Duration::from_secs(600),
        capacity: 100_000,
        max_calls: 100_000,
        trunk: "pbx.test:5060",
        interval: Duration::ZERO,
    }
}

/// A whole-millisecond instant an hour ago: requests made then are due now.
fn base() -> Timestamp {
    let t = Timestamp::now() - SignedDuration::from_hours(1);
    Timestamp::from_millisecond(t.as_millisecond()).expect("instant")
}

/// Enqueues request `i` of `service`, made at `t0 + i` seconds, due at once, with its
/// deadline `deadline_secs` after `t0`.
async fn enqueue(store: &Store, service: &str, i: u64, t0: Timestamp, deadline_secs: i64) -> i64 {
    let made = t0 + SignedDuration::from_secs(i64::try_from(i).expect("small"));
    let (new, mut plan) = common::fill::api_request(service, &format!("+35850{i:07}"), made);
    plan.deadline = t0 + SignedDuration::from_secs(deadline_secs);
    store.enqueue(&new, &plan).await.expect("enqueue").request.id
}

/// The floor of `service`: the smallest key of its newest generation.
async fn floor(conn: &mut PgConnection, service: &str) -> Option<Key> {
    sqlx::query_as(
        "SELECT deadline_at, created_at, id FROM pick_floors WHERE service = $1 \
         AND generation = (SELECT max(generation) FROM pick_floors WHERE service = $1) \
         ORDER BY deadline_at, created_at, id LIMIT 1",
    )
    .bind(service)
    .fetch_optional(conn)
    .await
    .expect("floor")
}

/// Waiting requests (any service) whose key lies below their service's floor: a pick
/// would never reach them. Must always be none.
async fn hidden(conn: &mut PgConnection) -> Vec<i64> {
    sqlx::query_scalar(
        "WITH f AS (SELECT DISTINCT ON (service) service, deadline_at, created_at, id \
         FROM pick_floors p WHERE generation = \
         (SELECT max(generation) FROM pick_floors q WHERE q.service = p.service) \
         ORDER BY service, deadline_at, created_at, id) \
         SELECT r.id FROM requests r JOIN f ON f.service = r.service \
         WHERE r.state IN ('pending','retry_wait') \
         AND (r.deadline_at, r.created_at, r.id) < (f.deadline_at, f.created_at, f.id) \
         ORDER BY r.id",
    )
    .fetch_all(conn)
    .await
    .expect("hidden")
}

/// The ids of `service`'s due waiting requests in serving order, read without the floor.
async fn serving_order(conn: &mut PgConnection, service: &str, now: Timestamp) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM requests WHERE service = $1 AND state IN ('pending','retry_wait') \
         AND due_at <= $2 ORDER BY deadline_at, created_at, id",
    )
    .bind(service)
    .bind(now.as_millisecond())
    .fetch_all(conn)
    .await
    .expect("serving order")
}

async fn key_of(conn: &mut PgConnection, id: i64) -> Key {
    sqlx::query_as("SELECT deadline_at, created_at, id FROM requests WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .expect("key")
}

/// Claims up to `want` of `service`'s due requests; their ids in the order picked.
async fn claim(store: &Store, service: &str, want: i64, owner: &str) -> Vec<i64> {
    let batch = store
        .claim_due(service, Timestamp::now(), want, &limits(owner), |_| true)
        .await
        .expect("claim");
    batch.claimed.iter().map(|(r, _)| r.id).collect()
}

/// Due waiting requests (any service) whose key lies below the floor a pick at `now`
/// starts from (`pick_floor(service, now)`, migration 0016): a pick then would miss them.
/// Must always be none.
async fn hidden_at(conn: &mut PgConnection, now: Timestamp) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT r.id FROM requests r CROSS JOIN LATERAL pick_floor(r.service, $1) f \
         WHERE r.state IN ('pending','retry_wait') AND r.due_at <= $1 \
         AND (r.deadline_at, r.created_at, r.id) < (f.deadline_at, f.created_at, f.id) \
         ORDER BY r.id",
    )
    .bind(now.as_millisecond())
    .fetch_all(conn)
    .await
    .expect("hidden at")
}

/// The key a pick at `now` starts from.
async fn floor_at(conn: &mut PgConnection, service: &str, now: Timestamp) -> Key {
    sqlx::query_as("SELECT deadline_at, created_at, id FROM pick_floor($1, $2)")
        .bind(service)
        .bind(now.as_millisecond())
        .fetch_one(conn)
        .await
        .expect("floor at")
}

/// Ends request `id`'s live attempt unanswered and puts it back to wait, straight in SQL
/// (the store's own retry writes the same state; the trigger sees any writer).
async fn retry(conn: &mut PgConnection, id: i64) {
    retry_at(conn, id, Timestamp::now()).await;
}

/// [`retry`], due at `due` (a retry's pause).
async fn retry_at(conn: &mut PgConnection, id: i64, due: Timestamp) {
    let (now, due) = (Timestamp::now().as_millisecond(), due.as_millisecond());
    sqlx::query(
        "UPDATE attempts SET outcome = 'no_answer', ended_at = $2 \
         WHERE request_id = $1 AND outcome IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .expect("end the attempt");
    let done = sqlx::query(
        "UPDATE requests SET state = 'retry_wait', due_at = $2 WHERE id = $1 AND state = 'dialing'",
    )
    .bind(id)
    .bind(due)
    .execute(&mut *conn)
    .await
    .expect("retry");
    assert_eq!(done.rows_affected(), 1, "request {id} was being dialled");
}

#[tokio::test]
async fn every_way_into_the_waiting_set_lowers_the_floor() {
    let Some(db) = TestDb::create().await else { return };
    let store = Store::open(&db.url).await.expect("open");
    let mut conn = db.conn().await;
    let t0 = base();
    // Serving order = id order: deadlines 8 h after t0, one second apart.
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(enqueue(&store, SVC, i, t0, 8 * 3600 + i64::try_from(i).expect("small")).await);
    }
    let other = enqueue(&store, "vuosaari", 100, t0, 3600).await;

    // Before any raise there is no floor: the pick starts at the front.
    assert_eq!(floor(&mut conn, SVC).await, None);
    assert_eq!(claim(&store, SVC, 5, "a").await, ids[..5]);
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    assert_eq!(floor(&mut conn, SVC).await, Some(key_of(&mut conn, ids[5]).await));
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());

    // 1. A claimed request retried keeps its place in the order, below the floor.
    retry(&mut conn, ids[2]).await;
    assert_eq!(floor(&mut conn, SVC).await, Some(key_of(&mut conn, ids[2]).await));
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[2]], "the retry is served first");

    // 2. A new request with an earlier deadline than the floor's.
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    assert_eq!(floor(&mut conn, SVC).await, Some(key_of(&mut conn, ids[5]).await));
    let early = enqueue(&store, SVC, 50, t0, 7200).await;
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [early]);

    // 3. A waiting request above the floor moved forward (its deadline made earlier).
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    sqlx::query("UPDATE requests SET deadline_at = deadline_at - 86400000 WHERE id = $1")
        .bind(ids[20])
        .execute(&mut conn)
        .await
        .expect("move forward");
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[20]]);

    // 4. A waiting request of another service moved to this one, its deadline earliest.
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    sqlx::query("UPDATE requests SET service = $2 WHERE id = $1")
        .bind(other)
        .bind(SVC)
        .execute(&mut conn)
        .await
        .expect("move service");
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [other]);

    // 5. A claim not yet committed: the raise reads the request as still waiting, and it
    // stays the floor when the claim is given back.
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    let front = key_of(&mut conn, ids[5]).await;
    assert_eq!(floor(&mut conn, SVC).await, Some(front));
    let mut claimer = db.conn().await;
    sqlx::query("BEGIN").execute(&mut claimer).await.expect("begin");
    sqlx::query("UPDATE requests SET state = 'dialing' WHERE id = $1")
        .bind(ids[5])
        .execute(&mut claimer)
        .await
        .expect("claim in an open transaction");
    assert!(
        store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise beside the open claim")
    );
    assert_eq!(floor(&mut conn, SVC).await, Some(front));
    sqlx::query("ROLLBACK").execute(&mut claimer).await.expect("give it back");
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[5]]);

    // 6. A transaction that makes a request waiting holds the floor's lock shared: a raise
    // gives up after its wait instead of hiding that request, and changes nothing.
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    let before = floor(&mut conn, SVC).await;
    sqlx::query("BEGIN").execute(&mut claimer).await.expect("begin");
    let late = ids[3];
    sqlx::query("UPDATE attempts SET outcome = 'no_answer', ended_at = 1 WHERE request_id = $1")
        .bind(late)
        .execute(&mut claimer)
        .await
        .expect("end");
    sqlx::query("UPDATE requests SET state = 'retry_wait' WHERE id = $1")
        .bind(late)
        .execute(&mut claimer)
        .await
        .expect("retry in an open transaction");
    assert!(!store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise while it is open"));
    assert_eq!(floor(&mut conn, SVC).await, before);
    sqlx::query("COMMIT").execute(&mut claimer).await.expect("commit");
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [late]);

    // 7. A write in a REPEATABLE READ transaction could miss a floor raised after its
    // snapshot: refused, with what to do.
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut claimer).await.expect("rr");
    let refused = sqlx::query("UPDATE requests SET state = 'pending' WHERE id = $1")
        .bind(ids[4])
        .execute(&mut claimer)
        .await
        .expect_err("a waiting request written under REPEATABLE READ");
    let text = refused.to_string();
    assert!(text.contains("REPEATABLE READ") || text.contains("repeatable read"), "{text}");
    sqlx::query("ROLLBACK").execute(&mut claimer).await.expect("rollback");

    // The rest comes out in serving order, however the floor moves meanwhile.
    let now = Timestamp::now();
    let want = serving_order(&mut conn, SVC, now).await;
    // The 30 less the five claimed first and the two claimed from above the floor (the
    // others claimed on the way were retried first).
    assert_eq!(want.len(), 30 - 5 - 2, "{want:?}");
    let mut got = Vec::new();
    loop {
        let batch = claim(&store, SVC, 4, "a").await;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
        assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
        assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    }
    assert_eq!(got, want);
    // Nothing waits: the floor lies above every key; a new request lowers it again.
    assert_eq!(floor(&mut conn, SVC).await, Some((i64::MAX, i64::MAX, i64::MAX)));
    let fresh = enqueue(&store, SVC, 60, t0, 9 * 3600).await;
    assert_eq!(floor(&mut conn, SVC).await, Some(key_of(&mut conn, fresh).await));
    assert_eq!(claim(&store, SVC, 5, "a").await, [fresh]);
    let _ = claimer.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_retry_pausing_at_the_front_is_looked_past_until_it_falls_due() {
    let Some(db) = TestDb::create().await else { return };
    let store = Store::open(&db.url).await.expect("open");
    let mut conn = db.conn().await;
    let t0 = base();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(enqueue(&store, SVC, i, t0, 8 * 3600 + i64::try_from(i).expect("small")).await);
    }
    assert_eq!(claim(&store, SVC, 3, "a").await, ids[..3]);
    // Request 0 is retried after a pause: it waits at the front of the order, not due.
    let later = Timestamp::now() + SignedDuration::from_secs(3600);
    retry_at(&mut conn, ids[0], later).await;
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    let now = Timestamp::now();
    // Every row counted, the floor is at the retry (servers of migration 0015 read this);
    // a pick before it falls due starts at the first due request, one at its due time at
    // the retry.
    assert_eq!(floor(&mut conn, SVC).await, Some(key_of(&mut conn, ids[0]).await));
    assert_eq!(floor_at(&mut conn, SVC, now).await, key_of(&mut conn, ids[3]).await);
    assert_eq!(floor_at(&mut conn, SVC, later).await, key_of(&mut conn, ids[0]).await);
    assert_eq!(hidden_at(&mut conn, now).await, Vec::<i64>::new());
    assert_eq!(hidden_at(&mut conn, later).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[3]], "the paused retry is not due");

    // A request made waiting behind the looked-past one but before the first due one
    // lowers the floor a pick starts from at once.
    retry(&mut conn, ids[1]).await;
    assert_eq!(floor_at(&mut conn, SVC, Timestamp::now()).await, key_of(&mut conn, ids[1]).await);
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[1]]);

    // Its pause cut short (due now): the trigger lowers the floor, and it is served next.
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    assert_eq!(floor_at(&mut conn, SVC, Timestamp::now()).await, key_of(&mut conn, ids[4]).await);
    sqlx::query("UPDATE requests SET due_at = $2 WHERE id = $1")
        .bind(ids[0])
        .bind(Timestamp::now().as_millisecond())
        .execute(&mut conn)
        .await
        .expect("cut the pause short");
    assert_eq!(hidden_at(&mut conn, Timestamp::now()).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[0]]);

    // Two pauses in front, the longer first: the floor moves back once the shorter one
    // ends, with no raise between, and that one is served while the longer still waits.
    retry_at(&mut conn, ids[0], later).await;
    let soon = Timestamp::now() + SignedDuration::from_millis(300);
    retry_at(&mut conn, ids[2], soon).await;
    assert!(store.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise"));
    assert_eq!(floor_at(&mut conn, SVC, Timestamp::now()).await, key_of(&mut conn, ids[4]).await);
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[4]]);
    let wait = soon.duration_since(Timestamp::now()).unsigned_abs();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(floor_at(&mut conn, SVC, Timestamp::now()).await, key_of(&mut conn, ids[0]).await);
    assert_eq!(hidden_at(&mut conn, Timestamp::now()).await, Vec::<i64>::new());
    assert_eq!(claim(&store, SVC, 1, "a").await, [ids[2]]);
    store.close().await;
}

#[tokio::test]
async fn raises_racing_with_retries_and_intakes_hide_nothing() {
    let Some(db) = TestDb::create().await else { return };
    let a = Store::open(&db.url).await.expect("open");
    let b = Store::open(&db.url).await.expect("open a second pool (another server)");
    let t0 = base();
    for i in 0..200 {
        enqueue(&a, SVC, i, t0, 8 * 3600 + i64::try_from(i).expect("small")).await;
    }
    // Server a claims (and raises in the background), server b raises, a third
    // connection retries claimed requests inside transactions left open for a moment,
    // and new requests with early deadlines arrive: all at once, for a bounded number of
    // rounds.
    let claimer = async {
        for _ in 0..60 {
            claim(&a, SVC, 3, "a").await;
            a.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise a");
        }
    };
    let raiser = async {
        for _ in 0..120 {
            b.raise_pick_floor(SVC, Timestamp::now()).await.expect("raise b");
        }
    };
    let retrier = async {
        let mut conn = db.conn().await;
        let mut retried = 0;
        for round in 0..60 {
            let id: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM requests WHERE state = 'dialing' ORDER BY random() LIMIT 1",
            )
            .fetch_optional(&mut conn)
            .await
            .expect("a live call");
            let Some(id) = id else {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            };
            sqlx::query("BEGIN").execute(&mut conn).await.expect("begin");
            // Two retries in three pause for a moment: raises look past them.
            let pause = SignedDuration::from_millis(100 * i64::try_from(round % 3).expect("small"));
            retry_at(&mut conn, id, Timestamp::now() + pause).await;
            tokio::time::sleep(Duration::from_millis(round % 4)).await;
            sqlx::query("COMMIT").execute(&mut conn).await.expect("commit");
            retried += 1;
        }
        retried
    };
    let intake = async {
        for i in 0..60 {
            enqueue(&b, SVC, 1000 + i, t0, 3600 + i64::try_from(i % 7).expect("small")).await;
            tokio::task::yield_now().await;
        }
    };
    let ((), (), retried, ()) = tokio::join!(claimer, raiser, retrier, intake);
    assert!(retried > 20, "only {retried} retries raced with the raises");

    let mut conn = db.conn().await;
    assert_eq!(hidden(&mut conn).await, Vec::<i64>::new());
    assert_eq!(hidden_at(&mut conn, Timestamp::now()).await, Vec::<i64>::new());
    // Every pause over, every due request is still reached: claimed in serving order down
    // to the last.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(hidden_at(&mut conn, Timestamp::now()).await, Vec::<i64>::new());
    let want = serving_order(&mut conn, SVC, Timestamp::now()).await;
    assert!(want.len() > 60, "{} waiting", want.len());
    let mut got = Vec::new();
    loop {
        let batch = claim(&b, SVC, 50, "b").await;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    assert_eq!(got, want);
    a.close().await;
    b.close().await;
}
