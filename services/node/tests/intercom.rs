//! The intercom gateway in a real node, called by a SIP user agent nobody here wrote
//! (Debian's sipp): a call without a press opens its button's incident through the press
//! path; a call after a press joins that press's incident; either way the call's start and
//! end (and who hung up) are in the incident's audit trail, and the media reached the node.

use std::time::Duration;

use centinela_api::Security;
use centinela_core::ids::ButtonId;
use centinela_core::incident::{AuditAction, Incident};
use centinela_intercom::CallState;
use centinela_node::Node;
use centinela_testkit::node::{NodeBuilder, TestNode, radio_all_available};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::sipp;
use centinela_testkit::wait;

const TOKEN: &str = "fleet-token-for-the-intercom";
const TALK: Duration = Duration::from_secs(2);

async fn start() -> TestNode {
    builder().sip().start().await
}

fn builder() -> NodeBuilder {
    let scenario = ScenarioBuilder::new("intercom")
        .buttons([
            Button::new("B01", -12.0464, -77.03),
            Button::new("B02", -12.0474, -77.03),
        ])
        .brigades([Brigade::new("U1", "foot", -12.046, -77.031)])
        .build();
    // An open node with a shared device token: buttons prove the token as their SIP password.
    let security = Security::open().with_shared_device_token(TOKEN).unwrap();
    NodeBuilder::new("node-intercom")
        .scenario(scenario)
        .security(security)
}

async fn open_incident(node: &Node, button: &str) -> Option<Incident> {
    let records = &node.context().records;
    let id = records
        .open_incident_of(&ButtonId::new(button).unwrap())
        .await
        .unwrap()?;
    records.incident(&id).await.unwrap()
}

/// `actor action` per audit entry.
fn trail(incident: &Incident) -> Vec<String> {
    incident
        .audit
        .iter()
        .map(|e| format!("{} {}", e.actor.tag(), e.action))
        .collect()
}

/// B`button` calls the node and talks for [`TALK`]; returns once it hung up, having seen
/// the call up with its RTP arriving.
async fn call(node: &Node, button: &str) {
    let gateway = node.intercom().expect("the node runs its gateway");
    let target = node.sip_addr().unwrap();
    let run = sipp::spawn_call(target, "u1", button, TOKEN, TALK);
    let seen = wait::until("the call is up with its RTP arriving", || async {
        let up = gateway.calls().iter().any(|c| {
            c.button.as_str() == button && c.state == CallState::Confirmed && c.rtp_packets_in > 0
        });
        (up || run.is_finished()).then_some(up)
    })
    .await;
    let run = run.await.unwrap();
    assert!(seen, "the call was never up with RTP: {}", run.report);
    assert!(run.succeeded(), "sipp: {}", run.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_alone_opens_its_buttons_incident_and_its_start_and_end_are_audited() {
    if !sipp::available() {
        return;
    }
    let node = start().await;
    assert!(open_incident(&node.node, "B01").await.is_none());
    call(&node.node, "B01").await;
    let incident = wait::until("the call's end in the audit trail", || async {
        open_incident(&node.node, "B01")
            .await
            .filter(|i| i.audit.iter().any(|e| e.action == AuditAction::CallEnded))
    })
    .await;
    let trail = trail(&incident);
    let position = |entry: &str| trail.iter().position(|e| e == entry);
    let opened = position("button:B01 opened").unwrap_or_else(|| panic!("{trail:?}"));
    let started = position("button:B01 call_started").unwrap_or_else(|| panic!("{trail:?}"));
    let ended = position("button:B01 call_ended").unwrap_or_else(|| panic!("{trail:?}"));
    assert!(opened < started && started < ended, "{trail:?}");
    let detail = &incident.audit[started].detail;
    assert!(
        detail.contains("PCMU") && detail.contains("UDP"),
        "{detail}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_press_joins_the_press_incident() {
    if !sipp::available() {
        return;
    }
    let node = start().await;
    let pressed = node.press("B02", "press-1").await;
    call(&node.node, "B02").await;
    let incident = wait::until("the call's end in the audit trail", || async {
        open_incident(&node.node, "B02")
            .await
            .filter(|i| i.audit.iter().any(|e| e.action == AuditAction::CallEnded))
    })
    .await;
    assert_eq!(incident.id.as_str(), pressed.incident_id);
    let trail = trail(&incident);
    let count = |action: AuditAction| incident.audit.iter().filter(|e| e.action == action).count();
    assert_eq!(count(AuditAction::Opened), 1, "{trail:?}");
    assert_eq!(count(AuditAction::CallStarted), 1, "{trail:?}");
    assert_eq!(count(AuditAction::CallEnded), 1, "{trail:?}");
    node.shutdown().await;
}

/// Calls never block presses: with the gateway unable to listen (its address taken, as when
/// a second demo runs), the node starts without voice and a press is acknowledged and
/// dispatched as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_sip_address_taken_the_node_runs_without_voice_and_presses_are_dispatched() {
    // Another socket holds the address, for as long as the test runs.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let node = builder().sip_at(addr, true).start().await;
    assert!(
        node.node.intercom().is_none(),
        "a gateway on a taken address"
    );
    assert_eq!(node.node.sip_addr(), None);
    node.wait_for_dispatcher().await;
    radio_all_available(&mut node.operator()).await;
    let pressed = node.press("B01", "press-without-voice").await;
    assert!(!pressed.duplicate);
    node.wait_incident(&pressed.incident_id, "a unit assigned", |i| {
        !i.units.is_empty()
    })
    .await;
    node.shutdown().await;
}
