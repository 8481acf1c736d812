//! The attempt runner: places one attempt's legs, records the answer, plays the prompts,
//! reads the keys, hands over and hangs up, driving the pure machines ([`machine`] for
//! patient-first, [`machine::agent`] for agent-first) through the [`Legs`] port. The SIP
//! and RTP edge ([`crate::sip`]) implements the port; tests use a fake.
//!
//! ```text
//!  patient-first:  dial patient ──not answered──► CallResult(outcome_of(ending))
//!                       │ 2xx
//!                       ▼
//!                  events.answered()  (durable before anything is said)
//!                       │
//!                       ▼
//!                  machine::start ─► [Play | AwaitDigit | HandOver | HangUp | End] ─► step ...
//!                       ▲                                                  │
//!                       └──── PromptFinished / Digit / NoDigit / RemoteHangup / Stop
//!
//!  agent-first:    machine::agent::start ─► [DialStaff | PlayToStaff | DialPatient |
//!                                            RecordAnswer | Bridge | HangUp… | End] ─► step ...
//! ```
//! Every decision (which prompt, what a key means, what an ending counts as) is in the
//! machines and in [`crate::call::outcome_of`]; the runner only sequences effects and
//! turns what the legs report into machine events. `call.hangup` becomes the `Stop` event.

use super::attempt::{Call, CallResult};
use super::machine::agent::{self, StaffPrompt};
use super::machine::{self, Action, Event, Phase, PromptKind};
use super::{CancelReason, Ending, outcome_of};
use crate::dialplan::{ConnectMethod, ConnectMode, Service};
use crate::lang::Lang;
use crate::policy::Outcome;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// How long the patient has to press a key after the question.
pub const DIGIT_WAIT: Duration = Duration::from_secs(8);
/// How long a transfer may take to report its final status.
pub const TRANSFER_LIMIT: Duration = Duration::from_secs(45);
/// How long the staff queue may ring (bridge and agent-first).
pub const STAFF_RING: Duration = Duration::from_secs(60);

/// Which leg to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The patient, at `call.number`, with the station's caller ID.
    Patient,
    /// The staff queue, at the service's `connect.target`.
    Staff,
}

/// One prompt to play: its name, in `lang`, or in `fallback` when `lang` has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    /// The prompt's file stem.
    pub name: String,
    /// The language wanted.
    pub lang: Lang,
    /// The service's default language.
    pub fallback: Lang,
}

/// What the far end of an answered leg did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// A key (RFC 4733 or SIP INFO).
    Digit(char),
    /// It hung up (BYE), or the leg is otherwise over.
    Hangup,
}

/// How a blind transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Staff took the call.
    Succeeded,
    /// The REFER was refused, or the transfer reported a failure or timed out.
    Failed,
    /// The patient's leg ended meanwhile.
    HungUp,
    /// The call had to stop.
    Stopped,
}

/// The port the runner drives: one implementation per signalling stack (SIP and RTP in
/// [`crate::sip`]), and fakes in tests.
///
/// At most one of [`Legs::next_event`], [`Legs::refer`] and [`Legs::bridge`] runs on a
/// leg at a time (the runner drops a pending `next_event` before the others).
pub trait Legs: Send + Sync {
    /// An answered leg, with its media.
    type Leg: Send + Sync;

    /// Calls `who` for `call`, cancelling after `ring` or when `call.hangup` fires (and
    /// giving up 64×T1 after a CANCEL that got no final response). Returns the answered
    /// leg, or how the INVITE ended.
    fn dial(
        &self,
        call: &Call,
        who: Who,
        ring: Duration,
    ) -> impl Future<Output = Result<Self::Leg, Ending>> + Send;

    /// The status code of the leg's answer.
    fn answer_code(&self, leg: &Self::Leg) -> u16;

    /// Plays the prompts in order (a missing one is skipped); returns when all were
    /// played. Dropping the future stops the playback.
    fn play(&self, leg: &Self::Leg, prompts: Vec<Say>) -> impl Future<Output = ()> + Send;

    /// The next key or the hang-up. Resolves to `Hangup` again and again once the leg is
    /// over. Cancel-safe.
    fn next_event(&self, leg: &Self::Leg) -> impl Future<Output = LegEvent> + Send;

    /// Transfers the leg to `target` (REFER) and follows the transfer for at most `limit`.
    fn refer(
        &self,
        leg: &Self::Leg,
        target: &str,
        limit: Duration,
        stop: &CancellationToken,
    ) -> impl Future<Output = Transfer> + Send;

    /// Relays media between the two legs until either hangs up or `stop` fires.
    fn bridge(
        &self,
        a: &Self::Leg,
        b: &Self::Leg,
        stop: &CancellationToken,
    ) -> impl Future<Output = ()> + Send;

    /// Ends the leg with BYE, bounded in time; nothing when it is already over.
    fn hang_up(&self, leg: &Self::Leg) -> impl Future<Output = ()> + Send;
}

