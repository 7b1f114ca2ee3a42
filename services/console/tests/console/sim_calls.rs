//! Issue 23, item 5, in the browser: the caller is the demo's simulated button
//! (centinela-devices' `sip_call`) instead of sipp. After a press it calls the node; Luis
//! answers on the incident's card (`T`) and hears its generated voice (the page's `getStats`:
//! inbound audio with `totalAudioEnergy > 0`, played through an `<audio>` element); the
//! button counts Luis's RTP and decodes it (Chromium's fake microphone beeps: samples that
//! are not silence); Luis hangs up and the button gets the BYE.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use centinela_api::Security;
use centinela_devices::sip_call::{self, CallOptions, CallStats, Ended};
use centinela_testkit::browser::{self, Browser, FAKE_MEDIA};
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;

use crate::calls::answer_and_hear;
use crate::i18n::sign_in;
use crate::{Harness, LUIS, artifacts_dir, card, operators};

const TOKEN: &str = "fleet-token-for-the-simulated-button";

async fn start() -> Harness {
    let scenario = ScenarioBuilder::new("sim-calls")
        .buttons([Button::new("B01", -12.0464, -77.03)])
        .brigades([Brigade::new("U1", "foot", -12.046, -77.031)])
        .build();
    let security = Security::open().with_shared_device_token(TOKEN).unwrap();
    let node = NodeBuilder::new("node-sim-calls")
        .console(operators())
        .scenario(scenario)
        .security(security)
        .sip();
    Harness::start_node(node, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_hears_the_simulated_buttons_voice_and_the_button_hears_the_operator() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let mut harness = start().await;
    let sip = harness.node.node.sip_addr().unwrap();
    let browser = Browser::launch_with(&chromium, Some(artifacts_dir()), FAKE_MEDIA).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, LUIS).await;

    // B01 is pressed, and calls (it talks until the operator hangs up).
    let (incident, _) = harness.press("B01").await;
    let stats = Arc::new(CallStats::default());
    let (_stop, stop) = watch::channel(false);
    let call = {
        let stats = stats.clone();
        let options = CallOptions {
            gateway: sip,
            button: "B01".into(),
            password: Some(TOKEN.into()),
            talk: Duration::from_secs(600),
            seed: 23,
        };
        tokio::spawn(async move { sip_call::call(&options, &stats, stop).await })
    };
    // Luis answers and hears the generated voice...
    answer_and_hear(&page, &incident).await;
    // ...and the button hears him: RTP counted and decoded at the button.
    let received = wait::until("the operator's voice at the button", || async {
        (stats.rtp_received() > 25 && stats.received_peak() > 0)
            .then(|| (stats.rtp_received(), stats.received_peak()))
    })
    .await;
    eprintln!("at the button: {received:?} (packets, peak sample)");

    // Luis hangs up: the button gets the BYE and answers it.
    page.click(&format!("{} [data-call-action=hangup]", card(&incident)))
        .await;
    let report = call.await.unwrap().expect("the call");
    assert_eq!(report.ended, Ended::NodeHungUp);
    assert!(
        report.rtp_sent > 25 && report.rtp_received > 25,
        "{report:?}"
    );

    crate::no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}
