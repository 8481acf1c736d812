//! The scheduler: wakes when the next request is due, claims due requests in the policy's
//! order within each service's and the trunk's capacity and the call rate, hands each claimed
//! attempt to a [`Dialer`], and records the outcome with what the policy decides next.
//!
//! It never polls: it sleeps until the earliest of the next due time, the next same-day
//! deadline and the next expiry (each one indexed query, independent of queue length), or
//! until intake, a cancellation or a finished call wakes it.
//!
//! Every change of a request is decided by [`crate::policy::lifecycle::step`]; the scheduler
//! turns what happens into its events and the store writes the transitions.
//!
//! Writes are grouped so that a burst does not cost a commit (an fsync on SQLite) per call
//! and step: the due requests of a turn that the call rate lets start within
//! `CLAIM_AHEAD` are claimed in one transaction, each call then waiting for the start the
//! rate booked for it ([`Admission::book`]), so starts stay one interval apart; the
//! outcomes of the calls that ended meanwhile are written in one transaction, each whole
//! or not at all ([`Store::finish_all`]); the answer marks share the commits of the store's
//! group-commit writer. Each write is still committed before the step it announces.
//!
//! On start it recovers (`recovery.rs`): an attempt left live by a crash is recorded as
//! `interrupted` and its request re-planned per policy (interrupted attempts do not count),
//! unless the far end had answered: an answered attempt is never dialled again. The answer
//! is written by [`StoreEvents`] before the call goes on.
//!
//! When a request's first attempt starts, it is judged against the window its patient was
//! last told ([`crate::policy::punctuality`], the told window read with the request) and
//! counted in `callbackd_eta_first_calls_total` and `callbackd_eta_miss_seconds`.
//!
//! Layout: this file is the loop (serve, expire, supervise deadlines, start calls, record
//! outcomes); `recovery.rs` is crash recovery and lease take-over, one function;
//! `cluster.rs` is lease renewal and shared claims; `answer.rs` the answer mark.
//!
//! With PostgreSQL (several servers, [`Scheduler::with_cluster`]) claims go through
//! [`Store::claim_due`]: capacity and call rate hold across all servers, each claim is a
//! lease this scheduler renews while its calls run, and attempts whose lease expired (their
//! server died) are taken over periodically instead of only at start. A store failure never
//! stops the loop: it logs, stops claiming, keeps the calls in progress (while their
//! leases can hold), backs off and retries; outcomes that could not be written are kept
//! and written when the store is back.

use crate::call::attempt::{Call, CallResult, Dialer};
use crate::clock::{Clock, until};
use crate::dialplan::{Service, Services};
use crate::metrics;
use crate::policy::AttemptRecord;
use crate::policy::admit::{self, Admission};
use crate::policy::lifecycle::{
    Event, Orphan, Rules, Served, State, Survey, Transition, serve, step,
};
use crate::policy::{Eta, punctuality};
use crate::store::{Applied, Attempt, Fence, Finish, Request, Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

mod answer;
mod cluster;
mod recovery;

use answer::AnswerMarks;
pub use answer::StoreEvents;

/// Due requests read, and at most claimed in one transaction, per service and turn.
const CLAIM_BATCH: usize = 64;

/// How far ahead of now the call rate may book the starts of the calls claimed in one turn:
/// a claimed call waits for its booked instant before it dials, so calls claimed together
/// still start one rate interval apart. At low rates this books one start per turn.
const CLAIM_AHEAD: SignedDuration = SignedDuration::from_millis(20);

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

/// The service's rules as the lifecycle needs them: the one place a service becomes
/// [`Rules`].
pub(crate) fn rules_of(svc: &Service) -> Rules<'_> {
    Rules {
        calendar: &svc.calendar,
        attempts: &svc.attempts,
        survey: svc
            .sms
            .as_ref()
            .and_then(|s| s.feedback)
            .map(|f| Survey { delay: f.delay, period: f.period }),
        next_open_day: svc.next_open_day,
    }
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(t)
}

