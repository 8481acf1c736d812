//! Intake writes, and group commit for SQLite.
//!
//! With `synchronous = FULL` every SQLite commit waits for an fsync of the WAL (a few
//! milliseconds on a virtual disk), so one transaction per request caps intake at the
//! disk's fsync rate. Instead, concurrent intakes of one SQLite store are handed to one
//! writer task that takes every intake waiting at that moment (up to [`MAX_BATCH`]) into
//! one transaction and one commit, then answers each of them. No intake waits for a timer:
//! while one batch commits, the next one gathers.
//!
//! The answer marks of calls ([`Store::mark_answered`]) go through the same writer: the
//! calls answered while a batch commits share the next commit with each other and with
//! any intakes, and each call goes on only once the commit holding its mark returned. The
//! marks of a batch are one UPDATE, written without a savepoint; should the database refuse
//! it (a constraint: SQLite undoes just that statement), each mark is written on its own,
//! so a refused one fails alone. Any other failure of a mark (a full disk can end the
//! whole transaction) fails its batch, answered so.
//!
//! The guarantees stay those of one transaction per request:
//! - An intake is answered only after the commit holding it returned (is on disk); if the
//!   commit fails, every intake of the batch gets the error and none was stored.
//! - The intakes of a batch are written together, in a few statements for the whole batch
//!   ([`intakes_together`]): each statement is a round trip to SQLite's connection thread,
//!   and one per request made those hand-offs most of an intake's CPU. Should any of them
//!   fail, what they wrote is undone and the batch is written again one request at a time,
//!   each under its own savepoint: a request whose statements fail is rolled back alone and
//!   answered with its error, and the rest of the batch goes on.
//! - The live-number dedup holds inside a batch too: a second intake of the same number and
//!   service meets the first one's row (same transaction) through the unique index, and is
//!   answered as its duplicate once the batch committed.
//! - The pure [`crate::policy::lifecycle::intake`] decides; this module only writes its
//!   request row, audit row and SMS rows, as the single-request path does.
//!
//! PostgreSQL keeps one transaction per request: several servers write at once there, and
//! the server groups concurrent commits' WAL flushes by itself.

use super::{
    Enqueued, LIVE, NewRequest, REQUEST_COLUMNS, Request, Store, StoreError, Tx, audit,
    is_unique_violation, ms, request_from, sms,
};
use crate::policy::Plan;
use crate::policy::lifecycle::Intake;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

/// The most intakes written in one transaction.
pub const MAX_BATCH: usize = 256;

/// Intakes waiting for the writer, beyond which senders wait (back-pressure).
const QUEUE: usize = 4 * MAX_BATCH;

/// One write handed to the writer task.
pub(crate) enum Job {
    /// An intake.
    Intake {
        new: Box<NewRequest>,
        plan: Plan,
        reply: oneshot::Sender<Result<Enqueued, StoreError>>,
    },
    /// The answer mark of a live attempt ([`Store::mark_answered`]): whether the attempt
    /// was there to mark.
    Answered { attempt_id: i64, at: i64, reply: oneshot::Sender<Result<bool, StoreError>> },
}

impl Job {
    /// Answers the job with a failure of its whole batch.
    fn fail(self, e: &StoreError) {
        match self {
            Job::Intake { reply, .. } => {
                let _ = reply.send(Err(again(e)));
            }
            Job::Answered { reply, .. } => {
                let _ = reply.send(Err(again(e)));
            }
        }
    }
}

/// The writer task's input, started on the first intake (in the runtime that makes it).
pub(crate) type Batcher = std::sync::Arc<std::sync::OnceLock<mpsc::Sender<Job>>>;

/// What became of one write inside a batch, before the commit.
enum Written {
    /// Stored (not yet committed).
    New(Request),
    /// A live request of the same number and service exists (perhaps earlier in the batch).
    Duplicate(Request),
    /// An answer mark: whether the attempt was there.
    Marked(bool),
}

