//! One attempt, independent of the SIP library: how an INVITE's ending maps to an attempt
//! [`Outcome`] ([`outcome_of`]), what happens after an answer ([`machine`], pure), and the
//! [`runner`] that executes it all over the [`runner::Legs`] port.

pub mod attempt;
pub mod intake;
pub mod machine;
pub mod runner;

use crate::policy::Outcome;

/// Why we sent a CANCEL for an INVITE of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The ring timeout ran out.
    RingTimeout,
    /// The call had to stop: the shutdown grace period is over, or this server lost the
    /// request's lease.
    Stop,
}

/// How a leg's INVITE ended without a usable answer, as the dialer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A final non-2xx response with this status code.
    Final(u16),
    /// No response at all (timer B/F) or a transport error on our side.
    NoResponse,
    /// We cancelled the INVITE. `heard` tells whether the PBX had answered it at all (a
    /// 1xx); `code` is the final response that followed our CANCEL (487, or a 2xx that
    /// crossed it and was ended with BYE), `None` when none came within 64×T1 (RFC 3261
    /// §9.1) or the call had to stop.
    Cancelled {
        /// Why we cancelled.
        why: CancelReason,
        /// The PBX had sent a provisional response.
        heard: bool,
        /// The final response after the CANCEL, if any.
        code: Option<u16>,
    },
    /// The far end answered (this 2xx) but its SDP answer was unusable, so we hung up at
    /// once: nobody heard anything.
    MediaUnusable(u16),
}

impl Ending {
    /// The SIP status code recorded with the attempt.
    pub fn sip_code(self) -> Option<u16> {
        match self {
            Ending::Final(code) | Ending::MediaUnusable(code) => Some(code),
            Ending::NoResponse => None,
            Ending::Cancelled { code, .. } => code,
        }
    }
}

/// Maps how an INVITE ended to the attempt's outcome.
///
/// | SIP | outcome |
/// |---|---|
/// | 2xx | connected (answered; see [`machine`] for what follows) |
/// | 486 Busy Here, 600 Busy Everywhere | busy |
/// | 408, 480, 487 | no answer |
/// | our CANCEL after the ring timeout, the PBX having answered with a 1xx | no answer (also when the 487 never comes: 64×T1) |
/// | our CANCEL after the ring timeout without any 1xx | network failure |
/// | our CANCEL because the call had to stop (shutdown, lease lost) | interrupted |
/// | 603 Decline | rejected |
/// | 404, 410, 484, 604 | invalid number (final, no retry) |
/// | 503, other 5xx, 3xx, other 4xx, no response | network failure (retried, not counted) |
/// | other 6xx | rejected |
/// | 2xx with an unusable SDP answer (hung up at once) | network failure |
///
/// Other 4xx codes (400, 403, 407 after our credentials failed, 415, 488…) mean the PBX
/// refused the request itself, not that the patient was unreachable, so they do not count
/// against the patient.
pub fn outcome_of(ending: Ending) -> Outcome {
    match ending {
        Ending::NoResponse | Ending::MediaUnusable(_) => Outcome::NetworkFailure,
        Ending::Cancelled { why: CancelReason::Stop, .. } => Outcome::Interrupted,
        Ending::Cancelled { why: CancelReason::RingTimeout, heard: true, .. } => Outcome::NoAnswer,
        Ending::Cancelled { why: CancelReason::RingTimeout, heard: false, .. } => {
            Outcome::NetworkFailure
        }
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
        assert_eq!(outcome_of(Ending::NoResponse), Outcome::NetworkFailure);
        assert_eq!(outcome_of(Ending::MediaUnusable(200)), Outcome::NetworkFailure);
    }

    #[test]
    fn our_cancel_maps_by_its_reason_and_what_the_pbx_said() {
        use CancelReason::*;
        let c = |why, heard, code| outcome_of(Ending::Cancelled { why, heard, code });
        assert_eq!(c(RingTimeout, true, Some(487)), Outcome::NoAnswer);
        // The 487 never came (64×T1): still no answer, the slot is freed.
        assert_eq!(c(RingTimeout, true, None), Outcome::NoAnswer);
        // A 200 crossed the CANCEL: ACKed and ended with BYE, nobody was spoken to.
        assert_eq!(c(RingTimeout, true, Some(200)), Outcome::NoAnswer);
        assert_eq!(c(RingTimeout, false, None), Outcome::NetworkFailure);
        assert_eq!(c(Stop, true, Some(487)), Outcome::Interrupted);
        assert_eq!(c(Stop, false, None), Outcome::Interrupted);
        let e = Ending::Cancelled { why: RingTimeout, heard: true, code: Some(487) };
        assert_eq!(e.sip_code(), Some(487));
    }
}
