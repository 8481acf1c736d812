//! `callbackd serve`: wires the store, the scheduler and the HTTP API together and runs
//! them until SIGTERM/SIGINT.
//!
//! Tasks and who owns what:
//! - the scheduler task owns the calls (a `JoinSet`) and is the only writer of outcomes;
//! - the SIP trunk's tasks (see [`crate::sip`]) carry the calls the scheduler places;
//! - the HTTP server task serves intake, status and `/metrics`;
//! - the reload task swaps the dialplans on SIGHUP or a change in the dialplan directory
//!   (it owns the `watch` sender; the scheduler and the handlers read);
//! - the watchdog task pings systemd while the scheduler loop turns;
//! - the retention task erases phone numbers of requests that ended long ago;
//! - the SMS sender task (with `[sms]` configured) delivers the outbox to the gateway;
//! - `run` owns the shutdown token: it cancels it on a signal, then waits for the tasks
//!   (the scheduler gives active calls their grace period) and closes the store.

use crate::call::attempt::Dialer;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::dialplan::Services;
use crate::http::{self, AppState};
use crate::reload;
use crate::scheduler::{Limits, Scheduler};
use crate::sip::{SipDialer, Trunk};
use crate::store::{Store, StoreError};
use jiff::SignedDuration;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Metrics could not be set up.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The API token file could not be read.
    #[error("cannot read the API token file {path}: {source}")]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The patient page's link key is missing or unusable.
    #[error(transparent)]
    LinkKey(#[from] crate::link::KeyError),
    /// The SIP trunk could not start.
    #[error(transparent)]
    Sip(#[from] crate::sip::SipError),
    /// The SMS gateway could not be set up (e.g. its secret is unreadable).
    #[error(transparent)]
    Sms(#[from] crate::notifier::gateway::GatewayError),
    /// A signal handler could not be installed, or a task failed.
    #[error("runtime failure: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the daemon until `shutdown` is cancelled (main cancels it on SIGTERM/SIGINT).
pub async fn run(
    cfg: Config,
    services: Services,
    prompts: Arc<crate::media::Prompts>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    // One rustls crypto provider for every TLS user (PostgreSQL, SIP, the SMS gateway).
    crate::sip::tls::install_crypto_provider();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let handle = crate::metrics::install()?;
    let store = Store::open(&cfg.database).await?;
    let depth = store.depth().await?;
    let live: i64 = depth.iter().map(|d| d.count).sum();
    let orphaned: Vec<&str> = depth
        .iter()
        .filter(|d| !services.contains_key(&d.service))
        .map(|d| d.service.as_str())
        .collect();
    if !orphaned.is_empty() {
        warn!(services = ?orphaned, "live requests of services without a dialplan are kept, not dialled");
    }
    info!(database = %redact(&cfg.database), live_requests = live, services = services.len(), "store open");
    // The shutdown tree. Every task of `serve` runs on `tasks`, with a token that is a
    // descendant of `last`; they stop in three layers, each after the one before it has
    // drained (cancelling a token also stops everything below it):
    //   last    the store watcher (readiness and intake follow the store's health until
    //           the store is closed);
    //   sip     the trunk's own tasks: they go only after the scheduler has drained its
    //           calls, which need the trunk;
    //   front   scheduler, HTTP, reload, SMS sender, retention, watchdog: cancelled when
    //           `shutdown` is (SIGTERM/SIGINT in main) or when the scheduler fails.
    let tasks = TaskTracker::new();
    let last = CancellationToken::new();
    let sip_token = last.child_token();
    let front = sip_token.child_token();
    tasks.spawn({
        let (shutdown, front) = (shutdown.clone(), front.clone());
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => front.cancel(),
                _ = front.cancelled() => {}
            }
        }
    });
    tasks.spawn(store.clone().watch(last.clone()));
    // The reloader owns the sender; handlers and the scheduler read.
    let (services_tx, services_rx) = watch::channel(Arc::new(services));
    let wake = Arc::new(Notify::new());

    let listener = tokio::net::TcpListener::bind(cfg.http.bind)
        .await
        .map_err(|source| DaemonError::Bind { addr: cfg.http.bind, source })?;
    let http_addr = listener.local_addr()?;
    // A stable line on stdout for operators and tests: where the API listens.
    println!("listening: http://{http_addr}");
    info!(%http_addr, "HTTP API listening");

    // The patient page (`[public]`): its key is read before anything listens, so a missing
    // or short key stops the start with a clear error.
    let links = match &cfg.public {
        None => None,
        Some(public) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
            let path = crate::link::key_path(public, dir.as_deref())?;
            let bytes = std::fs::read(&path)
                .map_err(|source| crate::link::KeyError::Read { path: path.clone(), source })?;
            let keys = crate::link::key_from(&path, &bytes)?;
            let listener = tokio::net::TcpListener::bind(public.bind)
                .await
                .map_err(|source| DaemonError::Bind { addr: public.bind, source })?;
            let addr = listener.local_addr()?;
            // A stable line on stdout for operators and tests: where the patient page listens.
            println!("listening: public http://{addr}");
            info!(%addr, url = %public.url, "patient page listening");
            Some((public.clone(), keys, listener))
        }
    };

    let credential = cfg.sip.auth.as_ref().map(crate::sip::read_credential).transpose()?;
    let token: Option<Arc<str>> = match &cfg.http.token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| DaemonError::Token { path: path.clone(), source })?;
            if text.trim().is_empty() {
                let source = std::io::Error::other("the file is empty");
                return Err(DaemonError::Token { path: path.clone(), source });
            }
            Some(Arc::from(text.trim()))
        }
    };
    let trunk = Trunk::start(&cfg.sip, credential, sip_token.clone()).await?;
    println!("listening: sip://{}", trunk.local_addr());
    let dialer: Option<Arc<dyn Dialer>> =
        Some(Arc::new(SipDialer::new(trunk.clone()).with_prompts(prompts.clone())));
    let limits = Limits {
        max_calls: cfg.sip.max_calls,
        calls_per_second: cfg.sip.calls_per_second,
        grace: cfg.shutdown_grace,
    };
    let scheduler = Scheduler::new(
        store.clone(),
        services_rx.clone(),
        dialer,
        clock.clone(),
        wake.clone(),
        limits,
        front.clone(),
    );
    let scheduler = if store.backend() == crate::store::Backend::Postgres {
        // Several servers may share this queue: claims are leases of this instance.
        let owner = crate::store::lease::instance_id();
        info!(instance = %owner, lease = ?cfg.lease, trunk = %cfg.sip.pbx, "claiming as one of several servers");
        scheduler.with_cluster(crate::scheduler::Cluster {
            owner,
            lease: cfg.lease,
            trunk: cfg.sip.pbx.clone(),
        })
    } else {
        scheduler
    };
    let recovered = scheduler.recovered_flag();
    let turns = scheduler.turns_counter();
    let scheduler = tasks.spawn(scheduler.run());
    let reloader = tasks.spawn(reload::run(
        cfg.dialplans.clone(),
        cfg.sounds.clone(),
        services_tx,
        store.clone(),
        front.clone(),
    ));
    let link_maker = links.as_ref().map(|(public, keys, _)| http::Links {
        public: Arc::new(public.clone()),
        keys: Arc::new(keys.clone()),
    });
    // The SMS sender, when `[sms]` configures a gateway.
    crate::notifier::start(
        cfg.sms.as_ref(),
        link_maker.clone(),
        store.clone(),
        services_rx.clone(),
        clock.clone(),
        front.clone(),
        &tasks,
    )?;
    // The intake calls (dialplans with `[intake]`) store through the same path as the API.
    trunk
        .take_calls(
            crate::intake::PhoneDesk {
                store: store.clone(),
                services: services_rx.clone(),
                clock: clock.clone(),
                wake: wake.clone(),
            },
            prompts,
        )
        .await;
    let state = AppState {
        store: store.clone(),
        services: services_rx,
        wake,
        clock: clock.clone(),
        metrics: handle,
        recovered,
        token,
        rates: Arc::default(),
        depth: Arc::default(),
        links: link_maker,
    };
    let limits = http::Limits::for_process(&cfg.http, cfg.sip.max_calls);
    let public_server = links.map(|(public, keys, listener)| {
        let st = http::public::PublicState::new(
            store.clone(),
            state.services.clone(),
            state.wake.clone(),
            clock.clone(),
            public,
            keys,
        );
        tasks.spawn(http::serve(listener, http::public::router(st), limits, front.clone()))
    });
    let server = tasks.spawn(http::serve(listener, http::router(state), limits, front.clone()));
    tasks.spawn(retention(store.clone(), clock, cfg.retention_days, front.clone()));
    tasks.spawn(fold_depth(store.clone(), front.clone()));
    // Store, dialplans, SIP and HTTP are up: tell systemd (a no-op outside systemd).
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tasks.spawn(watchdog(turns, front.clone()));
    tasks.close();

    // The scheduler returns once `front` is cancelled and its calls have drained (at most
    // `shutdown_grace`, then they are hung up).
    let scheduled = scheduler.await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    front.cancel();
    let served = server.await;
    if let Some(p) = public_server {
        if let Ok(Err(e)) = p.await {
            warn!(error = %e, "patient page server failed");
        }
    }
    if let Ok(Err(e)) = reloader.await {
        warn!(error = %e, "dialplan reloader failed");
    }
    // The calls are over: the trunk can go (its tasks end within a second or two).
    sip_token.cancel();
    if tokio::time::timeout(DRAIN, trunk.stopped()).await.is_err() {
        warn!("the SIP trunk's tasks did not stop in time");
    }
    last.cancel();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        warn!(tasks = tasks.len(), "tasks still running at exit");
    }
    store.close().await;
    match scheduled {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => error!(error = %e, "scheduler task failed"),
    }
    if let Ok(Err(e)) = served {
        return Err(e.into());
    }
    info!("stopped");
    Ok(())
}