impl Store {
    /// The group-commit writer's input, the writer started on first use.
    fn writer(&self) -> &mpsc::Sender<Job> {
        self.batcher.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            // The writer's own handle has no writer: it ends when every other handle of
            // this store is dropped.
            let writer = Store { batcher: Batcher::default(), ..self.clone() };
            tokio::spawn(writer.write_batches(rx));
            tx
        })
    }

    /// Writes one intake through the group-commit writer (SQLite).
    pub(super) async fn enqueue_grouped(
        &self,
        new: &NewRequest,
        plan: &Plan,
    ) -> Result<Enqueued, StoreError> {
        self.health.check()?;
        let (reply, answer) = oneshot::channel();
        let job = Job::Intake { new: Box::new(new.clone()), plan: *plan, reply };
        if let Err(mpsc::error::SendError(Job::Intake { new, plan, .. })) =
            self.writer().send(job).await
        {
            // The writer is gone (its runtime ended): this intake was not written.
            return self.enqueue_one(&new, &plan).await;
        }
        // A writer that vanished without answering may or may not have committed: not
        // acknowledged either way (a retry is answered as a duplicate if it was stored).
        answer.await.unwrap_or(Err(StoreError::NotCommitted(
            "the intake writer stopped before answering".to_owned(),
        )))
    }

    /// Writes an answer mark through the group-commit writer (SQLite): the marks of calls
    /// answered at about the same time share one commit, and each caller gets its answer
    /// once that commit returned.
    pub(super) async fn mark_answered_grouped(
        &self,
        attempt_id: i64,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.health.check()?;
        let (reply, answer) = oneshot::channel();
        let job = Job::Answered { attempt_id, at, reply };
        if self.writer().send(job).await.is_err() {
            // The writer is gone (its runtime ended): the mark was not written.
            return self.mark_answered_one(attempt_id, at).await;
        }
        answer.await.unwrap_or(Err(StoreError::NotCommitted(
            "the writer stopped before answering".to_owned(),
        )))
    }

    /// The writer task: one transaction per batch of waiting writes, until every sender
    /// is gone.
    async fn write_batches(self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.write_batch(std::mem::take(&mut batch)).await;
            batch.reserve(MAX_BATCH);
        }
    }

    /// Writes and commits one batch, then answers every write in it.
    async fn write_batch(&self, batch: Vec<Job>) {
        let mut tx = match self.write_tx().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(batch, &e),
        };
        let mut done: Vec<(Job, Result<Written, StoreError>)> = Vec::with_capacity(batch.len());
        let mut broken = None;
        // The batch's marks in one statement; should the database refuse it, each mark is
        // written on its own below, so a refused one fails alone.
        let marked = match marks_in(self.backend, &mut tx, &batch).await {
            Ok(marked) => marked,
            Err(e) if undone_alone(&e) => None,
            Err(e) => {
                let _ = tx.rollback().await;
                return fail_all(batch, &StoreError::NotCommitted(e.to_string()));
            }
        };
        // Two or more intakes are written together; should that fail, one at a time below.
        let intakes: Vec<(&NewRequest, &Plan)> = batch
            .iter()
            .filter_map(|job| match job {
                Job::Intake { new, plan, .. } => Some((new.as_ref(), plan)),
                Job::Answered { .. } => None,
            })
            .collect();
        let mut together_written = if intakes.len() >= 2 {
            match together(self.backend, &mut tx, &intakes).await {
                Ok(written) => {
                    crate::metrics::intake_batch(if written.is_some() {
                        "together"
                    } else {
                        "after_refusal"
                    });
                    written.map(Vec::into_iter)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    return fail_all(batch, &StoreError::NotCommitted(e.to_string()));
                }
            }
        } else {
            if !intakes.is_empty() {
                crate::metrics::intake_batch("single");
            }
            None
        };
        for job in batch {
            if broken.is_some() {
                done.push((job, Err(StoreError::NotCommitted("batch aborted".to_owned()))));
                continue;
            }
            let written = match &job {
                // One UPDATE of one row needs no savepoint: a refused statement is undone
                // by itself and fails alone; any other failure (a full disk can end the
                // whole transaction) fails the batch.
                Job::Answered { attempt_id, .. } if marked.is_some() => {
                    Ok(Written::Marked(marked.as_ref().is_some_and(|m| m.contains(attempt_id))))
                }
                Job::Answered { attempt_id, at, .. } => mark_in(&mut tx, *attempt_id, *at)
                    .await
                    .map_err(|e| if undone_alone(&e) { Step::Own(e) } else { Step::Batch(e) }),
                Job::Intake { .. } if together_written.is_some() => {
                    together_written.as_mut().and_then(Iterator::next).ok_or_else(|| {
                        Step::Batch(StoreError::NotCommitted(
                            "an intake was not written".to_owned(),
                        ))
                    })
                }
                Job::Intake { new, plan, .. } => match savepoint(&mut tx).await {
                    Ok(()) => {
                        let admitted = crate::policy::lifecycle::intake(
                            plan,
                            &new.channel,
                            new.sms_notice,
                            new.created_at,
                        );
                        let written = write_one(&mut tx, new, plan, &admitted).await;
                        released(&mut tx, written).await
                    }
                    Err(step) => Err(step),
                },
            };
            match written {
                Ok(w) => done.push((job, Ok(w))),
                Err(Step::Own(e)) => done.push((job, Err(e))),
                Err(Step::Batch(e)) => {
                    broken = Some(e.to_string());
                    done.push((job, Err(e)));
                }
            }
        }
        if let Some(why) = broken {
            let _ = tx.rollback().await;
            let e = StoreError::NotCommitted(why);
            return fail_all(done.into_iter().map(|(j, _)| j).collect(), &e);
        }
        if let Err(e) = tx.commit().await {
            let e = StoreError::from(e);
            return fail_all(done.into_iter().map(|(j, _)| j).collect(), &e);
        }
        for (job, written) in done {
            // A caller that went away gets no answer; its write is stored all the same.
            match job {
                Job::Intake { reply, .. } => {
                    let answer = written.and_then(|w| match w {
                        Written::New(request) => Ok(Enqueued { request, duplicate: false }),
                        Written::Duplicate(request) => Ok(Enqueued { request, duplicate: true }),
                        Written::Marked(_) => Err(StoreError::NotCommitted(
                            "an intake was answered as a mark".to_owned(),
                        )),
                    });
                    let _ = reply.send(answer);
                }
                Job::Answered { reply, .. } => {
                    let _ = reply.send(written.map(|w| matches!(w, Written::Marked(true))));
                }
            }
        }
    }
}

