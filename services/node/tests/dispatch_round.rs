//! A dispatcher's round of assignments in one fenced transaction
//! (`Records::update_incidents_known`): every assignment guarded on the copies the watch
//! brought, where a conflict on one incident or brigade fails no other assignment, no brigade
//! ends up on two incidents, and a lost term writes nothing. The same case runs on the
//! embedded store and on a real etcd (Debian's etcd, `centinela_testkit::etcd`; it fails,
//! never skips, without it): etcd is the reference for the all-or-nothing transaction the
//! round relies on.

use std::time::Duration;

use centinela_core::brigade::Brigade;
use centinela_core::ids::{BrigadeId, ButtonId, PressId};
use centinela_core::incident::{Actor, Incident, IncidentKind};
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_records::{Error, Known, KnownChange, Records};
use centinela_store::{EmbeddedStore, Fence, Store};
use centinela_testkit::etcd::{self, EtcdCluster};

/// 2026-11-27T22:05:12.345Z
const NOW: Timestamp = Timestamp::from_millis(1_795_817_112_345);
const DEBOUNCE: Duration = Duration::from_secs(120);
const ELECTION_KEY: &str = "/centinela/election/dispatch-round-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_in_a_dispatch_round_fails_no_other_assignment_on_etcd() {
    // Declared first, dropped last: etcd outlives the case and is killed even on a panic.
    let cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let store = etcd::connect(&cluster.endpoints()).await;
    a_conflict_in_a_dispatch_round_fails_no_other_assignment(store).await;
}

#[tokio::test]
async fn a_conflict_in_a_dispatch_round_fails_no_other_assignment_on_the_embedded_store() {
    let embedded = EmbeddedStore::new();
    a_conflict_in_a_dispatch_round_fails_no_other_assignment(Store::embedded(&embedded)).await;
}

/// Opens an incident on button `button` and returns it as stored.
async fn open(records: &Records, button: &str) -> Incident {
    let button = records
        .button(&ButtonId::new(button).unwrap())
        .await
        .unwrap()
        .unwrap();
    let press = PressId::new(format!("{}-press", button.id)).unwrap();
    records
        .press(&button, &press, NOW, DEBOUNCE, None)
        .await
        .unwrap()
        .incident
}

async fn held_incident(records: &Records, id: &Incident) -> Known<Incident> {
    let (value, revision) = records.incident_at(&id.id).await.unwrap().unwrap();
    Known { value, revision }
}

async fn held_brigade(records: &Records, id: &BrigadeId) -> Known<Brigade> {
    let (value, revision) = records.brigade_at(id).await.unwrap().unwrap();
    Known { value, revision }
}

/// The dispatcher's assignment: the brigade dispatched to the incident, audited as the leader.
fn assign(term: i64) -> impl FnMut(&mut Incident, &mut [Brigade]) -> centinela_records::Result<()> {
    move |incident, brigades| {
        brigades[0].dispatch(incident.id.clone(), NOW)?;
        incident.assign(brigades[0].id.clone(), Actor::Dispatcher { term }, NOW)?;
        Ok(())
    }
}

