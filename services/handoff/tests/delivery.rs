//! The leader's sender against a receiving agency this test starts on 127.0.0.1:0 (axum): the
//! agency checks every signature, deduplicates by idempotency key, and is made to fail (down,
//! then back; an answer slower than the sender's timeout) to show delivery survives it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use centinela_core::handoff::{DeliveryState, Handoff, MsgType};
use centinela_core::ids::{AgencyId, ButtonId, IncidentId, OperatorId, PressId};
use centinela_core::incident::{Actor, AuditAction, IncidentKind, Resolution};
use centinela_core::limits::DEBOUNCE_WINDOW;
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_handoff::sender::{Options, Sender};
use centinela_handoff::{Agencies, Setup, signature};
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};

const KEY: &str = "the agency's shared secret";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Up,
    Down,
    /// Keeps the message, but answers after `delay` (longer than the sender waits).
    Slow(Duration),
}

#[derive(Default)]
struct Received {
    /// Every request: (idempotency key, signature valid).
    requests: Vec<(String, bool)>,
    /// Accepted messages by idempotency key: body, and how many times it came.
    accepted: BTreeMap<String, (String, u32)>,
}

#[derive(Clone)]
struct Agency {
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Received>>,
}

async fn receive(State(agency): State<Agency>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let valid = signature::verify(KEY.as_bytes(), &body, &header("x-centinela-signature"));
    let key = header("idempotency-key");
    assert_eq!(header("content-type"), "application/xml");
    let mode = *agency.mode.lock().unwrap();
    agency
        .received
        .lock()
        .unwrap()
        .requests
        .push((key.clone(), valid));
    if !valid {
        return StatusCode::UNAUTHORIZED;
    }
    match mode {
        Mode::Down => return StatusCode::SERVICE_UNAVAILABLE,
        Mode::Up => {}
        Mode::Slow(_) => {}
    }
    {
        let mut received = agency.received.lock().unwrap();
        let entry = received
            .accepted
            .entry(key)
            .or_insert_with(|| (String::from_utf8_lossy(&body).into_owned(), 0));
        entry.1 += 1;
    }
    if let Mode::Slow(delay) = mode {
        *agency.mode.lock().unwrap() = Mode::Up;
        tokio::time::sleep(delay).await;
    }
    StatusCode::ACCEPTED
}

async fn start_agency(mode: Mode) -> (Agency, String) {
    let agency = Agency {
        mode: Arc::new(Mutex::new(mode)),
        received: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/cap", post(receive))
        .with_state(agency.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cap", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (agency, url)
}

fn wall_clock() -> Timestamp {
    Timestamp::from_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
}

fn setup(url: &str) -> Setup {
    let agencies = Agencies::parse(&format!(
        "[[agencies]]\nid = \"pnp\"\nname = \"PNP\"\nurl = \"{url}\"\nhmac_key = \"{KEY}\"\n"
    ))
    .unwrap();
    Setup::new(
        agencies,
        centinela_handoff::cap::Sender::zone_named("America/Lima").unwrap(),
    )
}

fn fast() -> Options {
    Options {
        poll: Duration::from_millis(20),
        timeout: Duration::from_millis(300),
        backoff_first: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        concurrency: 4,
    }
}

/// A seeded store with one incident (a press of B01) handed to `pnp`.
async fn handed_off(setup: &Setup) -> (EmbeddedStore, Records, IncidentId) {
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded));
    records
        .seed(&Scenario::lima_centro(), wall_clock())
        .await
        .unwrap();
    let button = records
        .button(&ButtonId::new("B01").unwrap())
        .await
        .unwrap()
        .unwrap();
    let pressed = records
        .press(
            &button,
            &PressId::new("p-1").unwrap(),
            wall_clock(),
            DEBOUNCE_WINDOW,
            None,
        )
        .await
        .unwrap();
    let id = pressed.incident.id.clone();
    let pnp = AgencyId::new("pnp").unwrap();
    records
        .create_handoff(&id, &pnp, |incident| {
            centinela_handoff::begin(
                incident,
                &pnp,
                OperatorId::new("ana").unwrap(),
                Some("two men, armed".into()),
                &button.name,
                &setup.sender,
                wall_clock(),
            )
        })
        .await
        .unwrap();
    (embedded, records, id)
}

async fn handoff(records: &Records, id: &IncidentId) -> Handoff {
    records.handoffs_of(id).await.unwrap().pop().unwrap()
}