/// A failure inside a batch: of this request only (rolled back to its savepoint), or of
/// the whole transaction.
enum Step {
    Own(StoreError),
    Batch(StoreError),
}

/// Whether a failed statement was undone alone, leaving its transaction as it was: a
/// refused constraint (SQLite's primary result code 19, which a trigger's `RAISE(ABORT)`
/// also gives). SQLite may roll back the whole transaction on other failures (a full disk,
/// an I/O error, a lock, memory).
fn undone_alone(e: &StoreError) -> bool {
    let StoreError::Db(sqlx::Error::Database(d)) = e else { return false };
    d.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|c| c & 0xff == 19)
}

/// Opens the savepoint of one write: its own failure rolls back only what it wrote.
async fn savepoint(tx: &mut Tx<'_>) -> Result<(), Step> {
    sqlx::query("SAVEPOINT intake").execute(&mut **tx).await.map_err(|e| Step::Batch(e.into()))?;
    Ok(())
}

/// Closes the savepoint of one write: released when it was written, rolled back when not.
async fn released(tx: &mut Tx<'_>, written: Result<Written, StoreError>) -> Result<Written, Step> {
    let end = match written {
        Ok(_) => "RELEASE intake",
        Err(_) => "ROLLBACK TO intake",
    };
    sqlx::query(end).execute(&mut **tx).await.map_err(|e| Step::Batch(e.into()))?;
    if written.is_err() {
        sqlx::query("RELEASE intake")
            .execute(&mut **tx)
            .await
            .map_err(|e| Step::Batch(e.into()))?;
    }
    written.map_err(Step::Own)
}

/// The answer marks of a batch with more than one, inside `tx`, in one statement: the
/// attempts that were there to mark. `None` when the batch has fewer than two marks (each is
/// written on its own). A second mark of the same attempt keeps the first one's instant, as
/// written one after the other.
async fn marks_in(
    backend: super::Backend,
    tx: &mut Tx<'_>,
    batch: &[Job],
) -> Result<Option<std::collections::HashSet<i64>>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let marks: Vec<(i64, i64)> = batch
        .iter()
        .filter_map(|job| match job {
            Job::Answered { attempt_id, at, .. } => Some((*attempt_id, *at)),
            Job::Intake { .. } => None,
        })
        .filter(|(id, _)| seen.insert(*id))
        .collect();
    if marks.len() < 2 {
        return Ok(None);
    }
    let mut marked = std::collections::HashSet::with_capacity(marks.len());
    for chunk in marks.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE attempts SET answered_at = COALESCE(attempts.answered_at, v.column2) \
             FROM (VALUES {}) AS v WHERE attempts.id = v.column1 RETURNING attempts.id",
            super::values_list(backend, chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
        for (id, at) in chunk {
            query = query.bind(*id).bind(*at);
        }
        for row in query.fetch_all(&mut **tx).await? {
            marked.insert(row.try_get::<i64, _>(0)?);
        }
    }
    Ok(Some(marked))
}

/// The answer mark of an attempt, inside `tx`.
async fn mark_in(tx: &mut Tx<'_>, attempt_id: i64, at: i64) -> Result<Written, StoreError> {
    let done = sqlx::query(MARK_ANSWERED).bind(attempt_id).bind(at).execute(&mut **tx).await?;
    Ok(Written::Marked(done.rows_affected() == 1))
}

