//! Filling a queue through the [`Store`] API, for benches and tests: the same rows, audit
//! trail and duplicate check as intake, never SQL that copies the schema.

use callbackd::lang::Lang;
use callbackd::number::E164;
use callbackd::policy::Plan;
use callbackd::store::{NewRequest, Store};
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Enqueues the requests `row(0)` … `row(n - 1)` (each with its plan), `concurrency` at a
/// time, and returns the stored ids in row order. Panics on a store error or a duplicate
/// (each row must be a new request).
pub async fn fill<F>(store: &Store, n: u64, concurrency: usize, row: F) -> Vec<i64>
where
    F: Fn(u64) -> (NewRequest, Plan) + Send + Sync + 'static,
{
    let row = Arc::new(row);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (store, row, next) = (store.clone(), row.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                let (new, plan) = row(i);
                let stored = store.enqueue(&new, &plan).await.expect("enqueue");
                assert!(
                    !stored.duplicate,
                    "row {i} is a duplicate of request {}",
                    stored.request.id
                );
                done.push((i, stored.request.id));
            }
        });
    }
    let mut ids = vec![0; usize::try_from(n).expect("fits in memory")];
    while let Some(done) = workers.join_next().await {
        for (i, id) in done.expect("fill worker") {
            ids[usize::try_from(i).expect("index")] = id;
        }
    }
    ids
}

/// A plain request through the API: `service`, `number` (stored as given), Finnish, no
/// window and no SMS, made at `at` and due then, with its deadline 8 h and its expiry 24 h
/// later. The row tests and benches fill a queue with when the policy is not under test.
pub fn api_request(service: &str, number: &str, at: Timestamp) -> (NewRequest, Plan) {
    let new = NewRequest {
        service: service.to_owned(),
        number: E164::from_stored(number.to_owned()),
        channel: "api".to_owned(),
        lang: Lang::Fi,
        window: None,
        sms_consent: false,
        sms_notice: false,
        created_at: at,
        team: None,
        told: None,
    };
    let plan = Plan {
        due: at,
        deadline: at + SignedDuration::from_hours(8),
        expires: at + SignedDuration::from_hours(24),
        counted: 0,
    };
    (new, plan)
}
