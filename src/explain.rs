//! `callbackd next-attempt`: what the policy says about one request, in words.
//!
//! Pure: a service, the request's facts and `now` in, text out. The command line only parses
//! its arguments with [`parse_instant`] and [`parse_attempt`] and prints the result; an
//! operator uses it to see why a request waits.

use crate::calendar::DayRange;
use crate::dialplan::Service;
use crate::policy::{self, AttemptRecord, Decision, Now, Outcome, RequestFacts};
use jiff::Timestamp;
use jiff::civil::DateTime;
use std::fmt::Write as _;

/// Input that cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// A time that is neither local civil time nor an RFC 3339 instant.
    #[error("{what}: {value:?} is not a time like 2026-11-23T15:55 or 2026-11-23T13:55:00Z")]
    BadTime {
        /// Which argument.
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// An attempt not written as `TIME=OUTCOME`.
    #[error("--attempt {0:?}: expected TIME=OUTCOME")]
    BadAttempt(String),
    /// An attempt whose outcome is not one of the known outcomes.
    #[error("--attempt {value:?}: {reason}")]
    BadOutcome {
        /// What was given.
        value: String,
        /// Why the outcome was refused.
        reason: String,
    },
    /// A window the service does not offer.
    #[error("--window {window} is not offered by {service}; offered: {offered}")]
    WindowNotOffered {
        /// The window asked about.
        window: DayRange,
        /// The service.
        service: String,
        /// What it offers, or "none".
        offered: String,
    },
}

/// One request as `next-attempt` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// When the patient left the request.
    pub created_at: Timestamp,
    /// The window the patient chose.
    pub window: Option<DayRange>,
    /// Finished attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// The moment to evaluate the request at.
    pub now: Timestamp,
}

/// Parses a civil time in the service's zone (`2026-11-23T15:55`) or an RFC 3339 instant.
pub fn parse_instant(
    svc: &Service,
    s: &str,
    what: &'static str,
) -> Result<Timestamp, ExplainError> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    s.parse::<DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(svc.calendar.tz().clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| ExplainError::BadTime { what, value: s.to_owned() })
}

/// Parses one `TIME=OUTCOME` attempt.
pub fn parse_attempt(svc: &Service, s: &str) -> Result<AttemptRecord, ExplainError> {
    let Some((t, o)) = s.rsplit_once('=') else {
        return Err(ExplainError::BadAttempt(s.to_owned()));
    };
    let outcome: Outcome = o
        .parse()
        .map_err(|e| ExplainError::BadOutcome { value: s.to_owned(), reason: format!("{e}") })?;
    Ok(AttemptRecord { ended_at: parse_instant(svc, t, "--attempt")?, outcome })
}

