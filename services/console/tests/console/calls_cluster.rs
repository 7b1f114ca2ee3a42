//! Issue 23, calls across nodes: a call rings on every node's console and is answered from
//! any of them, its media staying on the node that took it. Real parts: Debian's etcd (the
//! embedded store cannot span nodes), two nodes with their SIP gateways, Debian's sipp as the
//! button, headless Chromium as the operator.
//!
//! sipp calls node n1. Node n2's `GET /api/calls` shows it ringing, anchored on n1. Luis,
//! signed in to n2's console, answers: n2 forwards his offer to n1 (`Peer.CallStep`), and his
//! browser talks to n1's bridge directly: the page hears the caller (`totalAudioEnergy > 0`)
//! and n1 sends his voice to the button. n1's console shows who took it, and Ana answering on
//! n1 gets 409 naming Luis (n1 decides). Luis hangs up on n2: sipp gets its BYE, the call is
//! gone from both nodes' lists, and the audit trail has his answer and his hang-up.

use serde_json::{Value, json};

use centinela_api::Security;
use centinela_core::ids::ButtonId;
use centinela_core::incident::Incident;
use centinela_testkit::browser::{self, Browser, FAKE_MEDIA};
use centinela_testkit::etcd::EtcdCluster;
use centinela_testkit::node::{NodeBuilder, StoreConfig, TestNode};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::{sipp, wait};

use crate::calls::{answer_and_hear, urlencode};
use crate::i18n::sign_in;
use crate::{ANA, LUIS, artifacts_dir, card, http, js, operators};

const TOKEN: &str = "fleet-token-for-the-cluster-calls";

async fn node(id: &str, etcd: &EtcdCluster) -> TestNode {
    let scenario = ScenarioBuilder::new("cluster-calls")
        .buttons([Button::new("B01", -12.0464, -77.03)])
        .brigades([Brigade::new("U1", "foot", -12.046, -77.031)])
        .build();
    let security = Security::open().with_shared_device_token(TOKEN).unwrap();
    NodeBuilder::new(id)
        .store(StoreConfig::Etcd(etcd.endpoints()))
        .console(operators())
        .scenario(scenario)
        .security(security)
        .sip()
        .start()
        .await
}

async fn incident(node: &TestNode, button: &str) -> Option<Incident> {
    let records = &node.context().records;
    let id = records
        .open_incident_of(&ButtonId::new(button).unwrap())
        .await
        .unwrap()?;
    records.incident(&id).await.unwrap()
}

async fn login(addr: std::net::SocketAddr, who: (&str, &str)) -> String {
    let login = json!({ "operator": who.0, "password": who.1 }).to_string();
    http::post(addr, "/api/login", None, &login).await.cookie()
}

