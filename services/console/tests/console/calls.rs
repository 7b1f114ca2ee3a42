//! Issue 23: the caller's voice in the console. A SIP user agent nobody here wrote (Debian's
//! sipp) is the button: it calls the node's gateway and plays a WAV the test makes; headless
//! Chromium, with its fake microphone, is the operator. The call rings on the incident's card;
//! Luis answers (`T`), hears the caller (the page's `getStats`: inbound audio with
//! `totalAudioEnergy > 0`, played through an `<audio>` element), and the button gets his voice
//! (RTP counted on the node's media socket toward the button: sipp 3.6 keeps no count of what
//! it receives); Ana, on another connection, is refused with 409 naming Luis; Luis holds,
//! resumes and hangs up: sipp gets the BYE, and the audit trail has every step with its
//! operator. Then a second call rings unanswered past the acknowledgement target and
//! escalates the page's alarm like an unacknowledged incident; answered, the button hangs it
//! up, and it ends in the page.

use std::time::Duration;

use serde_json::{Value, json};

use centinela_api::Security;
use centinela_core::ids::ButtonId;
use centinela_core::incident::Incident;
use centinela_testkit::browser::{self, Browser, FAKE_MEDIA, Page};
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::{sipp, wait};

use crate::i18n::sign_in;
use crate::{ANA, DEADLINE, Harness, LUIS, artifacts_dir, card, http, js, operators};

const TOKEN: &str = "fleet-token-for-the-console-calls";

/// How long the second call's caller talks before hanging up: long enough for a slow machine
/// to answer in the page first (the test fails, saying so, if it did not).
const CALLER_TALKS: Duration = Duration::from_secs(75);

async fn start() -> Harness {
    let scenario = ScenarioBuilder::new("calls")
        .buttons([
            Button::new("B01", -12.0464, -77.03),
            Button::new("B02", -12.0474, -77.03),
        ])
        .brigades([Brigade::new("U1", "foot", -12.046, -77.031)])
        .build();
    let security = Security::open().with_shared_device_token(TOKEN).unwrap();
    let node = NodeBuilder::new("node-calls")
        .console(operators())
        .scenario(scenario)
        .security(security)
        .sip();
    Harness::start_node(node, false).await
}

async fn incident(harness: &Harness, button: &str) -> Option<Incident> {
    let records = &harness.node.node.context().records;
    let id = records
        .open_incident_of(&ButtonId::new(button).unwrap())
        .await
        .unwrap()?;
    records.incident(&id).await.unwrap()
}

fn trail(incident: &Incident) -> Vec<String> {
    incident
        .audit
        .iter()
        .map(|e| format!("{} {}", e.actor.tag(), e.action))
        .collect()
}

/// The call's state on `incident`'s card, once it is `state`.
pub(crate) async fn card_shows(page: &Page<'_>, incident: &str, state: &str) {
    let selector = format!("{} [data-call-state={}]", card(incident), js(state));
    page.wait_for(
        &format!("the call {state} on {incident}'s card"),
        &format!("!!document.querySelector({})", js(&selector)),
        DEADLINE,
    )
    .await;
}

/// The operator on `page` answers the call ringing on `incident`'s card (key T) and hears
/// it: inbound audio with energy, played through `<audio>` (without playout Chromium
/// reports none). Returns `[packetsReceived, totalAudioEnergy]`.
pub(crate) async fn answer_and_hear(page: &Page<'_>, incident: &str) -> Value {
    card_shows(page, incident, "ringing").await;
    page.click(&card(incident)).await;
    page.key('t').await;
    card_shows(page, incident, "talking").await;
    let heard = page
        .wait_for(
            "inbound audio with energy (played through <audio>)",
            "(async () => {
                const mine = window.centinelaCalls.mine;
                const audio = document.getElementById('call-audio');
                if (!mine || !audio || !audio.srcObject) return null;
                const stats = await mine.pc.getStats();
                for (const r of stats.values())
                    if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.totalAudioEnergy > 0)
                        return [r.packetsReceived, r.totalAudioEnergy];
                return null;
            })()",
            DEADLINE,
        )
        .await;
    eprintln!("inbound audio [packets, energy]: {heard}");
    heard
}

