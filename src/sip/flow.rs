//! The answered call, executed: plays prompts over RTP, collects the patient's key (RFC 4733
//! or SIP INFO), and hands the patient over to staff by REFER or by bridging a second leg —
//! driven by the pure [`crate::call::machine`]. Also the agent-first flow (staff first, a
//! whisper, then the patient, bridged).

use super::handover::{self, HandoverError, info_digit};
use super::{Answered, LegEnd, LegSpec, Trunk, dial_leg, patient_leg};
use crate::call::attempt::{Call, CallResult};
use crate::call::machine::{self, Action, Event, Phase, PromptKind};
use crate::dialplan::{ConnectMethod, Service};
use crate::lang::Lang;
use crate::media::{Prompt, Prompts, RtpLeg, parse_answer, relay};
use crate::policy::Outcome;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::StatusCode;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long the patient has to press a key after the question.
pub const DIGIT_WAIT: Duration = Duration::from_secs(8);
/// How long a transfer may take to report its final status.
pub const TRANSFER_LIMIT: Duration = Duration::from_secs(45);
/// How long the staff queue may ring (bridge and agent-first).
pub const STAFF_RING: Duration = Duration::from_secs(60);

fn prompt<'a>(
    prompts: &'a Prompts,
    service: &Service,
    lang: Lang,
    name: &str,
) -> Option<&'a Prompt> {
    prompts.get(lang, name).or_else(|| prompts.get(service.language.default, name))
}

fn kind_name(service: &Service, kind: PromptKind) -> &str {
    let p = &service.prompts;
    match kind {
        PromptKind::Greeting => &p.greeting.name,
        PromptKind::Press1 => &p.press1.name,
        PromptKind::Connecting => &p.connecting.name,
        PromptKind::Sorry => &p.sorry.name,
    }
}

/// Ends our side of a dialog with BYE, bounded in time.
async fn bye(dialog: &InviteDialog) {
    match tokio::time::timeout(Duration::from_secs(35), dialog.bye()).await {
        Ok(Ok(())) => info!("hung up"),
        Ok(Err(e)) => warn!(error = %e, "BYE failed"),
        Err(_) => warn!("BYE timed out"),
    }
}

/// Starts RTP on an answered leg, as its SDP answer says.
fn media_leg(mut a: Answered) -> Result<(RtpLeg, Answered), Box<(Answered, String)>> {
    let body = String::from_utf8_lossy(&a.response.body).into_owned();
    let keys =
        crate::media::sdes::negotiate(a.srtp.as_ref(), &crate::media::sdp::audio_crypto(&body));
    match (parse_answer(&body), a.rtp.take()) {
        (Ok(remote), Some(socket)) => {
            match keys.map(|k| RtpLeg::secured(socket, &remote, k.as_ref())) {
                Ok(Ok(leg)) => Ok((leg, a)),
                Ok(Err(e)) => Err(Box::new((a, e.to_string()))),
                Err(e) => Err(Box::new((a, e.to_string()))),
            }
        }
        (Err(e), _) => Err(Box::new((a, e.to_string()))),
        (Ok(_), None) => Err(Box::new((a, "the RTP socket is already in use".to_owned()))),
    }
}

