//! TLS end to end with the `centinela` binary (issue 20): a node started with
//! `CENTINELA_TLS_*` on a real etcd, and client commands that either speak TLS with the
//! right CA or say exactly what is wrong. An `https://` address is never spoken in plaintext.

mod common;

use std::process::{Command, Output};

use centinela_testkit::pki::Pki;
use centinela_testkit::wait;

use common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A client command presenting the test credentials and exactly these TLS settings.
fn client(addr: &str, args: &[&str], tls: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--addr", addr])
        .args(tls)
        .env_remove("CENTINELA_TLS_CA")
        .env_remove("CENTINELA_TLS_CLIENT_CERT")
        .env_remove("CENTINELA_TLS_CLIENT_KEY")
        .envs(client_credentials_env())
        .output()
        .expect("the centinela binary runs")
}

#[test]
fn an_https_address_without_a_ca_is_a_usage_error_not_plaintext() {
    let out = client("https://127.0.0.1:9", &["buttons"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca"), "{}", stderr(&out));
}

#[test]
fn a_node_with_certificates_serves_tls_and_clients_are_told_what_is_wrong() {
    let pki = Pki::new("city CA");
    let other = Pki::new("another CA");
    let etcd = start_etcd(1);
    // Named as the node and `localhost`, not by its address: dialing 127.0.0.1 is then a
    // wrong name.
    let files = pki.leaf_exactly(&[
        centinela_testkit::pki::identity(centinela_tls::names::Kind::Node, "n1"),
        "localhost".to_string(),
    ]);
    let (certificate, key, ca) = (
        files.certificate.display().to_string(),
        files.key.display().to_string(),
        pki.ca().display().to_string(),
    );
    let mut node = Node::spawn_env(
        "n1",
        "site-a",
        &etcd.endpoints(),
        &[],
        &[
            ("CENTINELA_TLS_CERT", &certificate),
            ("CENTINELA_TLS_KEY", &key),
            ("CENTINELA_TLS_CA", &ca),
        ],
    );
    node.wait_started();
    let port = node.grpc.rsplit(':').next().unwrap().to_string();
    let https = format!("https://localhost:{port}");
    let with_ca = ["--ca", ca.as_str()];

    // The right CA: a press over TLS becomes an incident.
    let out = wait::until_blocking("a press over TLS", || {
        let out = client(&https, &["press", "B01", "--json"], &with_ca);
        if out.status.success() {
            Ok(out)
        } else {
            Err(stderr(&out))
        }
    });
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reply["incident"].as_str().is_some(), "{reply}");

    // Another CA: told so.
    let other_ca = other.ca().display().to_string();
    let out = client(&https, &["buttons"], &["--ca", &other_ca]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown CA"), "{}", stderr(&out));

    // A name the certificate does not carry: told so.
    let wrong_name = format!("https://127.0.0.1:{port}");
    let out = client(&wrong_name, &["buttons"], &with_ca);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("wrong name"), "{}", stderr(&out));

    // Plaintext to the TLS port: refused.
    let out = client(&format!("http://127.0.0.1:{port}"), &["buttons"], &[]);
    assert!(
        !out.status.success(),
        "plaintext was served on the TLS port"
    );
}
