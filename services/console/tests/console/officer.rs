//! Officer accounts (issue 17): an account with role `officer`, bound to one unit in the
//! operators configuration, signs in to the brigade app with user and password and then acts
//! for its unit only. Over real HTTP and gRPC against an in-process node whose edge is
//! enforced, no browser: the page's sign-in form posts the same `/brigada/api/login`.

use serde_json::json;
use tonic::Code;

use centinela_api::Security;
use centinela_console::config::Account;
use centinela_console::limits::LOGIN_PAIR_FAILURES_MAX;
use centinela_proto::client::{AuthChannel, Credentials};
use centinela_proto::v1;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_testkit::node::{NodeBuilder, TestNode};

use crate::http::{self, Reply};
use crate::{ANA, operators, weak_hash};

/// Rosa, an officer of unit U01.
const ROSA: (&str, &str) = ("rosa", "clave-de-rosa");
const FLEET_TOKEN: &str = "fleet-token-0123456789abcdef0123456789";

async fn node_with_an_officer() -> TestNode {
    let console = operators()
        .with_operators(vec![
            Account::officer(ROSA.0, Some("Rosa Mamani"), "U01", &weak_hash(ROSA.1)).unwrap(),
        ])
        .unwrap();
    let security = Security::enforced()
        .with_shared_device_token(FLEET_TOKEN)
        .unwrap()
        .with_cluster_secret(&"c".repeat(32))
        .unwrap();
    NodeBuilder::new("node-officer")
        .console(console)
        .security(security)
        .start()
        .await
}

fn grpc_as(node: &TestNode, who: (&str, &str)) -> OperatorClient<AuthChannel> {
    let credentials = Credentials::default()
        .with_operator(who.0, Some(who.1))
        .unwrap();
    OperatorClient::with_interceptor(node.channel.clone(), credentials)
}

async fn unit_status(node: &TestNode, id: &str) -> i32 {
    grpc_as(node, ANA)
        .list_units(v1::ListUnitsRequest {})
        .await
        .expect("a supervisor lists the units")
        .into_inner()
        .units
        .into_iter()
        .find(|u| u.id == id)
        .expect("the unit is listed")
        .status
}

fn login(who: (&str, &str)) -> String {
    json!({ "user": who.0, "password": who.1 }).to_string()
}

