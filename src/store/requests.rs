//! Writing a request's transitions: the store reads the request's facts inside a write
//! transaction, hands them to the caller's decision (a [`crate::policy::lifecycle::step`]),
//! and writes the [`Transition`] it returns — request row, attempt outcome, audit row and
//! SMS — in that same transaction, before the action it announces. Nothing here decides:
//! every condition in the SQL below only checks that the facts the decision saw still hold
//! (the state, the live attempt, its fencing token and lease).

use super::{
    ATTEMPT_COLUMNS, Attempt, Audit, Backend, REQUEST_COLUMNS, Request, Store, StoreError, Tx,
    WAITING, attempt_from, audit, audit_all, is_unique_violation, ms, request_from, sms,
};
use crate::policy::AttemptRecord;
use crate::policy::lifecycle::{AttemptEnd, Facts, Refused, State, Transition, misses_deadline};
use jiff::Timestamp;
use sqlx::Row;

/// What became of a transition the store was asked to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written, in one transaction with its audit row and SMS.
    Written(Transition),
    /// The decision refused the event; nothing was written.
    Refused(Refused),
    /// No such request, or the attempt was no longer live (already finished, fenced by a
    /// later claim, or its lease renewed): nothing was written.
    Gone,
}

/// The end of a live attempt to write ([`Store::finish_all`]).
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// The attempt.
    pub attempt: &'a Attempt,
    /// The final SIP status code, if any.
    pub sip_code: Option<u16>,
    /// When the far end answered, if the mark is not stored yet.
    pub answered_at: Option<Timestamp>,
    /// Which live attempt the outcome may be written on.
    pub fence: Fence,
}

/// Which live attempt an outcome may be written on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// This server's own attempt: only while the request still carries its fencing token.
    Own,
    /// Another server's attempt being taken over: also only while its lease is expired.
    Expired,
}

impl Request {
    /// The request's facts for the lifecycle, with its finished attempts.
    pub fn facts<'a>(&self, attempts: &'a [AttemptRecord]) -> Facts<'a> {
        Facts {
            id: self.id,
            state: self.state,
            created_at: self.created_at,
            window: self.window,
            due: self.due_at,
            deadline: self.deadline_at,
            expires: self.expires_at,
            counted: u8::try_from(self.attempts_counted).unwrap_or(u8::MAX),
            cancel_requested: self.cancel_requested,
            deadline_missed: self.deadline_missed,
            sms_consent: self.sms_consent,
            attempts,
        }
    }
}

