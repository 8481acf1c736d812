//! The Kamailio example (`dialplans/pbx/kamailio/kamailio-callbackd.cfg`) in a real
//! Kamailio, between callbackd's SIP dialer and sipp playing the carrier:
//!
//! ```text
//! SipDialer ──INVITE──▶ kamailio (127.0.0.1:K) ──INVITE──▶ sipp UAS (127.0.0.1:S)
//!           ◀─ 403 ───  (a refusal by policy)
//! ```
//!
//! A callback passes with its caller ID and P-Asserted-Identity intact; a caller ID that is
//! not a station's, a premium-rate number and a carrier that never answers each reach
//! callbackd as a code it records as `network_failure` (retried, not counted against the
//! patient).
//!
//! Kamailio and sipp are the Debian packages `kamailio` and `sip-tester`. Without them these
//! tests say SKIPPED, except under `CI=true`, where a missing one fails them.

use callbackd::call::attempt::{CallResult, Dialer};
use callbackd::dialplan::{self, Service};
use callbackd::number::E164;
use callbackd::policy::{Effect, Outcome};
use callbackd::sip::{SipDialer, Trunk};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;

use common::repo;
use common::sipp::{Sipp, free_udp_port, have_sipp, patient_call, trunk_config};

/// True when `kamailio` can run; false (after saying so) on a developer's machine without
/// it; panics when it is missing in CI.
fn have_kamailio() -> bool {
    let found = Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kamailio (Debian package kamailio) is missing in CI"
        );
        eprintln!("SKIPPED: kamailio not installed (apt-get install kamailio)");
    }
    found
}

/// A Kamailio running the example fragment, in the foreground, in its own process group;
/// stopped (the whole group) on drop.
#[derive(Debug)]
struct Kamailio {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

/// The `#!define`s of the example a test sets, with the value each gets.
fn example_with(carrier_port: u16) -> String {
    let path = repo().join("dialplans/pbx/kamailio/kamailio-callbackd.cfg");
    let mut cfg = std::fs::read_to_string(&path).expect("read the Kamailio example");
    let edits = [
        ("#!define CALLBACKD_IP \"192.0.2.10\"", "#!define CALLBACKD_IP \"127.0.0.1\"".to_owned()),
        (
            "#!define CARRIER_URI \"sip:198.51.100.1:5060\"",
            format!("#!define CARRIER_URI \"sip:127.0.0.1:{carrier_port}\""),
        ),
    ];
    for (from, to) in edits {
        assert!(cfg.contains(from), "the example has no {from:?}");
        cfg = cfg.replace(from, &to);
    }
    // The fragment's own `#!KAMAILIO` marker belongs at the top of a whole file only.
    cfg.lines().filter(|l| l.trim() != "#!KAMAILIO").collect::<Vec<_>>().join("\n")
}

/// A whole `kamailio.cfg` around the example: a loopback listener, the modules it needs,
/// short tm timers, and the usual in-dialog handling before `route(CALLBACKD)`.
fn config(port: u16, carrier_port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:{port}

loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "maxfwd.so"
# A silent carrier is given up after 2 s (not the default 30 s).
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 30000)

{example}

request_route {{
	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}
	if (has_totag()) {{
		if (loose_route()) {{
			t_relay();
			exit;
		}}
		if (is_method("ACK")) {{
			if (t_check_trans()) t_relay();
			exit;
		}}
		sl_send_reply("404", "Not here");
		exit;
	}}
	if (is_method("CANCEL")) {{
		if (t_check_trans()) t_relay();
		exit;
	}}
	route(CALLBACKD);
	sl_send_reply("403", "Only callbackd calls out here");
}}
"#,
        example = example_with(carrier_port)
    )
}

