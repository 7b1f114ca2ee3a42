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
async fn card_shows(page: &Page<'_>, incident: &str, state: &str) {
    let selector = format!("{} [data-call-state={}]", card(incident), js(state));
    page.wait_for(
        &format!("the call {state} on {incident}'s card"),
        &format!("!!document.querySelector({})", js(&selector)),
        DEADLINE,
    )
    .await;
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
    card_shows(&page, &id, "ringing").await;
    page.click(&card(&id)).await;
    page.key('t').await;
    card_shows(&page, &id, "talking").await;

    // Luis hears the caller...
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

/// A SIP Call-ID as one path segment.
fn urlencode(value: &str) -> String {
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
