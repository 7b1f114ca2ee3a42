//! Arbitrary sequences of incident steps, in any order, at any times: no panic, and after
//! every step the incident's invariants hold — a refused step changes nothing, the state never
//! moves backwards, every list stays within its limit, a closed incident has its resolution
//! and ends its audit with the closure, and the audit's hash chain is intact.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{
    Actor, AuditAction, CallerDetails, Incident, IncidentKind, IncidentState, Priority, Resolution,
};
use centinela_core::limits::{
    AUDIT_ENTRIES_MAX, DECLINED_PER_INCIDENT_MAX, UNITS_PER_INCIDENT_MAX,
};
use centinela_core::time::Timestamp;

#[derive(Arbitrary, Debug)]
enum Step {
    MergePress,
    Acknowledge {
        operator: u8,
    },
    Classify {
        kind: u8,
        priority: Option<u8>,
        notes: Option<u16>,
    },
    Assign {
        unit: u8,
        by_dispatcher: bool,
    },
    Unassign {
        unit: u8,
        reason: String,
    },
    AckTimeout {
        unit: u8,
        term: i64,
    },
    UnitAcknowledged {
        unit: u8,
    },
    UnitEnRoute {
        unit: u8,
    },
    UnitOnScene {
        unit: u8,
    },
    UnitCleared {
        unit: u8,
    },
    Close {
        resolution: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Story {
    start_ms: u32,
    steps: Vec<(u16, Step)>,
}

fn unit(n: u8) -> BrigadeId {
    // A few dozen units: enough to fill the attached and declined lists.
    BrigadeId::new(format!("U{}", n % 80)).unwrap()
}

fn kind(n: u8) -> IncidentKind {
    IncidentKind::ALL[n as usize % IncidentKind::ALL.len()]
}

fn priority(n: u8) -> Priority {
    [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ][n as usize % 4]
}

fn resolution(n: u8) -> Resolution {
    [
        Resolution::Handled,
        Resolution::Prank,
        Resolution::FalseAlarm,
        Resolution::Cancelled,
    ][n as usize % 4]
}

fn apply(incident: &mut Incident, step: Step, now: Timestamp) -> bool {
    let ok = match step {
        Step::MergePress => incident.merge_press(now).is_ok(),
        Step::Acknowledge { operator } => incident
            .acknowledge(OperatorId::new(format!("op{operator}")).unwrap(), now)
            .is_ok(),
        Step::Classify {
            kind: k,
            priority: p,
            notes,
        } => incident
            .classify(
                OperatorId::new("op").unwrap(),
                kind(k),
                p.map(priority),
                notes.map(|len| CallerDetails {
                    notes: Some("n".repeat(len as usize % 1024)),
                    ..CallerDetails::default()
                }),
                now,
            )
            .is_ok(),
        Step::Assign {
            unit: u,
            by_dispatcher,
        } => {
            let actor = if by_dispatcher {
                Actor::Dispatcher { term: 1 }
            } else {
                Actor::Operator(OperatorId::new("op").unwrap())
            };
            incident.assign(unit(u), actor, now).is_ok()
        }
        Step::Unassign { unit: u, reason } => incident
            .unassign(&unit(u), Actor::System, &reason, now)
            .is_ok(),
        Step::AckTimeout { unit: u, term } => incident.ack_timeout(&unit(u), term, now).is_ok(),
        Step::UnitAcknowledged { unit: u } => incident.unit_acknowledged(&unit(u), now).is_ok(),
        Step::UnitEnRoute { unit: u } => incident.unit_en_route(&unit(u), now).is_ok(),
        Step::UnitOnScene { unit: u } => incident.unit_on_scene(&unit(u), now).is_ok(),
        Step::UnitCleared { unit: u } => incident.unit_cleared(&unit(u), None, now).is_ok(),
        Step::Close { resolution: r } => incident.close(resolution(r), Actor::System, now).is_ok(),
    };
    ok
}

fuzz_target!(|story: Story| {
    let mut now = Timestamp::from_millis(u64::from(story.start_ms));
    let mut incident = Incident::open(
        IncidentId::new("B01-260101-000000").unwrap(),
        ButtonId::new("B01").unwrap(),
        CameraId::new("C01").unwrap(),
        Position::new(-12.0464, -77.03).unwrap(),
        now,
    );
    for (advance_ms, step) in story.steps.into_iter().take(2_000) {
        // Time mostly moves forward; steps may also arrive out of order (a small step back).
        now = if advance_ms % 17 == 0 {
            Timestamp::from_millis(now.as_millis().saturating_sub(u64::from(advance_ms)))
        } else {
            Timestamp::from_millis(now.as_millis() + u64::from(advance_ms))
        };
        let before = incident.clone();
        let accepted = apply(&mut incident, step, now);
        if !accepted {
            assert_eq!(incident, before, "a refused step changed the incident");
            continue;
        }
        assert!(incident.state >= before.state, "the state moved backwards");
        assert!(incident.units.len() <= UNITS_PER_INCIDENT_MAX);
        assert!(incident.declined.len() <= DECLINED_PER_INCIDENT_MAX);
        assert!(incident.audit.len() <= AUDIT_ENTRIES_MAX);
        assert!(incident.press_count >= before.press_count);
        assert_eq!(incident.is_open(), incident.resolution.is_none());
        if incident.state == IncidentState::Closed {
            assert!(incident.units.is_empty());
            assert_eq!(
                incident.audit.last().map(|e| e.action),
                Some(AuditAction::Closed)
            );
        }
        let key = centinela_core::seal::AuditKey::from_secret(b"fuzz");
        let mut sealed = incident.clone();
        sealed.seal(None, &key);
        assert!(sealed.verify_audit(Some(&key)).is_intact(), "the audit chain broke");
    }
    let json = serde_json::to_vec(&incident).expect("encodes");
    let back: Incident = serde_json::from_slice(&json).expect("decodes");
    assert_eq!(back, incident);
});