/// The calls `addr`'s console lists.
async fn calls(addr: std::net::SocketAddr, cookie: &str) -> Vec<Value> {
    let reply = http::get(addr, "/api/calls", Some(cookie)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_taken_by_one_node_rings_on_another_and_is_answered_and_hung_up_there() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    if !sipp::available() {
        return;
    }
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap();
    let a = node("n1", &etcd).await;
    let b = node("n2", &etcd).await;
    let gateway_a = a.intercom().expect("n1 runs its gateway");
    let sip_a = a.sip_addr().unwrap();
    let (addr_a, addr_b) = (a.http_addr(), b.http_addr());
    let ana_on_a = login(addr_a, ANA).await;
    let luis_on_b = login(addr_b, LUIS).await;

    // B01 calls node n1; node n2's console lists it ringing, anchored on n1.
    let run = sipp::spawn_call_hung_up_by_node(
        sip_a,
        "u1",
        "B01",
        TOKEN,
        std::time::Duration::from_secs(180),
    );
    let ringing = wait::until("the call ringing on n2's console", || async {
        calls(addr_b, &luis_on_b)
            .await
            .into_iter()
            .find(|c| c["state"] == "ringing")
    })
    .await;
    assert_eq!(ringing["node"], "n1", "{ringing}");
    assert_eq!(ringing["button"], "B01", "{ringing}");
    let call_id = ringing["call_id"].as_str().unwrap().to_string();
    let id = ringing["incident"].as_str().unwrap().to_string();

    // Luis, on n2's console, answers and hears the caller through n1's bridge...
    let browser = Browser::launch_with(&chromium, Some(artifacts_dir()), FAKE_MEDIA).await;
    let page = browser.new_page().await;
    page.goto(&b.http_url("/")).await;
    sign_in(&page, LUIS).await;
    let heard = answer_and_hear(&page, &id).await;
    assert!(heard[1].as_f64().unwrap() > 0.0, "{heard}");
    // ...and n1 sends his voice to the button.
    let sent = wait::until("the operator's RTP toward the button, from n1", || async {
        let call = gateway_a
            .calls()
            .into_iter()
            .find(|c| c.button.as_str() == "B01")?;
        (call.rtp_packets_out > 25).then_some(call.rtp_packets_out)
    })
    .await;
    eprintln!("RTP packets n1 sent to the button: {sent}");

    // n1's console shows who took it; Ana answering there is refused: n1 decides.
    let on_a = wait::until("n1's console showing Luis talking", || async {
        calls(addr_a, &ana_on_a)
            .await
            .into_iter()
            .find(|c| c["call_id"] == call_id.as_str() && c["state"] == "talking")
    })
    .await;
    assert_eq!(on_a["operator"], "luis", "{on_a}");
    assert_eq!(on_a["node"], "n1", "{on_a}");
    let path = |action: &str| format!("/api/calls/{}/{action}", urlencode(&call_id));
    let offer = json!({ "sdp": "v=0" }).to_string();
    let taken = http::post(addr_a, &path("answer"), Some(&ana_on_a), &offer).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.body.contains("luis"), "{}", taken.body);
    // The same refusal through n2 (forwarded to n1): Ana on n2 cannot hang up Luis's call.
    let ana_on_b = login(addr_b, ANA).await;
    let hangup = http::post(addr_b, &path("hangup"), Some(&ana_on_b), "{}").await;
    assert_eq!(hangup.status, 409, "{}", hangup.body);
    assert_eq!(hangup.json()["error"]["code"], "taken", "{}", hangup.body);

    // Luis hangs up on n2: sipp gets its BYE from n1, the call leaves both consoles.
    page.click(&format!("{} [data-call-action=hangup]", card(&id)))
        .await;
    let run = run.await.unwrap();
    assert!(run.succeeded(), "sipp did not get its BYE: {}", run.report);
    page.wait_for(
        "the call gone from n2's page and its connection closed",
        &format!(
            "!document.querySelector({}) && !window.centinelaCalls.mine",
            js(&format!("{} [data-call]", card(&id)))
        ),
        crate::DEADLINE,
    )
    .await;
    for (name, addr, cookie) in [("n1", addr_a, &ana_on_a), ("n2", addr_b, &luis_on_b)] {
        wait::until(format!("no call left on {name}'s console"), || async {
            calls(addr, cookie).await.is_empty().then_some(())
        })
        .await;
    }
    assert!(gateway_a.calls().is_empty());
    let trail = wait::until("Luis's hang-up in the audit trail", || async {
        let incident = incident(&b, "B01").await?;
        let trail: Vec<String> = incident
            .audit
            .iter()
            .map(|e| format!("{} {}", e.actor.tag(), e.action))
            .collect();
        trail
            .iter()
            .any(|e| e == "operator:luis call_ended")
            .then_some(trail)
    })
    .await;
    assert!(
        trail.contains(&"operator:luis call_answered".to_string()),
        "{trail:?}"
    );
    let started: Vec<_> = incident(&b, "B01")
        .await
        .unwrap()
        .audit
        .into_iter()
        .filter(|e| e.action == centinela_core::incident::AuditAction::CallStarted)
        .collect();
    assert!(
        started.len() == 1 && started[0].detail.ends_with(" on node n1"),
        "{started:?}"
    );

    crate::no_page_problems(&browser);
    browser.close().await;
    b.shutdown().await;
    a.shutdown().await;
}