/// The policy's view of `q`, one `label: value` line each: deadline, expiry, attempts used,
/// next due time and what the scheduler would do at `q.now`.
pub fn explain(svc: &Service, q: &Query) -> Result<String, ExplainError> {
    if let Some(w) = q.window {
        if !svc.windows.contains(&w) {
            let offered: Vec<String> = svc.windows.iter().map(ToString::to_string).collect();
            return Err(ExplainError::WindowNotOffered {
                window: w,
                service: svc.id.clone(),
                offered: if offered.is_empty() { "none".to_owned() } else { offered.join(", ") },
            });
        }
    }
    let tz = svc.calendar.tz().clone();
    let local = |t: Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M (%a)").to_string();
    let facts = RequestFacts { created_at: q.created_at, window: q.window, attempts: &q.attempts };
    let (cal, rules) = (&svc.calendar, &svc.attempts);
    let mut out = format!(
        "service:  {} ({}), {}\ncreated:  {}\nwindow:   {}\n",
        svc.id,
        svc.name,
        tz.iana_name().unwrap_or("custom zone"),
        local(q.created_at),
        q.window.map_or_else(|| "none".to_owned(), |w| w.to_string()),
    );
    // Writing to a String cannot fail.
    if let Some((_, deadline)) = policy::deadline(cal, rules, q.window, q.created_at) {
        let _ = writeln!(out, "deadline: {} (same-day contact)", local(deadline));
    }
    if let Some(expires) = policy::expiry(cal, rules, q.window, q.created_at) {
        let _ = writeln!(out, "expires:  {}", local(expires));
    }
    match policy::decide(cal, rules, &facts) {
        Decision::End { end, reason } => {
            let _ = writeln!(out, "decision: ends as {} because {reason}", end.as_str());
        }
        Decision::Dial(plan) => {
            let _ = writeln!(
                out,
                "attempts: {} of {} used\ndue:      {}",
                plan.counted,
                rules.max,
                local(plan.due)
            );
            let verdict = match policy::at(cal, rules, q.window, &plan, q.now) {
                Now::Start => "may start an attempt now".to_owned(),
                Now::Wait(t) => format!("waits until {}", local(t)),
                Now::Expire => "expires: no attempt can start before the expiry".to_owned(),
            };
            let missed = policy::deadline_missed(cal, rules, q.window, &plan, q.now);
            let _ = writeln!(
                out,
                "at now:   {}: {verdict}{}",
                local(q.now),
                if missed { "; the same-day deadline is missed" } else { "" }
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn kallio() -> Service {
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml"),
        )
        .expect("the example dialplan");
        crate::dialplan::parse(Path::new("kallio.toml"), &src).expect("valid")
    }

    fn query(svc: &Service, created: &str, attempts: &[&str], now: &str) -> Query {
        Query {
            created_at: parse_instant(svc, created, "--created").expect("time"),
            window: None,
            attempts: attempts.iter().map(|a| parse_attempt(svc, a).expect("attempt")).collect(),
            now: parse_instant(svc, now, "--now").expect("time"),
        }
    }

    #[test]
    fn a_request_after_closing_waits_for_the_next_morning() {
        let svc = kallio();
        // Monday 23 November 2026, 15:55 local: too close to closing for a first attempt.
        let text = explain(&svc, &query(&svc, "2026-11-23T15:55", &[], "2026-11-23T15:56"))
            .expect("explained");
        assert!(text.contains("attempts: 0 of"), "{text}");
        assert!(text.contains("waits until 2026-11-24 08:00 (Tue)"), "{text}");
    }

    #[test]
    fn attempts_used_up_end_the_request() {
        let svc = kallio();
        let attempts: Vec<String> = (0..u32::from(svc.attempts.max))
            .map(|i| format!("2026-11-24T{:02}:00=busy", 8 + i))
            .collect();
        let refs: Vec<&str> = attempts.iter().map(String::as_str).collect();
        let text = explain(&svc, &query(&svc, "2026-11-24T07:30", &refs, "2026-11-24T12:00"))
            .expect("explained");
        assert!(text.contains("decision: ends as unreachable"), "{text}");
    }

    #[test]
    fn bad_input_is_named() {
        let svc = kallio();
        assert_eq!(
            parse_instant(&svc, "yesterday", "--now"),
            Err(ExplainError::BadTime { what: "--now", value: "yesterday".into() })
        );
        assert_eq!(
            parse_attempt(&svc, "2026-11-24T08:00"),
            Err(ExplainError::BadAttempt("2026-11-24T08:00".into()))
        );
        assert!(matches!(
            parse_attempt(&svc, "2026-11-24T08:00=maybe"),
            Err(ExplainError::BadOutcome { .. })
        ));
        let mut q = query(&svc, "2026-11-24T07:30", &[], "2026-11-24T07:31");
        q.window = Some("03:00-04:00".parse().expect("range"));
        assert!(matches!(explain(&svc, &q), Err(ExplainError::WindowNotOffered { .. })));
    }

    #[test]
    fn rfc3339_and_local_times_agree() {
        let svc = kallio();
        // Helsinki is UTC+2 in November.
        assert_eq!(
            parse_instant(&svc, "2026-11-23T15:55", "--created"),
            parse_instant(&svc, "2026-11-23T13:55:00Z", "--created")
        );
    }
}
