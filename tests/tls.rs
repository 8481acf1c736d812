//! Encrypted signalling and media against real peers: the dialer over SIP/TLS to sipp
//! behind a TLS front (socat, with a certificate from a throw-away CA made by openssl), a
//! PBX certificate from the wrong CA, and an SRTP-required offer answered in plain RTP.
//!
//! Peers: Debian packages `sip-tester`, `socat`, `openssl`. Without them these tests say
//! SKIPPED, except under `CI=true`, where they fail.

mod common;

use callbackd::call::attempt::{CallResult, Dialer};
use callbackd::config::{Sip, SipTls, SrtpMode, Transport};
use callbackd::dialplan::{self, Service};
use callbackd::media::Prompts;
use callbackd::policy::Outcome;
use callbackd::sip::{SipDialer, Trunk};
use common::repo;
use common::sipp::{Sipp, free_udp_port, have_sipp, patient_call, trunk_config};
use common::tls::{Pki, TlsFront, have};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn kallio() -> (Arc<Service>, Arc<Prompts>) {
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    let services = dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid");
    let prompts = Prompts::for_services(&repo().join("sounds"), &services).expect("prompts load");
    (Arc::new(services.get("kallio").expect("kallio").clone()), Arc::new(prompts))
}

fn peers() -> bool {
    have_sipp() && have("socat", "socat") && have("openssl", "openssl")
}

/// A trunk over TLS to `127.0.0.1:port`, trusting `ca`.
fn tls_trunk(port: u16, ca: PathBuf) -> Sip {
    Sip {
        transport: Transport::Tls,
        tls: SipTls { ca_file: Some(ca), client: None },
        ..trunk_config(port)
    }
}

/// Log lines written while the test runs (this thread's subscriber: `#[tokio::test]` runs
/// every task on the test's thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_callback_goes_to_the_pbx_over_tls_with_its_caller_id() {
    if !peers() {
        return;
    }
    let pki = Pki::new("pbx");
    let mut sipp = Sipp::start_tcp("uas_answer_tls.xml", free_udp_port(), 1);
    let front = TlsFront::start(&pki, free_udp_port(), sipp.port);
    let trunk = Trunk::start(&tls_trunk(front.port, pki.ca()), None, CancellationToken::new())
        .await
        .expect("trunk");
    let (service, _) = kallio();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        SipDialer::new(trunk).dial(patient_call(service)),
    )
    .await
    .expect("the call ends");
    assert!(sipp.passed(), "sipp's checks: sips: URIs, caller ID, Via TLS");
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
}

#[tokio::test]
async fn a_pbx_certificate_from_another_ca_fails_the_call_as_a_network_failure() {
    if !peers() {
        return;
    }
    let (logs, _guard) = capture();
    let pki = Pki::new("pbx");
    let stranger = Pki::new("stranger");
    let sipp = Sipp::start_tcp("uas_answer_tls.xml", free_udp_port(), 1);
    let front = TlsFront::start(&pki, free_udp_port(), sipp.port);
    let trunk = Trunk::start(&tls_trunk(front.port, stranger.ca()), None, CancellationToken::new())
        .await
        .expect("trunk");
    let (service, _) = kallio();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        SipDialer::new(trunk).dial(patient_call(service)),
    )
    .await
    .expect("the call ends");
    assert_eq!(r, CallResult { outcome: Outcome::NetworkFailure, sip_code: None });
    let logs = logs.text();
    eprintln!("{logs}");
    assert!(logs.contains("UnknownIssuer"), "the log names the certificate problem:\n{logs}");
    assert!(!sipp.log("messages.log").contains("INVITE"), "nothing reached the PBX");
    common::assert_no_unmasked_numbers("logs", &logs);
}

#[tokio::test]
async fn required_srtp_answered_with_plain_rtp_hangs_up() {
    if !have_sipp() {
        return;
    }
    let mut sipp = Sipp::start("uas_srtp_plain_answer.xml", free_udp_port(), 1);
    let cfg = Sip { srtp: SrtpMode::Required, ..trunk_config(sipp.port) };
    let trunk = Trunk::start(&cfg, None, CancellationToken::new()).await.expect("trunk");
    let (service, prompts) = kallio();
    let dialer = SipDialer::new(trunk).with_prompts(prompts);
    let r = tokio::time::timeout(Duration::from_secs(60), dialer.dial(patient_call(service)))
        .await
        .expect("the call ends");
    assert!(sipp.passed(), "an RTP/SAVP offer with two a=crypto lines, then our BYE");
    assert_eq!(r.outcome, Outcome::NetworkFailure);
}
