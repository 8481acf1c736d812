//! What happens on an answered callback, as a pure state machine: greet, make sure a person
//! answered (press 1), hand the patient over to staff, or apologise.
//!
//! ```text
//!                 Answered (confirm = dtmf)              Answered (confirm = none)
//!                        │                                        │
//!                        ▼                                        │
//!   ┌──────────► Greeting{round} ──PromptFinished──► AwaitDigit{round}
//!   │                │  digit 1 / 9                    │  │  │
//!   │                ▼                                 │  │  └─ NoDigit, round 2 ─► Done(not confirmed)
//!   └─ NoDigit, round 1 ───────────────────────────────┘  │
//!                                     digit 1             │ digit 9 ─► Done(declined)
//!                        ┌────────────────────────────────┘
//!                        ▼                                        │
//!                   Connecting ◄──────────────────────────────────┘
//!                        │ PromptFinished
//!                        ▼
//!                   HandingOver ──HandoverSucceeded──► Done(connected)
//!                        │ HandoverFailed
//!                        ▼
//!                      Sorry ──PromptFinished──► Done(handover failed)
//! ```
//! A remote hang-up ends every phase (see [`step`]); so does `Stop` (shutdown grace over,
//! or lease lost): interrupted before the patient asked to be connected, a failed hand-over
//! after. Pure: [`crate::call::runner`] executes the [`Action`]s and feeds back [`Event`]s.
//!
//! Agent-first (staff first, then the patient) is the second machine, [`agent`].

pub mod agent;

use crate::dialplan::Confirm;
use crate::policy::Outcome;

/// The prompts the machine asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// "This is a callback from the … health station."
    Greeting,
    /// "Press 1 to be connected; press 9 if you no longer need the call."
    Press1,
    /// "Connecting you now."
    Connecting,
    /// "Sorry, we could not connect you."
    Sorry,
}

/// Where an answered call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Playing the greeting and the press-1 prompt (round 1 or 2).
    Greeting {
        /// 1 the first time, 2 on the repeat.
        round: u8,
    },
    /// Waiting for the patient's key.
    AwaitDigit {
        /// 1 the first time, 2 on the repeat.
        round: u8,
    },
    /// Playing "connecting you now".
    Connecting,
    /// Transferring or bridging to staff.
    HandingOver,
    /// Playing the apology after a failed hand-over.
    Sorry,
    /// Over.
    Done(Outcome),
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The current prompt list finished playing.
    PromptFinished,
    /// The patient pressed a key.
    Digit(char),
    /// No key within the wait.
    NoDigit,
    /// Staff took the call (REFER accepted and the transfer succeeded, or the bridge leg
    /// answered).
    HandoverSucceeded,
    /// The transfer or the staff leg failed.
    HandoverFailed,
    /// The patient hung up.
    RemoteHangup,
    /// The call must stop now: the shutdown grace period is over, or the lease was lost.
    Stop,
}

/// What the dialer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop any prompt playing and play these, in order; report `PromptFinished`.
    Play(Vec<PromptKind>),
    /// Wait for a key (report `Digit` or `NoDigit`).
    AwaitDigit,
    /// Start the hand-over to staff (report `HandoverSucceeded` or `HandoverFailed`).
    HandOver,
    /// End our side of the call with BYE.
    HangUp,
    /// The attempt is over with this outcome.
    End(Outcome),
}

/// The first phase and actions once the patient answered.
pub fn start(confirm: Confirm) -> (Phase, Vec<Action>) {
    match confirm {
        Confirm::Dtmf => greet(1),
        Confirm::None => (Phase::Connecting, vec![Action::Play(vec![PromptKind::Connecting])]),
    }
}

fn greet(round: u8) -> (Phase, Vec<Action>) {
    (Phase::Greeting { round }, vec![Action::Play(vec![PromptKind::Greeting, PromptKind::Press1])])
}

fn done(outcome: Outcome, hang_up: bool) -> (Phase, Vec<Action>) {
    let mut actions = Vec::new();
    if hang_up {
        actions.push(Action::HangUp);
    }
    actions.push(Action::End(outcome));
    (Phase::Done(outcome), actions)
}

fn on_digit(d: char, phase: Phase) -> (Phase, Vec<Action>) {
    match d {
        '1' => (Phase::Connecting, vec![Action::Play(vec![PromptKind::Connecting])]),
        '9' => done(Outcome::Declined, true),
        // Other keys are ignored: keep waiting (or playing).
        _ => (phase, Vec::new()),
    }
}

