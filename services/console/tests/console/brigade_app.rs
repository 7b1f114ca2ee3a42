//! The brigade app's server side (`/brigada/`), over real HTTP without a browser: who may sign
//! in, that a unit acts only as itself, and that actions follow the domain (refusals with the
//! current truth) and are applied once per idempotency key.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use centinela_api::Security;
use centinela_api::auth::token_digest_hex;
use centinela_proto::v1;
use centinela_testkit::node::{NodeBuilder, TestNode};
use centinela_testkit::wait;

use crate::http::{get, request_as};

pub const U01_TOKEN: &str = "u01-token-0123456789abcdef0123456789abcdef";
const U02_TOKEN: &str = "u02-token-0123456789abcdef0123456789abcdef";
/// U03 was issued this token, then its entry was removed from the devices file (revoked).
const U03_REVOKED: &str = "u03-token-0123456789abcdef0123456789abcdef";
const FLEET_TOKEN: &str = "fleet-token-0123456789abcdef0123456789";

/// An open node (gRPC calls without credentials are allowed, as in the demo) with per-unit
/// tokens for U01 and U02 in its devices file, and the shared device token.
pub async fn node_with_unit_tokens() -> TestNode {
    node_with_unit_tokens_and(centinela_console::Config::default()).await
}

/// [`node_with_unit_tokens`], with `console`'s settings (map tiles, accounts).
pub async fn node_with_unit_tokens_and(console: centinela_console::Config) -> TestNode {
    let devices = [("U01", U01_TOKEN), ("U02", U02_TOKEN)]
        .iter()
        .map(|(unit, token)| {
            format!(
                "[[devices]]\nkind = \"unit\"\nid = \"{unit}\"\ntoken_blake2b = \"{}\"\n",
                token_digest_hex(token)
            )
        })
        .collect::<String>();
    let security = Security::open()
        .with_devices_toml(&devices)
        .unwrap()
        .with_shared_device_token(FLEET_TOKEN)
        .unwrap();
    let node = NodeBuilder::new("node-brigada")
        .console(console)
        .security(security)
        .start()
        .await;
    node.wait_for_dispatcher().await;
    node
}

