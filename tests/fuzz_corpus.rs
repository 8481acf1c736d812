//! Replays every committed fuzz seed (`fuzz/corpus/<target>/*`) through the same entry
//! points the cargo-fuzz targets run (`fuzz/src/lib.rs`, included here), without
//! libFuzzer: deterministic, quick, part of the normal `cargo test`. A crash the fuzzer
//! finds is fixed and its input added to the corpus, so it stays fixed.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, reason = "the fuzz harness also holds helpers only the fuzz targets call")]
mod harness;

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_replays_without_a_panic() {
    for (target, run) in harness::TARGETS {
        let seeds = corpus(target);
        assert!(seeds.len() >= 3, "{target}: the corpus has {} seeds", seeds.len());
        for seed in seeds {
            let data = std::fs::read(&seed).expect("read seed");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", seed.display());
        }
    }
}

#[test]
fn the_committed_examples_are_seeds() {
    // The shipped examples are the starting points the fuzzer mutates.
    for (target, example) in [
        ("config", "callbackd.toml"),
        ("dialplan", "kallio.toml"),
        ("dialplan", "kotka-neuvonta.toml"),
    ] {
        let seeds = corpus(target);
        assert!(
            seeds.iter().any(|p| p.file_name().is_some_and(|n| n == example)),
            "fuzz/corpus/{target}/{example} is missing"
        );
    }
}

#[test]
fn the_sip_seeds_reach_past_the_parser() {
    // Seeds that do not parse only exercise the first bytes of the parser; these must
    // parse so the fuzzer starts from messages that reach callbackd's own code.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sip");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("seed");
    let body = |name: &str| match rsipstack::sip::SipMessage::try_from(read(name).as_slice()) {
        Ok(rsipstack::sip::SipMessage::Request(r)) => r.body,
        Ok(rsipstack::sip::SipMessage::Response(r)) => r.body,
        Err(e) => panic!("{name} does not parse: {e}"),
    };
    for name in ["invite", "resp_486", "resp_408_no_tag", "compact_options", "refer"] {
        body(name);
    }
    assert_eq!(callbackd::sip::handover::info_digit(&body("info_dtmf")), Some('1'));
    assert_eq!(callbackd::sip::handover::sipfrag_status(&body("notify_sipfrag")), Some(200));
    let sdp = String::from_utf8(body("ok_sdp")).expect("utf-8");
    assert!(callbackd::media::sdp::parse_answer(&sdp).is_ok(), "{sdp}");
}