/// What to do once the patient answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// No prompts are configured: hold the call this long, then BYE.
    Hold(Duration),
    /// Greet, confirm and hand over as the service's `[connect]` says.
    Converse,
}

/// Runs one attempt to its end (the scheduler logs how it ended, in the attempt's span).
pub async fn run<L: Legs>(legs: &L, call: &Call, flow: Flow) -> CallResult {
    match (flow, call.service.connect.mode) {
        (Flow::Converse, ConnectMode::AgentFirst) => agent_first(legs, call).await,
        (Flow::Converse | Flow::Hold(_), ConnectMode::PatientFirst)
        | (Flow::Hold(_), ConnectMode::AgentFirst) => patient_first(legs, call, flow).await,
    }
}

fn ended(ending: Ending) -> CallResult {
    CallResult { outcome: outcome_of(ending), sip_code: ending.sip_code() }
}

fn stopped(ending: Ending) -> bool {
    matches!(ending, Ending::Cancelled { why: CancelReason::Stop, .. })
}

fn say(service: &Service, lang: Lang, name: &str) -> Say {
    Say { name: name.to_owned(), lang, fallback: service.language.default }
}

fn prompt_name(service: &Service, kind: PromptKind) -> &str {
    let p = &service.prompts;
    match kind {
        PromptKind::Greeting => &p.greeting.name,
        PromptKind::Press1 => &p.press1.name,
        PromptKind::Connecting => &p.connecting.name,
        PromptKind::Sorry => &p.sorry.name,
    }
}

fn patient_ring(call: &Call) -> Duration {
    call.service.attempts.ring_timeout.unsigned_abs()
}

async fn patient_first<L: Legs>(legs: &L, call: &Call, flow: Flow) -> CallResult {
    let leg = match legs.dial(call, Who::Patient, patient_ring(call)).await {
        Ok(leg) => leg,
        Err(ending) => return ended(ending),
    };
    let sip_code = Some(legs.answer_code(&leg));
    // Durable before a word is said: a crash from here on never calls the patient again
    // as if they had not been reached.
    call.events.answered().await;
    let outcome = match flow {
        Flow::Hold(hold) => {
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                () = call.hangup.cancelled() => {}
                () = until_hangup(legs, &leg) => info!("the other side hung up"),
            }
            Outcome::Connected
        }
        Flow::Converse => converse(legs, call, &leg).await,
    };
    legs.hang_up(&leg).await;
    CallResult { outcome, sip_code }
}

async fn until_hangup<L: Legs>(legs: &L, leg: &L::Leg) {
    while legs.next_event(leg).await != LegEvent::Hangup {}
}

/// The answered patient-first call, to its outcome ([`machine`]).
async fn converse<L: Legs>(legs: &L, call: &Call, leg: &L::Leg) -> Outcome {
    let service = &call.service;
    let (mut phase, first) = machine::start(service.connect.confirm);
    let mut pending: VecDeque<Action> = first.into();
    // The prompt list playing now, if any (dropping it stops it).
    let mut playing = None;
    // The pending read of the leg's next key or hang-up, if any.
    let mut events = None;
    let mut digit_deadline: Option<tokio::time::Instant> = None;
    loop {
        while let Some(action) = pending.pop_front() {
            let event = match action {
                Action::Play(kinds) => {
                    let list =
                        kinds.iter().map(|k| say(service, call.lang, prompt_name(service, *k)));
                    playing = Some(Box::pin(legs.play(leg, list.collect())));
                    digit_deadline = None;
                    None
                }
                Action::AwaitDigit => {
                    digit_deadline = Some(tokio::time::Instant::now() + DIGIT_WAIT);
                    None
                }
                Action::HandOver => {
                    playing = None;
                    events = None;
                    Some(hand_over(legs, call, leg).await)
                }
                Action::HangUp => {
                    playing = None;
                    events = None;
                    legs.hang_up(leg).await;
                    None
                }
                Action::End(outcome) => return outcome,
            };
            if let Some(event) = event {
                let (p, more) = machine::step(phase, event);
                phase = p;
                pending.extend(more);
            }
        }
        if let Phase::Done(outcome) = phase {
            return outcome;
        }
        if events.is_none() {
            events = Some(Box::pin(legs.next_event(leg)));
        }
        let deadline = digit_deadline;
        let event = tokio::select! {
            () = async {
                match playing.as_mut() {
                    Some(p) => p.await,
                    None => std::future::pending().await,
                }
            } => {
                playing = None;
                Event::PromptFinished
            }
            e = async {
                match events.as_mut() {
                    Some(e) => e.await,
                    None => std::future::pending().await,
                }
            } => {
                events = None;
                match e {
                    LegEvent::Digit(d) => {
                        digit_deadline = None;
                        Event::Digit(d)
                    }
                    LegEvent::Hangup => Event::RemoteHangup,
                }
            }
            () = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                digit_deadline = None;
                Event::NoDigit
            }
            () = call.hangup.cancelled() => Event::Stop,
        };
        let (p, more) = machine::step(phase, event);
        phase = p;
        pending.extend(more);
    }
}

