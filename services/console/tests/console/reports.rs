//! Issue 19, item 5: the Reportes page. A node whose archive (an SQLite file) already holds a
//! known history; the console's link opens the page, which draws both charts (Chart.js,
//! vendored) from the report with the expected figures, fills the table, speaks Spanish with no
//! catalogue key missing, and its CSV download has the expected rows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use centinela_archive::{Archive, ArchivedIncident};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::seal::AuditKey;
use centinela_core::time::Timestamp;
use centinela_testkit::browser::{self, Browser};
use centinela_testkit::node::NodeBuilder;

use crate::i18n::sign_in;
use crate::{ANA, DEADLINE, Harness, artifacts_dir, no_page_problems, operators};

/// An incident at `button` first pressed at `at`: acknowledged after `ack_s` (if any), one unit
/// assigned and on scene after `(assigned_s, on_scene_s)` (if any), closed as `resolution`.
fn incident(
    id: &str,
    button: &str,
    at: Timestamp,
    ack_s: Option<u64>,
    unit: Option<(u64, u64)>,
    resolution: Resolution,
) -> Incident {
    let later = |s: u64| at.saturating_add(Duration::from_secs(s));
    let op = OperatorId::new("op-1").unwrap();
    let mut incident = Incident::open(
        IncidentId::new(id).unwrap(),
        ButtonId::new(button).unwrap(),
        CameraId::new("C01").unwrap(),
        Position::new(-12.0464, -77.03).unwrap(),
        at,
    );
    if let Some(ack) = ack_s {
        incident.acknowledge(op.clone(), later(ack)).unwrap();
    }
    if let Some((assigned, on_scene)) = unit {
        let unit = BrigadeId::new("U01").unwrap();
        incident
            .assign(unit.clone(), Actor::Operator(op.clone()), later(assigned))
            .unwrap();
        incident.unit_on_scene(&unit, later(on_scene)).unwrap();
    }
    incident
        .close(resolution, Actor::Operator(op), later(600))
        .unwrap();
    incident
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_page_charts_a_known_history_and_downloads_its_csv() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());

    // Two days ago (inside the page's default 30 days): B01 handled (ack 10 s, U01 assigned
    // 20 s, on scene 300 s) and pranked twice; B02 a false alarm acknowledged in 30 s.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = |minutes: u64| Timestamp::from_millis(now_ms - 2 * 86_400_000 + minutes * 60_000);
    let key = AuditKey::from_secret(b"reports page");
    let archive = Archive::open(&url).unwrap();
    // B01 in the Centro Histórico; B02's incident archived without a district (as before
    // districts existed).
    for mut incident in [
        incident(
            "r1",
            "B01",
            at(0),
            Some(10),
            Some((20, 300)),
            Resolution::Handled,
        ),
        incident("r2", "B01", at(10), None, None, Resolution::Prank),
        incident("r3", "B01", at(20), None, None, Resolution::Prank),
        incident("r4", "B02", at(30), Some(30), None, Resolution::FalseAlarm),
    ] {
        incident.seal(None, &key);
        let district = (incident.button.as_str() == "B01").then(|| "Centro Histórico".to_string());
        let entry = ArchivedIncident {
            incident,
            presses: Vec::new(),
            stills: Vec::new(),
            bookmarks: Vec::new(),
            district,
        };
        archive
            .archive(&entry, &[], &key, Timestamp::from_millis(now_ms))
            .await
            .unwrap();
    }
    archive.close().await;

    let node = NodeBuilder::new("node-console")
        .console(operators())
        .archive(&url);
    let harness = Harness::start_node(node, false).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, ANA).await;

    // The console links to the page.
    page.click("#reports-link").await;
    page.wait_for(
        "the report drawn",
        "location.pathname === '/reportes' && document.body.dataset.report === 'ready'",
        DEADLINE,
    )
    .await;
    let charts = page
        .eval(
            "(() => { const c = (id) => Chart.getChart(id).data; const o = c('chart-outcomes'), r = c('chart-response');
              return { labels: o.labels, outcomes: o.datasets.map((d) => d.data), response: r.datasets.map((d) => d.data), lang: document.documentElement.lang, missing: window.centinelaI18n.missing() }; })()",
        )
        .await
        .unwrap();
    assert_eq!(
        charts,
        json!({
            "labels": ["B01", "B02"],
            // handled, pranks, false alarms, cancelled
            "outcomes": [[1, 0], [2, 0], [0, 1], [0, 0]],
            // p50 seconds: acknowledged, assigned, on scene
            "response": [[10, 30], [20, null], [300, null]],
            "lang": "es-PE",
            "missing": [],
        })
    );
    let table = page
        .eval("[...document.querySelectorAll('#table tbody tr')].map((tr) => tr.dataset.key)")
        .await
        .unwrap();
    assert_eq!(table, json!(["B01", "B02", "all"]));
    let repeat = page
        .eval("document.getElementById('repeat').textContent")
        .await
        .unwrap();
    assert!(
        repeat.as_str().unwrap().contains("B01: 2 bromas"),
        "{repeat}"
    );

    // The download: the link's CSV, with the console's session.
    let csv = page
        .eval(
            "fetch(document.getElementById('csv').href).then(async (r) => ({ disposition: r.headers.get('content-disposition'), text: await r.text() }))",
        )
        .await
        .unwrap();
    assert_eq!(
        csv["disposition"],
        "attachment; filename=\"centinela-report-button.csv\""
    );
    let lines: Vec<&str> = csv["text"].as_str().unwrap().lines().collect();
    assert_eq!(
        lines,
        [
            "key,presses,incidents,handled,pranks,false_alarms,cancelled,prank_share,false_alarm_share,ack_p50_s,ack_p90_s,assigned_p50_s,assigned_p90_s,on_scene_p50_s,on_scene_p90_s",
            "B01,3,3,1,2,0,0,0.6667,0.0000,10,10,20,20,300,300",
            "B02,1,1,0,0,1,0,0.0000,1.0000,30,30,,,,",
            "all,4,4,1,2,1,0,0.5000,0.2500,10,30,20,20,300,300",
        ]
    );

    // Grouped by hour: the same incidents, one chart bar per hour they fell in.
    page.eval("document.getElementById('by').value = 'hour'; document.getElementById('by').dispatchEvent(new Event('change')); true")
        .await
        .unwrap();
    page.wait_for(
        "the report by hour",
        "document.body.dataset.report === 'ready' && document.getElementById('col-key').textContent === 'Hora del día'",
        DEADLINE,
    )
    .await;
    let by_hour = page
        .eval("Chart.getChart('chart-outcomes').data.datasets.flatMap((d) => d.data).reduce((a, b) => a + b, 0)")
        .await
        .unwrap();
    assert_eq!(by_hour, json!(4));

    // Grouped by district: B01's three incidents in theirs, B02's in the unknown group, named
    // in Spanish on the chart and the table.
    page.eval("document.getElementById('by').value = 'district'; document.getElementById('by').dispatchEvent(new Event('change')); true")
        .await
        .unwrap();
    page.wait_for(
        "the report by district",
        "document.body.dataset.report === 'ready' && document.getElementById('col-key').textContent === 'Distrito o sector'",
        DEADLINE,
    )
    .await;
    let by_district = page
        .eval(
            "(() => { const o = Chart.getChart('chart-outcomes').data;
              return { labels: o.labels, outcomes: o.datasets.map((d) => d.data),
                       rows: [...document.querySelectorAll('#table tbody tr')].map((tr) => [tr.dataset.key, tr.cells[0].textContent]) }; })()",
        )
        .await
        .unwrap();
    assert_eq!(
        by_district,
        json!({
            "labels": ["Centro Histórico", "Sin distrito registrado"],
            "outcomes": [[1, 0], [2, 0], [0, 1], [0, 0]],
            "rows": [
                ["Centro Histórico", "Centro Histórico"],
                ["unknown", "Sin distrito registrado"],
                ["all", "Total"],
            ],
        })
    );
    page.screenshot(&artifacts_dir().join("reportes.png")).await;

    no_page_problems(&browser);
    drop(page);
    drop(browser);
    harness.shutdown().await;
}
