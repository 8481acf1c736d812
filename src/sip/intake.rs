//! The intake call's edge: callbackd answers an INVITE the PBX sends to an `[intake]`
//! user, and runs [`crate::call::intake`] over the call: prompts over RTP, keys from RFC
//! 4733 telephone-events or SIP INFO, the store through [`PhoneDesk`], BYE at the end.
//!
//! Who gets what ([`admit`], pure): an INVITE from an address outside `[sip] trusted` 403;
//! to a user no dialplan lists 404; beyond the service's `[intake] max_calls` 486; an
//! offer without PCMA/PCMU 488. Only then is it answered (200 with our SDP answer).
//!
//! A new offer within the call (a re-INVITE or an UPDATE from the PBX, RFC 3264 §8:
//! hold, resume, a new media address) is answered by [`reoffer`] (pure): 200 with an
//! answer mirroring its direction, our o= version one higher, RTP sent to its address; or
//! 488 for what the call cannot follow (a change of codec, SRTP), the call going on as it
//! was. While the caller is on hold (our side may not send: their `sendonly`/`inactive`, or
//! RFC 2543's `c=0.0.0.0`) the prompt pauses and is said again from its start on resume;
//! the wait for a key stops, and on resume the pending question is asked again
//! ([`Event::Resumed`]). A hold longer than [`HOLD_LIMIT`] ends the call.

use super::handover::info_digit;
use super::{Trunk, lock};
use crate::call::intake::{self as machine, Action, Context, End, Event, Phase, Wait};
use crate::dialplan::{Service, Services};
use crate::intake::PhoneDesk;
use crate::lang::Lang;
use crate::media::sdp::{self, Direction};
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
/// How long a caller may stay on hold in one stretch; past it the call ends with BYE (as a
/// hang-up: stored only if the number was confirmed), so a PBX that never resumes does not
/// keep one of the service's `max_calls` for ever.
pub const HOLD_LIMIT: Duration = Duration::from_secs(300);

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
/// and the offer's direction mirrored (RFC 3264 §6.1). `version` is the o= line's session
/// version: `session` in the first answer, one more in each later one (RFC 3264 §8).
pub fn answer_sdp(
    ip: IpAddr,
    port: u16,
    session: u64,
    version: u64,
    media: &RemoteMedia,
) -> String {
    // Every field comes from the parsed offer or our socket, and there are no `a=crypto`
    // values, the one thing `build` can refuse.
    let local =
        sdp::Local { version, ..sdp::Local::answer(SocketAddr::new(ip, port), session, media) };
    sdp::build(&local).unwrap_or_default()
}

/// What a new offer within an answered intake call does to it (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq)]
pub enum Reoffer {
    /// 200 with our answer to this media ([`answer_sdp`]): RTP goes to its address, and
    /// only while our mirrored direction may send.
    Accept(RemoteMedia),
    /// 488 Not Acceptable Here, for this reason: the call goes on as it was (RFC 3261
    /// §14.2).
    Refuse(String),
}

