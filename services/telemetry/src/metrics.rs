//! Every metric Centinela emits, in one place: its name, unit and meaning.
//!
//! Names are OpenTelemetry style (`centinela.press.to_assigned`); the Collector's Prometheus
//! exporter runs with `add_metric_suffixes: false`, so in Prometheus a name is the same with
//! dots as underscores (`centinela_press_to_assigned`, plus `_bucket`/`_sum`/`_count` for
//! histograms). [`ALL`] lists them so a test can check that dashboards and alert rules name
//! only metrics the code emits.
//!
//! Gauges are node-local values read at export time: each node reports what it sees (the
//! leader reports the queue; the others report zero), so dashboards take `max` or `sum`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram};

/// What kind of instrument a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric's name, kind, unit and description.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: &'static str,
    pub description: &'static str,
}

macro_rules! metrics {
    ($($ident:ident = $name:literal, $kind:ident, $unit:literal, $description:literal;)*) => {
        $(pub const $ident: Metric = Metric {
            name: $name,
            kind: Kind::$kind,
            unit: $unit,
            description: $description,
        };)*
        /// Every metric, for tests and docs.
        pub const ALL: &[Metric] = &[$($ident),*];
    };
}

metrics! {
    PRESSES = "centinela.presses", Counter, "{press}", "button presses acknowledged (attribute duplicate: merged into an open incident or a repeated press id)";
    INCIDENTS_OPENED = "centinela.incidents.opened", Counter, "{incident}", "incidents opened by a press";
    INCIDENTS_CLOSED = "centinela.incidents.closed", Counter, "{incident}", "incidents closed, by kind and resolution (prank, handled, false_alarm, cancelled)";
    ASSIGNMENTS = "centinela.assignments", Counter, "{assignment}", "brigades assigned to incidents (attribute by: dispatcher or operator)";
    REASSIGNMENTS = "centinela.reassignments", Counter, "{assignment}", "brigades released because their terminal did not acknowledge in time";
    LEADER_CHANGES = "centinela.leader.changes", Counter, "{change}", "times this node became the dispatcher leader";
    LEASE_LOSSES = "centinela.lease.losses", Counter, "{loss}", "times this node lost its session lease";
    QUEUE_LENGTH = "centinela.dispatch.queue", Gauge, "{incident}", "open incidents waiting for a brigade (reported by the leader)";
    BRIGADES_AVAILABLE = "centinela.brigades.available", Gauge, "{brigade}", "available brigades by mode (reported by the leader)";
    BRIGADES = "centinela.brigades", Gauge, "{brigade}", "brigades by status (reported by the leader)";
    INCIDENTS_UNACKNOWLEDGED_OLDEST = "centinela.incidents.unacknowledged.oldest", Gauge, "s", "age of the oldest open incident no operator has acknowledged, from its first press (reported by the leader; 0 when there is none)";
    INCIDENTS_UNASSIGNED_OLDEST = "centinela.incidents.unassigned.oldest", Gauge, "s", "age of the oldest open incident with no brigade, from its first press (reported by the leader; 0 when there is none)";
    BUTTONS_OFFLINE = "centinela.buttons.offline", Gauge, "{button}", "buttons this node owns that are offline";
    CAMERAS_OFFLINE = "centinela.cameras.offline", Gauge, "{camera}", "cameras this node owns whose device is not connected";
    ENTITIES_RESIDENT = "centinela.entities.resident", Gauge, "{entity}", "entities this node owns whose actor runs now, by kind (button, camera, brigade)";
    ENTITIES_PASSIVATED = "centinela.entities.passivated", Gauge, "{entity}", "entities this node owns with no actor now (passivated: started again by their next message), by kind";
    NODE_READY = "centinela.node.ready", Gauge, "1", "1 while this node is ready (joined, its share running, its lease live)";
    MEMBERS = "centinela.cluster.members", Gauge, "{node}", "live cluster members, as this node sees them";
    LEADER = "centinela.leader", Gauge, "1", "1 while this node leads the dispatcher election";
    ARCHIVE_BACKLOG = "centinela.archive.backlog", Gauge, "{incident}", "closed incidents still in the store and not yet in the archive (reported by the leader; grows while the archive is down)";
    PRESS_TO_DURABLE = "centinela.press.to_durable", Histogram, "ms", "press received to incident durable (the press's acknowledgement)";
    PRESS_TO_OPERATOR_ACK = "centinela.press.to_operator_ack", Histogram, "ms", "first press to an operator acknowledging the incident (the call answered)";
    PRESS_TO_ASSIGNED = "centinela.press.to_assigned", Histogram, "ms", "first press to first brigade assigned";
    PRESS_TO_BRIGADE_ACK = "centinela.press.to_brigade_ack", Histogram, "ms", "first press to a brigade's terminal acknowledging";
    PRESS_TO_ON_SCENE = "centinela.press.to_on_scene", Histogram, "ms", "first press to a brigade on scene";
    STORE_TXN = "centinela.store.txn.duration", Histogram, "ms", "one store transaction (read-modify-compare-and-swap commit)";
    STORE_TXN_ERRORS = "centinela.store.txn.errors", Counter, "{error}", "store transactions (reads and commits) that failed: the store unreachable, too slow, or refusing (attribute retryable)";
    GRPC_SERVER = "centinela.grpc.server.duration", Histogram, "ms", "one gRPC call served (until its response headers), by method";
    CONNECTIONS_REFUSED = "centinela.connections.refused", Counter, "{connection}", "connections closed at once because their listener was at its cap (attribute listener: grpc or http)";
    STREAMS_REFUSED = "centinela.streams.refused", Counter, "{stream}", "long-lived streams refused at a cap (attribute stream: watch, health_watch, console_events)";
    VIDEO_UPSTREAMS = "centinela.video.upstreams", Gauge, "{camera}", "cameras whose live video this node pulls now (one RTSP session each, open or retrying, lingering included)";
    VIDEO_VIEWERS = "centinela.video.viewers", Gauge, "{viewer}", "live video views open on this node (incident panels and wall tiles)";
    VIDEO_SESSIONS = "centinela.video.sessions", Counter, "{session}", "RTSP sessions opened to cameras (first viewer, or a reconnect)";
    VIDEO_FRAMES = "centinela.video.frames", Counter, "{frame}", "H.264 access units relayed to viewers (one per viewer)";
    VIDEO_BYTES = "centinela.video.bytes", Counter, "By", "bytes of access units relayed to viewers (one count per viewer)";
    VIDEO_FRAMES_SKIPPED = "centinela.video.frames.skipped", Counter, "{frame}", "access units a viewer skipped (attribute reason: behind, for a viewer that fell out of the broadcast; key_frame, waiting for the next key frame)";
    VIDEO_RECONNECTS = "centinela.video.reconnects", Counter, "{attempt}", "camera sessions that failed, stalled or did not open, each retried after back-off (refusals apart)";
    VIDEO_REFUSED = "centinela.video.refused", Counter, "{attempt}", "camera sessions refused by the camera (RTSP 401/403: the node's account), retried after back-off";
    CALL_RECORDINGS = "centinela.intercom.recordings", Counter, "{recording}", "call recordings closed (--record-calls), attribute complete: true, or false when audio is missing (a write failure, a full queue, a file that could not be created; the audit trail says which)";
}

