//! Whether the store can keep its promise: a request is acknowledged only once it is durable
//! in the database the daemon will read at its next start.
//!
//! A watcher ([`Store::watch`]) looks once a second: for SQLite it compares the identity
//! (device and inode) of the database file and of its directory with the ones it opened,
//! then it commits a one-row probe write. Writes ([`Store`]'s write transactions) and
//! acknowledgements ([`Store::confirm`]) are refused while the store is not
//! [`Status::Writable`]; `/readyz` follows the same status.
//!
//! ```text
//!                 probe commits
//!        ┌──────────────────────────────────────┐
//!        ▼                                      │
//!    Writable ──probe fails (full, read-only,──► Refusing(fault) ◄─┐
//!        │       unreachable)                    │  probe fails     │
//!        │                                       └──────────────────┘
//!        ├──file or directory gone──► Refusing(Vanished) ──rescued──► (probe)
//!        │                              (copied back from the still-open file)
//!        └──another file at the path──► Refusing(Replaced)   (until a restart)
//! ```
//!
//! A vanished SQLite file is still open: the rescue holds the write lock on it, copies it
//! back to its path with `VACUUM INTO` and then recycles every pooled connection, so nothing
//! acknowledged before the removal is lost and nothing is acknowledged into the removed file.

use super::{Backend, Store, StoreError, Tx};
use sqlx::Connection;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// How often the watcher looks.
pub const EVERY: Duration = Duration::from_secs(1);

/// How long one probe may take before it counts as failed.
const PROBE_LIMIT: Duration = Duration::from_secs(8);

/// Why the store refuses writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The file system or the database server is full.
    #[error("the database's storage is full")]
    Full,
    /// The database (file, directory or server) only allows reads.
    #[error("the database is read-only")]
    ReadOnly,
    /// A write failed for another reason.
    #[error("writes to the database fail")]
    WriteFailed,
    /// The database server does not answer.
    #[error("the database does not answer")]
    Unreachable,
    /// The SQLite file or its directory was removed while open.
    #[error("the database file or its directory was removed")]
    Vanished,
    /// Another file now sits at the SQLite path; only a restart opens it.
    #[error("the database file was replaced by another file; restart to use it")]
    Replaced,
}

impl Fault {
    /// A short stable name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Full => "full",
            Fault::ReadOnly => "read_only",
            Fault::WriteFailed => "write_failed",
            Fault::Unreachable => "unreachable",
            Fault::Vanished => "vanished",
            Fault::Replaced => "replaced",
        }
    }
}

/// Whether the store takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The last look found the file in place and a probe write committed.
    Writable,
    /// Writes and acknowledgements are refused.
    Refusing(Fault),
}

/// A file's identity: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId { dev: m.dev(), ino: m.ino() })
    }
}

/// The SQLite file and the directory holding it, as opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The database file.
    pub file: FileId,
    /// Its directory.
    pub dir: FileId,
}

/// What one look at the path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The same file in the same directory.
    Same,
    /// No file (or no directory) at the path.
    Missing,
    /// A different file or directory.
    Other,
}

/// Compares what is at the path now with what was opened.
pub fn compare(opened: Identity, file: Option<FileId>, dir: Option<FileId>) -> Seen {
    match (file, dir) {
        (None, _) | (_, None) => Seen::Missing,
        (Some(f), Some(d)) if f == opened.file && d == opened.dir => Seen::Same,
        (Some(_), Some(_)) => Seen::Other,
    }
}

/// What a probe write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It committed.
    Committed,
    /// It failed for this reason.
    Failed(Fault),
    /// It waited on another writer's lock: says nothing either way.
    Busy,
}

/// The next status after a look: `seen` is the path check (always [`Seen::Same`] for
/// PostgreSQL), `probe` the probe write (`None` when none was made).
pub fn next(now: Status, seen: Seen, probe: Option<Probe>) -> Status {
    match (now, seen) {
        // A replaced file is never written to again by this process.
        (Status::Refusing(Fault::Replaced), _) | (_, Seen::Other) => {
            Status::Refusing(Fault::Replaced)
        }
        (_, Seen::Missing) => Status::Refusing(Fault::Vanished),
        (_, Seen::Same) => match probe {
            Some(Probe::Committed) => Status::Writable,
            Some(Probe::Failed(fault)) => Status::Refusing(fault),
            Some(Probe::Busy) | None => now,
        },
    }
}

