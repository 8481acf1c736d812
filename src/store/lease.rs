//! Several servers on one queue (PostgreSQL): claims under a lease, fencing, shared limits.
//!
//! - A claim ([`Store::claim_due`]) runs in one transaction. It first reads, unlocked, the
//!   trunk's next allowed start (a call-rate stop read there holds: it only moves forward)
//!   and, unless this server's last claim left room for what it wants now, the live
//!   attempts of the service and of the trunk (the `dialing` table) to size the
//!   batch; then it picks due requests in serving order with `FOR UPDATE SKIP LOCKED`
//!   (rows another server, a cancel or an outcome holds are passed over, never waited
//!   for) and claims those the caller's policy check lets start, each behind a savepoint.
//!   Only then, the reserve step: it locks the trunk's `claim_gate` row (`FOR UPDATE`) and
//!   counts the live attempts again. Every claim passes the gate before it commits, so
//!   under the lock the count sees every claim committed before plus this transaction's
//!   own: claims beyond the capacity, the trunk's `max_calls` or the call rate are rolled
//!   back to their savepoint (which also lets the gate go; it is asked again for the
//!   rest), and the next start advances by one call interval per claim (the shared call
//!   rate). The gate is thus held only for one count, one write and the commit, not for
//!   the picking and writing of the claims, so servers claim side by side.
//! - Nothing a claim reads is rewritten by every claim: the gate row is only locked, and
//!   the next start is a row appended to `claim_starts` (the one read is removed by its
//!   key) and read newest first. A long transaction elsewhere keeps every row version
//!   written since it began; a rewritten row would make each read walk them all, so
//!   claims would slow down the longer such a session stayed (migration 0013). The live
//!   calls are counted in `dialing`, a row per call kept by triggers (migration 0014), so
//!   the count under the gate reads a few compact pages, dead rows included, rather than
//!   visiting the row of every request claimed meanwhile across the whole table. The pick
//!   starts at the service's floor (`pick_floors`, migration 0015), a key at or below every
//!   waiting request: each server raises it about once a second, off the claim's path
//!   ([`Store::raise_pick_floor`]), and triggers lower it whenever a request becomes
//!   waiting, so the pick passes over the index entries of the requests claimed since the
//!   last raise only, not of all those claimed since such a session began.
//! - Every claim increments `requests.version`, the fencing token, and writes it into the
//!   attempt with the claiming server's id (`owner`) and `lease_until`. The owner renews
//!   the lease while the call runs ([`Store::renew_leases`]); an outcome is recorded only
//!   while the attempt is live and the request still carries its token, so a paused or
//!   partitioned server whose attempt was taken over writes nothing (0 rows).
//! - Another server records an attempt whose lease expired as `interrupted`
//!   ([`Store::expired_attempts`], then a finish that re-checks the expiry in its UPDATE,
//!   so a renewal that lands first wins).
//!
//! Instants are the servers' clocks (Unix ms): the servers are expected to run NTP; a
//! skew well below the lease is harmless. A rate stop lying more than one interval plus
//! the lease ahead of a claimer's clock ([`shared_stop_holds`]) was set by a clock running
//! ahead (or the claimer's runs behind). Obeyed, it would stop every server's calls for as
//! long as the clocks disagree, and for good if the clock that set it was then put right.
//! So the claimer replaces it with a stop one interval after its own clock and claims
//! nothing in that turn: the stop is sound again, and the rate is not exceeded for it
//! (a server still ahead claims after its own stop only, which lies in its past).

use super::{
    ATTEMPT_COLUMNS, Attempt, Backend, Request, Store, StoreError, attempt_from, ms, request_from,
    ts,
};
use crate::policy::admit::shared_stop_holds;
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use std::time::Duration;

/// What a claim may take, across all servers.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits<'a> {
    /// This server's instance id (the lease owner).
    pub owner: &'a str,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// The service's concurrent calls, all servers together.
    pub capacity: i64,
    /// The trunk's concurrent calls, all servers and services together.
    pub max_calls: i64,
    /// The trunk (the PBX address): servers naming the same trunk share its limits.
    pub trunk: &'a str,
    /// The interval between call starts on the trunk; zero: no rate limit.
    pub interval: Duration,
}

