//! The SIP trunk to the call centre's PBX, and the [`SipDialer`] that places callbacks
//! through it. The only module that imports `rsipstack`.
//!
//! Tasks (all stop when the trunk's cancellation token is cancelled):
//! - the endpoint task runs rsipstack's transport and transaction layer;
//! - the incoming task answers requests that are not ours (403/405/481) and routes
//!   in-dialog BYE/INFO/NOTIFY to their dialogs;
//! - the state task forwards each dialog's state changes to the call that owns it
//!   (keyed by Call-ID), so a call learns of a remote BYE.

mod flow;
pub mod handover;
pub mod sdp;
pub mod tls;

use crate::call::attempt::{Call, CallResult, Dialer};
use crate::call::{Ending, outcome_of};
use crate::config::{self, NumberFormat, SipAuth};
use crate::dialplan::ConnectMode;
use crate::media::Prompts;
use crate::policy::Outcome;
use crate::policy::number::E164;
use rsipstack::dialog::DialogId;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{Dialog, DialogState, DialogStateSender};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::headers::{PAssertedIdentity, Privacy};
use rsipstack::sip::{Header, Method, StatusCode, StatusCodeKind};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use rsipstack::{EndpointBuilder, sip};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Why the trunk could not start.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// The SIP stack refused (bind failure, bad address).
    #[error("SIP stack: {0}")]
    Stack(Box<rsipstack::Error>),
    /// The password file could not be read.
    #[error("cannot read the SIP password file {path}: {source}")]
    Password {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PBX address or a URI could not be formed.
    #[error("invalid SIP address {0:?}")]
    Address(String),
    /// The TLS certificates or keys could not be used.
    #[error("SIP over TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// No SRTP keys could be made.
    #[error("SRTP keys: {0}")]
    Srtp(#[from] crate::media::srtp::SrtpError),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(Box::new(e))
    }
}

/// Per-call routes: Call-ID → the call's state channel. Inserted by a call before its
/// INVITE is sent, removed by the call when it ends; read by the state task.
type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<DialogState>>>>;

/// A running SIP trunk.
pub struct Trunk {
    layer: Arc<DialogLayer>,
    state_tx: DialogStateSender,
    routes: Routes,
    cfg: config::Sip,
    credential: Option<Credential>,
    /// Where our SIP socket is bound.
    local: SocketAddr,
    /// Where every request goes (the PBX or outbound proxy).
    destination: SipAddr,
    call_seq: AtomicU64,
    /// The TLS settings when the transport is TLS (for [`tls::check_pbx`]).
    tls: Option<rsipstack::transport::TlsConfig>,
}

impl std::fmt::Debug for Trunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trunk")
            .field("local", &self.local)
            .field("pbx", &self.cfg.pbx)
            .field("auth", &self.credential.as_ref().map(|c| c.username.as_str()))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the digest password from its file (a systemd credential, typically).
pub fn read_credential(auth: &SipAuth) -> Result<Credential, SipError> {
    let password = std::fs::read_to_string(&auth.password_file)
        .map_err(|source| SipError::Password { path: auth.password_file.clone(), source })?;
    Ok(Credential {
        username: auth.username.clone(),
        password: password.trim_end_matches(['\r', '\n']).to_owned(),
        realm: auth.realm.clone(),
        ..Default::default()
    })
}

impl Trunk {
    /// Binds the SIP socket and starts the trunk's tasks.
    pub async fn start(
        cfg: &config::Sip,
        credential: Option<Credential>,
        cancel: CancellationToken,
    ) -> Result<Arc<Trunk>, SipError> {
        let transport = match cfg.transport {
            config::Transport::Udp => sip::Transport::Udp,
            config::Transport::Tcp => sip::Transport::Tcp,
            config::Transport::Tls => sip::Transport::Tls,
        };
        let host_port = sip::HostWithPort::try_from(cfg.pbx.as_str())
            .map_err(|_| SipError::Address(cfg.pbx.clone()))?;
        let destination = SipAddr { r#type: Some(transport), addr: host_port };
        let mut transport_layer = TransportLayer::new(cancel.child_token());
        // The PBX is our outbound proxy: every request (INVITE, CANCEL, ACK, BYE) goes to it,
        // whatever the Request-URI's host.
        transport_layer.outbound = Some(destination.clone());
        let tls = match cfg.transport {
            config::Transport::Tls => Some(tls::client_config(&cfg.tls)?),
            config::Transport::Udp | config::Transport::Tcp => None,
        };
        if let Some(tls_config) = &tls {
            transport_layer.set_tls_config(tls_config.clone());
            tokio::spawn(tls::check_pbx(cfg.pbx.clone(), tls_config.clone(), false));
        }
        let udp =
            UdpConnection::create_connection(cfg.bind, None, Some(cancel.child_token())).await?;
        let local = udp.get_addr().get_socketaddr()?;
        transport_layer.add_transport(udp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport_layer)
            .with_user_agent(concat!("callbackd/", env!("CARGO_PKG_VERSION")))
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        if let (Some(expires), Some(cred)) = (cfg.register, credential.clone()) {
            let registrar = Trunk::uri(&format!("{}:{}", tls::scheme(cfg.transport), cfg.domain))?;
            tokio::spawn(register(
                endpoint.inner.clone(),
                registrar,
                cred,
                expires,
                cancel.clone(),
            ));
        }
        let (state_tx, mut state_rx) = layer.new_dialog_state_channel();
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));