/// The page's inbound audio: `[packetsReceived, totalAudioEnergy]`.
async fn inbound_audio(page: &Page<'_>) -> Value {
    page.eval(
        "(async () => {
            const mine = window.centinelaCalls.mine;
            if (!mine) return null;
            const stats = await mine.pc.getStats();
            for (const r of stats.values()) {
                if (r.type === 'inbound-rtp' && r.kind === 'audio')
                    return [r.packetsReceived || 0, r.totalAudioEnergy || 0];
            }
            return null;
        })()",
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_answers_a_buttons_call_in_the_console_and_either_side_hangs_up() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    if !sipp::available() {
        return;
    }
    let harness = start().await;
    let gateway = harness
        .node
        .node
        .intercom()
        .expect("the node runs its gateway");
    let sip = harness.node.node.sip_addr().unwrap();
    let addr = harness.node.node.http_addr();
    let browser = Browser::launch_with(&chromium, Some(artifacts_dir()), FAKE_MEDIA).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, LUIS).await;

    // B01 calls: the call opens its incident and rings on its card.
    let run = sipp::spawn_call_hung_up_by_node(sip, "u1", "B01", TOKEN, Duration::from_secs(180));
    let opened = wait::until("the call's incident", || async {
        incident(&harness, "B01").await
    })
    .await;
    let id = opened.id.to_string();
    // Luis answers and hears the caller...
    answer_and_hear(&page, &id).await;
    // ...and the button gets his voice (what the node sent toward it).
    let sent = wait::until("the operator's RTP toward the button", || async {
        let call = gateway
            .calls()
            .into_iter()
            .find(|c| c.button.as_str() == "B01")?;
        (call.rtp_packets_out > 25).then_some(call.rtp_packets_out)
    })
    .await;
    eprintln!("RTP packets sent to the button: {sent}");

    // Ana, elsewhere, sees who took it, and cannot take it from him.
    let login = json!({ "operator": ANA.0, "password": ANA.1 }).to_string();
    let ana = http::post(addr, "/api/login", None, &login).await.cookie();
    let calls = http::get(addr, "/api/calls", Some(&ana)).await.json();
    let call_id = calls["calls"][0]["call_id"].as_str().unwrap().to_string();
    assert_eq!(calls["calls"][0]["operator"], "luis", "{calls}");
    assert_eq!(calls["calls"][0]["state"], "talking", "{calls}");
    let path = |action: &str| format!("/api/calls/{}/{action}", urlencode(&call_id));
    let taken = http::post(
        addr,
        &path("answer"),
        Some(&ana),
        &json!({"sdp": "v=0"}).to_string(),
    )
    .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.body.contains("luis"), "{}", taken.body);
    let hangup = http::post(addr, &path("hangup"), Some(&ana), "{}").await;
    assert_eq!(hangup.status, 409, "{}", hangup.body);
    let nonsense = http::post(addr, "/api/calls/nope/hold", Some(&ana), "{\"held\": 1}").await;
    assert_eq!(nonsense.status, 400, "{}", nonsense.body);

    // Hold and resume from the card, then hang up: sipp gets the BYE and answers it.
    page.click(&format!("{} [data-call-action=hold]", card(&id)))
        .await;
    card_shows(&page, &id, "held").await;
    page.click(&format!("{} [data-call-action=resume]", card(&id)))
        .await;
    card_shows(&page, &id, "talking").await;
    page.screenshot(&artifacts_dir().join("console-call.png"))
        .await;
    page.click(&format!("{} [data-call-action=hangup]", card(&id)))
        .await;
    let run = run.await.unwrap();
    assert!(run.succeeded(), "sipp did not get its BYE: {}", run.report);
    page.wait_for(
        "the call gone from the card and the page's connection closed",
        &format!(
            "!document.querySelector({}) && !window.centinelaCalls.mine",
            js(&format!("{} [data-call]", card(&id)))
        ),
        DEADLINE,
    )
    .await;
    let steps = wait::until("the call's steps in the audit trail", || async {
        let trail = trail(&incident(&harness, "B01").await?);
        trail
            .iter()
            .any(|e| e == "operator:luis call_ended")
            .then_some(trail)
    })
    .await;
    let expected = [
        "button:B01 call_started",
        "operator:luis call_answered",
        "operator:luis call_held",
        "operator:luis call_resumed",
        "operator:luis call_ended",
    ];
    let positions: Vec<usize> = expected
        .iter()
        .map(|e| {
            steps
                .iter()
                .position(|s| s == e)
                .unwrap_or_else(|| panic!("{e} in {steps:?}"))
        })
        .collect();
    assert!(positions.is_sorted(), "in order: {steps:?}");
    assert!(gateway.calls().is_empty());

    // B02 calls; nobody answers for a while; once answered, it hangs up itself: the page
    // ends its side.
    let run = sipp::spawn_call(sip, "u1", "B02", TOKEN, CALLER_TALKS);
    let opened = wait::until("the second call's incident", || async {
        incident(&harness, "B02").await
    })
    .await;
    let id = opened.id.to_string();
    card_shows(&page, &id, "ringing").await;
    // Unanswered past the acknowledgement target (15 s), it escalates the page's alarm.
    page.wait_for(
        "the unanswered call escalating the alarm",
        "window.centinelaAlarm.callEscalated === true && window.centinelaAlarm.escalated === true",
        DEADLINE,
    )
    .await;
    page.click(&format!("{} [data-call-action=answer]", card(&id)))
        .await;
    card_shows(&page, &id, "talking").await;
    let before = inbound_audio(&page).await;
    assert!(
        !run.is_finished(),
        "the caller hung up before the page answered (a very slow machine?): {before}"
    );
    let run = run.await.unwrap();
    assert!(run.succeeded(), "sipp: {}", run.report);
    page.wait_for(
        "the caller's hang-up ends the call in the page",
        &format!(
            "!document.querySelector({}) && !window.centinelaCalls.mine && window.centinelaCalls.last?.ended_by === 'button:B02'",
            js(&format!("{} [data-call]", card(&id)))
        ),
        DEADLINE,
    )
    .await;
    let trail = trail(&incident(&harness, "B02").await.unwrap());
    assert!(
        trail.contains(&"button:B02 call_ended".to_string()),
        "{trail:?}"
    );
    assert!(
        trail.contains(&"operator:luis call_answered".to_string()),
        "{trail:?}"
    );

    crate::no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}

