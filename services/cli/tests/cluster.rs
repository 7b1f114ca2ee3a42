//! The cluster with real processes (issue 3's "must show"): Debian's etcd (one member, or three
//! for the etcd-restart scenario), three `centinela start` nodes over two sites (n1 and n2 in
//! site-a, n3 in site-b) and `centinela devices` playing the brigade terminals and cameras.
//!
//! Every scenario presses buttons from the test (unique press ids, retried with the same id
//! until acknowledged), follows the store from the test's side ([`StoreMonitor`]: when each
//! incident appeared and was assigned; no brigade in two open incidents at any revision), and
//! ends with [`check_invariants`] read from etcd itself. Measured figures are printed as
//! `FIGURE name=value` (milliseconds unless the name says otherwise); nothing asserts on them:
//!
//! ```sh
//! cargo nextest run -p centinela-cli --test cluster --no-capture 2>&1 | grep FIGURE
//! ```
//!
//! The scenario is generated ([`ScenarioFile`]): 40 buttons and 40 brigades, so that presses of
//! fresh buttons always open new incidents and always find an available brigade, and an
//! assignment after a failure is a new leader's work, not a merge into an old incident.
//!
//! The kill -9 scenario also runs with TLS on every hop ([`Transport::Tls`], issue 20): the
//! same body, the same bounds, over mutual TLS between the nodes, HTTPS probes, clients that
//! trust the city CA, and an etcd that requires client certificates with RBAC on.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use centinela_testkit::wait::{self, Wait};
use common::*;

/// Three nodes over two sites.
const NODES: &[(&str, &str)] = &[("n1", "site-a"), ("n2", "site-a"), ("n3", "site-b")];
const BUTTONS: usize = 40;
const BRIGADES: usize = 40;
/// The node lease TTL the product uses.
const LEASE_TTL: Duration = centinela_node::limits::LEASE_TTL;

fn start_cluster(etcd_members: usize) -> Cluster {
    start_cluster_over(Transport::Plain, etcd_members)
}

fn start_cluster_over(transport: Transport, etcd_members: usize) -> Cluster {
    Cluster::start_over(
        transport,
        etcd_members,
        NODES,
        ScenarioFile::write(BUTTONS, BRIGADES),
    )
}

