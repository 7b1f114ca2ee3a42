//! The simulated button's SIP call (centinela-devices' `sip_call`) against a real node's
//! gateway: after a press, the button calls with the shared device token as its password,
//! the call joins the press's incident and rings on the desk, its voice reaches the node's
//! media socket, and whoever hangs up (the desk, or the button after its talk time) ends the
//! call on both sides and in the audit trail. A wrong password is refused with 403 and the
//! simulator says which credentials were wrong.

use std::sync::Arc;
use std::time::Duration;

use centinela_api::Security;
use centinela_core::ids::ButtonId;
use centinela_core::incident::Incident;
use centinela_devices::sip_call::{self, CallOptions, CallStats, Ended, Error};
use centinela_intercom::{CallState, DeskState};
use centinela_node::Node;
use centinela_testkit::node::{NodeBuilder, TestNode};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;
use tokio::sync::watch;

const TOKEN: &str = "fleet-token-for-the-simulated-buttons";

async fn start() -> TestNode {
    let scenario = ScenarioBuilder::new("sim-calls")
        .buttons([
            Button::new("B01", -12.0464, -77.03),
            Button::new("B02", -12.0474, -77.03),
        ])
        .brigades([Brigade::new("U1", "foot", -12.046, -77.031)])
        .build();
    let security = Security::open().with_shared_device_token(TOKEN).unwrap();
    NodeBuilder::new("node-sim-calls")
        .scenario(scenario)
        .security(security)
        .sip()
        .start()
        .await
}

fn options(node: &Node, button: &str, password: &str, talk: Duration) -> CallOptions {
    CallOptions {
        gateway: node.sip_addr().unwrap(),
        button: button.into(),
        password: Some(password.into()),
        talk,
        seed: 23,
    }
}

async fn open_incident(node: &Node, button: &str) -> Option<Incident> {
    let records = &node.context().records;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pressed_button_calls_rings_talks_and_either_side_hangs_up() {
    let node = start().await;
    let gateway = node.intercom().expect("the node runs its gateway");
    let pressed = node.press("B01", "press-1").await;

    // The button calls after its press; it talks until the desk hangs up.
    let stats = Arc::new(CallStats::default());
    let (_stop_tx, stop) = watch::channel(false);
    let call = {
        let options = options(&node, "B01", TOKEN, Duration::from_secs(600));
        let stats = stats.clone();
        tokio::spawn(async move { sip_call::call(&options, &stats, stop).await })
    };
    // It rings on the desk, with the button's voice arriving at the node.
    let call_id = wait::until(
        "the call confirmed, ringing, its voice at the node",
        || async {
            let view = gateway
                .calls()
                .into_iter()
                .find(|c| c.button.as_str() == "B01")?;
            let ringing = gateway
                .desk()
                .calls()
                .into_iter()
                .any(|c| c.call_id == view.call_id && c.state == DeskState::Ringing);
            (view.state == CallState::Confirmed && view.rtp_packets_in > 25 && ringing)
                .then_some(view.call_id)
        },
    )
    .await;
    assert!(stats.answered());
    assert!(stats.rtp_sent() > 25, "{}", stats.rtp_sent());
    // A ringing call may be ended by any operator: the gateway sends the button a BYE.
    gateway.desk().hang_up(&call_id, "luis").unwrap();
    let report = call.await.unwrap().expect("the call");
    assert_eq!(report.ended, Ended::NodeHungUp);
    assert_eq!(report.call_id, call_id);
    assert!(report.rtp_sent > 25);
    let incident = wait::until("the desk's hang-up in the audit trail", || async {
        let incident = open_incident(&node, "B01").await?;
        trail(&incident)
            .contains(&"operator:luis call_ended".to_string())
            .then_some(incident)
    })
    .await;
    assert_eq!(incident.id.as_str(), pressed.incident_id);
    assert!(
        trail(&incident).contains(&"button:B01 call_started".to_string()),
        "{:?}",
        trail(&incident)
    );

    // B02 talks for a short while and hangs up itself; its BYE is answered.
    node.press("B02", "press-2").await;
    let (_stop_tx, stop) = watch::channel(false);
    let options = options(&node, "B02", TOKEN, Duration::from_secs(2));
    let stats = CallStats::default();
    let report = sip_call::call(&options, &stats, stop).await.unwrap();
    assert_eq!(report.ended, Ended::TalkTime);
    assert!(report.bye_answered);
    // 2 s of 20 ms packets (at least a good part of them on a busy machine).
    assert!(report.rtp_sent >= 50, "{}", report.rtp_sent);
    let trail = wait::until("the button's hang-up in the audit trail", || async {
        let trail = trail(&open_incident(&node, "B02").await?);
        trail
            .contains(&"button:B02 call_ended".to_string())
            .then_some(trail)
    })
    .await;
    assert!(
        trail.contains(&"button:B02 call_started".to_string()),
        "{trail:?}"
    );
    assert!(gateway.calls().is_empty());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_the_simulator_says_so() {
    let node = start().await;
    let gateway = node.intercom().expect("the node runs its gateway");
    let (_stop_tx, stop) = watch::channel(false);
    let options = options(&node, "B02", "not-the-token", Duration::from_secs(5));
    let error = sip_call::call(&options, &CallStats::default(), stop)
        .await
        .expect_err("a wrong password must not be answered");
    assert!(
        matches!(error, Error::WrongCredentials { code: 403, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("B02") && message.contains("credentials"),
        "{message}"
    );
    // Nothing was opened or held for it.
    assert!(gateway.calls().is_empty());
    assert!(open_incident(&node, "B02").await.is_none());
    node.shutdown().await;
}
