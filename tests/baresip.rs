//! A callback to a real phone: baresip (Debian package `baresip`) plays the patient. It
//! auto-answers, hears the greeting (recorded by its sndfile module), presses 1 (RFC 4733),
//! and is transferred by REFER to the staff queue (sipp), which it then calls.
//!
//! Without baresip, `script` or sox the test says SKIPPED, except under `CI=true`, where it
//! fails (`common::tools`); the tone is always sox's, never a stand-in.

mod common;

use callbackd::call::attempt::Dialer;
use callbackd::dialplan;
use callbackd::lang::Lang;
use callbackd::media::Prompts;
use callbackd::policy::Outcome;
use callbackd::sip::{SipDialer, Trunk};
use common::repo;
use common::sipp::{Sipp, free_udp_port, have_sipp, patient_call, trunk_config};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// baresip, `script` (its pseudo-terminal) and sox (its tone); see [`common::tools`].
fn have_baresip() -> bool {
    common::tools(&[("baresip", "baresip"), ("script", "bsdutils"), ("sox", "sox")])
}

/// baresip as the patient's phone, on a pseudo-terminal (its key input needs one), killed
/// on drop.
struct Phone {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// Lines baresip printed. Sender: the reader thread; receiver: the test.
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Phone {
    fn start(number: &str) -> Phone {
        Phone::start_with(&[number])
    }

    /// A phone answering every one of `numbers` (a second one plays the staff queue).
    fn start_with(numbers: &[&str]) -> Phone {
        Phone::launch(numbers, "udp", "", "")
    }

    /// A phone whose accounts use `transport`, with extra account parameters (e.g.
    /// `;mediaenc=srtp-mand`) and configuration lines (e.g. `sip_certificate`). With a
    /// certificate baresip listens for TLS on `port + 1`.
    ///
    /// Ports are picked free but may be taken before baresip binds them (other tests run
    /// meanwhile): a phone that cannot bind is started again on other ports, twice at most.
    fn launch(numbers: &[&str], transport: &str, params: &str, extra: &str) -> Phone {
        let mut tries = 0;
        loop {
            match Phone::try_launch(numbers, transport, params, extra) {
                Ok(phone) => return phone,
                Err(log) if log.contains("Address already in use") && tries < 2 => tries += 1,
                Err(log) => panic!("baresip never printed \"baresip is ready\":\n{log}"),
            }
        }
    }

    /// [`Phone::launch`] once: `Err` with baresip's output when it did not become ready.
    fn try_launch(
        numbers: &[&str],
        transport: &str,
        params: &str,
        extra: &str,
    ) -> Result<Phone, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_phone_port();
        let d = dir.path();
        // A source longer than any call: baresip hangs up when its source file ends.
        let status = Command::new("sox")
            .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
            .arg(d.join("source.wav"))
            .args(["synth", "60", "sine", "300", "vol", "0.05"])
            .status()
            .expect("run sox");
        assert!(status.success(), "sox could not write the phone's tone: {status}");
        let config = format!(
            "sip_listen 127.0.0.1:{port}\n\
             module_path /usr/lib/baresip/modules\n\
             module stdio.so\n\
             module g711.so\n\
             module aufile.so\n\
             module sndfile.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             audio_player aufile,{play}\n\
             audio_source aufile,{source}\n\
             snd_path {dir}\n\
             {extra}",
            play = d.join("play.wav").display(),
            source = d.join("source.wav").display(),
            dir = d.display(),
        );
        std::fs::write(d.join("config"), config).expect("config");
        let accounts: String = numbers
            .iter()
            .map(|n| {
                format!(
                    "<sip:{n}@127.0.0.1:{port};transport={transport}>;regint=0;answermode=auto{params}\n"
                )
            })
            .collect();
        std::fs::write(d.join("accounts"), accounts).expect("accounts");
        let mut child = Command::new("script")
            .args(["-qfec", &format!("baresip -f {}", d.display()), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start baresip");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).into_owned();
                sink.lock().expect("log").push_str(&line);
                sink.lock().expect("log").push('\n');
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let phone = Phone { child, dir, port, lines, log };
        phone.seen("baresip is ready", Duration::from_secs(10))?;
        Ok(phone)
    }

    fn wait_for(&self, what: &str, limit: Duration) {
        if let Err(log) = self.seen(what, limit) {
            panic!("baresip never printed {what:?}:\n{log}");
        }
    }

    /// Waits until baresip prints a line containing `what`; `Err` with its output so far
    /// when it does not within `limit` (or exits).
    fn seen(&self, what: &str, limit: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(self.log.lock().expect("log").clone()),
            }
        }
    }