/// Result of [`Store::claim_due`].
#[derive(Debug, Default)]
pub struct ClaimBatch {
    /// Claimed: the request as it was before the claim, and its new live attempt.
    pub claimed: Vec<(Request, Attempt)>,
    /// Due requests the check did not let start (re-plan them after this returns).
    pub skipped: Vec<Request>,
    /// The call rate allows no call before this instant.
    pub rate_until: Option<Timestamp>,
    /// The service or the trunk is at capacity.
    pub full: bool,
    /// A call-rate stop replaced because it lay too far ahead of this claim's clock (set
    /// by a server whose clock runs ahead; see the module doc): the caller warns.
    pub replaced: Option<Timestamp>,
}

/// A unique id for this server process: host name, process id and a random suffix.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(t)
}

/// The reads a claim makes, as SQL with their parameters, so that the claims bench can
/// show PostgreSQL's plan for exactly these (`CLAIMS_BENCH_EXPLAIN`).
pub mod reads {
    /// The trunk's next allowed start in Unix µs (`$1` trunk): the newest row of
    /// `claim_starts`, a backward index scan that stops at the first row.
    pub const NEXT_START: &str =
        "SELECT next_us FROM claim_starts WHERE trunk = $1 ORDER BY next_us DESC LIMIT 1";

    /// The next start and the live attempts of all services (`total`) and of one (`mine`)
    /// (`$1` trunk, `$2` service; `dialing`, one row per live call, migration 0014).
    pub const GATE_AND_COUNTS: &str = "SELECT (SELECT next_us FROM claim_starts \
         WHERE trunk = $1 ORDER BY next_us DESC LIMIT 1) AS next_us, COUNT(*)::BIGINT AS total, \
         COALESCE(SUM(CASE WHEN service = $2 THEN 1 ELSE 0 END), 0)::BIGINT AS mine \
         FROM dialing";

    /// The service's pick floor (`$1` service; migration 0015) as a CTE named `floor`:
    /// `pick_floor`'s generation and key (no generation and the lowest key: no floor),
    /// every row of the generation counted: at or below every waiting request.
    pub const FLOOR: &str = "floor AS (SELECT * FROM pick_floor($1))";

    /// The service's pick floor for a pick at `$2` (Unix ms; migration 0016) as a CTE named
    /// `floor`: rows that skip requests not due before a later time do not count before it.
    pub const FLOOR_AT: &str = "floor AS (SELECT * FROM pick_floor($1, $2))";

    /// The condition "at or above the floor" on `requests`' serving key, for a query with
    /// [`FLOOR`] or [`FLOOR_AT`]: a row comparison, so the index scan starts there.
    pub const FROM_FLOOR: &str = "(deadline_at, created_at, id) >= ((SELECT deadline_at FROM floor), \
         (SELECT created_at FROM floor), (SELECT id FROM floor))";

    /// The pick: due requests in serving order from the service's floor, passing over rows
    /// others hold (`$1` service, `$2` now in Unix ms, `$3` how many).
    pub fn pick() -> String {
        use super::super::{REQUEST_COLUMNS, SERVING_ORDER, WAITING};
        format!(
            "WITH {FLOOR_AT} SELECT {REQUEST_COLUMNS} FROM requests \
             WHERE service = $1 AND state IN {WAITING} AND due_at <= $2 AND {FROM_FLOOR} \
             ORDER BY {SERVING_ORDER} LIMIT $3 FOR UPDATE SKIP LOCKED"
        )
    }

    /// The raise's read (`$1` service, `$2` how many): the floor's generation (every row
    /// counted, [`FLOOR`]), and the keys and due times of the first `$2` waiting requests
    /// at or above it (due or not, held by a claim or not), or one row of NULLs.
    pub fn raise() -> String {
        use super::super::{SERVING_ORDER, WAITING};
        format!(
            "WITH {FLOOR} SELECT f.generation, n.deadline_at, n.created_at, n.id, n.due_at \
             FROM floor f LEFT JOIN LATERAL (SELECT deadline_at, created_at, id, due_at \
             FROM requests WHERE service = $1 AND state IN {WAITING} AND {FROM_FLOOR} \
             ORDER BY {SERVING_ORDER} LIMIT $2) n ON true"
        )
    }
}