/// Millisecond buckets for every latency histogram: sub-millisecond to the failover range,
/// and the human budgets the service-level objectives count against: 15 s (a call answered)
/// and 64 s (a brigade on its way), docs/observability.md, "Service-level objectives".
pub const LATENCY_BUCKETS_MS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0, 15000.0, 30000.0, 60000.0, 64000.0, 300000.0, 900000.0,
];

/// The instruments, created from the global meter on first use (after [`crate::init`]).
pub struct Instruments {
    pub presses: Counter<u64>,
    pub incidents_opened: Counter<u64>,
    pub incidents_closed: Counter<u64>,
    pub assignments: Counter<u64>,
    pub reassignments: Counter<u64>,
    pub leader_changes: Counter<u64>,
    pub lease_losses: Counter<u64>,
    pub store_txn_errors: Counter<u64>,
    pub connections_refused: Counter<u64>,
    pub streams_refused: Counter<u64>,
    pub video_sessions: Counter<u64>,
    pub video_frames: Counter<u64>,
    pub video_bytes: Counter<u64>,
    pub video_frames_skipped: Counter<u64>,
    pub video_reconnects: Counter<u64>,
    pub video_refused: Counter<u64>,
    pub call_recordings: Counter<u64>,
    pub press_to_durable: Histogram<f64>,
    pub press_to_operator_ack: Histogram<f64>,
    pub press_to_assigned: Histogram<f64>,
    pub press_to_brigade_ack: Histogram<f64>,
    pub press_to_on_scene: Histogram<f64>,
    pub store_txn: Histogram<f64>,
    pub grpc_server: Histogram<f64>,
}

