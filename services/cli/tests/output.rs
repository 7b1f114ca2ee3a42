//! What the `centinela` binary writes, as an operator meets it outside a terminal: logs
//! redirected to a file or a pipe hold no colour codes, and with `CENTINELA_LOG_FORMAT=json`
//! every line of stderr is a JSON object; a client command whose reader closes the pipe early
//! (`centinela buttons | head -1`) ends quietly, exit 0, no panic; human output shows times in
//! the city's zone, and an unknown `CENTINELA_TIMEZONE` is a usage error with a hint.
//!
//! Every process runs against a real demo on free ports (`common::Demo`), with stdout and
//! stderr captured to pipes, never a terminal.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use serde_json::Value;

use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
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

/// A city whose `centinela buttons` table is far larger than a pipe's buffer (64 KiB on
/// Linux): 1000 buttons with long names, ~130 KiB of table.
fn large_city(path: &std::path::Path) {
    let buttons = (0..1000).map(|i| {
        Button::new(
            format!("B{i:03}"),
            -12.0 - 0.0005 * f64::from(i / 40),
            -77.0 - 0.0005 * f64::from(i % 40),
        )
        .name(format!(
            "Avenida Nicolas de Pierola cuadra {i}, frente a la plaza, esquina con el jiron Camana, Cercado de Lima"
        ))
    });
    ScenarioBuilder::new("large")
        .notes("a long `buttons` table")
        .buttons(buttons)
        .brigade(Brigade::new("U1", "foot", -12.0, -77.0))
        .write(path);
}

/// Waits for `child` to exit and returns its status and stderr.
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = wait::until_blocking("the client to exit", || child.try_wait().unwrap());
    (status, reader.join().unwrap())
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_a_client_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("large.toml");
    large_city(&scenario);
    let demo = Demo::start(&["--scenario", scenario.to_str().unwrap()]);

    // The premise: the table does not fit in the pipe's buffer plus what the reader below
    // takes (one 8 KiB read), so the client is still writing when the reader goes away.
    let full = demo.cli(&["buttons"]);
    assert!(full.status.success());
    assert!(
        full.stdout.len() > 96 * 1024,
        "the table is only {} bytes",
        full.stdout.len()
    );

    // `centinela buttons | head -1`: one line read, then the pipe closed.
    let mut child = Command::new(BIN)
        .args(["buttons", "--addr", &demo.grpc])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("ID"), "first line: {first:?}");
    // The reader dropped: the pipe is closed with most of the table unwritten.
    let (status, stderr) = finish(child);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "nothing to say about a closed pipe: {stderr}"
    );

    // `--json` into a pipe closed before anything is read, and a mutating command: the press
    // is made, and the exit code says so.
    for args in [
        &["buttons", "--json"][..],
        &["incidents"],
        &["press", "B001"],
    ] {
        // On a busy machine a request can time out while the demo still connects its thousand
        // simulated cameras: reported as such (exit 3 and a hint) and tried again. What is
        // under test is that a closed pipe never makes the client panic or misreport.
        let (status, stderr) = wait::until_blocking(format!("{args:?} to be answered"), || {
            let mut child = Command::new(BIN)
                .args(args)
                .args(["--addr", &demo.grpc])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take());
            let (status, stderr) = finish(child);
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            let timed_out = status.code() == Some(3) && stderr.contains("timed out");
            (!timed_out).then_some((status, stderr))
        });
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
    }
    let incidents = demo.json(&["incidents"]);
    assert!(
        incidents
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["button"] == "B001"),
        "the press went through: {incidents}"
    );
}

#[test]
fn human_output_shows_times_in_the_city_zone_and_json_keeps_epoch_milliseconds() {
    let demo = Demo::start(&[]);
    let pressed = demo.json(&["press", "B01"]);
    let id = pressed["incident"].as_str().unwrap().to_string();
    let json = demo.json(&["incident", &id]);
    let opened_ms = json["audit"][0]["at_ms"]
        .as_u64()
        .expect("epoch ms in JSON");
    assert_eq!(json["created_at_ms"].as_u64(), Some(opened_ms));

    let run = |zone: Option<&str>, args: &[&str]| {
        let mut command = Command::new(BIN);
        command.args(args).args(["--addr", &demo.grpc]);
        match zone {
            Some(zone) => command.env("CENTINELA_TIMEZONE", zone),
            None => command.env_remove("CENTINELA_TIMEZONE"),
        };
        command.output().unwrap()
    };
    // Lima by default: UTC-5 all year (Peru keeps no daylight saving time).
    let lima = run(None, &["incident", &id]);
    assert!(lima.status.success());
    let lima = String::from_utf8_lossy(&lima.stdout);
    let utc = run(Some("UTC"), &["incident", &id]);
    let utc = String::from_utf8_lossy(&utc.stdout);
    let at = |text: &str, offset: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains("opened"))
            .filter_map(|line| line.split("  ").next())
            .filter(|cell| cell.ends_with(offset))
            .map(str::to_string)
            .collect()
    };
    let (lima_at, utc_at) = (at(&lima, " -05:00"), at(&utc, " +00:00"));
    assert_eq!(lima_at.len(), 1, "{lima}");
    assert_eq!(utc_at.len(), 1, "{utc}");
    assert!(!lima.contains(&opened_ms.to_string()), "{lima}");
    // The same instant, five hours apart on the clock.
    let hour = |at: &str| at[11..13].parse::<u32>().unwrap();
    assert_eq!(
        (hour(&lima_at[0]) + 5) % 24,
        hour(&utc_at[0]),
        "{lima_at:?} {utc_at:?}"
    );

    // The JSON is untouched by the zone.
    let json_utc = run(Some("UTC"), &["incident", &id, "--json"]);
    let json_utc: Value = serde_json::from_slice(&json_utc.stdout).unwrap();
    assert_eq!(json_utc["audit"][0]["at_ms"].as_u64(), Some(opened_ms));
    assert_eq!(json_utc["created_at_ms"], json["created_at_ms"]);

    // An unknown zone: exit 2, the name and a hint; never a panic. `--json` ignores it.
    let bad = run(Some("America/Lma"), &["incidents"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("America/Lma") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(bad.stdout.is_empty());
    assert!(
        run(Some("America/Lma"), &["incidents", "--json"])
            .status
            .success()
    );
}
