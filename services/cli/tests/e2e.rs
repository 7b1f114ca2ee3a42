//! End to end over real sockets: the `centinela` binary as a demo node, and the same binary as
//! the client, exactly as an operator would type it. Covers the "must show": press →
//! incident → nearest suitable brigade assigned and the camera on target → a second press is a
//! duplicate → prank closes it and frees the brigade → an unknown button is NOT_FOUND, exits
//! non-zero and creates nothing.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use centinela_core::brigade::Mode;
use centinela_core::dispatch::{StraightLine, TravelTime};
use centinela_core::geo::Position;

use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use common::{BIN, Demo};

fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v["id"] == id)
}

fn position(v: &Value) -> Position {
    Position::new(v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap()).unwrap()
}

fn mode(v: &Value) -> Mode {
    match v["mode"].as_str().unwrap() {
        "foot" => Mode::Foot,
        "motorcycle" => Mode::Motorcycle,
        "car" => Mode::Car,
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn press_assign_duplicate_prank_and_unknown_button_on_the_demo() {
    let demo = Demo::start(&[]);

    let units_before = demo.json(&["units"]);
    let button = find(&demo.json(&["buttons"]), "B01")
        .cloned()
        .expect("B01 exists");
    let scene = position(&button);

    // The press returns the incident, durable.
    let pressed = demo.json(&["press", "B01"]);
    assert_eq!(pressed["duplicate"], false);
    let incident_id = pressed["incident"].as_str().unwrap().to_string();

    // It is assigned a brigade...
    let unit_id = demo.wait_json(&["incidents"], "an assignment", |list| {
        let units = find(list, &incident_id)?["units"].as_array()?.clone();
        units.first().and_then(Value::as_str).map(str::to_string)
    });
    // ...the one with the least estimated travel time among the available brigades (an
    // unclassified incident takes any mode and prefers no capability). Patrols drift a little
    // between our snapshot and the dispatcher's, so allow a few seconds of estimate.
    let travel = StraightLine::default();
    let eta = |u: &Value| travel.eta(&position(u), &scene, mode(u));
    let best = units_before
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == "available")
        .map(|u| (eta(u), u["id"].as_str().unwrap().to_string()))
        .min()
        .unwrap();
    let chosen = find(&units_before, &unit_id).expect("assigned unit is listed");
    assert!(
        eta(chosen) <= best.0 + Duration::from_secs(10),
        "assigned {unit_id} (eta {:?}) but {} had eta {:?}",
        eta(chosen),
        best.1,
        best.0
    );
    // The unit's status reflects the assignment (its simulated terminal acks and sets off).
    demo.wait_json(&["units"], "the unit to be on its way", |list| {
        let unit = find(list, &unit_id)?;
        (unit["incident"] == incident_id.as_str()
            && ["dispatched", "en_route"].contains(&unit["status"].as_str()?))
        .then_some(())
    });

    // The button's camera turns to the caller.
    demo.wait_json(&["cameras"], "camera C01 on target", |list| {
        let camera = find(list, "C01")?;
        (camera["state"] == "on_target" && camera["target_incident"] == incident_id.as_str())
            .then_some(())
    });

    // A second press merges into the open incident.
    let again = demo.json(&["press", "B01"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["incident"], incident_id.as_str());

    // Prank: closed as a prank, and the brigade is free again.
    let closed = demo.json(&["prank", &incident_id]);
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["resolution"], "prank");
    demo.wait_json(&["units"], "the brigade to be available", |list| {
        let unit = find(list, &unit_id)?;
        (unit["status"] == "available" && unit["incident"].is_null()).then_some(())
    });
    let incidents = demo.json(&["incidents"]);
    let listed = find(&incidents, &incident_id).unwrap();
    assert_eq!(listed["state"], "closed");
    assert_eq!(listed["resolution"], "prank");
    assert_eq!(listed["press_count"], 2);
    let actions: Vec<&str> = listed["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for action in ["opened", "assigned", "press_merged", "closed"] {
        assert!(
            actions.contains(&action),
            "audit lacks {action}: {actions:?}"
        );
    }

    // An unknown button: NOT_FOUND, a non-zero exit, a message naming it, nothing created.
    let count_before = incidents.as_array().unwrap().len();
    let out = demo.cli(&["press", "B99", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("B99") && stderr.contains("NotFound"),
        "stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for a failed press"
    );
    assert_eq!(
        demo.json(&["incidents"]).as_array().unwrap().len(),
        count_before
    );

    // A malformed id is refused before it reaches anything.
    let out = demo.cli(&["press", "B 01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"));
}

#[test]
fn the_nearest_suitable_brigade_wins_on_a_scenario_with_clear_distances() {
    // Around one corner: a foot patrol 150 m away (~140 s), a motorcycle 1.5 km away (~235 s),
    // a car 3 km away (~565 s). Patrol drift (150 m at most) cannot reorder them.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    ScenarioBuilder::new("e2e")
        .notes("three brigades at clearly different travel times")
        .button(
            Button::new("X1", -12.0464, -77.0300)
                .name("test corner")
                .camera("CX1"),
        )
        .brigade(Brigade::new("FOOT", "foot", -12.04775, -77.0300).callsign("near foot patrol"))
        .brigade(Brigade::new("MOTO", "motorcycle", -12.0599, -77.0300).callsign("mid motorcycle"))
        .brigade(
            Brigade::new("CAR", "car", -12.0734, -77.0300)
                .callsign("far car")
                .capabilities(&["non_lethal_armed"]),
        )
        .write(&scenario);
    let demo = Demo::start(&["--scenario", scenario.to_str().unwrap()]);
    let pressed = demo.json(&["press", "X1"]);
    let id = pressed["incident"].as_str().unwrap().to_string();
    let unit = demo.wait_json(&["incidents"], "an assignment", |list| {
        find(list, &id)?["units"]
            .as_array()?
            .first()?
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(unit, "FOOT");

    // Reclassified as a robbery, the armed car is the preferred reinforcement.
    let classified = demo.json(&["classify", &id, "--kind", "robbery"]);
    assert_eq!(classified["kind"], "robbery");
    let ranked = demo.json(&["recommend", &id]);
    assert_eq!(ranked[0]["unit"], "CAR", "ranking: {ranked}");
    assert_eq!(ranked[0]["preferred"], true);
    let dispatched = demo.json(&["dispatch", &id]);
    let units: Vec<&str> = dispatched["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(units, ["FOOT", "CAR"]);

    let resolved = demo.json(&["resolve", &id, "--resolution", "handled"]);
    assert_eq!(resolved["resolution"], "handled");
    let units = demo.json(&["units"]);
    for unit in units.as_array().unwrap() {
        assert_eq!(unit["status"], "available", "{unit}");
    }
}

#[test]
fn clients_fail_over_between_addresses_and_explain_unreachable_clusters() {
    let demo = Demo::start(&[]);
    // A dead address first: the client moves on to the live one.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let out = Command::new(BIN)
        .args([
            "buttons",
            "--json",
            "--addr",
            &format!("{dead},{}", demo.grpc),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let buttons: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(buttons.as_array().unwrap().len(), 15);

    // Nothing listening anywhere: exit 3 and a hint.
    let out = Command::new(BIN)
        .args(["press", "B01", "--addr", &dead])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hint:"), "stderr: {stderr}");

    // `start` refuses clearly until the cluster lands; a bad flag is a usage error.
    let out = Command::new(BIN).args(["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["press"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The public map feed is served and holds no incident data.
    let body = http_get(&demo.http, "/public/buttons.geojson");
    let geo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    assert_eq!(geo["features"].as_array().unwrap().len(), 15);
    assert!(!body.contains("incident"));
    assert!(http_get(&demo.http, "/readyz").starts_with("ready"));
}

/// A GET that must answer 200; returns the body.
fn http_get(addr: &str, path: &str) -> String {
    let (code, body) = common::http_get(addr, path).expect("an HTTP response");
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

#[test]
fn grpc_health_and_reflection_answer_for_probes_and_grpcurl() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let demo = Demo::start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(demo.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel.clone());
        for service in ["", "centinela.v1.ButtonGateway", "centinela.v1.Operator"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
        }

        let mut reflection = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let reply = replies.message().await.unwrap().expect("one reply");
        let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
            panic!("unexpected reflection reply: {reply:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for expected in [
            "centinela.v1.ButtonGateway",
            "centinela.v1.CameraGateway",
            "centinela.v1.UnitGateway",
            "centinela.v1.Operator",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
    });
}

#[test]
fn the_demo_stops_cleanly_on_sigterm_with_devices_connected() {
    let mut demo = Demo::start(&[]);
    // Devices are connected (streams open) once a unit has reported a position.
    demo.wait_json(&["cameras"], "the cameras' devices to connect", |list| {
        list.as_array()?
            .iter()
            .all(|c| c["online"] == true)
            .then_some(())
    });
    // Generous: this checks that shutdown finishes (no stream holds it open), not how fast.
    let exit = demo.sigterm_and_wait();
    assert!(exit.success(), "exit status {exit:?}");
    let log = demo.log().text();
    assert!(log.contains("node stopped"), "{log}");
}

/// The radio fallback and a unit's app token from the CLI: `unit-status` sets a unit by hand
/// (recorded as the CLI's operator, shown by `units`), refuses what is not set by hand, and
/// `unit-token` prints a fresh token and appends the matching devices-file entry.
#[test]
fn unit_status_by_radio_and_unit_token() {
    let demo = Demo::start(&[]);
    let set = demo.json(&[
        "unit-status",
        "U01",
        "--status",
        "out_of_service",
        "--lat",
        "-12.0461",
        "--lon",
        "-77.0301",
    ]);
    assert_eq!(set["status"], "out_of_service", "{set}");
    assert_eq!(set["radio_by"], "cli", "{set}");
    assert!(
        (set["lat"].as_f64().unwrap() - -12.0461).abs() < 1e-9,
        "{set}"
    );
    let listed = demo.json(&["units"]);
    let u01 = find(&listed, "U01").expect("U01 listed");
    assert_eq!(u01["status"], "out_of_service");
    assert!(u01["radio_at_ms"].as_u64().is_some(), "{u01}");
    assert!(
        u01.get("cooldown_until_ms").is_some(),
        "the field is always there"
    );
    let refused = demo.cli(&["unit-status", "U01", "--status", "on_scene"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "not a radio status: a usage error"
    );
    let back = demo.json(&["unit-status", "U01", "--status", "available"]);
    assert_eq!(back["status"], "available", "{back}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.toml");
    let out = demo.cli(&[
        "unit-token",
        "U07",
        "--devices-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 48, "192 bits in hex: {token}");
    let entry = std::fs::read_to_string(&file).unwrap();
    assert!(
        entry.contains("kind = \"unit\"") && entry.contains("id = \"U07\""),
        "{entry}"
    );
    assert!(
        entry.contains(&centinela_api::auth::token_digest_hex(&token)),
        "the entry holds the token's digest: {entry}"
    );
    assert!(!entry.contains(&token), "never the token itself");
    let bad = demo.cli(&["unit-token", "U 07"]);
    assert_eq!(bad.status.code(), Some(2));

    // With the console's address: the app's sign-in link, and its QR code on stderr.
    let out = demo.cli(&[
        "unit-token",
        "U08",
        "--devices-file",
        file.to_str().unwrap(),
        "--console-url",
        "https://centinela.example/",
    ]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let link = format!("https://centinela.example/brigada/#token={token}");
    assert!(stderr.contains(&link), "{stderr}");
    assert!(
        stderr.contains('\u{2588}'),
        "a QR code drawn in blocks: {stderr}"
    );
    let listed = demo.json(&[
        "unit-token",
        "U09",
        "--devices-file",
        file.to_str().unwrap(),
        "--console-url",
        "http://127.0.0.1:8080",
    ]);
    assert_eq!(
        listed["app_url"],
        format!(
            "http://127.0.0.1:8080/brigada/#token={}",
            listed["token"].as_str().unwrap()
        )
    );
    let refused = demo.cli(&["unit-token", "U10", "--console-url", "centinela.example"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--console-url"),
        "{refused:?}"
    );
}

/// A unit's clear carries its outcome (the simulated terminals clear as `handled`): kept on
/// the incident, shown by `incident --json` and `incidents --json` as `unit_outcomes`, and
/// audited as the unit's own step; the incident's resolution stays the operator's.
#[test]
fn a_units_clear_outcome_is_on_the_incident() {
    let demo = Demo::start(&["--speedup", "10"]);
    let pressed = demo.json(&["press", "B01"]);
    let incident = pressed["incident"].as_str().unwrap().to_string();
    let outcome = demo.wait_json(&["incident", &incident], "the unit's clear", |i| {
        i["unit_outcomes"].as_array()?.first().cloned()
    });
    assert_eq!(outcome["resolution"], "handled", "{outcome}");
    let unit = outcome["unit"].as_str().unwrap().to_string();
    assert!(outcome["at_ms"].as_u64().is_some(), "{outcome}");
    let record = demo.json(&["incident", &incident]);
    assert_eq!(
        record["state"], "on_scene",
        "open until an operator closes it"
    );
    assert_eq!(
        record["resolution"],
        Value::Null,
        "the resolution stays the operator's"
    );
    let cleared: Vec<&Value> = record["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "unit_cleared")
        .collect();
    assert_eq!(cleared.len(), 1, "{record}");
    assert_eq!(cleared[0]["actor"], format!("unit:{unit}"));
    assert_eq!(cleared[0]["detail"], "handled");
    let listed = demo.json(&["incidents"]);
    let listed = find(&listed, &incident).expect("still open, still listed");
    assert_eq!(listed["unit_outcomes"][0]["unit"], unit.as_str());
    // The operator closes it with the resolution of their choice; the unit's report stays.
    let closed = demo.json(&["resolve", &incident, "--resolution", "false_alarm"]);
    assert_eq!(closed["resolution"], "false_alarm", "{closed}");
    assert_eq!(closed["unit_outcomes"][0]["resolution"], "handled");
}
