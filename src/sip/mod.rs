//! The SIP trunk to the call centre's PBX over rsipstack, and the [`SipDialer`] that runs
//! attempts through it with [`crate::call::runner`]. The only module that imports
//! `rsipstack`; it decides nothing about attempts (see [`crate::call`]).
//!
//! - [`legs`]: the runner's [`crate::call::runner::Legs`] port (INVITE/CANCEL, RTP prompts
//!   and keys, REFER, bridge, BYE);
//! - [`inbound`]: what unasked messages get (pure); [`handover`]: REFER and in-dialog
//!   message parsing; [`sdp`]: our offer.
//!
//! Tasks (under the trunk's [`TaskTracker`], all stopping when the token given to
//! [`Trunk::start`] is cancelled; [`Trunk::stopped`] waits for them):
//! - the endpoint task runs rsipstack's transport and transaction layer;
//! - the incoming task answers requests that are not ours (see [`inbound`]) and routes
//!   in-dialog BYE/INFO/NOTIFY to their dialogs (one short task per request);
//! - the state task forwards each dialog's state changes to the call that owns it
//!   (keyed by Call-ID), so a call learns of a remote BYE;
//! - the registration task, when `[sip] register` is set.

pub mod handover;
pub mod inbound;
pub mod intake;
pub mod legs;
pub mod sdp;
pub mod tls;
mod udp;

