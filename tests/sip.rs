//! The SIP dialer against sipp playing the PBX: caller ID, P-Asserted-Identity, SDP,
//! answer, busy, no answer with CANCEL after the ring timeout, 407 challenge, 503, 404,
//! early media, and a 200 crossing our CANCEL.
//!
//! sipp is the Debian package `sip-tester`. Without it these tests say SKIPPED, except
//! under `CI=true`, where a missing sipp fails them.

use callbackd::call::attempt::{CallResult, Dialer};
use callbackd::config::{Sip, Transport};
use callbackd::dialplan::{self, Service};
use callbackd::media::Prompts;
use callbackd::policy::Outcome;
use callbackd::sip::{SipDialer, Trunk};
use rsipstack::dialog::authenticate::Credential;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;

use common::repo;
use common::sipp::{Sipp, free_udp_port, have_sipp, patient_call, trunk_config};

fn kallio(ring_timeout: &str) -> Arc<Service> {
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml"))
        .expect("read")
        .replace("ring_timeout = \"30s\"", &format!("ring_timeout = \"{ring_timeout}\""));
    let services = dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid");
    Arc::new(services.get("kallio").expect("kallio").clone())
}

async fn dial(
    scenario: &str,
    ring: &str,
    credential: Option<Credential>,
) -> Option<(CallResult, Sipp, Arc<Trunk>)> {
    if !have_sipp() {
        return None;
    }
    let port = free_udp_port();
    let sipp = Sipp::start(scenario, port, 1);
    let cancel = CancellationToken::new();
    let trunk =
        Trunk::start(&trunk_config(sipp.port), credential, cancel.clone()).await.expect("trunk");
    let dialer = SipDialer::new(trunk.clone());
    let call = patient_call(kallio(ring));
    let result = tokio::time::timeout(Duration::from_secs(60), dialer.dial(call))
        .await
        .expect("the call ends");
    Some((result, sipp, trunk))
}

#[tokio::test]
async fn tcp_transport_places_the_call_over_a_tcp_connection() {
    if !have_sipp() {
        return;
    }
    let port = free_udp_port();
    let mut sipp = Sipp::start_tcp("uas_answer.xml", port, 1);
    let cfg = Sip { transport: Transport::Tcp, ..trunk_config(sipp.port) };
    let trunk = Trunk::start(&cfg, None, CancellationToken::new()).await.expect("trunk");
    let call = patient_call(kallio("30s"));
    let r = tokio::time::timeout(Duration::from_secs(60), SipDialer::new(trunk.clone()).dial(call))
        .await
        .expect("the call ends");
    assert!(sipp.passed(), "sipp's checks over TCP");
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
    assert!(sipp.log("messages.log").contains("SIP/2.0/TCP"), "the Via says TCP");
    no_dialogs_left(&trunk).await;
}

/// Kallio's dialplan with edits, and the prompts it names.
fn kallio_with(edits: &[(&str, &str)]) -> (Arc<Service>, Arc<Prompts>) {
    let mut src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    for (from, to) in edits {
        assert!(src.contains(from), "kallio.toml has no {from:?}");
        src = src.replace(from, to);
    }
    let services = dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid");
    let prompts = Prompts::for_services(&repo().join("sounds"), &services).expect("prompts load");
    (Arc::new(services.get("kallio").expect("kallio").clone()), Arc::new(prompts))
}

/// A call through sipp with the whole answered-call flow (prompts, key, hand-over).
async fn converse(
    scenario: &str,
    edits: &[(&str, &str)],
) -> Option<(CallResult, Sipp, Arc<Trunk>)> {
    if !have_sipp() {
        return None;
    }
    let port = free_udp_port();
    let sipp = Sipp::start(scenario, port, 1);
    let trunk = Trunk::start(&trunk_config(sipp.port), None, CancellationToken::new())
        .await
        .expect("trunk");
    let (service, prompts) = kallio_with(edits);
    let dialer = SipDialer::new(trunk.clone()).with_prompts(prompts);
    let call = patient_call(service);
    let r = tokio::time::timeout(Duration::from_secs(90), dialer.dial(call))
        .await
        .expect("the call ends");
    Some((r, sipp, trunk))
}