/// One step: the phase after `event`, and what to do.
pub fn step(phase: Phase, event: Event) -> (Phase, Vec<Action>) {
    match (phase, event) {
        (Phase::Done(o), _) => (Phase::Done(o), Vec::new()),
        // The patient hung up.
        (Phase::Greeting { .. } | Phase::AwaitDigit { .. }, Event::RemoteHangup) => {
            done(Outcome::NotConfirmed, false)
        }
        (Phase::Connecting | Phase::HandingOver | Phase::Sorry, Event::RemoteHangup) => {
            done(Outcome::HandoverFailed, false)
        }
        // We must stop: before the patient asked to be connected the attempt is only
        // interrupted (tried again); after, the hand-over failed.
        (Phase::Greeting { .. } | Phase::AwaitDigit { .. }, Event::Stop) => {
            done(Outcome::Interrupted, true)
        }
        (Phase::Connecting | Phase::HandingOver | Phase::Sorry, Event::Stop) => {
            done(Outcome::HandoverFailed, true)
        }
        // Keys are taken during the prompt too (barge-in) and while waiting.
        (Phase::Greeting { .. } | Phase::AwaitDigit { .. }, Event::Digit(d)) => on_digit(d, phase),
        (Phase::Greeting { round }, Event::PromptFinished) => {
            (Phase::AwaitDigit { round }, vec![Action::AwaitDigit])
        }
        (Phase::AwaitDigit { round: 1 }, Event::NoDigit) => greet(2),
        (Phase::AwaitDigit { .. }, Event::NoDigit) => done(Outcome::NotConfirmed, true),
        (Phase::Connecting, Event::PromptFinished) => (Phase::HandingOver, vec![Action::HandOver]),
        (Phase::HandingOver, Event::HandoverSucceeded) => done(Outcome::Connected, false),
        (Phase::HandingOver, Event::HandoverFailed) => {
            (Phase::Sorry, vec![Action::Play(vec![PromptKind::Sorry])])
        }
        (Phase::Sorry, Event::PromptFinished) => done(Outcome::HandoverFailed, true),
        // Events that do not belong to the phase change nothing.
        (
            Phase::Greeting { .. }
            | Phase::AwaitDigit { .. }
            | Phase::Connecting
            | Phase::HandingOver
            | Phase::Sorry,
            Event::PromptFinished
            | Event::Digit(_)
            | Event::NoDigit
            | Event::HandoverSucceeded
            | Event::HandoverFailed,
        ) => (phase, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(confirm: Confirm, events: &[Event]) -> (Phase, Vec<Action>) {
        let (mut phase, mut all) = start(confirm);
        for e in events {
            let (p, actions) = step(phase, *e);
            phase = p;
            all.extend(actions);
        }
        (phase, all)
    }

    #[test]
    fn press_1_then_a_successful_transfer_is_connected() {
        use Event::*;
        let (phase, actions) =
            run(Confirm::Dtmf, &[PromptFinished, Digit('1'), PromptFinished, HandoverSucceeded]);
        assert_eq!(phase, Phase::Done(Outcome::Connected));
        assert_eq!(
            actions,
            vec![
                Action::Play(vec![PromptKind::Greeting, PromptKind::Press1]),
                Action::AwaitDigit,
                Action::Play(vec![PromptKind::Connecting]),
                Action::HandOver,
                Action::End(Outcome::Connected),
            ]
        );
    }

    #[test]
    fn silence_repeats_once_then_gives_up() {
        use Event::*;
        let (phase, actions) =
            run(Confirm::Dtmf, &[PromptFinished, NoDigit, PromptFinished, NoDigit]);
        assert_eq!(phase, Phase::Done(Outcome::NotConfirmed));
        let plays = actions.iter().filter(|a| matches!(a, Action::Play(_))).count();
        assert_eq!(plays, 2, "greeting played twice");
        assert_eq!(
            actions[actions.len() - 2..],
            [Action::HangUp, Action::End(Outcome::NotConfirmed)]
        );
    }

    #[test]
    fn nine_declines_and_other_keys_are_ignored() {
        use Event::*;
        let (phase, _) = run(Confirm::Dtmf, &[PromptFinished, Digit('5'), Digit('9')]);
        assert_eq!(phase, Phase::Done(Outcome::Declined));
        let (phase, _) = run(Confirm::Dtmf, &[Digit('1')]);
        assert_eq!(phase, Phase::Connecting, "barge-in during the greeting");
    }

    #[test]
    fn a_failed_handover_apologises_and_is_recorded() {
        use Event::*;
        let (phase, actions) =
            run(Confirm::None, &[PromptFinished, HandoverFailed, PromptFinished]);
        assert_eq!(phase, Phase::Done(Outcome::HandoverFailed));
        assert!(actions.contains(&Action::Play(vec![PromptKind::Sorry])));
        assert_eq!(actions.last(), Some(&Action::End(Outcome::HandoverFailed)));
    }

    #[test]
    fn hanging_up_ends_every_phase_without_our_bye() {
        use Event::*;
        for (events, outcome) in [
            (vec![RemoteHangup], Outcome::NotConfirmed),
            (vec![PromptFinished, RemoteHangup], Outcome::NotConfirmed),
            (vec![Digit('1'), RemoteHangup], Outcome::HandoverFailed),
        ] {
            let (phase, actions) = run(Confirm::Dtmf, &events);
            assert_eq!(phase, Phase::Done(outcome));
            assert!(!actions.contains(&Action::HangUp));
        }
    }

    #[test]
    fn stopping_interrupts_before_the_key_and_fails_the_handover_after() {
        use Event::*;
        let (phase, actions) = run(Confirm::Dtmf, &[PromptFinished, Stop]);
        assert_eq!(phase, Phase::Done(Outcome::Interrupted));
        assert_eq!(
            actions[actions.len() - 2..],
            [Action::HangUp, Action::End(Outcome::Interrupted)]
        );
        let (phase, _) = run(Confirm::Dtmf, &[Digit('1'), PromptFinished, Stop]);
        assert_eq!(phase, Phase::Done(Outcome::HandoverFailed));
    }

    #[test]
    fn done_is_final() {
        let (p, a) = step(Phase::Done(Outcome::Connected), Event::Digit('1'));
        assert_eq!(p, Phase::Done(Outcome::Connected));
        assert!(a.is_empty());
    }
}