        let ep_cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = endpoint.serve() => {}
                _ = ep_cancel.cancelled() => {}
            }
            endpoint.shutdown();
        });
        let r = routes.clone();
        tokio::spawn(async move {
            while let Some(state) = state_rx.recv().await {
                let call_id = match &state {
                    DialogState::Calling(id)
                    | DialogState::Trying(id)
                    | DialogState::Early(id, _)
                    | DialogState::WaitAck(id, _)
                    | DialogState::Confirmed(id, _)
                    | DialogState::Updated(id, _, _)
                    | DialogState::Publish(id, _, _)
                    | DialogState::Notify(id, _, _)
                    | DialogState::Refer(id, _, _)
                    | DialogState::Message(id, _, _)
                    | DialogState::Info(id, _, _)
                    | DialogState::Options(id, _, _)
                    | DialogState::Terminated(id, _) => id.call_id.clone(),
                };
                if let Some(tx) = lock(&r).get(&call_id) {
                    let _ = tx.send(state);
                }
            }
        });
        tokio::spawn(serve_incoming(incoming, layer.clone(), cancel.clone()));
        info!(%local, pbx = %cfg.pbx, transport = ?cfg.transport, "SIP trunk up");
        Ok(Arc::new(Trunk {
            layer,
            state_tx,
            routes,
            cfg: cfg.clone(),
            credential,
            local,
            destination,
            call_seq: AtomicU64::new(0),
            tls,
        }))
    }

    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Dialogs the stack still holds (for leak checks).
    pub fn dialogs(&self) -> usize {
        self.layer.len()
    }

    /// The Request-URI user part for a patient's number.
    fn dial_string(&self, number: &E164) -> String {
        let n = number.as_str();
        let body = match self.cfg.number_format {
            NumberFormat::E164 => n.to_owned(),
            NumberFormat::National => match n.strip_prefix("+358") {
                Some(rest) => format!("0{rest}"),
                None => n.to_owned(),
            },
        };
        format!("{}{body}", self.cfg.dial_prefix)
    }

    fn uri(s: &str) -> Result<sip::Uri, SipError> {
        sip::Uri::try_from(s).map_err(|_| SipError::Address(s.to_owned()))
    }

    /// The local IP to put in Contact and SDP.
    fn local_ip(&self) -> IpAddr {
        self.local.ip()
    }
}

