//! Punctuality: did a request's first call start inside the window its patient was told
//! ([`super::Eta`], recorded as `requests.told_*`), and if not, how far off was it.
//!
//! Pure, and the one rule both places that measure it use: the live metrics
//! (`callbackd_eta_first_calls_total{service,side}` and
//! `callbackd_eta_miss_seconds{service}`, observed when a request's first attempt starts)
//! and `callbackd report` (its *punctuality* and *mean miss*; the store's SQL sums for the
//! previous period are the same comparison written in SQL, and the report's tests hold the
//! two equal).
//!
//! The window is closed at both ends: a call starting exactly at `from` or at `to` is on
//! time. A call outside it misses by the distance to the nearer edge: an early call by
//! `from - start`, a late one by `start - to`.

use super::Eta;
use jiff::{SignedDuration, Timestamp};

/// Where a first call started against the told window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Before the window began.
    Early,
    /// Inside the window (its edges included).
    Inside,
    /// After the window ended.
    Late,
}

impl Side {
    /// The metric label value: `early`, `inside` or `late`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Early => "early",
            Side::Inside => "inside",
            Side::Late => "late",
        }
    }
}

/// A first call's start judged against the told window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    /// Early, inside or late.
    pub side: Side,
    /// The distance to the nearer edge of the window: zero inside, positive outside
    /// (early and late alike; [`Miss::side`] tells which).
    pub by: SignedDuration,
}

impl Miss {
    /// Whether the call started inside the window.
    pub fn on_time(self) -> bool {
        self.side == Side::Inside
    }
}

/// Judges a call that started at `start` against the window `told`.
///
/// A window whose end lies before its start (never recorded so) has no inside: a call
/// before its start is early, any other late, as the report's SQL reads such a row.
pub fn judge(told: Eta, start: Timestamp) -> Miss {
    if start < told.from {
        Miss { side: Side::Early, by: told.from.duration_since(start) }
    } else if start > told.to {
        Miss { side: Side::Late, by: start.duration_since(told.to) }
    } else {
        Miss { side: Side::Inside, by: SignedDuration::ZERO }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn window() -> Eta {
        Eta { from: t("2026-12-07T10:00:00Z"), to: t("2026-12-07T10:45:00Z") }
    }

    #[test]
    fn inside_and_on_either_edge_is_on_time() {
        for start in ["2026-12-07T10:00:00Z", "2026-12-07T10:20:31Z", "2026-12-07T10:45:00Z"] {
            let m = judge(window(), t(start));
            assert_eq!(m, Miss { side: Side::Inside, by: SignedDuration::ZERO }, "{start}");
            assert!(m.on_time());
        }
    }

    #[test]
    fn early_misses_by_the_time_to_the_start_of_the_window() {
        let m = judge(window(), t("2026-12-07T09:52:30Z"));
        assert_eq!(m.side, Side::Early);
        assert_eq!(m.by, SignedDuration::from_secs(7 * 60 + 30));
        assert!(!m.on_time());
        let m = judge(window(), t("2026-12-07T09:59:59.999Z"));
        assert_eq!((m.side, m.by), (Side::Early, SignedDuration::from_millis(1)));
    }

    #[test]
    fn late_misses_by_the_time_since_the_end_of_the_window() {
        let m = judge(window(), t("2026-12-07T11:25:00Z"));
        assert_eq!(m.side, Side::Late);
        assert_eq!(m.by, SignedDuration::from_mins(40));
        let m = judge(window(), t("2026-12-08T10:45:00Z"));
        assert_eq!((m.side, m.by), (Side::Late, SignedDuration::from_hours(24)));
    }

    #[test]
    fn an_inverted_window_has_no_inside() {
        let w = Eta { from: t("2026-12-07T10:00:00Z"), to: t("2026-12-07T09:00:00Z") };
        let at_from = judge(w, t("2026-12-07T10:00:00Z"));
        assert_eq!((at_from.side, at_from.by), (Side::Late, SignedDuration::from_hours(1)));
        let early = judge(w, t("2026-12-07T09:30:00Z"));
        assert_eq!((early.side, early.by), (Side::Early, SignedDuration::from_mins(30)));
    }

    #[test]
    fn labels_are_fixed() {
        let labels: Vec<&str> = [Side::Early, Side::Inside, Side::Late].map(Side::as_str).into();
        assert_eq!(labels, ["early", "inside", "late"]);
    }
}
