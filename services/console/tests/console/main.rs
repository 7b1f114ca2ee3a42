//! The operator console, end to end: an in-process node (embedded store, ports 0, Lima's
//! scenario, simulated brigade terminals and cameras) and Debian's headless Chromium driving
//! the page over the DevTools protocol (`centinela_testkit::browser`), like an operator would —
//! mouse clicks, key presses, typing.
//!
//! What the console promises, and the test that holds it to it:
//! - a console opened before a press shows the new incident live, without a reload:
//!   `presses_appear_live_and_ui_actions_reach_the_operator_api`;
//! - acknowledge, classify, dispatch, prank and resolve done through the page change the state
//!   the CLI sees (read back through the `Operator` gRPC service), audited with the signed-in
//!   operator's id: the same test;
//! - `centinela demo` opens signed in, the public map needs no login and shows no incident,
//!   and a console whose node dies says so and comes back by itself when a node answers
//!   again: `demo_opens_signed_in_shows_the_public_map_and_survives_a_node_restart`;
//! - bad input gets a JSON error with the gRPC-equivalent status, never a panic:
//!   `the_json_api_refuses_bad_requests_clearly` (no browser needed);
//! - hand-offs from the JSON API, and the agencies' signed callback (bad signature, huge body
//!   refused): `handoff::agency_acks_are_recorded_only_when_signed_and_bounded`; the incident
//!   panel hands off and shows the delivery: `handoff::the_panel_hands_off_and_shows_the_delivery`.
//!
//! - Spanish by default, English when chosen (and remembered per operator), no catalogue key
//!   missing, times in the city's zone; `Accept-Language` on the public page:
//!   `i18n::spanish_first_english_when_chosen_and_times_in_lima`.
//!
//! - alarms: the shift starts with a key that unlocks sound; a new incident's alarm repeats
//!   until it is acknowledged, and escalates past the target; tamper and camera-offline alerts
//!   sound and are listed: `alarm::the_incident_alarm_repeats_until_acknowledged_and_alerts_sound`.
//!
//! - the street map draws tiles from a tile server (a local one the test starts), with its
//!   markers, route lines and attribution, a marker click selects, and the grid shows when
//!   the tile server is down: `map::the_map_draws_street_tiles_and_falls_back_to_the_grid`.
//!
//! - where to post the brigades: computed from the page, drawn on the street map and the grid
//!   at the posts `Operator.PlanPosts` returns, with the coverage before and after; bad input
//!   shows the node's reason:
//!   `posts::posts_computed_from_the_page_are_drawn_at_the_planned_places_on_streets_and_grid`.
//!
//! - the Reportes page draws its charts from a known archived history and downloads the
//!   expected CSV: `reports::the_reports_page_charts_a_known_history_and_downloads_its_csv`.
//!
//! - live video from an RTSP camera (GStreamer's) decoded by the page, one upstream session
//!   for two consoles, reconnecting, a refused password: `video::*`.
//!
//! - the intercom: a button's call (sipp) rings on its card, escalates unanswered past the
//!   target, is answered in the page (WebRTC, the caller heard), held, hung up from either
//!   side, one operator per call: `calls::an_operator_answers_a_buttons_call_in_the_console_and_either_side_hangs_up`.
//!   With `--record-calls` the call is kept as a WAV whose SHA-256 is in the audit trail,
//!   served to supervisors only and refused once altered on disk:
//!   `calls::a_recorded_call_is_kept_with_its_incident_and_served_to_supervisors_only`.
//!   The answering operator's page closes with the caller on the line: the call rings again
//!   on another operator's page, who answers and hears it:
//!   `calls::a_closed_operator_page_returns_the_call_to_ringing_and_another_operator_answers`.
//!
//! Screenshots are left in `target/artifacts/` (or `$CENTINELA_ARTIFACTS_DIR`):
//! `console.png`, `console-demo.png`, `public.png`, `login.png`.
//!
//! Without Chromium the browser tests skip with a message, except under CI (`CI` set), where
//! they fail: `scripts/test.sh` installs Debian's `chromium`. Nothing asserts on timing: every
//! wait polls a condition under a generous deadline, so a slow machine is slower, never red.

