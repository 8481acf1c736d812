//! What each fuzz target does with one input, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`) and the corpus replay test (`tests/fuzz_corpus.rs`, which
//! includes this file as a module), so a committed seed is replayed through exactly the
//! code the fuzzer ran.
//!
//! Every function takes arbitrary bytes and must return normally: a refusal is an `Err`
//! from callbackd, never a panic. Besides "no panic", each checks a few properties that
//! must hold for every input (diagnostics point into the file, accepted numbers are E.164
//! and masked in logs, SIP codes map to an outcome).

use callbackd::call::{Ending, outcome_of};
use callbackd::diag::Diagnostic;
use callbackd::number::{self, NumberKind, NumberPolicy};
use rsipstack::sip::{HeadersExt, SipMessage, StatusCodeKind, ToTypedHeader};
use std::path::Path;

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their corpus directory (`fuzz/corpus/<name>/`).
pub const TARGETS: [(&str, Target); 4] =
    [("config", config), ("dialplan", dialplan), ("number", number), ("sip", sip_datagram)];

/// The daemon configuration file (`callbackd.toml`), parsed and validated.
pub fn config(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match callbackd::config::Config::from_toml(Path::new("callbackd.toml"), src) {
        Ok(cfg) => drop(format!("{cfg:?}")),
        Err(diags) => check_diagnostics(&diags, src),
    }
}

/// One dialplan file (`dialplans/*.toml`), parsed and validated, alone and as a set.
pub fn dialplan(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let file = Path::new("fuzz.toml");
    match callbackd::dialplan::parse(file, src) {
        Ok(service) => drop(format!("{service:?}")),
        Err(diags) => check_diagnostics(&diags, src),
    }
    let set = [(file.to_path_buf(), src.to_owned())];
    if let Err(diags) = callbackd::dialplan::parse_all(&set) {
        check_diagnostics(&diags, src);
    }
}

/// A located diagnostic points at a place inside the source and prints.
fn check_diagnostics(diags: &[Diagnostic], src: &str) {
    assert!(!diags.is_empty(), "a refusal names at least one problem");
    let lines = src.split('\n').count();
    for d in diags {
        if d.line == 0 {
            assert_eq!(d.col, 0, "{d:?}");
        } else {
            assert!(d.line <= lines, "line {} of {lines}: {d:?}", d.line);
            assert!(d.col >= 1, "{d:?}");
        }
        assert!(!d.to_string().is_empty());
    }
}

/// A patient's number as typed into the intake, under two number policies, and as a
/// station's caller ID; every number that passes is E.164 and masked in logs.
pub fn number(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let strict = NumberPolicy::default();
    let broad = NumberPolicy {
        allow: vec![
            NumberKind::Mobile,
            NumberKind::Fixed,
            NumberKind::FixedOrMobile,
            NumberKind::Voip,
        ],
        foreign: ["SE", "EE", "NO", "DE", "US", "GB"]
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect(),
    };
    for policy in [&strict, &broad] {
        if let Ok(n) = policy.check(raw) {
            check_e164(n.as_str());
            // Checking the stored form again keeps it unchanged (a retry calls the same
            // person the intake accepted).
            assert_eq!(policy.check(n.as_str()).as_ref(), Ok(&n), "re-check of {raw:?}");
            let masked = n.masked().to_string();
            assert_ne!(masked, n.as_str(), "masked in logs");
            assert_eq!(masked.chars().count(), n.as_str().chars().count());
        }
    }
    if let Ok(n) = number::check_caller_id(raw) {
        check_e164(n.as_str());
    }
    let _ = number::parse(raw);
    assert_eq!(number::mask(raw).chars().count(), raw.chars().count());
}

fn check_e164(n: &str) {
    let digits = n.strip_prefix('+').unwrap_or_else(|| panic!("{n:?} has no +"));
    assert!((7..=15).contains(&digits.len()), "{n:?}: length");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{n:?}: digits only");
    assert!(!digits.starts_with('0'), "{n:?}: country code");
}

/// One UDP datagram as the SIP trunk receives it: parsed by the SIP stack callbackd uses
/// (`rsipstack::sip`), the Via stamped as the transport does, then everything callbackd
/// reads from an incoming message: the transaction key headers, the status code and its
/// outcome, the To tag of a 408, P-Asserted-Identity, and the bodies it parses (NOTIFY
/// sipfrag, INFO DTMF, the SDP answer).
pub fn sip_datagram(data: &[u8]) {
    // What the trunk's guarded socket decides before the SIP stack sees the datagram.
    match callbackd::sip::inbound::classify(data) {
        callbackd::sip::inbound::Verdict::Pass => {}
        callbackd::sip::inbound::Verdict::Answer(_)
        | callbackd::sip::inbound::Verdict::Malformed(_) => {
            return;
        }
    }
    let Ok(msg) = SipMessage::try_from(data) else { return };
    let from: std::net::SocketAddr = ([127, 0, 0, 1], 5060).into();
    let Ok(msg) = rsipstack::transport::connection::SipConnection::update_msg_received(
        msg,
        from,
        rsipstack::sip::Transport::Udp,
    ) else {
        return;
    };
    let _ = msg.to_string();
    match &msg {
        SipMessage::Request(req) => {
            let _ = req.method.to_string();
            let _ = req.uri.to_string();
            key_headers(req);
            if let Some(refer_to) = req.refer_to_header() {
                let _ = refer_to.value().to_owned();
            }
        }
        SipMessage::Response(resp) => {
            let code = resp.status_code.code();
            let kind = resp.status_code.kind();
            if (100..200).contains(&code) {
                assert_eq!(kind, StatusCodeKind::Provisional);
            } else {
                // Every final response maps to an outcome (exhaustive, no panic).
                let _ = outcome_of(Ending::Final(code));
            }
            let _ = resp.to_header().ok().and_then(|t| t.tag().ok().flatten());
            key_headers(resp);
        }
    }
    let body = match &msg {
        SipMessage::Request(r) => &r.body,
        SipMessage::Response(r) => &r.body,
    };
    let _ = callbackd::sip::handover::sipfrag_status(body);
    if let Some(c) = callbackd::sip::handover::info_digit(body) {
        assert!(matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'), "{c:?}");
    }
    if let Ok(sdp) = std::str::from_utf8(body) {
        let _ = callbackd::media::sdp::parse_answer(sdp);
    }
}

/// The headers the transaction layer keys a message by, and the identity headers.
fn key_headers<M: HeadersExt>(m: &M) {
    if let Ok(via) = m.top_via_header() {
        let _ = via.typed();
    }
    if let Ok(f) = m.from_header() {
        let _ = f.tag();
        let _ = f.uri();
    }
    if let Ok(cseq) = m.cseq_header() {
        let _ = cseq.seq();
        let _ = cseq.method();
    }
    let _ = m.call_id_header().map(|c| c.value().to_owned());
    // The route set and remote target a dialog takes from a 2xx or an in-dialog request.
    let _ = m.typed_record_route_headers();
    let _ = m.typed_contact_headers();
    for h in m.headers().iter() {
        if let rsipstack::sip::Header::PAssertedIdentity(pai) = h {
            let _ = pai.to_string();
        }
    }
}
