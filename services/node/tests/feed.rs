//! The operator feed follows the store only while someone is subscribed, with one watch for
//! every subscriber; the dispatcher watches only the span of keys it needs; and on the
//! leader's node the two share one store watch of that span (issue 24).
//!
//! Observed on the store side: the embedded store says how many open watches would see a
//! change to a key. Every wait polls a condition under a generous deadline (the server notices
//! a client's stream ending asynchronously); nothing asserts on timing.

use tokio_stream::StreamExt;
use tonic::Streaming;

use centinela_core::ids::IncidentId;
use centinela_proto::v1;
use centinela_proto::v1::operator_event::Event;
use centinela_testkit::node::{NodeBuilder, TestNode, radio_all_available};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;

/// A key of the kind the feed and the dispatcher follow.
const INCIDENT_KEY: &str = "/centinela/incidents/PROBE";
/// A key of the kind a press writes beside its incident, which neither needs.
const PRESS_KEY: &str = "/centinela/presses/B01/PROBE";
const OPEN_KEY: &str = "/centinela/open/B01";

async fn node() -> TestNode {
    let scenario = ScenarioBuilder::new("feed")
        .button(Button::new("B01", -12.0464, -77.0300))
        .brigade(Brigade::new("U01", "car", -12.0470, -77.0310))
        .build();
    let node = NodeBuilder::new("node-feed")
        .scenario(scenario)
        .start()
        .await;
    node.wait_for_dispatcher().await;
    node
}

fn watchers_of(node: &TestNode, key: &str) -> usize {
    node.embedded_store()
        .expect("the test node runs on the embedded store")
        .watchers_of(key)
}

/// Opens an operator `Watch` and reads its snapshot to the end.
async fn watch_through_snapshot(node: &TestNode) -> Streaming<v1::OperatorEvent> {
    let mut stream = node
        .operator()
        .watch(v1::WatchRequest::default())
        .await
        .expect("watch opens")
        .into_inner();
    loop {
        let event = stream
            .next()
            .await
            .expect("the snapshot ends with SnapshotDone")
            .expect("no error in the snapshot");
        if matches!(event.event, Some(Event::SnapshotDone(_))) {
            return stream;
        }
    }
}

/// Reads `stream` until an incident of `button` arrives; its id.
async fn next_incident_of(stream: &mut Streaming<v1::OperatorEvent>, button: &str) -> String {
    loop {
        let event = stream
            .next()
            .await
            .expect("the stream stays open")
            .expect("no error on the stream");
        if let Some(Event::Incident(incident)) = event.event
            && incident.button == button
        {
            return incident.id;
        }
    }
}

