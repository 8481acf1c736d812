//! The intake call end to end: the real daemon (SQLite file, the repository's dialplans and
//! prompts) answers sipp playing the PBX that sends a caller from the Kallio queue to
//! `sip:ringbud-kallio@callbackd`. Keys arrive as SIP INFO (`application/dtmf-relay`) or as
//! RFC 4733 telephone-events from sipp's DTMF pcaps. Each test checks what the store holds
//! afterwards (the request, or none).
//!
//! sipp is the Debian package `sip-tester`. Without it these tests say SKIPPED, except
//! under `CI=true`, where a missing sipp fails them.

mod common;

use common::sipp::{Sipp, free_udp_port, have_sipp};
use common::{Daemon, Setup, repo};
use serde_json::Value;
use std::fmt::Write as _;

/// One step of the PBX's side of the call, after the INVITE is answered and ACKed.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A key as SIP INFO (`application/dtmf-relay`).
    Info(char),
    /// A key as RFC 4733 telephone-events (sipp's pcap of it).
    Rtp(char),
    /// Wait this many milliseconds.
    Pause(u32),
    /// The caller hangs up (BYE) and the scenario ends.
    Bye,
    /// callbackd hangs up within this many seconds and the scenario ends.
    ExpectBye(u32),
    /// A re-INVITE offering this direction (`sendonly` puts the caller on hold,
    /// `sendrecv` takes them off it); the 200's answer must say the second, then ACK.
    Reinvite(&'static str, &'static str),
}

/// A sipp UAC scenario: INVITE (from `from`, PCMA/PCMU/telephone-event 101 offered) to the
/// intake user, ACK, then `steps`.
fn scenario(from: &str, steps: &[Step]) -> String {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="intake">
  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:FROM@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:pbx@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=pbx 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
      a=sendrecv

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 8 101" search_in="body" check_it="true" assign_to="m"/>
    </action>
  </recv>
  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:FROM@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:pbx@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
"#,
    )
    .replace("FROM", from);
    let mut cseq = 2;
    let mut checked = vec!["m".to_owned()];
    for step in steps {
        match step {
            Step::Reinvite(offer, answer) => {
                let var = format!("re{cseq}");
                let _ = write!(
                    x,
                    r#"  <send retrans="500"><![CDATA[

      INVITE sip:callbackd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{from}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:pbx@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=pbx 1 {cseq} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
      a={offer}

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="200">
    <action>
      <ereg regexp="a={answer}" search_in="body" check_it="true" assign_to="{var}"/>
    </action>
  </recv>
  <send><![CDATA[

      ACK sip:callbackd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{from}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Contact: <sip:pbx@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
"#
                );
                checked.push(var);
                cseq += 1;
            }
            Step::Info(k) => {
                let _ = write!(
                    x,
                    r#"  <send retrans="500"><![CDATA[

      INFO sip:callbackd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{from}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={k}
      Duration=160

    ]]></send>
  <recv response="200"/>
"#
                );
                cseq += 1;
            }
            Step::Rtp(k) => {
                let _ = write!(
                    x,
                    "  <nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/dtmf_2833_{k}.pcap\"/></action></nop>\n  <pause milliseconds=\"600\"/>\n"
                );
            }
            Step::Pause(ms) => {
                let _ = writeln!(x, "  <pause milliseconds=\"{ms}\"/>");
            }
            Step::Bye => {
                let _ = write!(
                    x,
                    r#"  <send retrans="500"><![CDATA[

      BYE sip:callbackd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{from}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200"/>
"#
                );
                cseq += 1;
            }
            Step::ExpectBye(secs) => {
                let _ = write!(
                    x,
                    r#"  <recv request="BYE" timeout="{ms}"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
"#,
                    ms = secs * 1000
                );
            }
        }
    }
    let _ = write!(x, "  <Reference variables=\"{}\"/>\n</scenario>\n", checked.join(","));
    x
}