mod alarm;
mod brigade_app;
mod calls;
mod calls_cluster;
mod camera;
mod handoff;
mod http;
mod i18n;
mod map;
mod officer;
mod posts;
mod reports;
mod sim_calls;
mod verify;
mod video;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHasher};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use centinela_console::Config;
use centinela_console::config::{Account, Role};
use centinela_core::scenario::Scenario;
use centinela_devices::SimOptions;
use centinela_devices::onvif_fleet::OnvifFleet;
use centinela_onvif::credentials::{Credentials as CameraCredentials, Login as CameraLogin};
use centinela_proto::client::{Credentials, Failover};
use centinela_proto::v1;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_testkit::browser::{self, Browser, Page};
use centinela_testkit::node::{NodeBuilder, StoreConfig, TestNode};

/// How long a page may take to show something. Generous on purpose: the page normally shows a
/// press within tens of milliseconds, but a loaded CI machine starting Chromium is slow. (Waits
/// on the node's state take the test kit's default, 60 s.)
const DEADLINE: Duration = Duration::from_secs(30);

const ANA: (&str, &str) = ("ana", "clave-de-ana");
const LUIS: (&str, &str) = ("luis", "clave-de-luis");

// ---- the harness ----------------------------------------------------------------------------

/// A node, gRPC clients of it (the CLI's path), and optionally the device simulator.
struct Harness {
    node: TestNode,
    operator: OperatorClient<Channel>,
    devices: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    presses: u32,
}

impl Harness {
    async fn start(console: Config, devices: bool) -> Harness {
        Self::start_on(console, devices, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A node whose HTTP server listens on `http_addr` (a fixed port: a node restarting).
    async fn start_on(console: Config, devices: bool, http_addr: SocketAddr) -> Harness {
        let node = NodeBuilder::new("node-console")
            .http_addr(http_addr)
            .console(console);
        Self::start_node(node, devices).await
    }

    /// A node with its own scenario (the demo's by default).
    async fn start_with(
        console: Config,
        devices: bool,
        scenario: centinela_core::scenario::Scenario,
    ) -> Harness {
        let node = NodeBuilder::new("node-console")
            .console(console)
            .scenario(scenario);
        Self::start_node(node, devices).await
    }

    async fn start_node(node: NodeBuilder, devices: bool) -> Harness {
        let node = node.start().await;
        let grpc = node.grpc_url();
        let devices = devices.then(|| {
            let failover = Failover::new(vec![grpc], Credentials::new(None).unwrap());
            let options = SimOptions {
                quiet: true,
                speedup: 5.0,
                ..SimOptions::default()
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let _ = centinela_devices::run(failover, options, async {
                    let _ = stopped.await;
                })
                .await;
            });
            (stop, task)
        });
        // Recommendations need the leader's dispatcher.
        node.wait_for_dispatcher().await;
        Harness {
            operator: node.operator(),
            node,
            devices,
            presses: 0,
        }
    }

    fn url(&self, path: &str) -> String {
        self.node.http_url(path)
    }

    /// Presses `button` through the device API with a fresh press id: (incident, duplicate).
    async fn press(&mut self, button: &str) -> (String, bool) {
        self.presses += 1;
        let press_id = format!("console-test-{}", self.presses);
        let reply = self.node.press(button, &press_id).await;
        (reply.incident_id, reply.duplicate)
    }

    async fn shutdown(self) {
        if let Some((stop, task)) = self.devices {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        drop(self.operator);
        self.node.shutdown().await;
    }
}

/// An argon2id PHC string with small parameters: the configuration accepts any argon2 hash,
/// and debug builds check the recommended parameters slowly.
fn weak_hash(password: &str) -> String {
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// Ana (a supervisor) and Luis (an operator).
fn operators() -> Config {
    Config::default()
        .with_operators(vec![
            Account::new(
                ANA.0,
                Some("Ana Quispe"),
                Role::Supervisor,
                &weak_hash(ANA.1),
            )
            .unwrap(),
            Account::new(
                LUIS.0,
                Some("Luis Huamán"),
                Role::Operator,
                &weak_hash(LUIS.1),
            )
            .unwrap(),
        ])
        .unwrap()
}

fn artifacts_dir() -> PathBuf {
    match std::env::var_os("CENTINELA_ARTIFACTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts"),
    }
}

/// A JavaScript string literal for `value`.
fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

fn card(incident: &str) -> String {
    format!("#queue [data-incident-id={}]", js(incident))
}

fn no_page_problems(browser: &Browser) {
    let problems = browser.problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "the page reported errors:\n{}",
        problems.join("\n")
    );
}

/// Waits for the toast an action shows, and fails with its text if the action was refused.
async fn expect_toast(page: &Page<'_>, action: &str, success: &str) {
    let outcome = page
        .wait_for(
            &format!("the outcome of {action}"),
            &format!(
                "(() => {{ const t = document.getElementById('toast');
                    if (t.hidden) return null;
                    if (t.classList.contains('toast-error')) return 'error: ' + t.textContent;
                    return t.textContent.includes({}) ? 'ok' : null; }})()",
                js(success)
            ),
            DEADLINE,
        )
        .await;
    assert_eq!(outcome, json!("ok"), "{action}");
}