async fn a_conflict_in_a_dispatch_round_fails_no_other_assignment(store: Store) {
    let records = Records::new(store.clone());
    records.seed(&Scenario::lima_centro(), NOW).await.unwrap();
    store.put(ELECTION_KEY, "leader", None).await.unwrap();
    let term = store
        .get(ELECTION_KEY)
        .await
        .unwrap()
        .unwrap()
        .create_revision;
    let fence = Fence::new(ELECTION_KEY, term);

    // Seeded offline (no terminal yet): six brigades' terminals come online.
    let (brigades, _) = records.snapshot::<Brigade>().await.unwrap();
    assert!(brigades.len() >= 6, "the scenario has six brigades");
    let mut units = Vec::new();
    for brigade in brigades.iter().take(6) {
        let online = records
            .update::<Brigade>(brigade.id.as_str(), |b| {
                if !b.is_available() {
                    b.come_online(NOW)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        assert!(online.is_available(), "{online:?}");
        units.push(online.id);
    }
    let mut incidents = Vec::new();
    for button in ["B01", "B02", "B03", "B04", "B05", "B06"] {
        incidents.push(open(&records, button).await);
    }

    // A round whose copies are all current: one transaction for all of it.
    let round = vec![
        KnownChange {
            incident: held_incident(&records, &incidents[0]).await,
            brigades: vec![held_brigade(&records, &units[0]).await],
            change: assign(term),
        },
        KnownChange {
            incident: held_incident(&records, &incidents[1]).await,
            brigades: vec![held_brigade(&records, &units[1]).await],
            change: assign(term),
        },
    ];
    let before = records.revision().await.unwrap();
    let results = records.update_incidents_known(round, &fence).await;
    assert_eq!(
        records.revision().await.unwrap(),
        before + 1,
        "one transaction"
    );
    for (result, (incident, unit)) in results.iter().zip(incidents.iter().zip(&units)) {
        let update = result.as_ref().expect("committed");
        assert_eq!(update.incident.units, vec![unit.clone()]);
        assert_eq!(update.revision, before + 1);
        let stored = records.incident(&incident.id).await.unwrap().unwrap();
        assert_eq!(
            stored, update.incident,
            "the stored record is the one returned"
        );
    }

    // A round where two assignments' copies moved after the watch brought them: incident 4
    // was classified by an operator, and unit 6 was sent to incident 6 by someone else.
    let round = vec![
        KnownChange {
            incident: held_incident(&records, &incidents[2]).await,
            brigades: vec![held_brigade(&records, &units[2]).await],
            change: assign(term),
        },
        KnownChange {
            incident: held_incident(&records, &incidents[3]).await,
            brigades: vec![held_brigade(&records, &units[3]).await],
            change: assign(term),
        },
        KnownChange {
            incident: held_incident(&records, &incidents[4]).await,
            brigades: vec![held_brigade(&records, &units[5]).await],
            change: assign(term),
        },
    ];
    records
        .update_incident(&incidents[3].id, |i| {
            i.kind = IncidentKind::Robbery;
            Ok(())
        })
        .await
        .unwrap();
    records
        .update_incident_with(
            &incidents[5].id,
            std::slice::from_ref(&units[5]),
            None,
            assign(term),
        )
        .await
        .unwrap();
    let before = records.revision().await.unwrap();
    let results = records.update_incidents_known(round, &fence).await;
    // The assignment whose copies held commits with the others' conflict traced from the
    // failed transaction itself; incident 4's is made again on the stored record; unit 6 is
    // taken, so incident 5 gets nothing (and no brigade is written twice).
    assert_eq!(
        records.revision().await.unwrap(),
        before + 2,
        "one commit for the held copies, one for incident 4 alone, none for the taken unit"
    );
    let third = results[0].as_ref().expect("incident 3 assigned");
    assert_eq!(third.incident.units, vec![units[2].clone()]);
    let fourth = results[1]
        .as_ref()
        .expect("incident 4 assigned, on its stored record");
    assert_eq!(fourth.incident.units, vec![units[3].clone()]);
    let stored = records.incident(&incidents[3].id).await.unwrap().unwrap();
    assert_eq!(
        stored.kind,
        IncidentKind::Robbery,
        "the classification stays"
    );
    assert_eq!(stored.units, vec![units[3].clone()]);
    assert!(
        results[2].is_err(),
        "unit 6 is on incident 6: {:?}",
        results[2]
    );
    let fifth = records.incident(&incidents[4].id).await.unwrap().unwrap();
    assert!(fifth.units.is_empty(), "{fifth:?}");

    // No brigade on two incidents, and each brigade points at the incident that holds it.
    let open_incidents = records.incidents(false).await.unwrap();
    for unit in &units {
        let holding: Vec<_> = open_incidents
            .iter()
            .filter(|i| i.units.contains(unit))
            .collect();
        assert!(holding.len() <= 1, "{unit} on {} incidents", holding.len());
        let brigade = records.brigade(unit).await.unwrap().unwrap();
        assert_eq!(
            brigade.incident.as_ref(),
            holding.first().map(|i| &i.id),
            "{unit}"
        );
    }

    // A lost term writes nothing: every assignment of the round is fenced.
    let round = vec![KnownChange {
        incident: held_incident(&records, &incidents[4]).await,
        brigades: vec![held_brigade(&records, &units[4]).await],
        change: assign(term),
    }];
    store.delete(ELECTION_KEY).await.unwrap();
    let before = records.revision().await.unwrap();
    let results = records.update_incidents_known(round, &fence).await;
    assert!(matches!(results[0], Err(Error::Fenced)), "{:?}", results[0]);
    assert_eq!(records.revision().await.unwrap(), before, "nothing written");
}
