//! The intake call's edge: callbackd answers an INVITE the PBX sends to an `[intake]`
//! user, and runs [`crate::call::intake`] over the call: prompts over RTP, keys from RFC
//! 4733 telephone-events or SIP INFO, the store through [`PhoneDesk`], BYE at the end.
//!
//! Who gets what ([`admit`], pure): an INVITE from an address outside `[sip] trusted` 403;
//! to a user no dialplan lists 404; beyond the service's `[intake] max_calls` 486; an
//! offer without PCMA/PCMU 488. Only then is it answered (200 with our SDP answer).

use super::handover::info_digit;
use super::{Trunk, lock};
use crate::call::intake::{self as machine, Action, Context, End, Event, Phase, Wait};
use crate::dialplan::{Service, Services};
use crate::intake::PhoneDesk;
use crate::lang::Lang;
use crate::media::sdp;
use crate::media::{Prompts, RemoteMedia, RtpLeg};
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{self, Header, HeadersExt, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long the caller has to answer a question (a menu key or the first digit).
pub const ANSWER_WAIT: Duration = Duration::from_secs(8);
/// How long the caller has between two digits of a number.
pub const DIGIT_WAIT: Duration = Duration::from_secs(5);
/// How long a BYE may wait for its response.
const BYE_WAIT: Duration = Duration::from_secs(2);

/// What the intake calls need besides the trunk, set once the daemon's store is open.
#[derive(Debug)]
pub struct IntakeDesk {
    /// Stores the requests.
    pub desk: PhoneDesk,
    /// Every prompt (with the intake prompts of services with `[intake]`).
    pub prompts: Arc<Prompts>,
    /// Addresses whose INVITEs are answered.
    pub trusted: Vec<IpAddr>,
    /// Intake calls in progress, per service id.
    pub active: Mutex<HashMap<String, u32>>,
}

/// The answer to an INVITE outside our dialogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Answer it for this service.
    Take(String),
    /// Refuse with this status code.
    Refuse(u16),
}

/// Who gets an intake call (pure): `source` is where the INVITE came from, `user` its
/// Request-URI user part, `active` the service's calls in progress.
pub fn admit(
    services: &Services,
    trusted: &[IpAddr],
    source: Option<IpAddr>,
    user: &str,
    active: impl Fn(&str) -> u32,
) -> Admission {
    if !source.is_some_and(|s| trusted.contains(&s)) {
        return Admission::Refuse(403);
    }
    let found = services
        .values()
        .find(|s| s.intake.as_ref().is_some_and(|i| i.users.iter().any(|u| u == user)));
    match found {
        None => Admission::Refuse(404),
        Some(svc) => {
            let max = svc.intake.as_ref().map_or(0, |i| i.max_calls);
            if active(&svc.id) >= max {
                Admission::Refuse(486)
            } else {
                Admission::Take(svc.id.clone())
            }
        }
    }
}

/// Our SDP answer to an offer (pure, [`crate::media::sdp::build`]): the offer's first
/// G.711 codec with its payload type, its telephone-event type when it has one, at 20 ms,
/// and the offer's direction mirrored (RFC 3264 §6.1).
pub fn answer_sdp(ip: IpAddr, port: u16, session: u64, media: &RemoteMedia) -> String {
    // Every field comes from the parsed offer or our socket, and there are no `a=crypto`
    // values, the one thing `build` can refuse.
    sdp::build(&sdp::Local::answer(SocketAddr::new(ip, port), session, media)).unwrap_or_default()
}

/// The caller's number as presented: the user part of P-Asserted-Identity (the INVITE came
/// from a trusted PBX, see [`admit`]), else of From; `None` when anonymous or hidden.
pub fn caller_of(req: &sip::Request) -> Option<String> {
    let user_of = |uri: &sip::Uri| uri.user().map(ToString::to_string);
    let pai = req.headers.iter().find_map(|h| match h {
        Header::PAssertedIdentity(p) => {
            let v = p.value();
            let start = v.find('<').map_or(0, |i| i + 1);
            let end = v[start..].find(['>', ';']).map_or(v.len(), |i| start + i);
            sip::Uri::try_from(v[start..end].trim()).ok().and_then(|u| user_of(&u))
        }
        _ => None,
    });
    let hidden = req.headers.iter().any(|h| match h {
        Header::Privacy(p) => p.value().to_ascii_lowercase().contains("id"),
        _ => false,
    });
    let from = || req.from_header().ok()?.typed().ok().and_then(|f| user_of(&f.uri));
    let found = pai.or_else(|| if hidden { None } else { from() });
    found.filter(|u| !u.eq_ignore_ascii_case("anonymous"))
}