/// Sorts a failed write into a [`Fault`]; `None` for lock waits (SQLite busy/locked).
pub fn classify(e: &sqlx::Error) -> Option<Fault> {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            // SQLite: extended result codes, the primary code in the low byte.
            // PostgreSQL: SQLSTATE.
            match code.parse::<i64>().ok().map(|c| c & 0xff) {
                Some(5 | 6) => None,
                Some(8) => Some(Fault::ReadOnly),
                Some(13) => Some(Fault::Full),
                Some(_) => Some(Fault::WriteFailed),
                None => match code.as_ref() {
                    "53100" => Some(Fault::Full),
                    "25006" => Some(Fault::ReadOnly),
                    c if c.starts_with("08") || c.starts_with("57") => Some(Fault::Unreachable),
                    _ => Some(Fault::WriteFailed),
                },
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Some(Fault::Unreachable),
        _ => Some(Fault::WriteFailed),
    }
}

/// The SQLite file the store opened.
#[derive(Debug)]
pub(crate) struct SqliteFile {
    /// As configured (absolute or relative to the working directory).
    pub path: PathBuf,
    /// What was opened; changes only after a rescue.
    pub opened: Mutex<Identity>,
}

impl SqliteFile {
    /// Looks at the path now.
    pub fn identity(path: &Path) -> (Option<FileId>, Option<FileId>) {
        (FileId::of(path), FileId::of(&dir_of(path)))
    }

    fn seen(&self) -> Seen {
        let (file, dir) = SqliteFile::identity(&self.path);
        compare(*self.opened.lock().unwrap_or_else(|p| p.into_inner()), file, dir)
    }
}

/// The directory of a SQLite path (`.` for a bare file name).
pub(crate) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The shared health state of one [`Store`] and its clones.
#[derive(Debug)]
pub(crate) struct Health {
    status: Mutex<Status>,
    /// Mirrors `status == Writable`, read on every write.
    writable: AtomicBool,
    /// Connections opened before this instant are closed instead of being used again.
    reset: Mutex<Instant>,
    /// SQLite only.
    pub file: Option<SqliteFile>,
}

impl Health {
    pub fn new(file: Option<SqliteFile>) -> Health {
        Health {
            status: Mutex::new(Status::Writable),
            writable: AtomicBool::new(true),
            reset: Mutex::new(Instant::now()),
            file,
        }
    }

    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the status; returns the previous one. Logs and updates the metric on a change.
    pub fn set(&self, to: Status) -> Status {
        let from = {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            let from = *s;
            *s = to;
            self.writable.store(to == Status::Writable, Ordering::Release);
            from
        };
        if from != to {
            crate::metrics::store_writable(to == Status::Writable);
            match to {
                Status::Writable => info!("store writable again: taking requests"),
                Status::Refusing(fault) => error!(
                    fault = fault.as_str(),
                    "store cannot keep its promise: {fault}; refusing requests until it can"
                ),
            }
        }
        from
    }

    /// Marks every open connection for closing at its next acquire or release.
    pub fn recycle(&self) {
        *self.reset.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// True when a connection of this age was opened before the last [`Health::recycle`].
    pub fn is_stale(&self, age: Duration) -> bool {
        let reset = *self.reset.lock().unwrap_or_else(|p| p.into_inner());
        Instant::now().checked_sub(age).is_some_and(|opened| opened <= reset)
    }

    /// Ok while writable; for SQLite also checks that the file is still the one opened
    /// (two `stat` calls), and stops writes at once if not.
    pub fn check(&self) -> Result<(), StoreError> {
        if !self.writable.load(Ordering::Acquire) {
            return match self.status() {
                Status::Refusing(fault) => Err(StoreError::Refusing(fault)),
                Status::Writable => Ok(()),
            };
        }
        if let Some(file) = &self.file {
            let seen = file.seen();
            if seen != Seen::Same {
                let to = next(self.status(), seen, None);
                self.set(to);
                if let Status::Refusing(fault) = to {
                    return Err(StoreError::Refusing(fault));
                }
            }
        }
        Ok(())
    }
}

impl Store {
    /// Whether the store takes writes, as of the last look.
    pub fn status(&self) -> Status {
        self.health.status()
    }

