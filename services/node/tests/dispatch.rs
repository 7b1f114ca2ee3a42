//! Black-box tests of dispatch over real gRPC sockets against an in-process node.
//!
//! Each test starts a node on `127.0.0.1:0` with a small scenario of its own, then plays the
//! devices itself: it presses buttons through `ButtonGateway`, acts as the brigade terminals
//! through `UnitGateway` (keeping their assignment channels open, acknowledging or deliberately
//! not), and acts as the operator through `Operator`, observing state with `GetIncident`,
//! `ListUnits` and `Recommend`.
//!
//! Nothing here asserts on timing: every wait polls a condition under a generous deadline, so a
//! busy machine makes a test slower, never red. The ack-timeout test waits for the real
//! `ACK_TIMEOUT` (15 s).

use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use centinela_core::brigade::Mode;
use centinela_core::dispatch::StraightLine;
use centinela_core::geo::{EARTH_RADIUS_M, Position};
use centinela_core::scenario::Scenario;
use centinela_proto::v1;
use centinela_proto::v1::assignment_event::Event;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::unit_gateway_client::UnitGatewayClient;
use centinela_testkit::node::{NodeBuilder, TestNode, describe_incident};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
// Every wait gives up after `DEADLINE` (60 s): generous on purpose, the slowest condition (an
// ack timeout) needs 15 s of real time, and a loaded CI machine may add a lot to that.
use centinela_testkit::wait::{self, DEADLINE};

const OPERATOR: &str = "op-test";

// ---- geometry ---------------------------------------------------------------------------

/// Plaza Mayor, Lima: every scenario is laid out around it.
const LAT0: f64 = -12.0464;
const LON0: f64 = -77.0300;

/// Degrees of latitude spanning `metres` along a meridian (on the sphere the node uses).
fn lat_deg(metres: f64) -> f64 {
    metres / (EARTH_RADIUS_M * std::f64::consts::PI / 180.0)
}

/// The node's travel-time estimate, in seconds, from `(lat, lon)` to `(to_lat, to_lon)`.
fn eta_s(from: (f64, f64), to: (f64, f64), mode: Mode) -> f64 {
    let from = Position::new(from.0, from.1).unwrap();
    let to = Position::new(to.0, to.1).unwrap();
    from.distance_m(&to) * StraightLine::LIMA_ROAD_FACTOR / mode.speed_mps()
}

// ---- scenarios --------------------------------------------------------------------------

/// A button with its camera at `(lat, lon)`.
fn button(id: &str, lat: f64, lon: f64) -> Button {
    Button::new(id, lat, lon)
}

/// A brigade (`mode`: foot, motorcycle, car) with `capabilities` at `(lat, lon)`.
fn unit(id: &str, mode: &str, capabilities: &[&str], lat: f64, lon: f64) -> Brigade {
    Brigade::new(id, mode, lat, lon).capabilities(capabilities)
}

/// A scenario in the deployment TOML format, so the same parser as production reads it.
fn scenario(name: &str, buttons: &[Button], units: &[Brigade]) -> Scenario {
    ScenarioBuilder::new(name)
        .buttons(buttons.iter().cloned())
        .brigades(units.iter().cloned())
        .build()
}

// ---- the harness ------------------------------------------------------------------------

/// A node and gRPC clients connected to it over a real socket.
struct Harness {
    node: TestNode,
    units: UnitGatewayClient<Channel>,
    operator: OperatorClient<Channel>,
    presses: u32,
}

impl Harness {
    async fn start(scenario: Scenario) -> Harness {
        let node = NodeBuilder::new("node-test")
            .scenario(scenario)
            .start()
            .await;
        node.wait_for_dispatcher().await;
        Harness {
            units: node.units(),
            operator: node.operator(),
            node,
            presses: 0,
        }
    }

    /// The terminals hang up first (a node's graceful stop waits for open device streams),
    /// then the node stops.
    async fn shutdown(self, terminals: impl IntoIterator<Item = Terminal>) {
        drop(terminals.into_iter().collect::<Vec<_>>());
        drop((self.units, self.operator));
        self.node.shutdown().await;
    }

    /// Presses `button` with a fresh press id; returns the incident id.
    async fn press(&mut self, button: &str) -> String {
        self.presses += 1;
        let press_id = format!("press-{}", self.presses);
        let reply = self.node.press(button, &press_id).await;
        assert!(
            !reply.duplicate,
            "a first press of {button} opens a new incident"
        );
        reply.incident_id
    }

