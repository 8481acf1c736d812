//! Agent-first, as a pure state machine: call the staff queue, whisper to the nurse who
//! answers, then call the patient with the station's caller ID and bridge the two; if the
//! patient does not answer, tell the nurse and end with the patient leg's outcome.
//!
//! ```text
//!   DialStaff ──StaffEnded──────────────────────────────► Done(handover failed)
//!      │ StaffAnswered                                    (the patient is not called)
//!      ▼
//!   Whisper ──StaffHangup───────────────────────────────► Done(handover failed)
//!      │ PromptFinished
//!      ▼
//!   DialPatient ──PatientEnded(e)──► TellStaff(outcome_of(e)) ──PromptFinished/StaffHangup──► Done(outcome)
//!      │ PatientAnswered (recorded before anything else)
//!      ▼
//!   Bridged ──BridgeEnded──► Done(connected)
//! ```
//! `Stop` (shutdown grace over, lease lost) ends every phase: interrupted until the patient
//! answered, connected once they were bridged, the patient leg's outcome while the nurse is
//! being told. A leg cancelled because of `Stop` also ends as interrupted.

use crate::call::{CancelReason, Ending, outcome_of};
use crate::policy::Outcome;

/// Where an agent-first call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Calling the staff queue.
    DialStaff,
    /// Playing the whisper to the nurse.
    Whisper,
    /// Calling the patient.
    DialPatient,
    /// Nurse and patient are talking.
    Bridged,
    /// Telling the nurse the patient did not answer; the attempt's outcome once done.
    TellStaff(Outcome),
    /// Over.
    Done(Outcome),
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The staff leg answered.
    StaffAnswered,
    /// The staff leg was not answered.
    StaffEnded(Ending),
    /// The prompt to the nurse finished.
    PromptFinished,
    /// The nurse hung up.
    StaffHangup,
    /// The patient answered.
    PatientAnswered,
    /// The patient leg was not answered.
    PatientEnded(Ending),
    /// One side of the bridge hung up (or the media ended).
    BridgeEnded,
    /// The call must stop now.
    Stop,
}

/// The prompts played to the nurse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffPrompt {
    /// "A callback to a patient of … follows."
    Whisper,
    /// "The patient did not answer."
    PatientUnreachable,
}

/// What the runner must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Call the staff queue (report `StaffAnswered` or `StaffEnded`).
    DialStaff,
    /// Play a prompt to the nurse (report `PromptFinished`, or `StaffHangup`).
    PlayToStaff(StaffPrompt),
    /// Call the patient (report `PatientAnswered` or `PatientEnded`).
    DialPatient,
    /// Record that the patient answered, before acting on it.
    RecordAnswer,
    /// Bridge the two legs (report `BridgeEnded`).
    Bridge,
    /// End the staff leg (BYE), if it is still up.
    HangUpStaff,
    /// End the patient leg (BYE), if it is still up.
    HangUpPatient,
    /// The attempt is over with this outcome.
    End(Outcome),
}

/// The first phase and actions.
pub fn start() -> (Phase, Vec<Action>) {
    (Phase::DialStaff, vec![Action::DialStaff])
}

fn done(outcome: Outcome, mut actions: Vec<Action>) -> (Phase, Vec<Action>) {
    actions.push(Action::End(outcome));
    (Phase::Done(outcome), actions)
}

fn stopped(ending: Ending) -> bool {
    matches!(ending, Ending::Cancelled { why: CancelReason::Stop, .. })
}

