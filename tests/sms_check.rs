//! `callbackd check` on broken SMS settings: the dialplan's `[sms]` section and the
//! daemon configuration's `[sms]` gateway, every problem with its `file:line:col`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn callbackd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run callbackd")
}

#[test]
fn broken_sms_sections_of_a_dialplan_are_all_reported() {
    let f = "tests/dialplans-broken/sms.toml";
    let out = callbackd(&["check", "--config", "callbackd.toml", f]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        format!(
            "{f}:18:1: sms: unreachable messages are enabled but sms.sv.unreachable is missing"
        ),
        format!("{f}:18:1: sms: feedback messages are enabled but sms.sv.feedback is missing"),
        format!(
            "{f}:19:10: sms.sender: \"Kallion terveysasema\": an alphanumeric sender ID has at most 11 characters"
        ),
        format!("{f}:23:18: sms.feedback_delay: \"soon\" is not a duration"),
        format!("{f}:24:1: unknown key `sms.colour`"),
        format!("{f}:27:10: sms.fi.notice: unknown placeholder {{nimi}}"),
        format!("{f}:29:12: sms.fi.feedback: uses {{link}} but sms.feedback_link is not set"),
        format!("{f}:32:10: sms.sv.notice: the message takes 2 SMS parts, more than max_parts = 1"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("sms.fi.notice is missing"),
        "a broken template is not also missing: {err}"
    );
    assert!(err.contains("9 errors found") || err.contains("8 errors found"), "{err}");
}

#[test]
fn sender_ids_that_traficom_forbids_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    for (sender, why) in [
        ("Kallio-TA", "may hold only 0-9, a-z, A-Z and space"),
        ("Töölö TA", "may hold only"),
        ("KallioTerveys", "at most 11 characters"),
        ("1234567890123456", "at most 15 digits"),
    ] {
        let file = dir.path().join("kallio.toml");
        std::fs::write(
            &file,
            src.replace("sender = \"Kallio TA\"", &format!("sender = {sender:?}")),
        )
        .expect("write");
        let out = callbackd(&["check", "--config", "callbackd.toml", file.to_str().expect("utf8")]);
        assert_eq!(out.status.code(), Some(64), "{sender}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sms.sender") && err.contains(why), "{sender}: {err}");
    }
}

#[test]
fn a_broken_sms_gateway_configuration_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "dialplans = \"dp\"\n[sip]\npbx = \"pbx:5060\"\n[sms]\nurl = \"ftp://x\"\nbody = \"form\"\n\
         quiet_hours = \"21-08\"\nmax_tries = 0\ntimeout = \"1h\"\nmethod = \"POST\"\n\
         [sms.auth]\nscheme = \"bearer\"\nusername = \"u\"\nsecret_file = \"s\"\n",
    )
    .expect("write");
    let out = callbackd(&["check", "--config", cfg.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let c = cfg.display();
    for expected in [
        format!("{c}:5:7: sms.url: \"ftp://x\" is not an http(s) URL"),
        format!("{c}:7:15: sms.quiet_hours"),
        format!("{c}:8:13: sms.max_tries must be between 1 and 50"),
        format!("{c}:9:11: sms.timeout must be a duration from 1s to 2m"),
        format!("{c}:12:10: sms.auth: scheme \"bearer\""),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    // A wrong type or an unknown key is reported at its place too.
    std::fs::write(&cfg, "[sip]\npbx = \"pbx:5060\"\n[sms]\nurl = \"https://x\"\nbody = \"xml\"\n")
        .expect("write");
    let out = callbackd(&["check", "--config", cfg.to_str().expect("utf8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{c}:5:8:")) && err.contains("xml"), "{err}");
}

#[test]
fn the_shipped_gateway_examples_are_valid() {
    for example in ["gatewayapi.toml", "linkmobility.toml", "twilio.toml"] {
        let path = repo().join("examples/sms").join(example);
        let src = std::fs::read_to_string(&path).expect("read example");
        let cfg = callbackd::config::Config::from_toml(&path, &src)
            .unwrap_or_else(|e| panic!("{example}: {e:?}"));
        assert!(cfg.sms.is_some(), "{example} configures a gateway");
    }
}
