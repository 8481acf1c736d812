//! One attempt as the scheduler hands it to a [`Dialer`], and how it ended.
//!
//! An *attempt* is one outbound call for a request. The scheduler stores it as live
//! (write-ahead) and then gives it to a [`Dialer`]; the dialer reports back through
//! [`AttemptEvents`] while the call is up and returns a [`CallResult`] when it ends.

use crate::dialplan::Service;
use crate::lang::Lang;
use crate::number::E164;
use crate::policy::Outcome;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A boxed future, as the object-safe traits of this module return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
    /// The request's care team (`None`: the service's own target); see
    /// [`Service::staff_target`].
    pub team: Option<String>,
    /// Cancelled when the daemon must hang up (shutdown grace period over).
    /// Sent by the scheduler's shutdown path; every dialer watches it.
    pub hangup: CancellationToken,
    /// Where the dialer reports what happened while the call is up (the scheduler's side
    /// writes it down before the dialer acts on it).
    pub events: Arc<dyn AttemptEvents>,
}

/// What a dialer reports about a call in progress, before it acts on it.
pub trait AttemptEvents: Send + Sync + std::fmt::Debug + 'static {
    /// The far end answered (2xx). Called once, before any prompt or hand-over; the
    /// returned future resolves once the answer is durable (or could not be written, in
    /// which case the implementation keeps it and retries), so that a crash after this
    /// point never leads to dialling a patient who was already reached.
    fn answered(&self) -> BoxFuture<()>;
}

/// An [`AttemptEvents`] that records nothing: for tests and benchmarks of the dialer alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl AttemptEvents for NoEvents {
    fn answered(&self) -> BoxFuture<()> {
        Box::pin(async {})
    }
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
    fn dial(&self, call: Call) -> BoxFuture<CallResult>;
}