/// Where the INVITE came from: the top Via's `received` (the stack adds it when the source
/// differs from the sent-by), else its sent-by host.
fn source_of(req: &sip::Request) -> Option<IpAddr> {
    let via = req.top_via_header().ok()?;
    let (_, host) = rsipstack::transport::SipConnection::parse_target_from_via(&via).ok()?;
    host.host.to_string().trim_matches(['[', ']']).parse().ok()
}

/// Answers or refuses an INVITE outside our dialogs for the intake call. Returns `None`
/// when the INVITE was handled (answered or refused here), `Some(tx)` to give it back
/// (no intake is configured: the caller answers 403 as before).
pub(super) async fn on_invite(
    trunk: &Arc<Trunk>,
    mut tx: Transaction,
    cancel: CancellationToken,
) -> Option<Transaction> {
    let desk = trunk.intake.get()?.clone();
    let services = desk.desk.services();
    let user = tx.original.uri.user().map(ToString::to_string).unwrap_or_default();
    let source = source_of(&tx.original);
    let admission = {
        let active = lock(&desk.active);
        admit(&services, &desk.trusted, source, &user, |id| active.get(id).copied().unwrap_or(0))
    };
    let service_id = match admission {
        Admission::Take(id) => id,
        Admission::Refuse(code) => {
            info!(code, source = ?source, "intake INVITE refused");
            let _ = tx.reply(StatusCode::from(code)).await;
            return None;
        }
    };
    let Some(service) = services.get(&service_id).cloned() else {
        let _ = tx.reply(StatusCode::NotFound).await;
        return None;
    };
    let offer = String::from_utf8_lossy(&tx.original.body).into_owned();
    let media = match sdp::parse(&offer) {
        // Intake calls are plain RTP: an offer that requires SRTP cannot be answered.
        Ok(r) if r.secure => {
            info!("intake INVITE offering RTP/SAVP only (no SRTP on intake calls): 488");
            let _ = tx.reply(StatusCode::NotAcceptableHere).await;
            return None;
        }
        Ok(r) => r.media,
        Err(e) => {
            info!(error = %e, "intake INVITE with an unusable offer: 488");
            let _ = tx.reply(StatusCode::NotAcceptableHere).await;
            return None;
        }
    };
    *lock(&desk.active).entry(service_id.clone()).or_insert(0) += 1;
    let slot = Slot { desk: desk.clone(), service: service_id.clone() };
    let trunk = trunk.clone();
    trunk.clone().tasks_spawn(async move {
        let _slot = slot;
        if let Err(e) = run(&trunk, &desk, &service, tx, &media, cancel).await {
            warn!(error = %e, "intake call failed");
        }
    });
    None
}

/// Frees the service's intake slot however the call ends.
struct Slot {
    desk: Arc<IntakeDesk>,
    service: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.desk.active).get_mut(&self.service) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Removes the call's route and dialog however it ends.
struct Guard {
    trunk: Arc<Trunk>,
    call_id: String,
    dialog: Option<rsipstack::dialog::DialogId>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        lock(&self.trunk.routes).remove(&self.call_id);
        if let Some(id) = &self.dialog {
            self.trunk.layer.remove_dialog(id);
        }
    }
}