/// An operator (`op-feed`) resolves `incident` as handled.
async fn resolve(node: &TestNode, incident: &str) {
    node.operator()
        .resolve(v1::ResolveRequest {
            incident_id: incident.to_string(),
            operator_id: "op-feed".into(),
            resolution: v1::Resolution::Handled as i32,
        })
        .await
        .expect("the operator resolves the incident");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_follows_only_while_someone_is_subscribed_on_the_leaders_one_watch() {
    let node = node().await;

    // Nobody subscribed: the feed holds no watch; the leader's dispatcher (one watch) is the
    // only one that sees incidents, and no watch at all sees a press's pointer keys.
    assert!(!node.feed().is_watching(), "no subscriber, no feed watch");
    let base = watchers_of(&node, INCIDENT_KEY);
    assert_eq!(base, 1, "only the dispatcher watches incidents");
    assert_eq!(
        watchers_of(&node, PRESS_KEY),
        0,
        "nobody watches press keys"
    );
    assert_eq!(
        watchers_of(&node, OPEN_KEY),
        0,
        "nobody watches open pointers"
    );

    // A subscriber gets its snapshot, then live changes, through the store watch the
    // dispatcher already holds: the node's one watch of the span, not a second one.
    let mut first = watch_through_snapshot(&node).await;
    assert!(node.feed().is_watching());
    assert_eq!(
        watchers_of(&node, INCIDENT_KEY),
        1,
        "the leader's dispatcher and the operators' feed share one store watch"
    );
    let reply = node.press("B01", "feed-p1").await;
    assert_eq!(next_incident_of(&mut first, "B01").await, reply.incident_id);

    // A second subscriber shares that watch, and sees the incident in its snapshot.
    let mut second = node
        .operator()
        .watch(v1::WatchRequest::default())
        .await
        .expect("watch opens")
        .into_inner();
    assert_eq!(
        next_incident_of(&mut second, "B01").await,
        reply.incident_id,
        "the open incident is in the second subscriber's snapshot"
    );
    assert_eq!(watchers_of(&node, INCIDENT_KEY), 1, "one watch for all");

    // The first one leaving keeps the watch for the second.
    drop(first);
    resolve(&node, &reply.incident_id).await;
    // The closure is a live change the remaining subscriber sees.
    loop {
        let event = second.next().await.expect("open").expect("no error");
        if let Some(Event::Incident(incident)) = event.event
            && incident.id == reply.incident_id
            && incident.state == v1::IncidentState::Closed as i32
        {
            break;
        }
    }
    assert!(node.feed().is_watching(), "a subscriber remains");

    // The last one leaving closes the feed's subscription; the dispatcher keeps the store
    // watch (services/store's shared_watch tests show the last follower closing it).
    drop(second);
    wait::until("the feed to close its watch", || async {
        !node.feed().is_watching() && watchers_of(&node, INCIDENT_KEY) == base
    })
    .await;

    // And a newcomer opens it again, with a consistent snapshot.
    let mut again = node
        .operator()
        .watch(v1::WatchRequest::default())
        .await
        .expect("watch opens")
        .into_inner();
    let mut saw_done = false;
    while !saw_done {
        let event = again.next().await.expect("open").expect("no error");
        saw_done = matches!(event.event, Some(Event::SnapshotDone(_)));
    }
    assert_eq!(watchers_of(&node, INCIDENT_KEY), 1);
    let reply = node.press("B01", "feed-p2").await;
    assert_eq!(next_incident_of(&mut again, "B01").await, reply.incident_id);
}

/// A close through a node whose feed is open commits from the feed's copies of the incident,
/// its unit and its camera: one store transaction and no read. (What the copies cannot decide
/// is decided from a read: `centinela-records`' incident tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_through_a_watching_node_commits_from_the_feeds_copies() {
    let node = node().await;
    let _watching = watch_through_snapshot(&node).await;
    radio_all_available(&mut node.operator()).await;
    let reply = node.press("B01", "feed-close").await;
    let id = IncidentId::new(reply.incident_id.clone()).expect("an incident id");
    wait::until(
        "the feed to hold the incident, its unit and its camera",
        || async {
            node.feed()
                .held_close(&id)
                .is_some_and(|held| held.brigades.len() == 1)
        },
    )
    .await;

    let store = node.embedded_store().expect("the embedded store");
    let before = store.requests();
    resolve(&node, &reply.incident_id).await;
    let after = store.requests();
    assert_eq!(
        (after.txns - before.txns, after.ranges - before.ranges),
        (1, 0),
        "one transaction, no read: {before:?} -> {after:?}"
    );
    let closed = node.incident(&reply.incident_id).await;
    assert_eq!(closed.state, v1::IncidentState::Closed as i32);
    let units = node
        .operator()
        .list_units(v1::ListUnitsRequest {})
        .await
        .expect("units")
        .into_inner()
        .units;
    assert!(
        units.iter().all(|u| u.incident.is_none()),
        "the unit is released: {units:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_map_follows_the_feed_once_requested() {
    let node = node().await;
    let map = node.public_map().clone();
    assert!(
        !map.is_following(),
        "an unrequested map holds no subscription"
    );
    assert!(!node.feed().is_watching());
    let url = node.http_url("/public/buttons.geojson");
    let body = http_get(&url).await;
    assert!(body.contains("\"B01\""), "{body}");
    assert!(map.is_following());
    assert!(
        node.feed().is_watching(),
        "the map's subscription opened the watch"
    );
}

/// A plain HTTP/1.1 GET (the node's tests use no HTTP client crate); the body.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut socket = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    socket.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// A watch of incidents only (`incidents_only`) gets no unit, button or camera, in its
/// snapshot or live, while a press's incident reaches it through to its assignment; a watch
/// of everything on the same node sees the devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_incidents_only_streams_no_devices() {
    let node = node().await;
    let mut everything = watch_through_snapshot(&node).await;
    let mut incidents = node
        .operator()
        .watch(v1::WatchRequest {
            incidents_only: true,
            ..Default::default()
        })
        .await
        .expect("watch opens")
        .into_inner();
    let device = |event: &Option<Event>| {
        matches!(
            event,
            Some(Event::Unit(_) | Event::Button(_) | Event::Camera(_))
        )
    };
    loop {
        let event = incidents
            .next()
            .await
            .expect("the snapshot ends with SnapshotDone")
            .expect("no error in the snapshot");
        assert!(!device(&event.event), "in the snapshot: {event:?}");
        if matches!(event.event, Some(Event::SnapshotDone(_))) {
            break;
        }
    }
    radio_all_available(&mut node.operator()).await;
    let reply = node.press("B01", "feed-incidents-only").await;
    loop {
        let event = incidents
            .next()
            .await
            .expect("the stream stays open")
            .expect("no error on the stream");
        assert!(!device(&event.event), "live: {event:?}");
        if let Some(Event::Incident(incident)) = event.event
            && incident.id == reply.incident_id
            && !incident.units.is_empty()
        {
            break;
        }
    }
    // The same changes reach a watcher of everything with the unit's.
    loop {
        let event = everything
            .next()
            .await
            .expect("the stream stays open")
            .expect("no error on the stream");
        if matches!(&event.event, Some(Event::Unit(unit)) if unit.id == "U01") {
            break;
        }
    }
}