async fn signed_in_live(page: &Page<'_>) {
    page.wait_for(
        "the live feed",
        "document.body.dataset.conn === 'live'",
        DEADLINE,
    )
    .await;
}

/// Waits for `incident`'s card in the queue and selects it (opening its panel).
async fn select_incident(page: &Page<'_>, incident: &str) {
    page.wait_for(
        &format!("the incident {incident} in the queue"),
        &format!("document.querySelector({})", js(&card(incident))),
        DEADLINE,
    )
    .await;
    page.click(&card(incident)).await;
}

/// A node on `scenario` whose cameras are the device simulator's ONVIF cameras, which accept
/// the account `centinela` with `camera_password`, the password the node signs in with.
/// `prepare` sees the fleet before the node starts (to point a camera at a stream); the fleet
/// returned lets a test read how a camera was steered.
async fn node_with_camera_fleet(
    name: &str,
    mut scenario: Scenario,
    camera_password: &str,
    console: Config,
    prepare: impl FnOnce(&OnvifFleet),
) -> (TestNode, OnvifFleet) {
    let login = CameraLogin {
        username: "centinela".into(),
        password: camera_password.into(),
    };
    let credentials = CameraCredentials::shared(&login.username, &login.password);
    let fleet = OnvifFleet::for_scenario(&mut scenario, &credentials, &login)
        .await
        .unwrap();
    prepare(&fleet);
    let node = NodeBuilder::new(name)
        .scenario(scenario)
        .cameras(credentials)
        .console(console)
        .start()
        .await;
    (node, fleet)
}