    /// Call after a write and before acknowledging it: Err when the store cannot keep the
    /// write (refusing, or the SQLite file is no longer the one written to).
    pub fn confirm(&self) -> Result<(), StoreError> {
        self.health.check()
    }

    /// Watches the store until `shutdown`: once a second checks the file identity, rescues
    /// a vanished SQLite file, and commits a probe write. Logs one line per change of
    /// [`Status`] and keeps the `callbackd_store_writable` gauge.
    pub async fn watch(self, shutdown: CancellationToken) {
        crate::metrics::store_writable(self.status() == Status::Writable);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            self.look().await;
        }
    }

    /// One look: the file check, a rescue if the file vanished, then a probe write.
    pub async fn look(&self) -> Status {
        let seen = self.health.file.as_ref().map_or(Seen::Same, SqliteFile::seen);
        let now = self.health.status();
        if now == Status::Refusing(Fault::Replaced) || seen != Seen::Same {
            let to = next(now, seen, None);
            self.health.set(to);
            if to == Status::Refusing(Fault::Vanished) {
                match self.rescue().await {
                    Ok(()) => {}
                    Err(e) => {
                        // The refusal was logged once; this repeats every second.
                        tracing::debug!(error = %e, "database file not written back yet");
                        return to;
                    }
                }
            } else {
                return to;
            }
        }
        let probe = self.probe().await;
        let from = self.health.status();
        let to = next(from, Seen::Same, Some(probe));
        if let (Probe::Failed(Fault::ReadOnly), Some(file)) = (probe, &self.health.file) {
            align_side_files(&file.path);
        }
        if matches!(probe, Probe::Failed(_)) || (to == Status::Writable && from != to) {
            // Reopen connections: a file made writable again, or a server back, is only
            // seen by a new connection; one opened during the fault may still be stuck in
            // it (e.g. opened read-only). SQLite shares one `-shm` mapping among all the
            // connections of a process: it is opened anew only once they are all closed.
            self.health.recycle();
            for _ in 0..8 {
                let Some(idle) = self.pool.try_acquire() else { break };
                let _ = idle.detach().close().await;
            }
        }
        self.health.set(to);
        to
    }

