//! Calls through failures (issue 23, "Through failures"), with real processes: Debian's etcd,
//! two `centinela start` nodes with `--sip`, and Debian's sipp as the button.
//!
//! A call's media is anchored on the node that took it. When that node dies (kill -9), the
//! button redials another node, as field intercoms do (a second sipp run to the survivor), and
//! the new call joins the incident the press opened, not a new one. The audit trail shows
//! both calls' starts, the new call's end (the button hung up), and the first call's end as
//! what happened: the system ended it because its node was lost, written once the node has
//! left the cluster.
//!
//! The sweep that writes that end runs on the leader, so both ways round are tested: the node
//! holding the call is the leader (the survivor sweeps when it takes the lead), or it is not
//! (three nodes: the sitting leader sweeps when the member leaves, and the button redials the
//! third node, so neither the dead node nor the redial's node writes the end).

mod common;

use std::time::Duration;

use centinela_core::incident::{AuditAction, Incident};
use centinela_store::Store;
use centinela_testkit::sipp;
use centinela_testkit::wait;
use common::*;

const TALK: Duration = Duration::from_secs(2);

/// The incident as etcd holds it now.
async fn incident(store: &Store, id: &str) -> Incident {
    let key = format!("/centinela/incidents/{id}");
    let kv = store
        .get(&key)
        .await
        .unwrap_or_else(|e| panic!("read {key}: {e}"))
        .unwrap_or_else(|| panic!("no {key}"));
    serde_json::from_slice(&kv.value).unwrap_or_else(|e| panic!("decode {key}: {e}"))
}

/// The button's open incident (`open/{button}`), as etcd holds it now.
async fn open_incident_of(store: &Store, button: &str) -> Option<String> {
    let key = format!("/centinela/open/{button}");
    let kv = store.get(&key).await.unwrap()?;
    Some(String::from_utf8(kv.value).unwrap())
}