    /// Opens `unit`'s assignment channel, as its terminal does when it starts.
    async fn terminal(&self, unit: &str) -> Terminal {
        let events = self
            .units
            .clone()
            .assignments(v1::UnitSubscribe {
                unit_id: unit.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("terminal {unit} attaches: {e}"))
            .into_inner();
        Terminal {
            unit: unit.into(),
            units: self.units.clone(),
            events,
        }
    }

    async fn unit(&self, id: &str) -> v1::Unit {
        let units = self
            .operator
            .clone()
            .list_units(v1::ListUnitsRequest {})
            .await
            .expect("list units")
            .into_inner()
            .units;
        units
            .into_iter()
            .find(|u| u.id == id)
            .unwrap_or_else(|| panic!("unit {id} is listed"))
    }

    /// Polls the unit until `condition` holds; returns it.
    async fn wait_unit(
        &self,
        id: &str,
        what: &str,
        condition: impl Fn(&v1::Unit) -> bool,
    ) -> v1::Unit {
        wait::until(format!("unit {id}: {what}"), || async {
            let unit = self.unit(id).await;
            if condition(&unit) {
                Ok(unit)
            } else {
                Err(describe_unit(&unit))
            }
        })
        .await
    }

    async fn wait_available(&self, id: &str) -> v1::Unit {
        let unit = self
            .wait_unit(id, "available", |u| {
                u.status == v1::UnitStatus::Available as i32
            })
            .await;
        assert_eq!(unit.incident, None, "an available unit holds no incident");
        unit
    }

    async fn recommend(&self, incident: &str) -> Vec<v1::Candidate> {
        self.operator
            .clone()
            .recommend(v1::RecommendRequest {
                incident_id: incident.into(),
                limit: 10,
            })
            .await
            .unwrap_or_else(|e| panic!("recommend for {incident}: {e}"))
            .into_inner()
            .candidates
    }

    async fn classify(
        &self,
        incident: &str,
        kind: v1::IncidentKind,
        priority: v1::Priority,
    ) -> v1::Incident {
        let classified = self
            .operator
            .clone()
            .classify(v1::ClassifyRequest {
                incident_id: incident.into(),
                operator_id: OPERATOR.into(),
                kind: kind as i32,
                priority: priority as i32,
                caller: None,
            })
            .await
            .unwrap_or_else(|e| panic!("classify {incident}: {e}"))
            .into_inner();
        assert_eq!(classified.kind, kind as i32);
        classified
    }

    /// The swap an incident recommends: `unit` instead of `out`.
    async fn swap(&self, incident: &str, out: &str, unit: &str) -> Result<v1::Incident, Status> {
        self.operator
            .clone()
            .dispatch(v1::DispatchRequest {
                incident_id: incident.into(),
                operator_id: OPERATOR.into(),
                unit_id: Some(unit.into()),
                replace: false,
                swap_out: Some(out.into()),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn dispatch(
        &self,
        incident: &str,
        unit: Option<&str>,
        replace: bool,
    ) -> Result<v1::Incident, Status> {
        self.operator
            .clone()
            .dispatch(v1::DispatchRequest {
                incident_id: incident.into(),
                operator_id: OPERATOR.into(),
                unit_id: unit.map(str::to_string),
                replace,
                swap_out: None,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn resolve(&self, incident: &str) -> v1::Incident {
        self.operator
            .clone()
            .resolve(v1::ResolveRequest {
                incident_id: incident.into(),
                operator_id: OPERATOR.into(),
                resolution: v1::Resolution::Handled as i32,
            })
            .await
            .unwrap_or_else(|e| panic!("resolve {incident}: {e}"))
            .into_inner()
    }
}

/// A brigade terminal: the open assignment channel, and the calls a terminal makes.
struct Terminal {
    unit: String,
    units: UnitGatewayClient<Channel>,
    events: Streaming<v1::AssignmentEvent>,
}

impl Terminal {
    async fn next_event(&mut self) -> Event {
        let message = tokio::time::timeout(DEADLINE, self.events.message())
            .await
            .unwrap_or_else(|_| panic!("terminal {}: no event within {DEADLINE:?}", self.unit))
            .unwrap_or_else(|e| panic!("terminal {}: channel failed: {e}", self.unit))
            .unwrap_or_else(|| panic!("terminal {}: channel closed by the node", self.unit));
        message
            .event
            .unwrap_or_else(|| panic!("terminal {}: event without content", self.unit))
    }

    /// The next event must be an assignment to `incident`.
    async fn expect_assignment(&mut self, incident: &str) -> v1::Assignment {
        match self.next_event().await {
            Event::Assignment(a) if a.incident_id == incident => a,
            other => panic!(
                "terminal {}: expected an assignment to {incident}, got {other:?}",
                self.unit
            ),
        }
    }

    /// The next event must be a cancellation of `incident`.
    async fn expect_cancellation(&mut self, incident: &str) -> v1::Cancellation {
        match self.next_event().await {
            Event::Cancellation(c) if c.incident_id == incident => c,
            other => panic!(
                "terminal {}: expected the cancellation of {incident}, got {other:?}",
                self.unit
            ),
        }
    }

    /// The next two events must be the cancellation of `closed` and the assignment to `next`,
    /// in either order. When an operator closes an incident, the node tells the terminal after
    /// committing the release, while the dispatcher reacts to the same commit by handing the
    /// unit its next job; both events name their incident, so a terminal (like the device
    /// simulator) handles them in either order.
    async fn expect_cancellation_and_assignment(
        &mut self,
        closed: &str,
        next: &str,
    ) -> v1::Assignment {
        let (mut cancelled, mut assigned) = (false, None);
        for _ in 0..2 {
            match self.next_event().await {
                Event::Cancellation(c) if c.incident_id == closed && !cancelled => cancelled = true,
                Event::Assignment(a) if a.incident_id == next && assigned.is_none() => {
                    assigned = Some(a)
                }
                other => panic!(
                    "terminal {}: expected the cancellation of {closed} and the assignment to \
                     {next}, got {other:?}",
                    self.unit
                ),
            }
        }
        assigned.expect("two events, one of them the assignment")
    }

    async fn acknowledge(&self, incident: &str) {
        self.units
            .clone()
            .acknowledge(v1::AssignmentAck {
                unit_id: self.unit.clone(),
                incident_id: incident.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("terminal {} acknowledges {incident}: {e}", self.unit));
    }

    async fn report(&self, status: v1::UnitStatus, incident: Option<&str>) -> v1::Unit {
        self.units
            .clone()
            .update_status(v1::UnitStatusUpdate {
                unit_id: self.unit.clone(),
                status: status as i32,
                incident_id: incident.map(str::to_string),
                outcome: None,
                note: None,
            })
            .await
            .unwrap_or_else(|e| panic!("terminal {} reports {status:?}: {e}", self.unit))
            .into_inner()
            .unit
            .expect("the reply carries the unit")
    }
}

fn describe_unit(u: &v1::Unit) -> String {
    format!(
        "status={:?} incident={:?} acked={}",
        v1::UnitStatus::try_from(u.status),
        u.incident,
        u.acked
    )
}

fn ids(candidates: &[v1::Candidate]) -> Vec<&str> {
    candidates.iter().map(|c| c.unit_id.as_str()).collect()
}

fn assert_at(what: &str, position: Option<&v1::LatLon>, lat: f64, lon: f64) {
    let position = position.unwrap_or_else(|| panic!("{what}: no position"));
    assert!(
        (position.lat - lat).abs() < 1e-9 && (position.lon - lon).abs() < 1e-9,
        "{what}: at ({}, {}), expected ({lat}, {lon})",
        position.lat,
        position.lon
    );
}

// ---- 1. the fastest eligible brigade ----------------------------------------------------

/// A press assigns the brigade with the smallest estimated travel time, not the nearest one
/// nor the fastest vehicle: a foot patrol 100 m away beats a car 3 km away, and a car 1 km away
/// beats a foot patrol 900 m away (1.4 m/s on foot against 6.9 m/s by car).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_assigns_the_brigade_with_the_smallest_eta() {
    // Two neighbourhoods 20 km apart, so each press only has its own neighbourhood's units in
    // contention (the other's are hours away).
    let a = (LAT0, LON0);
    let b = (LAT0 - lat_deg(20_000.0), LON0);
    let foot_a = (a.0 + lat_deg(100.0), a.1);
    let car_a = (a.0 + lat_deg(3_000.0), a.1);
    let car_b = (b.0 - lat_deg(1_000.0), b.1);
    let foot_b = (b.0 + lat_deg(900.0), b.1);
    let mut h = Harness::start(scenario(
        "eta",
        &[button("BA", a.0, a.1), button("BB", b.0, b.1)],
        &[
            unit("A-FOOT", "foot", &[], foot_a.0, foot_a.1),
            unit("A-CAR", "car", &[], car_a.0, car_a.1),
            unit("B-CAR", "car", &[], car_b.0, car_b.1),
            unit("B-FOOT", "foot", &[], foot_b.0, foot_b.1),
        ],
    ))
    .await;
    let mut t_foot_a = h.terminal("A-FOOT").await;
    let t_car_a = h.terminal("A-CAR").await;
    let mut t_car_b = h.terminal("B-CAR").await;
    let t_foot_b = h.terminal("B-FOOT").await;

    // Foot 100 m (about 93 s) against car 3 km (about 565 s).
    let ia = h.press("BA").await;
    let assignment = t_foot_a.expect_assignment(&ia).await;
    assert_eq!(assignment.button, "BA");
    assert_at(
        "assignment to A-FOOT",
        assignment.position.as_ref(),
        a.0,
        a.1,
    );
    let expected = eta_s(foot_a, a, Mode::Foot);
    assert!(
        (assignment.eta_s - expected).abs() < 0.5,
        "A-FOOT's eta {} s, expected about {expected} s",
        assignment.eta_s
    );
    t_foot_a.acknowledge(&ia).await;
    let incident = h.node.incident(&ia).await;
    assert_eq!(incident.units, ["A-FOOT"]);
    assert_eq!(incident.state, v1::IncidentState::Dispatched as i32);
    assert_at("incident BA", incident.position.as_ref(), a.0, a.1);
    let foot = h.unit("A-FOOT").await;
    assert_eq!(foot.status, v1::UnitStatus::Dispatched as i32);
    assert_eq!(foot.incident.as_deref(), Some(ia.as_str()));
    assert!(foot.acked);

    // Car 1 km (about 188 s) against foot 900 m (about 836 s).
    let ib = h.press("BB").await;
    let assignment = t_car_b.expect_assignment(&ib).await;
    assert_eq!(assignment.button, "BB");
    assert_at(
        "assignment to B-CAR",
        assignment.position.as_ref(),
        b.0,
        b.1,
    );
    let expected = eta_s(car_b, b, Mode::Car);
    assert!(
        (assignment.eta_s - expected).abs() < 0.5,
        "B-CAR's eta {} s, expected about {expected} s",
        assignment.eta_s
    );
    t_car_b.acknowledge(&ib).await;
    assert_eq!(h.node.incident(&ib).await.units, ["B-CAR"]);

    // The runners-up, best first, with the node's estimates; the busy units are not offered.
    let candidates = h.recommend(&ib).await;
    assert_eq!(ids(&candidates), ["B-FOOT", "A-CAR"]);
    assert!(
        (candidates[0].eta_s - eta_s(foot_b, b, Mode::Foot)).abs() < 0.5,
        "{candidates:?}"
    );
    assert!(candidates[0].eta_s < candidates[1].eta_s);
    for idle in ["A-CAR", "B-FOOT"] {
        let u = h.unit(idle).await;
        assert_eq!(
            u.status,
            v1::UnitStatus::Available as i32,
            "{idle} stays put"
        );
    }
    h.shutdown([t_foot_a, t_car_a, t_car_b, t_foot_b]).await;
}

// ---- 2. policy: robbery prefers non-lethal arms -----------------------------------------

/// Once an incident is classified as a robbery, brigades with non-lethal arms rank ahead of
/// nearer unarmed ones, both in `Recommend` and when the operator asks for the best unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robbery_prefers_non_lethal_armed_brigades() {
    let r = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "robbery",
        &[button("BR", r.0, r.1)],
        &[
            // Right next to the button: takes the press while the incident is unclassified.
            unit("FIRST", "foot", &[], r.0 - lat_deg(10.0), r.1),
            unit("NEAR", "foot", &[], r.0 + lat_deg(100.0), r.1),
            unit(
                "ARMED",
                "car",
                &["non_lethal_armed"],
                r.0 + lat_deg(3_000.0),
                r.1,
            ),
        ],
    ))
    .await;
    let mut t_first = h.terminal("FIRST").await;
    let t_near = h.terminal("NEAR").await;
    let mut t_armed = h.terminal("ARMED").await;

    let incident = h.press("BR").await;
    t_first.expect_assignment(&incident).await;
    t_first.acknowledge(&incident).await;

    // Unclassified: nothing is preferred, so travel time decides.
    let candidates = h.recommend(&incident).await;
    assert_eq!(ids(&candidates), ["NEAR", "ARMED"]);
    assert!(candidates.iter().all(|c| !c.preferred), "{candidates:?}");

    h.classify(
        &incident,
        v1::IncidentKind::Robbery,
        v1::Priority::Unspecified,
    )
    .await;
    assert_eq!(
        h.node.incident(&incident).await.priority,
        v1::Priority::High as i32,
        "a robbery's default priority"
    );
    // The dispatcher learns of the classification from the store; wait until it ranks by it.
    let candidates = wait::until("robbery ranking", || async {
        let candidates = h.recommend(&incident).await;
        if candidates.first().is_some_and(|c| c.preferred) {
            Ok(candidates)
        } else {
            Err(format!("{candidates:?}"))
        }
    })
    .await;
    assert_eq!(ids(&candidates), ["ARMED", "NEAR"]);
    assert!(candidates[0].preferred && !candidates[1].preferred);
    assert!(
        candidates[0].eta_s > candidates[1].eta_s,
        "the armed car is preferred although slower: {candidates:?}"
    );

    // "Send the best unit instead": the armed car, not the nearer foot patrol.
    let updated = h
        .dispatch(&incident, None, true)
        .await
        .expect("dispatch the best unit");
    assert_eq!(updated.units, ["ARMED"]);
    let assignment = t_armed.expect_assignment(&incident).await;
    assert_eq!(assignment.kind, v1::IncidentKind::Robbery as i32);
    assert_eq!(assignment.priority, v1::Priority::High as i32);
    t_armed.acknowledge(&incident).await;
    t_first.expect_cancellation(&incident).await;
    h.wait_available("FIRST").await;
    assert_eq!(
        h.unit("NEAR").await.status,
        v1::UnitStatus::Available as i32
    );

    // Closing the incident frees the armed car; NEAR was never involved.
    h.resolve(&incident).await;
    t_armed.expect_cancellation(&incident).await;
    h.wait_available("ARMED").await;
    h.shutdown([t_first, t_near, t_armed]).await;
}

/// A robbery that waits in the queue is classified before any unit is free; when an armed car
/// and a nearer unarmed foot patrol free up together (the incident they were on is closed), the
/// dispatcher sends the armed car.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_robbery_gets_the_armed_brigade_when_several_free_up() {
    let r = (LAT0, LON0);
    let x = (LAT0 - lat_deg(500.0), LON0);
    let mut h = Harness::start(scenario(
        "queued-robbery",
        &[button("BR", r.0, r.1), button("BX", x.0, x.1)],
        &[
            unit("NEAR", "foot", &[], r.0 + lat_deg(100.0), r.1),
            unit(
                "ARMED",
                "car",
                &["non_lethal_armed"],
                r.0 + lat_deg(3_000.0),
                r.1,
            ),
        ],
    ))
    .await;
    let mut t_near = h.terminal("NEAR").await;
    let mut t_armed = h.terminal("ARMED").await;

    // Both units busy on another incident: the nearer foot patrol first, the car added.
    let other = h.press("BX").await;
    t_near.expect_assignment(&other).await;
    t_near.acknowledge(&other).await;
    let with_both = h
        .dispatch(&other, Some("ARMED"), false)
        .await
        .expect("add the armed car");
    assert_eq!(with_both.units, ["NEAR", "ARMED"]);
    t_armed.expect_assignment(&other).await;
    t_armed.acknowledge(&other).await;

    // The robbery has to wait.
    let robbery = h.press("BR").await;
    let queued = h.node.incident(&robbery).await;
    assert!(queued.units.is_empty(), "{}", describe_incident(&queued));
    h.classify(
        &robbery,
        v1::IncidentKind::Robbery,
        v1::Priority::Unspecified,
    )
    .await;

    // Both units free up in one step.
    h.resolve(&other).await;
    let assigned = h
        .node
        .wait_incident(&robbery, "a unit assigned", |i| !i.units.is_empty())
        .await;
    assert_eq!(
        assigned.units,
        ["ARMED"],
        "{}",
        describe_incident(&assigned)
    );
    t_near.expect_cancellation(&other).await;
    t_armed
        .expect_cancellation_and_assignment(&other, &robbery)
        .await;
    t_armed.acknowledge(&robbery).await;
    h.wait_available("NEAR").await;
    h.shutdown([t_near, t_armed]).await;
}

// ---- 3. ack timeout ---------------------------------------------------------------------

/// A terminal that never acknowledges loses the assignment after `ACK_TIMEOUT`: its brigade is
/// released (available again, told by a cancellation), recorded as declined, and the next
/// candidate is assigned and told. Waits the real 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_assignment_goes_to_the_next_candidate() {
    let p = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "ack-timeout",
        &[button("BT", p.0, p.1)],
        &[
            unit("SILENT", "foot", &[], p.0 + lat_deg(100.0), p.1),
            unit("NEXT", "foot", &[], p.0 + lat_deg(300.0), p.1),
        ],
    ))
    .await;
    let mut t_silent = h.terminal("SILENT").await;
    let mut t_next = h.terminal("NEXT").await;