// ---- the tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presses_appear_live_and_ui_actions_reach_the_operator_api() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let started = Instant::now();
    let mut harness = Harness::start(operators(), true).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;

    // Not signed in: the console sends us to the login page; a wrong password is refused.
    page.goto(&harness.url("/?lang=en")).await;
    page.wait_for("the login page", "location.pathname === '/login'", DEADLINE)
        .await;
    page.type_into("#operator", ANA.0).await;
    page.type_into("#password", "not-her-password").await;
    page.click("#submit").await;
    page.wait_for(
        "the refusal",
        "!document.getElementById('error').hidden && document.getElementById('error').textContent",
        DEADLINE,
    )
    .await;
    page.screenshot(&artifacts_dir().join("login.png")).await;
    page.eval("document.getElementById('password').value = ''")
        .await
        .unwrap();
    page.type_into("#password", ANA.1).await;
    page.click("#submit").await;
    page.wait_for("the console", "location.pathname === '/'", DEADLINE)
        .await;
    signed_in_live(&page).await;
    page.wait_for(
        "the operator's name",
        "document.getElementById('who').textContent.includes('Ana Quispe')",
        DEADLINE,
    )
    .await;

    // A press while the console is open shows up without a reload, with the alert.
    page.eval("window.__sameDocument = true").await.unwrap();
    let pressed = Instant::now();
    let (incident, duplicate) = harness.press("B01").await;
    assert!(!duplicate);
    page.wait_for(
        "the new incident in the queue",
        &format!("document.querySelector({})", js(&card(&incident))),
        DEADLINE,
    )
    .await;
    let shown_after = pressed.elapsed();
    eprintln!("press → incident on the open console: {shown_after:?}");
    assert_eq!(
        page.eval("window.__sameDocument === true").await.unwrap(),
        json!(true),
        "the page was not reloaded"
    );
    page.wait_for(
        "the new-incident alert",
        &format!(
            "document.querySelector({}).classList.contains('flash') && document.body.classList.contains('alerting')",
            js(&card(&incident))
        ),
        DEADLINE,
    )
    .await;

    // A second press merges: the card shows the count.
    let (merged, duplicate) = harness.press("B01").await;
    assert!(duplicate);
    assert_eq!(merged, incident);
    page.wait_for(
        "the merged press count",
        &format!(
            "document.querySelector({} + ' .presses')?.textContent === '×2'",
            js(&card(&incident))
        ),
        DEADLINE,
    )
    .await;

    // Two more incidents, so the queue has an order to keep.
    let (second, _) = harness.press("B05").await;
    let (third, _) = harness.press("B09").await;
    for id in [&second, &third] {
        page.wait_for(
            "more incidents",
            &format!("document.querySelector({})", js(&card(id))),
            DEADLINE,
        )
        .await;
    }

    // Select the first incident and acknowledge it with the keyboard shortcut.
    page.click(&card(&incident)).await;
    page.wait_for(
        "the incident's detail",
        &format!(
            "document.querySelector('#d-head .incident-id')?.textContent === {}",
            js(&incident)
        ),
        DEADLINE,
    )
    .await;
    page.key('a').await;
    let acked = harness
        .node
        .wait_incident(&incident, "acknowledged by ana", |i| {
            i.acknowledged_by.as_deref() == Some(ANA.0)
        })
        .await;
    assert!(
        acked
            .audit
            .iter()
            .any(|e| e.action == "acknowledged" && e.actor == "operator:ana"),
        "the audit names the console's operator: {:?}",
        acked.audit
    );
    page.wait_for(
        "the acknowledgement on the page",
        "document.getElementById('act-ack').textContent.includes('Acknowledged by ana')",
        DEADLINE,
    )
    .await;

    // Classify: kind, priority and what the caller said.
    page.eval("document.getElementById('f-kind').value = 'robbery'; document.getElementById('f-priority').value = 'critical'")
        .await
        .unwrap();
    page.type_into("#f-name", "Rosa Mamani").await;
    page.type_into("#f-phone", "987 654 321").await;
    page.type_into(
        "#f-notes",
        "two men, one in a red jacket, ran towards Jr. Junín",
    )
    .await;
    page.click("#act-classify").await;
    expect_toast(&page, "classifying", "Classification saved").await;
    let classified = harness
        .node
        .wait_incident(&incident, "classified", |i| {
            i.kind == v1::IncidentKind::Robbery as i32
        })
        .await;
    assert_eq!(classified.priority, v1::Priority::Critical as i32);
    let caller = classified.caller.clone().expect("caller details recorded");
    assert_eq!(caller.name.as_deref(), Some("Rosa Mamani"));
    assert_eq!(caller.phone.as_deref(), Some("987 654 321"));
    assert!(
        classified
            .audit
            .iter()
            .any(|e| e.action == "classified" && e.actor == "operator:ana")
    );

    // Add a recommended brigade.
    let unit = page
        .wait_for(
            "recommended brigades",
            "document.querySelector('#d-recommend button[data-dispatch]')?.dataset.dispatch",
            DEADLINE,
        )
        .await;
    let unit = unit.as_str().expect("a unit id").to_string();
    page.click(&format!("#d-recommend button[data-dispatch={}]", js(&unit)))
        .await;
    expect_toast(&page, &format!("adding {unit}"), "added").await;
    harness
        .node
        .wait_incident(&incident, &format!("{unit} attached"), |i| {
            i.units.contains(&unit)
        })
        .await;
    page.wait_for(
        "the added unit in the detail",
        &format!(
            "document.getElementById('d-units').textContent.includes({})",
            js(&unit)
        ),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the audit timeline",
        "document.querySelectorAll('#d-audit li').length >= 4",
        DEADLINE,
    )
    .await;

    // Timers are colored against their target: amber from two thirds of it, red past it.
    let colors = page
        .eval(
            "(() => { const t = Date.now(); const make = (ago) => { const el = document.createElement('span');
                el.className = 'timer'; el.dataset.since = t - ago * 1000; el.dataset.target = 15;
                document.getElementById('queue').after(el); return el; };
              const spans = [make(2), make(12), make(40)];
              return new Promise((done) => setTimeout(() => { done(spans.map((el) => el.className));
                spans.forEach((el) => el.remove()); }, 600)); })()",
        )
        .await
        .unwrap();
    assert_eq!(
        colors,
        json!(["timer t-ok", "timer t-warn", "timer t-late"]),
        "timer colors against a 15 s target at 2, 12 and 40 s"
    );

    // The detail from its top, as an operator sees it after selecting the incident.
    page.eval("document.getElementById('detail').scrollTop = 0")
        .await
        .unwrap();
    let shot = artifacts_dir().join("console.png");
    page.screenshot(&shot).await;
    eprintln!("screenshot: {}", shot.display());

    // N jumps to the next incident still waiting for an operator.
    page.key('n').await;
    page.wait_for(
        "the next unacknowledged incident selected",
        &format!(
            "[{}, {}].includes(document.querySelector('#d-head .incident-id')?.textContent)",
            js(&second),
            js(&third)
        ),
        DEADLINE,
    )
    .await;

    // Prank (two clicks: arm, confirm) closes the first incident and releases its units.
    page.click(&card(&incident)).await;
    page.wait_for(
        "the first incident selected again",
        &format!(
            "document.querySelector('#d-head .incident-id')?.textContent === {}",
            js(&incident)
        ),
        DEADLINE,
    )
    .await;
    page.click("#act-prank").await;
    page.wait_for(
        "the prank button armed",
        "document.getElementById('act-prank').dataset.armed",
        DEADLINE,
    )
    .await;
    page.click("#act-prank").await;
    expect_toast(&page, "the prank", "Closed as prank").await;
    let pranked = harness
        .node
        .wait_incident(&incident, "closed as a prank", |i| {
            i.state == v1::IncidentState::Closed as i32
        })
        .await;
    assert_eq!(pranked.resolution, v1::Resolution::Prank as i32);
    assert!(pranked.units.is_empty(), "a prank releases every unit");
    let closure = pranked.audit.last().expect("an audit trail");
    assert_eq!(
        (closure.action.as_str(), closure.actor.as_str()),
        ("closed", "operator:ana")
    );
    page.wait_for(
        "the prank leaving the queue",
        &format!("!document.querySelector({})", js(&card(&incident))),
        DEADLINE,
    )
    .await;

    // Resolve the second one as handled.
    page.click(&card(&second)).await;
    page.wait_for(
        "the second incident selected",
        &format!(
            "document.querySelector('#d-head .incident-id')?.textContent === {}",
            js(&second)
        ),
        DEADLINE,
    )
    .await;
    page.eval("document.getElementById('resolve-kind').value = 'handled'")
        .await
        .unwrap();
    page.click("#act-resolve").await;
    page.wait_for(
        "the resolve button armed",
        "document.getElementById('act-resolve').dataset.armed",
        DEADLINE,
    )
    .await;
    page.click("#act-resolve").await;
    expect_toast(&page, "resolving", "Resolved").await;
    let resolved = harness
        .node
        .wait_incident(&second, "resolved", |i| {
            i.state == v1::IncidentState::Closed as i32
        })
        .await;
    assert_eq!(resolved.resolution, v1::Resolution::Handled as i32);
    page.wait_for(
        "the closed banner",
        "!document.getElementById('d-closed').hidden && document.getElementById('d-closed').textContent.includes('handled')",
        DEADLINE,
    )
    .await;

    // The third one is closed through the gRPC API, as `centinela resolve` does: the open
    // console follows, even though the incident was opened after it connected.
    harness
        .operator
        .clone()
        .resolve(v1::ResolveRequest {
            incident_id: third.clone(),
            operator_id: "op-cli".into(),
            resolution: v1::Resolution::FalseAlarm as i32,
        })
        .await
        .expect("resolve through the CLI's path");
    page.wait_for(
        "the incident closed elsewhere leaving the queue",
        &format!(
            "!document.querySelector({}) && document.querySelector('#closed [data-incident-id=' + JSON.stringify({}) + ']')",
            js(&card(&third)),
            js(&third)
        ),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "an empty queue",
        "document.getElementById('queue-count').textContent === '0'",
        DEADLINE,
    )
    .await;

    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
    eprintln!("browser test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_opens_signed_in_shows_the_public_map_and_survives_a_node_restart() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let mut harness = Harness::start(Config::demo(), true).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;

    // `/` on a demo node: straight into the live console as the demo operator.
    page.goto(&harness.url("/?lang=en")).await;
    assert_eq!(page.eval("location.pathname").await.unwrap(), json!("/"));
    signed_in_live(&page).await;
    page.wait_for(
        "the demo operator",
        "document.getElementById('who').textContent.includes('demo')",
        DEADLINE,
    )
    .await;
    let (incident, _) = harness.press("B02").await;
    select_incident(&page, &incident).await;
    page.wait_for(
        "the camera on target",
        "document.querySelector('.camera-box .camera-state')?.textContent === 'on target'",
        DEADLINE,
    )
    .await;
    page.wait_for(
        "brigades on the board",
        "document.querySelectorAll('#units tr').length === 12",
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the cluster panel",
        "document.getElementById('cluster').textContent.includes('node-console')",
        DEADLINE,
    )
    .await;
    page.screenshot(&artifacts_dir().join("console-demo.png"))
        .await;

    // The public map: no login, the buttons, and nothing about incidents or brigades.
    let public = browser.new_page().await;
    public.goto(&harness.url("/public/")).await;
    public
        .wait_for(
            "the buttons on the public map",
            "document.querySelectorAll('#map .map-button').length === 15",
            DEADLINE,
        )
        .await;
    let text = public
        .eval("document.body.innerText + document.getElementById('map').innerHTML")
        .await
        .unwrap();
    let text = text.as_str().unwrap();
    assert!(
        !text.contains(&incident),
        "the public map shows no incident"
    );
    assert!(!text.contains("U01"), "the public map shows no brigade");
    assert_eq!(
        public
            .eval("document.querySelectorAll('.map-incident, .map-unit').length")
            .await
            .unwrap(),
        json!(0)
    );
    public.screenshot(&artifacts_dir().join("public.png")).await;

    // The node dies: the console says it is reconnecting (and greys out) instead of showing
    // stale data as live ...
    let http_addr = harness.node.http_addr();
    harness.shutdown().await;
    page.wait_for(
        "the console to notice its node is gone",
        "document.body.dataset.conn === 'reconnecting' && document.getElementById('conn').textContent.includes('Reconnecting')",
        DEADLINE,
    )
    .await;
    // ... and when a node answers on that address again (a fresh process: a new session
    // key, an empty demo store) it signs in again and is live, without anyone touching it.
    // The console is in a background tab now (the public map opened after it): it must keep
    // up there too.
    let mut harness = Harness::start_on(Config::demo(), false, http_addr).await;
    signed_in_live(&page).await;
    let (after, _) = harness.press("B03").await;

    page.wait_for(
        "a press on the restarted node",
        &format!("document.querySelector({})", js(&card(&after))),
        DEADLINE,
    )
    .await;

    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}

