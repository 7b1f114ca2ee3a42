//! Issue 18, item 3: alarms nobody can miss. The shift starts with a key press (a trusted
//! input, which browsers require before a page may sound); a new incident's alarm then repeats
//! until someone acknowledges it, louder and faster past the acknowledgement target; a
//! tampered button and an offline camera sound their own sounds and are listed in the alerts
//! panel. Sounds are counted through the page's own hook, `window.centinelaAlarm`.

use serde_json::json;

use centinela_proto::v1;
use centinela_testkit::browser::{self, Browser, Page};

use crate::i18n::sign_in;
use crate::{ANA, DEADLINE, Harness, artifacts_dir, card, js, no_page_problems, operators};

async fn number(page: &Page<'_>, expression: &str) -> u64 {
    page.eval(expression)
        .await
        .unwrap()
        .as_u64()
        .unwrap_or_else(|| panic!("{expression} is not a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_incident_alarm_repeats_until_acknowledged_and_alerts_sound() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    // No simulated devices: the cameras are offline from the start.
    let mut harness = Harness::start(operators(), false).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, ANA).await;

    // Before the shift starts nothing sounds, but the alerts are listed.
    page.wait_for(
        "the offline cameras listed",
        "document.querySelectorAll('#alerts [data-alert^=\"camera_offline:\"]').length === 15",
        DEADLINE,
    )
    .await;
    assert_eq!(
        page.eval("window.centinelaAlarm.started").await.unwrap(),
        json!(false)
    );
    assert_eq!(
        number(&page, "window.centinelaAlarm.plays.camera_offline").await,
        0
    );

    // The shift starts (key S): the sound is unlocked and what is wrong sounds once.
    page.key('s').await;
    page.wait_for(
        "the shift started with the camera-offline sound",
        "window.centinelaAlarm.started && window.centinelaAlarm.plays.camera_offline === 1",
        DEADLINE,
    )
    .await;
    assert_eq!(
        page.eval("window.centinelaAlarm.audio").await.unwrap(),
        json!("running"),
        "a trusted key press unlocks the page's audio"
    );

    // A tampered button: its own sound, and an alert.
    harness
        .node
        .buttons()
        .report_tamper(v1::TamperReport {
            button_id: "B03".into(),
            detail: "door opened".into(),
        })
        .await
        .unwrap();
    page.wait_for(
        "the tamper alert and its sound",
        "document.querySelector('#alerts [data-alert=\"tamper:B03\"]') && window.centinelaAlarm.plays.tamper === 1",
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the tamper alert on the map too",
        "document.querySelector('#map .map-button.health-tampered, #map .lf-button.health-tampered')",
        DEADLINE,
    )
    .await;

    // A press: the alarm sounds and keeps sounding while nobody acknowledges ...
    let (incident, _) = harness.press("B01").await;
    page.wait_for(
        "the incident",
        &format!("document.querySelector({})", js(&card(&incident))),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the alarm repeated",
        "window.centinelaAlarm.ringing && window.centinelaAlarm.plays.incident >= 3",
        DEADLINE,
    )
    .await;
    // ... escalating once the acknowledgement target (15 s) has passed: louder, faster, the
    // title flashing.
    page.wait_for(
        "the escalated alarm",
        "window.centinelaAlarm.escalated && window.centinelaAlarm.plays.escalated >= 2 && document.body.classList.contains('escalated')",
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the title flashing",
        "document.title.startsWith('🔴')",
        DEADLINE,
    )
    .await;
    page.screenshot(&artifacts_dir().join("console-alarm.png"))
        .await;

    // Acknowledged (key A on the selected incident): the alarm stops.
    page.click(&card(&incident)).await;
    page.key('a').await;
    page.wait_for(
        "the alarm to stop",
        "!window.centinelaAlarm.ringing && !document.body.classList.contains('escalated')",
        DEADLINE,
    )
    .await;
    let plays = number(&page, "window.centinelaAlarm.plays.incident").await;
    let checks = number(&page, "window.centinelaAlarm.checks").await;
    // The alarm loop runs 4 times a second: 40 more runs span far more than the repeat
    // interval, so a repeat would have happened by then.
    page.wait_for(
        "the alarm loop to run on",
        &format!("window.centinelaAlarm.checks >= {}", checks + 40),
        DEADLINE,
    )
    .await;
    assert_eq!(
        number(&page, "window.centinelaAlarm.plays.incident").await,
        plays,
        "no alarm after the acknowledgement"
    );
    let acked = harness.node.incident(&incident).await;
    assert_eq!(acked.acknowledged_by.as_deref(), Some("ana"));

    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}
