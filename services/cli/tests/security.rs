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

/// The five edits of issue 21 that `audit verify` used to miss, each made directly in etcd
/// (as someone holding only the store's credentials would), each reported with exit code 5,
/// the incident and the reason; an untouched record beside them stays intact.
#[test]
fn audit_verify_reports_every_edit_made_directly_in_the_store() {
    let etcd = start_etcd(1);
    let node = Node::start("n1", "site-a", &etcd.endpoints());
    let addrs = [node.grpc.clone()];
    let press = |button: &str| {
        cli_json(&addrs, &["press", button])["incident"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let stripped = press("B01");
    let resolved = press("B02");
    let acknowledged = press("B03");
    let classified = press("B04");
    let cut = press("B05");
    let untouched = press("B06");
    for id in [&acknowledged, &untouched, &cut] {
        cli_json(&addrs, &["ack", id]);
    }
    cli_json(&addrs, &["prank", &resolved]);
    cli_json(
        &addrs,
        &[
            "classify",
            &classified,
            "--kind",
            "purse_snatching",
            "--caller-name",
            "Rosa",
            "--caller-phone",
            "999000111",
        ],
    );
    for id in [&stripped, &classified, &cut, &untouched] {
        cli_json(&addrs, &["resolve", id]);
    }

    // Untouched, the store verifies: exit 0, every record sealed and chained.
    let out = cli(&addrs, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["broken"], 0, "{report}");
    assert!(report["checked"].as_u64().unwrap() >= 6, "{report}");

    // The edits, each on its own incident, straight into etcd.
    let rt = runtime();
    let store = rt.block_on(connect_store(&etcd.endpoints()));
    let edit = |id: &str, change: &dyn Fn(&mut Value)| {
        rt.block_on(async {
            let key = format!("/centinela/incidents/{id}");
            let kv = store.get(&key).await.unwrap().expect("the incident record");
            let mut record: Value = serde_json::from_slice(&kv.value).unwrap();
            let before = record.clone();
            change(&mut record);
            assert_ne!(record, before, "the edit of {id} changes the record");
            store
                .put(&key, serde_json::to_vec(&record).unwrap(), None)
                .await
                .unwrap();
        })
    };
    // 1. Every hash stripped: the entries' and the seal.
    edit(&stripped, &|r| {
        for entry in r["audit"].as_array_mut().unwrap() {
            entry.as_object_mut().unwrap().remove("hash");
        }
        r.as_object_mut().unwrap().remove("seal");
    });
    // 2. The resolution: a prank made a handled emergency.
    edit(&resolved, &|r| r["resolution"] = "handled".into());
    // 3. Who acknowledged it.
    edit(&acknowledged, &|r| {
        r["acknowledged"][0] = "someone-else".into()
    });
    // 4. Kind, priority and the caller's details.
    edit(&classified, &|r| {
        r["kind"] = "robbery".into();
        r["priority"] = "low".into();
        r["caller"]["phone"] = "999000112".into();
    });
    // 5. The last entry (the closure) dropped.
    edit(&cut, &|r| {
        r["audit"].as_array_mut().unwrap().pop();
    });

    let out = cli(&addrs, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["broken"], 5, "{report}");
    let verdict = |id: &str| {
        report["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no verdict for {id}: {report}"))
    };
    let fields = "does not match the incident's fields";
    for (id, entry, reason) in [
        (&stripped, Value::from(0), "no hash"),
        (&resolved, Value::Null, fields),
        (&acknowledged, Value::Null, fields),
        (&classified, Value::Null, fields),
        (&cut, Value::Null, "entries dropped or added"),
    ] {
        let v = verdict(id);
        assert_eq!(v["intact"], false, "{v}");
        assert_eq!(v["first_break"], entry, "{v}");
        assert!(v["reason"].as_str().unwrap().contains(reason), "{v}");
    }
    assert_eq!(verdict(&untouched)["intact"], true);

    // The human report names each broken incident and why, and exits 5 too.
    let out = cli(&addrs, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [&stripped, &resolved, &acknowledged, &classified, &cut] {
        assert!(text.contains(id.as_str()), "{id} missing from:\n{text}");
    }
    assert!(!text.contains(untouched.as_str()), "{text}");
    assert!(text.contains("5 broken"), "{text}");
}