/// Issue 21: password guessing, a cookie copied before sign-out, cached personal data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_locked_out_and_a_signed_out_cookie_is_refused() {
    use centinela_console::limits::LOGIN_PAIR_FAILURES_MAX;

    let harness = Harness::start(operators(), false).await;
    let addr = harness.node.http_addr();
    let login = |who: (&str, &str)| json!({ "operator": who.0, "password": who.1 }).to_string();
    let guesser: std::net::IpAddr = "127.0.0.66".parse().unwrap();
    let position: std::net::IpAddr = "127.0.0.7".parse().unwrap();

    for i in 0..LOGIN_PAIR_FAILURES_MAX {
        let guess = format!("guess-{i}");
        let wrong =
            http::post_from(guesser, addr, "/api/login", None, &login((ANA.0, &guess))).await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    // The next guess, even the right password, is refused before any check: 429, the wait.
    let locked = http::post_from(guesser, addr, "/api/login", None, &login(ANA)).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert_eq!(locked.json()["error"]["code"], "resource_exhausted");
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 1, "locked out for {wait} s");
    assert!(locked.header("set-cookie").is_none());

    // Ana at her own position signs in: a Secure, HttpOnly cookie, nothing cached.
    let ana = http::post_from(position, addr, "/api/login", None, &login(ANA)).await;
    assert_eq!(ana.status, 200, "{}", ana.body);
    let set_cookie = ana.header("set-cookie").unwrap();
    assert!(set_cookie.contains("; Secure") && set_cookie.contains("HttpOnly"));
    assert_eq!(ana.header("cache-control"), Some("no-store"));
    let captured = ana.cookie();
    for path in [
        "/api/session",
        "/api/cluster",
        "/api/incidents/nope",
        "/api/nothing",
    ] {
        let reply = http::get(addr, path, Some(&captured)).await;
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
    }
    assert_eq!(
        http::get(addr, "/", Some(&captured))
            .await
            .header("cache-control"),
        Some("no-store")
    );

    // Signing out revokes the session: the copy taken before is refused afterwards.
    let out = http::post(addr, "/api/logout", Some(&captured), "{}").await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(out.header("cache-control"), Some("no-store"));
    let replayed = http::get(addr, "/api/session", Some(&captured)).await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert_eq!(
        http::get(addr, "/", Some(&captured))
            .await
            .header("location"),
        Some("/login")
    );
    harness.shutdown().await;
}

