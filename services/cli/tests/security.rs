//! Credentials end to end with the `centinela` binary (docs/security.md): the demo takes none,
//! `centinela start` fails closed — it refuses to start without a cluster secret, and refuses
//! client commands without credentials — and `audit verify` reports on every incident's chain.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

use common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A client command with exactly the given credential variables (none inherited).
fn cli_with(addr: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--addr", addr])
        .env_remove("CENTINELA_DEVICE_TOKEN")
        .env_remove("CENTINELA_OPERATOR")
        .env_remove("CENTINELA_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("the centinela binary runs")
}

#[test]
fn start_refuses_to_run_without_a_cluster_secret_or_with_a_weak_token() {
    let start = |env: &[(&str, &str)]| {
        Command::new(BIN)
            .args(["start", "--node-id", "n1", "--site", "a"])
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            // Never reached: the configuration is refused first.
            .args(["--etcd", "http://127.0.0.1:9"])
            .env_remove("CENTINELA_CLUSTER_SECRET")
            .env_remove("CENTINELA_CONSOLE_SECRET")
            .env_remove("CENTINELA_DEVICE_TOKEN")
            .env_remove("CENTINELA_INSECURE")
            .envs(env.iter().copied())
            .output()
            .expect("the centinela binary runs")
    };
    let out = start(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CENTINELA_CLUSTER_SECRET"),
        "{}",
        stderr(&out)
    );

    let out = start(&[
        ("CENTINELA_CLUSTER_SECRET", TEST_CLUSTER_SECRET),
        ("CENTINELA_DEVICE_TOKEN", "short"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("at least 16"), "{}", stderr(&out));

    // The example environment file's secrets, copied as they are: refused with a hint.
    let example = include_str!("../../../deploy/centinela.example.env");
    let placeholder = example
        .lines()
        .find_map(|line| line.strip_prefix("CENTINELA_CLUSTER_SECRET="))
        .expect("the example sets a cluster secret");
    for env in [
        [
            ("CENTINELA_CLUSTER_SECRET", placeholder),
            ("CENTINELA_CONSOLE_SECRET", TEST_CLUSTER_SECRET),
        ],
        [
            ("CENTINELA_CLUSTER_SECRET", TEST_CLUSTER_SECRET),
            ("CENTINELA_CONSOLE_SECRET", placeholder),
        ],
    ] {
        let out = start(&env);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("placeholder") && stderr(&out).contains("/dev/urandom"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn the_demo_needs_no_credentials_and_its_audit_verifies() {
    let demo = Demo::start(&[]);
    let pressed = demo.json(&["press", "B01"]);
    let incident = pressed["incident"].as_str().unwrap().to_string();
    demo.json(&["ack", &incident]);

    let report = demo.json(&["audit", "verify"]);
    assert_eq!(report["broken"], 0, "{report}");
    let verdict = report["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == incident.as_str())
        .cloned()
        .expect("a verdict for the incident");
    assert_eq!(verdict["intact"], true);
    assert_eq!(verdict["entries"], verdict["chained"]);
    assert_eq!(verdict["head"].as_str().unwrap().len(), 64);

    // A credential the demo does not know is refused, not ignored.
    let out = cli_with(
        &demo.grpc,
        &["press", "B01"],
        &[("CENTINELA_DEVICE_TOKEN", "not-the-demos")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Unauthenticated"), "{}", stderr(&out));
}

#[test]
fn a_started_node_refuses_clients_without_credentials() {
    let etcd = start_etcd(1);
    let node = Node::start("n1", "site-a", &etcd.endpoints());

    // No credentials: refused, exit code 1, nothing created.
    for args in [&["press", "B01"][..], &["incidents"], &["audit", "verify"]] {
        let out = cli_with(&node.grpc, args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("Unauthenticated"), "{}", stderr(&out));
    }
    // A device token does not make an operator, a password must be right.
    let out = cli_with(
        &node.grpc,
        &["incidents"],
        &[("CENTINELA_DEVICE_TOKEN", TEST_DEVICE_TOKEN)],
    );
    assert!(
        stderr(&out).contains("PermissionDenied"),
        "{}",
        stderr(&out)
    );
    let out = cli_with(
        &node.grpc,
        &["incidents"],
        &[
            ("CENTINELA_OPERATOR", TEST_OPERATOR),
            ("CENTINELA_PASSWORD", "wrong"),
        ],
    );
    assert!(stderr(&out).contains("Unauthenticated"), "{}", stderr(&out));

    // With the cluster's credentials every command works, and the audit verifies.
    let addrs = [node.grpc.clone()];
    let pressed = cli_json(&addrs, &["press", "B01"]);
    let incidents = cli_json(&addrs, &["incidents"]);
    let listed: Vec<&Value> = incidents.as_array().unwrap().iter().collect();
    assert!(listed.iter().any(|i| i["id"] == pressed["incident"]));
    let report = cli_json(&addrs, &["audit", "verify"]);
    assert_eq!(report["broken"], 0, "{report}");
}