fn counter(metric: Metric) -> Counter<u64> {
    global::meter("centinela")
        .u64_counter(metric.name)
        .with_unit(metric.unit)
        .with_description(metric.description)
        .build()
}

fn histogram(metric: Metric) -> Histogram<f64> {
    global::meter("centinela")
        .f64_histogram(metric.name)
        .with_unit(metric.unit)
        .with_description(metric.description)
        .with_boundaries(LATENCY_BUCKETS_MS.to_vec())
        .build()
}

/// The process's instruments.
pub fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| Instruments {
        presses: counter(PRESSES),
        incidents_opened: counter(INCIDENTS_OPENED),
        incidents_closed: counter(INCIDENTS_CLOSED),
        assignments: counter(ASSIGNMENTS),
        reassignments: counter(REASSIGNMENTS),
        leader_changes: counter(LEADER_CHANGES),
        lease_losses: counter(LEASE_LOSSES),
        store_txn_errors: counter(STORE_TXN_ERRORS),
        connections_refused: counter(CONNECTIONS_REFUSED),
        streams_refused: counter(STREAMS_REFUSED),
        video_sessions: counter(VIDEO_SESSIONS),
        video_frames: counter(VIDEO_FRAMES),
        video_bytes: counter(VIDEO_BYTES),
        video_frames_skipped: counter(VIDEO_FRAMES_SKIPPED),
        video_reconnects: counter(VIDEO_RECONNECTS),
        video_refused: counter(VIDEO_REFUSED),
        call_recordings: counter(CALL_RECORDINGS),
        press_to_durable: histogram(PRESS_TO_DURABLE),
        press_to_operator_ack: histogram(PRESS_TO_OPERATOR_ACK),
        press_to_assigned: histogram(PRESS_TO_ASSIGNED),
        press_to_brigade_ack: histogram(PRESS_TO_BRIGADE_ACK),
        press_to_on_scene: histogram(PRESS_TO_ON_SCENE),
        store_txn: histogram(STORE_TXN),
        grpc_server: histogram(GRPC_SERVER),
    })
}

/// The node-local values behind the gauges.
pub struct Gauges {
    pub queue_length: AtomicI64,
    /// Available brigades on foot, on motorcycles, in cars.
    pub available: [AtomicI64; 3],
    /// Brigades by status, in the order of [`BRIGADE_STATUSES`].
    pub brigades: [AtomicI64; 6],
    /// Seconds since the first press of the oldest open incident no operator acknowledged.
    pub unacknowledged_oldest_s: AtomicI64,
    /// Seconds since the first press of the oldest open incident with no brigade.
    pub unassigned_oldest_s: AtomicI64,
    pub buttons_offline: AtomicI64,
    pub cameras_offline: AtomicI64,
    /// Entities with a running actor, in the order of [`ENTITY_KINDS`].
    pub entities_resident: [AtomicI64; 3],
    /// Entities owned with no actor (passivated), in the order of [`ENTITY_KINDS`].
    pub entities_passivated: [AtomicI64; 3],
    pub members: AtomicI64,
    pub leader: AtomicI64,
    pub ready: AtomicI64,
    /// Cameras whose live video this node pulls (`centinela-video`'s feeds).
    pub video_upstreams: AtomicI64,
    /// Live video views open on this node.
    pub video_viewers: AtomicI64,
    /// Closed incidents in the store the archive does not hold yet.
    pub archive_backlog: AtomicI64,
}

pub static GAUGES: Gauges = Gauges {
    queue_length: AtomicI64::new(0),
    available: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
    brigades: [
        AtomicI64::new(0),
        AtomicI64::new(0),
        AtomicI64::new(0),
        AtomicI64::new(0),
        AtomicI64::new(0),
        AtomicI64::new(0),
    ],
    unacknowledged_oldest_s: AtomicI64::new(0),
    unassigned_oldest_s: AtomicI64::new(0),
    buttons_offline: AtomicI64::new(0),
    entities_resident: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
    entities_passivated: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
    cameras_offline: AtomicI64::new(0),
    members: AtomicI64::new(0),
    leader: AtomicI64::new(0),
    ready: AtomicI64::new(0),
    video_upstreams: AtomicI64::new(0),
    video_viewers: AtomicI64::new(0),
    archive_backlog: AtomicI64::new(0),
};