/// Sessions are MACs every node sharing the console secret accepts, so a sign-out must reach
/// the other nodes: through a revocation in the store, looked up within `REVOCATION_RECHECK`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_signed_out_on_one_node_is_refused_on_another() {
    let store = centinela_store::EmbeddedStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_store, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = store
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    let console = operators()
        .with_session_secret("a-console-secret-both-nodes-share-0123456789")
        .unwrap();
    let node = |id: &'static str| {
        NodeBuilder::new(id)
            .store(StoreConfig::Etcd(vec![store_url.clone()]))
            .console(console.clone())
            .start()
    };
    let (one, two) = (node("n1").await, node("n2").await);
    let (one_addr, two_addr) = (one.http_addr(), two.http_addr());

    let login = json!({ "operator": ANA.0, "password": ANA.1 }).to_string();
    let captured = http::post(one_addr, "/api/login", None, &login)
        .await
        .cookie();
    let on_two = http::get(two_addr, "/api/session", Some(&captured)).await;
    assert_eq!(
        on_two.status, 200,
        "one cookie, every node: {}",
        on_two.body
    );

    let out = http::post(one_addr, "/api/logout", Some(&captured), "{}").await;
    assert_eq!(out.status, 204);
    assert_eq!(
        http::get(one_addr, "/api/session", Some(&captured))
            .await
            .status,
        401
    );
    centinela_testkit::wait::until("node two refuses the signed-out cookie", || {
        let captured = captured.clone();
        async move {
            let reply = http::get(two_addr, "/api/session", Some(&captured)).await;
            (reply.status == 401).then_some(())
        }
    })
    .await;
    one.shutdown().await;
    two.shutdown().await;
    let _ = stop_store.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_refuses_bad_requests_clearly() {
    let mut harness = Harness::start(operators(), false).await;
    let addr = harness.node.http_addr();

    // Not signed in: 401 JSON on the API, a redirect to the login page for `/`.
    let reply = http::get(addr, "/api/session", None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["code"], "unauthenticated");
    assert_eq!(
        http::get(addr, "/", None).await.header("location"),
        Some("/login")
    );
    assert_eq!(
        http::post(addr, "/api/incidents/X/ack", None, "{}")
            .await
            .status,
        401
    );
    assert_eq!(http::get(addr, "/api/events", None).await.status, 401);

    // Signing in: wrong password 401, malformed 400, right one sets an HttpOnly cookie.
    let login = |who: (&str, &str)| json!({ "operator": who.0, "password": who.1 }).to_string();
    let wrong = http::post(addr, "/api/login", None, &login((ANA.0, "nope"))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        http::post(addr, "/api/login", None, "{\"operator\": 1}")
            .await
            .status,
        400
    );
    let ana = http::post(addr, "/api/login", None, &login(ANA)).await;
    assert_eq!(ana.status, 200, "{}", ana.body);
    assert!(ana.header("set-cookie").unwrap().contains("HttpOnly"));
    assert_eq!(ana.json()["role"], "supervisor");
    let ana = ana.cookie();
    let luis = http::post(addr, "/api/login", None, &login(LUIS))
        .await
        .cookie();
    assert_eq!(
        http::post(addr, "/api/login/demo", None, "{}").await.status,
        404
    );

    let (incident, _) = harness.press("B03").await;
    let act = |verb: &str| format!("/api/incidents/{incident}/{verb}");

    // Bad input: 400 with a message; unknown id: 404; a refused transition: 409.
    let bad_kind = http::post(addr, &act("classify"), Some(&ana), r#"{"kind": "alien"}"#).await;
    assert_eq!(bad_kind.status, 400);
    assert!(
        bad_kind.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alien")
    );
    let unknown_field = http::post(
        addr,
        &act("classify"),
        Some(&ana),
        r#"{"kind": "other", "x": 1}"#,
    )
    .await;
    assert_eq!(unknown_field.status, 400);
    let long_notes = json!({ "kind": "other", "caller": { "notes": "x".repeat(600) } }).to_string();
    assert_eq!(
        http::post(addr, &act("classify"), Some(&ana), &long_notes)
            .await
            .status,
        400
    );
    let not_json = http::request(
        addr,
        "POST",
        &act("ack"),
        Some(&ana),
        Some(("text/plain", "{}")),
    )
    .await;
    assert_eq!(not_json.status, 415);
    let unknown = http::post(
        addr,
        "/api/incidents/B03-000000-000000/ack",
        Some(&ana),
        "{}",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()["error"]["code"], "not_found");
    let invalid_id = http::post(addr, "/api/incidents/bad%20id/ack", Some(&ana), "{}").await;
    assert_eq!(invalid_id.status, 400, "{}", invalid_id.body);
    assert_eq!(
        http::post(addr, &act("ack"), Some(&luis), "{}")
            .await
            .status,
        200
    );
    let again = http::post(addr, &act("ack"), Some(&ana), "{}").await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["error"]["code"], "failed_precondition");
    // Verify first: an auto-dispatch site's incident has nothing held to confirm.
    let not_held = http::post(addr, &act("verify"), Some(&ana), "{}").await;
    assert_eq!(not_held.status, 409, "{}", not_held.body);
    assert!(
        not_held.body.contains("nothing is held"),
        "{}",
        not_held.body
    );
    let bad_resolution = http::post(
        addr,
        &act("resolve"),
        Some(&ana),
        r#"{"resolution": "done"}"#,
    )
    .await;
    assert_eq!(bad_resolution.status, 400);
    let bad_limit = http::get(
        addr,
        &format!("/api/incidents/{incident}/recommend?limit=many"),
        Some(&ana),
    )
    .await;
    assert_eq!(bad_limit.status, 400);
    assert_eq!(bad_limit.json()["error"]["code"], "invalid_argument");

    // Cancelling is a supervisor's call.
    let cancel = r#"{"resolution": "cancelled"}"#;
    assert_eq!(
        http::post(addr, &act("resolve"), Some(&luis), cancel)
            .await
            .status,
        403
    );
    let cancelled = http::post(addr, &act("resolve"), Some(&ana), cancel).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.json()["resolution"], "cancelled");
    let closed = harness.node.incident(&incident).await;
    assert_eq!(closed.acknowledged_by.as_deref(), Some(LUIS.0));
    assert_eq!(closed.audit.last().unwrap().actor, "operator:ana");
    assert_eq!(
        http::post(addr, &act("prank"), Some(&ana), "{}")
            .await
            .status,
        409
    );

    // Reads: the session, the cluster, recommendations for a closed incident refused.
    let session = http::get(addr, "/api/session", Some(&luis)).await.json();
    assert_eq!(session["role"], "operator");
    assert_eq!(session["targets"]["unit_ack_s"], 15);
    let cluster = http::get(addr, "/api/cluster", Some(&luis)).await.json();
    assert_eq!(cluster["leader"], "node-console");
    assert_eq!(http::get(addr, "/api/nope", Some(&luis)).await.status, 404);

    // The public feed: the buttons and nothing else, no login.
    let feed = http::get(addr, "/public/buttons.geojson", None).await;
    assert_eq!(feed.status, 200);
    assert_eq!(feed.json()["features"].as_array().unwrap().len(), 15);
    assert!(!feed.body.contains(&incident) && !feed.body.contains("U01"));
    for page in ["/login", "/public/", "/assets/console.js", "/assets/map.js"] {
        let reply = http::get(addr, page, None).await;
        assert_eq!(reply.status, 200, "{page}");
        assert!(reply.header("content-security-policy").is_some(), "{page}");
    }

    // Signing out clears the cookie.
    let out = http::post(addr, "/api/logout", Some(&ana), "{}").await;
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));

    harness.shutdown().await;
}