/// Writes the answer mark of a live attempt; a mark already there is kept.
pub(super) const MARK_ANSWERED: &str =
    "UPDATE attempts SET answered_at = COALESCE(answered_at, $2) WHERE id = $1";

/// The request row (or the live one it duplicates), its audit row and SMS rows.
async fn write_one(
    tx: &mut Tx<'_>,
    new: &NewRequest,
    plan: &Plan,
    admitted: &Intake,
) -> Result<Written, StoreError> {
    match insert(tx, new, plan, admitted).await {
        Ok(request) => {
            audit(
                tx,
                request.id,
                new.created_at,
                None,
                admitted.to,
                &admitted.audit.actor,
                &admitted.audit.detail,
            )
            .await?;
            for intent in &admitted.sms {
                sms::queue(tx, &request, intent, new.created_at).await?;
            }
            Ok(Written::New(request))
        }
        // Inside the write transaction nothing can end the live request in between.
        Err(e) if is_unique_violation(&e) => match live_in(tx, new).await? {
            Some(existing) => Ok(Written::Duplicate(existing)),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// The columns an intake writes, in the order [`bind_row`] binds them.
const INSERT_COLUMNS: &str = "service, number, state, channel, lang, window_start, window_end, \
     sms_consent, created_at, due_at, deadline_at, expires_at, team, told_from, told_to, told_at, \
     told_same_day";

/// How many columns [`INSERT_COLUMNS`] lists.
const INSERT_WIDTH: usize = 17;

/// Binds the [`INSERT_COLUMNS`] of one request as intake decided it.
fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    new: &'q NewRequest,
    plan: &Plan,
    admitted: &Intake,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&new.service)
        .bind(new.number.as_str())
        .bind(admitted.to.as_str())
        .bind(&new.channel)
        .bind(new.lang.code())
        .bind(new.window.map(|w| i64::from(w.start_minute())))
        .bind(new.window.map(|w| i64::from(w.end_minute())))
        .bind(i64::from(new.sms_consent))
        .bind(ms(new.created_at))
        .bind(ms(admitted.due))
        .bind(ms(plan.deadline))
        .bind(ms(plan.expires))
        .bind(new.team.as_deref())
        .bind(new.told.map(|t| ms(t.from)))
        .bind(new.told.map(|t| ms(t.to)))
        .bind(new.told.map(|t| ms(t.at)))
        .bind(new.told.map(|t| i64::from(t.same_day)))
}

/// Inserts the request row as intake decided it.
pub(super) async fn insert(
    tx: &mut Tx<'_>,
    new: &NewRequest,
    plan: &Plan,
    admitted: &Intake,
) -> Result<Request, sqlx::Error> {
    let params = (1..=INSERT_WIDTH).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "INSERT INTO requests ({INSERT_COLUMNS}) VALUES ({params}) RETURNING {REQUEST_COLUMNS}"
    );
    let row = bind_row(sqlx::query(&sql), new, plan, admitted).fetch_one(&mut **tx).await?;
    request_from(&row).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Writes the intakes of a batch together, with the answers writing them one after the
/// other gives: a number live in its service, or taken by an earlier intake of the batch,
/// is answered as the duplicate of that request; every new request gets its audit row and
/// SMS rows. One read of the live requests with the batch's numbers, one INSERT of the new
/// requests, one of their audit rows, and the SMS rows ([`sms::queue_all`]), each in
/// statements of at most [`super::ROWS_PER_STATEMENT`] rows, instead of a savepoint and
/// four or five statements per intake: every statement is a round trip to SQLite's
/// connection thread, and those hand-offs, not SQLite's own work, were most of an
/// intake's CPU. On any failure the caller undoes what this wrote and writes the intakes
/// one at a time, so a refused intake fails alone.
async fn intakes_together(
    backend: super::Backend,
    tx: &mut Tx<'_>,
    intakes: &[(&NewRequest, &Plan)],
) -> Result<Vec<Written>, StoreError> {
    use std::collections::HashMap;
    let admitted: Vec<Intake> = intakes
        .iter()
        .map(|(new, plan)| {
            crate::policy::lifecycle::intake(plan, &new.channel, new.sms_notice, new.created_at)
        })
        .collect();
    let key = |new: &NewRequest| (new.service.clone(), new.number.as_str().to_owned());
    // The live requests already there, by service and number.
    let mut live: HashMap<(String, String), Request> = HashMap::new();
    let mut keys: Vec<(String, String)> = intakes.iter().map(|(new, _)| key(new)).collect();
    keys.sort();
    keys.dedup();
    for chunk in keys.chunks(super::ROWS_PER_STATEMENT) {
        // Joined from the list, so each pair is one search of `requests_live_number` (an
        // OR of pairs would scan every live request of the service).
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM (VALUES {}) AS v CROSS JOIN requests \
             ON requests.service = v.column1 AND requests.number = v.column2 \
             WHERE requests.state IN {LIVE}",
            super::values_list(backend, chunk.len(), 2)
        );
        let mut read = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
        for (service, number) in chunk {
            read = read.bind(service).bind(number);
        }
        for row in read.fetch_all(&mut **tx).await? {
            let req = request_from(&row)?;
            if let Some(n) = &req.number {
                live.insert((req.service.clone(), n.as_str().to_owned()), req.clone());
            }
        }
    }
    // Which intakes are new: the first of each number not live yet.
    let mut first: HashMap<(String, String), usize> = HashMap::new();
    let fresh: Vec<usize> = (0..intakes.len())
        .filter(|&i| {
            let k = key(intakes[i].0);
            !live.contains_key(&k) && first.insert(k, i).is_none()
        })
        .collect();
    let mut stored: HashMap<(String, String), Request> = HashMap::with_capacity(fresh.len());
    for chunk in fresh.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO requests ({INSERT_COLUMNS}) VALUES {} RETURNING {REQUEST_COLUMNS}",
            super::values_list(backend, chunk.len(), INSERT_WIDTH)
        );
        let mut insert = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
        for &i in chunk {
            insert = bind_row(insert, intakes[i].0, intakes[i].1, &admitted[i]);
        }
        // The order of RETURNING rows is not defined: each by its service and number,
        // which are distinct among the rows of the statement.
        for row in insert.fetch_all(&mut **tx).await? {
            let req = request_from(&row)?;
            let number = req.number.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default();
            stored.insert((req.service.clone(), number), req);
        }
    }
    let mut written = Vec::with_capacity(intakes.len());
    let (mut trail, mut texts) = (Vec::new(), Vec::new());
    for (i, (new, _)) in intakes.iter().enumerate() {
        let k = key(new);
        if let Some(existing) = live.get(&k) {
            written.push(Written::Duplicate(existing.clone()));
            continue;
        }
        let req = stored.get(&k).ok_or_else(|| {
            StoreError::NotCommitted(format!("request {} {} was not returned", k.0, new.number))
        })?;
        if first.get(&k) != Some(&i) {
            written.push(Written::Duplicate(req.clone()));
            continue;
        }
        trail.push((
            new.created_at,
            super::Audit {
                request_id: req.id,
                from: None,
                to: admitted[i].to,
                actor: admitted[i].audit.actor.clone(),
                detail: admitted[i].audit.detail.clone(),
            },
        ));
        for intent in &admitted[i].sms {
            texts.push((req, intent, new.created_at));
        }
        written.push(Written::New(req.clone()));
    }
    let rows: Vec<_> = trail.iter().map(|(at, a)| (*at, a)).collect();
    super::audit_each(backend, tx, &rows).await?;
    sms::queue_all(backend, tx, &texts).await?;
    Ok(written)
}

