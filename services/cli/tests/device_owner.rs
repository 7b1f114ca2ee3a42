//! Devices reach the node that owns them (issue 24), with real processes: Debian's etcd, three
//! `centinela start` nodes and `centinela devices`.
//!
//! A device stream (a camera's commands, a terminal's assignments) that reaches a node that
//! does not own the device is answered with a redirect naming the owner, when the device asks
//! for one (`centinela_proto::redirect`); the simulator asks and follows, so once it has
//! attached every device each stream is served by its owner and no node proxies any. A client
//! that does not ask is proxied as before. When an owner is killed its devices come back
//! through the survivors to their new owners, and when it returns (on a new port) the devices
//! it owns again are sent to it: the redirect, not the simulator's address list, names it.
//!
//! A button's heartbeat, unary, follows the same redirects: once a node named the button's
//! owner the simulator's heartbeats go there, and a round in which none was redirected is one
//! in which every heartbeat reached its owner directly.
//!
//! Each node's counts are read from `Operator.ClusterStatus` (`device_streams_served`,
//! `device_streams_proxied`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use centinela_proto::client::{AuthChannel, Credentials, Failover};
use centinela_proto::redirect;
use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use centinela_proto::v1::camera_gateway_client::CameraGatewayClient;
use centinela_testkit::wait::{self, Wait};
use common::*;

const NODES: &[(&str, &str)] = &[("n1", "site-a"), ("n2", "site-a"), ("n3", "site-b")];
/// Buttons, and as many cameras (one per button).
const BUTTONS: usize = 12;
const BRIGADES: usize = 6;
/// Every device stream the simulator holds: a camera's and a terminal's each.
const STREAMS: u64 = (BUTTONS + BRIGADES) as u64;

/// Each answering node's (served, proxied) device streams, by node id.
async fn streams(nodes: &[(String, String)]) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    for (id, addr) in nodes {
        if let Ok(status) = cluster_status(addr).await {
            counts.insert(
                id.clone(),
                (status.device_streams_served, status.device_streams_proxied),
            );
        }
    }
    counts
}

/// Waits until the nodes `live` (all of them answering) serve every device stream themselves
/// and proxy none; returns the counts.
async fn wait_all_served_by_owners(
    what: &str,
    live: &[(String, String)],
) -> BTreeMap<String, (u64, u64)> {
    wait::until(what, || async {
        let counts = streams(live).await;
        let served: u64 = counts.values().map(|(served, _)| served).sum();
        let proxied: u64 = counts.values().map(|(_, proxied)| proxied).sum();
        if counts.len() == live.len() && served == STREAMS && proxied == 0 {
            Ok(counts)
        } else {
            Err(format!("(served, proxied) by node: {counts:?}"))
        }
    })
    .await
}

async fn camera_client(addr: &str) -> CameraGatewayClient<AuthChannel> {
    let failover = Failover::new(
        vec![addr.to_string()],
        Credentials::new(Some(TEST_DEVICE_TOKEN)).unwrap(),
    );
    let (channel, _) = failover.connect().await.unwrap();
    CameraGatewayClient::with_interceptor(channel, failover.credentials())
}

/// Opens camera `camera`'s command stream at `addr`, asking for owner redirects or not.
async fn subscribe(
    addr: &str,
    camera: &str,
    follow: bool,
) -> Result<tonic::Streaming<v1::CameraCommand>, tonic::Status> {
    let mut request = tonic::Request::new(v1::CameraSubscribe {
        camera_id: camera.to_string(),
    });
    if follow {
        redirect::ask_to_follow(&mut request);
    }
    let mut client = camera_client(addr).await;
    client
        .commands(request)
        .await
        .map(tonic::Response::into_inner)
}

fn ids_and_addrs(nodes: &[Node]) -> Vec<(String, String)> {
    nodes
        .iter()
        .filter(|n| n.is_live())
        .map(|n| (n.id.clone(), n.grpc.clone()))
        .collect()
}