/// The daemon with the repository's dialplans, its PBX at sipp's address (so sipp is
/// trusted), and one intake call of `steps` from `from`. Returns the daemon after sipp's
/// verdict (asserted), or `None` when sipp is missing.
async fn call(from: &str, steps: &[Step]) -> Option<(Daemon, Setup)> {
    call_to("ringbud-kallio", "", from, steps).await
}

/// [`call`] to the intake user `user`, with `intake` appended to the `[intake]` section of
/// the Kallio dialplan (the other dialplans as shipped).
async fn call_to(user: &str, intake: &str, from: &str, steps: &[Step]) -> Option<(Daemon, Setup)> {
    if !have_sipp() {
        return None;
    }
    let setup = Setup::new();
    let port = free_udp_port();
    let dialplans = if intake.is_empty() {
        repo().join("dialplans")
    } else {
        let dir = setup.dir.path().join("dialplans");
        std::fs::create_dir(&dir).expect("mkdir");
        for entry in std::fs::read_dir(repo().join("dialplans")).expect("dialplans") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let name = path.file_name().expect("name");
                let mut src = std::fs::read_to_string(&path).expect("read");
                if name == "kallio.toml" {
                    src = src.replace("max_calls = 10\n", &format!("max_calls = 10\n{intake}\n"));
                }
                std::fs::write(dir.join(name), src).expect("write");
            }
        }
        dir
    };
    setup.point_at(&format!("127.0.0.1:{port}"), &dialplans, "");
    let daemon = Daemon::start(&setup).await;
    let file = setup.dir.path().join("intake.xml");
    std::fs::write(&file, scenario(from, steps)).expect("write the scenario");
    let target = daemon.sip_addr();
    // A minute for the call's own prompts and keys, plus the scenario's pauses.
    let paused: u32 = steps.iter().map(|s| if let Step::Pause(ms) = s { *ms } else { 0 }).sum();
    let mut sipp = Sipp::call_within(&file, &target, user, port, 60 + paused / 1000);
    let passed = tokio::task::spawn_blocking(move || (sipp.passed(), sipp)).await.expect("sipp");
    assert!(passed.0, "sipp's checks:\n{}", daemon.logs());
    Some((daemon, setup))
}

/// The first request of the fresh queue, if any.
async fn first_request(daemon: &Daemon) -> Option<Value> {
    let (status, body) = daemon.get("/v1/callbacks/1").await;
    match status {
        200 => Some(body),
        404 => None,
        other => panic!("GET /v1/callbacks/1: {other} {body}"),
    }
}

