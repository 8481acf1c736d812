//! The [`Legs`] port over rsipstack and RTP: INVITE with our SDP offer (and CANCEL),
//! prompts and keys over RTP (RFC 4733) or SIP INFO, REFER, bridging, BYE. What each of
//! these means for the attempt is decided in [`crate::call`]; this module only does it and
//! reports what the far end did.

use super::handover::{self, HandoverError, info_digit};
use super::{SipError, Trunk, lock, sdp, tls};
use crate::call::attempt::Call;
use crate::call::runner::{LegEvent, Legs, Say, Transfer, Who};
use crate::call::{CancelReason, Ending};
use crate::media::{Prompts, RtpLeg, parse_answer, relay};
use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::headers::{PAssertedIdentity, Privacy};
use rsipstack::sip::{self, Header, StatusCode, StatusCodeKind};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// RFC 3261's T1 (round-trip estimate).
pub const T1: Duration = Duration::from_millis(500);
/// How long an INVITE may go without a final response after our CANCEL: 64×T1 (RFC 3261
/// §9.1), then the attempt ends without it.
pub const CANCEL_WAIT: Duration = Duration::from_secs(32);
/// Once the call must stop (shutdown grace over, lease lost), how long a CANCELled INVITE
/// may still wait for its final response.
pub const STOP_WAIT: Duration = Duration::from_secs(1);
/// How long a BYE may wait for its response (the leg is ended on our side either way; a
/// shutdown must not wait on the PBX).
const BYE_WAIT: Duration = Duration::from_secs(2);

/// Who a leg is from and to.
#[derive(Debug, Clone)]
struct LegSpec {
    /// Request-URI and To.
    to: String,
    /// The station's E.164 number for From and P-Asserted-Identity.
    from_number: String,
    /// The display name.
    from_name: String,
    /// Ring timeout before CANCEL.
    ring_timeout: Duration,
    /// Part of the Call-ID, for logs.
    tag: String,
}

/// Removes the call's route and its dialogs however the leg ends.
struct CallGuard {
    trunk: Arc<Trunk>,
    call_id: String,
    ids: Vec<DialogId>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        lock(&self.trunk.routes).remove(&self.call_id);
        for id in &self.ids {
            self.trunk.layer.remove_dialog(id);
        }
    }
}

/// An answered leg: its dialog, its media and its in-dialog requests.
pub struct SipLeg {
    dialog: InviteDialog,
    code: u16,
    rtp: RtpLeg,
    /// The dialog's state changes. Sender: the trunk's state task (routes by Call-ID);
    /// closes when the guard removes the route. Read by one of `next_event`, `refer`,
    /// `bridge` at a time.
    states: Mutex<mpsc::UnboundedReceiver<DialogState>>,
    /// The leg is over (their BYE, or ours).
    over: AtomicBool,
    _guard: CallGuard,
}

impl std::fmt::Debug for SipLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipLeg").field("dialog", &self.dialog.id()).finish_non_exhaustive()
    }
}

/// The SIP/RTP [`Legs`] of one trunk.
#[derive(Debug, Clone)]
pub struct SipLegs {
    pub(super) trunk: Arc<Trunk>,
    pub(super) prompts: Arc<Prompts>,
}

impl SipLegs {
    fn spec(&self, call: &Call, who: Who, ring: Duration) -> LegSpec {
        let trunk = &self.trunk;
        let to = match who {
            Who::Patient => {
                let user_phone = if trunk.cfg.user_phone { ";user=phone" } else { "" };
                format!(
                    "{}:{}@{}{user_phone}",
                    tls::scheme(trunk.cfg.transport),
                    trunk.dial_string(&call.number),
                    trunk.cfg.domain
                )
            }
            Who::Staff => call.service.staff_target(call.team.as_deref()).to_owned(),
        };
        let suffix = match who {
            Who::Patient => "",
            Who::Staff => "-staff",
        };
        LegSpec {
            to,
            from_number: call.service.caller_id.number.as_str().to_owned(),
            from_name: call.service.caller_id.name.clone(),
            ring_timeout: ring,
            tag: format!("{}-{}{suffix}", call.request_id, call.attempt_id),
        }
    }
}