    /// Commits a one-row write with the same durability as an acknowledged request.
    pub(crate) async fn probe(&self) -> Probe {
        let write = async {
            if self.backend == Backend::Sqlite {
                sqlx::query(PROBE_TABLE).execute(&self.pool).await?;
            }
            let mut tx: Tx<'static> = self.begin().await?;
            sqlx::query(
                "INSERT INTO store_probe (id, at) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .bind(super::ms(crate::clock::Clock::now(&crate::clock::SystemClock)))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(PROBE_LIMIT, write).await {
            Ok(Ok(())) => Probe::Committed,
            Ok(Err(e)) => match classify(&e) {
                Some(fault) => {
                    tracing::debug!(error = %e, "store probe failed");
                    Probe::Failed(fault)
                }
                None => Probe::Busy,
            },
            Err(_) => Probe::Failed(Fault::Unreachable),
        }
    }

    /// Writes a vanished SQLite file back to its path from a connection that still has it
    /// open. The write lock is held from before the copy until every writer queued behind
    /// it has given up, so no commit lands in the removed file after the copy.
    async fn rescue(&self) -> Result<(), StoreError> {
        let Some(file) = &self.health.file else { return Ok(()) };
        let path = file.path.clone();
        let dir = dir_of(&path);
        // Two connections that still have the removed file open: one holds the write lock,
        // the other copies. Only idle ones: a new connection cannot open the removed file.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut held = Vec::new();
        while held.len() < 2 {
            match self.pool.try_acquire() {
                Some(c) => held.push(c),
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                None => return Err(StoreError::Refusing(Fault::Vanished)),
            }
        }
        let (Some(mut copier), Some(mut locker)) = (held.pop(), held.pop()) else {
            return Err(StoreError::Refusing(Fault::Vanished));
        };
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *locker).await?;
        let copied = async {
            // A recreated directory is private, like systemd's StateDirectoryMode=0700.
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(&dir)
            .map_err(sqlx::Error::Io)?;
            let tmp = dir.join(format!(
                ".{}.rescue",
                path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
            let _ = std::fs::remove_file(&tmp);
            let target = tmp.to_string_lossy().replace('\'', "''");
            sqlx::query(&format!("VACUUM INTO '{target}'")).execute(&mut *copier).await?;
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(sqlx::Error::Io)?;
            // A -wal or -shm left at the path belongs to the removed file: never let it
            // be replayed into the copy.
            for suffix in ["-wal", "-shm"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                let _ = std::fs::remove_file(&side);
            }
            std::fs::rename(&tmp, &path).map_err(sqlx::Error::Io)?;
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(sqlx::Error::Io)?;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        // Writers already waiting on the lock time out (busy_timeout) against the removed
        // file rather than commit into it once the lock is released.
        tokio::time::sleep(super::BUSY_TIMEOUT + Duration::from_millis(500)).await;
        let identity = SqliteFile::identity(&path);
        if let (Some(f), Some(d)) = identity {
            *file.opened.lock().unwrap_or_else(|p| p.into_inner()) = Identity { file: f, dir: d };
        }
        self.health.recycle();
        let _ = sqlx::query("ROLLBACK").execute(&mut *locker).await;
        let _ = locker.detach().close().await;
        let _ = copier.detach().close().await;
        copied?;
        super::write_marker(&path);
        error!(
            path = %path.display(),
            "database file was removed while open; written back to its path from the open file"
        );
        Ok(())
    }
}

/// SQLite creates `-wal` and `-shm` with the database file's permissions, and never
/// changes them: a database made writable again would stay read-only through them. Gives
/// them the database file's permissions (best effort: only the owner may).
fn align_side_files(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(db) = std::fs::metadata(path) else { return };
    let mode = db.permissions().mode() & 0o777;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if let Ok(m) = std::fs::metadata(&side) {
            if m.permissions().mode() & 0o777 != mode {
                let _ = std::fs::set_permissions(&side, std::fs::Permissions::from_mode(mode));
            }
        }
    }
}

/// The probe's table: one row, rewritten by every probe.
pub(crate) const PROBE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    fn id(dev: u64, ino: u64) -> FileId {
        FileId { dev, ino }
    }

    #[test]
    fn compare_sees_missing_same_and_other() {
        let opened = Identity { file: id(1, 10), dir: id(1, 2) };
        assert_eq!(compare(opened, Some(id(1, 10)), Some(id(1, 2))), Seen::Same);
        assert_eq!(compare(opened, None, Some(id(1, 2))), Seen::Missing);
        assert_eq!(compare(opened, Some(id(1, 10)), None), Seen::Missing);
        assert_eq!(compare(opened, Some(id(1, 11)), Some(id(1, 2))), Seen::Other);
        assert_eq!(compare(opened, Some(id(1, 10)), Some(id(1, 3))), Seen::Other);
    }

    #[test]
    fn next_follows_the_probe_and_keeps_a_replacement() {
        let w = Status::Writable;
        let full = Status::Refusing(Fault::Full);
        assert_eq!(next(w, Seen::Same, Some(Probe::Failed(Fault::Full))), full);
        assert_eq!(next(full, Seen::Same, Some(Probe::Busy)), full);
        assert_eq!(next(full, Seen::Same, Some(Probe::Committed)), w);
        assert_eq!(next(w, Seen::Missing, None), Status::Refusing(Fault::Vanished));
        let replaced = Status::Refusing(Fault::Replaced);
        assert_eq!(next(w, Seen::Other, None), replaced);
        assert_eq!(next(replaced, Seen::Same, Some(Probe::Committed)), replaced);
    }

    #[test]
    fn classify_sorts_sqlite_and_postgres_codes() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Some(Fault::Unreachable));
    }
}
