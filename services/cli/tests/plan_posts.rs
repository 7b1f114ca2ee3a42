//! `centinela plan-posts` end to end on a real `centinela demo` process with its archive in
//! an SQLite file: incidents pressed and closed through the CLI are archived by the leader, and
//! Operator.PlanPosts places posts where they were, as JSON and a table; bad arguments are
//! refused with the reason and a hint.

mod common;

use common::Demo;
use serde_json::Value;

/// Presses `button` and closes the incident as a prank.
fn prank(demo: &Demo, button: &str) {
    let pressed = demo.json(&["press", button]);
    let id = pressed["incident"].as_str().unwrap().to_string();
    let closed = demo.json(&["prank", &id]);
    assert_eq!(closed["state"], "closed");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plan_posts_places_brigades_where_the_archived_presses_were() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
    let demo = Demo::start(&["--archive", &url]);

    // Nothing archived yet: a clear refusal, not an empty plan.
    let out = demo.cli(&["plan-posts", "--brigades", "1", "--target-minutes", "5"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("no presses in the period"), "{out:?}");
    assert!(stderr(&out).contains("hint: "), "{out:?}");

    // B01 (Plaza de Armas) twice, B13 (1.4 km west) once.
    prank(&demo, "B01");
    prank(&demo, "B13");
    prank(&demo, "B01");
    demo.wait_json(
        &["report"],
        "the three closed incidents archived",
        |report: &Value| (report["total"]["incidents"] == 3).then_some(()),
    );

    // On foot within a minute a post covers only its own button: one brigade goes to B01,
    // which holds two of the three (equally recent) incidents.
    let args = [
        "plan-posts",
        "--brigades",
        "1",
        "--target-minutes",
        "1",
        "--mode",
        "foot",
    ];
    let plan = demo.json(&args);
    assert_eq!(plan["posts"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["posts"][0]["button"], "B01", "{plan}");
    assert!((plan["posts"][0]["lat"].as_f64().unwrap() + 12.0464).abs() < 1e-9);
    assert!((plan["posts"][0]["lon"].as_f64().unwrap() + 77.03).abs() < 1e-9);
    let after = plan["coverage_after"].as_f64().unwrap();
    assert!((after - 2.0 / 3.0).abs() < 1e-3, "{plan}");
    let before = plan["coverage_before"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&before), "{plan}");
    assert_eq!(plan["solver"], "exact");
    assert_eq!(plan["optimal"], true);
    assert_eq!(plan["incidents"], 3);
    assert_eq!(plan["buttons"], 2);

    // Two brigades: both buttons, everything covered.
    let args2 = [
        "plan-posts",
        "--brigades",
        "2",
        "--target-minutes",
        "1",
        "--mode",
        "foot",
    ];
    let plan = demo.json(&args2);
    let mut buttons: Vec<&str> = plan["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["button"].as_str().unwrap())
        .collect();
    buttons.sort_unstable();
    assert_eq!(buttons, ["B01", "B13"], "{plan}");
    assert_eq!(plan["coverage_after"], 1.0, "{plan}");

    // An hour by car reaches the whole centre from anywhere in it: today's units cover it all.
    let plan = demo.json(&["plan-posts", "--brigades", "3", "--target-minutes", "60"]);
    assert_eq!(plan["coverage_before"], 1.0, "{plan}");
    assert_eq!(plan["coverage_after"], 1.0, "{plan}");
    assert_eq!(plan["mode"], "car");
    // More brigades than useful posts: one post does it, the plan says so by listing one.
    assert_eq!(plan["posts"].as_array().unwrap().len(), 1, "{plan}");

    // The human table: the posts and both coverages.
    let out = demo.cli(&args);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("B01") && table.contains("66.7 %"), "{table}");
    assert!(table.contains("POST") && table.contains("now ("), "{table}");

    // Bad input: refused by the node with the reason (exit 1) and a hint.
    for (bad, needle) in [
        (["--brigades", "0", "--target-minutes", "5"], "brigades 0"),
        (
            ["--brigades", "5000", "--target-minutes", "5"],
            "brigades 5000",
        ),
        (
            ["--brigades", "2", "--target-minutes", "0"],
            "target_minutes 0",
        ),
        (
            ["--brigades", "2", "--target-minutes", "-3"],
            "target_minutes -3",
        ),
        (["--brigades", "2", "--target-minutes", "600"], "at most 60"),
    ] {
        let mut argv = vec!["plan-posts"];
        argv.extend(bad);
        let out = demo.cli(&argv);
        assert_eq!(out.status.code(), Some(1), "{argv:?}: {out:?}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{argv:?}: {err}");
        assert!(err.contains("hint: --brigades takes 1 to 1000"), "{err}");
    }
    // Not a number, or a missing flag: refused before any call.
    assert_eq!(
        demo.cli(&["plan-posts", "--brigades", "two", "--target-minutes", "5"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        demo.cli(&["plan-posts", "--brigades", "2"]).status.code(),
        Some(2)
    );
}

#[test]
fn demo_history_makes_plan_posts_show_something_at_once() {
    let demo = Demo::start(&["--history", "14", "--seed", "7"]);
    let plan = demo.json(&["plan-posts", "--brigades", "3", "--target-minutes", "2"]);
    let incidents = plan["incidents"].as_u64().unwrap();
    // About a dozen a day for two weeks (the last hour of today left out).
    assert!((80..=260).contains(&incidents), "{plan}");
    assert_eq!(plan["posts"].as_array().unwrap().len(), 3, "{plan}");
    let before = plan["coverage_before"].as_f64().unwrap();
    let after = plan["coverage_after"].as_f64().unwrap();
    assert!(after > 0.0 && after <= 1.0, "{plan}");
    assert!((0.0..=1.0).contains(&before), "{plan}");
    // Two minutes by car is about 640 m: no single post reaches the whole district, so three
    // posts must cover more than one.
    let one = demo.json(&["plan-posts", "--brigades", "1", "--target-minutes", "2"]);
    assert!(
        after > one["coverage_after"].as_f64().unwrap(),
        "{plan} {one}"
    );
    // The same history feeds the report.
    let report = demo.json(&["report"]);
    assert_eq!(
        report["total"]["incidents"].as_u64().unwrap(),
        incidents,
        "{report}"
    );
    // More days than the generator allows: refused at the command line.
    let out = std::process::Command::new(common::BIN)
        .args(["demo", "--history", "400"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