/// Answers the in-dialog requests a call does not act on, and turns the others into
/// events: a remote BYE (`RemoteHangup`) and SIP INFO DTMF (`Digit`).
async fn dialog_event(state: Option<DialogState>) -> Option<Event> {
    match state {
        None | Some(DialogState::Terminated(_, _)) => Some(Event::RemoteHangup),
        Some(DialogState::Info(_, req, handle)) => {
            let _ = handle.reply(StatusCode::OK).await;
            info_digit(&req.body).map(Event::Digit)
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

/// Bridges two answered legs until either side hangs up (or shutdown), then hangs up the
/// other. Returns true when the patient's side ended first.
async fn bridge(
    patient: &mut Answered,
    patient_rtp: &RtpLeg,
    staff: &mut Answered,
    staff_rtp: &RtpLeg,
    hangup: &CancellationToken,
) {
    let stop = CancellationToken::new();
    let relaying = relay(patient_rtp, staff_rtp, &stop);
    tokio::pin!(relaying);
    let which = loop {
        tokio::select! {
            () = &mut relaying => break 0,
            s = patient.states.recv() => if dialog_event(s).await == Some(Event::RemoteHangup) { break 1 },
            s = staff.states.recv() => if dialog_event(s).await == Some(Event::RemoteHangup) { break 2 },
            () = hangup.cancelled() => break 0,
        }
    };
    stop.cancel();
    match which {
        1 => bye(&staff.dialog).await,
        2 => bye(&patient.dialog).await,
        _ => {
            bye(&patient.dialog).await;
            bye(&staff.dialog).await;
        }
    }
}

/// What happened to the hand-over, and whether the patient's leg is already over.
async fn hand_over(
    trunk: &Arc<Trunk>,
    call: &Call,
    patient: &mut Answered,
    patient_rtp: &RtpLeg,
) -> (Event, bool) {
    let target = call.service.connect.target.clone();
    match call.service.connect.method {
        ConnectMethod::Refer => {
            match handover::transfer(
                &patient.dialog,
                &target,
                &mut patient.states,
                TRANSFER_LIMIT,
                &call.hangup,
            )
            .await
            {
                Ok(()) => (Event::HandoverSucceeded, false),
                Err(HandoverError::Hangup) => (Event::RemoteHangup, true),
                Err(e) => {
                    warn!(error = %e, "transfer failed");
                    (Event::HandoverFailed, false)
                }
            }
        }
        ConnectMethod::Bridge => {
            let spec = staff_leg(call);
            match dial_leg(trunk, &spec, &call.hangup).await {
                Ok(LegEnd::Answered(staff)) => match media_leg(*staff) {
                    Ok((staff_rtp, mut staff)) => {
                        info!("staff answered: bridging");
                        bridge(patient, patient_rtp, &mut staff, &staff_rtp, &call.hangup).await;
                        (Event::HandoverSucceeded, true)
                    }
                    Err(failed) => {
                        let (staff, e) = *failed;
                        warn!(error = %e, "staff leg's SDP is unusable");
                        bye(&staff.dialog).await;
                        (Event::HandoverFailed, false)
                    }
                },
                Ok(LegEnd::Ended(r)) => {
                    warn!(outcome = %r.outcome, sip = r.sip_code, "staff leg not answered");
                    (Event::HandoverFailed, false)
                }
                Err(e) => {
                    warn!(error = %e, "staff leg failed");
                    (Event::HandoverFailed, false)
                }
            }
        }
    }
}

fn staff_leg(call: &Call) -> LegSpec {
    LegSpec {
        to: call.service.connect.target.clone(),
        from_number: call.service.caller_id.number.as_str().to_owned(),
        from_name: call.service.caller_id.name.clone(),
        ring_timeout: STAFF_RING,
        tag: format!("{}-{}-staff", call.request_id, call.attempt_id),
    }
}

/// Runs the answered patient-first call to its outcome.
pub(super) async fn converse(
    trunk: &Arc<Trunk>,
    prompts: &Arc<Prompts>,
    call: &Call,
    a: Answered,
) -> Outcome {
    let (leg, mut a) = match media_leg(a) {
        Ok(x) => x,
        Err(failed) => {
            let (a, e) = *failed;
            warn!(error = %e, "the patient's SDP answer is unusable: hanging up");
            bye(&a.dialog).await;
            return Outcome::NetworkFailure;
        }
    };
    let leg = Arc::new(leg);
    // Finished prompt lists, by generation. Sender: the play task; receiver: this loop.
    let (played_tx, mut played) = mpsc::unbounded_channel::<u64>();
    let mut generation = 0u64;
    let mut play_stop = CancellationToken::new();
    let mut digit_deadline: Option<tokio::time::Instant> = None;
    let mut ended = false;
    let (mut phase, first) = machine::start(call.service.connect.confirm);
    let mut pending: VecDeque<Action> = first.into();
    loop {
        while let Some(action) = pending.pop_front() {
            match action {
                Action::Play(kinds) => {
                    play_stop.cancel();
                    play_stop = CancellationToken::new();
                    generation += 1;
                    digit_deadline = None;
                    let list: Vec<Prompt> = kinds
                        .iter()
                        .filter_map(|k| {
                            prompt(prompts, &call.service, call.lang, kind_name(&call.service, *k))
                                .cloned()
                        })
                        .collect();
                    let (leg, stop, done, which_play) =
                        (leg.clone(), play_stop.clone(), played_tx.clone(), generation);
                    tokio::spawn(async move {
                        for p in &list {
                            match leg.play(p, &stop).await {
                                Ok(played) if played.cancelled => return,
                                Ok(_) => {}
                                Err(e) => warn!(error = %e, "prompt playback failed"),
                            }
                        }
                        let _ = done.send(which_play);
                    });
                }
                Action::AwaitDigit => {
                    digit_deadline = Some(tokio::time::Instant::now() + DIGIT_WAIT);
                }
                Action::HandOver => {
                    play_stop.cancel();
                    let (event, over) = hand_over(trunk, call, &mut a, &leg).await;
                    ended |= over;
                    let (p, more) = machine::step(phase, event);
                    phase = p;
                    pending.extend(more);
                }
                Action::HangUp => {
                    play_stop.cancel();
                    if !ended {
                        bye(&a.dialog).await;
                        ended = true;
                    }
                }
                Action::End(outcome) => {
                    play_stop.cancel();
                    if !ended {
                        bye(&a.dialog).await;
                    }
                    info!(%outcome, "call flow ended");
                    return outcome;
                }
            }
        }
        if let Phase::Done(outcome) = phase {
            return outcome;
        }
        let deadline = digit_deadline;
        let event = tokio::select! {
            Some(which_play) = played.recv() => (which_play == generation).then_some(Event::PromptFinished),
            d = leg.next_digit(Duration::from_secs(3600)) => d.map(Event::Digit),
            () = async { if let Some(t) = deadline { tokio::time::sleep_until(t).await } else { std::future::pending().await } } => {
                digit_deadline = None;
                Some(Event::NoDigit)
            }
            s = a.states.recv() => {
                let e = dialog_event(s).await;
                if e == Some(Event::RemoteHangup) {
                    ended = true;
                }
                e
            }
            () = call.hangup.cancelled() => {
                play_stop.cancel();
                if !ended {
                    bye(&a.dialog).await;
                }
                return match phase {
                    Phase::HandingOver | Phase::Sorry | Phase::Connecting => Outcome::HandoverFailed,
                    Phase::Greeting { .. } | Phase::AwaitDigit { .. } => Outcome::Interrupted,
                    Phase::Done(o) => o,
                };
            }
        };
        if let Some(event) = event {
            if matches!(event, Event::Digit(_)) {
                digit_deadline = None;
            }
            let (p, more) = machine::step(phase, event);
            phase = p;
            pending.extend(more);
        }
    }
}

/// Agent-first: call the staff queue, whisper to the nurse, then call the patient with the
/// station's caller ID and bridge; if the patient does not answer, tell the nurse.
pub(super) async fn agent_first(
    trunk: &Arc<Trunk>,
    prompts: &Arc<Prompts>,
    call: &Call,
) -> CallResult {
    let service = &call.service;
    let staff = match dial_leg(trunk, &staff_leg(call), &call.hangup).await {
        Ok(LegEnd::Answered(a)) => *a,
        Ok(LegEnd::Ended(r)) => {
            warn!(outcome = %r.outcome, "no nurse answered: the patient is not called");
            return CallResult { outcome: Outcome::HandoverFailed, sip_code: r.sip_code };
        }
        Err(e) => {
            warn!(error = %e, "staff leg failed");
            return CallResult { outcome: Outcome::NetworkFailure, sip_code: None };
        }
    };
    let (staff_rtp, mut staff) = match media_leg(staff) {
        Ok(x) => x,
        Err(failed) => {
            let (staff, e) = *failed;
            warn!(error = %e, "staff leg's SDP is unusable");
            bye(&staff.dialog).await;
            return CallResult { outcome: Outcome::HandoverFailed, sip_code: None };
        }
    };
    let nurse_lang = service.language.default;
    let say = |name: &str| prompt(prompts, service, nurse_lang, name).cloned();
    let stop = CancellationToken::new();
    if let Some(p) = say(&service.prompts.whisper.name) {
        let _ = staff_rtp.play(&p, &stop).await;
    }
    let spec = patient_leg(trunk, call);
    match dial_leg(trunk, &spec, &call.hangup).await {
        Ok(LegEnd::Answered(p)) => {
            let code = Some(p.response.status_code.code());
            match media_leg(*p) {
                Ok((patient_rtp, mut patient)) => {
                    bridge(&mut patient, &patient_rtp, &mut staff, &staff_rtp, &call.hangup).await;
                    CallResult { outcome: Outcome::Connected, sip_code: code }
                }
                Err(failed) => {
                    let (patient, e) = *failed;
                    warn!(error = %e, "the patient's SDP answer is unusable");
                    bye(&patient.dialog).await;
                    bye(&staff.dialog).await;
                    CallResult { outcome: Outcome::NetworkFailure, sip_code: code }
                }
            }
        }
        Ok(LegEnd::Ended(r)) => {
            if let Some(p) = say(&service.prompts.patient_unreachable.name) {
                let _ = staff_rtp.play(&p, &stop).await;
            }
            bye(&staff.dialog).await;
            let _ = staff.states.try_recv();
            r
        }
        Err(e) => {
            warn!(error = %e, "patient leg failed");
            bye(&staff.dialog).await;
            CallResult { outcome: Outcome::NetworkFailure, sip_code: None }
        }
    }
}
