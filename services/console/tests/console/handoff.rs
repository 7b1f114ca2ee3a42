//! Hand-offs through the console's JSON API, and the agencies' callback
//! (`POST /api/handoff/{agency}/ack`): a well-signed acknowledgement is recorded on the
//! hand-off and in the incident's audit; a bad or missing signature, an unknown agency and a
//! huge body are refused and record nothing (no browser needed); and the incident panel's
//! hand-off section, driven in Chromium, shows the hand-off delivered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use centinela_console::Config;
use centinela_handoff::{Agencies, Setup, signature};
use centinela_testkit::node::NodeBuilder;

use centinela_testkit::browser::{self, Browser};

use crate::{DEADLINE, artifacts_dir, http, no_page_problems, signed_in_live};

const KEY: &str = "the agency's shared secret";

/// POSTs `body` to `path` with the signature header `signature` (if any) and a declared
/// `Content-Length` of `declared` (the body's own when `None`); returns status and body.
async fn raw_post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    signature: Option<&str>,
    declared: Option<usize>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        declared.unwrap_or(body.len())
    );
    if let Some(signature) = signature {
        head.push_str(&format!("X-Centinela-Signature: {signature}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {reply:?}"));
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agency_acks_are_recorded_only_when_signed_and_bounded() {
    let agencies = Agencies::parse(&format!(
        "[[agencies]]\nid = \"pnp\"\nname = \"Policía Nacional\"\n\
         url = \"http://127.0.0.1:9/cap\"\nhmac_key = \"{KEY}\"\n"
    ))
    .unwrap();
    let setup = Setup::new(
        agencies,
        centinela_handoff::cap::Sender::zone_named("America/Lima").unwrap(),
    );
    let node = NodeBuilder::new("handoff-console")
        .console(Config::demo())
        .handoff(setup)
        .start()
        .await;
    let addr = node.node.http_addr();
    let incident = node.press("B01", "handoff-press-1").await.incident_id;

    // The console hands it off, as an operator.
    let cookie = http::post(addr, "/api/login/demo", None, "{}")
        .await
        .cookie();
    let agencies = http::get(addr, "/api/agencies", Some(&cookie)).await;
    assert_eq!(agencies.status, 200, "{}", agencies.body);
    assert_eq!(agencies.json()[0]["id"], "pnp");
    let path = format!("/api/incidents/{incident}/handoffs");
    let made = http::post(
        addr,
        &path,
        Some(&cookie),
        &json!({"agency": "pnp", "note": "armed"}).to_string(),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let made = made.json();
    assert_eq!(made["created"], true);
    let cap_id = made["cap_id"].as_str().unwrap().to_string();
    let unknown = http::post(addr, &path, Some(&cookie), "{\"agency\": \"bomberos\"}").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(
        http::post(addr, &path, None, "{\"agency\": \"pnp\"}")
            .await
            .status,
        401
    );

    // A well-signed acknowledgement: recorded.
    let ack = json!({"incident": incident, "identifier": cap_id, "status": "received",
                     "note": "unit 12 on its way"})
    .to_string();
    let good = signature::sign(KEY.as_bytes(), ack.as_bytes());
    let (status, body) = raw_post(
        addr,
        "/api/handoff/pnp/ack",
        ack.as_bytes(),
        Some(&good),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Refused: a signature with another key, none, a tampered body, an unknown agency, a
    // message the hand-off never sent, a huge body (declared, and sent).
    let forged = signature::sign(b"not the agency's key", ack.as_bytes());
    let tampered = ack.replace("unit 12", "unit 13");
    let never_sent =
        json!({"incident": incident, "identifier": "centinela.other", "status": "x"}).to_string();
    let never_sent_signed = signature::sign(KEY.as_bytes(), never_sent.as_bytes());
    let huge = vec![b' '; 70 * 1024];
    let huge_signed = signature::sign(KEY.as_bytes(), &huge);
    for (what, path, body, signature, declared, expected) in [
        (
            "forged",
            "/api/handoff/pnp/ack",
            ack.as_bytes(),
            Some(forged.as_str()),
            None,
            401,
        ),
        (
            "unsigned",
            "/api/handoff/pnp/ack",
            ack.as_bytes(),
            None,
            None,
            401,
        ),
        (
            "tampered",
            "/api/handoff/pnp/ack",
            tampered.as_bytes(),
            Some(good.as_str()),
            None,
            401,
        ),
        (
            "unknown agency",
            "/api/handoff/samu/ack",
            ack.as_bytes(),
            Some(good.as_str()),
            None,
            401,
        ),
        (
            "never sent",
            "/api/handoff/pnp/ack",
            never_sent.as_bytes(),
            Some(never_sent_signed.as_str()),
            None,
            404,
        ),
        (
            "declared huge",
            "/api/handoff/pnp/ack",
            &b""[..],
            Some(good.as_str()),
            Some(10 * 1024 * 1024),
            413,
        ),
        (
            "sent huge",
            "/api/handoff/pnp/ack",
            &huge[..],
            Some(huge_signed.as_str()),
            None,
            413,
        ),
    ] {
        let (status, body) = raw_post(addr, path, body, signature, declared).await;
        assert_eq!(status, expected, "{what}: {body}");
    }

    // Exactly one acknowledgement recorded, on the hand-off and in the audit.
    let listed = http::get(addr, &path, Some(&cookie)).await.json();
    let acks = listed[0]["acks"].as_array().unwrap();
    assert_eq!(acks.len(), 1, "{listed}");
    assert!(
        acks[0]["detail"]
            .as_str()
            .unwrap()
            .contains("unit 12 on its way")
    );
    let shown = node.incident(&incident).await;
    let acked: Vec<_> = shown
        .audit
        .iter()
        .filter(|e| e.action == "handoff_acknowledged")
        .collect();
    assert_eq!(acked.len(), 1, "{:?}", shown.audit);
    let _: Value = listed;
    node.shutdown().await;
}

/// The incident panel hands an incident off: pick the agency, write a note, confirm; the
/// hand-off shows queued, then delivered once the leader's sender reached the agency (a
/// receiving server this test runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_hands_off_and_shows_the_delivery() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    // The agency: 202 to every POST, counting them.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/cap",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                assert!(String::from_utf8_lossy(&body).contains("Operator note: armed"));
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cap", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let agencies = Agencies::parse(&format!(
        "[[agencies]]\nid = \"pnp\"\nname = \"Policía Nacional\"\nurl = \"{url}\"\nhmac_key = \"{KEY}\"\n"
    ))
    .unwrap();
    let setup = Setup::new(
        agencies,
        centinela_handoff::cap::Sender::zone_named("America/Lima").unwrap(),
    );
    let node = NodeBuilder::new("handoff-panel")
        .console(Config::demo())
        .handoff(setup)
        .start()
        .await;
    node.wait_for_dispatcher().await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&node.http_url("/?lang=en")).await;
    signed_in_live(&page).await;
    let incident = node.press("B04", "handoff-panel-1").await.incident_id;
    crate::select_incident(&page, &incident).await;
    page.wait_for(
        "the agency in the select",
        "document.querySelector('#handoff-agency option[value=\"pnp\"]') !== null",
        DEADLINE,
    )
    .await;
    page.type_into("#handoff-note", "armed").await;
    page.click("#act-handoff").await;
    page.click("#act-handoff").await; // confirm
    page.wait_for(
        "the hand-off delivered",
        "document.querySelector('#d-handoffs tr[data-handoff=\"pnp\"] .chip')?.textContent === 'delivered'",
        DEADLINE,
    )
    .await;
    page.eval("document.getElementById('d-handoffs').scrollIntoView()")
        .await
        .unwrap();
    page.screenshot(&artifacts_dir().join("console-handoff.png"))
        .await;
    assert_eq!(received.load(Ordering::SeqCst), 1);
    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}
