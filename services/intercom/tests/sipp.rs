//! The gateway against a SIP user agent nobody here wrote (Debian's sipp), with a backend
//! that records what the node would be told: a call authenticated, answered, carrying RTP
//! and hung up, over UDP and TCP; a wrong password, an unknown button, a malformed request,
//! garbage; and a flood of INVITEs past the gateway's bound, while other requests are still
//! answered.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centinela_core::ids::{ButtonId, IncidentId};
use centinela_intercom::gateway::Stats;
use centinela_intercom::{
    Backend, CallInfo, CallState, CallStep, Config, EndedBy, Gateway, Passwords, Recorded,
};
use centinela_testkit::sipp::{self, Sipp};
use centinela_testkit::wait;

use centinela_testkit::sipp::{CALL, FLOOD, MALFORMED, REFUSED};

const PASSWORD: &str = "fleet-token-for-sip-tests";
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Started { button: String, call_id: String },
    Recorded { call_id: String, recorded: Recorded },
    Ended { button: String, by: EndedBy },
}

/// Knows buttons B01..B09 and every `F…` (the flood's); records the calls.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl Backend for Recorder {
    async fn button_known(&self, button: &ButtonId) -> Result<bool, String> {
        let known: HashSet<String> = (1..10).map(|n| format!("B0{n}")).collect();
        Ok(known.contains(button.as_str()) || button.as_str().starts_with('F'))
    }

    async fn call_started(&self, button: &ButtonId, call: &CallInfo) -> Result<IncidentId, String> {
        self.events.lock().unwrap().push(Event::Started {
            button: button.to_string(),
            call_id: call.call_id.clone(),
        });
        Ok(IncidentId::new(format!("I-{button}")).unwrap())
    }

    // The console's steps (answer, hold): services/console/tests/console/calls.rs.
    async fn call_step(
        &self,
        _incident: &IncidentId,
        _operator: &str,
        _step: CallStep,
        _detail: &str,
    ) -> Result<(), String> {
        Ok(())
    }

    async fn call_recorded(
        &self,
        _incident: &IncidentId,
        call_id: &str,
        recorded: &Recorded,
    ) -> Result<(), String> {
        self.events.lock().unwrap().push(Event::Recorded {
            call_id: call_id.to_string(),
            recorded: recorded.clone(),
        });
        Ok(())
    }

    async fn call_ended(
        &self,
        _incident: &IncidentId,
        button: &ButtonId,
        by: EndedBy,
        _detail: &str,
    ) -> Result<(), String> {
        self.events.lock().unwrap().push(Event::Ended {
            button: button.to_string(),
            by,
        });
        Ok(())
    }
}

async fn gateway(passwords: Passwords) -> (Gateway<Recorder>, Recorder) {
    let recorder = Recorder::default();
    let config = Config::new("127.0.0.1:0".parse().unwrap(), passwords);
    let gateway = Gateway::start(config, recorder.clone()).await.unwrap();
    (gateway, recorder)
}

fn shared() -> Passwords {
    Passwords::enforced().with_shared(PASSWORD)
}

/// Has the button call over `transport` and play the generated voice for three seconds;
/// the most RTP packets the node was seen to receive while the call was up.
async fn call(gateway: &Gateway<Recorder>, transport: &str) -> u64 {
    let sipp = Sipp::new();
    let wav = sipp.file("voice.wav", &sipp::ulaw_wav(3));
    let target = gateway.local_addr();
    // sipp substitutes keywords in messages, not in attributes: those are written in.
    let scenario = CALL
        .replace("[wav]", wav.to_str().unwrap())
        .replace("[talk_ms]", "3000");
    let args = [
        "-m", "1", "-key", "button", "B01", "-au", "B01", "-ap", PASSWORD,
    ]
    .map(String::from);
    let transport = transport.to_string();
    let run = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = sipp
            .run(&scenario, target, &transport, &args, DEADLINE)
            .await;
        drop(sipp);
        run
    });
    // While the button talks: the call is confirmed and its RTP arrives at the node (or
    // sipp gave up, and its report says why).
    let packets_seen = AtomicU64::new(0);
    let seen = wait::until("the call is up and its RTP arrives", || async {
        let calls = gateway.calls();
        let packets = calls.iter().map(|c| c.rtp_packets_in).max().unwrap_or(0);
        packets_seen.fetch_max(packets, Ordering::Relaxed);
        let up = calls
            .iter()
            .any(|c| c.state == CallState::Confirmed && c.rtp_packets_in > 10);
        (up || run.is_finished()).then_some(up)
    })
    .await;
    let run = run.await.unwrap();
    assert!(
        seen,
        "the call was never up with RTP: {:?}\n{}",
        gateway.calls(),
        run.report
    );
    assert!(run.succeeded(), "sipp: {}", run.report);
    assert!(gateway.calls().is_empty(), "the call is gone after the BYE");
    packets_seen.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_calls_is_challenged_answered_and_hangs_up_over_udp_and_tcp() {
    if !sipp::available() {
        return;
    }
    let (gateway, recorder) = gateway(shared()).await;
    call(&gateway, "u1").await;
    call(&gateway, "t1").await;
    // Recording is off by default: started and ended, nothing recorded.
    let events = recorder.events();
    assert_eq!(events.len(), 4, "{events:?}");
    for pair in events.chunks(2) {
        assert!(
            matches!(&pair[0], Event::Started { button, call_id } if button == "B01" && !call_id.is_empty())
        );
        assert_eq!(
            pair[1],
            Event::Ended {
                button: "B01".into(),
                by: EndedBy::Button
            }
        );
    }
    // Two challenges (one per call), nothing refused.
    assert_eq!(Stats::get(&gateway.stats().challenged), 2);
    assert_eq!(Stats::get(&gateway.stats().forbidden), 0);
}