/// A claimed attempt, ready to start.
#[derive(Debug)]
struct Claimed {
    request: Request,
    attempt: Attempt,
    /// How long it waits for the start the call rate booked for it.
    wait: Duration,
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
    /// The front layer of `serve`'s shutdown tree (cancelled on SIGTERM/SIGINT): stop
    /// claiming, drain calls for the grace period, return.
    shutdown: CancellationToken,
    active: HashMap<String, usize>,
    /// Counts loop turns; read by the systemd watchdog task (a stuck loop stops counting).
    turns: Arc<std::sync::atomic::AtomicU64>,
    /// Set once start-up recovery is done (read by `/readyz`).
    recovered: Arc<std::sync::atomic::AtomicBool>,
    /// The call rate, on the domain clock.
    admission: Admission,
    /// Answers the store could not take yet (shared with the calls' [`StoreEvents`]).
    marks: AnswerMarks,
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
    /// When a replaced call-rate stop (another server's clock ahead) was last logged.
    skew_logged: Option<tokio::time::Instant>,
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
            admission: Admission::new(limits.calls_per_second),
            marks: AnswerMarks::default(),
            cluster: None,
            leases: HashMap::new(),
            unrecorded: Vec::new(),
            last_renewed: tokio::time::Instant::now(),
            next_sweep: tokio::time::Instant::now(),
            skew_logged: None,
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
        while let Err(e) = self.recover(Orphan::Restart).await {
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
                    // Every other call that has ended too is recorded with it, in one
                    // transaction, before the next turn.
                    let mut ended = Vec::new();
                    let mut next = Some(done);
                    while let Some(done) = next {
                        match done {
                            Ok(done) => ended.push(done),
                            Err(e) => warn!(error = %e, "call task failed"),
                        }
                        next = calls.try_join_next();
                    }
                    self.record(ended).await;
                }
            }
        }
        info!(active = calls.len(), "scheduler stopping: no new calls");
        let grace = self.limits.grace;
        let drain = async {
            loop {
                tokio::select! {
                    done = calls.join_next() => match done {
                        Some(Ok(done)) => self.record(vec![done]).await,
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
                    self.record(vec![done]).await;
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

    /// Writes the outcomes kept while the store was unavailable, and the answer marks.
    async fn flush_unrecorded(&mut self) -> Result<(), StoreError> {
        self.marks.flush(&self.store).await?;
        let ended = std::mem::take(&mut self.unrecorded);
        if let Err((kept, e)) = self.write_outcomes(ended).await {
            self.unrecorded = kept;
            return Err(e);
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
                self.recover(Orphan::LeaseExpired).await?;
            }
        }
        let now = self.clock.now();
        // Each sweep runs only when its earliest instant has come: a turn costs a few index
        // lookups, whatever the queue length. Each instant is read again only after a sweep
        // changed what it depends on.
        let mut deadline = self.store.next_deadline().await?;
        if deadline.is_some_and(|d| d <= now) {
            for (service, n) in self.store.mark_missed(now).await? {
                warn!(service, requests = n, "same-day deadline missed");
                metrics::deadline_missed(&service, u64::try_from(n).unwrap_or(0));
            }
            deadline = self.store.next_deadline().await?;
        }
        let services = self.services.borrow().clone();
        let mut expiry = self.store.next_expiry().await?;
        while expiry.is_some_and(|e| e <= now) {
            let expired = self.store.expired_waiting(now, 500).await?;
            if expired.is_empty() {
                break;
            }
            for req in expired {
                let svc = services.get(&req.service);
                self.apply(svc, &req, Event::Expire, now).await?;
            }
            expiry = self.store.next_expiry().await?;
            deadline = self.store.next_deadline().await?;
        }
        let mut wake_at: Vec<Option<Timestamp>> = vec![deadline, expiry];
        let Some(dialer) = self.dialer.clone() else { return Ok(earliest(&wake_at)) };
        let mut claimable = Vec::new();
        'services: for svc in services.values() {
            let total: usize = self.active.values().sum();
            let mine = self.active.get(&svc.id).copied().unwrap_or(0);
            let free = admit::free(svc.capacity, mine, self.limits.max_calls, total);
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
            // A batch at a time, as many as free slots and the call rate allow: they are
            // claimed in one transaction, and each call starts at the instant the rate
            // booked for it (at most `CLAIM_AHEAD` from now).
            // Only as many rows as the rate lets start: none at all while it holds calls back.
            let mut probe = self.admission;
            let room = match probe.book(now, free.min(CLAIM_BATCH), CLAIM_AHEAD) {
                Ok(slots) => slots.len(),
                Err(at) => {
                    wake_at.push(Some(at));
                    break 'services;
                }
            };
            let batch = free.min(CLAIM_BATCH).min(room) as i64;
            let rules = rules_of(svc);
            let mut dial = Vec::new();
            for req in self.store.due(&svc.id, now, batch).await? {
                match serve(&rules, &req.facts(&[]), now) {
                    Ok(Served::Dial(_)) => dial.push(req),
                    // Not yet (the hours or window moved it), or no opening is left: the
                    // transition is decided again on the stored facts and written.
                    Ok(Served::Write(_)) => {
                        self.apply(Some(svc), &req, Event::Serve, now).await?;
                    }
                    Err(refused) => warn!(request = req.id, %refused, "due request not served"),
                }
            }
            if dial.is_empty() {
                continue;
            }
            let slots = match self.admission.book(now, dial.len(), CLAIM_AHEAD) {
                Ok(slots) => slots,
                Err(at) => {
                    wake_at.push(Some(at));
                    break 'services;
                }
            };
            let held_back = slots.len() < dial.len();
            dial.truncate(slots.len());
            let claimed = self.store.claim_all(&dial, now).await?;
            let service = Arc::new(svc.clone());
            for ((req, attempt), at) in dial.into_iter().zip(claimed).zip(slots) {
                let Some(attempt) = attempt else { continue };
                let wait = until(now, at);
                let claimed = Claimed { request: req, attempt, wait };
                self.start(calls, &dialer, service.clone(), claimed, hangup);
            }
            if held_back {
                // The rate stops this turn: the next start is one interval after the last.
                wake_at.push(self.admission.next());
                break 'services;
            }
        }
        wake_at.push(self.store.next_due(&claimable).await?);
        Ok(earliest(&wake_at))
    }

    /// Decides `event` for a stored request (again, on the facts read in the store's write
    /// transaction) and writes the transition.
    async fn apply(
        &self,
        svc: Option<&Service>,
        req: &Request,
        event: Event<'_>,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        let rules = svc.map(rules_of);
        let applied = self
            .store
            .apply(req.id, now, |stored, records| {
                step(rules.as_ref(), &stored.facts(records), event, now)
            })
            .await?;
        if let Applied::Written(t) = &applied {
            if t.ends() {
                metrics::ended(&req.service, t.to.as_str());
            }
        }
        Ok(applied)
    }

    fn start(
        &mut self,
        calls: &mut JoinSet<Done>,
        dialer: &Arc<dyn Dialer>,
        service: Arc<Service>,
        Claimed { request, attempt, wait }: Claimed,
        hangup: &CancellationToken,
    ) {
        if let (1, Some(told)) = (attempt.seq, request.told) {
            // The request's first call, against the window its patient was last told (read
            // with the request: no store read here).
            let told = Eta { from: told.from, to: told.to };
            metrics::first_call(&service.id, punctuality::judge(told, attempt.started_at));
        }
        let Some(number) = request.number.clone() else { return };
        let n = self.active.entry(service.id.clone()).or_insert(0);
        *n += 1;
        metrics::active_calls(&service.id, *n);
        let token = hangup.child_token();
        self.leases.insert(attempt.id, token.clone());
        let events = StoreEvents::new(
            self.store.clone(),
            self.clock.clone(),
            attempt.id,
            self.marks.clone(),
        );
        let call = Call {
            request_id: request.id,
            attempt_id: attempt.id,
            seq: attempt.seq,
            service: service.clone(),
            number,
            lang: request.lang,
            team: request.team.clone(),
            hangup: token,
            events: Arc::new(events),
        };
        let span = info_span!(
            "attempt",
            service = %service.id,
            request = request.id,
            attempt = attempt.seq,
            number = %call.number,
        );
        let stop = call.hangup.clone();
        let fut = dialer.dial(call);
        calls.spawn(
            async move {
                if !wait.is_zero() {
                    // The start the call rate booked for it (the claim is already stored).
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => {}
                    }
                }
                // Stopped before it dialled (cancelled, shutdown, lease lost): no INVITE, so
                // the patient's phone never rings; the attempt ends as interrupted, as one
                // stopped before the far end was heard does.
                let result = if stop.is_cancelled() {
                    drop(fut);
                    CallResult { outcome: crate::policy::Outcome::Interrupted, sip_code: None }
                } else {
                    tracing::debug!("dialling");
                    fut.await
                };
                info!(outcome = %result.outcome, sip = result.sip_code, "attempt ended");
                Done { request, attempt, service, result }
            }
            .instrument(span),
        );
    }

    /// Books joined calls and writes their outcomes in one transaction; an outcome that
    /// cannot be written is kept for a later turn (the store is unavailable).
    async fn record(&mut self, ended: Vec<Done>) {
        for done in &ended {
            if let Some(n) = self.active.get_mut(&done.service.id) {
                *n = n.saturating_sub(1);
                metrics::active_calls(&done.service.id, *n);
            }
            self.leases.remove(&done.attempt.id);
        }
        if let Err((kept, e)) = self.write_outcomes(ended).await {
            warn!(error = %e, attempts = kept.len(), "outcomes not recorded yet: store unavailable");
            self.unrecorded.extend(kept);
        }
    }

    /// Writes the outcomes of ended calls, each with the transition the lifecycle decides
    /// for it, in one transaction. `Err` gives back those not written, and why.
    async fn write_outcomes(&self, ended: Vec<Done>) -> Result<(), (Vec<Done>, StoreError)> {
        if ended.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let events: Vec<Event<'static>> = ended
            .iter()
            .map(|d| Event::Ended { seq: d.attempt.seq, outcome: d.result.outcome })
            .collect();
        let ends = ended
            .iter()
            .zip(&events)
            .map(|(done, event)| {
                let end = Finish {
                    attempt: &done.attempt,
                    sip_code: done.result.sip_code,
                    answered_at: self.marks.pending(done.attempt.id),
                    fence: Fence::Own,
                };
                let decide = move |req: &Request, records: &[AttemptRecord]| {
                    step(Some(&rules_of(&done.service)), &req.facts(records), *event, now)
                };
                (end, decide)
            })
            .collect();
        let written = match self.store.finish_all(ends, now).await {
            Ok(written) => written,
            Err(e) => return Err((ended, e)),
        };
        let mut kept = Vec::new();
        let mut failed = None;
        for (done, applied) in ended.into_iter().zip(written) {
            match applied {
                Ok(applied) => self.recorded(&done, &applied, now),
                Err(e) => {
                    failed = Some(e);
                    kept.push(done);
                }
            }
        }
        match failed {
            None => Ok(()),
            Some(e) => Err((kept, e)),
        }
    }

    /// What follows a written outcome: the answer mark is no longer kept, metrics, and a
    /// word about an outcome that was not applied.
    fn recorded(&self, done: &Done, applied: &Applied, now: Timestamp) {
        self.marks.forget(done.attempt.id);
        match applied {
            Applied::Written(t) => self.count(&done.request, t, now),
            Applied::Gone => {
                // Fenced: the lease expired and another server recorded this attempt.
                warn!(request = done.request.id, attempt = done.attempt.seq,
                    outcome = %done.result.outcome,
                    "outcome dropped: the attempt was taken over by another server");
            }
            Applied::Refused(refused) => {
                warn!(request = done.request.id, %refused, "outcome not applied");
            }
        }
    }

    /// Metrics of a written attempt transition.
    fn count(&self, request: &Request, t: &Transition, now: Timestamp) {
        if let Some(end) = t.attempt {
            metrics::attempt(&request.service, end.outcome.as_str());
        }
        if t.ends() {
            metrics::ended(&request.service, t.to.as_str());
        }
        if t.ends() && t.to == State::Connected {
            let secs = now.duration_since(request.created_at).as_secs_f64();
            metrics::callback_delay(&request.service, secs);
        }
    }
}

fn earliest(times: &[Option<Timestamp>]) -> Option<Timestamp> {
    times.iter().flatten().min().copied()
}
