//! Several servers on one PostgreSQL queue: lease renewal for this server's calls, and
//! claims through the database's shared limits (see [`crate::store::lease`]).

use super::{Claimed, Cluster, Done, Scheduler, later, rules_of};
use crate::call::attempt::Dialer;
use crate::dialplan::Service;
use crate::policy::lifecycle::{Event, State, step};
use crate::store::StoreError;
use crate::store::lease::ClaimLimits;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

impl Scheduler {
    /// Renews this server's leases; hangs up calls whose lease another server took over,
    /// and all calls once the store has been unreachable for a whole lease (another
    /// server may be taking them over).
    pub(super) async fn renew(&mut self) {
        let Some(cluster) = self.cluster.clone() else { return };
        if self.leases.is_empty() && self.unrecorded.is_empty() {
            self.last_renewed = tokio::time::Instant::now();
            return;
        }
        let until = later(self.clock.now(), cluster.lease);
        match self.store.renew_leases(&cluster.owner, until).await {
            Ok(held) => {
                self.last_renewed = tokio::time::Instant::now();
                for (attempt, token) in &self.leases {
                    if !held.contains(attempt) && !token.is_cancelled() {
                        warn!(
                            attempt,
                            "lease lost: another server took the attempt over; hanging up"
                        );
                        token.cancel();
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, calls = self.leases.len(), "lease renewal failed");
                if tokio::time::Instant::now().saturating_duration_since(self.last_renewed)
                    >= cluster.lease
                {
                    for (attempt, token) in &self.leases {
                        if !token.is_cancelled() {
                            warn!(
                                attempt,
                                "lease expired while the store was unreachable; hanging up"
                            );
                            token.cancel();
                        }
                    }
                }
            }
        }
    }

    /// Claims due requests of `svc` through the database's shared limits (PostgreSQL).
    /// Returns when the call rate allows the next claim, if it stopped them.
    #[expect(
        clippy::too_many_arguments,
        reason = "one claim pass needs the loop's calls, dialer and hang-up token by reference"
    )]
    pub(super) async fn claim_shared(
        &mut self,
        cluster: &Cluster,
        svc: &Service,
        free: usize,
        now: Timestamp,
        calls: &mut JoinSet<Done>,
        dialer: &Arc<dyn Dialer>,
        hangup: &CancellationToken,
    ) -> Result<Option<Timestamp>, StoreError> {
        let limits = ClaimLimits {
            owner: &cluster.owner,
            lease: cluster.lease,
            capacity: i64::from(svc.capacity),
            max_calls: i64::from(self.limits.max_calls),
            trunk: &cluster.trunk,
            interval: Duration::try_from(self.admission.interval()).unwrap_or_default(),
        };
        let want = i64::try_from(free).unwrap_or(i64::MAX);
        let rules = rules_of(svc);
        let batch = self
            .store
            .claim_due(&svc.id, now, want, &limits, |req| {
                step(Some(&rules), &req.facts(&[]), Event::Serve, now)
                    .is_ok_and(|t| t.to == State::Dialing)
            })
            .await?;
        if let Some(stop) = batch.replaced {
            self.skew(stop, now, &cluster.trunk);
        }
        if self.leases.is_empty() && !batch.claimed.is_empty() {
            self.last_renewed = tokio::time::Instant::now();
        }
        let service = Arc::new(svc.clone());
        for (req, attempt) in batch.claimed {
            let claimed = Claimed { request: req, attempt, wait: Duration::ZERO };
            self.start(calls, dialer, service.clone(), claimed, hangup);
        }
        for req in batch.skipped {
            match step(Some(&rules), &req.facts(&[]), Event::Serve, now) {
                // Held back by the call rate: claimed at a later turn.
                Ok(t) if t.to == State::Dialing => {}
                // Not yet, or no opening left: decided again on the stored facts, written.
                Ok(_) => {
                    self.apply(Some(svc), &req, Event::Serve, now).await?;
                }
                Err(refused) => warn!(request = req.id, %refused, "due request not served"),
            }
        }
        Ok(batch.rate_until)
    }

    /// Counts a shared call-rate stop replaced because it lay far ahead of this server's
    /// clock, and says so at most once a minute: some server's clock runs ahead (or this
    /// one's behind) by more than the lease.
    fn skew(&mut self, stop: Timestamp, now: Timestamp, trunk: &str) {
        metrics::counter!(crate::metrics::RATE_STOPS_REPLACED).increment(1);
        let at = tokio::time::Instant::now();
        if self.skew_logged.is_none_or(|t| at.duration_since(t) >= Duration::from_secs(60)) {
            self.skew_logged = Some(at);
            warn!(
                trunk,
                %stop,
                ahead_ms = stop.duration_since(now).as_millis(),
                "the shared call-rate stop lies further ahead of this server's clock than the \
                 lease: replaced; check that every server's clock is in NTP sync \
                 (next report in a minute at the earliest)"
            );
        }
    }
}
