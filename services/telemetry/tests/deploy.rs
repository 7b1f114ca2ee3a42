//! The observability files under deploy/ are valid and name only metrics the code emits:
//! Grafana dashboards (JSON), Prometheus alert rules and the Collector config (YAML).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use centinela_telemetry::metrics::{ALL, prometheus_names};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn emitted() -> BTreeSet<String> {
    ALL.iter().flat_map(prometheus_names).collect()
}

/// Every `centinela_*` identifier in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("centinela_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
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
    let emitted = emitted();
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
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(!exprs.is_empty(), "{}: no queries", path.display());
        for expr in &exprs {
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "{}: `{expr}` names no centinela metric",
                path.display()
            );
            for name in names {
                assert!(
                    emitted.contains(&name),
                    "{}: `{name}` is not a metric the code emits (see services/telemetry/src/metrics.rs)",
                    path.display()
                );
            }
        }
    }
    assert_eq!(dashboards, 2, "the operations and cluster dashboards");
}

#[test]
fn alert_rules_are_valid_and_name_only_emitted_metrics() {
    let emitted = emitted();
    let text = std::fs::read_to_string(deploy().join("prometheus/alerts.yaml")).unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expression");
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
            assert!(
                runbook.ends_with(&format!("#{}", alert.to_ascii_lowercase())),
                "{alert}: runbook link {runbook}"
            );
            for name in metric_names(expr) {
                assert!(emitted.contains(&name), "{alert}: `{name}` is not emitted");
            }
            alerts.insert(alert.to_string());
        }
    }
    let expected: BTreeSet<String> = [
        "CentinelaNoLeader",
        "CentinelaPressToAssignedP99High",
        "CentinelaButtonOffline",
        "CentinelaLeaseLost",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(alerts, expected);
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
