//! Demand for brigade posts ([`Archive::demand`]) on a known history, against the embedded
//! SQLite and a real PostgreSQL started by the test: counts per button, recency weights that
//! halve every half-life, and the period's start respected.

// The contract's helpers only; its case list is for the contract suites.
#[allow(unused_macros)]
mod contract;

use std::time::Duration;

use centinela_archive::demand::ButtonDemand;
use centinela_archive::{Archive, ArchivedIncident};
use centinela_testkit::postgres::Postgres;
use contract::{T0, key, press_and_close, records};

const DAY: Duration = Duration::from_secs(86_400);

/// B01 twice on T0's day, B02 once two days earlier; all archived.
async fn known_history(archive: &Archive) {
    let (_embedded, records) = records().await;
    let (buttons, _) = records
        .snapshot::<centinela_core::button::Button>()
        .await
        .unwrap();
    let earlier = centinela_core::time::Timestamp::from_millis(T0.as_millis() - 2 * 86_400_000);
    let incidents = [
        press_and_close(&records, 0, T0).await,
        press_and_close(
            &records,
            buttons.len(),
            T0.saturating_add(Duration::from_secs(600)),
        )
        .await,
        press_and_close(&records, 1, earlier).await,
    ];
    for incident in incidents {
        let entry = ArchivedIncident {
            incident,
            presses: Vec::new(),
            stills: Vec::new(),
            bookmarks: Vec::new(),
            district: None,
        };
        archive.archive(&entry, &[], &key(), T0).await.unwrap();
    }
}

async fn demand_case(archive: Archive) {
    known_history(&archive).await;
    let now = T0.saturating_add(Duration::from_secs(3_600));
    let since = centinela_core::time::Timestamp::from_millis(T0.as_millis() - 30 * 86_400_000);
    let demand = archive.demand(since, now, DAY).await.unwrap();
    let find = |button: &str| -> &ButtonDemand {
        demand
            .iter()
            .find(|d| d.button == button)
            .unwrap_or_else(|| panic!("no {button} in {demand:?}"))
    };
    assert_eq!(demand.len(), 2, "{demand:?}");
    assert_eq!(find("B01").incidents, 2);
    assert_eq!(find("B02").incidents, 1);
    // Same day's incidents weigh under 1 each but over ½ (less than a day old); two days
    // older is two half-lives: a quarter of the weight, per incident.
    let b01 = find("B01").weight;
    let b02 = find("B02").weight;
    assert!(b01 > 1.0 && b01 < 2.0, "{demand:?}");
    assert!(((b01 / 2.0) / b02 - 4.0).abs() < 1e-9, "{demand:?}");

    // A period starting after B02's incident leaves it out.
    let since = centinela_core::time::Timestamp::from_millis(T0.as_millis() - 86_400_000);
    let recent = archive.demand(since, now, DAY).await.unwrap();
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0].button, "B01");

    // Nothing before the first incident.
    let empty = archive.demand(T0, T0, DAY).await.unwrap();
    assert!(empty.is_empty(), "{empty:?}");
}

#[tokio::test]
async fn demand_counts_and_weighs_archived_incidents_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
    let archive = Archive::open(&url).unwrap();
    demand_case(archive.clone()).await;
    archive.close().await;
}

#[tokio::test]
async fn demand_counts_and_weighs_archived_incidents_on_postgres() {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let archive = Archive::open(&server.url()).unwrap();
    demand_case(archive.clone()).await;
    archive.close().await;
    drop(server);
}