/// Keeps callbackd registered with the PBX: REGISTER (answering the digest challenge) for
/// `expires`, renewed at half the granted time; failures are retried with backoff.
async fn register(
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    registrar: sip::Uri,
    credential: Credential,
    expires: Duration,
    cancel: CancellationToken,
) {
    let mut reg = rsipstack::dialog::registration::Registration::new(endpoint, Some(credential));
    let asked = u32::try_from(expires.as_secs()).unwrap_or(u32::MAX);
    let mut backoff = Duration::from_secs(2);
    loop {
        let wait = match reg.register(registrar.clone(), Some(asked)).await {
            Ok(resp) if resp.status_code.kind() == StatusCodeKind::Successful => {
                let granted = reg.expires().max(20);
                info!(registrar = %registrar, expires = granted, "registered with the PBX");
                backoff = Duration::from_secs(2);
                Duration::from_secs(u64::from(granted) / 2)
            }
            Ok(resp) => {
                warn!(registrar = %registrar, sip = resp.status_code.code(), "registration refused");
                backoff = (backoff * 2).min(Duration::from_secs(300));
                backoff
            }
            Err(e) => {
                warn!(registrar = %registrar, error = %e, "registration failed");
                backoff = (backoff * 2).min(Duration::from_secs(300));
                backoff
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Answers requests that arrive outside our dialogs and routes in-dialog ones.
async fn serve_incoming(
    mut incoming: TransactionReceiver,
    layer: Arc<DialogLayer>,
    cancel: CancellationToken,
) {
    loop {
        let mut tx = tokio::select! {
            _ = cancel.cancelled() => return,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => return,
            },
        };
        let method = tx.original.method;
        if let Some(Dialog::Invite(mut dialog)) = layer.match_dialog(&tx) {
            tokio::spawn(async move {
                if let Err(e) = dialog.handle(&mut tx).await {
                    debug!(error = %e, "in-dialog request failed");
                }
            });
            continue;
        }
        let status = match method {
            // We place calls; we do not take them.
            Method::Invite => StatusCode::Forbidden,
            Method::Options => StatusCode::OK,
            Method::Ack => continue,
            Method::Bye
            | Method::Cancel
            | Method::Info
            | Method::Notify
            | Method::Update
            | Method::PRack => StatusCode::CallTransactionDoesNotExist,
            _ => StatusCode::MethodNotAllowed,
        };
        debug!(%method, %status, "answering a request that is not ours");
        tokio::spawn(async move {
            let _ = tx.reply(status).await;
        });
    }
}

/// Places callbacks through a [`Trunk`].
#[derive(Debug, Clone)]
pub struct SipDialer {
    trunk: Arc<Trunk>,
    /// The prompts; without them an answered call is held for `hangup_after_answer` and
    /// ended (no greeting, no hand-over).
    prompts: Option<Arc<Prompts>>,
}

impl SipDialer {
    /// A dialer over `trunk`.
    pub fn new(trunk: Arc<Trunk>) -> Self {
        SipDialer { trunk, prompts: None }
    }

    /// Greets, confirms and hands over answered calls with these prompts (see
    /// [`crate::call::machine`]).
    pub fn with_prompts(mut self, prompts: Arc<Prompts>) -> Self {
        self.prompts = Some(prompts);
        self
    }
}

impl Dialer for SipDialer {
    fn dial(&self, call: Call) -> Pin<Box<dyn Future<Output = CallResult> + Send + 'static>> {
        let trunk = self.trunk.clone();
        let prompts = self.prompts.clone();
        Box::pin(async move {
            let result = match place(&trunk, prompts.as_ref(), &call).await {
                Ok(result) => result,
                Err(e) => {
                    warn!(error = %e, "call could not be placed");
                    CallResult { outcome: Outcome::NetworkFailure, sip_code: None }
                }
            };
            // No answer at all over TLS: say why, if the handshake is the reason.
            if let (Outcome::NetworkFailure, None, Some(cfg)) =
                (result.outcome, result.sip_code, &trunk.tls)
            {
                tls::check_pbx(trunk.cfg.pbx.clone(), cfg.clone(), true).await;
            }
            result
        })
    }
}

/// Removes the call's route and its dialogs however the call ends.
pub(crate) struct CallGuard {
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

/// Who a leg is from and to.
#[derive(Debug, Clone)]
pub(crate) struct LegSpec {
    /// Request-URI and To.
    pub(crate) to: String,
    /// The station's E.164 number for From and P-Asserted-Identity.
    pub(crate) from_number: String,
    /// The display name.
    pub(crate) from_name: String,
    /// Ring timeout before CANCEL.
    pub(crate) ring_timeout: Duration,
    /// Part of the Call-ID, for logs.
    pub(crate) tag: String,
}

/// An answered leg: its dialog, its state channel, its RTP socket and the 2xx.
pub(crate) struct Answered {
    pub(crate) dialog: InviteDialog,
    pub(crate) response: sip::Response,
    /// Sender: the trunk's state task (routes by Call-ID). Closes when `guard` drops.
    pub(crate) states: mpsc::UnboundedReceiver<DialogState>,
    /// Held only to be dropped with the leg: removes the route and the dialogs.
    pub(crate) _guard: CallGuard,
    /// The RTP socket our offer named; taken when the media leg starts.
    pub(crate) rtp: Option<tokio::net::UdpSocket>,
    /// The SDES keys our offer carried (`[sip] srtp` not off), for the media leg.
    pub(crate) srtp: Option<crate::media::sdes::Offer>,
}

/// How a leg's INVITE ended.
pub(crate) enum LegEnd {
    /// The far end answered.
    Answered(Box<Answered>),
    /// It did not; the attempt's result.
    Ended(CallResult),
}

/// Places one INVITE (with our SDP offer) and follows it to a final response, cancelling it
/// after the ring timeout or when `hangup` fires.
pub(crate) async fn dial_leg(
    trunk: &Arc<Trunk>,
    spec: &LegSpec,
    hangup: &CancellationToken,
) -> Result<LegEnd, SipError> {
    let seq = trunk.call_seq.fetch_add(1, Ordering::Relaxed);
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
        .map_err(|e| SipError::from(rsipstack::Error::Error(e.to_string())))?;
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
    let mut cancelled_by: Option<Ending> = None;
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
                let result = match (resp, cancelled_by) {
                    (Some(r), None) if r.status_code.kind() == StatusCodeKind::Successful => {
                        let role = rsipstack::transaction::key::TransactionRole::Client;
                        if let Ok(id) = DialogId::try_from((&r, role)) {
                            guard.ids.push(id);
                        }
                        info!(sip = r.status_code.code(), "answered");
                        let answered = Answered { dialog, response: r, states, _guard: guard, rtp: Some(rtp), srtp };
                        return Ok(LegEnd::Answered(Box::new(answered)));
                    }
                    // The stack reports its own timer B as a 408 without a To tag: no
                    // response arrived at all.
                    (Some(r), None) if is_local_timeout(&r) => {
                        CallResult { outcome: outcome_of(Ending::NoResponse), sip_code: None }
                    }
                    (Some(r), None) => {
                        let code = r.status_code.code();
                        CallResult { outcome: outcome_of(Ending::Final(code)), sip_code: Some(code) }
                    }
                    (None, None) => CallResult { outcome: outcome_of(Ending::NoResponse), sip_code: None },
                    // We cancelled: the stack ACKs and BYEs a 2xx that crossed our CANCEL.
                    (resp, Some(ending)) => {
                        let code = resp.as_ref().filter(|r| !is_local_timeout(r)).map(|r| r.status_code.code());
                        let outcome = match ending {
                            Ending::RingTimeout if heard => outcome_of(ending),
                            Ending::RingTimeout => outcome_of(Ending::NoResponse),
                            Ending::Final(_) | Ending::NoResponse => Outcome::Interrupted,
                        };
                        CallResult { outcome, sip_code: code }
                    }
                };
                return Ok(LegEnd::Ended(result));
            }
            Some(state) = states.recv() => {
                if matches!(state, DialogState::Trying(_) | DialogState::Early(_, _)) {
                    heard = true;
                }
            }
            _ = &mut ring, if cancelled_by.is_none() => {
                info!("ring timeout: cancelling");
                cancelled_by = Some(Ending::RingTimeout);
                if let Err(e) = dialog.cancel().await {
                    debug!(error = %e, "CANCEL failed");
                }
            }
            _ = hangup.cancelled(), if cancelled_by.is_none() => {
                cancelled_by = Some(Ending::NoResponse);
                let _ = dialog.cancel().await;
            }
        }
    }
}

