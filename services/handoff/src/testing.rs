//! Incidents for tests (this crate's and its dependents'): one per kind, in each phase.

use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, CallerDetails, Incident, IncidentKind, Resolution};
use centinela_core::time::Timestamp;

/// 2026-11-27T22:05:12Z (17:05:12 in Lima).
pub const NOW: Timestamp = Timestamp::from_millis(1_795_817_112_000);

/// A freshly opened incident at Lima's Plaza Mayor.
pub fn opened(id: &str) -> Incident {
    Incident::open(
        IncidentId::new(id).unwrap(),
        ButtonId::new("B-01").unwrap(),
        CameraId::new("C-01").unwrap(),
        Position::new(-12.0464, -77.0428).unwrap(),
        NOW,
    )
}

/// Opened, then classified as `kind` with a caller who typed awkward characters.
pub fn classified(id: &str, kind: IncidentKind) -> Incident {
    let mut incident = opened(id);
    incident
        .classify(
            OperatorId::new("ana").unwrap(),
            kind,
            None,
            Some(CallerDetails {
                name: Some("María <Ñ> & \"Pepe\"".into()),
                phone: Some("+51 999 888 777".into()),
                notes: Some("two men, one with a knife;\u{7} fled north\nby Jr. Carabaya".into()),
            }),
            Timestamp::from_millis(NOW.as_millis() + 30_000),
        )
        .unwrap();
    incident
        .assign(
            BrigadeId::new("U-03").unwrap(),
            Actor::Dispatcher { term: 1 },
            Timestamp::from_millis(NOW.as_millis() + 31_000),
        )
        .unwrap();
    incident
}

/// Classified, then closed with `resolution`.
pub fn closed(id: &str, kind: IncidentKind, resolution: Resolution) -> Incident {
    let mut incident = classified(id, kind);
    incident
        .close(
            resolution,
            Actor::Operator(OperatorId::new("ana").unwrap()),
            Timestamp::from_millis(NOW.as_millis() + 600_000),
        )
        .unwrap();
    incident
}
