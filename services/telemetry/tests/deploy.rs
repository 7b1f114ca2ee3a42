//! The observability files under deploy/ are valid and name only metrics the code emits:
//! Grafana dashboards (JSON) and their provisioning, Prometheus rules and configuration, the
//! Collector config (YAML); and the alert rules pass their `promtool` unit tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use centinela_telemetry::metrics::{ALL, prometheus_names};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn emitted() -> BTreeSet<String> {
    ALL.iter().flat_map(prometheus_names).collect()
}

/// etcd's own metrics that the alerts and dashboards use, as etcd 3.4 names them (scraped
/// from the members' `/metrics`, deploy/prometheus/prometheus.yml).
const ETCD_METRICS: &[&str] = &[
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_server_quota_backend_bytes",
    "etcd_server_leader_changes_seen_total",
];

/// Every series name in a PromQL expression that is ours (`centinela_*`), a recording rule of
/// ours (`centinela:*`) or etcd's (`etcd_*`).
fn series_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut at = 0;
    while at < expr.len() {
        let rest = &expr[at..];
        let starts_name =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if starts_name
            && (rest.starts_with("centinela_")
                || rest.starts_with("centinela:")
                || rest.starts_with("etcd_"))
        {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_string());
            at += end;
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

/// The recording rules of alerts.yaml, and the whole rules document.
fn rules() -> (serde_yaml_ng::Value, BTreeSet<String>) {
    let text = std::fs::read_to_string(deploy().join("prometheus/alerts.yaml")).unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
    let mut recorded = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            if let Some(record) = rule["record"].as_str() {
                recorded.insert(record.to_string());
            }
        }
    }
    (rules, recorded)
}

/// Panics unless every series `expr` names is one we emit, record, or take from etcd; returns
/// how many it names.
fn check_names(expr: &str, recorded: &BTreeSet<String>, whose: &str) -> usize {
    let emitted = emitted();
    let names = series_names(expr);
    for name in &names {
        let known = emitted.contains(name)
            || recorded.contains(name)
            || ETCD_METRICS.contains(&name.as_str());
        assert!(
            known,
            "{whose}: `{name}` is not a metric the code emits (services/telemetry/src/metrics.rs), \
             a recording rule of alerts.yaml, or an etcd metric listed in ETCD_METRICS"
        );
    }
    names.len()
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_are_valid_and_name_only_emitted_metrics() {
    let (_, recorded) = rules();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(deploy().join("grafana")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        dashboards += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
        assert!(dashboard["uid"].is_string(), "{}: no uid", path.display());
        assert!(
            dashboard["title"].is_string(),
            "{}: no title",
            path.display()
        );
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty());
        let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
        assert_eq!(
            ids.len(),
            panels.len(),
            "{}: panel ids unique",
            path.display()
        );
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(!exprs.is_empty(), "{}: no queries", path.display());
        for expr in &exprs {
            let named = check_names(expr, &recorded, &path.display().to_string());
            assert!(named > 0, "{}: `{expr}` names no metric", path.display());
        }
    }
    assert_eq!(dashboards, 2, "the operations and cluster dashboards");
    for provisioning in ["datasources.yaml", "dashboards.yaml"] {
        let path = deploy().join("grafana/provisioning").join(provisioning);
        let text = std::fs::read_to_string(&path).unwrap();
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
        assert_eq!(config["apiVersion"].as_u64(), Some(1), "{provisioning}");
    }
}

/// The anchors of docs/operations.md's `### ` headings, as GitHub renders them.
fn runbook_anchors() -> BTreeSet<String> {
    let text = std::fs::read_to_string(deploy().join("../docs/operations.md")).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(|heading| heading.trim().to_ascii_lowercase())
        .collect()
}

