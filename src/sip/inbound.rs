//! What answer a SIP message that reaches callbackd unasked gets. Pure: bytes or a method
//! in, a verdict out (fuzzable).
//!
//! Two levels:
//! - [`classify`], per datagram, before the SIP stack parses it: a datagram the stack could
//!   not handle is dropped here (counted, never echoed into a log line); a request with an
//!   unknown method is answered 405 with `Allow`, a SIP version other than 2.0 505.
//! - [`outside_dialog`], per request the stack parsed that belongs to no dialog of ours:
//!   callbackd takes no calls besides intake calls (INVITE 403 here; the trunk hands
//!   INVITEs to [`super::intake`] first when the daemon takes them), answers keep-alives
//!   (OPTIONS 200), in-dialog
//!   methods of unknown dialogs 481, everything else 405 with `Allow`.

use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{HeadersExt, Method, SipMessage};

/// The methods callbackd handles, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE, PRACK";

/// What to do with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the SIP stack.
    Pass,
    /// Send this response back to its source and drop the datagram.
    Answer(Vec<u8>),
    /// Drop it.
    Malformed(Malformed),
}

/// Why a datagram was dropped (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not text, or no header section.
    Unreadable,
    /// The first line is neither a request line nor a status line.
    StartLine,
    /// Via, From (with a tag), To, Call-ID or CSeq is missing or unreadable.
    Headers,
}

impl Malformed {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Unreadable => "unreadable",
            Malformed::StartLine => "start_line",
            Malformed::Headers => "headers",
        }
    }
}

/// The answer to a parsed request outside our dialogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// No answer (ACK).
    Ignore,
    /// This status code; `allow` adds the `Allow` header.
    Reply {
        /// The status code.
        code: u16,
        /// Add `Allow: `[`ALLOW`].
        allow: bool,
    },
}

