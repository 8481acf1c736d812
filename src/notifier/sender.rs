//! The sender task: delivers due outbox rows to the gateway.
//!
//! Each turn it reads the rows due now (`queued`, `not_before` passed), decides per row
//! (pure checks on the request and the service's dialplan: still wanted? quiet hours?),
//! renders the text in the patient's language, *claims* the row (the try is counted and the
//! row leased in the store before the gateway is called), sends it with the row's stable
//! client reference, and records the result: `sent`; or another try after exponential
//! backoff; or `failed` after `max_tries` or a refusal. A crash after the gateway accepted
//! but before `sent` was written repeats the request with the same reference, which a
//! gateway honouring references turns into no second SMS.
//!
//! It sleeps until the next row is due (at most [`IDLE`]) and stops when the shutdown
//! token is cancelled (between messages; a send is bounded by the gateway timeout).

use super::gateway::{GatewayError, HttpSmsGateway, Outgoing, SmsGateway, read_secret};
use crate::clock::{Clock, until};
use crate::dialplan::Services;
use crate::metrics;
use crate::sms::config::SmsConfig;
use crate::sms::template::Kind;
use crate::sms::{backoff, quiet_until, values};
use crate::store::{OutboxRow, State, Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The longest the sender sleeps without looking at the outbox (other writers, such as
/// the scheduler or other instances, do not wake it).
pub const IDLE: Duration = Duration::from_secs(5);

/// Rows handled per turn.
const BATCH: i64 = 50;

/// The sender task. Build with [`Sender::new`], run with [`Sender::run`].
#[derive(Debug)]
pub struct Sender {
    store: Store,
    /// Current dialplans (sent by the reloader); templates are read at send time.
    services: watch::Receiver<Arc<Services>>,
    gateway: Arc<dyn SmsGateway>,
    cfg: SmsConfig,
    clock: Arc<dyn Clock>,
    /// Cancelled by the daemon on shutdown: finish the current message, return.
    shutdown: CancellationToken,
    /// Makes the patient page's link for a notice's `{link}` (`[public]`), if configured.
    links: Option<crate::link::Links>,
}

/// What to do with one due row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Send this text now.
    Send {
        /// Sender ID.
        sender: String,
        /// The rendered message.
        text: String,
        /// For a notice: the end of the window it tells.
        told_to: Option<Timestamp>,
    },
    /// Not now: quiet hours until then.
    Later(Timestamp),
    /// Never: skipped with this reason.
    Skip(&'static str),
    /// Never: failed with this reason.
    Fail(&'static str),
}

impl Sender {
    /// A sender delivering through `gateway`.
    pub fn new(
        store: Store,
        services: watch::Receiver<Arc<Services>>,
        gateway: Arc<dyn SmsGateway>,
        cfg: SmsConfig,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Self {
        Sender { store, services, gateway, cfg, clock, shutdown, links: None }
    }

    /// Gives notices the patient page's link as `{link}`.
    #[must_use]
    pub fn with_links(self, links: Option<crate::link::Links>) -> Self {
        Sender { links, ..self }
    }

    /// Runs until shutdown. Store failures are logged and retried after [`IDLE`].
    pub async fn run(self) {
        loop {
            let next = match self.turn().await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "SMS outbox unavailable");
                    None
                }
            };
            if self.shutdown.is_cancelled() {
                break;
            }
            if let Ok(n) = self.store.sms_backlog().await {
                metrics::sms_backlog(n);
            }
            let sleep = next.map_or(IDLE, |t| until(self.clock.now(), t).min(IDLE));
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        info!("SMS sender stopped");
    }

    /// Handles every due row once; returns when the next row is due.
    pub async fn turn(&self) -> Result<Option<Timestamp>, StoreError> {
        let now = self.clock.now();
        // A notice whose window passed more than `notice_slip` ago while the patient still
        // waits is followed by a new one with the new window.
        let services = self.services.borrow().clone();
        for svc in services.values() {
            let Some(sms) = &svc.sms else { continue };
            if !sms.enabled(Kind::Notice) {
                continue;
            }
            let Ok(promised_by) = now.checked_sub(sms.notice_slip) else { continue };
            let n = self.store.sms_queue_slipped(&svc.id, promised_by, now).await?;
            if n > 0 {
                info!(service = %svc.id, requests = n, "callback window slipped: new notices queued");
            }
        }
        for row in self.store.sms_due(now, BATCH).await? {
            if self.shutdown.is_cancelled() {
                break;
            }
            self.deliver(&row, now).await?;
        }
        self.store.sms_next_due().await
    }

    async fn step(&self, row: &OutboxRow, now: Timestamp) -> Result<Step, StoreError> {
        let Some(req) = self.store.request(row.request_id).await? else {
            return Ok(Step::Skip("request not found"));
        };
        let services = self.services.borrow().clone();
        let Some(svc) = services.get(&req.service) else {
            return Ok(Step::Skip("service has no dialplan"));
        };
        let Some(sms) = &svc.sms else { return Ok(Step::Skip("service sends no SMS")) };
        if !sms.enabled(row.kind) {
            return Ok(Step::Skip("message kind disabled for the service"));
        }
        let Some(number) = &req.number else { return Ok(Step::Skip("number erased")) };
        let delay = match (row.kind, sms.feedback) {
            (Kind::Feedback, Some(rule)) => rule.delay,
            _ => SignedDuration::ZERO,
        };
        let due = row.created_at.checked_add(delay).unwrap_or(row.created_at);
        if now.duration_since(due) > self.cfg.max_age {
            return Ok(Step::Fail("too old: not sent before sms.max_age"));
        }
        let mut window = None;
        let mut late = false;
        match row.kind {
            Kind::Notice => {
                if !matches!(req.state, State::Pending | State::RetryWait) {
                    return Ok(Step::Skip("request no longer waiting"));
                }
                // The window the intake answer told (recorded), unless it slipped since.
                let answer = crate::eta::tell(&self.store, svc, &req, now).await?;
                window = Some(match (answer.eta, req.due_at) {
                    (Some(e), _) => (e.from, e.to),
                    (None, Some(d)) => (d, req.deadline_at),
                    (None, None) => return Ok(Step::Skip("request no longer waiting")),
                });
                late = !answer.same_day;
            }
            Kind::Feedback => {
                if !req.sms_consent {
                    return Ok(Step::Skip("no SMS consent"));
                }
                if self.store.sms_opted_out(number).await? {
                    return Ok(Step::Skip("opted out of surveys"));
                }
            }
            Kind::Unreachable => {}
        }
        if let Some(t) = quiet_until(now, svc.calendar.tz(), self.cfg.quiet_hours) {
            return Ok(Step::Later(t));
        }
        let template = sms
            .templates
            .get(&(row.lang, row.kind))
            .or_else(|| sms.templates.get(&(svc.language.default, row.kind)));
        let Some(template) = template else {
            return Ok(Step::Skip("no template for the language"));
        };
        let vals = values(
            &svc.name,
            &svc.caller_id.number,
            svc.calendar.tz(),
            sms.link.as_deref(),
            window,
        );
        let mut vals = vals;
        if late {
            vals.insert("late", crate::sms::late(row.lang).to_owned());
        }
        // In a notice, `{link}` is the patient's own page (the survey link is the feedback's).
        if row.kind == Kind::Notice {
            match &self.links {
                Some(links) => vals.insert("link", links.url(req.id)),
                None => vals.remove("link"),
            };
        }
        let told_to = window.map(|(_, to)| to);
        Ok(Step::Send {
            sender: sms.sender.as_str().to_owned(),
            text: template.render(&vals),
            told_to,
        })
    }

    async fn deliver(&self, row: &OutboxRow, now: Timestamp) -> Result<(), StoreError> {
        let kind = row.kind.as_str();
        let (sender, text, told_to) = match self.step(row, now).await? {
            Step::Send { sender, text, told_to } => (sender, text, told_to),
            Step::Later(t) => {
                self.store.sms_later(row.id, t, Some("quiet hours")).await?;
                return Ok(());
            }
            Step::Skip(reason) => {
                info!(outbox = row.id, request = row.request_id, kind, reason, "SMS skipped");
                self.store.sms_end(row.id, false, reason).await?;
                metrics::sms(kind, "skipped");
                return Ok(());
            }
            Step::Fail(reason) => {
                warn!(outbox = row.id, request = row.request_id, kind, reason, "SMS dropped");
                self.store.sms_end(row.id, true, reason).await?;
                metrics::sms(kind, "failed");
                return Ok(());
            }
        };
        let Some(recipient) = self.store.request(row.request_id).await?.and_then(|r| r.number)
        else {
            return Ok(());
        };
        // Write-ahead: the try is counted and the row leased before the gateway is called.
        let timeout = SignedDuration::try_from(self.cfg.gateway.timeout).unwrap_or_default();
        let lease = now.checked_add(timeout * 2 + SignedDuration::from_secs(30)).unwrap_or(now);
        if !self.store.sms_claim(row, lease).await? {
            return Ok(());
        }
        let tries = u32::try_from(row.tries + 1).unwrap_or(u32::MAX);
        let masked = recipient.masked().to_string();
        let msg = Outgoing {
            reference: format!("{}{}", self.cfg.gateway.reference_prefix, row.id),
            sender,
            recipient,
            text,
        };
        let result = self.gateway.send(msg).await;
        let now = self.clock.now();
        match result {
            Ok(()) => {
                self.store.sms_sent(row.id, now).await?;
                if let Some(to) = told_to {
                    self.store.sms_told(row.id, to).await?;
                }
                metrics::sms(kind, "sent");
                info!(outbox = row.id, request = row.request_id, kind, number = %masked, tries, "SMS sent");
            }
            Err(e) => self.failed(row, kind, tries, &e, now).await?,
        }
        Ok(())
    }

    async fn failed(
        &self,
        row: &OutboxRow,
        kind: &'static str,
        tries: u32,
        e: &GatewayError,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if e.retryable() && tries < self.cfg.max_tries {
            let wait = backoff(tries, self.cfg.backoff, self.cfg.backoff_max);
            let at = now.checked_add(wait).unwrap_or(now);
            warn!(outbox = row.id, request = row.request_id, kind, tries, error = %e, retry_in = %format!("{wait:#}"), "SMS not accepted, will retry");
            self.store.sms_later(row.id, at, Some(e.label())).await?;
            metrics::sms(kind, "retry");
        } else {
            warn!(outbox = row.id, request = row.request_id, kind, tries, error = %e, "SMS failed");
            self.store.sms_end(row.id, true, e.label()).await?;
            metrics::sms(kind, "failed");
        }
        Ok(())
    }
}

/// Starts the sender for the daemon's `[sms]` configuration: reads the gateway secret,
/// builds the HTTP gateway, spawns the task on `tasks` (it ends when `shutdown` is
/// cancelled). `None` when no gateway is configured.
pub fn start(
    cfg: Option<&SmsConfig>,
    links: Option<crate::link::Links>,
    store: Store,
    services: watch::Receiver<Arc<Services>>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<Option<tokio::task::JoinHandle<()>>, GatewayError> {
    let Some(cfg) = cfg else { return Ok(None) };
    let secret = cfg.gateway.auth.as_ref().map(read_secret).transpose()?;
    let gateway = Arc::new(HttpSmsGateway::new(cfg.gateway.clone(), secret)?);
    let sender =
        Sender::new(store, services, gateway, cfg.clone(), clock, shutdown).with_links(links);
    Ok(Some(tasks.spawn(sender.run())))
}
