//! SQLite group commit of intakes (`src/store/intake.rs`), against a real SQLite file:
//! concurrent intakes all land with their audit rows; the live-number dedup holds inside one
//! batch; a request that fails inside a batch fails alone; a batch whose commit fails
//! answers every intake in it with an error and stores none of them. Answer marks share
//! the batches: several are written in one statement, each answered on its own, and one the
//! database refuses fails alone.
//!
//! The write lock trick: while another connection holds SQLite's write lock, the writer
//! task waits on its current batch, and every intake sent meanwhile queues up for the next
//! batch, so those intakes share one transaction.

mod common;

use callbackd::number::E164;
use callbackd::policy::Plan;
use callbackd::store::{Enqueued, NewRequest, Store, StoreError, Told};
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::time::Duration;

fn at() -> Timestamp {
    "2026-03-02T08:00:00Z".parse().expect("instant")
}

fn new(service: &str, number: &str) -> (NewRequest, Plan) {
    let (new, plan) = common::fill::api_request(service, number, at());
    (NewRequest { sms_consent: true, sms_notice: true, ..new }, plan)
}

async fn open(dir: &Path) -> (Store, String) {
    let path = dir.join("queue.db");
    let store = Store::open(&format!("sqlite:{}", path.display())).await.expect("open store");
    (store, path.display().to_string())
}

/// A connection of its own to the same file (like another process).
async fn side(path: &str) -> SqliteConnection {
    let opts = SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&opts).await.expect("side connection")
}

/// Sends every intake at once from its own task; answers in input order.
async fn enqueue_all(
    store: &Store,
    rows: Vec<(NewRequest, Plan)>,
) -> Vec<Result<Enqueued, StoreError>> {
    let tasks: Vec<_> = rows
        .into_iter()
        .map(|(n, p)| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(&n, &p).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("intake task"));
    }
    out
}

/// Holds the write lock on `path` while `rows` are sent (after a first intake that the
/// writer is then stuck on), then releases it: the rows share the next batch.
async fn in_one_batch(
    store: &Store,
    path: &str,
    rows: Vec<(NewRequest, Plan)>,
) -> Vec<Result<Enqueued, StoreError>> {
    let mut lock = side(path).await;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.expect("take the write lock");
    let (n, p) = new("kallio", "+358400000000");
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.enqueue(&n, &p).await })
    };
    // The writer takes the first intake alone and waits for the lock.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rest = {
        let store = store.clone();
        tokio::spawn(async move { enqueue_all(&store, rows).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut lock).await.expect("release the write lock");
    first.await.expect("first").expect("the first intake is stored");
    rest.await.expect("rest")
}