fn message(reply: &Reply) -> String {
    reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_signs_in_to_the_app_and_acts_only_for_its_unit() {
    let node = node_with_an_officer().await;
    let addr = node.http_addr();
    let source: std::net::IpAddr = "127.0.0.9".parse().unwrap();

    // Signed in with user and password: a session cookie (HttpOnly), the unit's state.
    let signed = http::post_from(source, addr, "/brigada/api/login", None, &login(ROSA)).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert_eq!(signed.json()["unit"]["id"], "U01");
    assert_eq!(signed.json()["officer"]["id"], "rosa");
    assert!(signed.header("set-cookie").unwrap().contains("HttpOnly"));
    assert_eq!(signed.header("cache-control"), Some("no-store"));
    let rosa = signed.cookie();
    let me = http::get(addr, "/brigada/api/me", Some(&rosa)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["unit"]["id"], "U01");

    // The app acts for U01: a position makes it live, a status change lands in the store.
    let position = http::post(
        addr,
        "/brigada/api/position",
        Some(&rosa),
        &json!({ "lat": -12.0465, "lon": -77.0301 }).to_string(),
    )
    .await;
    assert_eq!(position.status, 200, "{}", position.body);
    let out = http::post(
        addr,
        "/brigada/api/status",
        Some(&rosa),
        &json!({ "status": "out_of_service", "key": "rosa-1" }).to_string(),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["unit"]["status"], "out_of_service");
    assert_eq!(
        unit_status(&node, "U01").await,
        v1::UnitStatus::OutOfService as i32,
        "the operators see what the officer set"
    );

    // Never for another unit: 403, and U02 is untouched.
    let before = unit_status(&node, "U02").await;
    for (path, body) in [
        (
            "/brigada/api/position",
            json!({ "lat": -12.0465, "lon": -77.0301, "unit": "U02" }),
        ),
        (
            "/brigada/api/status",
            json!({ "status": "out_of_service", "unit": "U02", "key": "rosa-2" }),
        ),
        (
            "/brigada/api/ack",
            json!({ "incident": "I-20261204-000001", "unit": "U02", "key": "rosa-3" }),
        ),
    ] {
        let reply = http::post(addr, path, Some(&rosa), &body.to_string()).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(
            message(&reply).contains("cannot act as unit U02"),
            "{}",
            reply.body
        );
    }
    assert_eq!(unit_status(&node, "U02").await, before);

    // The console and its API refuse the officer's session (403, pointing at the app), and
    // the console's sign-in refuses the officer's right password.
    for path in [
        "/api/session",
        "/api/cluster",
        "/api/incidents/I-20261204-000001",
    ] {
        let reply = http::get(addr, path, Some(&rosa)).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(message(&reply).contains("/brigada/"), "{}", reply.body);
    }
    let radio = http::post(
        addr,
        "/api/units/U02/status",
        Some(&rosa),
        &json!({ "status": "available" }).to_string(),
    )
    .await;
    assert_eq!(radio.status, 403, "{}", radio.body);
    let home = http::get(addr, "/", Some(&rosa)).await;
    assert_eq!(
        home.header("location"),
        Some("/brigada/"),
        "{}",
        home.status
    );
    let console_login = http::post(
        addr,
        "/api/login",
        None,
        &json!({ "operator": ROSA.0, "password": ROSA.1 }).to_string(),
    )
    .await;
    assert_eq!(console_login.status, 403, "{}", console_login.body);
    assert!(console_login.header("set-cookie").is_none());

    // A console account is no officer: refused by the app with its right password.
    let ana = http::post(addr, "/brigada/api/login", None, &login(ANA)).await;
    assert_eq!(ana.status, 403, "{}", ana.body);
    assert!(message(&ana).contains("console account"), "{}", ana.body);
    assert!(ana.header("set-cookie").is_none());

    // The operator gRPC service refuses the officer's credentials: PermissionDenied.
    let mut officer = grpc_as(&node, ROSA);
    let incidents = officer
        .list_incidents(v1::ListIncidentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(incidents.code(), Code::PermissionDenied, "{incidents:?}");
    assert!(incidents.message().contains("/brigada/"), "{incidents:?}");
    let units = officer
        .list_units(v1::ListUnitsRequest {})
        .await
        .unwrap_err();
    assert_eq!(units.code(), Code::PermissionDenied, "{units:?}");

    // Signing out revokes the session: the cookie copied before is refused.
    let out = http::post(addr, "/brigada/api/logout", Some(&rosa), "{}").await;
    assert_eq!(out.status, 204, "{}", out.body);
    let replayed = http::get(addr, "/brigada/api/me", Some(&rosa)).await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    node.shutdown().await;
}

/// Guessing an officer's password is throttled exactly like an operator's: the same
/// per-account and per-source counts, 429 with `Retry-After`, no password checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_an_officers_password_is_throttled_like_an_operators() {
    let node = node_with_an_officer().await;
    let addr = node.http_addr();
    let guesser: std::net::IpAddr = "127.0.0.77".parse().unwrap();
    for i in 0..LOGIN_PAIR_FAILURES_MAX {
        let guess = (ROSA.0, &*format!("guess-{i}"));
        let wrong = http::post_from(guesser, addr, "/brigada/api/login", None, &login(guess)).await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
        assert_eq!(wrong.json()["error"]["code"], "unauthenticated");
    }
    let locked = http::post_from(guesser, addr, "/brigada/api/login", None, &login(ROSA)).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert_eq!(locked.json()["error"]["code"], "resource_exhausted");
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 1, "locked out for {wait} s");
    assert!(locked.header("set-cookie").is_none());
    // The console's sign-in counts the same throttle: the pair is locked there too.
    let console = http::post_from(
        guesser,
        addr,
        "/api/login",
        None,
        &json!({ "operator": ROSA.0, "password": ROSA.1 }).to_string(),
    )
    .await;
    assert_eq!(console.status, 429, "{}", console.body);
    node.shutdown().await;
}

/// The page's own sign-in form, in Chromium as a phone: user and password sign the officer in
/// as U01, **Salir** signs out and the session is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_officer_signs_in_from_the_phone_with_user_and_password() {
    let Some(chromium) = crate::browser::chromium() else {
        return;
    };
    let node = node_with_an_officer().await;
    let browser = crate::Browser::launch(&chromium, Some(crate::artifacts_dir())).await;
    let page = browser.new_page().await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
    )
    .await
    .expect("a phone's screen");
    page.goto(&node.http_url("/brigada/")).await;
    page.type_into("#user", ROSA.0).await;
    page.type_into("#password", ROSA.1).await;
    page.click("#signin-button").await;
    page.wait_for(
        "signed in as U01",
        "document.getElementById('unit-id').textContent === 'U01'",
        crate::DEADLINE,
    )
    .await;
    assert_eq!(
        page.eval("document.cookie.includes('centinela_session')")
            .await
            .unwrap(),
        json!(false),
        "the session cookie is HttpOnly: the page never sees it"
    );
    page.click("#signout").await;
    page.wait_for(
        "signed out",
        "!document.getElementById('signin').hidden",
        crate::DEADLINE,
    )
    .await;
    page.wait_for(
        "the session revoked",
        "fetch('/brigada/api/me').then((r) => r.status === 401)",
        crate::DEADLINE,
    )
    .await;
    crate::no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}
