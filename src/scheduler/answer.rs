//! The answer mark: a call's far end answered, written on its attempt before any prompt or
//! hand-over, so that recovery never dials a patient who was reached (see `recovery.rs`).
//!
//! [`StoreEvents`] is the [`AttemptEvents`] the scheduler gives each call. Its `answered`
//! writes the mark (a few quick tries) and resolves; if the store cannot take it, the mark
//! is kept in [`AnswerMarks`] and the call goes on. The loop writes kept marks at every
//! turn, an outcome carries its call's kept mark, and recovery treats a kept mark as
//! written.

use crate::call::attempt::{AttemptEvents, BoxFuture};
use crate::clock::Clock;
use crate::store::{Store, StoreError};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::warn;

/// Answers not written yet, by attempt id. Inserted by a call's [`StoreEvents`] when the
/// write failed; removed by the scheduler once the mark or the outcome is written. The lock
/// is never held across an await.
#[derive(Debug, Clone, Default)]
pub(super) struct AnswerMarks(Arc<Mutex<HashMap<i64, Timestamp>>>);

impl AnswerMarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Timestamp>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, attempt_id: i64, at: Timestamp) {
        self.lock().entry(attempt_id).or_insert(at);
    }

    /// The kept answer of an attempt, if its write failed.
    pub(super) fn pending(&self, attempt_id: i64) -> Option<Timestamp> {
        self.lock().get(&attempt_id).copied()
    }

    /// The attempt's outcome (with the mark) is written.
    pub(super) fn forget(&self, attempt_id: i64) {
        self.lock().remove(&attempt_id);
    }

    /// Writes the kept marks; stops at the first failure.
    pub(super) async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let kept: Vec<(i64, Timestamp)> = self.lock().iter().map(|(k, v)| (*k, *v)).collect();
        for (attempt_id, at) in kept {
            store.mark_answered(attempt_id, at).await?;
            self.forget(attempt_id);
        }
        Ok(())
    }
}

/// The scheduler's [`AttemptEvents`] for one call: writes the answer mark on its attempt.
#[derive(Debug)]
pub struct StoreEvents {
    store: Store,
    clock: Arc<dyn Clock>,
    attempt_id: i64,
    marks: AnswerMarks,
}

impl StoreEvents {
    pub(super) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        attempt_id: i64,
        marks: AnswerMarks,
    ) -> Self {
        StoreEvents { store, clock, attempt_id, marks }
    }
}

/// Pauses between the quick tries of an answer write.
const TRIES: [Duration; 3] =
    [Duration::ZERO, Duration::from_millis(50), Duration::from_millis(200)];

impl AttemptEvents for StoreEvents {
    fn answered(&self) -> BoxFuture<()> {
        let (store, marks, attempt_id) = (self.store.clone(), self.marks.clone(), self.attempt_id);
        let at = self.clock.now();
        Box::pin(async move {
            let mut last = None;
            for pause in TRIES {
                tokio::time::sleep(pause).await;
                match store.mark_answered(attempt_id, at).await {
                    Ok(_) => return,
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                warn!(error = %e, attempt = attempt_id,
                    "answer not written yet: kept and retried; the call goes on");
            }
            marks.keep(attempt_id, at);
        })
    }
}