async fn count(path: &str, sql: &str) -> i64 {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path))
        .await
        .expect("pool");
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("count");
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_intakes_are_all_stored_with_their_audit_and_sms_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    let rows: Vec<_> = (0..500).map(|i| new("kallio", &format!("+35840{i:07}"))).collect();
    let answers = enqueue_all(&store, rows).await;
    let mut ids = Vec::new();
    for a in answers {
        let a = a.expect("every intake is stored");
        assert!(!a.duplicate);
        ids.push(a.request.id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 500, "500 distinct requests");
    for id in [ids[0], ids[250], ids[499]] {
        let trail = store.audit_trail(id).await.expect("audit");
        assert_eq!(trail.len(), 1, "one audit row for request {id}");
        assert_eq!(trail[0].2, "pending");
        assert_eq!(store.outbox(Some(id)).await.expect("outbox").len(), 1, "the notice SMS");
    }
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 500);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit").await, 500);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM outbox").await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_number_twice_in_one_batch_is_one_request_and_a_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    let mut rows = Vec::new();
    for i in 0..20 {
        rows.push(new("kallio", "+358401234567"));
        rows.push(new("kallio", &format!("+35840{:07}", 1000 + i)));
    }
    // The same number in another service is a request of its own.
    rows.push(new("vuosaari", "+358401234567"));
    let answers = in_one_batch(&store, &path, rows).await;
    let answers: Vec<Enqueued> = answers.into_iter().map(|a| a.expect("stored")).collect();
    let same: Vec<&Enqueued> = answers
        .iter()
        .filter(|a| {
            a.request.service == "kallio"
                && a.request.number.as_ref().map(E164::as_str) == Some("+358401234567")
        })
        .collect();
    assert_eq!(same.len(), 20);
    assert_eq!(same.iter().filter(|a| !a.duplicate).count(), 1, "one new request");
    assert!(same.iter().all(|a| a.request.id == same[0].request.id), "all answered with it");
    assert_eq!(answers.iter().filter(|a| a.duplicate).count(), 19);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM requests WHERE number = '+358401234567'").await,
        2,
        "one in kallio, one in vuosaari"
    );
    // The lock holder's intake, the repeated number once, 20 others and the vuosaari one:
    // 23 requests, one audit row each.
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 23);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit").await, 23);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_failing_inside_a_batch_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    // A real SQLite failure after the request row is in: its audit row is refused. The
    // savepoint must take its request row back out, and leave the batch's others alone.
    let mut c = side(&path).await;
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
         WHEN (SELECT number FROM requests WHERE id = NEW.request_id) = '+358409999999' \
         BEGIN SELECT RAISE(ABORT, 'refused for the test'); END",
    )
    .execute(&mut c)
    .await
    .expect("trigger");
    drop(c);
    let mut rows: Vec<_> =
        (0..30).map(|i| new("kallio", &format!("+35840{:07}", 2000 + i))).collect();
    rows.insert(15, new("kallio", "+358409999999"));
    let answers = in_one_batch(&store, &path, rows).await;
    for (i, a) in answers.iter().enumerate() {
        if i == 15 {
            let e = a.as_ref().expect_err("the refused request fails");
            assert!(e.to_string().contains("refused for the test"), "its own error: {e}");
        } else {
            assert!(a.is_ok(), "request {i} is stored: {a:?}");
        }
    }
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM requests WHERE number = '+358409999999'").await,
        0,
        "the failed request's row was rolled back"
    );
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 31);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit").await, 31);
    // The store goes on taking requests.
    let (n, p) = new("kallio", "+358408888888");
    store.enqueue(&n, &p).await.expect("next intake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_whose_commit_fails_acknowledges_none_and_stores_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    // A deferred foreign key fails at COMMIT: every statement of the batch succeeded, and
    // the commit itself is refused.
    let mut c = side(&path).await;
    for sql in [
        "CREATE TABLE poison (request_id INTEGER REFERENCES nowhere (id) \
         DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TABLE nowhere (id INTEGER PRIMARY KEY)",
        "CREATE TRIGGER poison_commit AFTER INSERT ON requests \
         WHEN NEW.number = '+358407777777' \
         BEGIN INSERT INTO poison VALUES (NEW.id); END",
    ] {
        sqlx::query(sql).execute(&mut c).await.expect("schema for the test");
    }
    drop(c);
    let mut rows: Vec<_> =
        (0..30).map(|i| new("kallio", &format!("+35840{:07}", 3000 + i))).collect();
    rows.insert(7, new("kallio", "+358407777777"));
    let answers = in_one_batch(&store, &path, rows).await;
    for a in &answers {
        let e = a.as_ref().expect_err("no intake of a failed commit is acknowledged");
        assert!(matches!(e, StoreError::Db(_) | StoreError::NotCommitted(_)), "{e}");
    }
    // Only the first intake (its own batch, before the lock was released) is stored.
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 1);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit").await, 1);
    // The failed intakes can be sent again (without the poisoned one) and are stored.
    let rows: Vec<_> = (0..30).map(|i| new("kallio", &format!("+35840{:07}", 3000 + i))).collect();
    for a in enqueue_all(&store, rows).await {
        assert!(!a.expect("stored on retry").duplicate, "nothing of the failed batch was kept");
    }
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_mark_refused_inside_a_batch_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    // A live attempt whose answer mark the database refuses (a constraint: SQLite undoes
    // that statement alone); the mark has no savepoint of its own.
    let (n, p) = new("kallio", "+358406666666");
    let id = store.enqueue(&n, &p).await.expect("enqueue").request.id;
    let mut c = side(&path).await;
    for sql in [
        format!("INSERT INTO attempts (request_id, seq, started_at) VALUES ({id}, 1, 0)"),
        "CREATE TRIGGER refuse_mark BEFORE UPDATE OF answered_at ON attempts \
         BEGIN SELECT RAISE(ABORT, 'mark refused for the test'); END"
            .to_owned(),
    ] {
        sqlx::query(&sql).execute(&mut c).await.expect("set up");
    }
    let attempt: i64 = sqlx::query_scalar("SELECT id FROM attempts WHERE request_id = ?")
        .bind(id)
        .fetch_one(&mut c)
        .await
        .expect("attempt");
    drop(c);
    // The mark waits with the intakes for the write lock, and goes into their batch.
    let mark = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            store.mark_answered(attempt, Timestamp::now()).await
        })
    };
    let rows: Vec<_> = (0..10).map(|i| new("kallio", &format!("+35840{:07}", 3000 + i))).collect();
    let answers = in_one_batch(&store, &path, rows).await;
    let e = mark.await.expect("join").expect_err("the refused mark fails");
    assert!(e.to_string().contains("mark refused for the test"), "its own error: {e}");
    assert!(answers.iter().all(Result::is_ok), "every intake is stored: {answers:?}");
    // The first intake, the 10 of the batch and the one with the attempt.
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 12);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM attempts WHERE answered_at IS NULL").await, 1);
}

