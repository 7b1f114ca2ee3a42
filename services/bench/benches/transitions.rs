//! The domain's state machines: one incident's whole life (open, merge a press, assign,
//! acknowledge, en route, on scene, close) and a brigade's assignment cycle.

use criterion::{Criterion, criterion_group, criterion_main};

use centinela_core::brigade::{Brigade, Capabilities, Mode};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::time::Timestamp;

fn transitions(c: &mut Criterion) {
    let at = Position::new(-12.0464, -77.03).unwrap();
    let now = Timestamp::from_millis(1_795_817_112_000);
    let unit = BrigadeId::new("U01").unwrap();
    let operator = OperatorId::new("ana").unwrap();
    c.bench_function("incident_lifecycle", |b| {
        b.iter(|| {
            let mut incident = Incident::open(
                IncidentId::new("B01-261127-220512").unwrap(),
                ButtonId::new("B01").unwrap(),
                CameraId::new("C01").unwrap(),
                at,
                now,
            );
            incident.merge_press(now).unwrap();
            incident.acknowledge(operator.clone(), now).unwrap();
            incident
                .assign(unit.clone(), Actor::Dispatcher { term: 7 }, now)
                .unwrap();
            incident.unit_acknowledged(&unit, now).unwrap();
            incident.unit_en_route(&unit, now).unwrap();
            incident.unit_on_scene(&unit, now).unwrap();
            incident
                .close(Resolution::Handled, Actor::Operator(operator.clone()), now)
                .unwrap()
        })
    });
    let incident = IncidentId::new("B01-261127-220512").unwrap();
    c.bench_function("brigade_cycle", |b| {
        let mut brigade = Brigade::new(
            unit.clone(),
            "Serenazgo Pie 1".into(),
            Mode::Foot,
            Capabilities::EMPTY,
            at,
            now,
        );
        b.iter(|| {
            brigade.dispatch(incident.clone(), now).unwrap();
            brigade.acknowledge(&incident, now).unwrap();
            brigade.en_route(now).unwrap();
            brigade.on_scene(now).unwrap();
            brigade.clear(now).unwrap();
        })
    });
}

criterion_group!(benches, transitions);
criterion_main!(benches);
