//! The archive contract (`tests/contract`) against a real PostgreSQL: Debian's server, a
//! fresh cluster per case made by `initdb` in a temporary directory on a free loopback port,
//! stopped when the case ends, pass or panic (`centinela_testkit::postgres`). This suite never
//! skips: without the binaries it fails, saying how to install them.

#[macro_use]
mod contract;

use std::time::Duration;

use centinela_archive::retention::Archiver;
use centinela_archive::{Archive, History};
use centinela_core::ids::PressId;
use centinela_testkit::postgres::Postgres;
use contract::{T0, key, press_and_close, records};

async fn start() -> (Postgres, Archive) {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let archive = Archive::open(&server.url()).unwrap();
    (server, archive)
}

macro_rules! postgres_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (server, archive) = start().await;
                contract::$case(archive.clone()).await;
                archive.close().await;
                drop(server);
            }
        )*
    };
}

for_each_case!(postgres_cases);

/// The archive down while presses keep coming: presses are recorded as before, closed
/// incidents stay in the store (the backlog grows), and once it returns the backlog drains
/// with nothing lost.
#[tokio::test]
async fn an_archive_down_under_steady_presses_loses_nothing_and_drains_after() {
    let (mut server, archive) = start().await;
    let (_embedded, records) = records().await;
    let history = History {
        archive: archive.clone(),
        retention: Duration::from_secs(60),
        remove: true,
    };
    let now = T0.saturating_add(Duration::from_secs(3600));
    let mut archiver = Archiver::new(records.clone(), history, None, move || now);
    let mut expected = Vec::new();
    for n in 0..3 {
        expected.push(press_and_close(&records, n, T0).await.id);
    }
    assert_eq!(archiver.pass().await.unwrap().removed, 3);

    server.stop();
    // Presses and closes go on while the archive is down; each pass leaves them in the store.
    for round in 0..3 {
        for n in 0..4 {
            let at = T0.saturating_add(std::time::Duration::from_secs(10 * (round * 4 + n) as u64));
            expected.push(press_and_close(&records, 3 + round * 4 + n, at).await.id);
        }
        let pass = archiver.pass().await.unwrap();
        assert_eq!(
            pass.removed, 0,
            "nothing leaves the store while the archive is down"
        );
        assert_eq!(pass.backlog, 4 * (round + 1), "the backlog grows");
    }
    let (buttons, _) = records
        .snapshot::<centinela_core::button::Button>()
        .await
        .unwrap();
    let press = records
        .press(
            &buttons[0],
            &PressId::new("during").unwrap(),
            now,
            Duration::from_secs(60),
            None,
        )
        .await;
    assert!(
        press.is_ok(),
        "a press never depends on the archive: {press:?}"
    );

    server.restart();
    // Drains (a pass stops at the first failure, so it may take a couple of passes while
    // the pool reconnects).
    let give_up = std::time::Instant::now() + centinela_testkit::wait::DEADLINE;
    let drained = loop {
        match archiver.pass().await {
            Ok(pass) if pass.backlog == 0 => break pass,
            outcome => assert!(
                std::time::Instant::now() < give_up,
                "the backlog did not drain: {outcome:?}"
            ),
        }
        tokio::time::sleep(centinela_testkit::wait::POLL).await;
    };
    assert_eq!(drained.backlog, 0);
    assert!(records.closed_incidents().await.unwrap().is_empty());
    assert_eq!(archive.count().await.unwrap(), expected.len() as u64);
    for id in &expected {
        assert!(
            archive.get(id.as_str()).await.unwrap().is_some(),
            "{id} archived"
        );
    }
    let verification = archive.verify(&key()).await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.breaks);
    archive.close().await;
}
