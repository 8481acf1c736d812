//! `callbackd check` refuses prompts that are missing or in the wrong format, naming the
//! WAV file and the reason.

use std::path::{Path, PathBuf};
use std::process::Output;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(config: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(["check", "--config"])
        .arg(config)
        .env_remove("CALLBACKD_CONFIG")
        .output()
        .expect("run callbackd")
}

/// A configuration with the shipped dialplans and a copy of the shipped sounds that `f`
/// may break.
fn setup(break_sounds: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sounds = dir.path().join("sounds");
    for lang in ["fi", "sv", "en"] {
        std::fs::create_dir_all(sounds.join(lang)).expect("mkdir");
        for entry in std::fs::read_dir(repo().join("sounds").join(lang)).expect("read sounds") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name");
            std::fs::copy(&path, sounds.join(lang).join(name)).expect("copy");
        }
    }
    break_sounds(&sounds);
    let config = dir.path().join("callbackd.toml");
    let toml = format!(
        "dialplans = {:?}\nsounds = \"sounds\"\n[sip]\npbx = \"127.0.0.1:5070\"\n",
        repo().join("dialplans").display().to_string()
    );
    std::fs::write(&config, toml).expect("write config");
    (dir, config)
}

#[test]
fn the_shipped_prompts_pass() {
    let (_dir, config) = setup(|_| {});
    let out = check(&config);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_missing_prompt_is_reported_at_its_dialplan_line() {
    let (_dir, config) = setup(|sounds| {
        std::fs::remove_file(sounds.join("sv/greeting-kallio.wav")).expect("rm");
    });
    let out = check(&config);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let kallio = repo().join("dialplans/kallio.toml");
    let src = std::fs::read_to_string(&kallio).expect("read");
    let line = src.lines().position(|l| l.starts_with("greeting = ")).expect("greeting") + 1;
    let expected = format!("{}:{line}:12: prompts.greeting: ", kallio.display());
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    assert!(
        err.contains("sounds/sv/greeting-kallio.wav (sv, offered by kallio): file not found"),
        "{err}"
    );
    // Only that one file, only for that one service.
    assert_eq!(err.lines().filter(|l| l.contains("file not found")).count(), 1, "{err}");
}

#[test]
fn a_cd_quality_stereo_wav_is_refused_with_the_reason() {
    let (_dir, config) = setup(|sounds| {
        let samples: Vec<i16> = (0..4410 * 2).map(|i| (i % 100) as i16).collect();
        callbackd::media::wav::write(&sounds.join("en/sorry.wav"), &samples, 44100, 2)
            .expect("write");
        std::fs::write(sounds.join("fi/num-7.wav"), b"not a wav at all").expect("write");
    });
    let out = check(&config);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sounds/en/sorry.wav (en, offered by kallio): sample rate is 44100 Hz, not 8000 Hz; convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`"),
        "{err}"
    );
    // Every service offering English uses it: all three are told.
    assert_eq!(err.lines().filter(|l| l.contains("en/sorry.wav")).count(), 3, "{err}");
    // A time word is a whole-file problem of the dialplan (no line: it is not named there).
    let kallio = repo().join("dialplans/kallio.toml");
    assert!(
        err.contains(&format!("{}: time word ", kallio.display()))
            && err.contains("fi/num-7.wav (fi, offered by kallio): not a WAV file"),
        "{err}"
    );
    // Mono at 44.1 kHz is refused for the rate; 8 kHz stereo for the channels.
    let (_dir, config) = setup(|sounds| {
        callbackd::media::wav::write(&sounds.join("fi/press-1.wav"), &[0; 100], 8000, 2)
            .expect("write");
    });
    let err = String::from_utf8_lossy(&check(&config).stderr).into_owned();
    assert!(err.contains("fi/press-1.wav (fi, offered by kallio): 2 channels, not mono"), "{err}");
}