/// Passes until `done` or 10 s.
async fn until(
    sender: &Sender,
    records: &Records,
    id: &IncidentId,
    done: impl Fn(&Handoff) -> bool,
) -> Handoff {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        sender.pass().await.unwrap();
        let h = handoff(records, id).await;
        if done(&h) {
            return h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {h:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_signed_once_after_the_agency_was_down() {
    let (agency, url) = start_agency(Mode::Down).await;
    let setup = setup(&url);
    let (_embedded, records, id) = handed_off(&setup).await;
    let sender = Sender::new(records.clone(), setup, fast(), None, wall_clock);

    // Down: attempts fail, each recorded, retried with back-off.
    let h = until(&sender, &records, &id, |h| h.messages[0].attempts >= 8).await;
    assert_eq!(h.state(), DeliveryState::Failed);
    assert!(h.last_error().unwrap().contains("503"), "{h:?}");
    // Back up: delivered, exactly once.
    *agency.mode.lock().unwrap() = Mode::Up;
    let h = until(&sender, &records, &id, |h| {
        h.state() == DeliveryState::Delivered
    })
    .await;
    for _ in 0..5 {
        sender.pass().await.unwrap();
    }
    {
        let received = agency.received.lock().unwrap();
        assert!(
            received.requests.iter().all(|(_, valid)| *valid),
            "every signature verified"
        );
        let keys: Vec<&String> = received.requests.iter().map(|(k, _)| k).collect();
        assert!(keys.len() >= 9);
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "one idempotency key across retries: {keys:?}"
        );
        assert_eq!(received.accepted.len(), 1);
        let (body, times) = received.accepted.values().next().unwrap();
        assert_eq!(*times, 1, "accepted once");
        assert!(body.contains("<msgType>Alert</msgType>"));
        assert_eq!(keys[0], &format!("{}:Alert:0", h.cap_id));
        assert_eq!(h.messages[0].last_status, Some(202));
    }

    // The audit: the hand-off, the first few failures (bounded), and the delivery; intact.
    let incident = records.incident(&id).await.unwrap().unwrap();
    let attempts: Vec<_> = incident
        .audit
        .iter()
        .filter(|e| e.action == AuditAction::HandoffAttempt)
        .collect();
    assert_eq!(
        attempts.len() as u32,
        centinela_core::limits::HANDOFF_ATTEMPTS_AUDITED_MAX + 1,
        "{attempts:#?}"
    );
    assert!(attempts.last().unwrap().detail.contains("delivered (202)"));
    assert!(incident.verify_audit(Some(records.audit_key())).is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_delivery_is_retried_with_the_same_key_and_body() {
    // The agency keeps the first POST but answers too late: the sender sees a timeout and
    // retries; the agency recognises the retry by its idempotency key.
    let (agency, url) = start_agency(Mode::Slow(Duration::from_millis(1_000))).await;
    let setup = setup(&url);
    let (_embedded, records, id) = handed_off(&setup).await;
    let sender = Sender::new(records.clone(), setup, fast(), None, wall_clock);
    let h = until(&sender, &records, &id, |h| {
        h.state() == DeliveryState::Delivered
    })
    .await;
    assert_eq!(h.messages[0].attempts, 2, "{h:#?}");
    let received = agency.received.lock().unwrap();
    assert_eq!(received.requests.len(), 2);
    assert_eq!(received.requests[0].0, received.requests[1].0);
    assert_eq!(received.accepted.len(), 1, "one message for the agency");
    assert_eq!(
        received.accepted.values().next().unwrap().1,
        2,
        "the same key came twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_go_out_as_updates_then_a_cancel_referencing_the_alert() {
    let (agency, url) = start_agency(Mode::Up).await;
    let setup = setup(&url);
    let (_embedded, records, id) = handed_off(&setup).await;
    let sender = Sender::new(records.clone(), setup, fast(), None, wall_clock);
    until(&sender, &records, &id, |h| {
        h.state() == DeliveryState::Delivered
    })
    .await;

    records
        .update_incident(&id, |i| {
            Ok(i.classify(
                OperatorId::new("ana").unwrap(),
                IncidentKind::Robbery,
                None,
                None,
                wall_clock(),
            )?)
        })
        .await
        .unwrap();
    let h = until(&sender, &records, &id, |h| {
        h.messages.len() == 2 && h.state() == DeliveryState::Delivered
    })
    .await;
    assert_eq!(h.messages[1].msg_type, MsgType::Update);
    // Nothing changed: nothing more is sent.
    for _ in 0..3 {
        sender.pass().await.unwrap();
    }
    assert_eq!(handoff(&records, &id).await.messages.len(), 2);

    records
        .close_incident(
            &id,
            Resolution::Prank,
            Actor::Operator(OperatorId::new("ana").unwrap()),
            wall_clock(),
        )
        .await
        .unwrap();
    let h = until(&sender, &records, &id, |h| {
        h.messages.len() == 3 && h.state() == DeliveryState::Delivered
    })
    .await;
    assert_eq!(h.messages[2].msg_type, MsgType::Cancel);
    assert!(h.is_final());

    let received = agency.received.lock().unwrap();
    let bodies: Vec<(&String, &String)> = received
        .accepted
        .iter()
        .map(|(k, (body, _))| (k, body))
        .collect();
    assert_eq!(bodies.len(), 3);
    let alert_ref = format!(
        "centinela@serenazgo.invalid,{},{}",
        h.messages[0].identifier, h.messages[0].sent
    );
    let update = bodies
        .iter()
        .find(|(k, _)| k.contains(":Update:1"))
        .unwrap()
        .1;
    assert!(
        update.contains(&format!("<references>{alert_ref}</references>")),
        "{update}"
    );
    assert!(update.contains("<event>Robbery</event>"));
    let cancel = bodies
        .iter()
        .find(|(k, _)| k.contains(":Cancel:2"))
        .unwrap()
        .1;
    assert!(cancel.contains("<msgType>Cancel</msgType>"));
    assert!(cancel.contains(&alert_ref), "{cancel}");
    assert!(cancel.contains(&h.messages[1].identifier));
    // Exactly one POST per message: none repeated.
    assert_eq!(received.requests.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_sender_records_nothing() {
    // An ex-leader's sender: its writes carry a fence that no longer holds.
    let (_agency, url) = start_agency(Mode::Up).await;
    let setup = setup(&url);
    let (_embedded, records, id) = handed_off(&setup).await;
    let fence = centinela_store::Fence::new("/centinela/election/test-stale", 1);
    let sender = Sender::new(records.clone(), setup, fast(), Some(fence), wall_clock);
    let error = sender.pass().await.unwrap_err();
    assert!(matches!(error, centinela_records::Error::Fenced), "{error}");
    assert_eq!(handoff(&records, &id).await.messages[0].attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_down_for_a_minute_gets_the_alert_once_on_the_default_backoff() {
    // The production pacing (`Options::default()`: 2 s, doubling, capped at 60 s) on a clock
    // the test moves a second per pass: the agency answers 503 for the first simulated
    // minute, then 202. Real HTTP, simulated minutes.
    let (agency, url) = start_agency(Mode::Down).await;
    let setup = setup(&url);
    let (_embedded, records, id) = handed_off(&setup).await;
    let created = handoff(&records, &id).await.messages[0].next_attempt_at;
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(created.as_millis()));
    let now = {
        let clock = clock.clone();
        move || Timestamp::from_millis(clock.load(std::sync::atomic::Ordering::SeqCst))
    };
    let sender = Sender::new(records.clone(), setup, Options::default(), None, now);
    let mut requests_at_s = Vec::new();
    for second in 1..=90u64 {
        clock.store(
            created.as_millis() + second * 1000,
            std::sync::atomic::Ordering::SeqCst,
        );
        if second >= 60 {
            *agency.mode.lock().unwrap() = Mode::Up;
        }
        let before = agency.received.lock().unwrap().requests.len();
        sender.pass().await.unwrap();
        if agency.received.lock().unwrap().requests.len() > before {
            requests_at_s.push(second);
        }
    }
    // Attempts at 1 s, then after 2, 4, 8, 16 and 32 s of back-off: the sixth, past the
    // minute, is delivered.
    assert_eq!(requests_at_s, [1, 3, 7, 15, 31, 63]);
    let h = handoff(&records, &id).await;
    assert_eq!(h.state(), DeliveryState::Delivered);
    assert_eq!(h.messages[0].attempts, 6);
    let received = agency.received.lock().unwrap();
    assert!(received.requests.iter().all(|(_, valid)| *valid));
    assert_eq!(received.accepted.len(), 1);
    assert_eq!(
        received.accepted.values().next().unwrap().1,
        1,
        "accepted once"
    );
}
