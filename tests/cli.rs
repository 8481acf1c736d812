//! The `callbackd` binary as operators run it: check, hours, next-attempt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn callbackd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(args)
        .current_dir(repo())
        .env_remove("CALLBACKD_CONFIG")
        .output()
        .expect("run callbackd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const CONFIG: &str = "callbackd.toml";

#[test]
fn check_accepts_the_shipped_config_and_dialplans() {
    let out = callbackd(&["check", "--config", CONFIG]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok: 3 services\n");
    let out = callbackd(&["check", "--config", CONFIG, "dialplans/"]);
    assert_eq!(text(&out.stdout), "ok: 3 services\n");
}

#[test]
fn check_reports_every_problem_with_its_location_and_exits_64() {
    let out = callbackd(&["check", "--config", CONFIG, "tests/dialplans-broken"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty(), "nothing is reported as ok");
    let err = text(&out.stderr);
    let f = "tests/dialplans-broken/broken.toml";
    for expected in [
        format!("{f}:2:6: id \"Bad Id\" must be"),
        format!("{f}:4:12: unknown time zone \"Europe/Helsingfors\""),
        format!("{f}:5:1: unknown key `colour`"),
        format!("{f}:8:10: caller_id.number: caller ID number must be in E.164 form"),
        format!("{f}:12:8: hours.mon: closing time"),
        format!("{f}:13:23: hours.tue: ranges 08:00-12:00 and 11:00-13:00 overlap"),
        format!("{f}:14:7: `hours.wed`: invalid type"),
        format!("{f}:15:8: hours.thu: expected HH:MM-HH:MM"),
        format!("{f}:17:1: unknown key `hours.thursday`"),
        format!("{f}:20:7: attempts.max: 0 is outside the allowed range 1 to 10"),
        format!("{f}:21:9: attempts.pause: \"soon\" is not a duration"),
        format!("{f}:24:10: connect.target: \"hoitajat\" is not a SIP URI"),
        "tests/dialplans-broken/syntax.toml:2:".to_owned(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("errors found"), "{err}");
}

#[test]
fn check_reports_a_broken_config_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "dialplans = \"nowhere\"\n[sip]\npbx = \"x\"\n").expect("write");
    let out = callbackd(&["check", "--config", cfg.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(err.contains("c.toml:3:7: sip.pbx"), "{err}");
    let out = callbackd(&["check", "--config", "/nonexistent/callbackd.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("cannot read configuration"));
}

#[test]
fn duplicate_service_ids_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    for name in ["a.toml", "b.toml"] {
        std::fs::write(dir.path().join(name), &src).expect("write");
    }
    let out = callbackd(&["check", "--config", CONFIG, dir.path().to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(err.contains("b.toml:4:1: service id \"kallio\" is already used by"), "{err}");
}

fn hours(service: &str, from: &str, to: &str) -> String {
    let out = callbackd(&["hours", service, "--from", from, "--to", to, "--config", CONFIG]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn hours_prints_the_helsinki_calendar_for_christmas() {
    let expected = "\
2026-12-21,08:00-16:00
2026-12-22,08:00-16:00
2026-12-23,08:00-15:00
2026-12-24,closed
2026-12-25,closed
2026-12-26,closed
2026-12-27,closed
2026-12-28,08:00-12:00
2026-12-29,08:00-16:00
2026-12-30,08:00-16:00
2026-12-31,closed
2027-01-01,closed
2027-01-02,closed
2027-01-03,closed
2027-01-04,08:00-16:00
2027-01-05,08:00-15:00
2027-01-06,closed
2027-01-07,08:00-16:00
";
    assert_eq!(hours("kallio", "2026-12-21", "2027-01-07"), expected);
    // Without the operator's exceptions (Vuosaari), Dec 28 and Dec 31 follow the calendar.
    let v = hours("vuosaari", "2026-12-28", "2026-12-31");
    assert_eq!(
        v,
        "2026-12-28,08:00-16:00\n2026-12-29,08:00-16:00\n2026-12-30,08:00-16:00\n2026-12-31,08:00-15:00\n"
    );
}

#[test]
fn hours_over_years_counts_open_days() {
    let all = hours("vuosaari", "2026-01-01", "2027-12-31");
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 730);
    assert!(lines.iter().all(|l| l.len() >= 17 && l.as_bytes()[10] == b','));
    // Midsummer 2027: Thu 24 eve, Fri 25 Midsummer Eve, Sat 26 Midsummer Day.
    assert!(all.contains("2027-06-24,08:00-15:00\n2027-06-25,closed\n2027-06-26,closed\n"));
    // Easter 2027: Thu Mar 25 eve, Good Friday Mar 26, Easter Monday Mar 29.
    assert!(all.contains("2027-03-25,08:00-15:00\n2027-03-26,closed\n"));
    assert!(all.contains("2027-03-29,closed\n2027-03-30,08:00-16:00\n"));
    let k = hours("kotka-neuvonta", "2026-12-24", "2026-12-26");
    assert_eq!(k, "2026-12-24,00:00-24:00\n2026-12-25,00:00-24:00\n2026-12-26,00:00-24:00\n");
}

#[test]
fn hours_defaults_to_fourteen_days_and_rejects_bad_input() {
    let out = callbackd(&["hours", "kallio", "--config", CONFIG]);
    assert_eq!(text(&out.stdout).lines().count(), 14);
    let out = callbackd(&["hours", "nosuch", "--config", CONFIG]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown service \"nosuch\""));
    let out = callbackd(&[
        "hours",
        "kallio",
        "--from",
        "2026-12-02",
        "--to",
        "2026-12-01",
        "--config",
        CONFIG,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = callbackd(&["hours", "kallio", "--from", "2026-13-01", "--config", CONFIG]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn next_attempt_explains_why_a_request_waits() {
    let out = callbackd(&[
        "next-attempt",
        "kallio",
        "--created",
        "2026-11-23T15:45",
        "--now",
        "2026-11-23T15:56",
        "--config",
        CONFIG,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("deadline: 2026-11-23 16:00 (Mon)"), "{s}");
    assert!(s.contains("expires:  2026-11-24 16:00 (Tue)"), "{s}");
    assert!(s.contains("due:      2026-11-23 15:45 (Mon)"), "{s}");
    assert!(
        s.contains("waits until 2026-11-24 08:00 (Tue); the same-day deadline is missed"),
        "{s}"
    );
    // Made after the day's last start moment (15:50): an after-hours request, owed
    // contact the next open day.
    let out = callbackd(&[
        "next-attempt",
        "kallio",
        "--created",
        "2026-11-23T15:55",
        "--now",
        "2026-11-23T15:56",
        "--config",
        CONFIG,
    ]);
    let s = text(&out.stdout);
    assert!(s.contains("deadline: 2026-11-24 16:00 (Tue)"), "{s}");
    assert!(s.contains("due:      2026-11-24 08:00 (Tue)"), "{s}");
    assert!(s.contains("waits until 2026-11-24 08:00 (Tue)\n"), "{s}");

    let out = callbackd(&[
        "next-attempt",
        "kallio",
        "--created",
        "2026-11-23T10:00",
        "--window",
        "12:00-14:00",
        "--attempt",
        "2026-11-23T12:01=busy",
        "--attempt",
        "2026-11-23T12:40=no_answer",
        "--now",
        "2026-11-23T13:00",
        "--config",
        CONFIG,
    ]);
    let s = text(&out.stdout);
    assert!(s.contains("decision: ends as unreachable because all 2 attempts were used"), "{s}");

    let out = callbackd(&[
        "next-attempt",
        "kallio",
        "--created",
        "2026-11-23T10:00",
        "--window",
        "18:00-20:00",
        "--config",
        CONFIG,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not offered by kallio"));
    let out = callbackd(&[
        "next-attempt",
        "kallio",
        "--created",
        "2026-11-23T10:00",
        "--attempt",
        "x=voicemail",
        "--config",
        CONFIG,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown outcome"));
}

#[test]
fn help_teaches_the_commands() {
    let out = callbackd(&["--help"]);
    let s = text(&out.stdout);
    for cmd in ["serve", "check", "hours", "next-attempt"] {
        assert!(s.contains(cmd), "{s}");
    }
    let out = callbackd(&["check", "--help"]);
    assert!(text(&out.stdout).contains("file:line:col"));
    let _ = Path::new(".");
}

#[test]
fn next_open_day_needs_a_day_to_move_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    let allowed = src.replace("capacity = 6\n", "capacity = 6\nnext_open_day = true\n");
    assert_ne!(allowed, src);
    std::fs::write(dir.path().join("kallio.toml"), &allowed).expect("write");
    let out = callbackd(&["check", "--config", CONFIG, dir.path().to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let none_left = allowed.replace("expire_after_open_days = 1", "expire_after_open_days = 0");
    std::fs::write(dir.path().join("kallio.toml"), none_left).expect("write");
    let out = callbackd(&["check", "--config", CONFIG, dir.path().to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "kallio.toml:9:17: next_open_day = true needs attempts.expire_after_open_days"
        ),
        "{err}"
    );
}
