//! What the client commands print: the stable JSON of docs/product.md §4 (`--json`) and readable
//! tables for people.
//!
//! The JSON field names and enum strings here are a contract with scripts outside the project:
//! add fields freely, never rename or remove one. Times stay epoch milliseconds in JSON; the
//! tables show them in the city's zone ([`crate::time`]).
//!
//! Everything goes to stdout through [`write_stdout`], never `println!`: `println!` panics when
//! the reader has gone (`centinela incidents | head -1`), and a reader that stops early is no
//! failure of the command (see [`write_stdout`]).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use centinela_proto::v1;

pub use centinela_proto::json::{
    button as button_json, button_status, camera as camera_json, camera_state,
    candidate as candidate_json, cluster as cluster_json, incident as incident_json,
    incident_state, kind, priority, resolution, unit as unit_json, unit_mode, unit_status,
};

use crate::time::Zone;

/// Set once stdout's reader has gone: nothing more is written.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout (and flushes it).
///
/// A reader that closed the pipe (`EPIPE`: `| head -1`, `| grep -m1`, a pager quit early) ends
/// the output, not the command: nothing more is written, and `Ok` is returned, so the command
/// finishes and exits with the code it would have had, normally 0. Not the shell's 141 (killed
/// by SIGPIPE): the command did what it was asked — a press made, an incident acknowledged —
/// and a script under `set -o pipefail` must not take it for a failure and retry; the reader
/// got all it wanted. (`audit verify` still exits 5 on a broken chain: its verdict is the
/// exit code, not the text.) Any other error (a full disk, say) is returned.
pub fn write_stdout(text: &str) -> io::Result<()> {
    write_closing_quietly(&mut io::stdout().lock(), &STDOUT_CLOSED, text)
}

/// [`write_stdout`]'s rule over any writer, and the flag that remembers a closed reader.
fn write_closing_quietly(out: &mut impl Write, closed: &AtomicBool, text: &str) -> io::Result<()> {
    if closed.load(Ordering::Relaxed) {
        return Ok(());
    }
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            closed.store(true, Ordering::Relaxed);
            Ok(())
        }
        result => result,
    }
}

/// Prints one line (a newline is added).
pub fn print_line(line: &str) -> io::Result<()> {
    write_stdout(&format!("{line}\n"))
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl Serialize) -> io::Result<()> {
    let json = serde_json::to_string(value).map_err(io::Error::other)?;
    print_line(&json)
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    write_stdout(&table(header, rows))
}

/// Rows under a header, columns padded to their widest cell; one line each.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, width)| format!("{c:<width$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

pub fn incident_row(incident: &v1::Incident, zone: &Zone) -> Vec<String> {
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
        zone.format_ms(incident.created_at_ms),
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
    "OPENED",
];

/// A multi-line description of one incident, with its audit trail.
pub fn print_incident(incident: &v1::Incident, zone: &Zone) -> io::Result<()> {
    write_stdout(&incident_text(incident, zone))
}