/// The patient's leg of a callback.
fn patient_leg(trunk: &Trunk, call: &Call) -> LegSpec {
    let user_phone = if trunk.cfg.user_phone { ";user=phone" } else { "" };
    LegSpec {
        to: format!(
            "{}:{}@{}{user_phone}",
            tls::scheme(trunk.cfg.transport),
            trunk.dial_string(&call.number),
            trunk.cfg.domain
        ),
        from_number: call.service.caller_id.number.as_str().to_owned(),
        from_name: call.service.caller_id.name.clone(),
        ring_timeout: call.service.attempts.ring_timeout.unsigned_abs(),
        tag: format!("{}-{}", call.request_id, call.attempt_id),
    }
}

async fn place(
    trunk: &Arc<Trunk>,
    prompts: Option<&Arc<Prompts>>,
    call: &Call,
) -> Result<CallResult, SipError> {
    if let (Some(prompts), ConnectMode::AgentFirst) = (prompts, call.service.connect.mode) {
        return Ok(flow::agent_first(trunk, prompts, call).await);
    }
    let spec = patient_leg(trunk, call);
    match dial_leg(trunk, &spec, &call.hangup).await? {
        LegEnd::Ended(result) => Ok(result),
        LegEnd::Answered(a) => {
            let mut a = *a;
            let code = Some(a.response.status_code.code());
            let outcome = match prompts {
                Some(prompts) => flow::converse(trunk, prompts, call, a).await,
                None => {
                    hold_then_bye(trunk, call, &a.dialog, &mut a.states).await;
                    Outcome::Connected
                }
            };
            Ok(CallResult { outcome, sip_code: code })
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

/// After an answer: hold the call for the configured time, then BYE; a remote BYE or a
/// shutdown ends it earlier.
async fn hold_then_bye(
    trunk: &Trunk,
    call: &Call,
    dialog: &InviteDialog,
    states: &mut mpsc::UnboundedReceiver<DialogState>,
) {
    let hold = tokio::time::sleep(trunk.cfg.hangup_after_answer);
    tokio::pin!(hold);
    loop {
        tokio::select! {
            _ = &mut hold => break,
            _ = call.hangup.cancelled() => break,
            state = states.recv() => match state {
                Some(DialogState::Terminated(_, reason)) => {
                    info!(?reason, "the other side hung up");
                    return;
                }
                Some(_) => continue,
                None => break,
            },
        }
    }
    match tokio::time::timeout(Duration::from_secs(35), dialog.bye()).await {
        Ok(Ok(())) => info!("hung up"),
        Ok(Err(e)) => warn!(error = %e, "BYE failed"),
        Err(_) => warn!("BYE timed out"),
    }
}
