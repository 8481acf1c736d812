//! The scheduler: wakes when the next request is due, claims due requests in the policy's
//! order within each service's and the trunk's capacity and the call rate, hands each claimed
//! attempt to a [`Dialer`], and records the outcome with what the policy decides next.
//!
//! It never polls: it sleeps until the earliest of the next due time, the next same-day
//! deadline and the next expiry (each one indexed query, independent of queue length), or
//! until intake, a cancellation or a finished call wakes it.
//!
//! On start it recovers: an attempt left live by a crash is recorded as `interrupted` and
//! its request re-planned per policy (interrupted attempts do not count).
//!
//! With PostgreSQL (several servers, [`Scheduler::with_cluster`]) claims go through
//! [`Store::claim_due`]: capacity and call rate hold across all servers, each claim is a
//! lease this scheduler renews while its calls run, and attempts whose lease expired (their
//! server died) are taken over periodically instead of only at start. A store failure never
//! stops the loop: it logs, stops claiming, keeps the calls in progress (while their
//! leases can hold), backs off and retries; outcomes that could not be written are kept
//! and written when the store is back.

use crate::call::attempt::{Call, CallResult, Dialer, NoEvents};
use crate::clock::{Clock, until};
use crate::dialplan::{Service, Services};
use crate::metrics;
use crate::policy::{self, AttemptRecord, Decision, End, Now, Outcome, Plan, RequestFacts};
use crate::store::lease::ClaimLimits;
use crate::store::{Attempt, Next, Request, State, Store, StoreError};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

/// Due requests read per service and turn.
const CLAIM_BATCH: usize = 16;

/// The longest the scheduler sleeps without looking at the store.
pub const IDLE: Duration = Duration::from_secs(5);

/// Limits across all services.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Concurrent calls on the trunk.
    pub max_calls: u32,
    /// New calls per second.
    pub calls_per_second: u32,
    /// How long active calls may go on after shutdown is requested.
    pub grace: Duration,
}

/// Several servers on one PostgreSQL queue: who this server is and how long its claims hold.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// This server's instance id, the owner of its leases (see
    /// [`crate::store::lease::instance_id`]).
    pub owner: String,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// The trunk's name in the database (the PBX address): servers sharing it share the
    /// trunk's `max_calls` and `calls_per_second`.
    pub trunk: String,
}

/// Exponential back-off for store failures: 100 ms doubling up to 5 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        (Duration::from_millis(100) * 2u32.saturating_pow(self.failures.min(6) - 1))
            .min(Duration::from_secs(5))
    }
}

fn plan_of(req: &Request, now: Timestamp) -> Plan {
    Plan {
        due: req.due_at.unwrap_or(now),
        deadline: req.deadline_at,
        expires: req.expires_at,
        counted: u8::try_from(req.attempts_counted).unwrap_or(u8::MAX),
    }
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(t)
}

/// A finished call, handed from its task back to the scheduler loop.
#[derive(Debug)]
struct Done {
    request: Request,
    attempt: Attempt,
    service: Arc<Service>,
    result: CallResult,
}

/// The scheduler task. Build with [`Scheduler::new`], run with [`Scheduler::run`].
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    /// Current dialplans. Sent by the reloader, read here at each turn; a call keeps the
    /// `Arc<Service>` it started with.
    services: watch::Receiver<Arc<Services>>,
    /// `None` until a dialer is configured: requests are then kept, expired and supervised
    /// but never claimed.
    dialer: Option<Arc<dyn Dialer>>,
    clock: Arc<dyn Clock>,
    /// Notified by intake and cancellation after their commit; wakes the loop early.
    wake: Arc<Notify>,
    limits: Limits,
    /// Cancelled by main on SIGTERM/SIGINT: stop claiming, drain calls, return.
    shutdown: CancellationToken,
    active: HashMap<String, usize>,
    /// Counts loop turns; read by the systemd watchdog task (a stuck loop stops counting).
    turns: Arc<std::sync::atomic::AtomicU64>,
    /// Set once start-up recovery is done (read by `/readyz`).
    recovered: Arc<std::sync::atomic::AtomicBool>,
    /// Earliest moment the next call may start (call rate limit).
    next_start: tokio::time::Instant,
    /// Set with PostgreSQL: leases, shared limits, periodic take-over.
    cluster: Option<Cluster>,
    /// This server's live calls by attempt id: the token hangs the call up when its lease
    /// is lost. Inserted at start, removed when the call task is joined.
    leases: HashMap<i64, CancellationToken>,
    /// Outcomes of ended calls not yet written (the store was unavailable); retried at
    /// each turn.
    unrecorded: Vec<Done>,
    /// Last successful lease renewal (or claim while nothing was held).
    last_renewed: tokio::time::Instant,
    /// Next sweep for attempts whose lease expired.
    next_sweep: tokio::time::Instant,
}