/// One step: the phase after `event`, and what to do.
pub fn step(phase: Phase, event: Event) -> (Phase, Vec<Action>) {
    use Action::{HangUpPatient, HangUpStaff};
    match (phase, event) {
        (Phase::Done(o), _) => (Phase::Done(o), Vec::new()),
        (Phase::DialStaff, Event::StaffAnswered) => {
            (Phase::Whisper, vec![Action::PlayToStaff(StaffPrompt::Whisper)])
        }
        (Phase::DialStaff, Event::StaffEnded(e)) if stopped(e) => {
            done(Outcome::Interrupted, vec![])
        }
        // No nurse: the patient is not called.
        (Phase::DialStaff, Event::StaffEnded(_)) => done(Outcome::HandoverFailed, vec![]),
        (Phase::DialStaff, Event::Stop) => done(Outcome::Interrupted, vec![HangUpStaff]),
        (Phase::Whisper, Event::PromptFinished) => (Phase::DialPatient, vec![Action::DialPatient]),
        (Phase::Whisper, Event::StaffHangup) => done(Outcome::HandoverFailed, vec![]),
        (Phase::Whisper | Phase::DialPatient, Event::Stop) => {
            done(Outcome::Interrupted, vec![HangUpStaff, HangUpPatient])
        }
        (Phase::DialPatient, Event::PatientAnswered) => {
            (Phase::Bridged, vec![Action::RecordAnswer, Action::Bridge])
        }
        (Phase::DialPatient, Event::PatientEnded(e)) if stopped(e) => {
            done(Outcome::Interrupted, vec![HangUpStaff])
        }
        (Phase::DialPatient, Event::PatientEnded(e)) => (
            Phase::TellStaff(outcome_of(e)),
            vec![Action::PlayToStaff(StaffPrompt::PatientUnreachable)],
        ),
        (Phase::Bridged, Event::BridgeEnded | Event::Stop) => {
            done(Outcome::Connected, vec![HangUpStaff, HangUpPatient])
        }
        (Phase::TellStaff(o), Event::PromptFinished | Event::StaffHangup | Event::Stop) => {
            done(o, vec![HangUpStaff])
        }
        // Events that do not belong to the phase change nothing.
        (
            Phase::DialStaff,
            Event::PromptFinished
            | Event::StaffHangup
            | Event::PatientAnswered
            | Event::PatientEnded(_)
            | Event::BridgeEnded,
        )
        | (
            Phase::Whisper,
            Event::StaffAnswered
            | Event::StaffEnded(_)
            | Event::PatientAnswered
            | Event::PatientEnded(_)
            | Event::BridgeEnded,
        )
        | (
            Phase::DialPatient,
            Event::StaffAnswered
            | Event::StaffEnded(_)
            | Event::PromptFinished
            | Event::StaffHangup
            | Event::BridgeEnded,
        )
        | (
            Phase::Bridged,
            Event::StaffAnswered
            | Event::StaffEnded(_)
            | Event::PromptFinished
            | Event::StaffHangup
            | Event::PatientAnswered
            | Event::PatientEnded(_),
        )
        | (
            Phase::TellStaff(_),
            Event::StaffAnswered
            | Event::StaffEnded(_)
            | Event::PatientAnswered
            | Event::PatientEnded(_)
            | Event::BridgeEnded,
        ) => (phase, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[Event]) -> (Phase, Vec<Action>) {
        let (mut phase, mut all) = start();
        for e in events {
            let (p, actions) = step(phase, *e);
            phase = p;
            all.extend(actions);
        }
        (phase, all)
    }

    #[test]
    fn nurse_then_patient_bridged_is_connected_and_the_answer_is_recorded_first() {
        use Event::*;
        let (phase, actions) = run(&[StaffAnswered, PromptFinished, PatientAnswered, BridgeEnded]);
        assert_eq!(phase, Phase::Done(Outcome::Connected));
        assert_eq!(
            actions,
            [
                Action::DialStaff,
                Action::PlayToStaff(StaffPrompt::Whisper),
                Action::DialPatient,
                Action::RecordAnswer,
                Action::Bridge,
                Action::HangUpStaff,
                Action::HangUpPatient,
                Action::End(Outcome::Connected),
            ]
        );
    }

    #[test]
    fn no_nurse_means_no_patient_call() {
        let (phase, actions) = run(&[Event::StaffEnded(Ending::Final(486))]);
        assert_eq!(phase, Phase::Done(Outcome::HandoverFailed));
        assert!(!actions.contains(&Action::DialPatient));
        let (phase, _) = run(&[Event::StaffAnswered, Event::StaffHangup]);
        assert_eq!(phase, Phase::Done(Outcome::HandoverFailed));
    }

    #[test]
    fn an_unanswered_patient_is_told_to_the_nurse_and_keeps_its_outcome() {
        use Event::*;
        let (phase, actions) =
            run(&[StaffAnswered, PromptFinished, PatientEnded(Ending::Final(486)), PromptFinished]);
        assert_eq!(phase, Phase::Done(Outcome::Busy));
        assert!(actions.contains(&Action::PlayToStaff(StaffPrompt::PatientUnreachable)));
        assert!(!actions.contains(&Action::RecordAnswer));
        assert_eq!(actions[actions.len() - 2..], [Action::HangUpStaff, Action::End(Outcome::Busy)]);
    }

    #[test]
    fn stopping_interrupts_until_the_patient_answered() {
        use Event::*;
        let stop = Ending::Cancelled { why: CancelReason::Stop, heard: true, code: None };
        for (events, outcome) in [
            (vec![Stop], Outcome::Interrupted),
            (vec![StaffEnded(stop)], Outcome::Interrupted),
            (vec![StaffAnswered, Stop], Outcome::Interrupted),
            (vec![StaffAnswered, PromptFinished, PatientEnded(stop)], Outcome::Interrupted),
            (vec![StaffAnswered, PromptFinished, PatientAnswered, Stop], Outcome::Connected),
        ] {
            let (phase, actions) = run(&events);
            assert_eq!(phase, Phase::Done(outcome), "{events:?}");
            assert_eq!(actions.last(), Some(&Action::End(outcome)));
        }
    }

    #[test]
    fn done_is_final_and_stray_events_change_nothing() {
        assert_eq!(
            step(Phase::Done(Outcome::Busy), Event::Stop),
            (Phase::Done(Outcome::Busy), vec![])
        );
        assert_eq!(step(Phase::Bridged, Event::PromptFinished), (Phase::Bridged, vec![]));
    }
}