/// How long a closed page's call may take to ring again: str0m calls the leg disconnected
/// after 15 s without the browser's consent checks, the node waits its grace
/// (`BROWSER_LEG_GRACE`) on top, and a busy machine is slow.
const LEG_DROP_DEADLINE: Duration = Duration::from_secs(120);

/// A dropped browser leg: Luis answers B01's call and hears it, then his page is closed
/// (CDP `Target.closeTarget`) while the caller is still on the line. The node notices the
/// leg gone and the call rings again, in `GET /api/calls` and on Ana's page (the live
/// stream), with `operator:luis call_leg_dropped` in the trail; Ana answers it from her page
/// and hears the caller. sipp never got a BYE until Ana hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_operator_page_returns_the_call_to_ringing_and_another_operator_answers() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    if !sipp::available() {
        return;
    }
    let harness = start().await;
    let sip = harness.node.node.sip_addr().unwrap();
    let addr = harness.node.node.http_addr();
    let luis_browser = Browser::launch_with(&chromium, Some(artifacts_dir()), FAKE_MEDIA).await;
    let ana_browser = Browser::launch_with(&chromium, Some(artifacts_dir()), FAKE_MEDIA).await;
    let luis = luis_browser.new_page().await;
    luis.goto(&harness.url("/")).await;
    sign_in(&luis, LUIS).await;
    let ana = ana_browser.new_page().await;
    ana.goto(&harness.url("/")).await;
    sign_in(&ana, ANA).await;

    let run = sipp::spawn_call_hung_up_by_node(sip, "u1", "B01", TOKEN, Duration::from_secs(300));
    let opened = wait::until("the call's incident", || async {
        incident(&harness, "B01").await
    })
    .await;
    let id = opened.id.to_string();
    card_shows(&ana, &id, "ringing").await;
    answer_and_hear(&luis, &id).await;
    card_shows(&ana, &id, "talking").await;

    // Luis's page closes with the caller on the line.
    let target = luis
        .call("Target.getTargetInfo", json!({}))
        .await
        .expect("the page's target");
    let target_id = target["targetInfo"]["targetId"]
        .as_str()
        .unwrap()
        .to_string();
    luis_browser
        .call(None, "Target.closeTarget", json!({ "targetId": target_id }))
        .await
        .expect("close Luis's page");

    // The call rings again: in the API, and on Ana's page through the live stream.
    let cookie = http::post(addr, "/api/login", None, &login(ANA))
        .await
        .cookie();
    let ringing = wait::Wait::up_to(LEG_DROP_DEADLINE)
        .every(Duration::from_millis(250))
        .until("the call ringing again in GET /api/calls", || async {
            let calls = http::get(addr, "/api/calls", Some(&cookie)).await.json();
            let call = calls["calls"][0].clone();
            (call["state"] == "ringing").then_some(call)
        })
        .await;
    assert_eq!(ringing["operator"], Value::Null, "{ringing}");
    page_card_shows(&ana, &id, "ringing", LEG_DROP_DEADLINE).await;
    assert!(
        !run.is_finished(),
        "the caller stays on the line (sipp ended: no BYE was expected yet)"
    );
    let (steps, detail) = wait::until("the dropped leg in the audit trail", || async {
        let found = incident(&harness, "B01").await?;
        let dropped = found
            .audit
            .iter()
            .find(|e| e.action.to_string() == "call_leg_dropped")?;
        Some((trail(&found), dropped.detail.clone()))
    })
    .await;
    eprintln!("leg dropped: {detail}");
    assert!(
        steps.contains(&"operator:luis call_leg_dropped".to_string()),
        "{steps:?}"
    );
    assert!(detail.contains("rings again"), "{detail}");

    // Ana answers it from her page and hears the caller.
    answer_and_hear(&ana, &id).await;
    let calls = http::get(addr, "/api/calls", Some(&cookie)).await.json();
    assert_eq!(calls["calls"][0]["operator"], "ana", "{calls}");
    assert!(!run.is_finished(), "the caller is still on the line");
    ana.click(&format!("{} [data-call-action=hangup]", card(&id)))
        .await;
    let run = run.await.unwrap();
    assert!(run.succeeded(), "sipp got its BYE only now: {}", run.report);
    let steps = wait::until("Ana's hang-up in the audit trail", || async {
        let steps = trail(&incident(&harness, "B01").await?);
        steps
            .iter()
            .any(|e| e == "operator:ana call_ended")
            .then_some(steps)
    })
    .await;
    let expected = [
        "button:B01 call_started",
        "operator:luis call_answered",
        "operator:luis call_leg_dropped",
        "operator:ana call_answered",
        "operator:ana call_ended",
    ];
    let positions: Vec<usize> = expected
        .iter()
        .map(|e| {
            steps
                .iter()
                .position(|s| s == e)
                .unwrap_or_else(|| panic!("{e} in {steps:?}"))
        })
        .collect();
    assert!(positions.is_sorted(), "in order: {steps:?}");

    crate::no_page_problems(&ana_browser);
    ana_browser.close().await;
    luis_browser.close().await;
    harness.shutdown().await;
}