    let incident = h.press("BT").await;
    t_silent.expect_assignment(&incident).await;
    // SILENT's terminal stays connected but never acknowledges.
    let unacked = h.unit("SILENT").await;
    assert_eq!(unacked.status, v1::UnitStatus::Dispatched as i32);
    assert!(!unacked.acked);

    let reassigned = h
        .node
        .wait_incident(&incident, "reassigned after the ack timeout", |i| {
            i.units == ["NEXT"]
        })
        .await;
    assert_eq!(reassigned.declined, ["SILENT"]);
    assert!(
        reassigned
            .audit
            .iter()
            .any(|e| e.action == "ack_timeout" && e.detail == "SILENT"),
        "the audit records the timeout: {:?}",
        reassigned.audit
    );
    assert_eq!(reassigned.state, v1::IncidentState::Dispatched as i32);
    let cancellation = t_silent.expect_cancellation(&incident).await;
    assert!(
        cancellation.reason.contains("not acknowledged"),
        "{cancellation:?}"
    );
    h.wait_available("SILENT").await;
    let assignment = t_next.expect_assignment(&incident).await;
    assert_at("assignment to NEXT", assignment.position.as_ref(), p.0, p.1);
    t_next.acknowledge(&incident).await;
    let next = h.unit("NEXT").await;
    assert_eq!(next.incident.as_deref(), Some(incident.as_str()));
    assert!(next.acked);

