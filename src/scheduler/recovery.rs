//! Crash recovery and lease take-over, one function: a live attempt nobody will report on
//! gets the lifecycle's `Orphaned` transition — `interrupted` and re-planned (not counted),
//! or, when the far end had answered (the attempt's `answered_at` mark), `connected` with
//! "answered, outcome unknown": a patient who was reached is never dialled again.
//!
//! - At start (one server, SQLite or PostgreSQL without a cluster): every live attempt was
//!   left by this server's previous run.
//! - With a cluster (PostgreSQL): only attempts whose lease expired, at start and then
//!   periodically; the write re-checks the expiry, so a renewal that lands first wins.
//!
//! An outcome this process still holds in memory (its write failed) is never overtaken:
//! its attempt is skipped here and written by the loop when the store is back.

use super::Scheduler;
use crate::policy::lifecycle::{Event, Orphan, step};
use crate::store::{Applied, Attempt, Fence, StoreError};
use tracing::info;

impl Scheduler {
    /// Records the live attempts left behind (see the module doc) and re-plans or ends
    /// their requests.
    pub(super) async fn recover(&mut self, why: Orphan) -> Result<(), StoreError> {
        let why = if self.cluster.is_some() { Orphan::LeaseExpired } else { why };
        let now = self.clock.now();
        let orphans: Vec<Attempt> = match why {
            Orphan::Restart => self.store.live_attempts().await?,
            Orphan::LeaseExpired => {
                let expired = self.store.expired_attempts(now, 200).await?;
                expired.into_iter().map(|(attempt, _owner)| attempt).collect()
            }
        };
        let orphans: Vec<Attempt> = orphans
            .into_iter()
            .filter(|a| !self.leases.contains_key(&a.id))
            .filter(|a| !self.unrecorded.iter().any(|d| d.attempt.id == a.id))
            .collect();
        if why == Orphan::Restart && !orphans.is_empty() {
            info!(attempts = orphans.len(), "recovering attempts interrupted by a restart");
        }
        let fence = match why {
            Orphan::Restart => Fence::Own,
            Orphan::LeaseExpired => Fence::Expired,
        };
        for attempt in orphans {
            let Some(request) = self.store.request(attempt.request_id).await? else { continue };
            let services = self.services.borrow().clone();
            let rules = services.get(&request.service).map(super::rules_of);
            let kept = self.marks.pending(attempt.id);
            let event = Event::Orphaned {
                seq: attempt.seq,
                answered: attempt.answered_at.is_some() || kept.is_some(),
                why,
            };
            let applied = self
                .store
                .finish(&attempt, None, kept, fence, now, |req, records| {
                    step(rules.as_ref(), &req.facts(records), event, now)
                })
                .await?;
            if let Applied::Written(t) = &applied {
                self.marks.forget(attempt.id);
                self.count(&request, t, now);
                info!(
                    request = request.id,
                    attempt = attempt.seq,
                    outcome = t.attempt.map_or("-", |a| a.outcome.as_str()),
                    to = %t.to,
                    "recovered an attempt left without an outcome"
                );
            }
        }
        Ok(())
    }
}