/// Settles until the intake call's end is logged (the store write of a hung-up caller
/// may finish after sipp's BYE).
async fn ended(daemon: &Daemon, end: &str) {
    let needle = format!("end=\"{end}\"");
    let alt = format!("end={end}");
    for _ in 0..300 {
        let logs = daemon.logs();
        if logs.contains(&needle) || logs.contains(&alt) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no intake call ended {end}:\n{}", daemon.logs());
}

/// A number as the API shows it (masked: `+35840*****67`).
fn masked(n: &str) -> String {
    format!("{}*****{}", &n[..6], &n[n.len() - 2..])
}

const CALLER: &str = "+358401234567";
/// Longer than the greeting, the read-back number and the 1/2 question (about 16 s),
/// shorter than that and the window menu together (about 32 s).
const PROMPTS_MS: u32 = 22_000;

#[tokio::test]
async fn own_number_and_a_window_by_sip_info() {
    let steps = [Step::Pause(500), Step::Info('1'), Step::Info('1'), Step::ExpectBye(90)];
    let Some((daemon, _setup)) = call(CALLER, &steps).await else { return };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(req["number"], masked(CALLER), "{req}");
    assert_eq!(req["channel"], "ivr", "{req}");
    assert_eq!(req["service"], "kallio", "{req}");
    assert!(req.to_string().contains("08:00"), "the first window: {req}");
    common::assert_logs_masked(&daemon.logs());
}

#[tokio::test]
async fn own_number_and_first_free_time_by_rfc4733() {
    let steps = [Step::Pause(500), Step::Rtp('1'), Step::Rtp('0'), Step::ExpectBye(90)];
    let Some((daemon, _setup)) = call(CALLER, &steps).await else { return };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(
        (req["number"].as_str(), req["channel"].as_str()),
        (Some(masked(CALLER).as_str()), Some("ivr"))
    );
}

#[tokio::test]
async fn another_number_typed_and_confirmed() {
    let mut steps = vec![Step::Pause(500), Step::Info('2')];
    steps.extend("0451112223#".chars().map(Step::Info));
    steps.extend([Step::Info('1'), Step::Info('0'), Step::ExpectBye(120)]);
    let Some((daemon, _setup)) = call(CALLER, &steps).await else { return };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(req["number"], masked("+358451112223"), "{req}");
}

#[tokio::test]
async fn an_anonymous_caller_types_the_number() {
    let mut steps = vec![Step::Pause(500)];
    steps.extend("0451112223#10".chars().map(Step::Info));
    steps.push(Step::ExpectBye(120));
    let Some((daemon, _setup)) = call("anonymous", &steps).await else { return };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(req["number"], masked("+358451112223"), "{req}");
}

#[tokio::test]
async fn a_refused_number_three_times_ends_with_nothing_stored() {
    let mut steps = vec![Step::Pause(500)];
    for _ in 0..3 {
        steps.extend("0600123456#".chars().map(Step::Info));
    }
    steps.push(Step::ExpectBye(150));
    let Some((daemon, _setup)) = call("anonymous", &steps).await else { return };
    ended(&daemon, "gave_up").await;
    assert!(first_request(&daemon).await.is_none());
}

#[tokio::test]
async fn silence_is_asked_three_times_then_the_call_ends() {
    let steps = [Step::ExpectBye(150)];
    let Some((daemon, _setup)) = call("anonymous", &steps).await else { return };
    ended(&daemon, "gave_up").await;
    assert!(first_request(&daemon).await.is_none());
}

#[tokio::test]
async fn hanging_up_before_confirming_stores_nothing() {
    let steps = [Step::Pause(1500), Step::Info('2'), Step::Info('0'), Step::Bye];
    let Some((daemon, _setup)) = call(CALLER, &steps).await else { return };
    ended(&daemon, "hung_up").await;
    assert!(first_request(&daemon).await.is_none());
}

#[tokio::test]
async fn hanging_up_after_confirming_still_stores() {
    // 1 = this number (confirmed), then gone while the windows are offered.
    let steps = [Step::Pause(500), Step::Info('1'), Step::Pause(PROMPTS_MS), Step::Bye];
    let Some((daemon, _setup)) = call(CALLER, &steps).await else { return };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(req["number"], masked(CALLER), "{req}");
}

#[tokio::test]
async fn the_pbxs_swedish_queue_is_answered_in_swedish_and_stored_so() {
    let steps = [Step::Pause(500), Step::Info('1'), Step::Info('0'), Step::ExpectBye(90)];
    let Some((daemon, _setup)) = call_to("ringbud-kallio-sv", "", CALLER, &steps).await else {
        return;
    };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!((req["lang"].as_str(), req["channel"].as_str()), (Some("sv"), Some("ivr")), "{req}");
    assert!(daemon.logs().contains("lang=sv"), "{}", daemon.logs());
}

#[tokio::test]
async fn the_caller_chooses_english_at_the_menu_and_is_stored_so() {
    // 3 = English (said in English), then 1 = this number, 0 = the first free time.
    let steps =
        [Step::Pause(500), Step::Info('3'), Step::Info('1'), Step::Info('0'), Step::ExpectBye(120)];
    let menu = "choose_language = true";
    let Some((daemon, _setup)) = call_to("ringbud-kallio", menu, CALLER, &steps).await else {
        return;
    };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(req["lang"].as_str(), Some("en"), "{req}");
    let logs = daemon.logs();
    assert!(logs.contains("intake call language chosen"), "{logs}");
    assert!(!logs.contains("no such prompt"), "{logs}");
}

#[tokio::test]
async fn a_caller_put_on_hold_and_resumed_still_leaves_the_request() {
    // On hold 3 s into the greeting, for 25 s: longer than the prompts (about 16 s) and the
    // wait for a key (8 s) together, so a prompt that went on, or a wait that ran, while
    // held would have timed the question out before the resume. 1 is pressed after it.
    let steps = [
        Step::Pause(3000),
        Step::Reinvite("sendonly", "recvonly"),
        Step::Pause(25_000),
        Step::Reinvite("sendrecv", "sendrecv"),
        Step::Pause(1000),
        Step::Info('1'),
        Step::Info('0'),
        Step::ExpectBye(120),
    ];
    let Some((daemon, _setup)) = call(CALLER, &steps).await else { return };
    ended(&daemon, "stored").await;
    let req = first_request(&daemon).await.expect("a request");
    assert_eq!(req["number"], masked(CALLER), "{req}");
    let logs = daemon.logs();
    let held = logs.find("held=true").expect("held");
    let resumed = logs.find("held=false").expect("resumed");
    assert!(held < resumed, "{logs}");
    assert!(!logs.contains("no key in time"), "a question timed out while held:\n{logs}");
    common::assert_logs_masked(&logs);
}

/// The first final status line the daemon answers `invite` with.
fn answer_to(sock: &std::net::UdpSocket, invite: &str, to: &str) -> Option<String> {
    sock.send_to(invite.as_bytes(), to).expect("send");
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let first = text.lines().next().unwrap_or_default().to_owned();
            if !first.starts_with("SIP/2.0 1") {
                return Some(first);
            }
        }
    }
    None
}