/// A button's heartbeat at `addr`, asking for owner redirects or not.
async fn heartbeat(addr: &str, button: &str, follow: bool) -> Result<(), tonic::Status> {
    let failover = Failover::new(
        vec![addr.to_string()],
        Credentials::new(Some(TEST_DEVICE_TOKEN)).unwrap(),
    );
    let (channel, _) = failover.connect().await?;
    let mut request = tonic::Request::new(v1::ButtonHeartbeat {
        button_id: button.to_string(),
    });
    if follow {
        redirect::ask_to_follow(&mut request);
    }
    ButtonGatewayClient::with_interceptor(channel, failover.credentials())
        .heartbeat(request)
        .await
        .map(|_| ())
}

/// The simulator's heartbeat rounds logged so far: (round, sent, failed, redirected).
fn heartbeat_rounds(devices: &Devices) -> Vec<(u64, u64, u64, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    devices
        .log()
        .grep(&["devices: heartbeat round"])
        .iter()
        .filter_map(|line| {
            Some((
                field(line, "round")?,
                field(line, "sent")?,
                field(line, "failed")?,
                field(line, "redirected")?,
            ))
        })
        .collect()
}

/// The number of the simulator's last heartbeat round logged (0 before the first).
fn last_round(devices: &Devices) -> u64 {
    heartbeat_rounds(devices)
        .last()
        .map_or(0, |(round, ..)| *round)
}

/// Waits for a heartbeat round after round `after` in which every button's heartbeat was
/// taken, and none was redirected: each went straight to its owner. Rounds start every 10 s,
/// and it may take two or three.
fn wait_heartbeats_at_owners(rt: &tokio::runtime::Runtime, devices: &Devices, after: u64) {
    rt.block_on(Wait::up_to(Duration::from_secs(120)).until(
        "a heartbeat round with every button's taken by its owner, none redirected",
        || async {
            let rounds = heartbeat_rounds(devices);
            rounds
                .iter()
                .find(|(round, sent, failed, redirected)| {
                    *round > after && *sent == BUTTONS as u64 && *failed == 0 && *redirected == 0
                })
                .map(|_| ())
                .ok_or(format!("(round, sent, failed, redirected): {rounds:?}"))
        },
    ))
}