pub async fn unit(node: &TestNode, id: &str) -> v1::Unit {
    node.operator()
        .list_units(v1::ListUnitsRequest {})
        .await
        .expect("list units")
        .into_inner()
        .units
        .into_iter()
        .find(|u| u.id == id)
        .expect("the unit is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_units_own_token_signs_in_and_acts_only_as_that_unit() {
    let node = node_with_unit_tokens().await;
    let addr = node.http_addr();

    // The page, installable: manifest and service worker from the node itself.
    let page = get(addr, "/brigada/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("lang=\"es"), "Spanish first");
    assert!(page.body.contains("Ingreso de la unidad"), "{}", page.body);
    let english =
        crate::http::get_with(addr, "/brigada/", "Accept-Language: en-GB,en;q=0.8\r\n").await;
    assert!(english.body.contains("<html lang=\"en\"") && english.body.contains("Unit sign-in"));
    let chosen = get(addr, "/brigada/?lang=en", None).await;
    assert!(chosen.body.contains("Unit sign-in"));
    assert!(
        chosen
            .header("set-cookie")
            .unwrap()
            .contains("centinela_lang=en")
    );
    assert!(!page.body.contains("{{"), "every placeholder filled");
    assert!(page.body.contains("/brigada/manifest.webmanifest"));
    let manifest = get(addr, "/brigada/manifest.webmanifest", None).await;
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.json()["start_url"], "/brigada/");
    assert_eq!(get(addr, "/brigada/sw.js", None).await.status, 200);
    assert_eq!(get(addr, "/brigada/nothing.js", None).await.status, 404);

    // Who may sign in.
    let me = |token: &'static str| request_as(addr, "GET", "/brigada/api/me", token, None);
    let anonymous = get(addr, "/brigada/api/me", None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let wrong = me("not-a-token-of-this-city-at-all").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(
        wrong.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown device token"),
        "{}",
        wrong.body
    );
    let revoked = me(U03_REVOKED).await;
    assert_eq!(revoked.status, 401, "a revoked token: {}", revoked.body);
    let fleet = me(FLEET_TOKEN).await;
    assert_eq!(
        fleet.status, 403,
        "the shared token is no unit: {}",
        fleet.body
    );
    let signed = me(U01_TOKEN).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let state = signed.json();
    assert_eq!(state["unit"]["id"], "U01");
    assert_eq!(state["unit"]["status"], "offline", "not heard from yet");
    assert_eq!(state["assignment"], Value::Null);

    // U01's token cannot act for U02.
    let as_other = request_as(
        addr,
        "POST",
        "/brigada/api/position",
        U01_TOKEN,
        Some(&json!({ "lat": -12.0465, "lon": -77.0301, "unit": "U02" }).to_string()),
    )
    .await;
    assert_eq!(as_other.status, 403, "{}", as_other.body);
    assert!(
        as_other.body.contains("cannot act as unit U02"),
        "{}",
        as_other.body
    );
    let status_for_other = request_as(
        addr,
        "POST",
        "/brigada/api/status",
        U01_TOKEN,
        Some(&json!({ "status": "available", "unit": "U02", "key": "k-other" }).to_string()),
    )
    .await;
    assert_eq!(status_for_other.status, 403, "{}", status_for_other.body);
    assert_eq!(
        unit(&node, "U02").await.status,
        v1::UnitStatus::Offline as i32,
        "U02 untouched"
    );
    // Bad input is a clear 400.
    let nan = request_as(
        addr,
        "POST",
        "/brigada/api/position",
        U01_TOKEN,
        Some(r#"{"lat": 1000, "lon": 0}"#),
    )
    .await;
    assert_eq!(nan.status, 400, "{}", nan.body);
    assert!(nan.body.contains("latitude 1000"), "{}", nan.body);
    node.shutdown().await;
}

/// Reads the brigade app's live stream until its first `state` event.
async fn first_state_event(addr: std::net::SocketAddr, token: &str) -> Value {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /brigada/api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if let Some(at) = seen.find("event: state\ndata: ") {
                let rest = &seen[at + "event: state\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    return serde_json::from_str::<Value>(&rest[..end]).unwrap();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("a state event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_actions_follow_the_domain_once_per_key() {
    let node = node_with_unit_tokens().await;
    let addr = node.http_addr();
    let post = |path: &'static str, body: Value| {
        let body = body.to_string();
        async move { request_as(addr, "POST", path, U01_TOKEN, Some(&body)).await }
    };
    // The app reports where it is: U01 is live (the only live unit of the city).
    let position = post(
        "/brigada/api/position",
        json!({ "lat": -12.04600, "lon": -77.03080 }),
    )
    .await;
    assert_eq!(position.status, 200, "{}", position.body);
    wait::until("U01 available once heard from", || async {
        unit(&node, "U01").await.status == v1::UnitStatus::Available as i32
    })
    .await;

    let incident = node.press("B01", "brigada-1").await.incident_id;
    let state = wait::until("the assignment in the app", || async {
        let state = request_as(addr, "GET", "/brigada/api/me", U01_TOKEN, None)
            .await
            .json();
        (state["assignment"]["id"] == incident.as_str()).then_some(state)
    })
    .await;
    assert_eq!(state["unit"]["status"], "dispatched");
    assert_eq!(state["assignment"]["button"], "B01");
    assert!(
        state["assignment"]["place"]
            .as_str()
            .unwrap()
            .contains("Plaza Mayor"),
        "{state}"
    );
    let live = first_state_event(addr, U01_TOKEN).await;
    assert_eq!(live["assignment"]["id"], incident.as_str(), "{live}");

    // Acknowledge; the same key again is the same answer, not a second acknowledgement.
    let ack = post(
        "/brigada/api/ack",
        json!({ "incident": incident, "key": "k-ack" }),
    )
    .await;
    assert_eq!(ack.status, 200, "{}", ack.body);
    assert_eq!(ack.json()["unit"]["acked"], true);
    let again = post(
        "/brigada/api/ack",
        json!({ "incident": incident, "key": "k-ack" }),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["replayed"], true);

    // Out of order: clearing before arriving is the domain's refusal, with the truth.
    let early = post(
        "/brigada/api/status",
        json!({ "status": "available", "incident": incident, "key": "k-early", "outcome": "handled" }),
    )
    .await;
    assert_eq!(early.status, 409, "{}", early.body);
    let early = early.json();
    assert!(
        early["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not on scene yet"),
        "{early}"
    );
    assert_eq!(early["unit"]["status"], "dispatched", "the current truth");

    for (status, key) in [("en_route", "k-1"), ("on_scene", "k-2")] {
        let reply = post(
            "/brigada/api/status",
            json!({ "status": status, "incident": incident, "key": key }),
        )
        .await;
        assert_eq!(reply.status, 200, "{status}: {}", reply.body);
        assert_eq!(reply.json()["unit"]["status"], status);
    }
    // A retried en route (a new key: the page lost track) is harmless: already past it.
    let late = post(
        "/brigada/api/status",
        json!({ "status": "en_route", "incident": incident, "key": "k-1b" }),
    )
    .await;
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(late.json()["unit"]["status"], "on_scene");
    // An outcome outside the operators' vocabulary, or with another step, is a clear 400.
    let bogus = post(
        "/brigada/api/status",
        json!({ "status": "available", "incident": incident, "key": "k-bogus", "outcome": "not_found" }),
    )
    .await;
    assert_eq!(bogus.status, 400, "{}", bogus.body);
    assert!(
        bogus.body.contains("handled, prank, false_alarm"),
        "{}",
        bogus.body
    );
    let misplaced = post(
        "/brigada/api/status",
        json!({ "status": "on_scene", "incident": incident, "key": "k-misplaced", "outcome": "handled" }),
    )
    .await;
    assert_eq!(misplaced.status, 400, "{}", misplaced.body);
    assert!(
        misplaced.body.contains("goes with a clear only"),
        "{}",
        misplaced.body
    );
    let cleared = post(
        "/brigada/api/status",
        json!({ "status": "available", "incident": incident, "key": "k-3", "outcome": "false_alarm", "note": "nadie en el lugar" }),
    )
    .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    assert_eq!(cleared.json()["unit"]["status"], "available");
    assert_eq!(cleared.json()["assignment"], Value::Null);
    let record = node.incident(&incident).await;
    let steps: Vec<&str> = record
        .audit
        .iter()
        .filter(|e| e.action.starts_with("unit_"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "unit_acknowledged",
            "unit_en_route",
            "unit_on_scene",
            "unit_cleared"
        ],
        "each step once"
    );
    // The officer's outcome is on the incident, as the unit's own step.
    let outcomes: Vec<(&str, i32, Option<&str>)> = record
        .unit_outcomes
        .iter()
        .map(|o| (o.unit.as_str(), o.resolution, o.note.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [(
            "U01",
            v1::Resolution::FalseAlarm as i32,
            Some("nadie en el lugar")
        )]
    );
    let clear = record
        .audit
        .iter()
        .find(|e| e.action == "unit_cleared")
        .unwrap();
    assert_eq!(clear.actor, "unit:U01");
    assert_eq!(clear.detail, "false_alarm: nadie en el lugar");
    assert_eq!(record.resolution, v1::Resolution::Unspecified as i32);
    let bad_key = post("/brigada/api/heartbeat", json!({})).await;
    assert_eq!(bad_key.status, 200, "a heartbeat: {}", bad_key.body);
    let no_key = post(
        "/brigada/api/status",
        json!({ "status": "out_of_service", "key": "" }),
    )
    .await;
    assert_eq!(no_key.status, 400, "{}", no_key.body);
    node.shutdown().await;
}

// ---- the page, in a phone ---------------------------------------------------------------------

/// Where the officer's phone says it is: next to U01's post, a few metres from B01.
pub const PHONE: (f64, f64) = (-12.04610, -77.03010);

/// Makes `page` a phone: a 390×844 touch screen at `PHONE`, geolocation granted to `node`'s
/// origin, asking for Spanish (the app's words follow `Accept-Language`).
pub async fn as_phone(browser: &crate::Browser, page: &crate::Page<'_>, node: &TestNode) {
    for (method, params) in [
        (
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
        ),
        (
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": true, "maxTouchPoints": 5 }),
        ),
        (
            "Emulation.setGeolocationOverride",
            json!({ "latitude": PHONE.0, "longitude": PHONE.1, "accuracy": 8 }),
        ),
        ("Network.enable", json!({})),
        (
            "Network.setExtraHTTPHeaders",
            json!({ "headers": { "Accept-Language": "es-PE,es;q=0.9" } }),
        ),
    ] {
        page.call(method, params).await.expect(method);
    }
    browser
        .call(
            None,
            "Browser.grantPermissions",
            json!({ "origin": node.http_url(""), "permissions": ["geolocation"] }),
        )
        .await
        .expect("grant geolocation");
}

async fn unit_steps(node: &TestNode, incident: &str, action: &str) -> usize {
    node.incident(incident)
        .await
        .audit
        .iter()
        .filter(|e| e.action == action && e.actor.ends_with("U01"))
        .count()
}

/// The brigade app in headless Chromium as a phone (viewport, touch, geolocation override):
/// sign in as U01; the phone's position reaches the unit list; a press nearby is assigned to
/// U01 and the page rings; acknowledge, en route (tapped while the network is off: it arrives
/// once when it is back), on scene and clear move the incident and the unit (checked through
/// the `Operator` service, as `centinela units` and `centinela incident` read them).
/// Screenshots: `brigade-assignment.png`, `brigade-status.png` in the artifacts directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_officer_works_an_incident_from_the_phone() {
    let Some(chromium) = crate::browser::chromium() else {
        return;
    };
    let node = node_with_unit_tokens().await;
    let browser = crate::Browser::launch(&chromium, Some(crate::artifacts_dir())).await;
    let page = browser.new_page().await;
    as_phone(&browser, &page, &node).await;

    page.goto(&node.http_url("/brigada/")).await;
    assert_eq!(
        page.eval("document.documentElement.lang.startsWith('es')")
            .await
            .unwrap(),
        json!(true)
    );
    page.type_into("#token", U01_TOKEN).await;
    page.click("#signin-button").await;
    page.wait_for(
        "signed in as U01",
        "document.getElementById('unit-id').textContent === 'U01'",
        crate::DEADLINE,
    )
    .await;

    // The phone's position, in the unit list within seconds.
    wait::until("U01 at the phone's position, available", || async {
        let u = unit(&node, "U01").await;
        let at = u.position.unwrap_or_default();
        let there = (at.lat - PHONE.0).abs() < 1e-6 && (at.lon - PHONE.1).abs() < 1e-6;
        (there && u.status == v1::UnitStatus::Available as i32).then_some(())
    })
    .await;

    // A press nearby: assigned to U01, and the page rings until acknowledged.
    let incident = node.press("B01", "phone-1").await.incident_id;
    page.wait_for(
        "the page rings",
        "window.__brigada.rings >= 1 && window.__brigada.ringing",
        crate::DEADLINE,
    )
    .await;
    assert_eq!(node.incident(&incident).await.units, ["U01"]);
    page.wait_for(
        "the assignment shown",
        "document.getElementById('a-place').textContent.includes('Plaza Mayor')",
        crate::DEADLINE,
    )
    .await;
    page.screenshot(&crate::artifacts_dir().join("brigade-assignment.png"))
        .await;

    page.click("#do-ack").await;
    wait::until("U01 acknowledged", || async {
        unit(&node, "U01").await.acked
    })
    .await;
    assert_eq!(
        page.eval("window.__brigada.ringing").await.unwrap(),
        json!(false)
    );

    // En route while the phone has no network: queued, shown pending, sent once when back.
    page.call(
        "Network.emulateNetworkConditions",
        json!({ "offline": true, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
    )
    .await
    .expect("go offline");
    page.click("#do-en-route").await;
    page.wait_for(
        "en route pending",
        "window.__brigada.pending().length === 1 && document.getElementById('pending').textContent.length > 0",
        crate::DEADLINE,
    )
    .await;
    assert_eq!(
        unit(&node, "U01").await.status,
        v1::UnitStatus::Dispatched as i32,
        "nothing arrived while offline"
    );
    page.call(
        "Network.emulateNetworkConditions",
        json!({ "offline": false, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
    )
    .await
    .expect("back online");
    wait::until("U01 en route", || async {
        unit(&node, "U01").await.status == v1::UnitStatus::EnRoute as i32
    })
    .await;
    page.wait_for(
        "nothing pending",
        "window.__brigada.pending().length === 0",
        crate::DEADLINE,
    )
    .await;
    assert_eq!(
        unit_steps(&node, &incident, "unit_en_route").await,
        1,
        "en route arrived once"
    );

    page.wait_for(
        "on scene enabled",
        "!document.getElementById('do-on-scene').disabled",
        crate::DEADLINE,
    )
    .await;
    page.click("#do-on-scene").await;
    wait::until("U01 on scene", || async {
        unit(&node, "U01").await.status == v1::UnitStatus::OnScene as i32
    })
    .await;
    page.wait_for(
        "clear enabled",
        "!document.getElementById('do-clear').disabled",
        crate::DEADLINE,
    )
    .await;
    page.click("#do-clear").await;
    wait::until("U01 cleared and available", || async {
        unit(&node, "U01").await.status == v1::UnitStatus::Available as i32
    })
    .await;
    for step in [
        "unit_acknowledged",
        "unit_en_route",
        "unit_on_scene",
        "unit_cleared",
    ] {
        assert_eq!(unit_steps(&node, &incident, step).await, 1, "{step} once");
    }
    page.wait_for(
        "the status screen",
        "!document.getElementById('idle').hidden && window.__brigada.pending().length === 0",
        crate::DEADLINE,
    )
    .await;
    page.screenshot(&crate::artifacts_dir().join("brigade-status.png"))
        .await;

    // English on request; signing out stops the position reports and forgets the token.
    // The switch renders the page again in English (remembered); the app comes back signed in.
    page.click("#lang").await;
    page.wait_for(
        "the app in English, signed in",
        "document.documentElement?.lang === 'en' && document.getElementById('home')?.hidden === false \
         && document.getElementById('unit-id').textContent === 'U01'",
        crate::DEADLINE,
    )
    .await;
    page.click("#signout").await;
    page.wait_for(
        "signed out",
        "!document.getElementById('signin').hidden && localStorage.getItem('brigada.token') === null",
        crate::DEADLINE,
    )
    .await;
    crate::no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}

/// The link `centinela unit-token --console-url` prints as a QR code: opening
/// `/brigada/#token=...` signs the phone in as the unit, and the token leaves the address bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_signs_in_from_the_qr_link_and_forgets_it_in_the_address_bar() {
    let Some(chromium) = crate::browser::chromium() else {
        return;
    };
    let node = node_with_unit_tokens().await;
    let browser = crate::Browser::launch(&chromium, None).await;
    let page = browser.new_page().await;
    page.call(
        "Emulation.setGeolocationOverride",
        json!({ "latitude": PHONE.0, "longitude": PHONE.1, "accuracy": 8 }),
    )
    .await
    .expect("geolocation override");
    browser
        .call(
            None,
            "Browser.grantPermissions",
            json!({ "origin": node.http_url(""), "permissions": ["geolocation"] }),
        )
        .await
        .expect("grant geolocation");
    page.goto(&node.http_url(&format!("/brigada/#token={U01_TOKEN}")))
        .await;
    page.wait_for(
        "signed in as U01 from the link",
        "document.getElementById('unit-id').textContent === 'U01'",
        crate::DEADLINE,
    )
    .await;
    let bar = page.eval("location.href").await.unwrap();
    let bar = bar.as_str().unwrap();
    assert!(
        !bar.contains(U01_TOKEN),
        "the token left the address bar: {bar}"
    );
    assert!(bar.ends_with("/brigada/"), "{bar}");
    assert_eq!(
        page.eval("localStorage.getItem('brigada.token')")
            .await
            .unwrap(),
        json!(U01_TOKEN),
        "kept for the next visit"
    );
    crate::no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}

/// The console's radio control (`POST /api/units/{id}/status`): sets a unit by hand as the
/// signed-in operator; refuses what is not set by hand, half a position, and strangers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_sets_a_unit_by_radio_as_the_signed_in_operator() {
    let harness = crate::Harness::start(crate::operators(), false).await;
    let addr = harness.node.http_addr();
    let login = json!({ "operator": crate::ANA.0, "password": crate::ANA.1 }).to_string();
    let ana = crate::http::post(addr, "/api/login", None, &login)
        .await
        .cookie();
    let set = |body: Value, cookie: Option<String>| async move {
        crate::http::post(
            addr,
            "/api/units/U05/status",
            cookie.as_deref(),
            &body.to_string(),
        )
        .await
    };
    let stranger = set(json!({ "status": "available" }), None).await;
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    let radioed = set(
        json!({ "status": "available", "lat": -12.0470, "lon": -77.0310 }),
        Some(ana.clone()),
    )
    .await;
    assert_eq!(radioed.status, 200, "{}", radioed.body);
    let radioed = radioed.json();
    assert_eq!(radioed["status"], "available");
    assert_eq!(radioed["radio_by"], crate::ANA.0);
    assert_eq!(radioed["lat"], -12.0470);
    let listed = unit(&harness.node, "U05").await;
    assert_eq!(
        listed.radio_by.as_deref(),
        Some(crate::ANA.0),
        "recorded as ana"
    );
    let bad = set(json!({ "status": "on_scene" }), Some(ana.clone())).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let half = set(json!({ "status": "available", "lat": 1.0 }), Some(ana)).await;
    assert_eq!(half.status, 400, "{}", half.body);
    harness.shutdown().await;
}