/// [`intakes_together`] under a savepoint: `None` when it failed and what it wrote was
/// undone (the caller then writes the intakes one at a time); an error only when the
/// transaction itself cannot go on.
async fn together(
    backend: super::Backend,
    tx: &mut Tx<'_>,
    intakes: &[(&NewRequest, &Plan)],
) -> Result<Option<Vec<Written>>, StoreError> {
    sqlx::query("SAVEPOINT together").execute(&mut **tx).await?;
    let end = match intakes_together(backend, tx, intakes).await {
        Ok(written) => Some(written),
        Err(e) => {
            tracing::debug!(error = %e, "intakes of a batch written one at a time");
            sqlx::query("ROLLBACK TO together").execute(&mut **tx).await?;
            None
        }
    };
    sqlx::query("RELEASE together").execute(&mut **tx).await?;
    Ok(end)
}

/// The live request of the number in the service, read inside `tx`.
async fn live_in(tx: &mut Tx<'_>, new: &NewRequest) -> Result<Option<Request>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests \
         WHERE service = $1 AND number = $2 AND state IN {LIVE}"
    ))
    .bind(&new.service)
    .bind(new.number.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(request_from).transpose()
}

/// Answers every write of a batch that was not committed with the same failure.
fn fail_all(batch: Vec<Job>, e: &StoreError) {
    for job in batch {
        job.fail(e);
    }
}

/// The same failure once more, for another intake of the batch.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Refusing(f) => StoreError::Refusing(*f),
        other => StoreError::NotCommitted(other.to_string()),
    }
}