fn invite(user: &str, to: &str, local: &str, n: u32) -> String {
    format!(
        "INVITE sip:{user}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-intake-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+358401234567@{local}>;tag=pbx{n}\r\n\
         To: <sip:{user}@{to}>\r\n\
         Call-ID: intake-{n}@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:pbx@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn the_pbx_gets_404_for_unknown_users_488_without_media_and_strangers_403() {
    let setup = Setup::new();
    let dialplans = repo().join("dialplans");
    // The PBX is at 127.0.0.1 (trusted by default): unknown users are 404, an intake user
    // without an SDP offer 488.
    setup.point_at(&setup.pbx.addr, &dialplans, "");
    let daemon = Daemon::start(&setup).await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200))).expect("timeout");
    let local = sock.local_addr().expect("addr").to_string();
    let sip = daemon.sip_addr();
    let got = answer_to(&sock, &invite("nobody", &sip, &local, 1), &sip);
    assert!(got.as_deref().is_some_and(|g| g.starts_with("SIP/2.0 404")), "{got:?}");
    let got = answer_to(&sock, &invite("ringbud-kallio", &sip, &local, 2), &sip);
    assert!(got.as_deref().is_some_and(|g| g.starts_with("SIP/2.0 488")), "{got:?}");
    drop(daemon);
    // Only 192.0.2.1 is trusted: the same INVITE from 127.0.0.1 is a stranger's.
    setup.point_at(&setup.pbx.addr, &dialplans, "trusted = [\"192.0.2.1\"]");
    let daemon = Daemon::start(&setup).await;
    let sip = daemon.sip_addr();
    let got = answer_to(&sock, &invite("ringbud-kallio", &sip, &local, 3), &sip);
    assert!(got.as_deref().is_some_and(|g| g.starts_with("SIP/2.0 403")), "{got:?}");
    assert!(first_request(&daemon).await.is_none());
}

/// A team lookup hook on loopback: answers `{"team": "tiimi-a"}` for +358401234567, a team
/// the dialplan does not list for +358405550000, and nothing in time for anyone else.
async fn team_hook() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let team = if head.contains("number=%2B358401234567") {
                    "\"tiimi-a\""
                } else if head.contains("number=%2B358405550000") {
                    "\"tiimi-x\""
                } else {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    "null"
                };
                let body = format!("{{\"team\": {team}}}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/team")
}

