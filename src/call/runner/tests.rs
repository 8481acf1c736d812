//! The runner against a fake [`Legs`], on tokio's paused clock: the order of effects for
//! each flow, and every outcome the machines and `outcome_of` give.

use super::*;
use crate::call::attempt::{AttemptEvents, BoxFuture};
use crate::number::E164;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, line: impl Into<String>) {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line.into());
}

/// What a dialled leg does: not answered (the ending), or answered and then these events,
/// each at its offset from the answer.
type Script = Result<Vec<(u64, LegEvent)>, Ending>;

#[derive(Debug)]
struct Fake {
    dials: Mutex<VecDeque<Script>>,
    transfer: Transfer,
    log: Log,
}

#[derive(Debug)]
struct FakeLeg {
    who: Who,
    answered_at: Instant,
    script: Mutex<VecDeque<(u64, LegEvent)>>,
    over: AtomicBool,
}

fn who(w: Who) -> &'static str {
    match w {
        Who::Patient => "patient",
        Who::Staff => "staff",
    }
}

impl Legs for Fake {
    type Leg = FakeLeg;

    async fn dial(&self, call: &Call, w: Who, ring: Duration) -> Result<FakeLeg, Ending> {
        push(&self.log, format!("dial {} ring {}s", who(w), ring.as_secs()));
        let script = self.dials.lock().expect("dials").pop_front().expect("a scripted dial");
        match script {
            Ok(events) => Ok(FakeLeg {
                who: w,
                answered_at: Instant::now(),
                script: Mutex::new(events.into()),
                over: AtomicBool::new(false),
            }),
            // A leg that was cancelled because the call had to stop.
            Err(Ending::Cancelled { why: CancelReason::Stop, .. })
                if !call.hangup.is_cancelled() =>
            {
                panic!("scripted a stop without cancelling the call")
            }
            Err(e) => Err(e),
        }
    }

    fn answer_code(&self, _: &FakeLeg) -> u16 {
        200
    }

    async fn play(&self, leg: &FakeLeg, prompts: Vec<Say>) {
        let names: Vec<&str> = prompts.iter().map(|s| s.name.as_str()).collect();
        push(&self.log, format!("play {} {}", who(leg.who), names.join(",")));
        tokio::time::sleep(Duration::from_secs(2 * prompts.len() as u64)).await;
    }

    async fn next_event(&self, leg: &FakeLeg) -> LegEvent {
        loop {
            if leg.over.load(Ordering::SeqCst) {
                return LegEvent::Hangup;
            }
            let next = leg.script.lock().expect("script").front().copied();
            match next {
                Some((at, event)) => {
                    tokio::time::sleep_until(leg.answered_at + Duration::from_secs(at)).await;
                    leg.script.lock().expect("script").pop_front();
                    if event == LegEvent::Hangup {
                        push(&self.log, format!("{} hung up", who(leg.who)));
                        leg.over.store(true, Ordering::SeqCst);
                    }
                    return event;
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    async fn refer(
        &self,
        _: &FakeLeg,
        target: &str,
        _: Duration,
        _: &CancellationToken,
    ) -> Transfer {
        push(&self.log, format!("refer {target}"));
        self.transfer
    }

    async fn bridge(&self, a: &FakeLeg, b: &FakeLeg, stop: &CancellationToken) {
        push(&self.log, format!("bridge {} {}", who(a.who), who(b.who)));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
            () = stop.cancelled() => {}
        }
    }

    async fn hang_up(&self, leg: &FakeLeg) {
        if !leg.over.swap(true, Ordering::SeqCst) {
            push(&self.log, format!("bye {}", who(leg.who)));
        }
    }
}

#[derive(Debug)]
struct Recorder(Log);

impl AttemptEvents for Recorder {
    fn answered(&self) -> BoxFuture<()> {
        let log = self.0.clone();
        Box::pin(async move { push(&log, "answered") })
    }
}

fn service(edits: &[(&str, &str)]) -> Arc<Service> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
    let mut src = std::fs::read_to_string(&file).expect("read");
    for (from, to) in edits {
        assert!(src.contains(from), "{from}");
        src = src.replace(from, to);
    }
    let services = crate::dialplan::parse_all(&[(file, src)]).expect("valid");
    Arc::new(services.get("kallio").expect("kallio").clone())
}

/// Runs one attempt of Kallio's (edited) service against the scripted dials; returns the
/// result and the log of effects.
async fn attempt(
    edits: &[(&str, &str)],
    dials: Vec<Script>,
    transfer: Transfer,
    stop_after: Option<u64>,
) -> (CallResult, Vec<String>) {
    attempt_of(None, edits, dials, transfer, stop_after).await
}

/// [`attempt`] of a request of `team`.
async fn attempt_of(
    team: Option<&str>,
    edits: &[(&str, &str)],
    dials: Vec<Script>,
    transfer: Transfer,
    stop_after: Option<u64>,
) -> (CallResult, Vec<String>) {
    let log: Log = Arc::default();
    let call = Call {
        request_id: 1,
        attempt_id: 2,
        seq: 1,
        service: service(edits),
        number: E164::from_stored("+358401234567".into()),
        lang: Lang::Fi,
        team: team.map(str::to_owned),
        hangup: CancellationToken::new(),
        events: Arc::new(Recorder(log.clone())),
    };
    if let Some(secs) = stop_after {
        let hangup = call.hangup.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            hangup.cancel();
        });
    }
    let fake = Fake { dials: Mutex::new(dials.into()), transfer, log: log.clone() };
    let result = run(&fake, &call, Flow::Converse).await;
    let lines = log.lock().expect("log").clone();
    (result, lines)
}

