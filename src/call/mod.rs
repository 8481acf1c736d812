//! Call decisions that do not depend on the SIP library: how a final SIP response maps to
//! an attempt [`Outcome`], and what happens after an answer ([`machine`]). Pure.

pub mod attempt;
pub mod machine;

use crate::policy::Outcome;

/// How an attempt's INVITE ended, as the dialer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A final response with this status code.
    Final(u16),
    /// Our ring timeout fired and we cancelled the INVITE.
    RingTimeout,
    /// No response at all (timer B/F) or a transport error on our side.
    NoResponse,
}

/// Maps how an INVITE ended to the attempt's outcome.
///
/// | SIP | outcome |
/// |---|---|
/// | 2xx | connected (answered) |
/// | 486 Busy Here, 600 Busy Everywhere | busy |
/// | 408, 480, 487 (our CANCEL), ring timeout | no answer |
/// | 603 Decline | rejected |
/// | 404, 410, 484, 604 | invalid number (final, no retry) |
/// | 503, other 5xx, 3xx, other 4xx, no response | network failure (retried, not counted) |
/// | other 6xx | rejected |
///
/// Other 4xx codes (400, 403, 407 after our credentials failed, 415, 488…) mean the PBX
/// refused the request itself, not that the patient was unreachable, so they do not count
/// against the patient.
pub fn outcome_of(ending: Ending) -> Outcome {
    match ending {
        Ending::RingTimeout => Outcome::NoAnswer,
        Ending::NoResponse => Outcome::NetworkFailure,
        Ending::Final(code) => match code {
            200..=299 => Outcome::Connected,
            486 | 600 => Outcome::Busy,
            408 | 480 | 487 => Outcome::NoAnswer,
            603 => Outcome::Rejected,
            404 | 410 | 484 | 604 => Outcome::InvalidNumber,
            600..=699 => Outcome::Rejected,
            // 1xx never ends an INVITE; 3xx (we follow no redirects), 4xx, 5xx.
            _ => Outcome::NetworkFailure,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_codes_map_to_outcomes() {
        let cases = [
            (200, Outcome::Connected),
            (486, Outcome::Busy),
            (600, Outcome::Busy),
            (480, Outcome::NoAnswer),
            (408, Outcome::NoAnswer),
            (487, Outcome::NoAnswer),
            (603, Outcome::Rejected),
            (606, Outcome::Rejected),
            (404, Outcome::InvalidNumber),
            (484, Outcome::InvalidNumber),
            (604, Outcome::InvalidNumber),
            (503, Outcome::NetworkFailure),
            (500, Outcome::NetworkFailure),
            (403, Outcome::NetworkFailure),
            (407, Outcome::NetworkFailure),
            (488, Outcome::NetworkFailure),
            (302, Outcome::NetworkFailure),
        ];
        for (code, outcome) in cases {
            assert_eq!(outcome_of(Ending::Final(code)), outcome, "{code}");
        }
        assert_eq!(outcome_of(Ending::RingTimeout), Outcome::NoAnswer);
        assert_eq!(outcome_of(Ending::NoResponse), Outcome::NetworkFailure);
    }
}