impl Kamailio {
    /// Kamailio on a free loopback port, relaying callbackd's calls to
    /// `127.0.0.1:carrier_port`. Checks the configuration first (`-c`), so a broken
    /// example fails here with Kamailio's own message.
    fn start(carrier_port: u16) -> Kamailio {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_udp_port();
        let cfg = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg, config(port, carrier_port)).expect("write kamailio.cfg");
        let check = Command::new("kamailio").arg("-c").arg("-f").arg(&cfg).output().expect("run");
        assert!(
            check.status.success(),
            "kamailio -c refuses the example:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log file");
        std::fs::create_dir_all(dir.path().join("run")).expect("runtime directory");
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new("kamailio")
                .args(["-DD", "-E", "-m", "32", "-M", "4", "-Y"])
                .arg(dir.path().join("run"))
                .arg("-f")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(log),
            0,
        )
        .spawn()
        .expect("start kamailio");
        // Wait (bounded) until Kamailio holds its port.
        for _ in 0..250 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Kamailio { child: Some(child), dir, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SIGTERM to the group: the main process stops its children and exits.
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.wait();
    }
}

/// Kallio's dialplan, with `edits` applied.
fn kallio(edits: &[(&str, &str)]) -> Arc<Service> {
    let mut src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    for (from, to) in edits {
        assert!(src.contains(from), "kallio.toml has no {from:?}");
        src = src.replace(from, to);
    }
    let services = dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid");
    Arc::new(services.get("kallio").expect("kallio").clone())
}

/// One call of `number` for `service` through Kamailio at `kamailio`.
async fn dial_through(kamailio: &Kamailio, service: Arc<Service>, number: &str) -> CallResult {
    let trunk = Trunk::start(&trunk_config(kamailio.port), None, CancellationToken::new())
        .await
        .expect("trunk");
    let mut call = patient_call(service);
    call.number = E164::from_stored(number.into());
    let result = tokio::time::timeout(Duration::from_secs(60), SipDialer::new(trunk).dial(call))
        .await
        .expect("the call ends");
    if result.outcome != Outcome::Connected {
        eprintln!("kamailio's log:\n{}", kamailio.log());
    }
    result
}

fn peers() -> bool {
    have_kamailio() && have_sipp()
}

#[tokio::test]
async fn a_callback_passes_kamailio_with_its_caller_id_intact() {
    if !peers() {
        return;
    }
    let mut carrier = Sipp::start("uas_kamailio_answer.xml", free_udp_port(), 1);
    let kamailio = Kamailio::start(carrier.port);
    let r = dial_through(&kamailio, kallio(&[]), "+358401234567").await;
    let passed = carrier.passed();
    if !passed {
        eprintln!("kamailio's log:\n{}", kamailio.log());
    }
    assert!(passed, "the carrier saw From, PAI, Privacy, Via and Record-Route, then our BYE");
    assert_eq!(r, CallResult { outcome: Outcome::Connected, sip_code: Some(200) });
}

/// What a refusal by the example's policy must be for callbackd.
fn assert_policy_refusal(r: CallResult, code: u16) {
    assert_eq!(r, CallResult { outcome: Outcome::NetworkFailure, sip_code: Some(code) });
    assert_eq!(r.outcome.effect(), Effect::NotCounted, "retried, not counted");
}

#[tokio::test]
async fn a_caller_id_that_is_not_a_stations_is_refused_with_403() {
    if !have_kamailio() {
        return;
    }
    // Nothing listens on the carrier's port: the call must not get that far.
    let kamailio = Kamailio::start(free_udp_port());
    let service = kallio(&[("number = \"+358 9 3104 5501\"", "number = \"+358 9 1234 5678\"")]);
    let r = dial_through(&kamailio, service, "+358401234567").await;
    assert_policy_refusal(r, 403);
}

#[tokio::test]
async fn a_premium_rate_number_is_refused_with_403_not_404() {
    if !have_kamailio() {
        return;
    }
    let kamailio = Kamailio::start(free_udp_port());
    let r = dial_through(&kamailio, kallio(&[]), "+358600123456").await;
    assert_policy_refusal(r, 403);
}

#[tokio::test]
async fn a_carrier_that_never_answers_is_a_network_failure_not_no_answer() {
    if !have_kamailio() {
        return;
    }
    // A bound socket that never reads: the INVITE is lost, tm gives up after fr_timer.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let kamailio = Kamailio::start(port);
    let r = dial_through(&kamailio, kallio(&[]), "+358401234567").await;
    assert_policy_refusal(r, 503);
    drop(silent);
}

#[test]
fn the_example_passes_kamailios_own_check() {
    if !have_kamailio() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, config(free_udp_port(), 5060)).expect("write");
    let out = Command::new("kamailio").arg("-c").arg("-f").arg(&cfg).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