/// How long each layer of the shutdown tree may take to stop once its token is cancelled
/// (the calls' own grace, `shutdown_grace`, comes before it).
const DRAIN: Duration = Duration::from_secs(5);

/// Pings the systemd watchdog while the scheduler loop keeps turning (it turns at least
/// every [`crate::scheduler::IDLE`]); a stuck scheduler stops the pings and systemd restarts
/// the service. Does nothing unless systemd set `WATCHDOG_USEC`.
async fn watchdog(turns: Arc<std::sync::atomic::AtomicU64>, shutdown: CancellationToken) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return;
    }
    let period = Duration::from_micros(usec / 2).max(Duration::from_secs(1));
    let stale_after = Duration::from_micros(usec);
    let mut last = turns.load(std::sync::atomic::Ordering::Relaxed);
    let mut quiet = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = turns.load(std::sync::atomic::Ordering::Relaxed);
        if now != last {
            last = now;
            quiet = Duration::ZERO;
        } else {
            quiet += period;
        }
        if quiet < stale_after {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        } else {
            warn!("scheduler loop stuck: withholding the watchdog ping");
        }
    }
}

/// Folds a backlog of queue depth rows once, in the background (see
/// [`Store::fold_depth_backlog`]); a failure leaves it to the depth reads' own folding.
async fn fold_depth(store: Store, shutdown: CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        folded = store.fold_depth_backlog() => match folded {
            Ok(0) => {}
            Ok(n) => info!(batches = n, "queue depth rows folded"),
            Err(e) => warn!(error = %e, "queue depth rows not folded; the depth reads fold them later"),
        },
    }
}

/// Erases phone numbers of requests that ended more than `days` ago, hourly.
async fn retention(store: Store, clock: Arc<dyn Clock>, days: u32, shutdown: CancellationToken) {
    loop {
        let cutoff = clock.now().checked_sub(SignedDuration::from_hours(24 * i64::from(days)));
        if let Ok(cutoff) = cutoff {
            match store.erase_numbers(cutoff).await {
                Ok(0) => {}
                Ok(n) => info!(requests = n, "erased phone numbers past retention"),
                Err(e) => warn!(error = %e, "retention sweep failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