    /// Presses a key (the menu sends it as an RFC 4733 telephone-event).
    fn press(&mut self, key: char) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(key.to_string().as_bytes()).expect("key");
        stdin.flush().expect("flush");
    }

    /// Dials `uri` from the phone's first account (a menu command).
    fn dial(&mut self, uri: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(format!("/dial {uri}\n").as_bytes()).expect("dial");
        stdin.flush().expect("flush");
    }

    /// What the phone heard: the decoded audio of its first call.
    fn heard(&self) -> Vec<i16> {
        let mut dumps: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        dumps.sort();
        let first = dumps.first().expect("baresip recorded the call");
        // The recording may still be open (its header not yet final): take every 16-bit
        // sample after the `data` chunk header, up to the end of the file.
        let bytes = std::fs::read(first).expect("recording");
        let start = bytes.windows(4).position(|w| w == b"data").map_or(44, |i| i + 8);
        bytes[start.min(bytes.len())..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

/// A port on which baresip can listen: UDP and TCP free there, and TCP one above (TLS).
fn free_phone_port() -> u16 {
    loop {
        let port = free_udp_port();
        let tcp = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if port < u16::MAX && tcp(port) && tcp(port + 1) {
            return port;
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RMS per 20 ms frame.
fn envelope(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks(160)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// The best normalised correlation of `needle`'s envelope anywhere in `hay`'s.
fn best_match(hay: &[f64], needle: &[f64]) -> f64 {
    let norm = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let centred: Vec<f64> = v.iter().map(|x| x - m).collect();
        let n = centred.iter().map(|x| x * x).sum::<f64>().sqrt();
        (centred, n)
    };
    let (nd, nn) = norm(needle);
    (0..hay.len().saturating_sub(needle.len()))
        .map(|lag| {
            let (h, hn) = norm(&hay[lag..lag + needle.len()]);
            if hn == 0.0 || nn == 0.0 {
                0.0
            } else {
                h.iter().zip(&nd).map(|(a, b)| a * b).sum::<f64>() / (hn * nn)
            }
        })
        .fold(0.0, f64::max)
}

/// The energy (RMS) of `samples` from `from` to `to` seconds.
fn rms(samples: &[i16], from: f64, to: f64) -> f64 {
    let (a, b) = ((from * 8000.0) as usize, (to * 8000.0) as usize);
    let part = &samples[a.min(samples.len())..b.min(samples.len())];
    if part.is_empty() {
        return 0.0;
    }
    (part.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / part.len() as f64).sqrt()
}

/// Kallio's shipped dialplan with `edits` (pattern, replacement) applied, its prompts and
/// the service.
fn kallio_with(edits: &[(&str, &str)]) -> (Arc<Prompts>, Arc<callbackd::dialplan::Service>) {
    let mut src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    for (from, to) in edits {
        assert!(src.contains(from), "kallio.toml has {from}");
        src = src.replace(from, to);
    }
    let services = dialplan::parse_all(&[(PathBuf::from("kallio.toml"), src)]).expect("valid");
    let prompts =
        Arc::new(Prompts::for_services(&repo().join("sounds"), &services).expect("prompts"));
    (prompts, Arc::new(services.get("kallio").expect("kallio").clone()))
}

#[tokio::test]
async fn a_bridged_callback_relays_audio_between_the_legs() {
    if !have_sipp() || !have_baresip() {
        return;
    }
    // One baresip answers both legs: the patient's number and the staff queue. What it sends
    // on the staff leg (a 300 Hz tone) must arrive, relayed by callbackd, on the patient's leg.
    let phone = Phone::start_with(&["+358401234567", "hoitajat"]);
    let (prompts, service) = kallio_with(&[
        ("sip:hoitajat-kallio@pbx.hel.example", "sip:hoitajat@127.0.0.1"),
        ("method = \"refer\"", "method = \"bridge\""),
        ("confirm = \"dtmf\"", "confirm = \"none\""),
    ]);
    let trunk = Trunk::start(&trunk_config(phone.port), None, CancellationToken::new())
        .await
        .expect("trunk");
    let dialer = SipDialer::new(trunk.clone()).with_prompts(prompts.clone());
    let c = patient_call(service.clone());
    let hangup = c.hangup.clone();
    let dialing = tokio::spawn(dialer.dial(c));
    // Let the bridge run a few seconds, then end the call from our side.
    let connecting = prompts.get(Lang::Fi, &service.prompts.connecting.name).expect("prompt");
    let prompt_secs = connecting.samples.len() as f64 / 8000.0;
    tokio::time::sleep(Duration::from_secs_f64(prompt_secs + 5.0)).await;
    hangup.cancel();
    let result =
        tokio::time::timeout(Duration::from_secs(60), dialing).await.expect("ends").expect("task");
    assert_eq!(result.outcome, Outcome::Connected, "{}", phone.log.lock().expect("log"));
    let heard = phone.heard();
    let relayed = rms(&heard, prompt_secs + 2.0, prompt_secs + 4.0);
    eprintln!("RMS on the patient's leg while bridged: {relayed:.0}");
    assert!(relayed > 300.0, "no audio from the staff leg on the patient's leg (RMS {relayed:.0})");
}

#[tokio::test]
async fn agent_first_calls_the_nurse_whispers_then_bridges_the_patient() {
    if !have_sipp() || !have_baresip() {
        return;
    }
    // One baresip answers both: the staff queue (first) and the patient (second).
    let phone = Phone::start_with(&["hoitajat", "+358401234567"]);
    let (prompts, service) = kallio_with(&[
        ("sip:hoitajat-kallio@pbx.hel.example", "sip:hoitajat@127.0.0.1"),
        ("method = \"refer\"", "method = \"bridge\""),
        ("mode = \"patient-first\"", "mode = \"agent-first\""),
    ]);
    let trunk = Trunk::start(&trunk_config(phone.port), None, CancellationToken::new())
        .await
        .expect("trunk");
    let dialer = SipDialer::new(trunk).with_prompts(prompts.clone());
    let c = patient_call(service.clone());
    let hangup = c.hangup.clone();
    let dialing = tokio::spawn(dialer.dial(c));
    let whisper = prompts.get(Lang::Fi, &service.prompts.whisper.name).expect("whisper");
    let whisper_secs = whisper.samples.len() as f64 / 8000.0;
    tokio::time::sleep(Duration::from_secs_f64(whisper_secs + 5.0)).await;
    hangup.cancel();
    let result =
        tokio::time::timeout(Duration::from_secs(60), dialing).await.expect("ends").expect("task");
    assert_eq!(result.outcome, Outcome::Connected, "{}", phone.log.lock().expect("log"));
    // The nurse's leg (the first call) heard the whisper, then the patient's tone.
    let heard = phone.heard();
    let score = best_match(&envelope(&heard), &envelope(&whisper.samples));
    eprintln!("whisper correlation on the nurse's leg: {score:.3}");
    assert!(score > 0.8, "the nurse did not hear the whisper ({score:.2})");
    let bridged = rms(&heard, whisper_secs + 2.5, whisper_secs + 4.0);
    assert!(bridged > 300.0, "no audio from the patient on the nurse's leg (RMS {bridged:.0})");
}

#[tokio::test]
async fn a_callback_to_baresip_is_heard_confirmed_and_transferred() {
    if !have_sipp() || !have_baresip() {
        return;
    }
    let mut phone = Phone::start("+358401234567");
    // The staff queue: sipp answering whatever comes (the transferred patient).
    let staff_port = free_udp_port();
    let staff = Sipp::start("uas_staff_answer.xml", staff_port, 1);
    let staff_uri = format!("sip:hoitajat@127.0.0.1:{staff_port}");
    let (prompts, service) =
        kallio_with(&[("sip:hoitajat-kallio@pbx.hel.example", staff_uri.as_str())]);
    let trunk = Trunk::start(&trunk_config(phone.port), None, CancellationToken::new())
        .await
        .expect("trunk");
    let dialer = SipDialer::new(trunk).with_prompts(prompts.clone());
    let call = patient_call(service.clone());
    let dialing = tokio::spawn(dialer.dial(call));
    // The phone answers; let it hear the greeting, then press 1.
    let wait = tokio::task::spawn_blocking(move || {
        phone.wait_for("Call established", Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(3));
        phone.press('1');
        phone
    });
    let phone = wait.await.expect("phone");
    let result =
        tokio::time::timeout(Duration::from_secs(60), dialing).await.expect("ends").expect("task");
    assert_eq!(result.outcome, Outcome::Connected, "{}", phone.log.lock().expect("log"));
    // The staff queue got the transferred patient (baresip's INVITE after our REFER).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !staff.log("messages.log").contains("INVITE sip:hoitajat@") {
        assert!(
            std::time::Instant::now() < deadline,
            "no INVITE reached the staff queue:\n{}",
            phone.log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(staff);
    // The greeting really arrived: its loudness contour is found in what the phone heard.
    let greeting = prompts.get(Lang::Fi, &service.prompts.greeting.name).expect("greeting");
    let heard = phone.heard();
    let score = best_match(&envelope(&heard), &envelope(&greeting.samples));
    eprintln!("greeting correlation in the recording: {score:.3}");
    assert!(
        score > 0.8,
        "the greeting was not heard (correlation {score:.2}, {} samples)",
        heard.len()
    );
}

#[tokio::test]
async fn a_callback_over_tls_with_srtp_is_heard_confirmed_and_bridged() {
    if !have_baresip() || !common::tls::have("openssl", "openssl") {
        return;
    }
    // The phone takes SIP over TLS (a certificate from a throw-away CA) and insists on SRTP
    // (`srtp-mand`: it answers only an RTP/SAVP offer with a=crypto, and drops media that
    // does not authenticate). It answers the patient's number and the staff queue. So the
    // greeting it records went out encrypted, the key it presses came back encrypted
    // (RFC 4733 events inside SRTP), and the bridge decrypts one leg and encrypts the other.
    let pki = common::tls::Pki::new("pbx");
    let extra = format!("module srtp.so\nsip_certificate {}\n", pki.combined().display());
    let mut phone =
        Phone::launch(&["+358401234567", "hoitajat"], "tls", ";mediaenc=srtp-mand", &extra);
    let (prompts, service) = kallio_with(&[
        ("sip:hoitajat-kallio@pbx.hel.example", "sip:hoitajat@127.0.0.1"),
        ("method = \"refer\"", "method = \"bridge\""),
    ]);
    let cfg = callbackd::config::Sip {
        transport: callbackd::config::Transport::Tls,
        tls: callbackd::config::SipTls { ca_file: Some(pki.ca()), client: None },
        srtp: callbackd::config::SrtpMode::Required,
        // baresip listens for TLS one port above its UDP/TCP port.
        ..trunk_config(phone.port + 1)
    };
    let trunk = Trunk::start(&cfg, None, CancellationToken::new()).await.expect("trunk");
    let dialer = SipDialer::new(trunk).with_prompts(prompts.clone());
    let call = patient_call(service.clone());
    let hangup = call.hangup.clone();
    let dialing = tokio::spawn(dialer.dial(call));
    let connecting = prompts.get(Lang::Fi, &service.prompts.connecting.name).expect("prompt");
    let connecting_secs = connecting.samples.len() as f64 / 8000.0;
    let phone = tokio::task::spawn_blocking(move || {
        phone.wait_for("Call established", Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(3));
        phone.press('1');
        phone.wait_for("Call established", Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs_f64(connecting_secs.min(10.0) + 3.0));
        phone
    })
    .await
    .expect("phone");
    hangup.cancel();
    let result =
        tokio::time::timeout(Duration::from_secs(60), dialing).await.expect("ends").expect("task");
    let log = phone.log.lock().expect("log").clone();
    assert!(log.contains("SRTP is Enabled"), "baresip negotiated SRTP:\n{log}");
    assert_eq!(result.outcome, Outcome::Connected, "the key 1 arrived over SRTP:\n{log}");
    let greeting = prompts.get(Lang::Fi, &service.prompts.greeting.name).expect("greeting");
    let heard = phone.heard();
    let score = best_match(&envelope(&heard), &envelope(&greeting.samples));
    eprintln!("greeting correlation over SRTP: {score:.3}");
    assert!(score > 0.8, "the greeting was not heard over SRTP ({score:.2}):\n{log}");
}

/// The prompts `stems` played back to back, in Finnish, as they are sent: each prompt's
/// last frame filled up to 20 ms with silence.
fn said(prompts: &Prompts, stems: &[String]) -> Vec<i16> {
    let mut out = Vec::new();
    for s in stems {
        let p = prompts.get(Lang::Fi, s).unwrap_or_else(|| panic!("prompt {s}"));
        out.extend_from_slice(&p.samples);
        out.resize(out.len().div_ceil(160) * 160, 0);
    }
    out
}

/// The intake call from a real phone: baresip (as the caller the PBX sends in) dials the
/// daemon's intake user, presses 1 (this number) and 0 (the first free time) as RFC 4733
/// events; its recording holds its own number read back digit by digit and, after the
/// store, the expected time the API gives for the stored request.
#[tokio::test]
async fn a_caller_leaves_a_request_on_the_phone_and_hears_number_and_eta() {
    if !have_baresip() {
        return;
    }
    let mut phone = Phone::start("+358401234567");
    let setup = common::Setup::new();
    setup.point_at(&format!("127.0.0.1:{}", phone.port), &repo().join("dialplans"), "");
    let daemon = common::Daemon::start(&setup).await;
    let target = format!("sip:ringbud-kallio@{}", daemon.sip_addr());
    let mut phone = tokio::task::spawn_blocking(move || {
        phone.dial(&target);
        phone.wait_for("Call established", Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(2));
        phone.press('1');
        std::thread::sleep(Duration::from_millis(500));
        phone.press('0');
        phone
    })
    .await
    .expect("phone");
    // The call ends with callbackd's BYE once the time is said.
    let mut stored = None;
    for _ in 0..900 {
        let (status, body) = daemon.get("/v1/callbacks/1").await;
        if status == 200 && daemon.logs().contains("intake call over") {
            stored = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let req = stored.unwrap_or_else(|| panic!("no request stored:\n{}", daemon.logs()));
    assert_eq!(
        (req["channel"].as_str(), req["number"].as_str()),
        (Some("ivr"), Some("+35840*****67"))
    );
    phone = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(2));
        phone
    })
    .await
    .expect("phone");
    let services = dialplan::load_dir(&repo().join("dialplans")).expect("dialplans");
    let prompts = Prompts::for_services(&repo().join("sounds"), &services).expect("prompts");
    let heard = envelope(&phone.heard());
    let log = phone.log.lock().expect("log").clone();
    // The number, digit by digit: 0 4 0 1 2 3 4 5 6 7.
    let digits: Vec<String> = "0401234567".chars().map(|c| format!("num-{c}")).collect();
    let score = best_match(&heard, &envelope(&said(&prompts, &digits)));
    eprintln!("read-back number correlation: {score:.3}");
    assert!(score > 0.8, "the number was not read back ({score:.2}):\n{log}");
    // The expected time told to the caller, as recorded with the request: the API gives it
    // while the request waits; in opening hours the daemon may already be calling back
    // (then the API gives no ETA), so the recorded window is read from the store itself.
    let from: jiff::Timestamp = match req["eta"]["from"].as_str() {
        Some(t) => t.parse().expect("eta instant"),
        None => told_from(&setup.database()).await.unwrap_or_else(|| panic!("an eta: {req}")),
    };
    let kallio = &services["kallio"];
    let now = jiff::Timestamp::now();
    let eta = callbackd::policy::Eta { from, to: from };
    let spoken = callbackd::call::intake::spoken(&eta, kallio.calendar.tz(), now);
    let words = [callbackd::call::intake::Word::Eta(Some(spoken))];
    let stems = callbackd::call::intake::stems(&words, "unused");
    let score = best_match(&heard, &envelope(&said(&prompts, &stems)));
    eprintln!("spoken ETA {stems:?} correlation: {score:.3}");
    assert!(score > 0.8, "the ETA was not said ({score:.2}):\n{log}");
}

/// The start of the window told to request 1's patient, as recorded in the SQLite store.
async fn told_from(db: &std::path::Path) -> Option<jiff::Timestamp> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=ro", db.display())).await.ok()?;
    let ms: Option<i64> = sqlx::query("SELECT told_from FROM requests WHERE id = 1")
        .fetch_one(&pool)
        .await
        .ok()?
        .get("told_from");
    pool.close().await;
    jiff::Timestamp::from_millisecond(ms?).ok()
}