/// One answered intake call, from the 200 to the BYE.
async fn run(
    trunk: &Arc<Trunk>,
    desk: &Arc<IntakeDesk>,
    service: &Service,
    mut tx: Transaction,
    media: &RemoteMedia,
    cancel: CancellationToken,
) -> Result<(), super::SipError> {
    let Some(intake) = service.intake.clone() else { return Ok(()) };
    let call_id = tx.original.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default();
    let (state_tx, states) = mpsc::unbounded_channel();
    lock(&trunk.routes).insert(call_id.clone(), state_tx);
    let mut guard = Guard { trunk: trunk.clone(), call_id, dialog: None };
    let rtp = tokio::net::UdpSocket::bind(SocketAddr::new(trunk.local_ip(), 0))
        .await
        .map_err(super::SipError::Rtp)?;
    let port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
    let session = trunk.next_call_seq();
    let answer = answer_sdp(trunk.local_ip(), port, session, media);
    let scheme = super::tls::scheme(trunk.cfg.transport);
    let contact = Trunk::uri(&format!("{scheme}:callbackd@{}", trunk.local))?;
    let dialog = trunk.layer.get_or_create_server_invite(
        &tx,
        trunk.state_tx.clone(),
        None,
        Some(contact),
    )?;
    guard.dialog = Some(dialog.id());
    let caller = caller_of(&tx.original);
    let ctype = Header::ContentType("application/sdp".into());
    dialog.accept(Some(vec![ctype]), Some(answer.into_bytes()))?;
    // The INVITE transaction: sends the 2xx (and retransmits it) until the ACK.
    let mut handler = InviteDialog::clone(&dialog);
    let stop = cancel.clone();
    trunk.tasks_spawn(async move {
        tokio::select! {
            r = handler.handle(&mut tx) => if let Err(e) = r {
                debug!(error = %e, "intake INVITE transaction failed");
            },
            () = stop.cancelled() => {}
        }
    });
    let leg = RtpLeg::from_answer(rtp, media);
    info!(service = %service.id, "intake call answered");
    let call = IntakeCall {
        leg,
        may_send: sdp::may_send(media.direction.flipped()),
        states: tokio::sync::Mutex::new(states),
        prompts: desk.prompts.clone(),
        lang: intake.language,
        fallback: service.language.default,
        greeting: intake.greeting.name.clone(),
        typed: Mutex::default(),
    };
    let windows = crate::intake::servable_windows(service, desk.desk.now());
    let cx = Context { numbers: &service.numbers, windows: &windows };
    let (mut phase, mut actions) = machine::start(cx, caller.as_deref());
    let mut gone = false;
    'call: loop {
        let mut next = None;
        for action in actions {
            match action {
                Action::Play(words) => {
                    if !gone && !call.play(&words, &cancel).await {
                        gone = true;
                        next = Some(Event::Hangup);
                        break;
                    }
                }
                Action::Listen(wait) => {
                    next =
                        Some(if gone { Event::Hangup } else { call.listen(wait, &cancel).await });
                    if next == Some(Event::Hangup) {
                        gone = true;
                    }
                    break;
                }
                Action::Store { number, window } => {
                    // Never cut short: a confirmed request is stored even if the caller
                    // hangs up meanwhile.
                    let told = desk.desk.take(&service.id, &number, window, intake.language).await;
                    if !gone && call.hung_up_meanwhile().await {
                        gone = true;
                        let (p, a) = machine::step(phase, cx, Event::Hangup);
                        phase = p;
                        debug_assert!(a.is_empty());
                    }
                    next = Some(match told {
                        Ok(told) => Event::Stored(told),
                        Err(e) => {
                            warn!(service = %service.id, error = %e, "request taken on the phone not stored");
                            Event::StoreFailed
                        }
                    });
                    break;
                }
                Action::Hangup => {
                    if !gone {
                        gone = true;
                        match tokio::time::timeout(BYE_WAIT, dialog.bye()).await {
                            Ok(Ok(())) => info!("intake call ended"),
                            Ok(Err(e)) => warn!(error = %e, "BYE failed"),
                            Err(_) => warn!("BYE timed out"),
                        }
                    }
                }
            }
        }
        // No event to feed: the machine is done (its actions ended with the BYE), or the
        // call had to stop.
        let Some(event) = next else { break 'call };
        let (p, a) = machine::step(phase, cx, event);
        phase = p;
        actions = a;
    }
    let end = match phase {
        Phase::Done(end) => end,
        Phase::Offer { .. }
        | Phase::Entry { .. }
        | Phase::Confirm { .. }
        | Phase::Window { .. } => End::HungUp,
        Phase::Storing { .. } => End::StoreFailed,
    };
    crate::metrics::intake_call(&service.id, end.as_str());
    info!(service = %service.id, end = end.as_str(), "intake call over");
    // The caller is still there, or the daemon is stopping (the trunk's token): BYE.
    if !gone || cancel.is_cancelled() {
        let _ = tokio::time::timeout(BYE_WAIT, dialog.bye()).await;
    }
    Ok(())
}

