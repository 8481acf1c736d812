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

use crate::clock::{Clock, until};
use crate::dialplan::{Service, Services};
use crate::lang::Lang;
use crate::metrics;
use crate::policy::number::E164;
use crate::policy::{self, AttemptRecord, Decision, End, Now, Outcome, Plan, RequestFacts};
use crate::store::{Attempt, Next, Request, State, Store, StoreError};
use jiff::Timestamp;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

/// The longest the scheduler sleeps without looking at the store.
pub const IDLE: Duration = Duration::from_secs(5);

/// One outbound call to place.
#[derive(Debug, Clone)]
pub struct Call {
    /// The request.
    pub request_id: i64,
    /// The attempt (already stored as live).
    pub attempt_id: i64,
    /// 1 for the request's first attempt.
    pub seq: i64,
    /// The service as it was when the attempt started (a reload does not change it).
    pub service: Arc<Service>,
    /// Whom to call.
    pub number: E164,
    /// The patient's language.
    pub lang: Lang,
    /// Cancelled when the daemon must hang up (shutdown grace period over).
    pub hangup: CancellationToken,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallResult {
    /// The outcome.
    pub outcome: Outcome,
    /// The final SIP status code, if any.
    pub sip_code: Option<u16>,
}

/// Places calls. The SIP dialer implements it; tests use doubles.
pub trait Dialer: Send + Sync + std::fmt::Debug + 'static {
    /// Places one call and returns how it ended. Must return promptly after
    /// `call.hangup` is cancelled.
    fn dial(&self, call: Call) -> Pin<Box<dyn Future<Output = CallResult> + Send + 'static>>;
}

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
        }
    }

    /// Shares the flag that turns true once start-up recovery is done.
    pub fn recovered_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.recovered.clone()
    }

    /// Shares the loop-turn counter (for the systemd watchdog).
    pub fn turns_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.turns.clone()
    }

    /// Runs until shutdown; active calls are given the grace period, then hung up.
    pub async fn run(mut self) -> Result<(), StoreError> {
        self.recover().await?;
        self.recovered.store(true, std::sync::atomic::Ordering::Release);
        let mut calls: JoinSet<Done> = JoinSet::new();
        let hangup = CancellationToken::new();
        loop {
            self.turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let next = self.turn(&mut calls, &hangup).await?;
            // Other writers (the CLI, other instances) cannot notify us: never sleep longer
            // than IDLE. Each wake-up costs a few indexed lookups, whatever the queue length.
            let sleep = match next {
                Some(t) => until(self.clock.now(), t).min(IDLE),
                None => IDLE,
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    match done {
                        Ok(done) => self.record(done).await?,
                        Err(e) => warn!(error = %e, "call task failed"),
                    }
                }
            }
        }
        info!(active = calls.len(), "scheduler stopping: no new calls");
        let grace = self.limits.grace;
        let drain = async {
            while let Some(done) = calls.join_next().await {
                if let Ok(done) = done {
                    self.record(done).await?;
                }
            }
            Ok::<(), StoreError>(())
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            warn!(active = calls.len(), "grace period over: hanging up");
            hangup.cancel();
            while let Some(done) = calls.join_next().await {
                if let Ok(done) = done {
                    self.record(done).await?;
                }
            }
        }
        Ok(())
    }

    /// Records attempts left live by a crash as interrupted and re-plans their requests.
    async fn recover(&mut self) -> Result<(), StoreError> {
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
                    self.record_outcome(&request, &attempt, &service, result).await?;
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
                let end = if req.attempts_counted > 0 { End::Unreachable } else { End::Expired };
                let next = Next::Final {
                    end,
                    reason: "expired before it could be served".to_owned(),
                    sms_unreachable: true,
                    sms_feedback: None,
                };
                if self.store.replan(&req, &next, "scheduler", now).await? {
                    metrics::ended(&req.service, end.as_str());
                }
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
            for req in self.store.due(&svc.id, now, free as i64).await? {
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
                    Now::Wait(t) => {
                        let next = Next::Retry(Plan { due: t, ..plan });
                        self.store.replan(&req, &next, "scheduler", now).await?;
                    }
                    Now::Expire => {
                        let end =
                            if req.attempts_counted > 0 { End::Unreachable } else { End::Expired };
                        let next = Next::Final {
                            end,
                            reason: "no opening left before the expiry".to_owned(),
                            sms_unreachable: true,
                            sms_feedback: None,
                        };
                        if self.store.replan(&req, &next, "scheduler", now).await? {
                            metrics::ended(&req.service, end.as_str());
                        }
                    }
                }
            }
        }
        wake_at.push(self.store.next_due(&claimable).await?);
        Ok(earliest(&wake_at))
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
        let call = Call {
            request_id: request.id,
            attempt_id: attempt.id,
            seq: attempt.seq,
            service: service.clone(),
            number,
            lang: request.lang,
            hangup: hangup.child_token(),
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

    async fn record(&mut self, done: Done) -> Result<(), StoreError> {
        if let Some(n) = self.active.get_mut(&done.service.id) {
            *n = n.saturating_sub(1);
            metrics::active_calls(&done.service.id, *n);
        }
        self.record_outcome(&done.request, &done.attempt, &done.service, done.result).await
    }

    async fn record_outcome(
        &self,
        request: &Request,
        attempt: &Attempt,
        service: &Service,
        result: CallResult,
    ) -> Result<(), StoreError> {
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
        if self.store.finish(attempt, result.outcome, result.sip_code, &next, actor, now).await? {
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
        Ok(())
    }
}

fn earliest(times: &[Option<Timestamp>]) -> Option<Timestamp> {
    times.iter().flatten().min().copied()
}