/// Three live attempts (the third already marked at instant 1000) and a side connection's
/// trigger refusing the marks of `refused`, if any: the attempts' ids.
async fn live_attempts(store: &Store, path: &str, refused: Option<usize>) -> Vec<i64> {
    let mut c = side(path).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (n, p) = new("kallio", &format!("+35840777000{i}"));
        let request = store.enqueue(&n, &p).await.expect("enqueue").request.id;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (request_id, seq, started_at) VALUES (?, 1, 0) RETURNING id",
        )
        .bind(request)
        .fetch_one(&mut c)
        .await
        .expect("attempt");
        ids.push(id);
    }
    sqlx::query("UPDATE attempts SET answered_at = 1000 WHERE id = ?")
        .bind(ids[2])
        .execute(&mut c)
        .await
        .expect("an earlier mark");
    if let Some(i) = refused {
        let trigger = format!(
            "CREATE TRIGGER refuse_mark BEFORE UPDATE OF answered_at ON attempts \
             WHEN OLD.id = {} BEGIN SELECT RAISE(ABORT, 'mark refused for the test'); END",
            ids[i]
        );
        sqlx::query(&trigger).execute(&mut c).await.expect("trigger");
    }
    ids
}

/// Marks `attempts` (in that order) while intakes hold the writer, so that all share one
/// batch: each mark's answer, in order.
async fn marks_in_one_batch(
    store: &Store,
    path: &str,
    attempts: &[i64],
    at: Timestamp,
) -> Vec<Result<bool, StoreError>> {
    let marks: Vec<_> = attempts
        .iter()
        .enumerate()
        .map(|(i, &attempt)| {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(250 + 5 * i as u64)).await;
                store.mark_answered(attempt, at).await
            })
        })
        .collect();
    let rows: Vec<_> = (0..3).map(|i| new("kallio", &format!("+35840{:07}", 4000 + i))).collect();
    let answers = in_one_batch(store, path, rows).await;
    assert!(answers.iter().all(Result::is_ok), "every intake is stored: {answers:?}");
    let mut out = Vec::new();
    for m in marks {
        out.push(m.await.expect("join"));
    }
    out
}

