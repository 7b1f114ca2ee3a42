//! What the `centinela` binary writes, as an operator meets it outside a terminal: logs
//! redirected to a file or a pipe hold no colour codes, and with `CENTINELA_LOG_FORMAT=json`
//! every line of stderr is a JSON object.
//!
//! Every process runs against a real demo on free ports (`common::Demo`), with stdout and
//! stderr captured to pipes, never a terminal.

mod common;

use std::process::Command;

use serde_json::Value;

use centinela_testkit::wait;
use common::{BIN, DEADLINE, Demo, Process};

/// The start of every ANSI escape sequence a colouring logger writes (CSI).
const ESCAPE: &str = "\x1b[";

/// The lines that are not a JSON object, with their numbers.
fn not_json(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| !serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()))
        .map(|(i, line)| format!("line {}: {line:?}", i + 1))
        .collect()
}

/// A client command with `RUST_LOG=debug`, so that it logs plenty (connections, h2 frames)
/// on its own stderr, a pipe here.
fn chatty_client(grpc: &str, args: &[&str], log_format: &str) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .args(["--addr", grpc])
        .env("RUST_LOG", "debug")
        .env("CENTINELA_LOG_FORMAT", log_format)
        .env_remove("NO_COLOR")
        .output()
        .expect("the centinela binary runs");
    assert!(
        out.status.success(),
        "`centinela {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn logs_written_to_a_pipe_have_no_colour_codes() {
    // `Demo` captures the demo's stderr through a pipe, as `centinela demo 2> demo.log` or a
    // service manager would. NO_COLOR is not set: the pipe alone must turn colour off.
    let demo = Demo::start(&[]);
    let pressed = demo.json(&["press", "B01"]);
    let incident = pressed["incident"].as_str().unwrap().to_string();
    demo.wait_json(&["incident", &incident], "an assignment", |i| {
        (!i["units"].as_array()?.is_empty()).then_some(())
    });

    let log = demo.log().lines();
    assert!(
        log.iter().any(|line| line.contains("INFO")),
        "the demo logged nothing at info: {log:?}"
    );
    let coloured: Vec<&String> = log.iter().filter(|l| l.contains(ESCAPE)).collect();
    assert!(
        coloured.is_empty(),
        "colour codes in the demo's log: {coloured:?}"
    );

    let client = chatty_client(&demo.grpc, &["units"], "pretty");
    let stderr = String::from_utf8_lossy(&client.stderr);
    assert!(
        stderr.contains("DEBUG"),
        "the client logged nothing: {stderr}"
    );
    assert!(
        !stderr.contains(ESCAPE),
        "colour codes in the client's log: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&client.stdout).contains(ESCAPE));
}

#[test]
fn with_centinela_log_format_json_every_line_of_stderr_is_json() {
    let mut demo = Process::spawn(
        "demo-json",
        Command::new(BIN)
            .args([
                "demo",
                "--quiet-sim",
                "--grpc",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "info")
            .env("CENTINELA_LOG_FORMAT", "json"),
    );
    // No banner in JSON: the `node ready` event carries the addresses.
    let grpc = wait::until_blocking("the demo's `node ready` event", || {
        demo.log().lines().iter().find_map(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            let fields = &event["fields"];
            if fields["message"] != "node ready" {
                return None;
            }
            Some(format!("http://{}", fields["grpc"].as_str()?))
        })
    });

    let out = Command::new(BIN)
        .args(["press", "B01", "--json", "--addr", &grpc])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = chatty_client(&grpc, &["units"], "json");
    let client_log: Vec<String> = String::from_utf8_lossy(&client.stderr)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        client_log.len() > 3,
        "the client logged too little: {client_log:?}"
    );
    assert_eq!(
        not_json(&client_log),
        Vec::<String>::new(),
        "the client's stderr"
    );

    // Through shutdown too: the words of a stopping demo are log events as well.
    demo.signal("TERM");
    let exit = demo
        .wait_exit(DEADLINE)
        .expect("the demo stops after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    let log = wait::until_blocking("the demo's last log line", || {
        let lines = demo.log().lines();
        lines
            .iter()
            .any(|line| line.contains("node stopped"))
            .then_some(lines)
    });
    assert!(log.len() > 5, "the demo logged too little: {log:?}");
    assert_eq!(not_json(&log), Vec::<String>::new(), "the demo's stderr");
    assert!(log.iter().all(|line| !line.contains(ESCAPE)));
    assert!(log.iter().any(|line| line.contains("stopping")), "{log:?}");
}