/// Answers the in-dialog requests a call does not act on, and turns the others into what
/// the runner hears: a remote BYE and SIP INFO DTMF.
async fn dialog_event(state: Option<DialogState>) -> Option<LegEvent> {
    match state {
        None | Some(DialogState::Terminated(_, _)) => Some(LegEvent::Hangup),
        Some(DialogState::Info(_, req, handle)) => {
            let _ = handle.reply(StatusCode::OK).await;
            info_digit(&req.body).map(LegEvent::Digit)
        }
        Some(
            DialogState::Notify(_, _, handle)
            | DialogState::Options(_, _, handle)
            | DialogState::Updated(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Publish(_, _, handle)
            | DialogState::Refer(_, _, handle),
        ) => {
            let _ = handle.reply(StatusCode::OK).await;
            None
        }
        Some(
            DialogState::Calling(_)
            | DialogState::Trying(_)
            | DialogState::Early(_, _)
            | DialogState::WaitAck(_, _)
            | DialogState::Confirmed(_, _),
        ) => None,
    }
}

/// Ends a dialog with BYE, bounded in time.
async fn bye(dialog: &InviteDialog) {
    match tokio::time::timeout(BYE_WAIT, dialog.bye()).await {
        Ok(Ok(())) => debug!("hung up"),
        Ok(Err(e)) => warn!(error = %e, "BYE failed"),
        Err(_) => warn!("BYE timed out"),
    }
}

impl Legs for SipLegs {
    type Leg = SipLeg;

    async fn dial(&self, call: &Call, who: Who, ring: Duration) -> Result<SipLeg, Ending> {
        let spec = self.spec(call, who, ring);
        let (dialog, response, states, guard, rtp, srtp) =
            match dial_leg(&self.trunk, &spec, &call.hangup).await {
                Ok(answered) => answered?,
                Err(e) => {
                    warn!(error = %e, "the INVITE could not be sent");
                    return Err(Ending::NoResponse);
                }
            };
        let code = response.status_code.code();
        let body = String::from_utf8_lossy(&response.body).into_owned();
        // The media as the answer says: its address and codec, and the SDES keys it accepted
        // (an answer without an accepted key fails when `[sip] srtp` is required).
        let crypto = crate::media::sdp::audio_crypto(&body);
        let crypto: Vec<&str> = crypto.iter().map(String::as_str).collect();
        let keys = crate::media::sdes::negotiate(srtp.as_ref(), &crypto);
        let media = parse_answer(&body).map_err(|e| e.to_string()).and_then(|remote| {
            let keys = keys.map_err(|e| e.to_string())?;
            RtpLeg::secured(rtp, &remote, keys.as_ref()).map_err(|e| e.to_string())
        });
        match media {
            Ok(rtp) => Ok(SipLeg {
                dialog,
                code,
                rtp,
                states: Mutex::new(states),
                over: AtomicBool::new(false),
                _guard: guard,
            }),
            Err(e) => {
                warn!(error = %e, "the SDP answer is unusable: hanging up");
                bye(&dialog).await;
                Err(Ending::MediaUnusable(code))
            }
        }
    }

    fn answer_code(&self, leg: &SipLeg) -> u16 {
        leg.code
    }

    async fn play(&self, leg: &SipLeg, prompts: Vec<Say>) {
        // Never cancelled: the runner stops a prompt by dropping this future.
        let stop = CancellationToken::new();
        for say in &prompts {
            let found = self
                .prompts
                .get(say.lang, &say.name)
                .or_else(|| self.prompts.get(say.fallback, &say.name));
            let Some(prompt) = found else {
                warn!(prompt = %say.name, "no such prompt: skipped");
                continue;
            };
            if let Err(e) = leg.rtp.play(prompt, &stop).await {
                warn!(error = %e, "prompt playback failed");
            }
        }
    }

    async fn next_event(&self, leg: &SipLeg) -> LegEvent {
        if leg.over.load(Ordering::SeqCst) {
            return LegEvent::Hangup;
        }
        let mut states = leg.states.lock().await;
        loop {
            tokio::select! {
                Some(d) = leg.rtp.next_digit(Duration::from_secs(3600)) => return LegEvent::Digit(d),
                s = states.recv() => match dialog_event(s).await {
                    Some(LegEvent::Hangup) => {
                        info!("the other side hung up");
                        leg.over.store(true, Ordering::SeqCst);
                        return LegEvent::Hangup;
                    }
                    Some(e) => return e,
                    None => {}
                },
            }
        }
    }

    async fn refer(
        &self,
        leg: &SipLeg,
        target: &str,
        limit: Duration,
        stop: &CancellationToken,
    ) -> Transfer {
        let mut states = leg.states.lock().await;
        match handover::transfer(&leg.dialog, target, &mut states, limit, stop).await {
            Ok(()) => Transfer::Succeeded,
            Err(HandoverError::Hangup) => {
                leg.over.store(true, Ordering::SeqCst);
                Transfer::HungUp
            }
            Err(HandoverError::Shutdown) => Transfer::Stopped,
            Err(
                e @ (HandoverError::ReferRejected(_)
                | HandoverError::NoReferResponse
                | HandoverError::TransferFailed(_)
                | HandoverError::Timeout
                | HandoverError::StaffLeg(_)),
            ) => {
                warn!(error = %e, "transfer failed");
                Transfer::Failed
            }
        }
    }

    async fn bridge(&self, a: &SipLeg, b: &SipLeg, stop: &CancellationToken) {
        let relay_stop = CancellationToken::new();
        let relaying = relay(&a.rtp, &b.rtp, &relay_stop);
        tokio::pin!(relaying);
        let mut a_states = a.states.lock().await;
        let mut b_states = b.states.lock().await;
        loop {
            tokio::select! {
                () = &mut relaying => break,
                s = a_states.recv() => if dialog_event(s).await == Some(LegEvent::Hangup) {
                    a.over.store(true, Ordering::SeqCst);
                    break;
                },
                s = b_states.recv() => if dialog_event(s).await == Some(LegEvent::Hangup) {
                    b.over.store(true, Ordering::SeqCst);
                    break;
                },
                () = stop.cancelled() => break,
            }
        }
        relay_stop.cancel();
    }

    async fn hang_up(&self, leg: &SipLeg) {
        if !leg.over.swap(true, Ordering::SeqCst) {
            bye(&leg.dialog).await;
        }
    }
}

/// An answered INVITE: dialog, 2xx, state channel, route guard, the RTP socket the offer
/// named, and the SDES keys the offer carried (`[sip] srtp` not off).
type Answered = (
    InviteDialog,
    sip::Response,
    mpsc::UnboundedReceiver<DialogState>,
    CallGuard,
    tokio::net::UdpSocket,
    Option<crate::media::sdes::Offer>,
);

/// A CANCEL in flight (it waits for its own 200 for up to 64×T1; the INVITE is followed
/// meanwhile).
type Cancelling = Pin<Box<dyn Future<Output = ()> + Send>>;

fn send_cancel(dialog: &InviteDialog) -> Cancelling {
    let dialog = dialog.clone();
    Box::pin(async move {
        if let Err(e) = dialog.cancel().await {
            debug!(error = %e, "CANCEL failed");
        }
    })
}

/// Places one INVITE (with our SDP offer) and follows it to a final response: CANCEL after
/// the ring timeout or when `hangup` fires, and give up 64×T1 after a CANCEL that got no
/// final response (or [`STOP_WAIT`] after `hangup`).
async fn dial_leg(
    trunk: &Arc<Trunk>,
    spec: &LegSpec,
    hangup: &CancellationToken,
) -> Result<Result<Answered, Ending>, SipError> {
    let seq = trunk.next_call_seq();
    let call_id = format!("cb-{}-{seq}@callbackd", spec.tag);
    let domain = &trunk.cfg.domain;
    let (station, name) = (&spec.from_number, &spec.from_name);
    let callee = Trunk::uri(&spec.to)?;
    let scheme = tls::scheme(trunk.cfg.transport);
    let caller = Trunk::uri(&format!("{scheme}:{station}@{domain}"))?;
    let contact = Trunk::uri(&format!("{scheme}:callbackd@{}", trunk.local))?;
    // The RTP socket the offer names.
    let rtp = tokio::net::UdpSocket::bind(SocketAddr::new(trunk.local_ip(), 0))
        .await
        .map_err(SipError::Rtp)?;
    let rtp_port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
    let srtp = crate::media::sdes::Offer::new(trunk.cfg.srtp)?;
    let offer = sdp::offer_with(trunk.local_ip(), rtp_port, seq, srtp.as_ref());
    let headers = vec![
        Header::PAssertedIdentity(PAssertedIdentity::new(format!(
            "\"{name}\" <{scheme}:{station}@{domain}>"
        ))),
        Header::Privacy(Privacy::new("none")),
    ];
    let opt = InviteOption {
        caller_display_name: Some(name.clone()),
        caller,
        callee,
        destination: Some(trunk.destination.clone()),
        contact,
        content_type: Some("application/sdp".to_owned()),
        offer: Some(offer.into_bytes()),
        credential: trunk.credential.clone(),
        headers: Some(headers),
        call_id: Some(call_id.clone()),
        ..Default::default()
    };
    let (state_tx, mut states) = mpsc::unbounded_channel();
    lock(&trunk.routes).insert(call_id.clone(), state_tx);
    let mut guard = CallGuard { trunk: trunk.clone(), call_id, ids: Vec::new() };
    let (dialog, mut invite) = trunk.layer.do_invite_async(opt, trunk.state_tx.clone())?;
    guard.ids.push(dialog.id());
    let ring = tokio::time::sleep(spec.ring_timeout);
    tokio::pin!(ring);
    // Armed once we cancel: when we stop waiting for the INVITE's final response.
    let give_up = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(give_up);
    let mut cancelled: Option<CancelReason> = None;
    let mut cancelling: Option<Cancelling> = None;
    let mut stopping = false;
    // Whether the PBX answered the INVITE at all (1xx): a ring timeout without it is a
    // failure on the way to the PBX, not an unanswered phone.
    let mut heard = false;
    loop {
        tokio::select! {
            done = &mut invite => {
                let resp = match done {
                    Ok(Ok((_, resp))) => resp,
                    Ok(Err(e)) => {
                        info!(error = %e, "INVITE failed");
                        None
                    }
                    Err(e) => {
                        warn!(error = %e, "INVITE task failed");
                        None
                    }
                };
                let ending = match (resp, cancelled) {
                    (Some(r), None) if r.status_code.kind() == StatusCodeKind::Successful => {
                        let role = rsipstack::transaction::key::TransactionRole::Client;
                        if let Ok(id) = DialogId::try_from((&r, role)) {
                            guard.ids.push(id);
                        }
                        info!(sip = r.status_code.code(), "answered");
                        return Ok(Ok((dialog, r, states, guard, rtp, srtp)));
                    }
                    // The stack reports its own timer B as a 408 without a To tag: no
                    // response arrived at all.
                    (Some(r), None) if is_local_timeout(&r) => Ending::NoResponse,
                    (Some(r), None) => Ending::Final(r.status_code.code()),
                    (None, None) => Ending::NoResponse,
                    // We cancelled: the stack ACKs and BYEs a 2xx that crossed our CANCEL.
                    (resp, Some(why)) => {
                        let code = resp.as_ref().filter(|r| !is_local_timeout(r)).map(|r| r.status_code.code());
                        Ending::Cancelled { why, heard, code }
                    }
                };
                return Ok(Err(ending));
            }
            Some(state) = states.recv() => {
                if matches!(state, DialogState::Trying(_) | DialogState::Early(_, _)) {
                    heard = true;
                }
            }
            () = async { match cancelling.as_mut() { Some(c) => c.await, None => std::future::pending().await } } => {
                cancelling = None;
            }
            () = &mut ring, if cancelled.is_none() => {
                info!("ring timeout: cancelling");
                cancelled = Some(CancelReason::RingTimeout);
                cancelling = Some(send_cancel(&dialog));
                give_up.as_mut().reset(tokio::time::Instant::now() + CANCEL_WAIT);
            }
            () = hangup.cancelled(), if !stopping => {
                stopping = true;
                if cancelled.is_none() {
                    info!("stopping: cancelling the INVITE");
                    cancelled = Some(CancelReason::Stop);
                    cancelling = Some(send_cancel(&dialog));
                }
                let soon = tokio::time::Instant::now() + STOP_WAIT;
                if soon < give_up.deadline() {
                    give_up.as_mut().reset(soon);
                }
            }
            () = &mut give_up, if cancelled.is_some() => {
                warn!(heard, "no final response to the cancelled INVITE: giving up on it");
                invite.abort();
                let why = cancelled.unwrap_or(CancelReason::Stop);
                return Ok(Err(Ending::Cancelled { why, heard, code: None }));
            }
        }
    }
}

/// True for the 408 rsipstack makes up when timer B fires: a PBX's own 408 carries a To
/// tag, the made-up one does not.
fn is_local_timeout(r: &sip::Response) -> bool {
    use rsipstack::sip::HeadersExt;
    r.status_code == StatusCode::RequestTimeout
        && r.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_none()
}