use crate::call::attempt::{Call, CallResult, Dialer};
use crate::call::runner::{self, Flow};
use crate::config::{self, NumberFormat, SipAuth};
use crate::media::Prompts;
use crate::number::E164;
use crate::policy::Outcome;
use legs::SipLegs;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{Dialog, DialogState, DialogStateSender};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, StatusCode, StatusCodeKind};
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
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Log directives for the SIP stack's targets, to add to the daemon's default filter.
/// rsipstack logs whole SIP messages at `info` and echoes the text of headers it could
/// not parse in `WARN` lines of its endpoint and transport layers; both may carry a
/// patient's number, so only its other warnings are kept.
pub const LOG_DIRECTIVES: &str =
    "rsipstack=warn,rsipstack::transaction::endpoint=error,rsipstack::transport=error";

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
    /// The SIP or RTP socket could not be bound.
    #[error("cannot bind a socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The RTP socket of a leg could not be bound.
    #[error("cannot bind an RTP socket: {0}")]
    Rtp(#[source] std::io::Error),
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
    /// Every task of the trunk; closed at start-up, waited for by [`Trunk::stopped`].
    tasks: TaskTracker,
    /// The TLS settings when the transport is TLS (for [`tls::check_pbx`]).
    tls: Option<rsipstack::transport::TlsConfig>,
    /// The intake calls' store and prompts, set once by [`Trunk::take_calls`]; until then
    /// (and without it) every INVITE outside our dialogs gets 403.
    intake: std::sync::OnceLock<Arc<intake::IntakeDesk>>,
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
    /// Binds the SIP socket and starts the trunk's tasks; they stop when `cancel` is
    /// cancelled (after the last call has ended: the calls need them).
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
        }
        let socket = udp::GuardedUdp::bind(cfg.bind).await.map_err(SipError::Bind)?;
        let udp =
            UdpConnection::from_socket(Arc::new(socket), None, Some(cancel.child_token())).await?;
        let local = udp.get_addr().get_socketaddr()?;
        transport_layer.add_transport(udp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport_layer)
            .with_user_agent(concat!("callbackd/", env!("CARGO_PKG_VERSION")))
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let tasks = TaskTracker::new();
        if let Some(tls_config) = &tls {
            // Say at start, in the log, why TLS to the PBX fails if it does.
            tasks.spawn(tls::check_pbx(cfg.pbx.clone(), tls_config.clone(), false));
        }
        if let (Some(expires), Some(cred)) = (cfg.register, credential.clone()) {
            let registrar = Trunk::uri(&format!("{}:{}", tls::scheme(cfg.transport), cfg.domain))?;
            tasks.spawn(register(
                endpoint.inner.clone(),
                registrar,
                cred,
                expires,
                cancel.child_token(),
            ));
        }
        let (state_tx, mut state_rx) = layer.new_dialog_state_channel();
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));

        let ep_cancel = cancel.child_token();
        tasks.spawn(async move {
            tokio::select! {
                _ = endpoint.serve() => {}
                _ = ep_cancel.cancelled() => {}
            }
            endpoint.shutdown();
        });
        let r = routes.clone();
        let state_cancel = cancel.child_token();
        tasks.spawn(async move {
            loop {
                let state = tokio::select! {
                    () = state_cancel.cancelled() => return,
                    state = state_rx.recv() => match state {
                        Some(state) => state,
                        None => return,
                    },
                };
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
        let this: Arc<std::sync::OnceLock<std::sync::Weak<Trunk>>> = Arc::default();
        tasks.spawn(serve_incoming(
            incoming,
            layer.clone(),
            tasks.clone(),
            this.clone(),
            cancel.child_token(),
        ));
        tasks.close();
        info!(%local, pbx = %cfg.pbx, transport = ?cfg.transport, "SIP trunk up");
        let trunk = Arc::new(Trunk {
            layer,
            state_tx,
            routes,
            cfg: cfg.clone(),
            credential,
            local,
            destination,
            call_seq: AtomicU64::new(0),
            tasks,
            tls,
            intake: std::sync::OnceLock::new(),
        });
        let _ = this.set(Arc::downgrade(&trunk));
        Ok(trunk)
    }

    /// Answers the PBX's INVITEs to `[intake]` users from now on (see [`intake`]): from
    /// `[sip] trusted`, or the PBX's own addresses when that is empty. Once per trunk.
    pub async fn take_calls(&self, desk: crate::intake::PhoneDesk, prompts: Arc<Prompts>) {
        let trusted = if self.cfg.trusted.is_empty() {
            match tokio::net::lookup_host(self.cfg.pbx.as_str()).await {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(e) => {
                    warn!(pbx = %self.cfg.pbx, error = %e, "cannot resolve the PBX: no intake call will be trusted");
                    Vec::new()
                }
            }
        } else {
            self.cfg.trusted.clone()
        };
        info!(trusted = ?trusted, "taking intake calls");
        let _ = self.intake.set(Arc::new(intake::IntakeDesk {
            desk,
            prompts,
            trusted,
            active: Mutex::default(),
        }));
    }

    /// Runs `f` on the trunk's tasks (they are waited for by [`Trunk::stopped`]).
    fn tasks_spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(f);
    }

    /// Resolves once every task of the trunk has ended, i.e. after the token given to
    /// [`Trunk::start`] was cancelled and they have stopped (promptly: no task waits on the
    /// PBX after cancellation).
    pub async fn stopped(&self) {
        self.tasks.wait().await;
    }

    fn next_call_seq(&self) -> u64 {
        self.call_seq.fetch_add(1, Ordering::Relaxed)
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

/// Answers requests that arrive outside our dialogs ([`inbound::outside_dialog`]) and
/// routes in-dialog ones.
async fn serve_incoming(
    mut incoming: TransactionReceiver,
    layer: Arc<DialogLayer>,
    tasks: TaskTracker,
    trunk: Arc<std::sync::OnceLock<std::sync::Weak<Trunk>>>,
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
            let stop = cancel.clone();
            tasks.spawn(async move {
                tokio::select! {
                    r = dialog.handle(&mut tx) => if let Err(e) = r {
                        debug!(error = %e, "in-dialog request failed");
                    },
                    () = stop.cancelled() => {}
                }
            });
            continue;
        }
        // An INVITE to an `[intake]` user: the intake call (when the daemon takes calls).
        let intake_on =
            trunk.get().and_then(std::sync::Weak::upgrade).filter(|t| t.intake.get().is_some());
        let mut tx = match (method, intake_on) {
            (sip::Method::Invite, Some(t)) => {
                // A retransmitted INVITE of an answered call is the stack's, not a new call.
                match intake::on_invite(&t, tx, cancel.child_token()).await {
                    None => continue,
                    Some(tx) => tx,
                }
            }
            _ => tx,
        };
        let (code, allow) = match inbound::outside_dialog(method) {
            inbound::Outside::Ignore => continue,
            inbound::Outside::Reply { code, allow } => (code, allow),
        };
        let status = StatusCode::from(code);
        debug!(%method, %status, "answering a request that is not ours");
        let headers = if allow {
            vec![Header::Allow(sip::headers::Allow::new(inbound::ALLOW))]
        } else {
            Vec::new()
        };
        let stop = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = tx.reply_with(status, headers, None) => {}
                () = stop.cancelled() => {}
            }
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
        let legs = SipLegs {
            trunk: self.trunk.clone(),
            prompts: self.prompts.clone().unwrap_or_default(),
        };
        let flow = match self.prompts {
            Some(_) => Flow::Converse,
            None => Flow::Hold(self.trunk.cfg.hangup_after_answer),
        };
        let trunk = self.trunk.clone();
        Box::pin(async move {
            let result = runner::run(&legs, &call, flow).await;
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
