//! `centinela alerts` and `centinela clear-alert` against a real demo: a tampered button is
//! listed; an operator's clearance is refused with exit code 1 and a hint, as are a kind that
//! is not the open one's, an unknown device and nothing to clear; a supervisor's clears it and
//! lands in the button's audit trail, which `audit verify` checks.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

use centinela_proto::v1;
use centinela_proto::v1::button_gateway_client::ButtonGatewayClient;
use common::{BIN, Demo, TEST_PASSWORD, TEST_PASSWORD_HASH};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A client command signed in as `who` (the demo binds presented credentials).
fn cli_as(demo: &Demo, who: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--addr", &demo.grpc])
        .env_remove("CENTINELA_DEVICE_TOKEN")
        .env("CENTINELA_OPERATOR", who)
        .env("CENTINELA_PASSWORD", TEST_PASSWORD)
        .output()
        .expect("the centinela binary runs")
}

fn json_as(demo: &Demo, who: &str, args: &[&str]) -> Value {
    let out = cli_as(demo, who, args);
    assert!(
        out.status.success(),
        "`centinela {}` as {who} failed ({}): {}",
        args.join(" "),
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

fn listed(alerts: &Value, device: &str, kind: &str) -> bool {
    alerts
        .as_array()
        .expect("an array of alerts")
        .iter()
        .any(|a| a["device"] == device && a["kind"] == kind)
}

#[test]
fn a_supervisor_clears_a_tamper_from_the_cli_and_an_operator_cannot() {
    let accounts =
        format!("ana:operator:{TEST_PASSWORD_HASH} sara:supervisor:{TEST_PASSWORD_HASH}");
    let demo = Demo::start_with_env(&[], &[("CENTINELA_OPERATORS", &accounts)]);

    // The pole's enclosure is forced: the button reports it (the demo needs no device token).
    let runtime = common::runtime();
    runtime.block_on(async {
        let mut buttons = ButtonGatewayClient::connect(demo.grpc.clone())
            .await
            .expect("connect to the demo");
        buttons
            .report_tamper(v1::TamperReport {
                button_id: "B03".into(),
                detail: "door opened".into(),
            })
            .await
            .expect("tamper report");
    });

    let alerts = demo.wait_json(&["alerts"], "B03's tamper alert listed", |alerts| {
        listed(alerts, "B03", "tamper").then(|| alerts.clone())
    });
    let b03 = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["device"] == "B03")
        .unwrap();
    assert_eq!(b03["device_type"], "button");
    assert!(b03["since_ms"].as_u64().unwrap() > 0, "{b03}");
    let human = demo.cli(&["alerts"]);
    assert!(human.status.success(), "{}", stderr(&human));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("B03") && l.contains("tamper")),
        "{text}"
    );

    // An operator is refused: exit 1, the reason and what to do.
    let refused = cli_as(&demo, "ana", &["clear-alert", "B03", "tamper"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("PermissionDenied"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("a supervisor's call"),
        "{}",
        stderr(&refused)
    );
    // Another kind than the open one's, an unknown button: refused with their hints.
    let wrong_kind = cli_as(&demo, "sara", &["clear-alert", "B03", "button_offline"]);
    assert_eq!(wrong_kind.status.code(), Some(1), "{}", stderr(&wrong_kind));
    assert!(
        stderr(&wrong_kind).contains("open alert is tamper, not button_offline"),
        "{}",
        stderr(&wrong_kind)
    );
    let unknown = cli_as(&demo, "sara", &["clear-alert", "B99", "tamper"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no button B99"),
        "{}",
        stderr(&unknown)
    );
    let bad_kind = cli_as(&demo, "sara", &["clear-alert", "B03", "tampered"]);
    assert_eq!(bad_kind.status.code(), Some(2), "{}", stderr(&bad_kind));
    assert!(
        listed(&demo.json(&["alerts"]), "B03", "tamper"),
        "still open"
    );

    // The supervisor clears it, with a note.
    let cleared = json_as(
        &demo,
        "sara",
        &[
            "clear-alert",
            "B03",
            "tamper",
            "--note",
            "pole inspected, door resealed",
            "--json",
        ],
    );
    assert_eq!(cleared["kind"], "tamper");
    assert_eq!(cleared["cleared_by"], "sara");
    assert!(cleared["cleared_at_ms"].as_u64() >= cleared["raised_at_ms"].as_u64());
    assert!(!listed(&demo.json(&["alerts"]), "B03", "tamper"));

    // Nothing left to clear.
    let again = cli_as(&demo, "sara", &["clear-alert", "B03", "tamper"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("nothing to clear"),
        "{}",
        stderr(&again)
    );

    // The clearance is in B03's audit trail, which verifies.
    let verified = cli_as(&demo, "sara", &["audit", "verify", "--json"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["broken"], 0, "{report}");
    let trail = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "button:B03")
        .unwrap_or_else(|| panic!("a verdict for B03's trail: {report}"));
    assert_eq!(trail["intact"], true);
    assert_eq!(trail["entries"], 1);
}