impl Store {
    /// Row lock for a read that a write in the same transaction depends on (PostgreSQL;
    /// SQLite's write transaction already holds the database's write lock).
    fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// The request and its fencing token, locked for the transaction.
    async fn locked_request(
        &self,
        tx: &mut Tx<'_>,
        id: i64,
    ) -> Result<Option<(Request, i64)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS}, version FROM requests WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(|r| Ok((request_from(r)?, r.try_get("version")?))).transpose()
    }

    async fn finished_attempts(
        &self,
        tx: &mut Tx<'_>,
        request_id: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE request_id = $1 AND outcome IS NOT NULL \
             ORDER BY seq"
        ))
        .bind(request_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(|r| Ok(attempt_from(r)?.record())).filter_map(Result::transpose).collect()
    }

    /// Decides and writes one transition of a waiting or final request (serve, expire,
    /// cancel): `decide` gets the request as stored, inside the write transaction.
    pub async fn apply(
        &self,
        id: i64,
        now: Timestamp,
        decide: impl FnOnce(&Request, &[AttemptRecord]) -> Result<Transition, Refused>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.write_tx().await?;
        let Some((req, _)) = self.locked_request(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(Applied::Gone);
        };
        let records = self.finished_attempts(&mut tx, id).await?;
        let t = match decide(&req, &records) {
            // A claim also writes the live attempt: it goes through `claim`/`claim_due`.
            Ok(t) if t.to == State::Dialing && t.from != State::Dialing => {
                Err(Refused { state: req.state, event: "be claimed here" })
            }
            other => other,
        };
        let t = match t {
            Ok(t) => t,
            Err(refused) => {
                tx.rollback().await?;
                return Ok(Applied::Refused(refused));
            }
        };
        self.write(&mut tx, &req, &t, now, None).await?;
        tx.commit().await?;
        Ok(Applied::Written(t))
    }

    /// Decides and writes the end of a live attempt: `decide` gets the request and its
    /// finished attempts as stored, inside the write transaction; the transition's outcome
    /// is written on `attempt` (with `sip_code`, and `answered_at` if the far end answered
    /// and the mark is not stored yet). [`Applied::Gone`] when the attempt is no longer
    /// live or no longer this claim's (see [`Fence`]).
    pub async fn finish(
        &self,
        attempt: &Attempt,
        sip_code: Option<u16>,
        answered_at: Option<Timestamp>,
        fence: Fence,
        now: Timestamp,
        decide: impl FnOnce(&Request, &[AttemptRecord]) -> Result<Transition, Refused>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.write_tx().await?;
        let end = Finish { attempt, sip_code, answered_at, fence };
        let applied = self.finish_in(&mut tx, &end, now, decide).await?;
        match applied {
            Applied::Written(_) => tx.commit().await?,
            Applied::Gone | Applied::Refused(_) => tx.rollback().await?,
        }
        Ok(applied)
    }

    /// [`Store::finish`] of several attempts in one transaction (one commit, one fsync on
    /// SQLite). Each is decided on the facts as stored after the ones before it, and
    /// written whole or not at all: one that fails gets its error and the others are
    /// written. `Err` when the transaction itself failed: then none was written. Returns
    /// once everything written is committed.
    ///
    /// An end whose attempt is no longer live writes nothing (its first write is the
    /// guarded outcome, see [`Store::finish_in`]), so the batch needs no savepoints. The
    /// ends of distinct requests are read and written together, a statement for all of
    /// them at each step ([`Store::finish_read_all`]). Only an end that fails after it
    /// wrote, or a statement shared by several, must be undone: then the batch is rolled
    /// back and written again, each end under its own savepoint (so `decide` may run
    /// twice).
    pub async fn finish_all<D>(
        &self,
        ends: Vec<(Finish<'_>, D)>,
        now: Timestamp,
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError>
    where
        D: Fn(&Request, &[AttemptRecord]) -> Result<Transition, Refused>,
    {
        if let Some(out) = self.finish_batch(&ends, now, false).await? {
            return Ok(out);
        }
        let out = self.finish_batch(&ends, now, true).await?;
        Ok(out.unwrap_or_default())
    }

    /// One transaction of [`Store::finish_all`]. `None` when an end of several failed
    /// without `savepoints` (then the transaction was rolled back: nothing was written).
    /// One end alone needs no savepoint: the transaction is rolled back unless it was
    /// written.
    async fn finish_batch<D>(
        &self,
        ends: &[(Finish<'_>, D)],
        now: Timestamp,
        savepoints: bool,
    ) -> Result<Option<Vec<Result<Applied, StoreError>>>, StoreError>
    where
        D: Fn(&Request, &[AttemptRecord]) -> Result<Transition, Refused>,
    {
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(ends.len());
        let ids: Vec<i64> = ends.iter().map(|(end, _)| end.attempt.request_id).collect();
        // Ends of distinct requests do not change each other's facts: all are read at once.
        let read = if !savepoints && ends.len() > 1 && distinct(&ids) {
            match self.stored_all(&mut tx, &ids).await {
                Ok(read) => Some(read),
                Err(_) => {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
        } else {
            None
        };
        if let Some(read) = read {
            // Their audit rows, written together after the last end.
            let mut trail = Vec::new();
            return match self.finish_read_all(&mut tx, ends, read, now, &mut trail).await {
                Ok(out) if audit_all(self.backend, &mut tx, &trail, now).await.is_ok() => {
                    if out.iter().any(|a| matches!(a, Ok(Applied::Written(_)))) {
                        tx.commit().await?;
                    } else {
                        tx.rollback().await?;
                    }
                    Ok(Some(out))
                }
                Ok(_) | Err(_) => {
                    tx.rollback().await?;
                    Ok(None)
                }
            };
        }
        for (end, decide) in ends {
            if !savepoints {
                let applied = self.finish_in(&mut tx, end, now, decide).await;
                if applied.is_err() && ends.len() > 1 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                out.push(applied);
                continue;
            }
            sqlx::query("SAVEPOINT finish").execute(&mut **tx).await?;
            let applied = self.finish_in(&mut tx, end, now, decide).await;
            if !matches!(applied, Ok(Applied::Written(_))) {
                sqlx::query("ROLLBACK TO finish").execute(&mut **tx).await?;
            }
            sqlx::query("RELEASE finish").execute(&mut **tx).await?;
            out.push(applied);
        }
        if out.iter().any(|a| matches!(a, Ok(Applied::Written(_)))) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(Some(out))
    }

    /// The end of one live attempt inside `tx` (see [`Store::finish`]); only
    /// [`Applied::Written`] writes anything, and an end found [`Applied::Gone`] or
    /// refused has written nothing: the outcome, the first write, is guarded by the
    /// attempt being live and this claim's ([`live_where`]).
    async fn finish_in(
        &self,
        tx: &mut Tx<'_>,
        end: &Finish<'_>,
        now: Timestamp,
        decide: impl FnOnce(&Request, &[AttemptRecord]) -> Result<Transition, Refused>,
    ) -> Result<Applied, StoreError> {
        let id = end.attempt.request_id;
        let Some((req, version)) = self.locked_request(tx, id).await? else {
            return Ok(Applied::Gone);
        };
        let records = self.finished_attempts(tx, id).await?;
        let t = match decide(&req, &records) {
            Ok(t) => t,
            Err(refused) => {
                let live = self.is_live(tx, end, version, now).await?;
                return Ok(if live { Applied::Refused(refused) } else { Applied::Gone });
            }
        };
        let live = match t.attempt {
            Some(ended) => self.end_attempt(tx, end, ended, version, now).await?,
            None => self.is_live(tx, end, version, now).await?,
        };
        if !live {
            return Ok(Applied::Gone);
        }
        self.write(tx, &req, &t, now, None).await?;
        Ok(Applied::Written(t))
    }

    /// The requests `ids` (none twice) as [`Store::finish_in`] reads each, in two
    /// statements: each request locked with its fencing token, and its finished attempts.
    async fn stored_all(
        &self,
        tx: &mut Tx<'_>,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Stored>, StoreError> {
        let list = self.backend.params(1, ids.len());
        let cached = ids.len() <= super::CACHED_ROWS;
        // In id order: servers that lock several requests lock them in the same order.
        let sql = format!(
            "SELECT {REQUEST_COLUMNS}, version FROM requests WHERE id IN ({list}) ORDER BY id{}",
            self.for_update()
        );
        let mut query = sqlx::query(&sql).persistent(cached);
        for id in ids {
            query = query.bind(*id);
        }
        let mut read = std::collections::HashMap::with_capacity(ids.len());
        for row in query.fetch_all(&mut **tx).await? {
            let req = request_from(&row)?;
            read.insert(req.id, (req, row.try_get("version")?, Vec::new()));
        }
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE request_id IN ({list}) \
             AND outcome IS NOT NULL ORDER BY request_id, seq"
        );
        let mut query = sqlx::query(&sql).persistent(cached);
        for id in ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let attempt = attempt_from(&row)?;
            if let (Some(record), Some((_, _, records))) =
                (attempt.record(), read.get_mut(&attempt.request_id))
            {
                records.push(record);
            }
        }
        Ok(read)
    }

    /// The ends of distinct requests read at once ([`Store::stored_all`]), each decided as
    /// [`Store::finish_in`] decides it, with their writes in two statements: the
    /// guarded outcomes ([`Store::end_attempts`]), then the request rows of the ends whose
    /// attempt was still live ([`Store::write_rows`]). The rarer parts stay per end: a
    /// refused decision's liveness check, a replan, SMS. `Err` leaves `tx` to be rolled
    /// back.
    async fn finish_read_all<D>(
        &self,
        tx: &mut Tx<'_>,
        ends: &[(Finish<'_>, D)],
        mut read: std::collections::HashMap<i64, Stored>,
        now: Timestamp,
        trail: &mut Vec<Audit>,
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError>
    where
        D: Fn(&Request, &[AttemptRecord]) -> Result<Transition, Refused>,
    {
        let mut out: Vec<Result<Applied, StoreError>> = Vec::with_capacity(ends.len());
        // The ends decided to a transition that ends their attempt.
        let mut decided: Vec<Decided<'_, '_>> = Vec::new();
        for (end, decide) in ends {
            let Some((req, version, records)) = read.remove(&end.attempt.request_id) else {
                out.push(Ok(Applied::Gone));
                continue;
            };
            match decide(&req, &records) {
                Ok(t) => match t.attempt {
                    Some(ended) => {
                        decided.push(Decided { at: out.len(), end, req, version, ended, t });
                        // Until its outcome is found written.
                        out.push(Ok(Applied::Gone));
                    }
                    None => {
                        let live = self.is_live(tx, end, version, now).await?;
                        if live {
                            self.write(tx, &req, &t, now, Some(&mut *trail)).await?;
                            out.push(Ok(Applied::Written(t)));
                        } else {
                            out.push(Ok(Applied::Gone));
                        }
                    }
                },
                Err(refused) => {
                    let live = self.is_live(tx, end, version, now).await?;
                    out.push(Ok(if live { Applied::Refused(refused) } else { Applied::Gone }));
                }
            }
        }
        let live = self.end_attempts(tx, &decided, now).await?;
        decided.retain(|d| live.contains(&d.end.attempt.id));
        let rows: Vec<(&Request, &Transition)> = decided.iter().map(|d| (&d.req, &d.t)).collect();
        self.write_rows(tx, &rows, now).await?;
        for d in decided {
            self.write_rest(tx, &d.req, &d.t, now, Some(&mut *trail)).await?;
            out[d.at] = Ok(Applied::Written(d.t));
        }
        Ok(out)
    }

    /// The outcomes of `decided` (each transition ends its attempt), each written only
    /// while its attempt is live and this claim's ([`live_where`]), in one statement: the
    /// attempts written.
    async fn end_attempts(
        &self,
        tx: &mut Tx<'_>,
        decided: &[Decided<'_, '_>],
        now: Timestamp,
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        let mut live = std::collections::HashSet::new();
        for chunk in decided.chunks(super::ROWS_PER_STATEMENT) {
            // v: id, outcome, sip_code, counted, answered_at, fencing token, take-over
            // (0/1), now. A take-over also needs the lease expired.
            let sql = format!(
                "UPDATE attempts SET outcome = v.column2, sip_code = v.column3, \
                 ended_at = v.column8, counted = v.column4, \
                 answered_at = COALESCE(attempts.answered_at, v.column5) \
                 FROM (VALUES {}) AS v WHERE attempts.id = v.column1 \
                 AND attempts.outcome IS NULL \
                 AND (attempts.fence IS NULL OR attempts.fence = v.column6) \
                 AND (v.column7 = 0 OR attempts.lease_until IS NULL \
                      OR attempts.lease_until < v.column8) \
                 RETURNING attempts.id",
                super::values_list(self.backend, chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
            for Decided { end, version, ended, .. } in chunk {
                query = query
                    .bind(end.attempt.id)
                    .bind(ended.outcome.as_str())
                    .bind(end.sip_code.map(i64::from))
                    .bind(i64::from(ended.counted))
                    .bind(end.answered_at.map(ms))
                    .bind(*version)
                    .bind(i64::from(end.fence == Fence::Expired))
                    .bind(ms(now));
            }
            for row in query.fetch_all(&mut **tx).await? {
                live.insert(row.try_get::<i64, _>(0)?);
            }
        }
        Ok(live)
    }

    /// Writes the outcome on `end`'s attempt if it is still live and this claim's
    /// ([`live_where`]); `version` is the request's fencing token read in `tx`. False when
    /// it was not (then nothing was written).
    async fn end_attempt(
        &self,
        tx: &mut Tx<'_>,
        end: &Finish<'_>,
        ended: AttemptEnd,
        version: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE attempts SET outcome = $2, sip_code = $3, ended_at = $4, counted = $5, \
             answered_at = COALESCE(answered_at, $6) WHERE id = $1 AND {}",
            live_where(end.fence, "$7", "$4")
        ))
        .bind(end.attempt.id)
        .bind(ended.outcome.as_str())
        .bind(end.sip_code.map(i64::from))
        .bind(ms(now))
        .bind(i64::from(ended.counted))
        .bind(end.answered_at.map(ms))
        .bind(version)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `end`'s attempt is still live and this claim's ([`live_where`]), locked for
    /// the transaction; `version` is the request's fencing token read in `tx`.
    async fn is_live(
        &self,
        tx: &mut Tx<'_>,
        end: &Finish<'_>,
        version: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT id FROM attempts WHERE id = $1 AND {}{}",
            live_where(end.fence, "$2", "$3"),
            self.for_update()
        );
        let live = sqlx::query(&sql).bind(end.attempt.id).bind(version);
        let live = match end.fence {
            Fence::Own => live,
            Fence::Expired => live.bind(ms(now)),
        };
        Ok(live.fetch_optional(&mut **tx).await?.is_some())
    }

    /// Writes the request side of a transition decided on `req` (read in `tx`).
    /// Its audit row goes into `trail` when one is given (the caller writes the rows of a
    /// batch together, in the same transaction), else is written here.
    async fn write(
        &self,
        tx: &mut Tx<'_>,
        req: &Request,
        t: &Transition,
        now: Timestamp,
        trail: Option<&mut Vec<Audit>>,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE requests SET state = $2, due_at = $3, attempts_counted = $4, \
             final_at = COALESCE($5, final_at), end_reason = COALESCE($6, end_reason), \
             cancel_requested = CASE WHEN $7 = 1 THEN 1 ELSE cancel_requested END, \
             deadline_missed = CASE WHEN $8 = 1 THEN 1 ELSE deadline_missed END \
             WHERE id = $1",
        );
        bind_row(query, req, t, now).execute(&mut **tx).await?;
        self.write_rest(tx, req, t, now, trail).await
    }

    /// The request rows of transitions decided on distinct requests, in one statement.
    async fn write_rows(
        &self,
        tx: &mut Tx<'_>,
        rows: &[(&Request, &Transition)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(super::ROWS_PER_STATEMENT) {
            // v: id, state, due_at, attempts_counted, final_at, end_reason,
            // cancel_requested, deadline_missed; a flag is only ever set here, a final
            // instant or reason kept.
            let sql = format!(
                "UPDATE requests SET state = v.column2, due_at = v.column3, \
                 attempts_counted = v.column4, \
                 final_at = COALESCE(v.column5, requests.final_at), \
                 end_reason = COALESCE(v.column6, requests.end_reason), \
                 cancel_requested = CASE WHEN v.column7 = 1 THEN 1 \
                     ELSE requests.cancel_requested END, \
                 deadline_missed = CASE WHEN v.column8 = 1 THEN 1 \
                     ELSE requests.deadline_missed END \
                 FROM (VALUES {}) AS v WHERE requests.id = v.column1",
                super::values_list(self.backend, chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
            for (req, t) in chunk {
                query = bind_row(query, req, t, now);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// What a transition writes besides the request row: a replan, its audit row (into
    /// `trail` when given), its SMS.
    async fn write_rest(
        &self,
        tx: &mut Tx<'_>,
        req: &Request,
        t: &Transition,
        now: Timestamp,
        trail: Option<&mut Vec<Audit>>,
    ) -> Result<(), StoreError> {
        if let Some(r) = &t.replan {
            sqlx::query(
                "UPDATE requests SET window_start = $2, window_end = $3, deadline_at = $4 \
                 WHERE id = $1",
            )
            .bind(req.id)
            .bind(r.window.map(|w| i64::from(w.start_minute())))
            .bind(r.window.map(|w| i64::from(w.end_minute())))
            .bind(ms(r.deadline))
            .execute(&mut **tx)
            .await?;
        }
        match (&t.audit, trail) {
            (Some(a), Some(trail)) => trail.push(Audit {
                request_id: req.id,
                from: Some(t.from),
                to: t.to,
                actor: a.actor.clone(),
                detail: a.detail.clone(),
            }),
            (Some(a), None) => {
                audit(tx, req.id, now, Some(t.from), t.to, &a.actor, &a.detail).await?
            }
            (None, _) => {}
        }
        for intent in &t.sms {
            sms::queue(tx, req, intent, now).await?;
        }
        Ok(())
    }

    /// Cancels a request through the lifecycle ([`crate::policy::lifecycle::Event::Cancel`]):
    /// a waiting request ends now; a live attempt is not interrupted, but the request is
    /// then not retried.
    pub async fn cancel(
        &self,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<crate::policy::lifecycle::Cancelled, StoreError> {
        use crate::policy::lifecycle::{Cancelled, Event, step};
        let applied = self
            .apply(id, now, |req, records| {
                step(None, &req.facts(records), Event::Cancel { actor }, now)
            })
            .await?;
        Ok(match applied {
            Applied::Written(t) => Cancelled::of(&Ok(t)),
            Applied::Refused(r) => Cancelled::of(&Err(r)),
            Applied::Gone => Cancelled::NotFound,
        })
    }

    /// Changes a waiting request's daily window through the lifecycle
    /// ([`crate::policy::lifecycle::Event::Window`]): the new window, due time and deadline
    /// with an audit row naming `actor`.
    pub async fn set_window(
        &self,
        id: i64,
        rules: &crate::policy::lifecycle::Rules<'_>,
        window: Option<crate::calendar::DayRange>,
        actor: &str,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        use crate::policy::lifecycle::{Event, step};
        self.apply(id, now, |req, records| {
            step(Some(rules), &req.facts(records), Event::Window { actor, window }, now)
        })
        .await
    }

    /// The patient asks to be called on the next open day instead: an
    /// [`Event::NextOpenDay`](crate::policy::lifecycle::Event::NextOpenDay) transition
    /// (new due time and deadline, audit row by `actor`), refused when the service does not
    /// allow it or the request is not waiting.
    pub async fn set_next_open_day(
        &self,
        id: i64,
        rules: &crate::policy::lifecycle::Rules<'_>,
        actor: &str,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        use crate::policy::lifecycle::{Event, step};
        self.apply(id, now, |req, records| {
            step(Some(rules), &req.facts(records), Event::NextOpenDay { actor }, now)
        })
        .await
    }

    /// Claims a waiting request for an attempt, the write of a `Serve` transition to
    /// `dialing`: the request becomes `dialing` and a live attempt row is written, both
    /// before any call is placed. `None` when another claimer was first or the request is
    /// no longer waiting.
    pub async fn claim(
        &self,
        req: &Request,
        now: Timestamp,
    ) -> Result<Option<Attempt>, StoreError> {
        let mut claimed = self.claim_all(std::slice::from_ref(req), now).await?;
        Ok(claimed.pop().flatten())
    }

    /// [`Store::claim`] of several requests in one transaction (one commit, one fsync on
    /// SQLite): the attempt of each, in order, or `None` for one that another claimer took
    /// first or that is no longer waiting. Each claim is written whole or not at all, and
    /// all of them are committed before this returns.
    ///
    /// A claim that finds its request taken writes nothing, so the batch needs no
    /// savepoints. Only an attempt refused after its request was updated (a duplicate
    /// attempt number, which the write lock and the request's row lock leave to a foreign
    /// writer) must be undone alone: then the batch is rolled back and claimed again, each
    /// claim under its own savepoint.
    pub async fn claim_all(
        &self,
        reqs: &[Request],
        now: Timestamp,
    ) -> Result<Vec<Option<Attempt>>, StoreError> {
        if let Some(out) = self.claim_batch(reqs, now, false).await? {
            return Ok(out);
        }
        if reqs.len() == 1 {
            return Ok(vec![None]);
        }
        let out = self.claim_batch(reqs, now, true).await?;
        Ok(out.unwrap_or_else(|| vec![None; reqs.len()]))
    }

    /// One transaction of [`Store::claim_all`]. `None` when a claim met a conflict without
    /// `savepoints` (then the transaction was rolled back: nothing was written).
    async fn claim_batch(
        &self,
        reqs: &[Request],
        now: Timestamp,
        savepoints: bool,
    ) -> Result<Option<Vec<Option<Attempt>>>, StoreError> {
        if !savepoints && distinct(&reqs.iter().map(|r| r.id).collect::<Vec<_>>()) {
            return self.claim_together(reqs, now).await;
        }
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let one = if savepoints {
                sqlx::query("SAVEPOINT claim").execute(&mut **tx).await?;
                let one = claim_in(&mut tx, req, now).await;
                if !matches!(one, Ok(Claim::Claimed(_))) {
                    sqlx::query("ROLLBACK TO claim").execute(&mut **tx).await?;
                }
                sqlx::query("RELEASE claim").execute(&mut **tx).await?;
                one?
            } else {
                claim_in(&mut tx, req, now).await?
            };
            out.push(match one {
                Claim::Claimed(attempt) => Some(attempt),
                Claim::Taken => None,
                Claim::Conflict if savepoints => None,
                Claim::Conflict => {
                    tx.rollback().await?;
                    return Ok(None);
                }
            });
        }
        if out.iter().any(Option::is_some) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(Some(out))
    }

    /// [`Store::claim_all`]'s batch of distinct requests without savepoints, in three
    /// statements whatever its size: the requests still waiting become `dialing` (their
    /// fencing tokens move on), then their attempts, then their audit rows. `None` when an
    /// attempt was refused (then the transaction was rolled back: nothing was written).
    async fn claim_together(
        &self,
        reqs: &[Request],
        now: Timestamp,
    ) -> Result<Option<Vec<Option<Attempt>>>, StoreError> {
        let mut tx = self.write_tx().await?;
        let list = self.backend.params(1, reqs.len());
        let sql = format!(
            "UPDATE requests SET state = 'dialing', version = version + 1 \
             WHERE id IN ({list}) AND state IN {WAITING} RETURNING id, version"
        );
        let mut update =
            sqlx::query_as::<_, (i64, i64)>(&sql).persistent(reqs.len() <= super::CACHED_ROWS);
        for req in reqs {
            update = update.bind(req.id);
        }
        let versions: std::collections::HashMap<i64, i64> =
            update.fetch_all(&mut **tx).await?.into_iter().collect();
        let claimed: Vec<&Request> = reqs.iter().filter(|r| versions.contains_key(&r.id)).collect();
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(Some(vec![None; reqs.len()]));
        }
        // Each attempt: request, next number (of the same request), start, fencing token.
        let rows = (0..claimed.len())
            .map(|i| {
                let p = |n| self.backend.param(4 * i + n);
                let (r, r2, start, f) = (p(1), p(2), p(3), p(4));
                format!(
                    "({r}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM attempts WHERE request_id = {r2}), {start}, {f})"
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO attempts (request_id, seq, started_at, fence) VALUES {rows} \
             RETURNING {ATTEMPT_COLUMNS}"
        );
        let mut insert = sqlx::query(&sql).persistent(claimed.len() <= super::CACHED_ROWS);
        for req in &claimed {
            insert = insert.bind(req.id).bind(req.id).bind(ms(now)).bind(versions[&req.id]);
        }
        let attempts = match insert.fetch_all(&mut **tx).await {
            Ok(rows) => rows.iter().map(attempt_from).collect::<Result<Vec<_>, _>>()?,
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        // The order of RETURNING rows is not defined: each attempt by its request.
        let mut by_request: std::collections::HashMap<i64, Attempt> =
            attempts.into_iter().map(|a| (a.request_id, a)).collect();
        let trail: Vec<Audit> = claimed
            .iter()
            .filter_map(|req| {
                let seq = by_request.get(&req.id)?.seq;
                Some(Audit {
                    request_id: req.id,
                    from: Some(req.state),
                    to: State::Dialing,
                    actor: "scheduler".to_owned(),
                    detail: format!("attempt {seq}"),
                })
            })
            .collect();
        audit_all(self.backend, &mut tx, &trail, now).await?;
        tx.commit().await?;
        Ok(Some(reqs.iter().map(|req| by_request.remove(&req.id)).collect()))
    }

    /// Writes the answer mark of a live attempt (the far end answered at `at`), before the
    /// call goes on; a mark already there is kept. False when the attempt is not live.
    /// Returns once the mark is committed. SQLite: marks written at about the same time
    /// (and intakes) share one transaction and one commit (group commit, see `intake`).
    pub async fn mark_answered(&self, attempt_id: i64, at: Timestamp) -> Result<bool, StoreError> {
        match self.backend {
            Backend::Sqlite => self.mark_answered_grouped(attempt_id, ms(at)).await,
            Backend::Postgres => self.mark_answered_one(attempt_id, ms(at)).await,
        }
    }

    /// [`Store::mark_answered`] in a statement of its own.
    pub(super) async fn mark_answered_one(
        &self,
        attempt_id: i64,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(super::intake::MARK_ANSWERED)
            .bind(attempt_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Flags requests whose same-day deadline passed unserved; returns how many per service.
    /// The `DeadlinePassed` transition of every live request at once, in one indexed UPDATE
    /// (`requests_open_deadline`): its WHERE is [`misses_deadline`] in SQL.
    pub async fn mark_missed(&self, now: Timestamp) -> Result<Vec<(String, i64)>, StoreError> {
        const _: fn(State, Timestamp, bool, Timestamp) -> bool = misses_deadline;
        let rows = sqlx::query(&format!(
            "UPDATE requests SET deadline_missed = 1 \
             WHERE deadline_missed = 0 AND state IN {} AND deadline_at <= $1 RETURNING service",
            super::LIVE
        ))
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        let mut counts: Vec<(String, i64)> = Vec::new();
        for row in &rows {
            let service: String = row.try_get("service")?;
            match counts.iter_mut().find(|(s, _)| *s == service) {
                Some((_, n)) => *n += 1,
                None => counts.push((service, 1)),
            }
        }
        Ok(counts)
    }
}

/// What one claim inside a transaction did.
#[derive(Debug)]
enum Claim {
    /// The request is `dialing` with this live attempt.
    Claimed(Attempt),
    /// The request was no longer waiting: nothing was written.
    Taken,
    /// The request was updated but its attempt refused as a duplicate: the update must be
    /// undone (rolled back to before the claim).
    Conflict,
}

/// One claim inside `tx` (see [`Store::claim`]).
async fn claim_in(tx: &mut Tx<'_>, req: &Request, now: Timestamp) -> Result<Claim, StoreError> {
    // The fencing token (`version`) moves on at every claim; the attempt carries it.
    let Some(version) = sqlx::query(&format!(
        "UPDATE requests SET state = 'dialing', version = version + 1 \
         WHERE id = $1 AND state IN {WAITING} RETURNING version"
    ))
    .bind(req.id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(Claim::Taken);
    };
    let version: i64 = version.try_get("version")?;
    let row = sqlx::query(&format!(
        "INSERT INTO attempts (request_id, seq, started_at, fence) \
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM attempts WHERE request_id = $1), $2, $3) \
         RETURNING {ATTEMPT_COLUMNS}"
    ))
    .bind(req.id)
    .bind(ms(now))
    .bind(version)
    .fetch_one(&mut **tx)
    .await;
    let row = match row {
        Ok(row) => row,
        Err(e) if is_unique_violation(&e) => return Ok(Claim::Conflict),
        Err(e) => return Err(e.into()),
    };
    let attempt = attempt_from(&row)?;
    audit(
        tx,
        req.id,
        now,
        Some(req.state),
        State::Dialing,
        "scheduler",
        &format!("attempt {}", attempt.seq),
    )
    .await?;
    Ok(Claim::Claimed(attempt))
}

/// The condition that an attempt row is live and may take the outcome `fence` allows: no
/// outcome yet, the request's fencing token `version` (a parameter such as `$7`) still the
/// attempt's, and for a take-over its lease expired before `now` (a parameter too).
fn live_where(fence: Fence, version: &str, now: &str) -> String {
    let lease = match fence {
        Fence::Own => String::new(),
        Fence::Expired => format!(" AND (lease_until IS NULL OR lease_until < {now})"),
    };
    format!("outcome IS NULL AND (fence IS NULL OR fence = {version}){lease}")
}

/// A query of the `Any` driver.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds the request row of `t` decided on `req`, in the order both request-row `UPDATE`s
/// take it: id, state, due time, attempts counted, final instant (when it becomes final),
/// end reason, cancel-requested and deadline-missed flags.
fn bind_row<'q>(
    query: AnyQuery<'q>,
    req: &Request,
    t: &'q Transition,
    now: Timestamp,
) -> AnyQuery<'q> {
    let final_at = (t.to.is_final() && !t.from.is_final()).then_some(ms(now));
    query
        .bind(req.id)
        .bind(t.to.as_str())
        .bind(t.due.map(ms))
        .bind(i64::from(t.counted))
        .bind(final_at)
        .bind(t.end_reason.as_deref())
        .bind(i64::from(t.cancel_requested))
        .bind(i64::from(t.deadline_missed))
}

/// An end of [`Store::finish_read_all`] decided to a transition that ends its attempt.
struct Decided<'a, 'b> {
    /// Its place in the answers.
    at: usize,
    end: &'a Finish<'b>,
    req: Request,
    /// The request's fencing token, as read.
    version: i64,
    /// The outcome the transition writes on the attempt.
    ended: AttemptEnd,
    t: Transition,
}

/// A request as an outcome is decided on: the row, its fencing token and its finished
/// attempts, read in the write transaction.
type Stored = (Request, i64, Vec<AttemptRecord>);

/// Whether no id appears twice in `ids` (statements over several rows need each once).
fn distinct(ids: &[i64]) -> bool {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.windows(2).all(|w| w[0] != w[1])
}