fn incident_text(incident: &v1::Incident, zone: &Zone) -> String {
    let mut text = table(INCIDENT_HEADER, &[incident_row(incident, zone)]);
    if !incident.audit.is_empty() {
        text.push('\n');
        text.push_str(&table(
            &["AT", "ACTOR", "ACTION", "DETAIL"],
            &incident
                .audit
                .iter()
                .map(|a| {
                    vec![
                        zone.format_ms(a.at_ms),
                        a.actor.clone(),
                        a.action.clone(),
                        a.detail.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ));
    }
    text
}

/// A hand-off in `--json`: `incident`, `agency`, `cap_id`, `state` (`queued`, `delivered`,
/// `failed`), `attempts`, `last_error` (null when none), `created` (this call created it),
/// `messages` and `acks`.
pub fn handoff_json(handoff: &v1::Handoff) -> serde_json::Value {
    let text_or_null = |text: &str| {
        if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::from(text)
        }
    };
    serde_json::json!({
        "incident": handoff.incident_id,
        "agency": handoff.agency_id,
        "cap_id": handoff.cap_id,
        "state": handoff.state,
        "attempts": handoff.attempts,
        "last_error": text_or_null(&handoff.last_error),
        "created": handoff.created,
        "created_at_ms": handoff.created_at_ms,
        "operator": handoff.operator,
        "note": text_or_null(&handoff.note),
        "messages": handoff.messages.iter().map(|m| serde_json::json!({
            "seq": m.seq,
            "msg_type": m.msg_type,
            "identifier": m.identifier,
            "sent": m.sent,
            "state": m.state,
            "attempts": m.attempts,
            "last_error": text_or_null(&m.last_error),
            "last_status": if m.last_status == 0 { serde_json::Value::Null } else { m.last_status.into() },
            "delivered_at_ms": if m.delivered_at_ms == 0 { serde_json::Value::Null } else { m.delivered_at_ms.into() },
        })).collect::<Vec<_>>(),
        "acks": handoff.acks.iter().map(|a| serde_json::json!({"at_ms": a.at_ms, "detail": a.detail})).collect::<Vec<_>>(),
    })
}

/// Hand-offs as a table, one row per CAP message.
pub fn print_handoffs(handoffs: &[v1::Handoff], zone: &Zone) -> io::Result<()> {
    let rows: Vec<Vec<String>> = handoffs
        .iter()
        .flat_map(|h| {
            h.messages.iter().map(move |m| {
                vec![
                    h.agency_id.clone(),
                    m.msg_type.clone(),
                    m.identifier.clone(),
                    m.state.clone(),
                    m.attempts.to_string(),
                    if m.delivered_at_ms == 0 {
                        "-".to_string()
                    } else {
                        zone.format_ms(m.delivered_at_ms)
                    },
                    m.last_error.clone(),
                ]
            })
        })
        .collect();
    print_table(
        &[
            "AGENCY",
            "MESSAGE",
            "CAP ID",
            "STATE",
            "ATTEMPTS",
            "DELIVERED",
            "LAST ERROR",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe whose reader has gone.
    struct ClosedPipe {
        writes: usize,
    }

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A disk with no room.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly_and_for_good() {
        let closed = AtomicBool::new(false);
        let mut pipe = ClosedPipe { writes: 0 };
        write_closing_quietly(&mut pipe, &closed, "ID  STATE\n").unwrap();
        write_closing_quietly(&mut pipe, &closed, "B01-1  new\n").unwrap();
        assert!(closed.load(Ordering::Relaxed));
        assert_eq!(
            pipe.writes, 1,
            "nothing is written after the reader has gone"
        );
    }

    #[test]
    fn other_write_errors_are_errors() {
        let closed = AtomicBool::new(false);
        assert!(write_closing_quietly(&mut Full, &closed, "x\n").is_err());
        assert!(!closed.load(Ordering::Relaxed));
    }

    #[test]
    fn tables_pad_columns_and_trim_line_ends() {
        let text = table(
            &["ID", "NAME", "X"],
            &[
                vec!["B01".into(), "Plaza Mayor".into(), String::new()],
                vec!["B10".into(), "Jr. de la Unión".into(), "y".into()],
            ],
        );
        assert_eq!(
            text,
            "ID   NAME             X\nB01  Plaza Mayor\nB10  Jr. de la Unión  y\n"
        );
    }

    #[test]
    fn the_audit_trail_shows_times_in_the_zone_not_epoch_milliseconds() {
        let incident = v1::Incident {
            id: "B01-261127-220512".into(),
            button: "B01".into(),
            created_at_ms: 1_795_817_112_345,
            audit: vec![v1::AuditEntry {
                at_ms: 1_795_817_112_345,
                actor: "button:B01".into(),
                action: "opened".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let zone = Zone::named("America/Lima").unwrap();
        let row = incident_row(&incident, &zone);
        assert_eq!(row.last().unwrap(), "2026-11-27 17:05:12 -05:00");
        assert_eq!(row.len(), INCIDENT_HEADER.len());
        let text = incident_text(&incident, &zone);
        let audit = text.lines().last().unwrap();
        assert!(
            audit.starts_with("2026-11-27 17:05:12 -05:00  button:B01  opened"),
            "{text}"
        );
        assert!(!text.contains("1795817112345"), "{text}");
    }
}