    // A late acknowledgement from the released terminal is refused, not silently accepted.
    let late = h
        .units
        .clone()
        .acknowledge(v1::AssignmentAck {
            unit_id: "SILENT".into(),
            incident_id: incident.clone(),
        })
        .await
        .expect_err("a released unit cannot acknowledge");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    h.shutdown([t_silent, t_next]).await;
}

// ---- 4. the queue -----------------------------------------------------------------------

/// With the only brigade busy, later incidents wait; each time it frees up it goes to the most
/// urgent waiting incident, whatever the order of the presses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_incidents_get_the_freed_brigade_by_priority() {
    let mut h = Harness::start(scenario(
        "queue",
        &[
            button("B1", LAT0, LON0),
            button("B2", LAT0 + lat_deg(400.0), LON0),
            button("B3", LAT0 - lat_deg(400.0), LON0),
        ],
        &[unit("ONLY", "car", &[], LAT0 + lat_deg(50.0), LON0)],
    ))
    .await;
    let mut t = h.terminal("ONLY").await;

    let first = h.press("B1").await;
    t.expect_assignment(&first).await;
    t.acknowledge(&first).await;

    // Pressed in this order, both wait: nobody is free.
    let low = h.press("B2").await;
    let critical = h.press("B3").await;
    for waiting in [&low, &critical] {
        let i = h.node.incident(waiting).await;
        assert!(i.units.is_empty(), "{waiting}: {}", describe_incident(&i));
        assert_eq!(i.state, v1::IncidentState::New as i32);
    }
    // The later press is the more urgent one.
    h.classify(&low, v1::IncidentKind::Other, v1::Priority::Low)
        .await;
    h.classify(&critical, v1::IncidentKind::Assault, v1::Priority::Critical)
        .await;

    // Closing the first incident frees the unit: it goes to the critical one.
    let closed = h.resolve(&first).await;
    assert_eq!(closed.state, v1::IncidentState::Closed as i32);
    assert!(closed.units.is_empty());
    let assignment = t
        .expect_cancellation_and_assignment(&first, &critical)
        .await;
    assert_eq!(assignment.priority, v1::Priority::Critical as i32);
    assert_eq!(assignment.kind, v1::IncidentKind::Assault as i32);
    assert_eq!(h.node.incident(&critical).await.units, ["ONLY"]);
    let still_waiting = h.node.incident(&low).await;
    assert!(
        still_waiting.units.is_empty(),
        "{}",
        describe_incident(&still_waiting)
    );

    // The terminal works the critical incident to the end; clearing frees it for the next.
    t.acknowledge(&critical).await;
    t.report(v1::UnitStatus::EnRoute, Some(&critical)).await;
    t.report(v1::UnitStatus::OnScene, Some(&critical)).await;
    assert_eq!(
        h.node.incident(&critical).await.state,
        v1::IncidentState::OnScene as i32
    );
    t.report(v1::UnitStatus::Available, Some(&critical)).await;
    t.expect_assignment(&low).await;
    t.acknowledge(&low).await;
    let low_now = h.node.incident(&low).await;
    assert_eq!(low_now.units, ["ONLY"]);
    // The cleared incident waits for the operator to close it; it gets no second unit.
    let cleared = h.node.incident(&critical).await;
    assert!(cleared.units.is_empty(), "{}", describe_incident(&cleared));
    assert_eq!(cleared.state, v1::IncidentState::OnScene as i32);
    h.shutdown([t]).await;
}

// ---- 5. operator dispatch ---------------------------------------------------------------