/// The call's state on `incident`'s card, once it is `state`, waiting up to `deadline`.
async fn page_card_shows(page: &Page<'_>, incident: &str, state: &str, deadline: Duration) {
    let selector = format!("{} [data-call-state={}]", card(incident), js(state));
    page.wait_for(
        &format!("the call {state} on {incident}'s card"),
        &format!("!!document.querySelector({})", js(&selector)),
        deadline,
    )
    .await;
}

/// A SIP Call-ID as one path segment.
pub(crate) fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` with `cookie`: the status and the body's bytes (a WAV is not text).
async fn get_bytes(addr: std::net::SocketAddr, path: &str, cookie: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole reply");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// Recording (`--record-calls`): a button's call is kept as a WAV under the node's data
/// directory, its SHA-256 in the incident's `call_recorded` audit entry before `call_ended`
/// (the chain still verifies); a supervisor downloads it, an operator may not, and a file
/// altered on disk is refused rather than served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_is_kept_with_its_incident_and_served_to_supervisors_only() {
    if !sipp::available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let scenario = ScenarioBuilder::new("recorded")
        .buttons([Button::new("B01", -12.0464, -77.03)])
        .brigades([Brigade::new("U1", "foot", -12.046, -77.031)])
        .build();
    let security = Security::open().with_shared_device_token(TOKEN).unwrap();
    let node = NodeBuilder::new("node-recorded")
        .console(operators())
        .scenario(scenario)
        .security(security)
        .sip()
        .record_calls(data.path());
    let harness = Harness::start_node(node, false).await;
    let sip = harness.node.node.sip_addr().unwrap();
    let addr = harness.node.node.http_addr();

    let run = sipp::spawn_call(sip, "u1", "B01", TOKEN, Duration::from_secs(2));
    let run = run.await.unwrap();
    assert!(run.succeeded(), "sipp: {}", run.report);
    let incident = wait::until("the call's end in the audit trail", || async {
        incident(&harness, "B01")
            .await
            .filter(|i| trail(i).iter().any(|e| e.ends_with("call_ended")))
    })
    .await;
    let trail = trail(&incident);
    let recorded = trail.iter().position(|e| e == "system call_recorded");
    let ended = trail.iter().position(|e| e == "button:B01 call_ended");
    assert!(
        recorded.is_some() && recorded < ended,
        "the hash before the end: {trail:?}"
    );
    let records = &harness.node.node.context().records;
    assert!(
        incident.verify_audit(Some(records.audit_key())).is_intact(),
        "the chain verifies with the recording's entry"
    );
    let entry = &incident.audit[recorded.unwrap()];
    let started = incident
        .audit
        .iter()
        .find(|e| e.action.to_string() == "call_started")
        .unwrap();
    // `call {id} PCMU from ...`
    let call_id = started
        .detail
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        centinela_intercom::recording::sha256_in_detail(&entry.detail, &call_id).is_some(),
        "a complete recording: {}",
        entry.detail
    );
    let file = centinela_intercom::recording::path(
        &data.path().join("recordings"),
        &incident.id,
        &call_id,
    );
    let wav = std::fs::read(&file).unwrap();
    assert!(
        wav.len() > centinela_intercom::recording::HEADER_LEN + 160 * 2 * 10,
        "at least ten packets of audio: {} bytes",
        wav.len()
    );
    assert!(
        entry
            .detail
            .contains(&format!("recorded {} bytes", wav.len())),
        "{}",
        entry.detail
    );

    // Served to a supervisor, byte for byte; refused to an operator.
    let path = format!(
        "/api/incidents/{}/calls/{}/recording.wav",
        incident.id,
        call_id.replace('@', "%40")
    );
    let ana = http::post(addr, "/api/login", None, &login(ANA))
        .await
        .cookie();
    let luis = http::post(addr, "/api/login", None, &login(LUIS))
        .await
        .cookie();
    let (status, body) = get_bytes(addr, &path, &ana).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == wav, "the download is the file");
    let (status, _) = get_bytes(addr, &path, &luis).await;
    assert_eq!(status, 403, "operators do not listen to recordings");
    let other = format!(
        "/api/incidents/{}/calls/not-a-call/recording.wav",
        incident.id
    );
    assert_eq!(get_bytes(addr, &other, &ana).await.0, 404);

    // One byte changed on disk: the hash in the audit trail no longer matches; refused.
    let mut altered = wav.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x55;
    std::fs::write(&file, &altered).unwrap();
    let (status, body) = get_bytes(addr, &path, &ana).await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("data_loss"));
    harness.shutdown().await;
}

fn login(who: (&str, &str)) -> String {
    json!({ "operator": who.0, "password": who.1 }).to_string()
}