/// The answer to a new `offer` in a call whose media is `current` (pure). The call keeps
/// its codec and payload types (the offer must still list them, in any order); the address,
/// port and direction follow the offer. RFC 2543's hold, `c=IN IP4 0.0.0.0`, is taken as
/// `inactive` at the old address.
pub fn reoffer(current: &RemoteMedia, offer: &str) -> Reoffer {
    let zero = offer.lines().any(|l| l.trim() == "c=IN IP4 0.0.0.0");
    let text = if zero {
        let ip = current.addr.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        offer.replace("c=IN IP4 0.0.0.0", &format!("c=IN {family} {ip}"))
    } else {
        offer.to_owned()
    };
    let remote = match sdp::parse_keeping(&text, Some((current.codec, current.pt))) {
        Ok(r) => r,
        Err(e) => return Reoffer::Refuse(e.to_string()),
    };
    if remote.secure {
        return Reoffer::Refuse("RTP/SAVP offered: intake calls are plain RTP".to_owned());
    }
    let mut media = remote.media;
    if (media.codec, media.pt) != (current.codec, current.pt) {
        return Reoffer::Refuse(format!(
            "{} ({}) is no longer offered: the call cannot change its codec",
            current.codec.name(),
            current.pt
        ));
    }
    if media.dtmf_pt.is_some_and(|pt| Some(pt) != current.dtmf_pt) {
        return Reoffer::Refuse(
            "telephone-event under another payload type: the call cannot change it".to_owned(),
        );
    }
    if zero {
        media.addr = current.addr;
        media.direction = Direction::Inactive;
    }
    Reoffer::Accept(media)
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
        if let Err(e) = run(&trunk, &desk, &service, &user, tx, &media, cancel).await {
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

/// Binds the intake call's RTP socket and starts its leg; returns the leg and its port.
async fn media_leg(trunk: &Trunk, media: &RemoteMedia) -> Result<(RtpLeg, u16), super::SipError> {
    let rtp = tokio::net::UdpSocket::bind(SocketAddr::new(trunk.local_ip(), 0))
        .await
        .map_err(super::SipError::Rtp)?;
    let port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
    let leg = RtpLeg::from_answer(rtp, media)
        .map_err(|e| super::SipError::Rtp(std::io::Error::other(e)))?;
    Ok((leg, port))
}

/// One answered intake call to `user`, from the 200 to the BYE.
async fn run(
    trunk: &Arc<Trunk>,
    desk: &Arc<IntakeDesk>,
    service: &Service,
    user: &str,
    mut tx: Transaction,
    media: &RemoteMedia,
    cancel: CancellationToken,
) -> Result<(), super::SipError> {
    let Some(intake) = service.intake.clone() else { return Ok(()) };
    let call_id = tx.original.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default();
    let (state_tx, states) = mpsc::unbounded_channel();
    lock(&trunk.routes).insert(call_id.clone(), state_tx);
    let mut guard = Guard { trunk: trunk.clone(), call_id, dialog: None };
    // The media first: a call we cannot carry audio for is refused (500), never answered.
    let (leg, port) = match media_leg(trunk, media).await {
        Ok(leg) => leg,
        Err(e) => {
            let _ = tx.reply(StatusCode::ServerInternalError).await;
            return Err(e);
        }
    };
    let session = trunk.next_call_seq();
    let answer = answer_sdp(trunk.local_ip(), port, session, session, media);
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
    let mut lang = intake.language_of(user);
    info!(service = %service.id, %lang, "intake call answered");
    let call = IntakeCall {
        leg,
        media: Mutex::new(InForce { offer: *media, version: session }),
        answering: (trunk.local_ip(), port, session),
        held: tokio::sync::watch::Sender::new(!sdp::may_send(media.direction.flipped())),
        held_out: std::sync::atomic::AtomicBool::new(false),
        states: tokio::sync::Mutex::new(states),
        prompts: desk.prompts.clone(),
        fallback: service.language.default,
        greeting: intake.greeting.name.clone(),
        typed: Mutex::default(),
    };
    let windows = crate::intake::servable_windows(service, desk.desk.now());
    let choices =
        if intake.choose_language { service.language.offered.clone() } else { Vec::new() };
    let cx =
        Context { numbers: &service.numbers, windows: &windows, language: lang, choices: &choices };
    let (mut phase, mut actions) = machine::start(cx, caller.as_deref());
    let mut gone = false;
    'call: loop {
        let mut next = None;
        for action in actions {
            match action {
                Action::Speak(chosen) => {
                    lang = chosen;
                    info!(service = %service.id, %lang, "intake call language chosen");
                }
                Action::Play(words) => {
                    if !gone && !call.play(&words, lang, &cancel).await {
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
                    let told = desk.desk.take(&service.id, &number, window, lang).await;
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
        if event == Event::Timeout {
            info!(service = %service.id, "intake call: no key in time, the question again");
        } else if event == Event::Resumed {
            info!(service = %service.id, "intake call back from hold: the question again");
        }
        let (p, a) = machine::step(phase, cx, event);
        phase = p;
        actions = a;
    }
    let end = match phase {
        Phase::Done(end) => end,
        Phase::Language { .. }
        | Phase::Offer { .. }
        | Phase::Entry { .. }
        | Phase::Confirm { .. }
        | Phase::Window { .. } => End::HungUp,
        Phase::Storing { .. } => End::StoreFailed,
    };
    crate::metrics::intake_call(&service.id, end.as_str());
    info!(service = %service.id, end = end.as_str(), "intake call over");
    // The caller is still there, or held too long, or the daemon is stopping (the trunk's
    // token): BYE.
    if !gone || cancel.is_cancelled() || call.held_out.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = tokio::time::timeout(BYE_WAIT, dialog.bye()).await;
    }
    Ok(())
}

/// The offer in force and our last answer's o= version.
#[derive(Debug, Clone, Copy)]
struct InForce {
    offer: RemoteMedia,
    version: u64,
}

/// The media and dialog of one answered intake call.
struct IntakeCall {
    leg: RtpLeg,
    /// The offer in force (replaced by each accepted new offer, in [`IntakeCall::heard`]).
    media: Mutex<InForce>,
    /// Our RTP address and o= session id, for answers.
    answering: (IpAddr, u16, u64),
    /// True while the caller is on hold: our answer is `recvonly` or `inactive`, so no RTP
    /// is sent (RFC 3264 §5.1). Sender: [`IntakeCall::heard`] on each accepted offer;
    /// receivers: [`IntakeCall::play`] (pauses the prompt) and [`IntakeCall::listen`] (stops
    /// the wait for a key). Lives as long as the call.
    held: tokio::sync::watch::Sender<bool>,
    /// Set when a hold outlasted [`HOLD_LIMIT`]: the call ends and we send the BYE.
    held_out: std::sync::atomic::AtomicBool,
    /// The dialog's state changes (sender: the trunk's state task; closes when the guard
    /// removes the route).
    states: tokio::sync::Mutex<mpsc::UnboundedReceiver<DialogState>>,
    prompts: Arc<Prompts>,
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
    /// A new offer put the caller on hold.
    Held,
    /// A new offer took the caller off hold.
    Resumed,
    Nothing,
}

impl IntakeCall {
    /// Answers an in-dialog request and says what it means to the call.
    async fn heard(&self, state: Option<DialogState>) -> Heard {
        match state {
            None | Some(DialogState::Terminated(_, _)) => Heard::Gone,
            Some(DialogState::Info(_, req, handle)) => {
                let _ = handle.reply(StatusCode::OK).await;
                info_digit(&req.body).map_or(Heard::Nothing, Heard::Digit)
            }
            // A re-INVITE or an UPDATE: a new offer, or none.
            Some(DialogState::Updated(_, req, handle)) => self.new_offer(&req, &handle).await,
            Some(
                DialogState::Notify(_, _, handle)
                | DialogState::Options(_, _, handle)
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

    /// Answers a re-INVITE or UPDATE ([`reoffer`]); a re-INVITE without an offer gets our
    /// current description as the offer (its answer, in the ACK, changes nothing here).
    async fn new_offer(
        &self,
        req: &sip::Request,
        handle: &rsipstack::dialog::dialog::TransactionHandle,
    ) -> Heard {
        let (ip, port, session) = self.answering;
        let ctype = || vec![Header::ContentType("application/sdp".into())];
        if req.body.is_empty() {
            if req.method == sip::Method::Invite {
                let now = *lock(&self.media);
                let sdp = answer_sdp(ip, port, session, now.version, &now.offer);
                let _ = handle.respond(StatusCode::OK, Some(ctype()), Some(sdp.into_bytes())).await;
            } else {
                let _ = handle.reply(StatusCode::OK).await;
            }
            return Heard::Nothing;
        }
        let offer = String::from_utf8_lossy(&req.body);
        let current = lock(&self.media).offer;
        let media = match reoffer(&current, &offer) {
            Reoffer::Accept(media) => media,
            Reoffer::Refuse(reason) => {
                info!(%reason, method = %req.method, "new offer within the intake call refused: 488");
                let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                return Heard::Nothing;
            }
        };
        let sdp = {
            let mut now = lock(&self.media);
            if media.addr != now.offer.addr {
                self.leg.retarget(media.addr);
            }
            now.version += 1;
            now.offer = media;
            answer_sdp(ip, port, session, now.version, &media)
        };
        let _ = handle.respond(StatusCode::OK, Some(ctype()), Some(sdp.into_bytes())).await;
        let held = !sdp::may_send(media.direction.flipped());
        let was = self.held.send_replace(held);
        info!(direction = %media.direction, held, method = %req.method, "new offer within the intake call answered");
        match (was, held) {
            (false, true) => Heard::Held,
            (true, false) => Heard::Resumed,
            (false, false) | (true, true) => Heard::Nothing,
        }
    }

    /// Plays `words` in `lang` (the options of the language menu each in its own); false
    /// when the caller hung up meanwhile, was held too long, or the call must stop. Keys
    /// pressed meanwhile are kept for the next listen (SIP INFO ones are pushed back in order
    /// through `typed`). A hold pauses the prompt being said; on resume it is said again from
    /// its start.
    async fn play(&self, words: &[machine::Word], lang: Lang, cancel: &CancellationToken) -> bool {
        let stems = machine::stems_in(words, &self.greeting);
        let stop = cancel.child_token();
        let mut held = self.held.subscribe();
        let playing = async {
            for (own, stem) in &stems {
                let found = self
                    .prompts
                    .get(own.unwrap_or(lang), stem)
                    .or_else(|| self.prompts.get(self.fallback, stem));
                let Some(prompt) = found else {
                    warn!(prompt = %stem, "no such prompt: skipped");
                    continue;
                };
                loop {
                    if *held.borrow_and_update() {
                        tokio::select! {
                            Ok(_) = held.wait_for(|h| !*h) => {}
                            () = tokio::time::sleep(HOLD_LIMIT) => return false,
                            () = stop.cancelled() => return true,
                        }
                    }
                    let interrupted = tokio::select! {
                        r = self.leg.play(prompt, &stop) => {
                            if let Err(e) = r {
                                warn!(error = %e, "prompt playback failed");
                            }
                            false
                        }
                        Ok(_) = held.wait_for(|h| *h) => true,
                    };
                    if !interrupted {
                        break;
                    }
                }
            }
            true
        };
        tokio::pin!(playing);
        let mut states = self.states.lock().await;
        loop {
            tokio::select! {
                done = &mut playing => {
                    if !done {
                        warn!(limit = ?HOLD_LIMIT, "intake call on hold too long: ended");
                        self.held_out.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    return done && !cancel.is_cancelled();
                }
                s = states.recv() => match self.heard(s).await {
                    Heard::Gone => {
                        stop.cancel();
                        return false;
                    }
                    Heard::Digit(d) => lock(&self.typed).push_back(d),
                    Heard::Held | Heard::Resumed | Heard::Nothing => {}
                },
                () = cancel.cancelled() => return false,
            }
        }
    }

    /// Waits for one key (RTP or SIP INFO) for the wait's time. On hold the wait stops (up
    /// to [`HOLD_LIMIT`], then the call ends as a hang-up); on resume the machine hears
    /// [`Event::Resumed`] and asks again.
    async fn listen(&self, wait: Wait, cancel: &CancellationToken) -> Event {
        if let Some(d) = self.typed_ahead() {
            return Event::Digit(d);
        }
        let limit = match wait {
            Wait::Answer => ANSWER_WAIT,
            Wait::NextDigit => DIGIT_WAIT,
        };
        let on_hold = *self.held.borrow();
        let deadline = tokio::time::sleep(if on_hold { HOLD_LIMIT } else { limit });
        tokio::pin!(deadline);
        let mut states = self.states.lock().await;
        loop {
            tokio::select! {
                Some(d) = self.leg.next_digit(limit) => return Event::Digit(d),
                s = states.recv() => match self.heard(s).await {
                    Heard::Gone => return Event::Hangup,
                    Heard::Digit(d) => return Event::Digit(d),
                    Heard::Held => deadline.as_mut().reset(tokio::time::Instant::now() + HOLD_LIMIT),
                    Heard::Resumed => return Event::Resumed,
                    Heard::Nothing => {}
                },
                () = &mut deadline => {
                    if *self.held.borrow() {
                        warn!(limit = ?HOLD_LIMIT, "intake call on hold too long: ended");
                        self.held_out.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Event::Hangup;
                    }
                    return Event::Timeout;
                }
                () = cancel.cancelled() => return Event::Hangup,
            }
        }
    }

    /// Whether a BYE arrived while the request was being stored (other in-dialog requests
    /// are answered; keys are kept).
    async fn hung_up_meanwhile(&self) -> bool {
        let mut states = self.states.lock().await;
        while let Ok(s) = states.try_recv() {
            match self.heard(Some(s)).await {
                Heard::Gone => return true,
                Heard::Digit(d) => lock(&self.typed).push_back(d),
                Heard::Held | Heard::Resumed | Heard::Nothing => {}
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
        let sdp = answer_sdp("10.0.0.9".parse().expect("valid"), 5000, 7, 7, &media);
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
            let sdp = answer_sdp("10.0.0.9".parse().expect("valid"), 5000, 7, 7, &media);
            assert!(sdp.contains(&format!("a={ours}\r\n")), "{sdp}");
            assert!(!sdp::may_send(media.direction.flipped()), "{theirs}");
        }
    }

    #[test]
    fn new_offers_hold_resume_and_move_the_media_but_keep_the_codec() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                     a=sendrecv\r\n";
        let current = sdp::parse_answer(offer).expect("valid");
        let accepted = |text: &str| match reoffer(&current, text) {
            Reoffer::Accept(m) => m,
            Reoffer::Refuse(why) => panic!("refused: {why}\n{text}"),
        };
        let ours = |m: &RemoteMedia| m.direction.flipped();
        // Hold (sendonly): we answer recvonly and may not send; inactive stays inactive.
        let held = accepted(&offer.replace("a=sendrecv", "a=sendonly"));
        assert_eq!((ours(&held), sdp::may_send(ours(&held))), (Direction::RecvOnly, false));
        let off = accepted(&offer.replace("a=sendrecv", "a=inactive"));
        assert_eq!((ours(&off), sdp::may_send(ours(&off))), (Direction::Inactive, false));
        // RFC 2543 hold: c=0.0.0.0 is inactive, the address kept.
        let zero = accepted(&offer.replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0"));
        assert_eq!((zero.addr, ours(&zero)), (current.addr, Direction::Inactive));
        // Resume at a new address and port: sent there.
        let moved = accepted(&offer.replace("10.0.0.5", "10.0.0.7").replace("4000", "4010"));
        assert_eq!(moved.addr, "10.0.0.7:4010".parse().expect("addr"));
        assert!(sdp::may_send(ours(&moved)));
        // The codec is kept whatever the order; a codec gone, SRTP, or a changed
        // telephone-event type are refused (488, the call unchanged).
        let reordered = accepted(&offer.replace("RTP/AVP 8 0 101", "RTP/AVP 0 8 101"));
        assert_eq!((reordered.codec, reordered.pt), (current.codec, current.pt));
        for text in [
            offer.replace("RTP/AVP 8 0 101", "RTP/AVP 0 101"),
            offer.replace("RTP/AVP", "RTP/SAVP"),
            offer.replace("101", "96"),
            offer.replace("m=audio 4000", "m=audio 0"),
            "garbage".to_owned(),
        ] {
            assert!(matches!(reoffer(&current, &text), Reoffer::Refuse(_)), "{text}");
        }
        // Each answer's o= version is one more (RFC 3264 §8).
        let first = answer_sdp("10.0.0.9".parse().expect("valid"), 5000, 7, 7, &current);
        let second = answer_sdp("10.0.0.9".parse().expect("valid"), 5000, 7, 8, &held);
        assert!(first.contains("o=callbackd 7 7 IN IP4 10.0.0.9\r\n"), "{first}");
        assert!(second.contains("o=callbackd 7 8 IN IP4 10.0.0.9\r\n"), "{second}");
        assert!(second.contains("a=recvonly\r\n"), "{second}");
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
