//! Today's figures of the supervisor page (`GET /v1/live`), from the same rows and rules
//! as the reports: the same-day rate of the requests made today so far, and the deadlines
//! that fell today and were missed.

use super::{History, Period, Query, Share, compute};
use crate::policy::Outcome;
use crate::policy::lifecycle::State;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, HashMap};

/// One service's figures of today.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Today {
    /// Requests made today.
    pub requests: u64,
    /// The same-day rate of today's requests so far (as in a report of today).
    pub same_day: Share,
    /// Requests whose deadline fell today before `now` without a connected call by then
    /// (cancelled requests left out).
    pub missed: u64,
}

/// Today's figures per service. `history` holds the requests made since yesterday's local
/// midnight (a deadline is at most the next opening day, so today's deadlines are there).
pub fn today(
    history: &History,
    services: &[String],
    tz: &TimeZone,
    today: Date,
    now: Timestamp,
) -> BTreeMap<String, Today> {
    let query = Query {
        period: Period { kind: super::Kind::Range, from: today, to: today },
        services: services.to_vec(),
        tz: tz.clone(),
    };
    let report = compute(history, &query, now);
    let mut out: BTreeMap<String, Today> = report
        .sections
        .into_iter()
        .filter_map(|s| {
            let id = s.service?;
            Some((
                id,
                Today { requests: s.current.requests, same_day: s.current.same_day, missed: 0 },
            ))
        })
        .collect();
    let (start, _) = query.period.instants(tz);
    let mut connected: HashMap<i64, Timestamp> = HashMap::new();
    for a in &history.attempts {
        if a.outcome == Some(Outcome::Connected) {
            connected.insert(a.request_id, a.answered_at.unwrap_or(a.started_at));
        }
    }
    for r in &history.requests {
        let due_today = r.deadline_at >= start && r.deadline_at <= now;
        let in_time = connected.get(&r.id).is_some_and(|at| *at <= r.deadline_at);
        if due_today && !in_time && r.state != State::Cancelled {
            if let Some(t) = out.get_mut(&r.service) {
                t.missed += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AttemptRow, RequestRow};
    use jiff::civil::date;

    #[test]
    fn today_counts_same_day_and_misses() {
        let tz = TimeZone::get("Europe/Helsinki").expect("test value");
        let t = |d: i8, h: i8, m: i8| {
            date(2026, 11, d).at(h, m, 0, 0).to_zoned(tz.clone()).expect("test value").timestamp()
        };
        let req = |id, state, created, deadline| RequestRow {
            id,
            service: "kallio".into(),
            channel: "api".into(),
            state,
            created_at: created,
            deadline_at: deadline,
            deadline_missed: false,
            told: None,
        };
        let h = History {
            requests: vec![
                // Yesterday 15:55, deadline today 16:00... passed now (16:30), never reached.
                req(1, State::RetryWait, t(23, 15, 55), t(24, 16, 0)),
                // Today, reached in time.
                req(2, State::Connected, t(24, 9, 0), t(24, 16, 0)),
                // Today, deadline passed, expired.
                req(3, State::Expired, t(24, 10, 0), t(24, 16, 0)),
                // Today, cancelled: neither missed nor in the rate.
                req(4, State::Cancelled, t(24, 11, 0), t(24, 16, 0)),
                // Today 16:10, deadline tomorrow: still open, out of the rate.
                req(5, State::Pending, t(24, 16, 10), t(25, 16, 0)),
            ],
            attempts: vec![AttemptRow {
                request_id: 2,
                seq: 1,
                started_at: t(24, 9, 30),
                answered_at: None,
                outcome: Some(Outcome::Connected),
            }],
            sms: vec![],
        };
        let out = today(&h, &["kallio".into()], &tz, date(2026, 11, 24), t(24, 16, 30));
        let k = &out["kallio"];
        assert_eq!(k.requests, 4);
        assert_eq!((k.same_day.hits, k.same_day.of), (1, 2));
        assert_eq!(k.missed, 2);
    }
}
