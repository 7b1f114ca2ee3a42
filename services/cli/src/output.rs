//! What the client commands print: the stable JSON of docs/product.md §4 (`--json`) and readable
//! tables for people.
//!
//! The JSON field names and enum strings here are a contract with scripts outside the project:
//! add fields freely, never rename or remove one.

use serde::Serialize;

use centinela_proto::v1;

pub use centinela_proto::json::{
    button as button_json, button_status, camera as camera_json, camera_state,
    candidate as candidate_json, cluster as cluster_json, incident as incident_json,
    incident_state, kind, priority, resolution, unit as unit_json, unit_mode, unit_status,
};

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string(value).expect("JSON values always serialize")
    );
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn incident_row(incident: &v1::Incident) -> Vec<String> {
    vec![
        incident.id.clone(),
        incident.button.clone(),
        incident_state(incident.state),
        kind(incident.kind),
        priority(incident.priority),
        if incident.units.is_empty() {
            "-".into()
        } else {
            incident.units.join(",")
        },
        resolution(incident.resolution).unwrap_or_else(|| "-".into()),
        incident.press_count.to_string(),
    ]
}

pub const INCIDENT_HEADER: &[&str] = &[
    "ID",
    "BUTTON",
    "STATE",
    "KIND",
    "PRIORITY",
    "UNITS",
    "RESOLUTION",
    "PRESSES",
];

/// A multi-line description of one incident, with its audit trail.
pub fn print_incident(incident: &v1::Incident) {
    print_table(INCIDENT_HEADER, &[incident_row(incident)]);
    if !incident.audit.is_empty() {
        println!();
        print_table(
            &["AT_MS", "ACTOR", "ACTION", "DETAIL"],
            &incident
                .audit
                .iter()
                .map(|a| {
                    vec![
                        a.at_ms.to_string(),
                        a.actor.clone(),
                        a.action.clone(),
                        a.detail.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
}