#[tokio::test]
async fn teams_from_the_api_and_the_lookup_hook_unknown_ones_refused() {
    let setup = Setup::new();
    let hook = team_hook().await;
    let dir = setup.dir.path().join("dialplans");
    std::fs::create_dir(&dir).expect("mkdir");
    let src = std::fs::read_to_string(repo().join("dialplans/kallio.toml")).expect("read");
    let teams = format!(
        "\n[teams]\ntiimi-a = \"sip:tiimi-a@pbx.hel.example\"\ntiimi-b = \"sip:tiimi-b@pbx.hel.example\"\n\n\
         [team_lookup]\nurl = \"{hook}\"\ntimeout = \"300ms\"\n"
    );
    std::fs::write(dir.join("kallio.toml"), src + &teams).expect("write");
    setup.point_at(&setup.pbx.addr, &dir, "");
    let daemon = Daemon::start(&setup).await;
    let post = |number: &str, team: Option<&str>| {
        let mut body = serde_json::json!({"service": "kallio", "number": number});
        if let Some(t) = team {
            body["team"] = t.into();
        }
        body
    };
    // Given by the API: kept (the hook is not asked).
    let (status, body) = daemon.post(&post("0409876543", Some("tiimi-b"))).await;
    assert_eq!((status, body["team"].as_str()), (201, Some("tiimi-b")), "{body}");
    // Not a team of the service: refused, naming the field and the teams.
    let (status, body) = daemon.post(&post("0401112223", Some("tiimi-x"))).await;
    assert_eq!(
        (status, body["error"].as_str(), body["field"].as_str()),
        (422, Some("unknown_team"), Some("team")),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| m.contains("tiimi-a, tiimi-b")), "{body}");
    // None given: the hook answers tiimi-a.
    let (status, body) = daemon.post(&post("0401234567", None)).await;
    assert_eq!((status, body["team"].as_str()), (201, Some("tiimi-a")), "{body}");
    // The hook names a team the dialplan does not list, or does not answer in time:
    // stored without a team, without waiting much longer than the timeout.
    let (status, body) = daemon.post(&post("0405550000", None)).await;
    assert_eq!((status, body["team"].clone()), (201, Value::Null), "{body}");
    let started = std::time::Instant::now();
    let (status, body) = daemon.post(&post("0451112223", None)).await;
    assert_eq!((status, body["team"].clone()), (201, Value::Null), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    common::assert_logs_masked(&daemon.logs());
}

/// An intake INVITE with an A-law offer from `local`.
fn invite_with_offer(user: &str, to: &str, local: &str, n: u32) -> String {
    let sdp = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\n";
    invite(user, to, local, n).replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()),
    )
}

/// Out of file descriptors (its limit lowered while it runs, a leak in the process), the
/// daemon cannot bind an intake call's RTP socket: the PBX gets a 500 at once rather than
/// an INVITE left unanswered, nothing is stored, and once descriptors are free again the
/// next call is answered.
#[tokio::test]
async fn out_of_descriptors_an_intake_call_is_refused_with_500_and_the_next_one_answered() {
    let setup = Setup::new();
    setup.point_at(&setup.pbx.addr, &repo().join("dialplans"), "");
    let daemon = Daemon::start(&setup).await;
    let Some(files) = common::OpenFiles::of(daemon.pid()) else { return };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200))).expect("timeout");
    let local = sock.local_addr().expect("addr").to_string();
    let sip = daemon.sip_addr();

    files.exhaust();
    let got = answer_to(&sock, &invite_with_offer("ringbud-kallio", &sip, &local, 1), &sip);
    files.restore();
    assert!(
        got.as_deref().is_some_and(|g| g.starts_with("SIP/2.0 500")),
        "{got:?}\n{}",
        daemon.logs()
    );
    let got = answer_to(&sock, &invite_with_offer("ringbud-kallio", &sip, &local, 2), &sip);
    assert!(
        got.as_deref().is_some_and(|g| g.starts_with("SIP/2.0 200")),
        "{got:?}\n{}",
        daemon.logs()
    );
    let logs = daemon.logs();
    // Refused for the reason made, and said so in the log.
    assert!(logs.contains("intake call failed") && logs.contains("os error 24"), "{logs}");
    assert!(first_request(&daemon).await.is_none());
    common::assert_logs_masked(&logs);
}