const BRIDGE: (&str, &str) = ("method = \"refer\"", "method = \"bridge\"");
const AGENT_FIRST: (&str, &str) = ("mode = \"patient-first\"", "mode = \"agent-first\"");

fn connected() -> CallResult {
    CallResult { outcome: Outcome::Connected, sip_code: Some(200) }
}

#[tokio::test(start_paused = true)]
async fn press_1_during_the_greeting_then_refer_records_the_answer_first() {
    let patient = Ok(vec![(1, LegEvent::Digit('1'))]);
    let (r, log) = attempt(&[], vec![patient], Transfer::Succeeded, None).await;
    assert_eq!(r, connected());
    assert_eq!(
        log,
        [
            "dial patient ring 30s",
            "answered",
            "play patient greeting-kallio,press-1",
            "play patient connecting",
            "refer sip:hoitajat-kallio@pbx.hel.example",
            "bye patient",
        ]
    );
}

/// A request of a care team is transferred to the team's target (a bridge dials the same
/// [`Service::staff_target`] in `sip::legs`).
#[tokio::test(start_paused = true)]
async fn a_teams_request_goes_to_the_teams_target() {
    const TEAMS: (&str, &str) =
        ("[numbers]", "[teams]\ntiimi-a = \"sip:tiimi-a@pbx.hel.example\"\n\n[numbers]");
    let patient = || Ok(vec![(1, LegEvent::Digit('1'))]);
    let (r, log) =
        attempt_of(Some("tiimi-a"), &[TEAMS], vec![patient()], Transfer::Succeeded, None).await;
    assert_eq!(r, connected());
    assert!(log.contains(&"refer sip:tiimi-a@pbx.hel.example".to_owned()), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn silence_asks_twice_then_hangs_up_not_confirmed() {
    let (r, log) = attempt(&[], vec![Ok(vec![])], Transfer::Succeeded, None).await;
    assert_eq!(r, CallResult { outcome: Outcome::NotConfirmed, sip_code: Some(200) });
    let plays = log.iter().filter(|l| l.starts_with("play patient greeting")).count();
    assert_eq!(plays, 2);
    assert_eq!(log.last().map(String::as_str), Some("bye patient"));
}

#[tokio::test(start_paused = true)]
async fn nine_declines_and_a_hang_up_needs_no_bye() {
    let (r, _) =
        attempt(&[], vec![Ok(vec![(5, LegEvent::Digit('9'))])], Transfer::Succeeded, None).await;
    assert_eq!(r.outcome, Outcome::Declined);
    let (r, log) =
        attempt(&[], vec![Ok(vec![(1, LegEvent::Hangup)])], Transfer::Succeeded, None).await;
    assert_eq!(r.outcome, Outcome::NotConfirmed);
    assert!(!log.contains(&"bye patient".to_owned()), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_transfer_apologises_and_a_hang_up_during_it_fails_the_handover() {
    let press1 = || Ok(vec![(1, LegEvent::Digit('1'))]);
    let (r, log) = attempt(&[], vec![press1()], Transfer::Failed, None).await;
    assert_eq!(r.outcome, Outcome::HandoverFailed);
    assert!(log.contains(&"play patient sorry".to_owned()), "{log:?}");
    let (r, _) = attempt(&[], vec![press1()], Transfer::HungUp, None).await;
    assert_eq!(r.outcome, Outcome::HandoverFailed);
}

#[tokio::test(start_paused = true)]
async fn unanswered_legs_end_with_outcome_of_and_record_no_answer() {
    let cases = [
        (Ending::Final(486), Outcome::Busy, Some(486)),
        (Ending::Final(404), Outcome::InvalidNumber, Some(404)),
        (Ending::NoResponse, Outcome::NetworkFailure, None),
        (
            Ending::Cancelled { why: CancelReason::RingTimeout, heard: true, code: None },
            Outcome::NoAnswer,
            None,
        ),
        (Ending::MediaUnusable(200), Outcome::NetworkFailure, Some(200)),
    ];
    for (ending, outcome, code) in cases {
        let (r, log) = attempt(&[], vec![Err(ending)], Transfer::Succeeded, None).await;
        assert_eq!(r, CallResult { outcome, sip_code: code }, "{ending:?}");
        assert_eq!(log, ["dial patient ring 30s"]);
    }
}

#[tokio::test(start_paused = true)]
async fn stopping_during_the_greeting_interrupts_with_a_bye() {
    let (r, log) = attempt(&[], vec![Ok(vec![])], Transfer::Succeeded, Some(1)).await;
    assert_eq!(r, CallResult { outcome: Outcome::Interrupted, sip_code: Some(200) });
    assert_eq!(log.last().map(String::as_str), Some("bye patient"));
}

#[tokio::test(start_paused = true)]
async fn bridge_calls_staff_after_the_key_and_hangs_up_both() {
    let patient = Ok(vec![(1, LegEvent::Digit('1'))]);
    let staff = Ok(vec![]);
    let (r, log) = attempt(&[BRIDGE], vec![patient, staff], Transfer::Failed, None).await;
    assert_eq!(r, connected());
    assert_eq!(
        log[4..],
        ["dial staff ring 60s", "bridge patient staff", "bye staff", "bye patient"],
        "{log:?}"
    );
    // Nobody at the staff queue: the patient hears the apology.
    let patient = Ok(vec![(1, LegEvent::Digit('1'))]);
    let (r, log) =
        attempt(&[BRIDGE], vec![patient, Err(Ending::Final(486))], Transfer::Failed, None).await;
    assert_eq!(r.outcome, Outcome::HandoverFailed);
    assert!(log.contains(&"play patient sorry".to_owned()), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn agent_first_whispers_then_records_the_answer_before_the_bridge() {
    let (r, log) =
        attempt(&[AGENT_FIRST], vec![Ok(vec![]), Ok(vec![])], Transfer::Failed, None).await;
    assert_eq!(r, connected());
    assert_eq!(
        log,
        [
            "dial staff ring 60s",
            "play staff whisper",
            "dial patient ring 30s",
            "answered",
            "bridge patient staff",
            "bye staff",
            "bye patient",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn agent_first_tells_the_nurse_when_the_patient_does_not_answer() {
    let no_answer =
        Ending::Cancelled { why: CancelReason::RingTimeout, heard: true, code: Some(487) };
    let (r, log) =
        attempt(&[AGENT_FIRST], vec![Ok(vec![]), Err(no_answer)], Transfer::Failed, None).await;
    assert_eq!(r, CallResult { outcome: Outcome::NoAnswer, sip_code: Some(487) });
    assert_eq!(log[3..], ["play staff patient-unreachable", "bye staff"], "{log:?}");
    // No nurse: the patient is not called.
    let (r, log) =
        attempt(&[AGENT_FIRST], vec![Err(Ending::Final(480))], Transfer::Failed, None).await;
    assert_eq!(r, CallResult { outcome: Outcome::HandoverFailed, sip_code: Some(480) });
    assert_eq!(log, ["dial staff ring 60s"]);
    // The nurse hangs up during the whisper: the patient is not called either.
    let (r, log) =
        attempt(&[AGENT_FIRST], vec![Ok(vec![(1, LegEvent::Hangup)])], Transfer::Failed, None)
            .await;
    assert_eq!(r.outcome, Outcome::HandoverFailed);
    assert!(!log.iter().any(|l| l.starts_with("dial patient")), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn agent_first_stopped_while_the_nurse_listens_is_interrupted() {
    let (r, log) = attempt(&[AGENT_FIRST], vec![Ok(vec![])], Transfer::Failed, Some(1)).await;
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert_eq!(log.last().map(String::as_str), Some("bye staff"));
}