/// The modes, in the order of [`Gauges::available`].
pub const MODES: [&str; 3] = ["foot", "motorcycle", "car"];

/// The brigade statuses, in the order of [`Gauges::brigades`] (the CLI's JSON names).
pub const BRIGADE_STATUSES: [&str; 6] = [
    "available",
    "dispatched",
    "en_route",
    "on_scene",
    "out_of_service",
    "offline",
];

/// The entity kinds of [`Gauges::entities_resident`] and [`Gauges::entities_passivated`].
pub const ENTITY_KINDS: [&str; 3] = ["button", "camera", "brigade"];

/// Registers the gauges' callbacks on the global meter (once; [`crate::init`] does it). A
/// test that installs a meter provider of its own calls it after.
pub fn register_gauges() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        let meter = global::meter("centinela");
        let single = |metric: Metric, value: &'static AtomicI64| {
            meter
                .i64_observable_gauge(metric.name)
                .with_unit(metric.unit)
                .with_description(metric.description)
                .with_callback(move |observer| observer.observe(value.load(Ordering::Relaxed), &[]))
                .build();
        };
        single(QUEUE_LENGTH, &GAUGES.queue_length);
        single(
            INCIDENTS_UNACKNOWLEDGED_OLDEST,
            &GAUGES.unacknowledged_oldest_s,
        );
        single(INCIDENTS_UNASSIGNED_OLDEST, &GAUGES.unassigned_oldest_s);
        single(BUTTONS_OFFLINE, &GAUGES.buttons_offline);
        single(CAMERAS_OFFLINE, &GAUGES.cameras_offline);
        single(MEMBERS, &GAUGES.members);
        single(ARCHIVE_BACKLOG, &GAUGES.archive_backlog);
        single(LEADER, &GAUGES.leader);
        single(NODE_READY, &GAUGES.ready);
        single(VIDEO_UPSTREAMS, &GAUGES.video_upstreams);
        single(VIDEO_VIEWERS, &GAUGES.video_viewers);
        meter
            .i64_observable_gauge(BRIGADES.name)
            .with_unit(BRIGADES.unit)
            .with_description(BRIGADES.description)
            .with_callback(|observer| {
                for (status, value) in BRIGADE_STATUSES.iter().zip(&GAUGES.brigades) {
                    observer.observe(
                        value.load(Ordering::Relaxed),
                        &[KeyValue::new("status", *status)],
                    );
                }
            })
            .build();
        for (metric, values) in [
            (ENTITIES_RESIDENT, &GAUGES.entities_resident),
            (ENTITIES_PASSIVATED, &GAUGES.entities_passivated),
        ] {
            meter
                .i64_observable_gauge(metric.name)
                .with_unit(metric.unit)
                .with_description(metric.description)
                .with_callback(move |observer| {
                    for (kind, value) in ENTITY_KINDS.iter().zip(values) {
                        observer.observe(
                            value.load(Ordering::Relaxed),
                            &[KeyValue::new("kind", *kind)],
                        );
                    }
                })
                .build();
        }
        meter
            .i64_observable_gauge(BRIGADES_AVAILABLE.name)
            .with_unit(BRIGADES_AVAILABLE.unit)
            .with_description(BRIGADES_AVAILABLE.description)
            .with_callback(|observer| {
                for (mode, value) in MODES.iter().zip(&GAUGES.available) {
                    observer.observe(
                        value.load(Ordering::Relaxed),
                        &[KeyValue::new("mode", *mode)],
                    );
                }
            })
            .build();
    });
}

/// The Prometheus series names a metric produces (with the Collector settings above).
pub fn prometheus_names(metric: &Metric) -> Vec<String> {
    let base = metric.name.replace('.', "_");
    match metric.kind {
        Kind::Histogram => vec![
            format!("{base}_bucket"),
            format!("{base}_sum"),
            format!("{base}_count"),
        ],
        Kind::Counter | Kind::Gauge => vec![base],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_namespaced() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(names.iter().all(|n| n.starts_with("centinela.")));
        assert_eq!(
            prometheus_names(&PRESS_TO_ASSIGNED)[0],
            "centinela_press_to_assigned_bucket"
        );
    }
}