/// The answer to a request that matches no dialog of ours.
pub fn outside_dialog(method: Method) -> Outside {
    match method {
        // We place calls; we do not take them.
        Method::Invite => Outside::Reply { code: 403, allow: false },
        Method::Options => Outside::Reply { code: 200, allow: true },
        Method::Ack => Outside::Ignore,
        Method::Bye
        | Method::Cancel
        | Method::Info
        | Method::Notify
        | Method::Update
        | Method::PRack => Outside::Reply { code: 481, allow: false },
        Method::Message
        | Method::Publish
        | Method::Refer
        | Method::Register
        | Method::Subscribe => Outside::Reply { code: 405, allow: true },
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// The header lines a response copies from its request, in order, or `None` when one is
/// missing. Compact forms are recognised.
fn dialog_headers(head: &str) -> Option<Vec<&str>> {
    let mut via = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in head.lines().skip(1) {
        let Some((name, _)) = line.split_once(':') else { continue };
        let name = name.trim();
        let is = |long: &str, short: &str| {
            name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(short)
        };
        if is("Via", "v") {
            via.push(line);
        } else if is("From", "f") {
            from = Some(line);
        } else if is("To", "t") {
            to = Some(line);
        } else if is("Call-ID", "i") {
            call_id = Some(line);
        } else if name.eq_ignore_ascii_case("CSeq") {
            cseq = Some(line);
        }
    }
    if via.is_empty() {
        return None;
    }
    via.extend([from?, to?, call_id?, cseq?]);
    Some(via)
}

/// A response to the request whose header section is `head`, or `None` when the request
/// lacks the headers a response needs.
fn respond(head: &str, code: u16, reason: &str, allow: bool) -> Option<Vec<u8>> {
    let lines = dialog_headers(head)?;
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in lines {
        out.push_str(line.trim_end());
        let is_to = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("To") || n.trim() == "t");
        if is_to && !line.to_ascii_lowercase().contains(";tag=") {
            out.push_str(";tag=callbackd");
        }
        out.push_str("\r\n");
    }
    if allow {
        out.push_str(&format!("Allow: {ALLOW}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// Whether the parsed message carries what the SIP stack's transaction and dialog layers
/// read (it drops, and logs with their text, messages without): a readable top Via, From
/// (with a tag), To, Call-ID and CSeq.
fn stack_can_route(msg: &SipMessage) -> bool {
    match msg {
        SipMessage::Request(req) => {
            req.top_via_header().and_then(|v| v.typed()).is_ok()
                && matches!(req.from_header().and_then(|f| f.tag()), Ok(Some(_)))
                && req.from_header().and_then(|f| f.typed()).is_ok()
                && req.to_header().and_then(|t| t.typed()).is_ok()
                && req.call_id_header().is_ok()
                && req.cseq_header().and_then(|c| c.seq()).is_ok()
        }
        SipMessage::Response(resp) => {
            resp.top_via_header().and_then(|v| v.typed()).is_ok()
                && matches!(resp.from_header().and_then(|f| f.tag()), Ok(Some(_)))
                && resp.from_header().and_then(|f| f.typed()).is_ok()
                && resp.to_header().and_then(|t| t.typed()).is_ok()
                && resp.call_id_header().is_ok()
                && resp.cseq_header().and_then(|c| c.seq().and(c.method())).is_ok()
        }
    }
}

/// What to do with one datagram that arrived on the SIP socket.
pub fn classify(datagram: &[u8]) -> Verdict {
    // Keep-alives (CRLF, whitespace) are the stack's.
    if datagram.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Pass;
    }
    let end = datagram
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| datagram.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(datagram.len());
    let Ok(head) = std::str::from_utf8(&datagram[..end]) else {
        return Verdict::Malformed(Malformed::Unreadable);
    };
    let head = head.trim_start_matches(['\r', '\n']);
    let start = head.lines().next().unwrap_or_default();
    let parts: Vec<&str> = start.split(' ').collect();
    if start.starts_with("SIP/") {
        // A response: nothing to answer; only SIP/2.0 is read.
        if parts.len() < 2 || parts[0] != "SIP/2.0" || parts[1].parse::<u16>().is_err() {
            return Verdict::Malformed(Malformed::StartLine);
        }
    } else {
        let [method, uri, version] = parts[..] else {
            return Verdict::Malformed(Malformed::StartLine);
        };
        if !is_token(method) || uri.is_empty() || !version.starts_with("SIP/") {
            return Verdict::Malformed(Malformed::StartLine);
        }
        if version != "SIP/2.0" {
            return match respond(head, 505, "Version Not Supported", false) {
                Some(r) => Verdict::Answer(r),
                None => Verdict::Malformed(Malformed::Headers),
            };
        }
        if method.parse::<Method>().is_err() {
            return match respond(head, 405, "Method Not Allowed", true) {
                Some(r) => Verdict::Answer(r),
                None => Verdict::Malformed(Malformed::Headers),
            };
        }
    }
    match SipMessage::try_from(datagram) {
        Ok(msg) if stack_can_route(&msg) => Verdict::Pass,
        Ok(_) | Err(_) => Verdict::Malformed(Malformed::Headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(start: &str, from: &str) -> Vec<u8> {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
             From: {from}\r\nTo: <sip:callbackd@127.0.0.1>\r\nCall-ID: x1@h\r\n\
             CSeq: 1 {}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            start.split(' ').next().unwrap_or_default()
        )
        .into_bytes()
    }

    const FROM: &str = "<sip:+358401234567@127.0.0.1>;tag=a";

    fn text(v: &Verdict) -> String {
        match v {
            Verdict::Answer(b) => String::from_utf8_lossy(b).into_owned(),
            Verdict::Pass | Verdict::Malformed(_) => String::new(),
        }
    }

    #[test]
    fn well_formed_requests_and_keepalives_pass() {
        assert_eq!(classify(&request("OPTIONS sip:x@h SIP/2.0", FROM)), Verdict::Pass);
        assert_eq!(classify(&request("INVITE sip:x@h SIP/2.0", FROM)), Verdict::Pass);
        assert_eq!(classify(b"\r\n\r\n"), Verdict::Pass);
    }

    #[test]
    fn an_unknown_method_gets_405_with_allow() {
        let v = classify(&request("FOO sip:x@h SIP/2.0", FROM));
        let t = text(&v);
        assert!(t.starts_with("SIP/2.0 405 Method Not Allowed\r\n"), "{t}");
        assert!(t.contains(&format!("Allow: {ALLOW}\r\n")), "{t}");
        assert!(t.contains("Call-ID: x1@h\r\n") && t.contains("CSeq: 1 FOO\r\n"), "{t}");
        assert!(t.contains("To: <sip:callbackd@127.0.0.1>;tag=callbackd\r\n"), "{t}");
        assert!(t.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn another_sip_version_gets_505() {
        let t = text(&classify(&request("OPTIONS sip:x@h SIP/3.0", FROM)));
        assert!(t.starts_with("SIP/2.0 505 Version Not Supported\r\n"), "{t}");
        assert!(!t.contains("Allow:"));
    }

    #[test]
    fn unreadable_datagrams_are_dropped_with_a_reason() {
        assert_eq!(classify(&[0xff, 0xfe, 0x00]), Verdict::Malformed(Malformed::Unreadable));
        assert_eq!(classify(b"hello there\r\n\r\n"), Verdict::Malformed(Malformed::StartLine));
        assert_eq!(classify(b"SIP/3.0 200 OK\r\n\r\n"), Verdict::Malformed(Malformed::StartLine));
        // The From header the stack cannot read (its WARN would echo the number).
        let broken = request("INVITE sip:x@h SIP/2.0", "<sip:+358405550125@127.0.0.1;tag=a");
        assert_eq!(classify(&broken), Verdict::Malformed(Malformed::Headers));
        // A 405 needs the headers of a response to address it.
        assert_eq!(
            classify(b"FOO sip:x@h SIP/2.0\r\n\r\n"),
            Verdict::Malformed(Malformed::Headers)
        );
    }

    #[test]
    fn outside_dialogs_only_options_is_welcome() {
        assert_eq!(outside_dialog(Method::Invite), Outside::Reply { code: 403, allow: false });
        assert_eq!(outside_dialog(Method::Options), Outside::Reply { code: 200, allow: true });
        assert_eq!(outside_dialog(Method::Bye), Outside::Reply { code: 481, allow: false });
        assert_eq!(outside_dialog(Method::Subscribe), Outside::Reply { code: 405, allow: true });
        assert_eq!(outside_dialog(Method::Ack), Outside::Ignore);
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = classify(&bytes);
        }
    }
}
