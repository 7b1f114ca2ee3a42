//! Issue 18, item 4: verify first. At a site set `verify_first`, the brigade is recommended
//! and held until the operator confirms on camera: the incident panel shows the hold with its
//! button, nobody is assigned before the click, and the click sends the brigade, audited as
//! the operator.

use centinela_core::scenario::Scenario;
use centinela_testkit::browser::{self, Browser};
use centinela_testkit::wait;

use crate::i18n::sign_in;
use crate::{ANA, DEADLINE, Harness, artifacts_dir, expect_toast, no_page_problems, operators};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_first_holds_the_brigade_until_the_operator_confirms_on_camera() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    // The demo city with its first button verify-first, held far longer than the test runs.
    let mut scenario = Scenario::lima_centro();
    scenario.buttons[0].verify_first = true;
    scenario.buttons[0].verify_hold_s = Some(300);
    let held_button = scenario.buttons[0].id.to_string();
    let mut harness = Harness::start_with(operators(), true, scenario).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, ANA).await;

    let (incident, _) = harness.press(&held_button).await;
    crate::select_incident(&page, &incident).await;
    page.wait_for(
        "the hold and its confirm button",
        "(() => { const b = document.getElementById('act-verify'); return b && !b.disabled && document.getElementById('d-hold').textContent.includes('Verificar primero'); })()",
        DEADLINE,
    )
    .await;
    let held = harness.node.incident(&incident).await;
    assert!(held.held_until_ms.is_some(), "{held:?}");
    assert!(
        held.units.is_empty(),
        "nobody is sent before the confirmation: {held:?}"
    );

    page.click("#act-verify").await;
    expect_toast(&page, "the confirmation", "verificado").await;
    let sent = wait::until("a brigade sent after the confirmation", || async {
        let i = harness.node.incident(&incident).await;
        if i.units.is_empty() {
            Err(format!("units {:?}", i.units))
        } else {
            Ok(i)
        }
    })
    .await;
    assert_eq!(sent.held_until_ms, None);
    assert!(
        sent.audit
            .iter()
            .any(|e| e.actor == format!("operator:{}", ANA.0) && e.action == "verified"),
        "{:?}",
        sent.audit
    );
    page.wait_for(
        "the hold band gone",
        "document.getElementById('d-hold').textContent.trim() === ''",
        DEADLINE,
    )
    .await;
    no_page_problems(&browser);
    drop(page);
    drop(browser);
    harness.shutdown().await;
}