#[test]
fn alert_rules_are_valid_and_name_only_emitted_metrics() {
    let (rules, recorded) = rules();
    let anchors = runbook_anchors();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("every rule has an expression");
            if let Some(record) = rule["record"].as_str() {
                assert!(record.starts_with("centinela:"), "{record}: our namespace");
                check_names(expr, &recorded, record);
                continue;
            }
            let alert = rule["alert"].as_str().expect("a rule records or alerts");
            assert!(
                rule["labels"]["severity"].is_string(),
                "{alert}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{alert}: no summary"
            );
            let runbook = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: no runbook"));
            let anchor = alert.to_ascii_lowercase();
            assert_eq!(
                runbook,
                format!("{{{{ $externalLabels.runbook_base_url }}}}#{anchor}"),
                "{alert}: an absolute runbook link, from the runbook_base_url setting"
            );
            assert!(
                anchors.contains(&anchor),
                "{alert}: docs/operations.md has no runbook entry `### {alert}`"
            );
            let named = check_names(expr, &recorded, alert);
            assert!(named > 0, "{alert}: names no metric");
            alerts.insert(alert.to_string());
        }
    }
    let expected: BTreeSet<String> = [
        "CentinelaAckObjectiveFastBurn",
        "CentinelaAckObjectiveSlowBurn",
        "CentinelaAssignObjectiveFastBurn",
        "CentinelaAssignObjectiveSlowBurn",
        "CentinelaIncidentUnacknowledged",
        "CentinelaIncidentUnassigned",
        "CentinelaNoLeader",
        "CentinelaPressToAssignedP99High",
        "CentinelaButtonOffline",
        "CentinelaCameraOffline",
        "CentinelaNodeNotReady",
        "CentinelaLeaseLost",
        "CentinelaStoreErrors",
        "CentinelaEtcdSpaceQuota",
        "CentinelaEtcdLeaderChanges",
        "CentinelaArchiveBacklog",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(alerts, expected);
}

/// Debian's promtool (package `prometheus`, installed by scripts/test.sh): `check rules`,
/// `check config`, and `test rules`, whose file has a firing and a quiet case per alert.
/// Without promtool the test fails under CI and says so elsewhere.
#[test]
fn promtool_checks_and_tests_the_rules() {
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let version = std::process::Command::new(&promtool)
        .arg("--version")
        .output();
    if version.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing (Debian package `prometheus`; scripts/test.sh installs it)"
        );
        eprintln!("promtool not found: skipping the rule tests outside CI");
        return;
    }
    let dir = deploy().join("prometheus");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
        text
    };
    run(&["check", "rules", "alerts.yaml"]);
    run(&["check", "config", "prometheus.yml"]);
    let tested = run(&["test", "rules", "tests/alerts_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a firing and a quiet case.
    let tests = std::fs::read_to_string(dir.join("tests/alerts_test.yaml")).unwrap();
    let tests: serde_yaml_ng::Value = serde_yaml_ng::from_str(&tests).unwrap();
    let (rules, _) = rules();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            let cases: Vec<&serde_yaml_ng::Value> = tests["tests"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
                .filter(|c| c["alertname"].as_str() == Some(alert))
                .collect();
            let firing = cases
                .iter()
                .any(|c| c["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()));
            let quiet = cases
                .iter()
                .any(|c| c["exp_alerts"].as_sequence().is_some_and(|a| a.is_empty()));
            assert!(firing && quiet, "{alert}: a firing and a quiet case");
        }
    }
}

#[test]
fn the_collector_keeps_metric_names_as_the_dashboards_expect() {
    let text = std::fs::read_to_string(deploy().join("otel/collector.yaml")).unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
    assert_eq!(
        config["exporters"]["prometheus"]["add_metric_suffixes"].as_bool(),
        Some(false),
        "the dashboards name metrics without unit or _total suffixes"
    );
    let pipelines = &config["service"]["pipelines"];
    assert!(pipelines["traces"]["receivers"].as_sequence().is_some());
    assert!(pipelines["metrics"]["exporters"].as_sequence().is_some());
}
