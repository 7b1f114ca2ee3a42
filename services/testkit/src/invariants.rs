//! The system's safety invariants (docs/product.md §3.1), checked over a neutral input: the
//! store's records as read (incidents and brigades as their JSON, press keys as the incident
//! they name) and the presses some client got acknowledged. The simulation replays its recorded
//! history through these checks (`services/sim/src/check.rs`); the process-level tests read
//! etcd (`services/cli/tests/common`). Each side only gathers the input.
//!
//! - **No acknowledged press lost** ([`acked_presses`]): every acknowledged press has its
//!   `presses/{button}/{press_id}` key (unless its incident is past its press budget,
//!   `PRESS_KEYS_PER_INCIDENT_MAX` presses: then it is only counted), naming the incident it
//!   was acknowledged with, and that
//!   incident exists and belongs to the button; a press id was acknowledged with one incident
//!   only; every press key names an incident that exists. A press key never moves to another
//!   incident nor disappears ([`press_key_change`]).
//! - **No brigade in two open incidents** ([`brigades_in_two_open_incidents`]), and brigade and
//!   incident records name each other ([`brigades_and_incidents_agree`]).
//! - **States only move forward**: an incident's state ([`incident_moves_forward`]); a
//!   brigade's status while it serves one incident ([`brigade_moves_forward`]).
//! - **Every closed incident is complete** ([`closed_incidents_complete`]): a resolution, a
//!   closing entry in its audit trail, no units.
//! - **One dispatcher commits per term** ([`Fence`]): dispatcher assignments (the `assigned`
//!   audit entries carrying the dispatcher's term, [`new_assignments`]) are committed with
//!   non-decreasing terms: once a term has assigned, no older term's assignment commits.
//!
//! Every check returns what it found wrong, as sentences naming the records (empty: it holds).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use centinela_core::limits::PRESS_KEYS_PER_INCIDENT_MAX;

/// Where Centinela keeps its records in the store.
pub const ROOT: &str = "/centinela/";

/// The records the checks look at, as read from the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    /// `incidents/{id}`, as stored.
    pub incidents: BTreeMap<String, Value>,
    /// `brigades/{id}`, as stored.
    pub brigades: BTreeMap<String, Value>,
    /// `presses/{button}/{press_id}`: `{button}/{press_id}` → the incident id it names.
    pub presses: BTreeMap<String, String>,
}

impl Records {
    /// The records among `kvs` (keys under [`ROOT`]; other keys are passed over), and the keys
    /// that do not decode.
    pub fn read<'a>(kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> (Records, Vec<String>) {
        let mut records = Records::default();
        let mut violations = Vec::new();
        for (key, value) in kvs {
            if let Err(e) = records.put(key, value) {
                violations.push(format!("{key}: {e}"));
            }
        }
        (records, violations)
    }

    /// Files one committed value of `key`; an incident or brigade that is not JSON is an error
    /// (and is not filed). Keys of other kinds are passed over.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let Some(rest) = key.strip_prefix(ROOT) else {
            return Ok(());
        };
        let json =
            || serde_json::from_slice::<Value>(value).map_err(|e| format!("invalid JSON: {e}"));
        if let Some(id) = rest.strip_prefix("incidents/") {
            self.incidents.insert(id.to_string(), json()?);
        } else if let Some(id) = rest.strip_prefix("brigades/") {
            self.brigades.insert(id.to_string(), json()?);
        } else if let Some(press) = rest.strip_prefix("presses/") {
            self.presses.insert(press.to_string(), press_value(value));
        }
        Ok(())
    }
}

/// The incident id a press key holds.
pub fn press_value(value: &[u8]) -> String {
    String::from_utf8_lossy(value).trim().to_string()
}

/// A press a client got acknowledged: which button, its press id, and the incident the
/// acknowledgement named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub button: &'a str,
    pub press_id: &'a str,
    pub incident: &'a str,
}

