//! sipp as the PBX in tests: start a UAS scenario from `tests/sipp/`, wait for its verdict.
//!
//! sipp is the Debian package `sip-tester`. Without it a test says SKIPPED, except under
//! `CI=true`, where a missing sipp fails it.

use super::repo;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// True when sipp can run; false (after saying SKIPPED) when it is missing on a developer's
/// machine; panics when it is missing under `CI=true` (see [`super::tool`]).
pub fn have_sipp() -> bool {
    super::tool("sipp", "sip-tester").is_some()
}

/// A UDP port free at the time of asking (sipp binds it next).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// sipp as the PBX, killed on drop.
#[derive(Debug)]
pub struct Sipp {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The UDP (or TCP) port sipp listens on.
    pub port: u16,
    /// sipp's `-timeout`, in seconds: how long the scenario may run.
    timeout: u32,
}

impl Sipp {
    /// sipp over UDP on `port`, for `calls` calls of `scenario`.
    pub fn start(scenario: &str, port: u16, calls: u32) -> Sipp {
        Sipp::start_on(scenario, port, calls, "u1")
    }

    /// The same over TCP (one connection).
    pub fn start_tcp(scenario: &str, port: u16, calls: u32) -> Sipp {
        Sipp::start_on(scenario, port, calls, "t1")
    }

    /// sipp as the PBX *calling* `target` (`host:port`) over UDP: one call of the
    /// scenario file `scenario` to the SIP user `user`, from `port`.
    pub fn call(scenario: &std::path::Path, target: &str, user: &str, port: u16) -> Sipp {
        Sipp::call_within(scenario, target, user, port, 60)
    }

    /// [`Sipp::call`] for a scenario that may run up to `timeout` seconds.
    pub fn call_within(
        scenario: &std::path::Path,
        target: &str,
        user: &str,
        port: u16,
        timeout: u32,
    ) -> Sipp {
        Sipp::spawn(scenario, port, 1, "u1", &[target, "-s", user], timeout)
    }

    fn start_on(scenario: &str, port: u16, calls: u32, transport: &str) -> Sipp {
        Sipp::spawn(&repo().join("tests/sipp").join(scenario), port, calls, transport, &[], 60)
    }

    fn spawn(
        scenario: &std::path::Path,
        port: u16,
        calls: u32,
        transport: &str,
        extra: &[&str],
        timeout: u32,
    ) -> Sipp {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new("sipp")
            .args(extra)
            .args(["-t", transport])
            .arg("-sf")
            .arg(scenario)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &calls.to_string(), "-timeout", &timeout.to_string()])
            .args(["-timeout_error", "-nostdin"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        // Wait (bounded) until sipp holds its port.
        for _ in 0..100 {
            let taken = if transport == "u1" {
                std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
            } else {
                std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
            };
            if taken {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Sipp { child: Some(child), dir, port, timeout }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Waits (bounded) for sipp to finish; true when every call passed its checks.
    pub fn passed(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        for _ in 0..self.timeout * 10 {
            if let Ok(Some(status)) = child.try_wait() {
                if !status.success() {
                    eprintln!(
                        "sipp failed ({status}).\nerrors:\n{}\nmessages:\n{}",
                        self.log("errors.log"),
                        self.log("messages.log")
                    );
                }
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        eprintln!("sipp did not finish.\nmessages:\n{}", self.log("messages.log"));
        false
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A trunk to a PBX (sipp, or baresip playing the phone) at `127.0.0.1:pbx_port`, UDP.
pub fn trunk_config(pbx_port: u16) -> callbackd::config::Sip {
    callbackd::config::Sip {
        bind: "127.0.0.1:0".parse().expect("addr"),
        pbx: format!("127.0.0.1:{pbx_port}"),
        transport: callbackd::config::Transport::Udp,
        max_calls: 10,
        calls_per_second: 10,
        domain: "127.0.0.1".into(),
        number_format: callbackd::config::NumberFormat::E164,
        dial_prefix: String::new(),
        user_phone: true,
        auth: None,
        hangup_after_answer: Duration::from_millis(300),
        register: None,
        tls: callbackd::config::SipTls::default(),
        srtp: callbackd::config::SrtpMode::Off,
        trusted: Vec::new(),
    }
}

/// The first attempt of a request to call +358 40 123 4567 for `service`.
pub fn patient_call(
    service: std::sync::Arc<callbackd::dialplan::Service>,
) -> callbackd::call::attempt::Call {
    callbackd::call::attempt::Call {
        request_id: 1,
        attempt_id: 1,
        seq: 1,
        service,
        number: callbackd::number::E164::from_stored("+358401234567".into()),
        lang: callbackd::lang::Lang::Fi,
        team: None,
        hangup: tokio_util::sync::CancellationToken::new(),
        events: std::sync::Arc::new(callbackd::call::attempt::NoEvents),
    }
}