/// The media and dialog of one answered intake call.
struct IntakeCall {
    leg: RtpLeg,
    /// False when our answer is `recvonly` or `inactive` (the caller offered `sendonly`
    /// or `inactive`, e.g. on hold): no RTP is sent (RFC 3264 §5.1), each prompt's time
    /// passes in silence, so the call runs its course (keys by SIP INFO still count).
    may_send: bool,
    /// The dialog's state changes (sender: the trunk's state task; closes when the guard
    /// removes the route).
    states: tokio::sync::Mutex<mpsc::UnboundedReceiver<DialogState>>,
    prompts: Arc<Prompts>,
    lang: Lang,
    fallback: Lang,
    greeting: String,
    /// SIP INFO keys that arrived while no listen was waiting, oldest first (RTP keys wait
    /// in the leg's own channel).
    typed: Mutex<std::collections::VecDeque<char>>,
}

/// What an in-dialog state change means to the intake call.
enum Heard {
    Gone,
    Digit(char),
    Nothing,
}

async fn heard(state: Option<DialogState>) -> Heard {
    match state {
        None | Some(DialogState::Terminated(_, _)) => Heard::Gone,
        Some(DialogState::Info(_, req, handle)) => {
            let _ = handle.reply(StatusCode::OK).await;
            info_digit(&req.body).map_or(Heard::Nothing, Heard::Digit)
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
            Heard::Nothing
        }
        Some(
            DialogState::Calling(_)
            | DialogState::Trying(_)
            | DialogState::Early(_, _)
            | DialogState::WaitAck(_, _)
            | DialogState::Confirmed(_, _),
        ) => Heard::Nothing,
    }
}

impl IntakeCall {
    /// Plays `words`; false when the caller hung up meanwhile (or the call must stop).
    /// Keys pressed meanwhile are kept for the next listen (SIP INFO ones are pushed back
    /// in order through `typed`).
    async fn play(&self, words: &[machine::Word], cancel: &CancellationToken) -> bool {
        let stems = machine::stems(words, &self.greeting);
        let stop = cancel.child_token();
        let playing = async {
            for stem in &stems {
                let found = self
                    .prompts
                    .get(self.lang, stem)
                    .or_else(|| self.prompts.get(self.fallback, stem));
                let Some(prompt) = found else {
                    warn!(prompt = %stem, "no such prompt: skipped");
                    continue;
                };
                if !self.may_send {
                    tokio::select! {
                        () = tokio::time::sleep(prompt.duration()) => {}
                        () = stop.cancelled() => return,
                    }
                } else if let Err(e) = self.leg.play(prompt, &stop).await {
                    warn!(error = %e, "prompt playback failed");
                }
            }
        };
        tokio::pin!(playing);
        let mut states = self.states.lock().await;
        loop {
            tokio::select! {
                () = &mut playing => return !cancel.is_cancelled(),
                s = states.recv() => match heard(s).await {
                    Heard::Gone => {
                        stop.cancel();
                        return false;
                    }
                    Heard::Digit(d) => lock(&self.typed).push_back(d),
                    Heard::Nothing => {}
                },
                () = cancel.cancelled() => return false,
            }
        }
    }

    /// Waits for one key (RTP or SIP INFO) for the wait's time.
    async fn listen(&self, wait: Wait, cancel: &CancellationToken) -> Event {
        if let Some(d) = self.typed_ahead() {
            return Event::Digit(d);
        }
        let limit = match wait {
            Wait::Answer => ANSWER_WAIT,
            Wait::NextDigit => DIGIT_WAIT,
        };
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let mut states = self.states.lock().await;
        loop {
            tokio::select! {
                Some(d) = self.leg.next_digit(limit) => return Event::Digit(d),
                s = states.recv() => match heard(s).await {
                    Heard::Gone => return Event::Hangup,
                    Heard::Digit(d) => return Event::Digit(d),
                    Heard::Nothing => {}
                },
                () = &mut deadline => return Event::Timeout,
                () = cancel.cancelled() => return Event::Hangup,
            }
        }
    }

