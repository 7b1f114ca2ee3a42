//! Hand-offs from the command line, against the demo with an agencies file
//! (`CENTINELA_AGENCIES_FILE`): `centinela handoff INCIDENT --to AGENCY --json` prints the
//! hand-off durable and queued, a repeat returns the same hand-off, the audit trail records it,
//! and an unknown agency is refused with exit code 1 and a hint. The demo leads, so its
//! hand-off sender delivers the alert to a receiving agency the test runs (a plain HTTP/1.1
//! server on 127.0.0.1:0 that checks the signature).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use common::Demo;

fn agencies_file(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("agencies.toml");
    std::fs::write(
        &path,
        format!(
            r#"sender = "centinela@lima.example"

[[agencies]]
id = "pnp"
name = "Policía Nacional del Perú"
url = "{url}"
hmac_key = "a shared secret of some length"
kinds = ["robbery", "assault"]
"#
        ),
    )
    .unwrap();
    path
}

const KEY: &str = "a shared secret of some length";

/// One request the agency received: (idempotency key, signature valid, body).
type Received = (String, bool, String);

/// A receiving agency: answers 202 to every POST, reporting what came.
fn agency() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cap", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut key, mut signature) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.trim().to_string();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "idempotency-key" => key = value,
                    "x-centinela-signature" => signature = value,
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let valid = centinela_handoff::signature::verify(KEY.as_bytes(), &body, &signature);
            let _ = stream.write_all(
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            let _ = tx.send((key, valid, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (url, rx)
}

#[test]
fn the_leader_delivers_a_handoff_to_the_agency() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = agency();
    let file = agencies_file(dir.path(), &url);
    let demo = Demo::start_with_env(&[], &[("CENTINELA_AGENCIES_FILE", file.to_str().unwrap())]);
    let pressed = demo.json(&["press", "B02"]);
    let incident = pressed["incident"].as_str().unwrap().to_string();
    let handoff = demo.json(&["handoff", &incident, "--to", "pnp"]);
    let cap_id = handoff["cap_id"].as_str().unwrap().to_string();
    let (key, valid, body) = received
        .recv_timeout(Duration::from_secs(20))
        .expect("the agency received the alert");
    assert!(valid, "signature verified");
    assert_eq!(key, format!("{cap_id}:Alert:0"));
    assert!(
        body.contains(&format!("<incidents>{incident}</incidents>")),
        "{body}"
    );
    assert!(body.contains("-05:00</sent>"), "Lima's offset: {body}");
    demo.wait_json(&["handoffs", &incident], "the hand-off delivered", |list| {
        (list[0]["state"] == "delivered").then_some(())
    });
    let shown = demo.json(&["incident", &incident]);
    assert!(
        shown["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "handoff_attempt"
                && e["detail"].as_str().unwrap().contains("delivered (202)")),
        "{shown}"
    );
}

#[test]
fn handoff_prints_its_state_and_refuses_an_unknown_agency() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens on the discard port: the hand-off stays undelivered.
    let file = agencies_file(dir.path(), "http://127.0.0.1:9/cap");
    let demo = Demo::start_with_env(&[], &[("CENTINELA_AGENCIES_FILE", file.to_str().unwrap())]);

    let agencies = demo.json(&["agencies"]);
    assert_eq!(agencies[0]["id"], "pnp");
    assert_eq!(
        agencies[0]["kinds"],
        serde_json::json!(["robbery", "assault"])
    );

    let pressed = demo.json(&["press", "B01"]);
    let incident = pressed["incident"].as_str().unwrap().to_string();

    let handoff = demo.json(&[
        "handoff",
        &incident,
        "--to",
        "pnp",
        "--note",
        "armed, two men",
    ]);
    assert_eq!(handoff["incident"], incident.as_str());
    assert_eq!(handoff["agency"], "pnp");
    assert_eq!(handoff["created"], true);
    assert!(
        ["queued", "failed"].contains(&handoff["state"].as_str().unwrap()),
        "{handoff}"
    );
    let cap_id = handoff["cap_id"].as_str().unwrap().to_string();
    assert_eq!(cap_id, format!("centinela.{incident}.pnp"));
    assert_eq!(handoff["messages"][0]["msg_type"], "alert");
    assert_eq!(handoff["note"], "armed, two men");

    // Again: the same hand-off, not a second one.
    let again = demo.json(&["handoff", &incident, "--to", "pnp"]);
    assert_eq!(again["created"], false);
    assert_eq!(again["cap_id"], cap_id.as_str());

    // The audit trail records it, in the chain.
    let shown = demo.json(&["incident", &incident]);
    let handed: Vec<&Value> = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "handed_off")
        .collect();
    assert_eq!(handed.len(), 1, "{shown}");
    assert!(handed[0]["detail"].as_str().unwrap().contains(&cap_id));
    let listed = demo.json(&["handoffs", &incident]);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // An unknown agency: refused, exit 1, with a hint; nothing created.
    let out = demo.cli(&["handoff", &incident, "--to", "bomberos", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agency bomberos not found"), "{stderr}");
    assert!(stderr.contains("centinela agencies"), "{stderr}");
    assert!(out.stdout.is_empty());
    // An unknown incident: refused, exit 1.
    let out = demo.cli(&["handoff", "inc-nope", "--to", "pnp"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // No --to: a bad command line, exit 2.
    let out = demo.cli(&["handoff", &incident]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        demo.json(&["handoffs", &incident])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_bad_agencies_file_stops_the_demo_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    // https:// cannot be delivered by this build: refused when the file is read.
    let file = agencies_file(dir.path(), "https://cad.pnp.example/cap");
    let out = std::process::Command::new(common::BIN)
        .args([
            "demo",
            "--quiet-sim",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .env("CENTINELA_AGENCIES_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("https:// is not supported yet"), "{stderr}");
    let missing = dir.path().join("nope.toml");
    let out = std::process::Command::new(common::BIN)
        .args([
            "demo",
            "--quiet-sim",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .env("CENTINELA_AGENCIES_FILE", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