async fn answered_at(path: &str, attempt: i64) -> i64 {
    count(path, &format!("SELECT COALESCE(answered_at, -1) FROM attempts WHERE id = {attempt}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answer_marks_sharing_a_batch_each_get_their_own_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    let ids = live_attempts(&store, &path, None).await;
    let at = Timestamp::now();
    let later = at + jiff::SignedDuration::from_secs(5);
    // The first attempt twice (the second mark keeps the first one's instant), an attempt
    // marked before, and one that does not exist.
    let order = [ids[0], ids[1], ids[2], ids[0], 999_999];
    let answers = marks_in_one_batch(&store, &path, &order, at).await;
    let got: Vec<_> = answers.iter().map(|a| a.as_ref().ok().copied()).collect();
    assert_eq!(got, [Some(true), Some(true), Some(true), Some(true), Some(false)], "{answers:?}");
    assert_eq!(answered_at(&path, ids[0]).await, at.as_millisecond());
    assert_eq!(answered_at(&path, ids[1]).await, at.as_millisecond());
    assert_eq!(answered_at(&path, ids[2]).await, 1000, "an earlier mark is kept");
    // A mark alone, later, keeps the stored one too.
    assert_eq!(store.mark_answered(ids[1], later).await.ok(), Some(true));
    assert_eq!(answered_at(&path, ids[1]).await, at.as_millisecond());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mark_refused_among_several_in_a_batch_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    let ids = live_attempts(&store, &path, Some(1)).await;
    let at = Timestamp::now();
    let answers = marks_in_one_batch(&store, &path, &ids, at).await;
    assert!(matches!(answers[0], Ok(true)), "{answers:?}");
    let e = answers[1].as_ref().expect_err("the refused mark fails");
    assert!(e.to_string().contains("mark refused for the test"), "its own error: {e}");
    assert!(matches!(answers[2], Ok(true)), "{answers:?}");
    assert_eq!(answered_at(&path, ids[0]).await, at.as_millisecond());
    assert_eq!(answered_at(&path, ids[1]).await, -1);
    assert_eq!(answered_at(&path, ids[2]).await, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_window_told_at_intake_is_stored_with_the_request_and_kept_by_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    let window = |minutes: i64, same_day: bool| {
        let from = at() + jiff::SignedDuration::from_mins(minutes);
        Told { from, to: from + jiff::SignedDuration::from_mins(30), at: at(), same_day }
    };
    // Five intakes of one number in one batch, each with its own window, and one told none.
    let mut rows: Vec<(NewRequest, Plan)> = (0..5)
        .map(|i| {
            let (n, p) = new("kallio", "+358401234567");
            (NewRequest { told: Some(window(10 * i, i % 2 == 0)), ..n }, p)
        })
        .collect();
    rows.push(new("kallio", "+358407654321"));
    let answers = in_one_batch(&store, &path, rows).await;
    let answers: Vec<Enqueued> = answers.into_iter().map(|a| a.expect("stored")).collect();
    let first = answers[..5].iter().find(|a| !a.duplicate).expect("one new request");
    let told = first.request.told.expect("the window is stored with the request");
    assert!((0..5).any(|i| told == window(10 * i, i % 2 == 0)), "{told:?}");
    for a in &answers[..5] {
        assert_eq!(a.request.told, Some(told), "a duplicate is answered with the first window");
    }
    assert_eq!(answers[5].request.told, None, "no window told, none stored");
    // The row read back again holds exactly that window.
    assert_eq!(store.told(first.request.id).await.expect("read"), Some(told));
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM requests WHERE told_from IS NOT NULL").await,
        1,
        "{answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_number_already_live_is_a_duplicate_in_a_batch_and_gets_no_second_sms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, path) = open(dir.path()).await;
    let (n, p) = new("kallio", "+358401111111");
    let live = store.enqueue(&n, &p).await.expect("the live request");
    let mut rows: Vec<_> =
        (0..10).map(|i| new("kallio", &format!("+35840{:07}", 3000 + i))).collect();
    for at in [0, 4, 10] {
        rows.insert(at, new("kallio", "+358401111111"));
    }
    let answers = in_one_batch(&store, &path, rows).await;
    let answers: Vec<Enqueued> = answers.into_iter().map(|a| a.expect("stored")).collect();
    for a in &answers {
        let repeated = a.request.number.as_ref().map(E164::as_str) == Some("+358401111111");
        assert_eq!(a.duplicate, repeated, "{a:?}");
        if repeated {
            assert_eq!(a.request.id, live.request.id, "answered with the live request");
        }
    }
    // The lock holder's intake, the live one and ten new ones: one audit row and one
    // notice each, none for the repeats.
    assert_eq!(count(&path, "SELECT COUNT(*) FROM requests").await, 12);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit").await, 12);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM outbox").await, 12);
    assert_eq!(store.outbox(Some(live.request.id)).await.expect("outbox").len(), 1);
}