/// The units an incident holds.
pub fn units_of(incident: &Value) -> Vec<String> {
    incident["units"]
        .as_array()
        .map(|units| {
            units
                .iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_open(incident: &Value) -> bool {
    incident["state"] != "closed"
}

/// No acknowledged press lost, one incident per press id, no press key naming a missing
/// incident.
pub fn acked_presses<'a>(
    records: &Records,
    acked: impl IntoIterator<Item = Ack<'a>>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let mut incidents_of_press: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for press in acked {
        incidents_of_press
            .entry(press.press_id)
            .or_default()
            .insert(press.incident);
        let key = format!("{}/{}", press.button, press.press_id);
        // Past its incident's press budget a press is counted in the incident, not keyed.
        let past_budget = records
            .incidents
            .get(press.incident)
            .is_some_and(|incident| {
                incident["press_count"].as_u64().unwrap_or(0) > PRESS_KEYS_PER_INCIDENT_MAX as u64
            });
        match records.presses.get(&key) {
            None if past_budget => {}
            None => violations.push(format!(
                "acknowledged press {} of {} (incident {}) has no presses/{key} key",
                press.press_id, press.button, press.incident
            )),
            Some(stored) if stored != press.incident => violations.push(format!(
                "press {} was acknowledged as incident {} but presses/{key} names {stored}",
                press.press_id, press.incident
            )),
            Some(_) => {}
        }
        match records.incidents.get(press.incident) {
            None => violations.push(format!(
                "acknowledged press {} names incident {}, which does not exist",
                press.press_id, press.incident
            )),
            Some(incident) if incident["button"] != press.button => violations.push(format!(
                "press {} of {} was acknowledged as incident {} of button {}",
                press.press_id, press.button, press.incident, incident["button"]
            )),
            Some(_) => {}
        }
    }
    for (press, incidents) in incidents_of_press {
        if incidents.len() > 1 {
            violations.push(format!(
                "press id {press} was acknowledged as several incidents: {incidents:?}"
            ));
        }
    }
    for (press, incident) in &records.presses {
        if !records.incidents.contains_key(incident) {
            violations.push(format!("presses/{press} names missing incident {incident}"));
        }
    }
    violations
}

/// A press key's change: it may appear, and be written again naming the same incident; it may
/// neither move to another incident nor disappear (press keys expire after
/// `centinela_records::limits::PRESS_KEY_TTL`, 10 minutes: longer than any test watches).
pub fn press_key_change(press: &str, before: Option<&str>, after: Option<&str>) -> Option<String> {
    match (before, after) {
        (Some(before), Some(after)) if before != after => Some(format!(
            "presses/{press} moved from incident {before} to {after}"
        )),
        (_, None) => Some(format!("presses/{press} was deleted")),
        _ => None,
    }
}

/// No brigade attached to two open incidents.
pub fn brigades_in_two_open_incidents(incidents: &BTreeMap<String, Value>) -> Vec<String> {
    let mut holders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (id, incident) in incidents.iter().filter(|(_, i)| is_open(i)) {
        for unit in units_of(incident) {
            holders.entry(unit).or_default().push(id);
        }
    }
    holders
        .into_iter()
        .filter(|(_, open)| open.len() > 1)
        .map(|(unit, open)| format!("brigade {unit} is attached to open incidents {open:?}"))
        .collect()
}

/// Every unit of an open incident is a brigade whose record names that incident, and every
/// brigade that names an incident is among that open incident's units.
pub fn brigades_and_incidents_agree(records: &Records) -> Vec<String> {
    let mut violations = Vec::new();
    for (incident, open) in records.incidents.iter().filter(|(_, i)| is_open(i)) {
        for unit in units_of(open) {
            match records.brigades.get(&unit) {
                None => violations.push(format!("incident {incident} holds unknown brigade {unit}")),
                Some(brigade) if brigade["incident"] != incident.as_str() => violations.push(format!(
                    "incident {incident} holds brigade {unit}, whose record says incident {} (status {})",
                    brigade["incident"], brigade["status"]
                )),
                Some(_) => {}
            }
        }
    }
    for (id, brigade) in &records.brigades {
        let Some(incident_id) = brigade["incident"].as_str() else {
            continue;
        };
        match records.incidents.get(incident_id) {
            None => violations.push(format!("brigade {id} names missing incident {incident_id}")),
            Some(incident) if !is_open(incident) => violations.push(format!(
                "brigade {id} (status {}) names closed incident {incident_id}",
                brigade["status"]
            )),
            Some(incident) if !units_of(incident).contains(id) => violations.push(format!(
                "brigade {id} (status {}) names incident {incident_id}, whose units are {:?}",
                brigade["status"],
                units_of(incident)
            )),
            Some(_) => {}
        }
    }
    violations
}

/// Every closed incident has a resolution, a closing audit entry and no units.
pub fn closed_incidents_complete(incidents: &BTreeMap<String, Value>) -> Vec<String> {
    let mut violations = Vec::new();
    for (id, incident) in incidents.iter().filter(|(_, i)| !is_open(i)) {
        if incident["resolution"].is_null() {
            violations.push(format!("closed incident {id} has no resolution"));
        }
        let closing = incident["audit"]
            .as_array()
            .is_some_and(|audit| audit.iter().any(|entry| entry["action"] == "closed"));
        if !closing {
            violations.push(format!("closed incident {id} has no closing audit entry"));
        }
        let units = units_of(incident);
        if !units.is_empty() {
            violations.push(format!("closed incident {id} still holds units {units:?}"));
        }
    }
    violations
}

fn incident_rank(state: &str) -> u8 {
    match state {
        "new" => 0,
        "acknowledged" => 1,
        "dispatched" => 2,
        "en_route" => 3,
        "on_scene" => 4,
        "closed" => 5,
        _ => 255,
    }
}

/// An incident's state never moves backwards (`new` … `closed`).
pub fn incident_moves_forward(id: &str, before: &Value, after: &Value) -> Option<String> {
    let was = before["state"].as_str().unwrap_or("?");
    let now = after["state"].as_str().unwrap_or("?");
    (incident_rank(now) < incident_rank(was))
        .then(|| format!("incident {id} moved backwards from {was} to {now}"))
}

fn brigade_rank(status: &str) -> Option<u8> {
    match status {
        "dispatched" => Some(0),
        "en_route" => Some(1),
        "on_scene" => Some(2),
        _ => None,
    }
}

/// A brigade's status never moves backwards while it serves one incident
/// (`dispatched < en_route < on_scene`).
pub fn brigade_moves_forward(id: &str, before: &Value, after: &Value) -> Option<String> {
    if after["incident"].is_null() || before["incident"] != after["incident"] {
        return None;
    }
    let was = brigade_rank(before["status"].as_str().unwrap_or(""))?;
    let now = brigade_rank(after["status"].as_str().unwrap_or(""))?;
    (now < was).then(|| {
        format!(
            "brigade {id} moved backwards from {} to {} on incident {}",
            before["status"], after["status"], after["incident"]
        )
    })
}

/// How many audit entries an incident has had: those it holds and those its trail dropped
/// (`audit_overflow`, the oldest ones).
pub fn audit_len(incident: &Value) -> usize {
    incident["audit"].as_array().map_or(0, Vec::len)
        + incident["audit_overflow"].as_u64().unwrap_or(0) as usize
}

/// The assignments in `incident`'s audit trail after the first `seen` entries (an
/// [`audit_len`] of an earlier version): the dispatcher's term for each, `None` for an
/// operator's.
pub fn new_assignments(incident: &Value, seen: usize) -> Vec<Option<i64>> {
    let overflow = incident["audit_overflow"].as_u64().unwrap_or(0) as usize;
    incident["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(seen.saturating_sub(overflow))
        .filter(|entry| entry["action"] == "assigned")
        .map(|entry| entry["actor"]["dispatcher"]["term"].as_i64())
        .collect()
}

/// The fence, followed over committed revisions: once a dispatcher term has assigned, no
/// assignment by an older term commits after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    /// The highest term seen assigning, and the revision it did.
    max: Option<(i64, i64)>,
}

impl Fence {
    /// An assignment by dispatcher `term` to `incident`, committed at `revision`.
    pub fn assigned(&mut self, incident: &str, term: i64, revision: i64) -> Option<String> {
        match self.max {
            Some((max, at)) if term < max => Some(format!(
                "at revision {revision} incident {incident} was assigned by dispatcher term \
                 {term}, after term {max} had assigned at revision {at}"
            )),
            Some((max, _)) if term == max => None,
            _ => {
                self.max = Some((term, revision));
                None
            }
        }
    }

    /// An assignment by `term` seen in a snapshot (committed at some unknown earlier revision):
    /// raises the highest term seen, checks nothing.
    pub fn seen(&mut self, term: i64, revision: i64) {
        if self.max.is_none_or(|(max, _)| term > max) {
            self.max = Some((term, revision));
        }
    }

    /// The highest term seen assigning.
    pub fn max_term(&self) -> Option<i64> {
        self.max.map(|(term, _)| term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn incident(button: &str, state: &str, units: &[&str]) -> Value {
        let audit = if state == "closed" {
            json!([{"action": "opened"}, {"action": "closed"}])
        } else {
            json!([{"action": "opened"}])
        };
        let resolution = if state == "closed" {
            json!("handled")
        } else {
            Value::Null
        };
        json!({"button": button, "state": state, "units": units, "audit": audit,
               "resolution": resolution})
    }

    fn brigade(status: &str, incident: Option<&str>) -> Value {
        json!({"status": status, "incident": incident})
    }

    /// I1 (open, U1) pressed as P1/p-1; U1 on I1; U2 free.
    fn sound() -> Records {
        let (records, bad) = Records::read(
            [
                (
                    "/centinela/incidents/I1",
                    incident("P1", "dispatched", &["U1"]).to_string().as_bytes(),
                ),
                (
                    "/centinela/brigades/U1",
                    brigade("dispatched", Some("I1")).to_string().as_bytes(),
                ),
                (
                    "/centinela/brigades/U2",
                    brigade("available", None).to_string().as_bytes(),
                ),
                ("/centinela/presses/P1/p-1", b"I1\n".as_slice()),
                ("/centinela/election/x", b"n1".as_slice()),
                ("/elsewhere/incidents/I9", b"not json".as_slice()),
            ]
            .iter()
            .map(|(k, v)| (*k, *v)),
        );
        assert!(bad.is_empty(), "{bad:?}");
        records
    }

    fn ack<'a>(press_id: &'a str, incident: &'a str) -> Ack<'a> {
        Ack {
            button: "P1",
            press_id,
            incident,
        }
    }

    fn has(violations: &[String], needle: &str) {
        assert!(
            violations.iter().any(|v| v.contains(needle)),
            "expected a violation containing {needle:?}, got {violations:#?}"
        );
    }

    #[test]
    fn a_sound_state_holds_every_invariant() {
        let records = sound();
        assert_eq!(records.presses["P1/p-1"], "I1");
        assert!(acked_presses(&records, [ack("p-1", "I1")]).is_empty());
        assert!(brigades_in_two_open_incidents(&records.incidents).is_empty());
        assert!(brigades_and_incidents_agree(&records).is_empty());
        assert!(closed_incidents_complete(&records.incidents).is_empty());
    }

    #[test]
    fn a_record_that_does_not_decode_is_named() {
        let (_, bad) = Records::read([("/centinela/brigades/U1", b"{".as_slice())]);
        has(&bad, "/centinela/brigades/U1: invalid JSON");
    }

    #[test]
    fn lost_and_misfiled_presses_are_caught() {
        let mut records = sound();
        records.presses.insert("P1/p-3".into(), "I7".into());
        let violations = acked_presses(
            &records,
            [ack("p-1", "I2"), ack("p-2", "I9"), ack("p-1", "I1")],
        );
        has(
            &violations,
            "press p-1 was acknowledged as incident I2 but presses/P1/p-1 names I1",
        );
        has(
            &violations,
            "press p-2 of P1 (incident I9) has no presses/P1/p-2 key",
        );
        has(
            &violations,
            "acknowledged press p-2 names incident I9, which does not exist",
        );
        has(
            &violations,
            "press id p-1 was acknowledged as several incidents",
        );
        has(&violations, "presses/P1/p-3 names missing incident I7");
        let other_button = Ack {
            button: "P2",
            press_id: "p-1",
            incident: "I1",
        };
        has(
            &acked_presses(&records, [other_button]),
            "press p-1 of P2 was acknowledged as incident I1 of button \"P1\"",
        );
        has(
            &[press_key_change("P1/p-1", Some("I1"), Some("I2")).unwrap()],
            "moved from incident I1 to I2",
        );
        has(
            &[press_key_change("P1/p-1", Some("I1"), None).unwrap()],
            "was deleted",
        );
        assert_eq!(press_key_change("P1/p-1", Some("I1"), Some("I1")), None);
        assert_eq!(press_key_change("P1/p-1", None, Some("I1")), None);
    }

    #[test]
    fn a_brigade_in_two_open_incidents_is_caught() {
        let mut records = sound();
        records
            .incidents
            .insert("I2".into(), incident("P2", "en_route", &["U1"]));
        has(
            &brigades_in_two_open_incidents(&records.incidents),
            "brigade U1 is attached to open incidents [\"I1\", \"I2\"]",
        );
        has(
            &brigades_and_incidents_agree(&records),
            "incident I2 holds brigade U1, whose record says incident \"I1\"",
        );
        // A closed incident holds nobody.
        records
            .incidents
            .insert("I2".into(), incident("P2", "closed", &[]));
        assert!(brigades_in_two_open_incidents(&records.incidents).is_empty());
    }

    #[test]
    fn brigade_and_incident_records_that_disagree_are_caught() {
        let mut records = sound();
        records
            .brigades
            .insert("U2".into(), brigade("dispatched", Some("I1")));
        records
            .brigades
            .insert("U3".into(), brigade("dispatched", Some("I8")));
        records
            .incidents
            .insert("I3".into(), incident("P3", "dispatched", &["U9"]));
        records
            .incidents
            .insert("I4".into(), incident("P4", "closed", &[]));
        records
            .brigades
            .insert("U4".into(), brigade("on_scene", Some("I4")));
        let violations = brigades_and_incidents_agree(&records);
        has(
            &violations,
            "brigade U2 (status \"dispatched\") names incident I1, whose units are [\"U1\"]",
        );
        has(&violations, "brigade U3 names missing incident I8");
        has(&violations, "incident I3 holds unknown brigade U9");
        has(
            &violations,
            "brigade U4 (status \"on_scene\") names closed incident I4",
        );
    }

    #[test]
    fn an_incomplete_closed_incident_is_caught() {
        let mut incidents = BTreeMap::new();
        incidents.insert(
            "I1".to_string(),
            json!({"state": "closed", "units": ["U1"], "audit": [{"action": "opened"}], "resolution": null}),
        );
        let violations = closed_incidents_complete(&incidents);
        has(&violations, "closed incident I1 has no resolution");
        has(&violations, "closed incident I1 has no closing audit entry");
        has(&violations, "closed incident I1 still holds units [\"U1\"]");
    }

    #[test]
    fn states_moving_backwards_are_caught() {
        let on_scene = incident("P1", "on_scene", &["U1"]);
        let dispatched = incident("P1", "dispatched", &["U1"]);
        has(
            &[incident_moves_forward("I1", &on_scene, &dispatched).unwrap()],
            "incident I1 moved backwards from on_scene to dispatched",
        );
        assert_eq!(incident_moves_forward("I1", &dispatched, &on_scene), None);
        let en_route = brigade("en_route", Some("I1"));
        has(
            &[brigade_moves_forward("U1", &en_route, &brigade("dispatched", Some("I1"))).unwrap()],
            "brigade U1 moved backwards from \"en_route\" to \"dispatched\" on incident \"I1\"",
        );
        // A new incident, or freed: not a move backwards.
        assert_eq!(
            brigade_moves_forward("U1", &en_route, &brigade("dispatched", Some("I2"))),
            None
        );
        assert_eq!(
            brigade_moves_forward("U1", &en_route, &brigade("available", None)),
            None
        );
    }

    #[test]
    fn an_older_term_assigning_after_a_newer_one_is_caught() {
        let mut fence = Fence::default();
        assert_eq!(fence.assigned("I1", 5, 10), None);
        assert_eq!(fence.assigned("I2", 5, 11), None);
        assert_eq!(fence.assigned("I3", 7, 12), None);
        has(
            &[fence.assigned("I4", 5, 13).unwrap()],
            "at revision 13 incident I4 was assigned by dispatcher term 5, after term 7 had assigned at revision 12",
        );
        // A snapshot raises the highest term without judging.
        fence.seen(3, 20);
        fence.seen(9, 21);
        assert_eq!(fence.max_term(), Some(9));
        assert!(fence.assigned("I5", 8, 22).is_some());
    }

    #[test]
    fn new_assignments_follow_a_trail_that_drops_its_oldest_entries() {
        let dispatcher =
            |term: i64| json!({"action": "assigned", "actor": {"dispatcher": {"term": term}}});
        let operator = json!({"action": "assigned", "actor": "operator:ana"});
        let before = json!({"audit": [{"action": "opened"}, dispatcher(4)]});
        assert_eq!(new_assignments(&before, 0), [Some(4)]);
        let seen = audit_len(&before);
        // Two more entries; the trail now keeps the last two and counts one dropped.
        let after = json!({"audit": [dispatcher(4), operator, dispatcher(6)], "audit_overflow": 1});
        assert_eq!(audit_len(&after), 4);
        assert_eq!(new_assignments(&after, seen), [None, Some(6)]);
    }
}