/// The advisory lock class of the pick floors (with `hashtext(service)`; migration 0015).
const FLOOR_LOCK: i32 = 1_668_178_276;
/// How often one server raises a service's pick floor.
const RAISE_EVERY: Duration = Duration::from_secs(1);
/// How long a raise waits for transactions that make requests waiting (they hold the
/// floor's lock shared until they end) before it gives up until its next turn.
const RAISE_LOCK_WAIT: &str = "100ms";
/// The key above every request: the floor of a service with nothing waiting.
const TOP: (i64, i64, i64) = (i64::MAX, i64::MAX, i64::MAX);
/// How many waiting requests not yet due a raise looks past at most (migration 0016).
const RAISE_LOOKS: i64 = 1000;

/// A row of a pick floor's generation: a key, and the instant (Unix ms) before which the
/// pick does not count it (`None`: always).
type FloorRow = ((i64, i64, i64), Option<i64>);

/// The rows a raise writes for the first waiting requests at or above the floor (`ahead`:
/// key and due time in serving order, at most `looks` of them) at `now` (Unix ms), pure:
/// the first one's key; and, when it is not due, the key of the first one due (or of the
/// last one read, or [`TOP`] when all of them were read), with the first key counted only
/// from the earliest due time among those looked past. Every request between the two keys
/// falls due at that time or later, so a pick before it misses none it could take.
fn floor_rows(ahead: &[((i64, i64, i64), i64)], looks: usize, now: i64) -> Vec<FloorRow> {
    let Some(&(first, _)) = ahead.first() else { return vec![(TOP, None)] };
    let due = ahead.iter().position(|&(_, due_at)| due_at <= now);
    let stop = match due {
        Some(i) => i,
        None if ahead.len() >= looks => ahead.len() - 1,
        None => ahead.len(),
    };
    if stop == 0 {
        return vec![(first, None)];
    }
    let until = ahead[..stop].iter().map(|&(_, due_at)| due_at).min().unwrap_or(i64::MAX);
    let second = ahead.get(stop).map_or(TOP, |&(key, _)| key);
    vec![(first, Some(until)), (second, None)]
}

impl Store {
    /// Raises `service`'s pick floor to the first waiting request at or above it, and past
    /// the requests not yet due in front of the first due one for picks before they fall
    /// due (migrations 0015, 0016; PostgreSQL). Claims do this in the background about once
    /// a second per server and service. In a transaction of its own, after the floor's lock
    /// is held exclusively: no transaction that made a request waiting is still open, so
    /// this read sees every such request, and those made waiting later lower the floor
    /// again under the lock shared. `Ok(false)`: the lock was not free in time (nothing
    /// changed).
    ///
    /// `now` tells which requests are due (any instant is right; the claim's keeps the
    /// floor where that server's picks look).
    pub async fn raise_pick_floor(
        &self,
        service: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        debug_assert_eq!(self.backend, Backend::Postgres);
        raise_floor(self, service, now).await
    }
}