impl Scheduler {
    /// A scheduler over `store`.
    pub fn new(
        store: Store,
        services: watch::Receiver<Arc<Services>>,
        dialer: Option<Arc<dyn Dialer>>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Self {
        Scheduler {
            store,
            services,
            dialer,
            clock,
            wake,
            limits,
            shutdown,
            active: HashMap::new(),
            recovered: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            turns: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            next_start: tokio::time::Instant::now(),
            cluster: None,
            leases: HashMap::new(),
            unrecorded: Vec::new(),
            last_renewed: tokio::time::Instant::now(),
            next_sweep: tokio::time::Instant::now(),
        }
    }

    /// Runs as one of several servers on a PostgreSQL queue (see the module doc).
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Shares the flag that turns true once start-up recovery is done.
    pub fn recovered_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.recovered.clone()
    }

    /// Shares the loop-turn counter (for the systemd watchdog).
    pub fn turns_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.turns.clone()
    }

    /// Runs until shutdown; active calls are given the grace period, then hung up. Store
    /// failures are logged and retried with back-off, never returned.
    pub async fn run(mut self) -> Result<(), StoreError> {
        let mut backoff = Backoff::default();
        while let Err(e) = self.recover().await {
            let wait = backoff.next();
            warn!(error = %e, retry_in = ?wait, "store unavailable for start-up recovery");
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        backoff = Backoff::default();
        self.recovered.store(true, std::sync::atomic::Ordering::Release);
        let mut calls: JoinSet<Done> = JoinSet::new();
        let hangup = CancellationToken::new();
        let every = self.cluster.as_ref().map_or(IDLE, |c| c.lease / 3);
        let mut renew = tokio::time::interval(every.max(Duration::from_millis(100)));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sleep = match self.turn(&mut calls, &hangup).await {
                Ok(next) => {
                    if backoff.failures > 0 {
                        info!("store available again: claiming");
                        backoff = Backoff::default();
                    }
                    // Other writers (the CLI, other instances) cannot notify us: never sleep
                    // longer than IDLE. Each wake-up costs a few indexed lookups, whatever
                    // the queue length.
                    match next {
                        Some(t) => until(self.clock.now(), t).min(IDLE),
                        None => IDLE,
                    }
                }
                Err(e) => {
                    let wait = backoff.next();
                    // One line per outage (and one when it ends), not one per retry.
                    if backoff.failures == 1 {
                        warn!(
                            error = %e,
                            active = calls.len(),
                            "store unavailable: not claiming; calls in progress go on"
                        );
                    } else {
                        tracing::debug!(error = %e, retry_in = ?wait, "store still unavailable");
                    }
                    wait
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = renew.tick(), if self.cluster.is_some() => self.renew().await,
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    match done {
                        Ok(done) => self.record(done).await,
                        Err(e) => warn!(error = %e, "call task failed"),
                    }
                    // Record every other call that has ended too before the next turn.
                    while let Some(done) = calls.try_join_next() {
                        match done {
                            Ok(done) => self.record(done).await,
                            Err(e) => warn!(error = %e, "call task failed"),
                        }
                    }
                }
            }
        }
        info!(active = calls.len(), "scheduler stopping: no new calls");
        let grace = self.limits.grace;
        let drain = async {
            loop {
                tokio::select! {
                    done = calls.join_next() => match done {
                        Some(Ok(done)) => self.record(done).await,
                        Some(Err(_)) => {}
                        None => break,
                    },
                    _ = renew.tick(), if self.cluster.is_some() => self.renew().await,
                }
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            warn!(active = calls.len(), "grace period over: hanging up");
            hangup.cancel();
            while let Some(done) = calls.join_next().await {
                if let Ok(done) = done {
                    self.record(done).await;
                }
            }
        }
        // Outcomes the store could not take yet: a few more tries, then they are left to
        // recovery (this server's next start, or another server once the lease expires).
        for _ in 0..5 {
            if self.flush_unrecorded().await.is_ok() {
                break;
            }
            tokio::time::sleep(backoff.next()).await;
        }
        if !self.unrecorded.is_empty() {
            warn!(attempts = self.unrecorded.len(), "outcomes not recorded: left to recovery");
        }
        Ok(())
    }

    /// Writes the outcomes kept while the store was unavailable.
    async fn flush_unrecorded(&mut self) -> Result<(), StoreError> {
        while let Some(done) = self.unrecorded.pop() {
            let result = self.record_outcome(
                &done.request,
                &done.attempt,
                &done.service,
                done.result,
                false,
            );
            if let Err(e) = result.await {
                self.unrecorded.push(done);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Renews this server's leases; hangs up calls whose lease another server took over,
    /// and all calls once the store has been unreachable for a whole lease (another
    /// server may be taking them over).
    async fn renew(&mut self) {
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
                #[expect(
                    clippy::disallowed_methods,
                    reason = "lease keeping runs on the tokio clock"
                )]
                let unrenewed = self.last_renewed.elapsed();
                if unrenewed >= cluster.lease {
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

    /// Records attempts of other servers whose lease expired as interrupted and re-plans
    /// their requests (the servers died or lost the database).
    async fn take_over(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let own = self.cluster.as_ref().map(|c| c.owner.clone());
        for (attempt, owner) in self.store.expired_attempts(now, 200).await? {
            if owner.is_some() && owner == own && self.leases.contains_key(&attempt.id) {
                continue;
            }
            let Some(request) = self.store.request(attempt.request_id).await? else { continue };
            let services = self.services.borrow().clone();
            let result = CallResult { outcome: Outcome::Interrupted, sip_code: None };
            let taken = match services.get(&request.service) {
                Some(svc) => {
                    let service = Arc::new(svc.clone());
                    self.record_outcome(&request, &attempt, &service, result, true).await?
                }
                None => {
                    let plan = Plan { due: now, ..plan_of(&request, now) };
                    let next = Next::Retry(plan);
                    let interrupted = Outcome::Interrupted;
                    self.store.finish_expired(&attempt, interrupted, &next, "recovery", now).await?
                }
            };
            if taken {
                info!(
                    request = request.id,
                    attempt = attempt.seq,
                    owner = owner.as_deref().unwrap_or("-"),
                    "took over an attempt whose lease expired: recorded as interrupted"
                );
            }
        }
        Ok(())
    }

    /// Claims due requests of `svc` through the database's shared limits (PostgreSQL).
    /// Returns when the call rate allows the next claim, if it stopped them.
    #[allow(clippy::too_many_arguments)]
    async fn claim_shared(
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
            interval: Duration::from_secs(1) / self.limits.calls_per_second.max(1),
        };
        let want = i64::try_from(free).unwrap_or(i64::MAX);
        let batch = self
            .store
            .claim_due(&svc.id, now, want, &limits, |req| {
                let plan = plan_of(req, now);
                matches!(
                    policy::at(&svc.calendar, &svc.attempts, req.window, &plan, now),
                    Now::Start
                )
            })
            .await?;
        if self.leases.is_empty() && !batch.claimed.is_empty() {
            self.last_renewed = tokio::time::Instant::now();
        }
        let service = Arc::new(svc.clone());
        for (req, attempt) in batch.claimed {
            self.start(calls, dialer, service.clone(), req, attempt, hangup);
        }
        for req in batch.skipped {
            let plan = plan_of(&req, now);
            match policy::at(&svc.calendar, &svc.attempts, req.window, &plan, now) {
                // Held back by the call rate: claimed at a later turn.
                Now::Start => {}
                Now::Wait(t) => self.wait_until(&req, plan, t, now).await?,
                Now::Expire => {
                    self.end_unserved(&req, "no opening left before the expiry", now).await?
                }
            }
        }
        Ok(batch.rate_until)
    }

    /// Records attempts left live by a crash as interrupted and re-plans their requests.
    async fn recover(&mut self) -> Result<(), StoreError> {
        if self.cluster.is_some() {
            // Other servers' live calls hold leases: take over only what expired.
            return self.take_over().await;
        }
        let live = self.store.live_attempts().await?;
        if !live.is_empty() {
            info!(attempts = live.len(), "recovering attempts interrupted by a restart");
        }
        for attempt in live {
            let Some(request) = self.store.request(attempt.request_id).await? else { continue };
            let services = self.services.borrow().clone();
            let result = CallResult { outcome: Outcome::Interrupted, sip_code: None };
            match services.get(&request.service) {
                Some(svc) => {
                    let service = Arc::new(svc.clone());
                    self.record_outcome(&request, &attempt, &service, result, false).await?;
                }
                None => {
                    // No dialplan for it now: keep it waiting as it was planned.
                    let now = self.clock.now();
                    let plan = Plan {
                        due: now,
                        deadline: request.deadline_at,
                        expires: request.expires_at,
                        counted: u8::try_from(request.attempts_counted).unwrap_or(u8::MAX),
                    };
                    self.store
                        .finish(
                            &attempt,
                            Outcome::Interrupted,
                            None,
                            &Next::Retry(plan),
                            "recovery",
                            now,
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// One pass: supervise deadlines, expire, claim what is due. Returns when to wake next.
    async fn turn(
        &mut self,
        calls: &mut JoinSet<Done>,
        hangup: &CancellationToken,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.flush_unrecorded().await?;
        if let Some(cluster) = &self.cluster {
            let tnow = tokio::time::Instant::now();
            if tnow >= self.next_sweep {
                self.next_sweep = tnow + (cluster.lease / 3).max(Duration::from_millis(500));
                self.take_over().await?;
            }
        }
        let now = self.clock.now();
        // Each sweep runs only when its earliest instant has come: a turn costs a few index
        // lookups, whatever the queue length.
        if self.store.next_deadline().await?.is_some_and(|d| d <= now) {
            for (service, n) in self.store.mark_missed(now).await? {
                warn!(service, requests = n, "same-day deadline missed");
                metrics::deadline_missed(&service, u64::try_from(n).unwrap_or(0));
            }
        }
        let services = self.services.borrow().clone();
        while self.store.next_expiry().await?.is_some_and(|e| e <= now) {
            let expired = self.store.expired_waiting(now, 500).await?;
            if expired.is_empty() {
                break;
            }
            for req in expired {
                self.end_unserved(&req, "expired before it could be served", now).await?;
            }
        }
        let mut wake_at: Vec<Option<Timestamp>> =
            vec![self.store.next_deadline().await?, self.store.next_expiry().await?];
        let Some(dialer) = self.dialer.clone() else { return Ok(earliest(&wake_at)) };
        let mut claimable = Vec::new();
        'services: for svc in services.values() {
            let total: usize = self.active.values().sum();
            let mine = self.active.get(&svc.id).copied().unwrap_or(0);
            let free = (svc.capacity as usize)
                .saturating_sub(mine)
                .min((self.limits.max_calls as usize).saturating_sub(total));
            if free == 0 {
                continue;
            }
            claimable.push(svc.id.clone());
            if self.store.next_due_of(&svc.id).await?.is_none_or(|d| d > now) {
                continue;
            }
            if let Some(cluster) = self.cluster.clone() {
                let rate = self.claim_shared(&cluster, svc, free, now, calls, &dialer, hangup);
                if let Some(t) = rate.await? {
                    wake_at.push(Some(t));
                    break 'services;
                }
                continue;
            }
            // A few at a time: the call rate lets only some start now, and the rest are
            // looked at again on the next turn anyway.
            let batch = free.min(CLAIM_BATCH) as i64;
            for req in self.store.due(&svc.id, now, batch).await? {
                let plan = Plan {
                    due: req.due_at.unwrap_or(now),
                    deadline: req.deadline_at,
                    expires: req.expires_at,
                    counted: u8::try_from(req.attempts_counted).unwrap_or(u8::MAX),
                };
                match policy::at(&svc.calendar, &svc.attempts, req.window, &plan, now) {
                    Now::Start => {
                        let tnow = tokio::time::Instant::now();
                        if tnow < self.next_start {
                            let wait = self.next_start - tnow;
                            let at = now.saturating_add(
                                jiff::SignedDuration::try_from(wait).unwrap_or_default(),
                            );
                            wake_at.push(at.ok());
                            break 'services;
                        }
                        let per = Duration::from_secs(1) / self.limits.calls_per_second.max(1);
                        self.next_start = tnow + per;
                        let Some(attempt) = self.store.claim(&req, now).await? else { continue };
                        self.start(calls, &dialer, Arc::new(svc.clone()), req, attempt, hangup);
                    }
                    Now::Wait(t) => self.wait_until(&req, plan, t, now).await?,
                    Now::Expire => {
                        self.end_unserved(&req, "no opening left before the expiry", now).await?
                    }
                }
            }
        }
        wake_at.push(self.store.next_due(&claimable).await?);
        Ok(earliest(&wake_at))
    }

    /// Moves a waiting request's due time to `t` (the hours or window moved it).
    async fn wait_until(
        &self,
        req: &Request,
        plan: Plan,
        t: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.store.replan(req, &Next::Retry(Plan { due: t, ..plan }), "scheduler", now).await?;
        Ok(())
    }

    /// Ends a request that can no longer be served: unreachable if it was tried, expired if
    /// not; the "could not reach you" SMS is queued with it.
    async fn end_unserved(
        &self,
        req: &Request,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let end = if req.attempts_counted > 0 { End::Unreachable } else { End::Expired };
        let next = Next::Final {
            end,
            reason: reason.to_owned(),
            sms_unreachable: true,
            sms_feedback: None,
        };
        if self.store.replan(req, &next, "scheduler", now).await? {
            metrics::ended(&req.service, end.as_str());
        }
        Ok(())
    }

    fn start(
        &mut self,
        calls: &mut JoinSet<Done>,
        dialer: &Arc<dyn Dialer>,
        service: Arc<Service>,
        request: Request,
        attempt: Attempt,
        hangup: &CancellationToken,
    ) {
        let Some(number) = request.number.clone() else { return };
        let n = self.active.entry(service.id.clone()).or_insert(0);
        *n += 1;
        metrics::active_calls(&service.id, *n);
        let token = hangup.child_token();
        self.leases.insert(attempt.id, token.clone());
        let call = Call {
            request_id: request.id,
            attempt_id: attempt.id,
            seq: attempt.seq,
            service: service.clone(),
            number,
            lang: request.lang,
            hangup: token,
            events: Arc::new(NoEvents),
        };
        let span = info_span!(
            "attempt",
            service = %service.id,
            request = request.id,
            attempt = attempt.seq,
            number = %call.number,
        );
        let fut = dialer.dial(call);
        calls.spawn(
            async move {
                info!("dialling");
                let result = fut.await;
                info!(outcome = %result.outcome, sip = result.sip_code, "attempt ended");
                Done { request, attempt, service, result }
            }
            .instrument(span),
        );
    }

    /// Books a joined call and writes its outcome; kept for a later turn when the store
    /// is unavailable.
    async fn record(&mut self, done: Done) {
        if let Some(n) = self.active.get_mut(&done.service.id) {
            *n = n.saturating_sub(1);
            metrics::active_calls(&done.service.id, *n);
        }
        self.leases.remove(&done.attempt.id);
        let result =
            self.record_outcome(&done.request, &done.attempt, &done.service, done.result, false);
        if let Err(e) = result.await {
            warn!(error = %e, request = done.request.id, "outcome not recorded yet: store unavailable");
            self.unrecorded.push(done);
        }
    }

    async fn record_outcome(
        &self,
        request: &Request,
        attempt: &Attempt,
        service: &Service,
        result: CallResult,
        expired_only: bool,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut records: Vec<AttemptRecord> = self
            .store
            .attempts(request.id)
            .await?
            .iter()
            .filter(|a| a.id != attempt.id)
            .filter_map(Attempt::record)
            .collect();
        records.push(AttemptRecord { ended_at: now, outcome: result.outcome });
        let facts = RequestFacts {
            created_at: request.created_at,
            window: request.window,
            attempts: &records,
        };
        let next = match policy::decide(&service.calendar, &service.attempts, &facts) {
            Decision::Dial(plan) => Next::Retry(plan),
            Decision::End { end, reason } => Next::Final {
                end,
                reason: reason.to_string(),
                sms_unreachable: matches!(end, End::Unreachable | End::Expired),
                sms_feedback: service.sms.as_ref().and_then(|s| s.feedback),
            },
        };
        let actor = if result.outcome == Outcome::Interrupted { "recovery" } else { "dialer" };
        let (outcome, sip) = (result.outcome, result.sip_code);
        let finished =
            self.store.finish_fenced(attempt, outcome, sip, &next, actor, now, expired_only);
        let finished = finished.await?;
        if !finished && !expired_only && actor == "dialer" {
            // Fenced: the lease expired and another server recorded this attempt.
            warn!(request = request.id, attempt = attempt.seq, outcome = %outcome,
                "outcome dropped: the attempt was taken over by another server");
        }
        if finished {
            metrics::attempt(&request.service, result.outcome.as_str());
            if let Some(stored) = self.store.request(request.id).await? {
                if stored.state.is_final() {
                    metrics::ended(&request.service, stored.state.as_str());
                }
                if stored.state == State::Connected {
                    let secs = now.duration_since(request.created_at).as_secs_f64();
                    metrics::callback_delay(&request.service, secs);
                }
            }
        }
        Ok(finished)
    }
}

fn earliest(times: &[Option<Timestamp>]) -> Option<Timestamp> {
    times.iter().flatten().min().copied()
}