/// `actor action detail` per audit entry, for messages.
fn trail(incident: &Incident) -> String {
    incident
        .audit
        .iter()
        .map(|e| format!("{} {} {}", e.actor.tag(), e.action, e.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The entries of `action` whose detail ends with `suffix`.
fn entries<'a>(
    incident: &'a Incident,
    action: AuditAction,
    suffix: &'a str,
) -> impl Iterator<Item = &'a centinela_core::incident::AuditEntry> + 'a {
    incident
        .audit
        .iter()
        .filter(move |e| e.action == action && e.detail.ends_with(suffix))
}

#[test]
fn a_call_whose_node_dies_is_redialled_to_another_node_and_rejoins_its_incident() {
    redial_after_kill9(Killed::Leader);
}

#[test]
fn a_call_on_a_node_that_is_not_the_leader_is_ended_by_the_leader_once_when_that_node_dies() {
    redial_after_kill9(Killed::NotLeader);
}

/// Which node takes the first call and is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Killed {
    /// Two nodes; the leader takes the call and dies; the survivor takes the lead and the
    /// redial.
    Leader,
    /// Three nodes; a node that is not the leader takes the call and dies; the leader stays
    /// and the redial goes to the third node.
    NotLeader,
}

fn redial_after_kill9(killed: Killed) {
    if !sipp::available() {
        return;
    }
    let rt = runtime();
    let etcd = start_etcd(1);
    let scenario = ScenarioFile::write(4, 4);
    let path = scenario.path.to_str().unwrap().to_string();
    let extra = ["--scenario", path.as_str(), "--sip", "127.0.0.1:0"];
    let sites: &[(&str, &str)] = match killed {
        Killed::Leader => &[("n1", "site-a"), ("n2", "site-b")],
        Killed::NotLeader => &[("n1", "site-a"), ("n2", "site-b"), ("n3", "site-c")],
    };
    let mut nodes: Vec<Node> = sites
        .iter()
        .map(|(id, site)| Node::spawn(id, site, &etcd.endpoints(), &extra))
        .collect();
    for node in &mut nodes {
        node.wait_started();
    }
    for node in &mut nodes {
        node.wait_ready();
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.grpc.clone()).collect();
    // Killed::Leader: the node that takes the first call is the leader, so the survivor must
    // notice the lost call when it takes the lead. Killed::NotLeader: the leader sees a
    // member leave.
    let leader = rt.block_on(wait_any_leader(&addrs)).leader;
    let l = nodes.iter().position(|n| n.id == leader).unwrap();
    let (a, b) = match killed {
        Killed::Leader => (l, 1 - l),
        Killed::NotLeader => {
            let others: Vec<usize> = (0..nodes.len()).filter(|&i| i != l).collect();
            (others[0], others[1])
        }
    };
    let (a_id, b_id) = (nodes[a].id.clone(), nodes[b].id.clone());
    let (sip_a, sip_b) = (nodes[a].sip_addr(), nodes[b].sip_addr());
    let store = rt.block_on(connect_store(&etcd.endpoints()));
    let button = scenario.buttons[0].clone();

    // The press first (through the device path), then the button's call to node A.
    let presser = Presser::new(&addrs, "redial");
    let pressed = rt
        .block_on(presser.press(&button))
        .unwrap_or_else(|lost| panic!("the press was lost: {lost:?}"));
    // Spawned on the test's runtime (the handle aborts it later).
    let first_call = {
        let _runtime = rt.enter();
        sipp::spawn_call_hung_up_by_node(sip_a, "u1", &button, TEST_DEVICE_TOKEN, DEADLINE)
    };
    let on_a = format!(" on node {a_id}");
    wait::until_blocking(format!("the call on {a_id} in the trail"), || {
        let incident = rt.block_on(incident(&store, &pressed.incident));
        entries(&incident, AuditAction::CallStarted, &on_a)
            .next()
            .map(|_| ())
            .ok_or_else(|| trail(&incident))
    });

    // Node A dies with the call up; the first sipp run would wait for a BYE that never comes.
    nodes[a].kill9();
    first_call.abort();
    eprintln!("kill -9 of {a_id} ({killed:?}, the leader was {leader}) with {button}'s call on it");
    let survivors: Vec<String> = (0..nodes.len())
        .filter(|&i| i != a)
        .map(|i| nodes[i].grpc.clone())
        .collect();

    // The button redials, to node B: answered there, it talks and hangs up.
    let second = rt
        .block_on(async { sipp::spawn_call(sip_b, "u1", &button, TEST_DEVICE_TOKEN, TALK).await })
        .unwrap();
    assert!(
        second.succeeded(),
        "the redial to {b_id}: {}",
        second.report
    );

    // One incident: the press's. Its trail: the first call's start on A and its end by the
    // system once A left the cluster; the redial's start on B and its end by the button.
    let on_b = format!(" on node {b_id}");
    let lost = format!("node {a_id} lost (it left the cluster); the call's media ended with it");
    let incident = wait::until_blocking("both calls' ends in the trail", || {
        let incident = rt.block_on(incident(&store, &pressed.incident));
        let ends = incident
            .audit
            .iter()
            .filter(|e| e.action == AuditAction::CallEnded)
            .count();
        (ends >= 2)
            .then_some(incident.clone())
            .ok_or_else(|| trail(&incident))
    });
    let trail = trail(&incident);
    assert_eq!(
        rt.block_on(open_incident_of(&store, &button)).as_deref(),
        Some(pressed.incident.as_str()),
        "{button}'s open incident changed"
    );
    let count = |action: AuditAction| incident.audit.iter().filter(|e| e.action == action).count();
    assert_eq!(count(AuditAction::Opened), 1, "{trail}");
    assert_eq!(count(AuditAction::CallStarted), 2, "{trail}");
    assert_eq!(count(AuditAction::CallEnded), 2, "{trail}");
    let first = entries(&incident, AuditAction::CallStarted, &on_a)
        .next()
        .unwrap_or_else(|| panic!("no call on {a_id}:\n{trail}"));
    let first_id = first.detail.split(' ').nth(1).unwrap();
    let redial = entries(&incident, AuditAction::CallStarted, &on_b)
        .next()
        .unwrap_or_else(|| panic!("no call on {b_id}:\n{trail}"));
    let redial_id = redial.detail.split(' ').nth(1).unwrap();
    assert_ne!(first_id, redial_id, "{trail}");
    let end_of = |call: &str| {
        let prefix = format!("call {call}:");
        let ends: Vec<_> = incident
            .audit
            .iter()
            .filter(|e| e.action == AuditAction::CallEnded && e.detail.starts_with(&prefix))
            .collect();
        assert_eq!(
            ends.len(),
            1,
            "call {call} ended {} times:\n{trail}",
            ends.len()
        );
        ends[0].clone()
    };
    let first_end = end_of(first_id);
    assert_eq!(first_end.actor.tag(), "system", "{trail}");
    assert!(first_end.detail.ends_with(&lost), "{trail}");
    let redial_end = end_of(redial_id);
    assert_eq!(
        redial_end.actor.tag(),
        format!("button:{button}"),
        "{trail}"
    );
    assert!(redial_end.detail.ends_with("the caller hung up"), "{trail}");
    assert!(incident.is_open(), "the incident stays open:\n{trail}");
    if killed == Killed::NotLeader {
        // The sitting leader swept: it kept the lead through the kill.
        let now = rt.block_on(wait_any_leader(&survivors)).leader;
        assert_eq!(now, leader, "the leader changed");
    }
    eprintln!("trail of {}:\n{trail}", pressed.incident);
}