async fn raise_floor(store: &Store, service: &str, now: Timestamp) -> Result<bool, StoreError> {
    let mut tx = store.write_tx().await?;
    let locked = sqlx::query(
        "SELECT set_config('lock_timeout', $3, true) AS waited, \
         pg_advisory_xact_lock($1, hashtext($2))::text AS locked",
    )
    .bind(FLOOR_LOCK)
    .bind(service)
    .bind(RAISE_LOCK_WAIT)
    .execute(&mut **tx)
    .await;
    match locked {
        Ok(_) => {}
        // 55P03 lock_not_available: a long transaction holds the lock shared.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
            tx.rollback().await?;
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    let now = now.as_millisecond();
    // The first waiting request, and only when it is not due, as many as a raise looks past.
    let (mut generation, mut ahead) = read_ahead(&mut tx, service, 1).await?;
    if ahead.first().is_some_and(|&(_, due_at)| due_at > now) {
        (generation, ahead) = read_ahead(&mut tx, service, RAISE_LOOKS).await?;
    }
    let mut want = floor_rows(&ahead, usize::try_from(RAISE_LOOKS).unwrap_or(usize::MAX), now);
    if let Some(generation) = generation {
        let mut have: Vec<FloorRow> = sqlx::query_as::<_, (i64, i64, i64, Option<i64>)>(
            "SELECT deadline_at, created_at, id, skip_until FROM pick_floors \
             WHERE service = $1 AND generation = $2",
        )
        .bind(service)
        .bind(generation)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(d, c, i, skip)| ((d, c, i), skip))
        .collect();
        have.sort_unstable();
        want.sort_unstable();
        if have == want {
            tx.rollback().await?;
            return Ok(true);
        }
    }
    sqlx::query("DELETE FROM pick_floors WHERE service = $1 AND generation = $2")
        .bind(service)
        .bind(generation)
        .execute(&mut **tx)
        .await?;
    for ((d, c, i), skip) in want {
        sqlx::query(
            "INSERT INTO pick_floors (service, generation, deadline_at, created_at, id, skip_until) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(service)
        .bind(generation.unwrap_or(0) + 1)
        .bind(d)
        .bind(c)
        .bind(i)
        .bind(skip)
        .execute(&mut **tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// [`reads::raise`]: the floor's generation, and the keys and due times (Unix ms) of the
/// first `limit` waiting requests at or above it.
async fn read_ahead(
    tx: &mut super::Tx<'_>,
    service: &str,
    limit: i64,
) -> Result<(Option<i64>, Vec<((i64, i64, i64), i64)>), StoreError> {
    let rows = sqlx::query(&reads::raise()).bind(service).bind(limit).fetch_all(&mut **tx).await?;
    let mut generation = None;
    let mut ahead = Vec::with_capacity(rows.len());
    for row in &rows {
        generation = row.try_get("generation")?;
        let d: Option<i64> = row.try_get("deadline_at")?;
        let c: Option<i64> = row.try_get("created_at")?;
        let i: Option<i64> = row.try_get("id")?;
        let due: Option<i64> = row.try_get("due_at")?;
        if let (Some(d), Some(c), Some(i)) = (d, c, i) {
            // A waiting request always has a due time; one without is due now.
            ahead.push(((d, c, i), due.unwrap_or(i64::MIN)));
        }
    }
    Ok((generation, ahead))
}

/// The trunk's next allowed call start ([`reads::NEXT_START`]; see migration 0013).
/// `None`: any time.
async fn next_start(tx: &mut super::Tx<'_>, trunk: &str) -> Result<Option<Timestamp>, StoreError> {
    let row = sqlx::query(reads::NEXT_START).bind(trunk).fetch_optional(&mut **tx).await?;
    row.map(|r| from_us(r.try_get("next_us")?)).transpose()
}

/// Locks the trunk's `claim_gate` row until the transaction (or its savepoint) ends,
/// creating the row at the trunk's first claim. The row is locked, never rewritten.
async fn lock_gate(tx: &mut super::Tx<'_>, trunk: &str) -> Result<(), StoreError> {
    loop {
        let locked = sqlx::query("SELECT trunk FROM claim_gate WHERE trunk = $1 FOR UPDATE")
            .bind(trunk)
            .fetch_optional(&mut **tx)
            .await?;
        if locked.is_some() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO claim_gate (trunk, next_start) VALUES ($1, 0) \
             ON CONFLICT (trunk) DO NOTHING",
        )
        .bind(trunk)
        .execute(&mut **tx)
        .await?;
    }
}

/// Replaces the trunk's next start `old` (read under the gate's lock) with `new`: one row
/// in, the old one out by its key (no scan over the rows removed before).
async fn replace_start(
    tx: &mut super::Tx<'_>,
    trunk: &str,
    new: Timestamp,
    old: Option<Timestamp>,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH gone AS (DELETE FROM claim_starts WHERE trunk = $1 AND next_us = $3) \
         INSERT INTO claim_starts (trunk, next_us) VALUES ($1, $2)",
    )
    .bind(trunk)
    .bind(new.as_microsecond())
    .bind(old.map(|t| t.as_microsecond()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What the gate decides on, read in one statement ([`reads::GATE_AND_COUNTS`]): the
/// trunk's next allowed start and the live attempts of all services and of `service`.
async fn gate_and_counts(
    tx: &mut super::Tx<'_>,
    trunk: &str,
    service: &str,
) -> Result<(Option<Timestamp>, i64, i64), StoreError> {
    let row =
        sqlx::query(reads::GATE_AND_COUNTS).bind(trunk).bind(service).fetch_one(&mut **tx).await?;
    let next = row.try_get::<Option<i64>, _>("next_us")?.map(from_us).transpose()?;
    Ok((next, row.try_get("total")?, row.try_get("mine")?))
}

fn from_us(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us)
        .map_err(|_| StoreError::Corrupt { what: "instant", value: us.to_string() })
}

impl Store {
    /// Claims up to `want` due requests of `service` in serving order within the limits
    /// of all servers together (see the module doc). `check` is asked about each due
    /// request in order; true lets it start now. PostgreSQL only: SQLite has one server
    /// and the scheduler's own per-request [`Store::claim`].
    pub async fn claim_due(
        &self,
        service: &str,
        now: Timestamp,
        want: i64,
        limits: &ClaimLimits<'_>,
        mut check: impl FnMut(&Request) -> bool,
    ) -> Result<ClaimBatch, StoreError> {
        debug_assert_eq!(self.backend, Backend::Postgres);
        let mut batch = ClaimBatch::default();
        if want <= 0 {
            batch.full = true;
            return Ok(batch);
        }
        let signed = |d: Duration| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
        let holds = |stop: &Timestamp| {
            shared_stop_holds(*stop, now, signed(limits.interval), signed(limits.lease))
        };
        self.raise_floor_now_and_then(service, now);
        let mut tx = self.write_tx().await?;
        // Unlocked reads first: the next start only moves forward, so a rate stop read here
        // also holds under the lock; the counts only size the batch, and are read only when
        // this server's last reserve step left less room than it wants now.
        let key = (limits.trunk.to_owned(), service.to_owned());
        let mut free = want;
        let next = if self.claim_room(&key).is_none_or(|room| room < want) {
            let (next, total, mine) = gate_and_counts(&mut tx, limits.trunk, service).await?;
            let room = (limits.capacity - mine).min(limits.max_calls - total);
            self.set_claim_room(key.clone(), room);
            free = free.min(room);
            next
        } else {
            next_start(&mut tx, limits.trunk).await?
        };
        if let Some(far) = next.filter(|t| !holds(t)) {
            // A stop set by a clock far ahead: replaced under the lock (unless another
            // server did so meanwhile); no claim in this turn.
            lock_gate(&mut tx, limits.trunk).await?;
            let stored = next_start(&mut tx, limits.trunk).await?;
            let mine = add(now, limits.interval);
            if let Some(stored) = stored.filter(|t| !holds(t)) {
                replace_start(&mut tx, limits.trunk, mine, Some(stored)).await?;
            }
            tx.commit().await?;
            batch.replaced = Some(far);
            batch.rate_until = Some(mine);
            return Ok(batch);
        }
        if let Some(next) = next
            && next > now
        {
            tx.rollback().await?;
            batch.rate_until = Some(next);
            return Ok(batch);
        }
        if !limits.interval.is_zero() {
            free = free.min(1);
        }
        if free <= 0 {
            tx.rollback().await?;
            batch.full = true;
            return Ok(batch);
        }
        let rows = sqlx::query(&reads::pick())
            .bind(service)
            .bind(ms(now))
            .bind(free)
            .fetch_all(&mut **tx)
            .await?;
        let lease_until = ms(add(now, limits.lease));
        for row in &rows {
            let req = request_from(row)?;
            if !check(&req) {
                batch.skipped.push(req);
                continue;
            }
            // Claim i > 0 can be undone alone (with those after it) if the gate says no;
            // the first is undone with the transaction.
            if !batch.claimed.is_empty() {
                let savepoint = format!("SAVEPOINT claim_{}", batch.claimed.len());
                sqlx::query(&savepoint).execute(&mut **tx).await?;
            }
            // The request, its new attempt (with the fencing token) and the audit row: one
            // statement, one round trip.
            let row = sqlx::query(&format!(
                "WITH claimed AS (UPDATE requests SET state = 'dialing', version = version + 1 \
                 WHERE id = $1 RETURNING id, version), \
                 attempt AS (INSERT INTO attempts \
                 (request_id, seq, started_at, owner, lease_until, fence) \
                 SELECT id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM attempts WHERE request_id = $1), \
                 $2, $3, $4, version FROM claimed RETURNING {ATTEMPT_COLUMNS}), \
                 logged AS (INSERT INTO audit (request_id, at, from_state, to_state, actor, detail) \
                 SELECT request_id, $2, $5, 'dialing', 'scheduler', 'attempt ' || seq FROM attempt) \
                 SELECT {ATTEMPT_COLUMNS} FROM attempt"
            ))
            .bind(req.id)
            .bind(ms(now))
            .bind(limits.owner)
            .bind(lease_until)
            .bind(req.state.as_str())
            .fetch_one(&mut **tx)
            .await?;
            let attempt = attempt_from(&row)?;
            batch.claimed.push((req, attempt));
        }
        // The reserve step: the gate is held from here to the commit only. Every claim
        // passes it before committing, so the counts read under it see every claim
        // committed before (and this transaction's own): exact across servers.
        let gate = loop {
            if batch.claimed.is_empty() {
                tx.rollback().await?;
                return Ok(batch);
            }
            lock_gate(&mut tx, limits.trunk).await?;
            let (gate, total, mine) = gate_and_counts(&mut tx, limits.trunk, service).await?;
            let claimed = i64::try_from(batch.claimed.len()).unwrap_or(i64::MAX);
            let over = (mine - limits.capacity).max(total - limits.max_calls);
            let keep = match gate {
                // Set far ahead since the unlocked read: replaced at the next turn.
                Some(far) if !holds(&far) => {
                    batch.replaced = Some(far);
                    batch.rate_until = Some(add(now, limits.interval));
                    0
                }
                Some(gate) if gate > now => {
                    batch.rate_until = Some(gate);
                    0
                }
                _ => {
                    batch.full |= over > 0;
                    (claimed - over.max(0)).max(0)
                }
            };
            // The room left once the excess is given back, for the next claim's sizing.
            self.set_claim_room(key.clone(), claimed - keep - over);
            if keep >= claimed {
                break gate;
            }
            if keep == 0 {
                tx.rollback().await?;
                batch.claimed.clear();
                return Ok(batch);
            }
            // Give the excess back (this also releases the gate: it was locked after the
            // savepoint) and ask the gate again for the rest.
            let rollback = format!("ROLLBACK TO SAVEPOINT claim_{keep}");
            sqlx::query(&rollback).execute(&mut **tx).await?;
            batch.claimed.truncate(usize::try_from(keep).unwrap_or(0));
        };
        let mut next = gate.unwrap_or(Timestamp::UNIX_EPOCH);
        if !limits.interval.is_zero() {
            for _ in &batch.claimed {
                next = add(next.max(now), limits.interval);
            }
            // Kept in whole microseconds: a next start that does not move on at that
            // precision (a sub-microsecond interval) is not written again.
            if gate.is_none_or(|g| next.as_microsecond() > g.as_microsecond()) {
                replace_start(&mut tx, limits.trunk, next, gate).await?;
            }
        }
        tx.commit().await?;
        if next > now {
            batch.rate_until = Some(next);
        }
        Ok(batch)
    }

    /// Starts raising `service`'s pick floor in the background ([`raise_floor`]) if this
    /// server has not done so for [`RAISE_EVERY`]: off the claim's path, which it would
    /// otherwise lengthen by a lock wait and four round trips.
    fn raise_floor_now_and_then(&self, service: &str, at: Timestamp) {
        let Ok(mut raised) = self.floor_raised.lock() else { return };
        let now = tokio::time::Instant::now();
        if raised.get(service).is_some_and(|(at, _)| now.duration_since(*at) < RAISE_EVERY) {
            return;
        }
        let failing = raised.get(service).is_some_and(|(_, failing)| *failing);
        raised.insert(service.to_owned(), (now, failing));
        let (store, service) = (self.clone(), service.to_owned());
        tokio::spawn(async move {
            let result = raise_floor(&store, &service, at).await;
            // The first failure after a success is a warning, the rest of a run of them
            // debug lines (one a second), and the first success after them a note.
            let was_failing = store.floor_raised.lock().ok().and_then(|mut raised| {
                raised.get_mut(&service).map(|(_, f)| std::mem::replace(f, result.is_err()))
            });
            match result {
                Ok(true) if was_failing == Some(true) => {
                    tracing::info!(service, "pick floor raised again");
                }
                Ok(true) => {}
                Ok(false) => tracing::debug!(
                    service,
                    "pick floor not raised: a transaction that makes requests waiting is open"
                ),
                Err(e) if was_failing == Some(true) => {
                    tracing::debug!(service, error = %e, "pick floor still not raised");
                }
                Err(e) => tracing::warn!(
                    service,
                    error = %e,
                    "pick floor not raised: claims stay exact, but beside a long transaction \
                     each pick passes over more requests until a raise succeeds (retried every \
                     second)"
                ),
            }
        });
    }

    /// The room this server's last reserve step left under the limits of `key` (trunk,
    /// service): a hint that spares the unlocked count, never a decision.
    fn claim_room(&self, key: &(String, String)) -> Option<i64> {
        self.claim_room.lock().ok().and_then(|rooms| rooms.get(key).copied())
    }

    fn set_claim_room(&self, key: (String, String), room: i64) {
        if let Ok(mut rooms) = self.claim_room.lock() {
            rooms.insert(key, room);
        }
    }

    /// Extends the leases of `owner`'s live attempts to `until`; returns the ids of the
    /// attempts it still holds (an attempt missing from the answer was taken over).
    pub async fn renew_leases(
        &self,
        owner: &str,
        until: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "UPDATE attempts SET lease_until = $2 WHERE owner = $1 AND outcome IS NULL \
             RETURNING id",
        )
        .bind(owner)
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Live attempts whose lease expired before `now` (their server died or lost the
    /// database), oldest first, with their owners.
    pub async fn expired_attempts(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(Attempt, Option<String>)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS}, owner FROM attempts WHERE outcome IS NULL \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY id LIMIT $2"
        ))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((attempt_from(r)?, r.try_get("owner")?))).collect()
    }

    /// The lease owner of a live attempt (`None`: not live, or claimed without a lease).
    pub async fn lease_of(
        &self,
        attempt_id: i64,
    ) -> Result<Option<(String, Timestamp)>, StoreError> {
        let row = sqlx::query(
            "SELECT owner, lease_until FROM attempts WHERE id = $1 AND outcome IS NULL",
        )
        .bind(attempt_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner: Option<String> = row.try_get("owner")?;
        let until: Option<i64> = row.try_get("lease_until")?;
        owner.zip(until).map(|(o, u)| ts(u).map(|u| (o, u))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::{TOP, floor_rows};

    fn k(n: i64) -> (i64, i64, i64) {
        (n, n, n)
    }

    #[test]
    fn a_floor_looks_past_requests_not_yet_due_up_to_the_first_due_one() {
        let now = 1_000;
        // Nothing waits: above every key.
        assert_eq!(floor_rows(&[], 10, now), [(TOP, None)]);
        // The first is due: one row that always counts.
        assert_eq!(floor_rows(&[(k(1), 900), (k(2), 5_000)], 10, now), [(k(1), None)]);
        // Two paused in front: the first key counts from the earlier of their due times.
        let ahead = [(k(1), 3_000), (k(2), 2_000), (k(3), 1_000), (k(4), 0)];
        assert_eq!(floor_rows(&ahead, 10, now), [(k(1), Some(2_000)), (k(3), None)]);
        // None due among all there are: the second key above every request.
        let ahead = [(k(1), 3_000), (k(2), 2_000)];
        assert_eq!(floor_rows(&ahead, 10, now), [(k(1), Some(2_000)), (TOP, None)]);
        // None due among as many as a raise reads: the last one read is the second key, and
        // only those before it are looked past.
        let ahead = [(k(1), 3_000), (k(2), 2_000), (k(3), 1_500)];
        assert_eq!(floor_rows(&ahead, 3, now), [(k(1), Some(2_000)), (k(3), None)]);
    }
}