/// The hand-over, as the machine's event.
async fn hand_over<L: Legs>(legs: &L, call: &Call, patient: &L::Leg) -> Event {
    let connect = &call.service.connect;
    match connect.method {
        ConnectMethod::Refer => {
            let target = call.service.staff_target(call.team.as_deref());
            match legs.refer(patient, target, TRANSFER_LIMIT, &call.hangup).await {
                Transfer::Succeeded => Event::HandoverSucceeded,
                Transfer::Failed => Event::HandoverFailed,
                Transfer::HungUp => Event::RemoteHangup,
                Transfer::Stopped => Event::Stop,
            }
        }
        ConnectMethod::Bridge => match legs.dial(call, Who::Staff, STAFF_RING).await {
            Ok(staff) => {
                info!("staff answered: bridging");
                legs.bridge(patient, &staff, &call.hangup).await;
                legs.hang_up(&staff).await;
                legs.hang_up(patient).await;
                Event::HandoverSucceeded
            }
            Err(ending) if stopped(ending) => Event::Stop,
            Err(ending) => {
                info!(outcome = %outcome_of(ending), sip = ending.sip_code(), "staff leg not answered");
                Event::HandoverFailed
            }
        },
    }
}

/// Plays to the nurse until the prompt ends, the nurse hangs up or the call must stop.
async fn play_to_staff<L: Legs>(
    legs: &L,
    call: &Call,
    staff: &L::Leg,
    prompt: StaffPrompt,
) -> agent::Event {
    let service = &call.service;
    let name = match prompt {
        StaffPrompt::Whisper => &service.prompts.whisper.name,
        StaffPrompt::PatientUnreachable => &service.prompts.patient_unreachable.name,
    };
    let list = vec![say(service, service.language.default, name)];
    tokio::select! {
        () = legs.play(staff, list) => agent::Event::PromptFinished,
        () = until_hangup(legs, staff) => agent::Event::StaffHangup,
        () = call.hangup.cancelled() => agent::Event::Stop,
    }
}

/// Agent-first ([`machine::agent`]).
async fn agent_first<L: Legs>(legs: &L, call: &Call) -> CallResult {
    let (mut phase, first) = agent::start();
    let mut pending: VecDeque<agent::Action> = first.into();
    let mut staff: Option<L::Leg> = None;
    let mut patient: Option<L::Leg> = None;
    let mut sip_code = None;
    loop {
        while let Some(action) = pending.pop_front() {
            let event = match action {
                agent::Action::DialStaff => match legs.dial(call, Who::Staff, STAFF_RING).await {
                    Ok(leg) => {
                        staff = Some(leg);
                        Some(agent::Event::StaffAnswered)
                    }
                    Err(ending) => {
                        sip_code = ending.sip_code();
                        Some(agent::Event::StaffEnded(ending))
                    }
                },
                agent::Action::PlayToStaff(prompt) => match &staff {
                    Some(s) => Some(play_to_staff(legs, call, s, prompt).await),
                    None => Some(agent::Event::StaffHangup),
                },
                agent::Action::DialPatient => {
                    match legs.dial(call, Who::Patient, patient_ring(call)).await {
                        Ok(leg) => {
                            sip_code = Some(legs.answer_code(&leg));
                            patient = Some(leg);
                            Some(agent::Event::PatientAnswered)
                        }
                        Err(ending) => {
                            sip_code = ending.sip_code();
                            Some(agent::Event::PatientEnded(ending))
                        }
                    }
                }
                agent::Action::RecordAnswer => {
                    call.events.answered().await;
                    None
                }
                agent::Action::Bridge => {
                    if let (Some(p), Some(s)) = (&patient, &staff) {
                        legs.bridge(p, s, &call.hangup).await;
                    }
                    Some(agent::Event::BridgeEnded)
                }
                agent::Action::HangUpStaff => {
                    if let Some(s) = &staff {
                        legs.hang_up(s).await;
                    }
                    None
                }
                agent::Action::HangUpPatient => {
                    if let Some(p) = &patient {
                        legs.hang_up(p).await;
                    }
                    None
                }
                agent::Action::End(outcome) => {
                    return CallResult { outcome, sip_code };
                }
            };
            if let Some(event) = event {
                let (p, more) = agent::step(phase, event);
                phase = p;
                pending.extend(more);
            }
        }
        // Every action but the last asks for an event, so the machine always has a next
        // action; should it not, stopping ends every phase.
        match phase {
            agent::Phase::Done(outcome) => return CallResult { outcome, sip_code },
            agent::Phase::DialStaff
            | agent::Phase::Whisper
            | agent::Phase::DialPatient
            | agent::Phase::Bridged
            | agent::Phase::TellStaff(_) => {
                let (p, more) = agent::step(phase, agent::Event::Stop);
                phase = p;
                pending.extend(more);
            }
        }
    }
}

#[cfg(test)]
mod tests;