/// Sleeps until `at` (for pacing a scenario; never followed by an assertion on timing).
fn sleep_until(at: Instant) {
    if let Some(left) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// A first press, assigned and its brigade en route: the cluster is up, a leader dispatches,
/// the terminals receive their assignments.
fn warm_up(rt: &tokio::runtime::Runtime, presser: &Presser, monitor: &StoreMonitor, button: &str) {
    rt.block_on(async {
        let acked = presser.press(button).await.unwrap_or_else(|lost| {
            panic!(
                "the warm-up press was not acknowledged: {lost:?}; {}",
                presser.error_summary()
            )
        });
        let incident = BTreeSet::from([acked.incident.clone()]);
        monitor.wait_assigned(&incident, DEADLINE).await;
        monitor.wait_en_route(&incident, DEADLINE).await;
    });
}

fn assert_none_lost(report: &LoadReport, presser: &Presser) {
    assert!(
        report.lost.is_empty(),
        "{} of {} presses were never acknowledged: {:#?}\nfailed attempts: {}",
        report.lost.len(),
        report.sent,
        report.lost,
        presser.error_summary()
    );
    assert_eq!(report.acked.len(), report.sent);
}

/// Ends every scenario: every acknowledged press's incident was assigned, its brigade's
/// terminal acknowledged (the incident went en route) and its camera is on target; the live
/// nodes are ready; the invariants hold in etcd itself; the monitor saw no violation at any
/// revision; no assignment was lost on its way to a terminal.
fn finish(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    presser: &Presser,
    monitor: &StoreMonitor,
) {
    let acked = presser.acked();
    let incidents = incidents_of(&acked);
    rt.block_on(monitor.wait_assigned(&incidents, DEADLINE));
    rt.block_on(monitor.wait_en_route(&incidents, DEADLINE));
    eprintln!(
        "monitor: {} store revisions checked; assignments by dispatcher term {:?}; watch \
         interruptions {:?}; press attempts: {}",
        monitor.revisions_checked(),
        monitor.assignments_by_term(),
        monitor.watch_errors(),
        presser.error_summary()
    );
    rt.block_on(wait_cameras_on_target(
        &cluster.endpoints(),
        &incidents,
        DEADLINE,
    ));
    cluster.wait_live_nodes_ready();
    rt.block_on(check_invariants(&cluster.endpoints(), &acked));
    monitor.assert_no_violations();
    // Every terminal here is simulated and connected (to some node): a unit that let its
    // assignment time out never received it.
    let declined = monitor.declined();
    figure("incidents_with_declined_units", declined.len());
    assert!(
        declined.is_empty(),
        "assignments never reached their brigade's terminal (ack timeout, next candidate): \
         {declined:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The harness itself (no Centinela node needed)

#[test]
fn harness_etcd_cluster_restarts_a_member_and_the_checkers_flag_violations() {
    let rt = runtime();
    let mut etcd = start_etcd(3);
    let endpoints = etcd.endpoints();

    // An empty store satisfies every invariant.
    rt.block_on(check_invariants(&endpoints, &[]));

    // Kill the raft leader: the other two elect one and keep taking writes.
    let leader = etcd.leader_index().expect("a 3-member etcd has a leader");
    etcd.kill_member(leader);
    let live: Vec<String> = endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, e)| e.clone())
        .collect();
    let written = rt.block_on(async {
        let store = connect_store(&live).await;
        Wait::DEFAULT
            .every(Duration::from_millis(50))
            .until("a write with one member down", || {
                let store = store.clone();
                async move { store.put("/harness/probe", "1", None).await }
            })
            .await
    });

    // It comes back on its data dir and catches up.
    etcd.restart_member(leader);
    wait::until_blocking("the restarted member to catch up", || {
        etcd.member_revision(leader)
            .map(|revision| revision >= written)
            .unwrap_or(false)
    });

    // The checkers see a broken state: one brigade in two open incidents, a brigade that names
    // an incident without being in it, an acknowledged press with no key and no incident.
    rt.block_on(async {
        let store = connect_store(&endpoints).await;
        let monitor = StoreMonitor::start(&endpoints).await;
        let incident = |id: &str, state: &str, units: &[&str]| {
            serde_json::json!({
                "id": id, "button": "P01", "state": state, "units": units,
                "resolution": null, "audit": [{"action": "opened"}],
            })
            .to_string()
        };
        let brigade = |id: &str, incident: &str| {
            serde_json::json!({"id": id, "status": "dispatched", "incident": incident}).to_string()
        };
        for (key, value) in [
            (
                "/centinela/incidents/I1",
                incident("I1", "dispatched", &["U01"]),
            ),
            ("/centinela/brigades/U01", brigade("U01", "I1")),
            ("/centinela/brigades/U02", brigade("U02", "I2")),
            ("/centinela/presses/P01/x-1", "I1".to_string()),
            (
                "/centinela/incidents/I2",
                incident("I2", "en_route", &["U01"]),
            ),
        ] {
            store.put(key, value, None).await.unwrap();
        }
        let pressed = |press_id: &str, incident: &str| AckedPress {
            press_id: press_id.into(),
            button: "P01".into(),
            incident: incident.into(),
            duplicate: false,
            sent_at: Instant::now(),
            acked_at: Instant::now(),
            attempts: 1,
            via: "test".into(),
        };
        let acked = [pressed("x-1", "I1"), pressed("x-2", "I9")];
        let violations = invariant_violations(&endpoints, &acked).await;
        for expected in [
            "brigade U01 is attached to open incidents [\"I1\", \"I2\"]",
            "press x-2 of P01 (incident I9) has no presses/P01/x-2 key",
            "names incident I9, which does not exist",
            "brigade U02 (status \"dispatched\") names incident I2, whose units are [\"U01\"]",
            "incident I2 holds brigade U01, whose record says incident \"I1\"",
        ] {
            assert!(
                violations.iter().any(|v| v.contains(expected)),
                "expected a violation containing {expected:?}, got {violations:#?}"
            );
        }
        Wait::DEFAULT
            .every(Duration::from_millis(10))
            .until("the monitor to flag U01", || async {
                !monitor.violations().is_empty()
            })
            .await;
        assert!(
            monitor.violations()[0].contains("brigade U01"),
            "{:?}",
            monitor.violations()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The must-show scenarios

/// A cluster on [`Transport::Tls`] speaks nothing else: the nodes and etcd serve `https://`,
/// a plaintext client gets no answer from a node, and etcd refuses a client without a
/// certificate.
fn assert_every_hop_is_tls(cluster: &Cluster) {
    for node in &cluster.nodes {
        assert!(node.grpc.starts_with("https://"), "{}", node.grpc);
        let plain = format!("http://{}", node.grpc.trim_start_matches("https://"));
        let out = cli(&[plain], &["buttons"]);
        assert!(
            !out.status.success(),
            "node {} answered plaintext on its TLS port",
            node.id
        );
        let probe = http_get(&node.http, "/readyz");
        assert!(
            !matches!(probe, Ok((200, _))),
            "node {}'s console answered a plaintext probe: {probe:?}",
            node.id
        );
    }
    let endpoints = cluster.endpoints();
    assert!(
        endpoints.iter().all(|e| e.starts_with("https://")),
        "{endpoints:?}"
    );
    let options = cluster.etcd.client_options(None);
    let anonymous = centinela_testkit::etcd::block_on(async move {
        let store = centinela_store::Store::connect(&endpoints, options).await;
        match store {
            Ok(store) => store.get_prefix("/centinela/").await.map(|_| ()),
            Err(error) => Err(error),
        }
    });
    assert!(
        anonymous.is_err(),
        "etcd served a client without a certificate"
    );
}

#[test]
fn a_press_through_each_node_is_assigned() {
    let mut cluster = start_cluster(1);
    let rt = runtime();
    let addrs = cluster.addrs();
    let monitor = rt.block_on(StoreMonitor::start(&cluster.endpoints()));
    let presser = Presser::new(&addrs, "each");
    let leader = rt.block_on(wait_any_leader(&addrs));
    eprintln!("leader {} term {}", leader.leader, leader.term);

    for (i, node) in cluster.nodes.iter().enumerate() {
        let button = &cluster.scenario.buttons[i];
        let via = presser.via(std::slice::from_ref(&node.grpc));
        let acked = rt
            .block_on(via.press(button))
            .unwrap_or_else(|lost| panic!("press through {} lost: {lost:?}", node.id));
        assert!(
            !acked.duplicate,
            "a first press of {button} is a new incident"
        );
        let assigned =
            rt.block_on(monitor.wait_assigned(&BTreeSet::from([acked.incident.clone()]), DEADLINE));
        let seen = monitor.seen(&acked.incident).unwrap();
        eprintln!(
            "press of {button} through {} -> {} assigned {:?}",
            node.id, acked.incident, seen.first_unit
        );
        figure(
            &format!("press_via_{}_to_ack_ms", node.id),
            ms(acked.acked_at - acked.sent_at),
        );
        figure(
            &format!("press_via_{}_to_assigned_ms", node.id),
            ms(assigned - acked.sent_at),
        );
    }

    // The CLI shows the three members with their sites, the leader and its term.
    let status = cli_json(&addrs, &["cluster"]);
    let members = status["members"].as_array().expect("members");
    let mut seen: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().into(),
                m["site"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = NODES
        .iter()
        .map(|(i, s)| (i.to_string(), s.to_string()))
        .collect();
    assert_eq!(seen, expected, "{status}");
    assert!(
        members
            .iter()
            .all(|m| m["grpc_addr"].as_str().is_some_and(|a| !a.is_empty())),
        "{status}"
    );
    assert!(
        NODES.iter().any(|(id, _)| status["leader"] == *id),
        "{status}"
    );
    assert!(status["term"].as_i64().unwrap() > 0, "{status}");

    finish(&rt, &mut cluster, &presser, &monitor);
}

/// Waits (in the background) until a node of `addrs` reports a member set of the other nodes,
/// without `gone`.
fn watch_membership_without(
    rt: &tokio::runtime::Runtime,
    addrs: Vec<String>,
    gone: String,
) -> tokio::task::JoinHandle<LeaderSeen> {
    rt.spawn(async move {
        let others = NODES.len() - 1;
        wait_leader(
            &addrs,
            Duration::from_millis(10),
            "the node to leave the member set",
            move |s| s.members.len() == others && s.members.iter().all(|m| m.id != gone),
        )
        .await
    })
}

/// Waits until a node of `addrs` reports a leader other than `old` with a term above
/// `old_term`, polling every `every`.
fn wait_new_leader(
    rt: &tokio::runtime::Runtime,
    addrs: &[String],
    every: Duration,
    old: &LeaderSeen,
) -> LeaderSeen {
    let (leader, term) = (old.leader.clone(), old.term);
    rt.block_on(wait_leader(
        addrs,
        every,
        "a survivor to lead with a higher term",
        move |s| !s.leader.is_empty() && s.leader != leader && s.term > term,
    ))
}

#[test]
fn kill9_of_the_leader_elects_a_survivor_and_presses_in_the_gap_are_assigned() {
    kill9_of_the_leader(Transport::Plain);
}

#[test]
fn kill9_of_the_leader_with_tls_on_every_hop_and_etcd_client_certificates() {
    kill9_of_the_leader(Transport::Tls);
}

/// The leader dies (kill -9) under a steady stream of presses: a survivor leads with a higher
/// term, no press is lost, and presses made in the gap are assigned by the new leader.
fn kill9_of_the_leader(transport: Transport) {
    let mut cluster = start_cluster_over(transport, 1);
    if transport == Transport::Tls {
        assert_every_hop_is_tls(&cluster);
    }
    let rt = runtime();
    let buttons = cluster.scenario.buttons.clone();
    let monitor = rt.block_on(StoreMonitor::start(&cluster.endpoints()));
    let presser = Presser::new(&cluster.addrs(), "kill9");
    let before = rt.block_on(wait_any_leader(&cluster.addrs()));
    warm_up(&rt, &presser, &monitor, &buttons[0]);

    // Fresh buttons, 4 a second, from before the kill until after the new leader.
    let load = PressLoad::start(&rt, &presser, &buttons[1..], 4.0, buttons.len() - 1);
    std::thread::sleep(Duration::from_millis(500));
    let victim = cluster.index_of(&before.leader);
    let killed_at = Instant::now();
    cluster.nodes[victim].kill9();
    eprintln!("kill -9 of leader {} (term {})", before.leader, before.term);
    let survivors = cluster.live_addrs();
    let left = watch_membership_without(&rt, survivors.clone(), before.leader.clone());

    let after = wait_new_leader(&rt, &survivors, Duration::from_millis(10), &before);
    eprintln!(
        "{} leads with term {} (was {} with {}), seen by {}",
        after.leader, after.term, before.leader, before.term, after.by
    );
    figure("failover_kill_to_new_leader_ms", ms(after.at - killed_at));
    let left = rt.block_on(left).expect("the membership watch");
    figure("failover_kill_to_membership_ms", ms(left.at - killed_at));

    sleep_until(after.at + Duration::from_secs(2));
    let report = load.finish(&rt);
    assert_none_lost(&report, &presser);
    let in_gap: Vec<AckedPress> = report
        .acked
        .iter()
        .filter(|p| p.sent_at >= killed_at && p.sent_at <= after.at)
        .cloned()
        .collect();
    assert!(
        !in_gap.is_empty(),
        "no press was made between the kill and the new leader"
    );
    // Acknowledged (intake does not wait for a leader), then assigned by the new leader.
    rt.block_on(monitor.wait_assigned(&incidents_of(&report.acked), DEADLINE));
    for press in &in_gap {
        let seen = monitor.seen(&press.incident).unwrap();
        assert!(
            seen.first_term.is_some_and(|term| term > before.term),
            "{} (pressed in the gap) was first assigned by term {:?}; the dead leader had {}",
            press.incident,
            seen.first_term,
            before.term
        );
    }
    let (first, assigned_at) = monitor
        .first_assignment_of_incidents_after(killed_at)
        .expect("an incident opened after the kill was assigned");
    let gap_ack_max = in_gap.iter().map(|p| p.acked_at - p.sent_at).max().unwrap();
    eprintln!(
        "{} presses in the gap, acknowledged in at most {gap_ack_max:?}; first assignment after \
         the kill: {first}",
        in_gap.len()
    );
    figure("failover_kill_to_assigned_ms", ms(assigned_at - killed_at));
    figure("failover_gap_presses", in_gap.len());
    figure("failover_gap_press_ack_max_ms", ms(gap_ack_max));

    finish(&rt, &mut cluster, &presser, &monitor);
}

#[test]
fn sigterm_of_the_leader_hands_over_and_exits_zero() {
    let mut cluster = start_cluster(1);
    let rt = runtime();
    let buttons = cluster.scenario.buttons.clone();
    let monitor = rt.block_on(StoreMonitor::start(&cluster.endpoints()));
    let presser = Presser::new(&cluster.addrs(), "term");
    let before = rt.block_on(wait_any_leader(&cluster.addrs()));
    warm_up(&rt, &presser, &monitor, &buttons[0]);

    let load = PressLoad::start(&rt, &presser, &buttons[1..], 4.0, buttons.len() - 1);
    std::thread::sleep(Duration::from_millis(500));
    let victim = cluster.index_of(&before.leader);
    let stopped_at = Instant::now();
    cluster.nodes[victim].sigterm();
    let survivors = cluster.live_addrs();
    let left = watch_membership_without(&rt, survivors.clone(), before.leader.clone());
    let after = wait_new_leader(&rt, &survivors, Duration::from_millis(2), &before);
    let exit = cluster.nodes[victim]
        .wait_exit(DEADLINE)
        .unwrap_or_else(|| panic!("{} did not exit after SIGTERM", before.leader));
    let exited_at = Instant::now();
    let left = rt.block_on(left).expect("the membership watch");
    eprintln!(
        "SIGTERM to leader {} (term {}): {} leads with term {}; exit {exit}",
        before.leader, before.term, after.leader, after.term
    );
    figure("graceful_handover_ms", ms(after.at - stopped_at));
    figure("graceful_stop_to_membership_ms", ms(left.at - stopped_at));
    figure("graceful_exit_ms", ms(exited_at - stopped_at));
    assert!(
        exit.success(),
        "a node stopped with SIGTERM exits 0, got {exit}"
    );

    sleep_until(after.at.max(left.at) + Duration::from_millis(1500));
    let report = load.finish(&rt);
    assert_none_lost(&report, &presser);
    let after_stop: Vec<&AckedPress> = report
        .acked
        .iter()
        .filter(|p| p.sent_at >= stopped_at)
        .collect();
    if let Some(max) = after_stop.iter().map(|p| p.acked_at - p.sent_at).max() {
        figure("graceful_press_ack_max_ms", ms(max));
    }
    rt.block_on(monitor.wait_assigned(&incidents_of(&report.acked), DEADLINE));
    if let Some((_, at)) = monitor.first_assignment_of_incidents_after(stopped_at) {
        figure("graceful_stop_to_assigned_ms", ms(at - stopped_at));
    }

    finish(&rt, &mut cluster, &presser, &monitor);
}

#[test]
fn sigstop_of_the_leader_past_its_ttl_never_double_assigns_and_it_steps_down() {
    const PAUSE: Duration = Duration::from_secs(4);
    const { assert!(PAUSE.as_millis() > LEASE_TTL.as_millis()) };
    let mut cluster = start_cluster(1);
    let rt = runtime();
    let buttons = cluster.scenario.buttons.clone();
    let monitor = rt.block_on(StoreMonitor::start(&cluster.endpoints()));
    let presser = Presser::new(&cluster.addrs(), "stop");
    let before = rt.block_on(wait_any_leader(&cluster.addrs()));
    warm_up(&rt, &presser, &monitor, &buttons[0]);

    // Fresh buttons, 3 a second, through the pause and after it.
    let load = PressLoad::start(&rt, &presser, &buttons[1..], 3.0, buttons.len() - 1);
    std::thread::sleep(Duration::from_millis(500));
    let paused = cluster.index_of(&before.leader);
    let stopped_at = Instant::now();
    cluster.nodes[paused].sigstop();
    eprintln!("SIGSTOP to leader {} (term {})", before.leader, before.term);
    let survivors = cluster.live_addrs();
    let left = watch_membership_without(&rt, survivors.clone(), before.leader.clone());
    let after = wait_new_leader(&rt, &survivors, Duration::from_millis(10), &before);
    figure("pause_stop_to_new_leader_ms", ms(after.at - stopped_at));
    eprintln!(
        "{} leads with term {} while {} is paused",
        after.leader, after.term, before.leader
    );
    let left = rt.block_on(left).expect("the membership watch");
    figure("pause_stop_to_membership_ms", ms(left.at - stopped_at));

    sleep_until(stopped_at + PAUSE);
    let log_lines_before = cluster.nodes[paused].log().lines().len();
    cluster.nodes[paused].sigcont();
    let resumed_at = Instant::now();
    eprintln!(
        "SIGCONT to {} after {:?}",
        before.leader,
        resumed_at - stopped_at
    );

    // The resumed node no longer leads under its old term, in its own view...
    let paused_addr = cluster.nodes[paused].grpc.clone();
    let (old, old_term) = (before.leader.clone(), before.term);
    let stepped_down = rt.block_on(wait_leader(
        std::slice::from_ref(&paused_addr),
        Duration::from_millis(10),
        "the resumed node to step down",
        move |s| !(s.leader == old && s.term == old_term),
    ));
    figure(
        "pause_resume_to_stepped_down_ms",
        ms(stepped_down.at - resumed_at),
    );
    eprintln!(
        "after SIGCONT {} sees leader {:?} term {}",
        before.leader, stepped_down.leader, stepped_down.term
    );
    assert!(
        stepped_down.leader != before.leader || stepped_down.term > before.term,
        "{stepped_down:?}"
    );

    sleep_until(resumed_at + Duration::from_secs(2));
    let report = load.finish(&rt);
    assert_none_lost(&report, &presser);
    rt.block_on(monitor.wait_assigned(&incidents_of(&report.acked), DEADLINE));
    if let Some((_, at)) = monitor.first_assignment_of_incidents_after(stopped_at) {
        figure("pause_stop_to_assigned_ms", ms(at - stopped_at));
    }
    // ... and in everyone's view.
    let all = cluster.live_addrs();
    let now = rt.block_on(wait_any_leader(&all));
    assert!(
        now.leader != before.leader || now.term > before.term,
        "the paused node leads again under its old term: {now:?}"
    );
    let evidence: Vec<String> = cluster.nodes[paused]
        .log()
        .lines()
        .into_iter()
        .skip(log_lines_before)
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "fence", "term", "leader", "lease", "session", "step", "refused",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .take(20)
        .collect();
    eprintln!(
        "what {} logged after SIGCONT about leadership and its lease:\n{}",
        before.leader,
        evidence.join("\n")
    );

    // `finish` also waits for the resumed node to be ready again (rejoined with its share).
    finish(&rt, &mut cluster, &presser, &monitor);
}

/// The node that owns `button` among `members`: the cluster's rendezvous placement, pinned
/// so every node (and this test) computes the same answer.
fn owner_of(button: &str, members: &[&str]) -> String {
    let key = centinela_cluster::entity_key("button", button);
    centinela_cluster::placement::owner(&key, members.iter().copied())
        .expect("members")
        .to_string()
}

#[test]
fn killing_a_buttons_owner_moves_its_presses_to_a_survivor() {
    let mut cluster = start_cluster(1);
    let rt = runtime();
    let buttons = cluster.scenario.buttons.clone();
    let monitor = rt.block_on(StoreMonitor::start(&cluster.endpoints()));
    let presser = Presser::new(&cluster.addrs(), "owner");
    let leader = rt.block_on(wait_any_leader(&cluster.addrs()));
    warm_up(&rt, &presser, &monitor, &buttons[0]);
    // The victim is a node that is not the leader (so this measures ownership moving, not an
    // election) and owns buttons; the button is the first it owns.
    let ids: Vec<&str> = NODES.iter().map(|(id, _)| *id).collect();
    let victim_id = ids
        .iter()
        .find(|id| **id != leader.leader)
        .unwrap()
        .to_string();
    let owned: Vec<String> = buttons
        .iter()
        .filter(|b| owner_of(b, &ids) == victim_id)
        .cloned()
        .collect();
    assert!(
        !owned.is_empty(),
        "{victim_id} owns no button of {buttons:?}"
    );
    let button = owned[0].clone();
    let victim = cluster.index_of(&victim_id);

    let killed_at = Instant::now();
    cluster.nodes[victim].kill9();
    eprintln!(
        "kill -9 of {victim_id}, owner of {button} and {} other button(s) (leader is {})",
        owned.len() - 1,
        leader.leader
    );
    let survivors = cluster.live_addrs();
    let left = watch_membership_without(&rt, survivors.clone(), victim_id.clone());
    let through_survivors = presser.via(&survivors);

    // The button's press, through the survivors, right after the kill (the dead node's lease
    // has not expired yet)...
    let first = rt
        .block_on(through_survivors.press(&button))
        .unwrap_or_else(|lost| panic!("{button}'s press after its owner died was lost: {lost:?}"));
    figure(
        "owner_kill_to_button_served_ms",
        ms(first.acked_at - killed_at),
    );
    eprintln!(
        "{button} pressed {:?} after its owner died: {} in {} attempt(s)",
        first.sent_at - killed_at,
        first.incident,
        first.attempts
    );
    // ... and every other button, so all of the dead node's share is exercised.
    let others = rt.block_on(async {
        let mut presses = tokio::task::JoinSet::new();
        for b in buttons.iter().filter(|b| **b != button) {
            let (b, presser) = (b.clone(), through_survivors.clone());
            presses.spawn(async move { presser.press(&b).await });
        }
        presses.join_all().await
    });
    let lost: Vec<&LostPress> = others.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        lost.is_empty(),
        "presses never served after {victim_id} died: {lost:#?}\nfailed attempts: {}",
        presser.error_summary()
    );
    let others: Vec<AckedPress> = others.into_iter().filter_map(Result::ok).collect();
    let owned_served = others
        .iter()
        .filter(|p| owned.contains(&p.button))
        .map(|p| p.acked_at)
        .chain([first.acked_at])
        .max()
        .unwrap();
    figure(
        "owner_kill_to_all_owned_buttons_served_ms",
        ms(owned_served - killed_at),
    );
    let standins = cluster
        .nodes
        .iter()
        .filter(|n| n.is_live())
        .flat_map(|n| n.log().grep(&["owner unreachable"]))
        .count();
    eprintln!("presses recorded by a stand-in while the owner was unreachable: {standins}");

    // Once the dead node left, the button runs on a survivor, loaded from the store: presses
    // of it join the incident the first press opened.
    let left = rt.block_on(left).expect("the membership watch");
    figure("owner_kill_to_membership_ms", ms(left.at - killed_at));
    let survivor_ids: Vec<&str> = ids.iter().copied().filter(|id| *id != victim_id).collect();
    let new_owner = owner_of(&button, &survivor_ids);
    let again = rt
        .block_on(
            presser
                .via(&[cluster.nodes[cluster.index_of(&new_owner)].grpc.clone()])
                .press(&button),
        )
        .unwrap_or_else(|lost| {
            panic!("{button}'s press on its new owner {new_owner} was lost: {lost:?}")
        });
    assert!(
        again.duplicate && again.incident == first.incident,
        "a press of {button} on its new owner {new_owner}: {again:?}; the first opened {}",
        first.incident
    );
    figure(
        "owner_moved_press_ack_ms",
        ms(again.acked_at - again.sent_at),
    );
    // Every other button of the dead node's share too, through any survivor.
    for press in others.iter().filter(|p| owned.contains(&p.button)) {
        let again = rt
            .block_on(through_survivors.press(&press.button))
            .unwrap_or_else(|lost| panic!("{lost:?}"));
        assert!(
            again.duplicate && again.incident == press.incident,
            "a press of {} after the move: {again:?}; the first opened {}",
            press.button,
            press.incident
        );
    }

    finish(&rt, &mut cluster, &presser, &monitor);
}

#[test]
fn restarting_an_etcd_member_under_steady_presses_loses_none() {
    const RATE: f64 = 20.0;
    const PRESSES: usize = 200; // ten seconds
    let mut cluster = start_cluster(3);
    let rt = runtime();
    let buttons = cluster.scenario.buttons.clone();
    let monitor = rt.block_on(StoreMonitor::start(&cluster.endpoints()));
    let presser = Presser::new(&cluster.addrs(), "etcd");
    rt.block_on(wait_any_leader(&cluster.addrs()));
    warm_up(&rt, &presser, &monitor, &buttons[0]);

    let started = Instant::now();
    let load = PressLoad::start(&rt, &presser, &buttons, RATE, PRESSES);
    sleep_until(started + Duration::from_millis(2500));
    // The raft leader: the member whose loss costs the most (an etcd election).
    let victim = cluster.etcd.leader_index().expect("etcd has a leader");
    let killed_at = Instant::now();
    cluster.etcd.kill_member(victim);
    eprintln!(
        "killed etcd member e{victim} (the raft leader) at {:?}",
        killed_at - started
    );
    sleep_until(killed_at + Duration::from_secs(3));
    cluster.etcd.restart_member(victim);
    eprintln!(
        "etcd member e{victim} rejoined at {:?}",
        Instant::now() - started
    );

    let report = load.join(&rt);
    assert_eq!(report.sent, PRESSES);
    assert_none_lost(&report, &presser);
    figure(
        "etcd_restart_presses_acked",
        format!("{}/{}", report.acked.len(), report.sent),
    );
    figure(
        "etcd_restart_press_ack_p50_ms",
        ms(report.ack_quantile(0.5)),
    );
    figure(
        "etcd_restart_press_ack_p99_ms",
        ms(report.ack_quantile(0.99)),
    );
    figure("etcd_restart_press_ack_max_ms", ms(report.max_ack()));

    finish(&rt, &mut cluster, &presser, &monitor);
}