const CONFIRM_NONE: (&str, &str) = ("confirm = \"dtmf\"", "confirm = \"none\"");

#[tokio::test]
async fn press_1_during_the_greeting_then_refer_is_connected() {
    let Some((r, mut sipp, trunk)) = converse("uas_dtmf_refer_ok.xml", &[]).await else { return };
    assert!(sipp.passed(), "REFER to the staff queue, NOTIFY answered, BYE");
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn press_1_as_sip_info_then_refer_is_connected() {
    let Some((r, mut sipp, _)) = converse("uas_info_refer_ok.xml", &[]).await else { return };
    assert!(sipp.passed(), "INFO answered 200, then REFER, NOTIFY, BYE");
    assert_eq!(r.outcome, Outcome::Connected);
}

#[tokio::test]
async fn confirm_none_transfers_at_once() {
    let Some((r, mut sipp, _)) = converse("uas_refer_ok.xml", &[CONFIRM_NONE]).await else {
        return;
    };
    assert!(sipp.passed());
    assert_eq!(r.outcome, Outcome::Connected);
}

#[tokio::test]
async fn a_refused_refer_apologises_and_is_recorded() {
    let Some((r, mut sipp, _)) = converse("uas_refer_rejected.xml", &[CONFIRM_NONE]).await else {
        return;
    };
    assert!(sipp.passed(), "the sorry prompt, then our BYE");
    assert_eq!(r.outcome, Outcome::HandoverFailed);
}

#[tokio::test]
async fn a_transfer_reported_failed_by_notify_is_recorded() {
    let Some((r, mut sipp, _)) = converse("uas_refer_notify_503.xml", &[CONFIRM_NONE]).await else {
        return;
    };
    assert!(sipp.passed());
    assert_eq!(r.outcome, Outcome::HandoverFailed);
}

#[tokio::test]
async fn pressing_9_declines_the_call() {
    let Some((r, mut sipp, _)) = converse("uas_dtmf_9.xml", &[]).await else { return };
    assert!(sipp.passed(), "we hung up");
    assert_eq!(r.outcome, Outcome::Declined);
}

#[tokio::test]
async fn hanging_up_during_the_greeting_is_not_confirmed() {
    let Some((r, mut sipp, trunk)) = converse("uas_hangup_in_prompt.xml", &[]).await else {
        return;
    };
    assert!(sipp.passed());
    assert_eq!(r.outcome, Outcome::NotConfirmed);
    no_dialogs_left(&trunk).await;
}

async fn no_dialogs_left(trunk: &Trunk) {
    for _ in 0..100 {
        if trunk.dialogs() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} dialogs leaked", trunk.dialogs());
}

#[tokio::test]
async fn answered_call_presents_the_stations_caller_id_and_hangs_up_with_bye() {
    let Some((r, mut sipp, trunk)) = dial("uas_answer.xml", "30s", None).await else { return };
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
    assert!(sipp.passed(), "sipp's checks of From, P-Asserted-Identity, Privacy, R-URI and SDP");
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn busy_is_busy() {
    let Some((r, mut sipp, trunk)) = dial("uas_busy.xml", "30s", None).await else { return };
    assert_eq!(r, CallResult { outcome: Outcome::Busy, sip_code: Some(486) });
    assert!(sipp.passed());
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn no_answer_is_cancelled_after_the_ring_timeout() {
    let Some((r, mut sipp, trunk)) = dial("uas_noanswer.xml", "5s", None).await else { return };
    assert_eq!(r, CallResult { outcome: Outcome::NoAnswer, sip_code: Some(487) });
    assert!(sipp.passed(), "a CANCEL arrived, not before the ring timeout");
    no_dialogs_left(&trunk).await;
}

fn credential() -> Credential {
    Credential { username: "callbackd".into(), password: "s3cret".into(), ..Default::default() }
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of `name="value"` in a digest header.
fn digest_param<'a>(header: &'a str, name: &str) -> &'a str {
    let start = header.find(&format!("{name}=\"")).map(|i| i + name.len() + 2).expect(name);
    let end = header[start..].find('"').expect("closing quote");
    &header[start..start + end]
}

#[tokio::test]
async fn a_401_challenge_is_answered_with_the_configured_credential() {
    let Some((r, mut sipp, trunk)) = dial("uas_401.xml", "30s", Some(credential())).await else {
        return;
    };
    assert!(sipp.passed(), "sipp verified the digest of the retried INVITE");
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn a_407_challenge_is_answered_with_a_valid_proxy_digest() {
    let Some((r, mut sipp, trunk)) = dial("uas_407.xml", "30s", Some(credential())).await else {
        return;
    };
    assert!(sipp.passed());
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
    // Recompute the digest (RFC 2617, no qop) from what sipp received.
    let log = sipp.log("messages.log");
    let header = log
        .lines()
        .find(|l| l.starts_with("Proxy-Authorization:"))
        .expect("the retried INVITE has Proxy-Authorization");
    let (realm, nonce, uri) =
        (digest_param(header, "realm"), digest_param(header, "nonce"), digest_param(header, "uri"));
    assert_eq!(realm, "pbx.test");
    let ha1 = md5_hex(&format!("callbackd:{realm}:s3cret"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    assert_eq!(digest_param(header, "response"), md5_hex(&format!("{ha1}:{nonce}:{ha2}")));
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn a_503_is_a_network_failure_not_the_patients() {
    let Some((r, mut sipp, _)) = dial("uas_503.xml", "30s", None).await else { return };
    assert_eq!(r, CallResult { outcome: Outcome::NetworkFailure, sip_code: Some(503) });
    assert!(sipp.passed());
}

#[tokio::test]
async fn a_404_is_an_invalid_number() {
    let Some((r, mut sipp, _)) = dial("uas_404.xml", "30s", None).await else { return };
    assert_eq!(r, CallResult { outcome: Outcome::InvalidNumber, sip_code: Some(404) });
    assert!(sipp.passed());
}

#[tokio::test]
async fn early_media_then_answer_is_connected() {
    let Some((r, mut sipp, trunk)) = dial("uas_183_answer.xml", "30s", None).await else { return };
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
    assert!(sipp.passed());
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn a_200_crossing_our_cancel_is_acked_and_ended_with_bye() {
    let Some((r, mut sipp, trunk)) = dial("uas_cancel_race.xml", "5s", None).await else { return };
    assert_eq!(r.outcome, Outcome::NoAnswer, "we gave up ringing: the patient was not reached");
    assert!(sipp.passed(), "sipp got the ACK and the BYE");
    no_dialogs_left(&trunk).await;
}

#[tokio::test]
async fn nobody_at_the_pbx_address_is_a_network_failure() {
    if !have_sipp() {
        return;
    }
    let port = free_udp_port();
    let cancel = CancellationToken::new();
    let trunk = Trunk::start(&trunk_config(port), None, cancel).await.expect("trunk");
    let call = patient_call(kallio("30s"));
    let r = tokio::time::timeout(Duration::from_secs(60), SipDialer::new(trunk).dial(call))
        .await
        .expect("ends");
    assert_eq!(r.outcome, Outcome::NetworkFailure);
    let _ = Path::new(".");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_the_pbx_answering_the_digest_challenge() {
    if !have_sipp() {
        return;
    }
    let port = free_udp_port();
    let mut sipp = Sipp::start("uas_register.xml", port, 1);
    let cfg = Sip { register: Some(Duration::from_secs(120)), ..trunk_config(sipp.port) };
    let _trunk =
        Trunk::start(&cfg, Some(credential()), CancellationToken::new()).await.expect("trunk");
    assert!(sipp.passed(), "REGISTER challenged, retried with a valid digest, granted");
    let log = sipp.log("messages.log");
    assert!(log.contains("REGISTER sip:127.0.0.1 SIP/2.0"), "{log}");
    assert!(log.contains("SIP/2.0 200 OK"), "the registrar granted it:\n{log}");
}

#[tokio::test]
async fn a_cancel_whose_487_never_comes_ends_as_no_answer_64_t1_later() {
    // Takes 5 s of ringing and 32 s (64×T1) of waiting for the lost 487.
    let Some((r, mut sipp, trunk)) = dial("uas_cancel_no_487.xml", "5s", None).await else {
        return;
    };
    assert_eq!(r, CallResult { outcome: Outcome::NoAnswer, sip_code: None });
    assert!(sipp.passed(), "the CANCEL arrived and was answered 200");
    no_dialogs_left(&trunk).await;
}

/// Places a call to sipp running `scenario` and cancels the call's hang-up token after
/// `stop_after`; returns how it ended, or panics when it does not end within `bound`.
async fn dial_then_stop(
    scenario: &str,
    stop_after: Duration,
    bound: Duration,
) -> Option<CallResult> {
    if !have_sipp() {
        return None;
    }
    let port = free_udp_port();
    let _sipp = Sipp::start(scenario, port, 1);
    let trunk =
        Trunk::start(&trunk_config(port), None, CancellationToken::new()).await.expect("trunk");
    let call = patient_call(kallio("5s"));
    let hangup = call.hangup.clone();
    let dialing = tokio::spawn(SipDialer::new(trunk.clone()).dial(call));
    tokio::time::sleep(stop_after).await;
    hangup.cancel();
    let r = tokio::time::timeout(bound, dialing)
        .await
        .expect("the call ends soon after it is told to stop, whatever the PBX does")
        .expect("the call task");
    no_dialogs_left(&trunk).await;
    Some(r)
}

#[tokio::test]
async fn stopping_an_invite_nobody_answers_does_not_wait_for_timer_b() {
    // Timer B would end the INVITE after 32 s; the stop must win long before.
    let Some(r) =
        dial_then_stop("uas_silent.xml", Duration::from_millis(500), Duration::from_secs(10)).await
    else {
        return;
    };
    assert_eq!(r, CallResult { outcome: Outcome::Interrupted, sip_code: None });
}

#[tokio::test]
async fn stopping_after_a_cancel_without_487_does_not_wait_64_t1() {
    // The ring timeout's CANCEL goes at 5 s; 64×T1 would end the wait at 37 s.
    let Some(r) =
        dial_then_stop("uas_cancel_no_487.xml", Duration::from_secs(7), Duration::from_secs(15))
            .await
    else {
        return;
    };
    assert_eq!(r, CallResult { outcome: Outcome::NoAnswer, sip_code: None });
}

/// A trunk with no PBX behind it (nothing is dialled), and a UDP socket to talk to it.
async fn bare_trunk() -> (Arc<Trunk>, CancellationToken, tokio::net::UdpSocket) {
    let cancel = CancellationToken::new();
    let trunk =
        Trunk::start(&trunk_config(free_udp_port()), None, cancel.clone()).await.expect("trunk");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(trunk.local_addr()).await.expect("connect");
    (trunk, cancel, socket)
}

/// A request from `socket`'s address with the given start line and From.
fn raw_request(socket: &tokio::net::UdpSocket, start: &str, from: &str, n: u32) -> Vec<u8> {
    let me = socket.local_addr().expect("addr");
    let method = start.split(' ').next().unwrap_or_default();
    format!(
        "{start}\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-raw{n}\r\nMax-Forwards: 70\r\n\
         From: {from}\r\nTo: <sip:callbackd@127.0.0.1>\r\nCall-ID: raw{n}@test\r\n\
         CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

async fn answer_to(socket: &tokio::net::UdpSocket, datagram: &[u8]) -> String {
    socket.send(datagram).await.expect("send");
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("an answer")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

const A_FROM: &str = "<sip:+358401112233@127.0.0.1>;tag=t1";

#[tokio::test]
async fn unknown_methods_get_405_with_allow_and_other_sip_versions_505() {
    let (trunk, cancel, socket) = bare_trunk().await;
    let r =
        answer_to(&socket, &raw_request(&socket, "FOO sip:x@127.0.0.1 SIP/2.0", A_FROM, 1)).await;
    assert!(r.starts_with("SIP/2.0 405 Method Not Allowed\r\n"), "{r}");
    assert!(r.contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS"), "{r}");
    assert!(r.contains("Call-ID: raw1@test\r\n"), "{r}");
    // A method the stack knows but callbackd does not take: 405 with Allow as well.
    let r =
        answer_to(&socket, &raw_request(&socket, "SUBSCRIBE sip:x@127.0.0.1 SIP/2.0", A_FROM, 2))
            .await;
    assert!(r.starts_with("SIP/2.0 405"), "{r}");
    assert!(r.to_ascii_lowercase().contains("allow: invite"), "{r}");
    let r = answer_to(&socket, &raw_request(&socket, "OPTIONS sip:x@127.0.0.1 SIP/3.0", A_FROM, 3))
        .await;
    assert!(r.starts_with("SIP/2.0 505"), "{r}");
    let r = answer_to(&socket, &raw_request(&socket, "OPTIONS sip:x@127.0.0.1 SIP/2.0", A_FROM, 4))
        .await;
    assert!(r.starts_with("SIP/2.0 200"), "keep-alives still answered: {r}");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), trunk.stopped())
        .await
        .expect("every task of the trunk ends once cancelled");
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_datagrams_are_counted_and_no_log_line_shows_their_number() {
    let metrics = callbackd::metrics::install().expect("metrics");
    let logs = Captured::default();
    let filter =
        tracing_subscriber::EnvFilter::new(format!("info,{}", callbackd::sip::LOG_DIRECTIVES));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // The runtime has one thread: every task of the trunk logs into this subscriber.
    let _default = tracing::subscriber::set_default(subscriber);
    let (_trunk, _cancel, socket) = bare_trunk().await;
    // The SIP stack cannot parse this From (no '>'); its warning used to echo it.
    let broken = "<sip:+358405550125@127.0.0.1;tag=t2";
    socket
        .send(&raw_request(&socket, "INVITE sip:x@127.0.0.1 SIP/2.0", broken, 5))
        .await
        .expect("send");
    socket.send(b"+358405550126 is not SIP\r\n\r\n").await.expect("send");
    socket.send(&[0xff, 0x00, 0x35, 0x38]).await.expect("send");
    // A well-formed request with a number in it: answered, and not logged either.
    let well = "<sip:+358405550127@127.0.0.1>;tag=t3";
    let r =
        answer_to(&socket, &raw_request(&socket, "OPTIONS sip:x@127.0.0.1 SIP/2.0", well, 6)).await;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    for digits in ["405550125", "405550126", "405550127"] {
        assert!(!text.contains(digits), "a number in the log:\n{text}");
    }
    assert_eq!(
        text.matches("unreadable SIP datagrams dropped").count(),
        1,
        "one line per interval, however many:\n{text}"
    );
    let scrape = metrics.render();
    for reason in ["headers", "start_line", "unreadable"] {
        let series = format!("callbackd_sip_malformed_total{{reason=\"{reason}\"}} ");
        assert!(scrape.contains(&series), "{series} in\n{scrape}");
    }
}
