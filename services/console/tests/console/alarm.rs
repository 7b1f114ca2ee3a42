//! Issue 18, item 3: alarms nobody can miss. The shift starts with a key press (a trusted
//! input, which browsers require before a page may sound); a new incident's alarm then repeats
//! until someone acknowledges it, louder and faster past the acknowledgement target; a
//! tampered button and an offline camera sound their own sounds and are listed in the alerts
//! panel until a supervisor clears them (an operator's click is refused). Sounds are counted
//! through the page's own hook, `window.centinelaAlarm`.

use serde_json::json;

use centinela_proto::v1;
use centinela_testkit::browser::{self, Browser, Page};

use crate::i18n::{sign_in, sign_out};
use crate::{
    ANA, DEADLINE, Harness, LUIS, artifacts_dir, card, expect_toast, js, no_page_problems,
    operators, signed_in_live,
};

const TAMPER_B03: &str = "#alerts [data-alert=\"tamper:B03\"]";
const CAMERA_C01: &str = "#alerts [data-alert=\"camera_offline:C01\"]";

/// Waits until the page lists `alert` (a selector), or no longer does.
async fn listed(page: &Page<'_>, what: &str, alert: &str, shown: bool) {
    let test = format!("document.querySelector({})", js(alert));
    let expression = if shown {
        format!("!!{test}")
    } else {
        format!("!{test}")
    };
    page.wait_for(what, &expression, DEADLINE).await;
}

/// Clicks the alert's clear button and waits for the toast: `refused` means the node's 403.
async fn click_clear(page: &Page<'_>, alert: &str, refused: bool) {
    page.click(&format!("{alert} .alert-clear")).await;
    if refused {
        let text = page
            .wait_for(
                "the refusal",
                "(() => { const t = document.getElementById('toast');
                    return !t.hidden && t.classList.contains('toast-error') ? t.textContent : null; })()",
                DEADLINE,
            )
            .await;
        let text = text.as_str().unwrap_or_default().to_string();
        assert!(
            text.contains("supervisor"),
            "the refusal says who may: {text}"
        );
    } else {
        expect_toast(page, "clearing an alert", "despejada").await;
    }
}

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

    // The alerts are the node's: a reload keeps them.
    page.goto(&harness.url("/")).await;
    signed_in_live(&page).await;
    listed(&page, "the tamper alert after a reload", TAMPER_B03, true).await;
    listed(&page, "the camera alert after a reload", CAMERA_C01, true).await;

    // An operator may not clear them: the node refuses, the alerts stay.
    sign_out(&page).await;
    sign_in(&page, LUIS).await;
    listed(&page, "the tamper alert for Luis", TAMPER_B03, true).await;
    click_clear(&page, TAMPER_B03, true).await;
    click_clear(&page, CAMERA_C01, true).await;
    let b03 = button(&harness, "B03").await;
    assert_eq!(b03.status, v1::ButtonStatus::Tampered as i32);
    assert!(b03.alert.is_some() && b03.clearances.is_empty(), "{b03:?}");
    listed(
        &page,
        "the tamper alert after the refusal",
        TAMPER_B03,
        true,
    )
    .await;
    listed(
        &page,
        "the camera alert after the refusal",
        CAMERA_C01,
        true,
    )
    .await;

    // A supervisor clears them: the tamper after inspection returns the button to service,
    // and the clearance names her.
    sign_out(&page).await;
    sign_in(&page, ANA).await;
    click_clear(&page, TAMPER_B03, false).await;
    listed(&page, "the tamper alert cleared", TAMPER_B03, false).await;
    click_clear(&page, CAMERA_C01, false).await;
    listed(&page, "the camera alert cleared", CAMERA_C01, false).await;
    page.wait_for(
        "the other cameras still listed",
        "document.querySelectorAll('#alerts [data-alert^=\"camera_offline:\"]').length === 14",
        DEADLINE,
    )
    .await;
    let b03 = button(&harness, "B03").await;
    assert_eq!(b03.status, v1::ButtonStatus::Online as i32);
    assert_eq!(b03.alert, None);
    assert_eq!(b03.clearances.len(), 1);
    assert_eq!(b03.clearances[0].kind, "tamper");
    assert_eq!(b03.clearances[0].cleared_by, "ana");

    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}

async fn button(harness: &Harness, id: &str) -> v1::Button {
    harness
        .node
        .operator()
        .list_buttons(v1::ListButtonsRequest {})
        .await
        .unwrap()
        .into_inner()
        .buttons
        .into_iter()
        .find(|b| b.id == id)
        .unwrap_or_else(|| panic!("button {id}"))
}