/// `Operator.Dispatch`: add a chosen unit, replace the current ones, and the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_dispatch_adds_replaces_and_refuses() {
    let p = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "operator",
        &[button("BO", p.0, p.1)],
        &[
            unit("U1", "foot", &[], p.0 + lat_deg(100.0), p.1),
            unit("U2", "motorcycle", &[], p.0 + lat_deg(2_000.0), p.1),
            unit("U3", "car", &["first_aid"], p.0 - lat_deg(2_500.0), p.1),
        ],
    ))
    .await;
    let mut t1 = h.terminal("U1").await;
    let mut t2 = h.terminal("U2").await;
    let mut t3 = h.terminal("U3").await;

    let incident = h.press("BO").await;
    t1.expect_assignment(&incident).await;
    t1.acknowledge(&incident).await;

    // Add U2 alongside U1.
    let added = h
        .dispatch(&incident, Some("U2"), false)
        .await
        .expect("add U2");
    assert_eq!(added.units, ["U1", "U2"]);
    let assignment = t2.expect_assignment(&incident).await;
    assert_at("assignment to U2", assignment.position.as_ref(), p.0, p.1);
    t2.acknowledge(&incident).await;
    assert!(
        added
            .audit
            .iter()
            .any(|e| e.action == "assigned" && e.actor.contains(OPERATOR)),
        "the audit names the operator: {:?}",
        added.audit
    );

    // Replace both with U3: U1 and U2 are released and told.
    let replaced = h
        .dispatch(&incident, Some("U3"), true)
        .await
        .expect("replace with U3");
    assert_eq!(replaced.units, ["U3"]);
    t3.expect_assignment(&incident).await;
    t3.acknowledge(&incident).await;
    t1.expect_cancellation(&incident).await;
    t2.expect_cancellation(&incident).await;
    h.wait_available("U1").await;
    h.wait_available("U2").await;
    let u3 = h.unit("U3").await;
    assert_eq!(u3.status, v1::UnitStatus::Dispatched as i32);
    assert_eq!(u3.incident.as_deref(), Some(incident.as_str()));

    // U3 is busy: it cannot be dispatched again, here or anywhere.
    let busy = h
        .dispatch(&incident, Some("U3"), false)
        .await
        .expect_err("U3 is not available");
    assert_eq!(busy.code(), Code::FailedPrecondition, "{busy:?}");
    // U1 out of service cannot be dispatched either.
    t1.report(v1::UnitStatus::OutOfService, None).await;
    let out = h
        .dispatch(&incident, Some("U1"), false)
        .await
        .expect_err("U1 is out of service");
    assert_eq!(out.code(), Code::FailedPrecondition, "{out:?}");
    assert_eq!(
        h.node.incident(&incident).await.units,
        ["U3"],
        "refusals change nothing"
    );

    // Unknown and malformed ids.
    let unknown_incident = h
        .dispatch("BO-000101-000000", Some("U2"), false)
        .await
        .expect_err("no such incident");
    assert_eq!(
        unknown_incident.code(),
        Code::NotFound,
        "{unknown_incident:?}"
    );
    let unknown_unit = h
        .dispatch(&incident, Some("U99"), false)
        .await
        .expect_err("no such unit");
    assert_eq!(unknown_unit.code(), Code::NotFound, "{unknown_unit:?}");
    let malformed_incident = h
        .dispatch("not an id!", Some("U2"), false)
        .await
        .expect_err("malformed incident id");
    assert_eq!(
        malformed_incident.code(),
        Code::InvalidArgument,
        "{malformed_incident:?}"
    );
    let malformed_unit = h
        .dispatch(&incident, Some("U 2"), false)
        .await
        .expect_err("malformed unit id");
    assert_eq!(
        malformed_unit.code(),
        Code::InvalidArgument,
        "{malformed_unit:?}"
    );
    let empty_unit = h
        .dispatch(&incident, Some(""), false)
        .await
        .expect_err("empty unit id");
    assert_eq!(empty_unit.code(), Code::InvalidArgument, "{empty_unit:?}");

    // A closed incident takes no more units.
    h.resolve(&incident).await;
    t3.expect_cancellation(&incident).await;
    h.wait_available("U3").await;
    let closed = h
        .dispatch(&incident, Some("U2"), false)
        .await
        .expect_err("closed incident");
    assert_eq!(closed.code(), Code::FailedPrecondition, "{closed:?}");
    assert_eq!(h.unit("U2").await.status, v1::UnitStatus::Available as i32);
    h.shutdown([t1, t2, t3]).await;
}

// ---- 6. prank ---------------------------------------------------------------------------

/// Marking a prank closes the incident and returns every attached unit to `available`,
/// wherever it was in its assignment; each terminal is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prank_closes_the_incident_and_frees_every_unit() {
    let p = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "prank",
        &[button("BP", p.0, p.1)],
        &[
            unit("P1", "foot", &[], p.0 + lat_deg(100.0), p.1),
            unit("P2", "car", &[], p.0 + lat_deg(1_500.0), p.1),
            unit("P3", "motorcycle", &[], p.0 - lat_deg(2_500.0), p.1),
        ],
    ))
    .await;
    let mut t1 = h.terminal("P1").await;
    let mut t2 = h.terminal("P2").await;
    let mut t3 = h.terminal("P3").await;

    let incident = h.press("BP").await;
    t1.expect_assignment(&incident).await;
    t1.acknowledge(&incident).await;
    t1.report(v1::UnitStatus::EnRoute, Some(&incident)).await;
    h.dispatch(&incident, Some("P2"), false)
        .await
        .expect("add P2");
    t2.expect_assignment(&incident).await;
    t2.acknowledge(&incident).await;
    t2.report(v1::UnitStatus::OnScene, Some(&incident)).await;
    // P3 is assigned but has not acknowledged yet.
    h.dispatch(&incident, Some("P3"), false)
        .await
        .expect("add P3");
    t3.expect_assignment(&incident).await;
    assert_eq!(h.node.incident(&incident).await.units, ["P1", "P2", "P3"]);

    let closed = h
        .operator
        .clone()
        .mark_prank(v1::MarkPrankRequest {
            incident_id: incident.clone(),
            operator_id: OPERATOR.into(),
        })
        .await
        .expect("mark prank")
        .into_inner();
    assert_eq!(closed.state, v1::IncidentState::Closed as i32);
    assert_eq!(closed.resolution, v1::Resolution::Prank as i32);
    assert!(closed.units.is_empty());
    assert!(closed.closed_at_ms.is_some());
    let stored = h.node.incident(&incident).await;
    assert_eq!(stored.state, v1::IncidentState::Closed as i32);
    assert!(stored.units.is_empty());

    for t in [&mut t1, &mut t2, &mut t3] {
        t.expect_cancellation(&incident).await;
    }
    for unit in ["P1", "P2", "P3"] {
        let u = h.wait_available(unit).await;
        assert!(!u.acked, "{unit}: {}", describe_unit(&u));
    }
    // A terminal that reports clear for the prank afterwards is told it is fine.
    let p2 = t2.report(v1::UnitStatus::Available, Some(&incident)).await;
    assert_eq!(p2.status, v1::UnitStatus::Available as i32);
    // Marking it again is refused: it is closed.
    let again = h
        .operator
        .clone()
        .mark_prank(v1::MarkPrankRequest {
            incident_id: incident.clone(),
            operator_id: OPERATOR.into(),
        })
        .await
        .expect_err("already closed");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    // Nothing is reassigned: the units stay free (no other incident is open).
    for unit in ["P1", "P2", "P3"] {
        assert_eq!(
            h.unit(unit).await.status,
            v1::UnitStatus::Available as i32,
            "{unit}"
        );
    }
    h.shutdown([t1, t2, t3]).await;
}

// ---- honest availability ----------------------------------------------------------------