async fn refused(gateway: &Gateway<Recorder>, button: &str, password: &str, expect: &str) {
    let sipp = Sipp::new();
    let args = [
        "-m", "1", "-key", "button", button, "-au", button, "-ap", password,
    ];
    // sipp takes no keyword in a response code: the scenario gets it written in.
    let scenario = REFUSED.replace("[expect]", expect);
    let run = sipp
        .run(&scenario, gateway.local_addr(), "u1", &args, DEADLINE)
        .await;
    assert!(run.succeeded(), "sipp expecting {expect}: {}", run.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gets_403_and_an_unknown_button_404_and_neither_opens_anything() {
    if !sipp::available() {
        return;
    }
    let (gateway, recorder) = gateway(shared()).await;
    refused(&gateway, "B01", "not-the-password", "403").await;
    refused(&gateway, "B77", PASSWORD, "404").await;
    assert_eq!(recorder.events(), vec![]);
    assert_eq!(Stats::get(&gateway.stats().forbidden), 1);
    assert_eq!(Stats::get(&gateway.stats().unknown_button), 1);
    // A gateway that is not open refuses a button with no password at all.
    let (closed, recorder) = gateway_closed().await;
    let sipp = Sipp::new();
    let args = ["-m", "1"];
    let run = sipp
        .run(
            MALFORMED_FREE_INVITE,
            closed.local_addr(),
            "u1",
            &args,
            DEADLINE,
        )
        .await;
    assert!(run.succeeded(), "sipp expecting 403: {}", run.report);
    assert_eq!(recorder.events(), vec![]);
}

async fn gateway_closed() -> (Gateway<Recorder>, Recorder) {
    gateway(Passwords::enforced()).await
}

/// A well-formed INVITE from B01 without credentials, expecting 403.
const MALFORMED_FREE_INVITE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="no password">
  <send retrans="500">
    <![CDATA[
INVITE sip:centinela@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:B01@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:centinela@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=B01 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="403"/>
</scenario>
"#;

/// Sends each of `texts` in order from one fresh UDP socket and returns the first line of
/// the first answer. The gateway reads one socket in order, so when only the last message
/// deserves an answer, the first answer is that one's.
async fn exchange(target: SocketAddr, texts: &[&str]) -> String {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for text in texts {
        socket.send_to(text.as_bytes(), target).await.unwrap();
    }
    let mut buffer = vec![0u8; 9000];
    let received = tokio::time::timeout(DEADLINE, socket.recv_from(&mut buffer)).await;
    let (len, _) = received.expect("an answer").unwrap();
    let answer = String::from_utf8_lossy(&buffer[..len]).into_owned();
    answer.lines().next().unwrap_or_default().to_string()
}

fn options(target: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:centinela@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-o{n}\r\n\
From: <sip:B02@127.0.0.1>;tag=o{n}\r\nTo: <sip:centinela@{target}>\r\nCall-ID: options-{n}\r\n\
CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sip_gets_400_and_garbage_is_dropped_and_counted() {
    if !sipp::available() {
        return;
    }
    let (gateway, recorder) = gateway(shared()).await;
    let sipp = Sipp::new();
    let run = sipp
        .run(
            MALFORMED,
            gateway.local_addr(),
            "u1",
            &["-m", "1"],
            DEADLINE,
        )
        .await;
    assert!(run.succeeded(), "sipp expecting 400: {}", run.report);
    assert_eq!(Stats::get(&gateway.stats().bad_requests), 1);
    // Not SIP at all: nobody to answer; dropped, counted, and the gateway still answers.
    let target = gateway.local_addr();
    let options = options(target, 1);
    let garbage = [
        "\u{0}\u{1}\u{2}hello",
        "INVITE\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ];
    let mut texts = garbage.to_vec();
    texts.push(&options);
    assert_eq!(exchange(target, &texts).await, "SIP/2.0 200 OK");
    assert_eq!(Stats::get(&gateway.stats().dropped), 3);
    assert_eq!(recorder.events(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_flood_is_bounded_with_503_and_the_gateway_keeps_answering() {
    if !sipp::available() {
        return;
    }
    const CALLS: u32 = 24;
    const HELD_MAX: usize = 4;
    let recorder = Recorder::default();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Passwords::open());
    config.calls_max = HELD_MAX;
    let gateway = Gateway::start(config, recorder.clone()).await.unwrap();
    let target = gateway.local_addr();
    let sipp = Sipp::new();
    let calls = CALLS.to_string();
    let args = ["-m", calls.as_str(), "-l", calls.as_str(), "-r", "200"].map(String::from);
    let scenario = FLOOD.replace("[hold_ms]", "4000");
    let run = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = sipp.run(&scenario, target, "u1", &args, DEADLINE).await;
        drop(sipp);
        run
    });
    wait::until("the gateway holds its maximum of calls", || async {
        gateway.calls().len() == HELD_MAX
    })
    .await;
    // At the bound, the gateway still answers others at once.
    assert_eq!(
        exchange(target, &[&options(target, 2)]).await,
        "SIP/2.0 200 OK"
    );
    assert!(gateway.calls().len() <= HELD_MAX);
    let run = run.await.unwrap();
    assert!(run.succeeded(), "sipp: {}", run.report);
    let started = Stats::get(&gateway.stats().calls_started);
    let refused = Stats::get(&gateway.stats().refused_busy);
    assert!(started >= HELD_MAX as u64, "{started} calls started");
    assert!(refused >= 1, "nothing refused");
    assert_eq!(started + refused, u64::from(CALLS));
    wait::until("every call ended", || async { gateway.calls().is_empty() }).await;
}

/// The data chunk of a WAV file, and its format tag and channel count, read from its RIFF
/// chunks (no WAV crate: the header is what a player reads).
fn wav_data(wav: &[u8]) -> (u16, u16, &[u8]) {
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    let riff_len = u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff_len + 8, wav.len(), "the RIFF size is the file's");
    let (mut format, mut at) = (None, 12);
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes(wav[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &wav[at + 8..at + 8 + len];
        match id {
            b"fmt " => {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                assert_eq!(u32::from_le_bytes(body[4..8].try_into().unwrap()), 8000);
                format = Some((tag, channels));
            }
            b"data" => {
                let (tag, channels) = format.expect("fmt before data");
                return (tag, channels, body);
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    panic!("no data chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_is_a_stereo_g711_wav_whose_hash_goes_to_the_audit() {
    if !sipp::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), shared());
    config.recordings = Some(dir.path().to_path_buf());
    let gateway = Gateway::start(config, recorder.clone()).await.unwrap();
    let packets_seen = call(&gateway, "u1").await;
    // started, recorded, ended: the hash in the audit before the end.
    let events = recorder.events();
    let [
        Event::Started { call_id, .. },
        Event::Recorded {
            call_id: recorded_call,
            recorded,
        },
        Event::Ended { .. },
    ] = &events[..]
    else {
        panic!("{events:?}");
    };
    assert_eq!(call_id, recorded_call);
    assert!(recorded.complete(), "{recorded:?}");
    let incident = IncidentId::new("I-B01").unwrap();
    let path = centinela_intercom::recording::path(dir.path(), &incident, call_id);
    assert_eq!(recorded.path, path);
    let wav = std::fs::read(&path).unwrap();
    assert_eq!(recorded.bytes, wav.len() as u64);
    let detail = recorded.audit_detail(call_id);
    let audited = centinela_intercom::recording::sha256_in_detail(&detail, call_id).unwrap();
    assert_eq!(
        centinela_intercom::recording::read_verified(&path, audited).unwrap(),
        wav,
        "the file's SHA-256 is the audit's"
    );
    let (tag, channels, data) = wav_data(&wav);
    assert_eq!((tag, channels), (7, 2), "µ-law, caller and operator");
    // Every packet the node received is in the file (20 ms, 160 samples each): at least
    // those seen while the call was up, and each the generated voice, as sipp played it.
    let frames = data.len() / 2;
    assert_eq!(frames as u64, recorded.frames);
    assert_eq!(frames % 160, 0, "whole packets");
    assert!(
        frames as u64 >= 160 * packets_seen,
        "{frames} frames, {packets_seen} packets seen"
    );
    let caller: Vec<u8> = data.iter().step_by(2).copied().collect();
    let operator: Vec<u8> = data.iter().skip(1).step_by(2).copied().collect();
    // sipp plays the file's bytes as they are (its header too), 160 a packet, looping.
    let mut voice = sipp::ulaw_wav(3);
    voice.extend_from_within(..160);
    let voice_packets: HashSet<&[u8]> = voice.windows(160).collect();
    assert!(
        caller
            .chunks(160)
            .all(|packet| voice_packets.contains(packet)),
        "the caller's channel is the voice sipp played"
    );
    assert!(
        operator.iter().all(|&s| s == 0xFF),
        "nobody answered: the operator's channel is µ-law silence"
    );
    assert_eq!(Stats::get(&gateway.stats().recordings_incomplete), 0);
}

/// The header lines of `message` named `name` (`Via`, `To`...), as they are.
fn header_lines<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    message
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with(&prefix))
        .collect()
}

/// RFC 3261 Timer E: an operator hangs up toward a button over UDP that loses our first two
/// BYEs. The BYE is re-sent, byte for byte, until the button answers the third; then it
/// stops, nothing is given up, and the call ended once. The button here is a raw UDP socket
/// (sipp takes an identical retransmission for the one it already received, so it cannot
/// play a UA that lost it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_bye_over_udp_is_retransmitted_until_the_button_answers() {
    let (gateway, recorder) = gateway(Passwords::open()).await;
    let target = gateway.local_addr();
    let ua = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = ua.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=B03 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        media.local_addr().unwrap().port()
    );
    let invite = format!(
        "INVITE sip:centinela@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bye-1\r\n\
From: <sip:B03@{local}>;tag=ua1\r\nTo: <sip:centinela@{target}>\r\nCall-ID: bye-test-1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:B03@{local}>\r\nMax-Forwards: 70\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    ua.send_to(invite.as_bytes(), target).await.unwrap();
    let mut buffer = vec![0u8; 9000];
    let mut receive = async || {
        let received = tokio::time::timeout(DEADLINE, ua.recv_from(&mut buffer)).await;
        let (len, _) = received.expect("a message from the gateway").unwrap();
        String::from_utf8_lossy(&buffer[..len]).into_owned()
    };
    let ok = loop {
        let message = receive().await;
        if message.starts_with("SIP/2.0 200") {
            break message;
        }
        assert!(message.starts_with("SIP/2.0 1"), "{message}");
    };
    let to = header_lines(&ok, "To")[0].to_string();
    let ack = format!(
        "ACK sip:centinela@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bye-2\r\n\
From: <sip:B03@{local}>;tag=ua1\r\n{to}\r\nCall-ID: bye-test-1\r\nCSeq: 1 ACK\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(ack.as_bytes(), target).await.unwrap();
    wait::until("the call is confirmed", || async {
        gateway
            .calls()
            .iter()
            .any(|c| c.call_id == "bye-test-1" && c.state == CallState::Confirmed)
    })
    .await;

    gateway.desk().hang_up("bye-test-1", "ana").unwrap();
    // The first two BYEs are lost (read and ignored); the third is answered.
    let mut byes = Vec::new();
    while byes.len() < 3 {
        let message = receive().await;
        if message.starts_with("BYE ") {
            byes.push(message);
        }
    }
    assert!(
        byes.iter().all(|bye| *bye == byes[0]),
        "a retransmission is the same request: {byes:?}"
    );
    let bye = &byes[2];
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for line in header_lines(bye, name) {
            ok.push_str(line);
            ok.push_str("\r\n");
        }
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    ua.send_to(ok.as_bytes(), target).await.unwrap();
    wait::until("the BYE is answered", || async {
        Stats::get(&gateway.stats().byes_answered) == 1
    })
    .await;
    assert!(Stats::get(&gateway.stats().bye_retransmissions) >= 2);
    assert_eq!(Stats::get(&gateway.stats().byes_unanswered), 0);
    assert!(gateway.calls().is_empty());
    let events = recorder.events();
    let ended: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Ended { .. }))
        .collect();
    assert_eq!(
        ended,
        vec![&Event::Ended {
            button: "B03".into(),
            by: EndedBy::Operator("ana".into())
        }],
        "one end, the operator's: {events:?}"
    );
}