    /// Whether a BYE arrived while the request was being stored (other in-dialog requests
    /// are answered; keys are kept).
    async fn hung_up_meanwhile(&self) -> bool {
        let mut states = self.states.lock().await;
        while let Ok(s) = states.try_recv() {
            match heard(Some(s)).await {
                Heard::Gone => return true,
                Heard::Digit(d) => lock(&self.typed).push_back(d),
                Heard::Nothing => {}
            }
        }
        false
    }

    /// A SIP INFO key that arrived during a prompt or a store.
    fn typed_ahead(&self) -> Option<char> {
        lock(&self.typed).pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Services {
        let src = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml"),
        )
        .expect("dialplan");
        crate::dialplan::parse_all(&[("kallio.toml".into(), src)]).expect("valid")
    }

    #[test]
    fn strangers_unknown_users_and_full_services_are_refused() {
        let s = services();
        let pbx: IpAddr = "10.0.0.5".parse().expect("valid");
        let other: IpAddr = "10.0.0.6".parse().expect("valid");
        let free = |_: &str| 0;
        assert_eq!(admit(&s, &[pbx], Some(other), "ringbud-kallio", free), Admission::Refuse(403));
        assert_eq!(admit(&s, &[pbx], None, "ringbud-kallio", free), Admission::Refuse(403));
        assert_eq!(admit(&s, &[pbx], Some(pbx), "nobody", free), Admission::Refuse(404));
        assert_eq!(
            admit(&s, &[pbx], Some(pbx), "ringbud-kallio", free),
            Admission::Take("kallio".into())
        );
        let max = s["kallio"].intake.as_ref().expect("valid").max_calls;
        assert_eq!(admit(&s, &[pbx], Some(pbx), "ringbud-kallio", |_| max), Admission::Refuse(486));
    }

    #[test]
    fn the_answer_keeps_the_offers_codec_and_event_types() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 9 0 8 96\r\na=rtpmap:96 telephone-event/8000\r\n\
                     a=ptime:30\r\na=sendrecv\r\n";
        let media = sdp::parse_answer(offer).expect("valid");
        let sdp = answer_sdp("10.0.0.9".parse().expect("valid"), 5000, 7, &media);
        assert!(sdp.contains("m=audio 5000 RTP/AVP 0 96\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:0 PCMU/8000\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:96 telephone-event/8000\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 10.0.0.9\r\n"), "{sdp}");
        let back = sdp::parse_answer(&sdp).expect("valid");
        assert_eq!((back.pt, back.dtmf_pt), (0, Some(96)));
        // A caller on hold (sendonly) or inactive gets recvonly / inactive, and no media.
        for (theirs, ours) in [("sendonly", "recvonly"), ("inactive", "inactive")] {
            let held = offer.replace("a=sendrecv", &format!("a={theirs}"));
            let media = sdp::parse_answer(&held).expect("valid");
            let sdp = answer_sdp("10.0.0.9".parse().expect("valid"), 5000, 7, &media);
            assert!(sdp.contains(&format!("a={ours}\r\n")), "{sdp}");
            assert!(!sdp::may_send(media.direction.flipped()), "{theirs}");
        }
    }

    #[test]
    fn the_caller_is_read_from_pai_then_from_unless_anonymous() {
        let invite = |extra: &str, from: &str| {
            let text = format!(
                "INVITE sip:ringbud-kallio@10.0.0.9 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-1\r\n\
                 From: <sip:{from}@10.0.0.5>;tag=a\r\nTo: <sip:ringbud-kallio@10.0.0.9>\r\n\
                 Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            );
            match sip::SipMessage::try_from(text.as_str()).expect("valid") {
                sip::SipMessage::Request(r) => r,
                sip::SipMessage::Response(_) => panic!(),
            }
        };
        assert_eq!(caller_of(&invite("", "+358401234567")).as_deref(), Some("+358401234567"));
        let pai = "P-Asserted-Identity: <sip:0451112223@10.0.0.5>\r\n";
        assert_eq!(caller_of(&invite(pai, "+358401234567")).as_deref(), Some("0451112223"));
        assert_eq!(caller_of(&invite("", "anonymous")), None);
        let private = "Privacy: id\r\n";
        assert_eq!(caller_of(&invite(private, "+358401234567")), None);
        assert_eq!(source_of(&invite("", "x")), Some("10.0.0.5".parse().expect("valid")));
    }
}