/// A unit is offered only while its terminal or app is live. A unit whose terminal never
/// connected is `offline` from the start and never assigned, even right next to the press; a
/// unit that only reports positions (the brigade app over HTTP) is live while they arrive; a
/// terminal that hangs up leaves its unit offline after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_with_no_live_terminal_is_never_assigned() {
    let p = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "liveness",
        &[button("BL", p.0, p.1), button("BM", p.0, p.1 + 0.01)],
        &[
            // Nearest, but its terminal never connects.
            unit("DARK", "car", &[], p.0 + lat_deg(10.0), p.1),
            unit("LIVE", "foot", &[], p.0 + lat_deg(500.0), p.1),
            // Reports positions, without an open stream.
            unit("APP", "foot", &[], p.0 - lat_deg(2_000.0), p.1 + 0.01),
        ],
    ))
    .await;
    for id in ["DARK", "LIVE", "APP"] {
        let u = h.unit(id).await;
        assert_eq!(
            u.status,
            v1::UnitStatus::Offline as i32,
            "{id} is offline until heard from: {}",
            describe_unit(&u)
        );
    }
    let mut t_live = h.terminal("LIVE").await;
    h.wait_available("LIVE").await;

    let incident = h.press("BL").await;
    t_live.expect_assignment(&incident).await;
    t_live.acknowledge(&incident).await;
    assert_eq!(h.node.incident(&incident).await.units, ["LIVE"]);
    let dark = h.unit("DARK").await;
    assert_eq!(dark.status, v1::UnitStatus::Offline as i32);
    assert!(
        ids(&h.recommend(&incident).await).is_empty(),
        "an offline unit is not recommended either"
    );
    // An operator cannot send it by hand.
    let refused = h
        .dispatch(&incident, Some("DARK"), false)
        .await
        .expect_err("an offline unit cannot be dispatched");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("offline"), "{refused:?}");

    // A unit heard from by its position reports alone is live, and is assigned.
    let report = |lat: f64| {
        let mut units = h.units.clone();
        async move {
            units
                .report_position(v1::PositionReport {
                    unit_id: "APP".into(),
                    position: Some(v1::LatLon {
                        lat,
                        lon: p.1 + 0.01,
                    }),
                })
                .await
        }
    };
    report(p.0 - lat_deg(2_000.0)).await.expect("a position");
    h.wait_available("APP").await;
    let second = h.press("BM").await;
    h.node
        .wait_incident(&second, "assigned to the unit that reports", |i| {
            i.units == ["APP"]
        })
        .await;
    h.units
        .clone()
        .acknowledge(v1::AssignmentAck {
            unit_id: "APP".into(),
            incident_id: second.clone(),
        })
        .await
        .expect("the app acknowledges");
    let dark = h.unit("DARK").await;
    assert_eq!(dark.status, v1::UnitStatus::Offline as i32);

    // The terminal hangs up: once it has been away for the grace period, the unit (available
    // again after clearing) is offline.
    t_live
        .report(v1::UnitStatus::OnScene, Some(&incident))
        .await;
    t_live
        .report(v1::UnitStatus::Available, Some(&incident))
        .await;
    drop(t_live);
    h.wait_unit("LIVE", "offline after its terminal left", |u| {
        u.status == v1::UnitStatus::Offline as i32
    })
    .await;
    h.shutdown([]).await;
}

/// A unit that let an assignment time out is not offered another one for
/// `ACK_TIMEOUT_COOLDOWN`, although it is available and nearest, and the unit list says until
/// when. Waits the real 15 s ack timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_that_timed_out_is_skipped_for_the_cooldown() {
    let p = (LAT0, LON0);
    let q = (LAT0 + lat_deg(150.0), LON0);
    let mut h = Harness::start(scenario(
        "cooldown",
        &[button("B1", p.0, p.1), button("B2", q.0, q.1)],
        &[
            unit("SILENT", "car", &[], p.0 + lat_deg(100.0), p.1),
            unit("NEXT", "foot", &[], p.0 + lat_deg(300.0), p.1),
            unit("FAR", "car", &[], p.0 + lat_deg(5_000.0), p.1),
        ],
    ))
    .await;
    let mut t_silent = h.terminal("SILENT").await;
    let mut t_next = h.terminal("NEXT").await;
    let mut t_far = h.terminal("FAR").await;
    for id in ["SILENT", "NEXT", "FAR"] {
        h.wait_available(id).await;
    }

    let first = h.press("B1").await;
    t_silent.expect_assignment(&first).await;
    let assignment = t_next.expect_assignment(&first).await;
    assert_eq!(assignment.incident_id, first);
    t_next.acknowledge(&first).await;
    t_silent.expect_cancellation(&first).await;
    let silent = h.wait_available("SILENT").await;
    let until = silent
        .cooldown_until_ms
        .expect("the unit that timed out is cooling down");
    assert!(
        until >= silent.status_since_ms + 60_000,
        "cool-down until {until}, released at {}",
        silent.status_since_ms
    );

    // A press next to SILENT (NEXT is busy): SILENT is available and nearest by far, but the
    // press goes to FAR, 5 km away.
    let second = h.press("B2").await;
    let assignment = t_far.expect_assignment(&second).await;
    assert_eq!(assignment.incident_id, second);
    assert_eq!(h.node.incident(&second).await.units, ["FAR"]);
    assert!(
        !ids(&h.recommend(&second).await).contains(&"SILENT"),
        "a cooling unit is not recommended"
    );
    h.shutdown([t_silent, t_next, t_far]).await;
}

/// Position reports that cannot be a unit are refused with a reason, and change nothing: not
/// finite, out of range, or a jump from the last accepted report no vehicle could make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_positions_are_refused_with_a_reason() {
    let p = (LAT0, LON0);
    let h = Harness::start(scenario(
        "positions",
        &[button("BP", p.0, p.1)],
        &[unit("U1", "car", &[], p.0, p.1)],
    ))
    .await;
    let report = |lat: f64, lon: f64| {
        let mut units = h.units.clone();
        async move {
            units
                .report_position(v1::PositionReport {
                    unit_id: "U1".into(),
                    position: Some(v1::LatLon { lat, lon }),
                })
                .await
        }
    };
    report(p.0, p.1).await.expect("a first, plausible report");
    h.wait_available("U1").await;
    let cases = [
        (f64::NAN, p.1, "not finite"),
        (p.0, f64::INFINITY, "not finite"),
        (91.0, p.1, "latitude 91 is outside"),
        (p.0, -181.0, "longitude -181 is outside"),
        // 20 km in the few seconds since the last report.
        (p.0 - lat_deg(20_000.0), p.1, "not a unit moving"),
    ];
    for (lat, lon, reason) in cases {
        let refused = report(lat, lon)
            .await
            .expect_err("an impossible position is refused");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "({lat}, {lon}): {refused:?}"
        );
        assert!(
            refused.message().contains(reason),
            "({lat}, {lon}): expected {reason:?} in {:?}",
            refused.message()
        );
    }
    // Moves shorter than `POSITION_PERSIST_DISTANCE_M` (25 m) from the stored position are
    // not written, however long they go on (a parked unit's terminal reports every second).
    let small = p.0 + lat_deg(10.0);
    let since = std::time::Instant::now();
    while since.elapsed() < 2 * centinela_actors::limits::POSITION_PERSIST_INTERVAL {
        report(small, p.1).await.expect("a plausible small move");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let stored = h.unit("U1").await.position;
    assert!(
        stored.is_some_and(|at| (at.lat - p.0).abs() < 1e-9),
        "a 10 m move is not written: {stored:?}"
    );
    // A plausible next step is still accepted, and the refused ones left no trace. (Positions
    // reach the store at most every `POSITION_PERSIST_INTERVAL`: the terminal keeps reporting.)
    let step = p.0 + lat_deg(50.0);
    let u = wait::until("U1 at the plausible position", || async {
        report(step, p.1).await.expect("a plausible step");
        let u = h.unit("U1").await;
        if u.position.is_some_and(|at| (at.lat - step).abs() < 1e-9) {
            Ok(u)
        } else {
            Err(format!("{:?}", u.position))
        }
    })
    .await;
    assert_eq!(u.status, v1::UnitStatus::Available as i32);
    h.shutdown([]).await;
}