#[test]
fn devices_reach_their_owner_directly_and_follow_it_when_ownership_moves() {
    let etcd = start_etcd(1);
    let scenario = ScenarioFile::write(BUTTONS, BRIGADES);
    let path = scenario.path.to_str().unwrap().to_string();
    let endpoints = etcd.endpoints();
    let start = |id: &str, site: &str| Node::spawn(id, site, &endpoints, &["--scenario", &path]);
    let mut nodes: Vec<Node> = NODES.iter().map(|(id, site)| start(id, site)).collect();
    for node in &mut nodes {
        node.wait_started();
    }
    for node in &mut nodes {
        node.wait_ready();
    }
    let rt = runtime();
    let n1 = nodes[0].grpc.clone();
    let cameras: Vec<String> = (1..=BUTTONS).map(|i| format!("Q{i:02}")).collect();

    // The protocol, from a client of the test's own: n1 names the owner of a camera it does
    // not own to a device that asks.
    let (camera, owner) = rt.block_on(wait::until(
        "n1 to redirect a camera it does not own",
        || async {
            for camera in &cameras {
                if let Err(status) = subscribe(&n1, camera, true).await
                    && let Some(owner) = redirect::owner_of(&status)
                {
                    return Some((camera.clone(), owner));
                }
            }
            None
        },
    ));
    let owner_node = nodes
        .iter()
        .find(|n| n.grpc == format!("http://{}", owner.addr))
        .unwrap_or_else(|| panic!("the redirect names no node's address: {owner:?}"));
    assert_eq!(owner_node.id, owner.node);
    assert_ne!(owner_node.id, "n1");
    let owner_url = owner_node.grpc.clone();
    rt.block_on(async {
        // A client that does not ask is served, through n1's proxy.
        let proxied = subscribe(&n1, &camera, false)
            .await
            .expect("a device that does not follow redirects is still served");
        wait::until("n1 to proxy the old client's stream", || async {
            cluster_status(&n1)
                .await
                .is_ok_and(|s| s.device_streams_proxied == 1)
        })
        .await;
        drop(proxied);
        wait::until("n1's proxy to close with the client's stream", || async {
            cluster_status(&n1)
                .await
                .is_ok_and(|s| s.device_streams_proxied == 0)
        })
        .await;
        // The owner serves it itself.
        let direct = subscribe(&owner_url, &camera, true)
            .await
            .expect("the owner serves its camera's stream");
        wait::until("the owner to count the stream it serves", || async {
            cluster_status(&owner_url)
                .await
                .is_ok_and(|s| s.device_streams_served == 1 && s.device_streams_proxied == 0)
        })
        .await;
        drop(direct);

        // A heartbeat likewise: sent to its owner when it asks, forwarded when it does not.
        let buttons: Vec<String> = (1..=BUTTONS).map(|i| format!("P{i:02}")).collect();
        let mut named = None;
        for button in &buttons {
            if let Err(status) = heartbeat(&n1, button, true).await {
                let owner = redirect::owner_of(&status)
                    .unwrap_or_else(|| panic!("{button}'s heartbeat at n1: {status:?}"));
                named = Some((button.clone(), owner));
                break;
            }
        }
        let (button, owner) = named.expect("n1 owns every button: no heartbeat redirected");
        assert_ne!(owner.node, "n1");
        heartbeat(&format!("http://{}", owner.addr), &button, true)
            .await
            .expect("the owner takes its button's heartbeat");
        heartbeat(&n1, &button, false)
            .await
            .expect("a button that does not follow redirects is forwarded");
    });

    // The simulator, given every node's address, starts every device at n1 (its first
    // address; the streams share one connection): each ends up at its owner.
    let addrs: Vec<String> = nodes.iter().map(|n| n.grpc.clone()).collect();
    let devices = Devices::start(&addrs);
    let counts = rt.block_on(wait_all_served_by_owners(
        "every device stream served by its owner, none proxied",
        &ids_and_addrs(&nodes),
    ));
    eprintln!("device streams (served, proxied) by node: {counts:?}");
    let others: u64 = counts
        .iter()
        .filter(|(id, _)| *id != "n1")
        .map(|(_, (served, _))| served)
        .sum();
    assert!(
        others > 0,
        "every stream stayed on n1, where the simulator connected: {counts:?}"
    );
    // The simulator's buttons, started at n1 too, heartbeat their owners.
    wait_heartbeats_at_owners(&rt, &devices, 0);

    // kill -9 of the node (other than n1) serving the most: its devices come back through
    // the survivors to their new owners.
    let victim = counts
        .iter()
        .filter(|(id, _)| *id != "n1")
        .max_by_key(|(_, (served, _))| *served)
        .map(|(id, _)| id.clone())
        .unwrap();
    let i = nodes.iter().position(|n| n.id == victim).unwrap();
    let killed = Instant::now();
    nodes[i].kill9();
    let round_at_kill = last_round(&devices);
    let counts = rt.block_on(wait_all_served_by_owners(
        "the killed owner's devices served by their new owners, none proxied",
        &ids_and_addrs(&nodes),
    ));
    figure("devices_back_after_kill_ms", ms(killed.elapsed()));
    eprintln!("after the kill of {victim}: {counts:?}");
    // The buttons it owned went back to the survivors and were sent on to their new owners
    // (the round under way at the kill began before it).
    wait_heartbeats_at_owners(&rt, &devices, round_at_kill + 1);

    // It returns on new ports: the devices it owns again are sent to its new address, which
    // only the redirects name (the simulator was given the old one).
    let site = nodes[i].site.clone();
    let mut back = start(&victim, &site);
    back.wait_started();
    back.wait_ready();
    let round_at_return = last_round(&devices);
    nodes[i] = back;
    let counts = rt.block_on(wait_all_served_by_owners(
        "the returned node serving its devices again, none proxied",
        &ids_and_addrs(&nodes),
    ));
    eprintln!("after {victim} returned: {counts:?}");
    assert!(
        counts[&victim].0 > 0,
        "no device reached {victim} at its new address: {counts:?}"
    );
    wait_heartbeats_at_owners(&rt, &devices, round_at_return + 1);
    drop(devices);
}
