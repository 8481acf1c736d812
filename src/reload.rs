//! Live dialplan reload: on SIGHUP (`systemctl reload callbackd`) and when a file in the
//! dialplan directory changes (debounced, so an editor's save-by-rename is one reload).
//!
//! All dialplans are validated together; if any is broken, every old one stays in force and
//! each problem is logged with its location. If all are good they replace the old set in one
//! swap. Calls in progress keep the `Arc<Service>` they started with. Requests of a service
//! that disappeared are kept in the store and reported, never dropped.

use crate::dialplan::{self, Services};
use crate::metrics;
use crate::store::Store;
use notify::RecursiveMode;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long the directory must be quiet before a change is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Why a reload did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new set is in force.
    Ok {
        /// Services now configured.
        services: usize,
    },
    /// Something is broken; the old set stays.
    Kept {
        /// Problems found.
        errors: usize,
    },
}

/// Validates the directory and swaps the services if every dialplan is good.
pub async fn reload_once(
    dir: &std::path::Path,
    sounds: &std::path::Path,
    tx: &watch::Sender<Arc<Services>>,
    store: &Store,
) -> Reloaded {
    // A dialplan naming a prompt that cannot be played is as broken as a syntax error.
    let loaded = dialplan::load_dir(dir).and_then(|new| {
        let problems = crate::media::check_prompts(sounds, &new);
        if problems.is_empty() { Ok(new) } else { Err(problems) }
    });
    match loaded {
        Ok(new) => {
            let old = tx.borrow().clone();
            let removed: Vec<&String> = old.keys().filter(|id| !new.contains_key(*id)).collect();
            if !removed.is_empty() {
                if let Ok(depth) = store.depth().await {
                    for id in removed {
                        let live: i64 =
                            depth.iter().filter(|d| &d.service == id).map(|d| d.count).sum();
                        warn!(service = %id, live_requests = live, "service removed: its requests are kept, not dialled");
                    }
                }
            }
            let n = new.len();
            tx.send_replace(Arc::new(new));
            metrics::dialplan_reload("ok");
            info!(services = n, "dialplans reloaded");
            Reloaded::Ok { services: n }
        }
        Err(diags) => {
            for d in &diags {
                error!(problem = %d, "dialplan reload refused");
            }
            metrics::dialplan_reload("error");
            warn!(
                errors = diags.len(),
                "dialplans not reloaded: every previous dialplan stays in force"
            );
            Reloaded::Kept { errors: diags.len() }
        }
    }
}

/// What the directory holds: each `*.toml` file's name, size and modification time. Reading
/// the dialplans (a reload, an operator's `grep`) makes the watcher report events too; only a
/// changed fingerprint is a change. An error when the directory cannot be listed (removed,
/// no permission, the process out of file descriptors): that is not a change of the
/// dialplans, and [`run`] does not take it for one.
type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

fn fingerprint(dir: &std::path::Path) -> std::io::Result<Fingerprint> {
    let mut out: Fingerprint = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), m.len(), m.modified().ok()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reloads on SIGHUP and on changes in `dir` until `shutdown`.
pub async fn run(
    dir: PathBuf,
    sounds: PathBuf,
    tx: watch::Sender<Arc<Services>>,
    store: Store,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    // The watcher's thread sends here; this task receives. Closed when the debouncer drops.
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<()>();
    let mut debouncer = notify_debouncer_mini::new_debouncer(
        DEBOUNCE,
        move |res: notify_debouncer_mini::DebounceEventResult| {
            if res.is_ok() {
                let _ = changed_tx.send(());
            }
        },
    )
    .map_err(std::io::Error::other)?;
    if let Err(e) = debouncer.watcher().watch(&dir, RecursiveMode::NonRecursive) {
        warn!(error = %e, dir = %dir.display(), "cannot watch the dialplan directory; reload with SIGHUP");
    }
    // `None`: the directory could not be listed at the last look.
    let mut seen = fingerprint(&dir).ok();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = hup.recv() => {
                seen = fingerprint(&dir).ok();
                info!("SIGHUP: reloading dialplans");
                reload_once(&dir, &sounds, &tx, &store).await;
            }
            Some(()) = changed.recv() => {
                // Coalesce a burst of notifications into one reload.
                while changed.try_recv().is_ok() {}
                // A directory that cannot be listed is not reloaded from: the dialplans in
                // force stay, and the next event after it is readable again is compared
                // with what was last seen, so only a real change reloads.
                let now = match fingerprint(&dir) {
                    Ok(now) => now,
                    Err(e) => {
                        warn!(error = %e, dir = %dir.display(),
                            "cannot list the dialplan directory: dialplans stay as they are");
                        continue;
                    }
                };
                if seen.as_ref() == Some(&now) {
                    continue;
                }
                seen = Some(now);
                info!("dialplan directory changed: reloading");
                reload_once(&dir, &sounds, &tx, &store).await;
            }
        }
    }
}