// ---- radio fallback ---------------------------------------------------------------------

/// An operator sets a unit without a working terminal available (and where it is) from a radio
/// call: the unit is then dispatched like any other, and the record names the operator. A unit
/// on an incident, or a status that is not set by hand, is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_a_unit_by_radio_and_it_is_dispatched() {
    let p = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "radio",
        &[button("BR", p.0, p.1)],
        &[unit("RADIO", "foot", &[], p.0 + lat_deg(3_000.0), p.1)],
    ))
    .await;
    let radio = h.operator.clone();
    let set = |status: v1::UnitStatus, position: Option<(f64, f64)>| {
        let mut operator = radio.clone();
        async move {
            operator
                .set_unit_status(v1::SetUnitStatusRequest {
                    unit_id: "RADIO".into(),
                    operator_id: OPERATOR.into(),
                    status: status as i32,
                    position: position.map(|(lat, lon)| v1::LatLon { lat, lon }),
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    assert_eq!(h.unit("RADIO").await.status, v1::UnitStatus::Offline as i32);
    // "RADIO here, at the corner of the plaza, available."
    let near = (p.0 + lat_deg(50.0), p.1);
    let unit = set(v1::UnitStatus::Available, Some(near))
        .await
        .expect("set by radio");
    assert_eq!(unit.status, v1::UnitStatus::Available as i32);
    assert_eq!(unit.radio_by.as_deref(), Some(OPERATOR));
    assert!(unit.radio_at_ms.is_some());
    assert_at(
        "the radioed position",
        unit.position.as_ref(),
        near.0,
        near.1,
    );

    let incident = h.press("BR").await;
    h.node
        .wait_incident(&incident, "assigned to the radioed unit", |i| {
            i.units == ["RADIO"]
        })
        .await;
    // On an incident: the operator releases it from the incident first.
    let refused = set(v1::UnitStatus::OutOfService, None)
        .await
        .expect_err("a unit on an incident is not set by radio");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("release it"), "{refused:?}");
    let refused = set(v1::UnitStatus::OnScene, None)
        .await
        .expect_err("on scene is not a radio status");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let refused = set(v1::UnitStatus::Available, Some((f64::NAN, 0.0)))
        .await
        .expect_err("a NaN position is refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    h.resolve(&incident).await;
    h.wait_available("RADIO").await;
    let unit = set(v1::UnitStatus::Offline, None)
        .await
        .expect("off the air");
    assert_eq!(unit.status, v1::UnitStatus::Offline as i32);
    assert_eq!(unit.radio_by, None, "offline clears the radio vouching");
    h.shutdown([]).await;
}

/// Reclassifying re-checks the units on an incident: an unarmed patrol on what turns out to be
/// a robbery, with an armed car free, gets a recommended swap on the incident (nothing moves by
/// itself); the operator's swap sends the armed car and releases the patrol cleanly, audited as
/// the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclassifying_recommends_a_swap_and_the_operator_swaps() {
    let r = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "swap",
        &[button("BS", r.0, r.1)],
        &[
            unit("PATROL", "foot", &[], r.0 - lat_deg(10.0), r.1),
            unit(
                "ARMED",
                "car",
                &["non_lethal_armed"],
                r.0 + lat_deg(3_000.0),
                r.1,
            ),
        ],
    ))
    .await;
    let mut t_patrol = h.terminal("PATROL").await;
    let mut t_armed = h.terminal("ARMED").await;
    h.wait_available("ARMED").await;
    h.wait_available("PATROL").await;

    let incident = h.press("BS").await;
    t_patrol.expect_assignment(&incident).await;
    t_patrol.acknowledge(&incident).await;
    assert_eq!(h.node.incident(&incident).await.swap, None, "unclassified");

    let classified = h
        .classify(
            &incident,
            v1::IncidentKind::Robbery,
            v1::Priority::Unspecified,
        )
        .await;
    let swap = classified.swap.clone().expect("a swap is recommended");
    assert_eq!(
        (swap.out_unit.as_str(), swap.in_unit.as_str()),
        ("PATROL", "ARMED")
    );
    assert_eq!(swap.kind, v1::IncidentKind::Robbery as i32);
    // Only recommended: nothing moved.
    let stored = h.node.incident(&incident).await;
    assert_eq!(stored.units, ["PATROL"]);
    assert_eq!(stored.swap, classified.swap, "the incident carries it");
    assert_eq!(
        h.unit("ARMED").await.status,
        v1::UnitStatus::Available as i32
    );

    // A swap naming a unit that is not on the incident is refused with a reason.
    let wrong = h.swap(&incident, "ARMED", "PATROL").await.unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition, "{wrong:?}");
    assert!(wrong.message().contains("not on incident"), "{wrong:?}");
    let half = h
        .operator
        .clone()
        .dispatch(v1::DispatchRequest {
            incident_id: incident.clone(),
            operator_id: OPERATOR.into(),
            unit_id: None,
            replace: false,
            swap_out: Some("PATROL".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(half.code(), Code::InvalidArgument, "{half:?}");

    // The operator's swap: the armed car in, the patrol released and told.
    let swapped = h
        .swap(&incident, "PATROL", "ARMED")
        .await
        .expect("the swap");
    assert_eq!(swapped.units, ["ARMED"]);
    assert_eq!(swapped.swap, None, "done: nothing left to recommend");
    let assignment = t_armed.expect_assignment(&incident).await;
    assert_eq!(assignment.kind, v1::IncidentKind::Robbery as i32);
    t_patrol.expect_cancellation(&incident).await;
    h.wait_available("PATROL").await;
    let by_operator: Vec<(&str, &str)> = swapped
        .audit
        .iter()
        .filter(|e| e.actor == format!("operator:{OPERATOR}"))
        .map(|e| (e.action.as_str(), e.detail.as_str()))
        .collect();
    assert!(
        by_operator.contains(&("assigned", "ARMED"))
            && by_operator
                .iter()
                .any(|(action, detail)| *action == "unassigned" && detail.starts_with("PATROL")),
        "the swap is audited as the operator: {by_operator:?}"
    );
    t_armed.acknowledge(&incident).await;
    h.resolve(&incident).await;
    t_armed.expect_cancellation(&incident).await;
    h.shutdown([t_patrol, t_armed]).await;
}

/// No swap is recommended when no better-suited unit is free: the armed car's terminal never
/// connected (offline), or it is already busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_swap_is_recommended_without_a_free_better_unit() {
    let r = (LAT0, LON0);
    let mut h = Harness::start(scenario(
        "no-swap",
        &[button("BN", r.0, r.1)],
        &[
            unit("PATROL", "foot", &[], r.0 - lat_deg(10.0), r.1),
            unit("OTHER", "foot", &[], r.0 + lat_deg(200.0), r.1),
            // Armed, but its terminal never connects: offline, not free.
            unit(
                "DARK",
                "car",
                &["non_lethal_armed"],
                r.0 + lat_deg(1_000.0),
                r.1,
            ),
        ],
    ))
    .await;
    let mut t_patrol = h.terminal("PATROL").await;
    let t_other = h.terminal("OTHER").await;
    h.wait_available("PATROL").await;
    h.wait_available("OTHER").await;
    let incident = h.press("BN").await;
    t_patrol.expect_assignment(&incident).await;
    t_patrol.acknowledge(&incident).await;
    assert_eq!(h.unit("DARK").await.status, v1::UnitStatus::Offline as i32);

    let classified = h
        .classify(
            &incident,
            v1::IncidentKind::Robbery,
            v1::Priority::Unspecified,
        )
        .await;
    assert_eq!(classified.swap, None, "the only armed unit is offline");
    assert_eq!(h.node.incident(&incident).await.swap, None);
    // A kind that prefers nothing never asks for a swap either.
    let other = h
        .classify(
            &incident,
            v1::IncidentKind::Other,
            v1::Priority::Unspecified,
        )
        .await;
    assert_eq!(other.swap, None);
    assert_eq!(other.units, ["PATROL"]);
    h.resolve(&incident).await;
    t_patrol.expect_cancellation(&incident).await;
    h.shutdown([t_patrol, t_other]).await;
}

// ---- verify first -----------------------------------------------------------------------

/// An operator confirms a held incident on camera.
async fn confirm_verified(h: &Harness, incident: &str) -> Result<v1::Incident, Status> {
    h.operator
        .clone()
        .confirm_verified(v1::ConfirmVerifiedRequest {
            incident_id: incident.into(),
            operator_id: OPERATOR.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The audit actions of an incident, oldest first, as `actor action`.
fn audit(incident: &v1::Incident) -> Vec<String> {
    incident
        .audit
        .iter()
        .map(|e| format!("{} {}", e.actor, e.action))
        .collect()
}

/// At a verify-first site the best brigade is recommended but held (not assigned, not sent)
/// until an operator confirms on camera; the confirmation, audited as the operator, sends
/// it. An auto-dispatch site next door is dispatched at once, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_first_holds_the_brigade_until_the_operator_confirms() {
    // Two neighbourhoods 20 km apart, each with its own foot patrol. The hold is the longest
    // a site may set, so it cannot pass during the test.
    let a = (LAT0, LON0);
    let b = (LAT0 - lat_deg(20_000.0), LON0);
    let mut h = Harness::start(scenario(
        "verify-first",
        &[
            button("BA", a.0, a.1).verify_first(300),
            button("BB", b.0, b.1),
        ],
        &[
            unit("A-FOOT", "foot", &[], a.0 + lat_deg(100.0), a.1),
            unit("B-FOOT", "foot", &[], b.0 + lat_deg(100.0), b.1),
        ],
    ))
    .await;
    let mut t_a = h.terminal("A-FOOT").await;
    let mut t_b = h.terminal("B-FOOT").await;

    let ia = h.press("BA").await;
    let held = h.node.incident(&ia).await;
    let until = held.held_until_ms.expect("a verify-first incident is held");
    assert!(
        until >= held.first_press_at_ms + 299_000,
        "held for the site's 300 s: {held:?}"
    );
    // Recommended, not sent.
    assert_eq!(ids(&h.recommend(&ia).await), ["A-FOOT", "B-FOOT"]);

    // The auto-dispatch site is served at once. The dispatcher sees changes in store order,
    // so by the time BB's incident is assigned it has seen BA's too, and held it.
    let ib = h.press("BB").await;
    t_b.expect_assignment(&ib).await;
    let held = h.node.incident(&ia).await;
    assert!(
        held.units.is_empty(),
        "nobody assigned while held: {held:?}"
    );
    assert!(held.held_until_ms.is_some());
    assert_eq!(
        h.unit("A-FOOT").await.status,
        v1::UnitStatus::Available as i32
    );

    // The operator confirms on camera: the hold ends and the patrol is sent.
    let confirmed = confirm_verified(&h, &ia).await.expect("confirm");
    assert_eq!(confirmed.held_until_ms, None);
    assert_eq!(
        audit(&confirmed).last().map(String::as_str),
        Some(format!("operator:{OPERATOR} verified").as_str())
    );
    t_a.expect_assignment(&ia).await;
    let sent = h.node.incident(&ia).await;
    assert_eq!(sent.units, ["A-FOOT"]);
    let trail = audit(&sent);
    let verified = trail.iter().position(|e| e.ends_with(" verified"));
    let assigned = trail.iter().position(|e| e.ends_with(" assigned"));
    assert!(verified < assigned && verified.is_some(), "{trail:?}");

    // Nothing is held any more, and an auto-dispatch incident never was.
    for incident in [&ia, &ib] {
        let refused = confirm_verified(&h, incident).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("nothing is held"), "{refused:?}");
    }
    h.shutdown([t_a, t_b]).await;
}

/// With nobody confirming, the hold passes and the dispatcher dispatches as usual, audited as
/// the hold expiring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_first_dispatches_when_the_hold_passes_unconfirmed() {
    let mut h = Harness::start(scenario(
        "verify-first-expiry",
        &[button("BA", LAT0, LON0).verify_first(1)],
        &[unit("A-FOOT", "foot", &[], LAT0 + lat_deg(100.0), LON0)],
    ))
    .await;
    let mut t_a = h.terminal("A-FOOT").await;
    let ia = h.press("BA").await;
    assert!(h.node.incident(&ia).await.held_until_ms.is_some());

    t_a.expect_assignment(&ia).await;
    let sent = h.node.incident(&ia).await;
    assert_eq!(sent.units, ["A-FOOT"]);
    assert_eq!(sent.held_until_ms, None);
    let trail = audit(&sent);
    let expired = trail
        .iter()
        .position(|e| e.starts_with("dispatcher:") && e.ends_with(" hold_expired"));
    let assigned = trail.iter().position(|e| e.ends_with(" assigned"));
    assert!(expired.is_some() && expired < assigned, "{trail:?}");
    assert!(!trail.iter().any(|e| e.ends_with(" verified")), "{trail:?}");
    h.shutdown([t_a]).await;
}
