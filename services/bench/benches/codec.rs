//! Encoding an incident with its audit trail: protobuf on the wire (prost) and JSON in the
//! store (serde_json), both directions.

use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message;

use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, Incident};
use centinela_core::time::Timestamp;
use centinela_proto::convert::incident_to_wire;
use centinela_proto::v1;

/// A typical incident: a few presses, acknowledged, one unit on its way.
fn incident() -> Incident {
    let now = Timestamp::from_millis(1_795_817_112_000);
    let unit = BrigadeId::new("U01").unwrap();
    let mut incident = Incident::open(
        IncidentId::new("B01-261127-220512").unwrap(),
        ButtonId::new("B01").unwrap(),
        CameraId::new("C01").unwrap(),
        Position::new(-12.0464, -77.03).unwrap(),
        now,
    );
    incident.merge_press(now).unwrap();
    incident.merge_press(now).unwrap();
    incident
        .acknowledge(OperatorId::new("ana").unwrap(), now)
        .unwrap();
    incident
        .assign(unit.clone(), Actor::Dispatcher { term: 7 }, now)
        .unwrap();
    incident.unit_acknowledged(&unit, now).unwrap();
    incident.unit_en_route(&unit, now).unwrap();
    incident
}

fn codec(c: &mut Criterion) {
    let incident = incident();
    let wire = incident_to_wire(&incident);
    let bytes = wire.encode_to_vec();
    let json = serde_json::to_vec(&incident).unwrap();
    c.bench_function("proto_encode_incident", |b| {
        b.iter(|| incident_to_wire(&incident).encode_to_vec())
    });
    c.bench_function("proto_decode_incident", |b| {
        b.iter(|| v1::Incident::decode(bytes.as_slice()).unwrap())
    });
    c.bench_function("json_encode_incident", |b| {
        b.iter(|| serde_json::to_vec(&incident).unwrap())
    });
    c.bench_function("json_decode_incident", |b| {
        b.iter(|| serde_json::from_slice::<Incident>(&json).unwrap())
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
