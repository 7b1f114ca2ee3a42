//! The invariants of docs/product.md §3, checked on a run's [`History`].
//!
//! Safety, replaying the store's committed changes revision by revision:
//! - no acknowledged press lost: its `presses/{button}/{press_id}` key names the incident it
//!   was acknowledged with, and that incident exists and belongs to the button;
//! - at most one incident per press id;
//! - no brigade in two open incidents, at any revision;
//! - dispatcher writes accepted only with non-decreasing terms: every `assigned` audit entry
//!   made by the dispatcher carries its term, and no term older than one already seen
//!   assigning is ever committed after it; and (the fence exactly) it commits only while the
//!   election key created at that term still exists;
//! - incident states never move backwards; a brigade's status never moves backwards while it
//!   serves one incident (`dispatched < en_route < on_scene`);
//! - every closed incident has a resolution, a closing audit entry and no units.
//!
//! Liveness, once faults healed (after [`Bounds::stable_ms`]):
//! - an incident created while some brigade was available is assigned within
//!   [`Bounds::assign_within_ms`];
//! - a pressed button's camera is aimed at the incident within [`Bounds::camera_within_ms`];
//! - at the end, no open incident is without units while a brigade is available.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::history::History;

/// The time bounds of the liveness checks (simulated ms since the run started).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// From here on every fault has healed and the cluster had time to settle.
    pub stable_ms: u64,
    /// Incidents created after this are too young to judge at the end.
    pub judge_until_ms: u64,
    pub assign_within_ms: u64,
    pub camera_within_ms: u64,
}

/// What the check found, and a few figures for the report.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub incidents: usize,
    pub closed: usize,
    pub assignments: usize,
    pub terms: BTreeSet<i64>,
    pub revisions: i64,
}

const ROOT: &str = "/centinela/";

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

fn brigade_rank(status: &str) -> Option<u8> {
    match status {
        "dispatched" => Some(0),
        "en_route" => Some(1),
        "on_scene" => Some(2),
        _ => None,
    }
}

fn units_of(incident: &Value) -> Vec<String> {
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

fn is_open(incident: &Value) -> bool {
    incident["state"] != "closed"
}

/// What the replay tracks per incident for the liveness checks.
#[derive(Default)]
struct IncidentTimes {
    created_ms: u64,
    camera: String,
    /// Whether some brigade was available when it was created.
    brigade_available_at_creation: bool,
    first_assigned_ms: Option<u64>,
    camera_aimed_ms: Option<u64>,
}

#[derive(Default)]
struct Replay {
    incidents: BTreeMap<String, Value>,
    brigades: BTreeMap<String, Value>,
    cameras: BTreeMap<String, Value>,
    presses: BTreeMap<String, String>,
    /// Live keys of the dispatcher election: key -> create revision (a term).
    election: BTreeMap<String, i64>,
    times: BTreeMap<String, IncidentTimes>,
    max_term: Option<(i64, i64)>,
    /// The create revision of the event being applied.
    pending_create_revision: i64,
    violations: Vec<String>,
    assignments: usize,
    terms: BTreeSet<i64>,
}

impl Replay {
    fn violation(&mut self, what: String) {
        if self.violations.len() < 100 {
            self.violations.push(what);
        }
    }

    fn any_brigade_available(&self) -> bool {
        self.brigades
            .values()
            .any(|b| b["status"] == "available" && b["incident"].is_null())
    }

    fn apply(&mut self, t_ms: u64, revision: i64, key: &str, value: Option<&[u8]>) {
        let Some(rest) = key.strip_prefix(ROOT) else {
            return;
        };
        let parsed = match value.map(serde_json::from_slice::<Value>) {
            None => None,
            Some(Ok(value)) => Some(value),
            Some(Err(e)) if !rest.starts_with("presses/") && !rest.starts_with("open/") => {
                if rest.starts_with("incidents/")
                    || rest.starts_with("brigades/")
                    || rest.starts_with("cameras/")
                {
                    self.violation(format!(
                        "{key} holds invalid JSON at revision {revision}: {e}"
                    ));
                }
                None
            }
            Some(Err(_)) => None,
        };
        if let Some(key) = rest.strip_prefix("election/") {
            match value {
                Some(_) => {
                    let create = self.pending_create_revision;
                    self.election.entry(key.to_string()).or_insert(create);
                }
                None => {
                    self.election.remove(key);
                }
            }
        } else if let Some(id) = rest.strip_prefix("incidents/") {
            self.apply_incident(t_ms, revision, id, parsed);
        } else if let Some(id) = rest.strip_prefix("brigades/") {
            self.apply_brigade(revision, id, parsed);
        } else if let Some(id) = rest.strip_prefix("cameras/") {
            if let Some(camera) = &parsed
                && let Some(target) = camera["target"].as_str()
                && (camera["state"] == "aiming" || camera["state"] == "on_target")
                && let Some(times) = self.times.get_mut(target)
                && times.camera == id
                && times.camera_aimed_ms.is_none()
            {
                times.camera_aimed_ms = Some(t_ms);
            }
            match parsed {
                Some(camera) => self.cameras.insert(id.to_string(), camera),
                None => self.cameras.remove(id),
            };
        } else if let Some(press) = rest.strip_prefix("presses/") {
            match value {
                Some(incident) => {
                    let incident = String::from_utf8_lossy(incident).trim().to_string();
                    if let Some(before) = self.presses.get(press)
                        && *before != incident
                    {
                        self.violation(format!(
                            "at revision {revision} presses/{press} moved from incident {before} to {incident}"
                        ));
                    }
                    self.presses.insert(press.to_string(), incident);
                }
                None => {
                    self.violation(format!(
                        "at revision {revision} presses/{press} was deleted"
                    ));
                    self.presses.remove(press);
                }
            }
        }
    }

    fn apply_incident(&mut self, t_ms: u64, revision: i64, id: &str, value: Option<Value>) {
        let Some(incident) = value else {
            self.violation(format!("at revision {revision} incident {id} was deleted"));
            self.incidents.remove(id);
            return;
        };
        let state = incident["state"].as_str().unwrap_or("?").to_string();
        let audit_before = match self.incidents.get(id) {
            Some(before) => {
                let was = before["state"].as_str().unwrap_or("?").to_string();
                let audit = before["audit"].as_array().map_or(0, Vec::len)
                    + before["audit_overflow"].as_u64().unwrap_or(0) as usize;
                if incident_rank(&state) < incident_rank(&was) {
                    self.violation(format!(
                        "at revision {revision} incident {id} moved backwards from {was} to {state}"
                    ));
                }
                audit
            }
            None => {
                let available = self.any_brigade_available();
                self.times.insert(
                    id.to_string(),
                    IncidentTimes {
                        created_ms: t_ms,
                        camera: incident["camera"].as_str().unwrap_or_default().to_string(),
                        brigade_available_at_creation: available,
                        ..IncidentTimes::default()
                    },
                );
                0
            }
        };
        // New audit entries (the trail may drop its oldest ones: `audit_overflow` counts them).
        let overflow = incident["audit_overflow"].as_u64().unwrap_or(0) as usize;
        let audit = incident["audit"].as_array().cloned().unwrap_or_default();
        let skip = audit_before.saturating_sub(overflow);
        for entry in audit.iter().skip(skip) {
            if entry["action"] != "assigned" {
                continue;
            }
            self.assignments += 1;
            let Some(term) = entry["actor"]["dispatcher"]["term"].as_i64() else {
                continue; // an operator's assignment
            };
            self.terms.insert(term);
            // The fence: a dispatcher's write commits only while its election key (created at
            // revision `term`) still exists.
            if !self.election.values().any(|created| *created == term) {
                self.violation(format!(
                    "at revision {revision} incident {id} was assigned by dispatcher term {term}, \
                     whose election key no longer existed"
                ));
            }
            match self.max_term {
                Some((max, at)) if term < max => self.violation(format!(
                    "at revision {revision} incident {id} was assigned by dispatcher term {term}, \
                     after term {max} had assigned at revision {at}"
                )),
                Some((max, _)) if term == max => {}
                _ => self.max_term = Some((term, revision)),
            }
        }
        if !units_of(&incident).is_empty()
            && let Some(times) = self.times.get_mut(id)
            && times.first_assigned_ms.is_none()
        {
            times.first_assigned_ms = Some(t_ms);
        }
        self.incidents.insert(id.to_string(), incident);
    }

    fn apply_brigade(&mut self, revision: i64, id: &str, value: Option<Value>) {
        let Some(brigade) = value else {
            self.violation(format!("at revision {revision} brigade {id} was deleted"));
            self.brigades.remove(id);
            return;
        };
        if let Some(before) = self.brigades.get(id)
            && !brigade["incident"].is_null()
            && before["incident"] == brigade["incident"]
            && let (Some(was), Some(now)) = (
                brigade_rank(before["status"].as_str().unwrap_or("")),
                brigade_rank(brigade["status"].as_str().unwrap_or("")),
            )
            && now < was
        {
            self.violation(format!(
                "at revision {revision} brigade {id} moved backwards from {} to {} on incident {}",
                before["status"], brigade["status"], brigade["incident"]
            ));
        }
        self.brigades.insert(id.to_string(), brigade);
    }

    /// The invariants that hold at every revision boundary.
    fn check_revision(&mut self, revision: i64) {
        let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, incident) in &self.incidents {
            if is_open(incident) {
                for unit in incident["units"].as_array().into_iter().flatten() {
                    if let Some(unit) = unit.as_str() {
                        holders.entry(unit).or_default().push(id);
                    }
                }
            }
        }
        let doubles: Vec<String> = holders
            .iter()
            .filter(|(_, open)| open.len() > 1)
            .map(|(unit, open)| {
                format!("at revision {revision} brigade {unit} is in open incidents {open:?}")
            })
            .collect();
        for double in doubles {
            self.violation(double);
        }
    }
}

/// Checks every invariant on `history`; see the module docs.
pub fn check(history: &History, bounds: &Bounds) -> Verdict {
    let mut replay = Replay::default();
    let mut last_revision = 0;
    for event in &history.store {
        if event.revision != last_revision && last_revision != 0 {
            replay.check_revision(last_revision);
        }
        last_revision = event.revision;
        replay.pending_create_revision = event.create_revision;
        replay.apply(
            event.t_ms,
            event.revision,
            &event.key,
            event.value.as_deref(),
        );
    }
    if last_revision != 0 {
        replay.check_revision(last_revision);
    }

    // Acknowledged presses are durable, each in the incident it was acknowledged with.
    let mut incident_of_press: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for press in &history.acked {
        incident_of_press
            .entry(&press.press_id)
            .or_default()
            .insert(&press.incident);
        let key = format!("{}/{}", press.button, press.press_id);
        match replay.presses.get(&key) {
            None => replay.violation(format!(
                "acknowledged press {} of {} (incident {}) has no presses/{key} key",
                press.press_id, press.button, press.incident
            )),
            Some(stored) if *stored != press.incident => replay.violation(format!(
                "press {} was acknowledged as incident {} but presses/{key} names {stored}",
                press.press_id, press.incident
            )),
            Some(_) => {}
        }
        match replay.incidents.get(&press.incident) {
            None => replay.violation(format!(
                "acknowledged press {} names incident {}, which does not exist",
                press.press_id, press.incident
            )),
            Some(incident) if incident["button"] != press.button.as_str() => {
                let button = incident["button"].clone();
                replay.violation(format!(
                    "press {} of {} was acknowledged as incident {} of button {button}",
                    press.press_id, press.button, press.incident
                ))
            }
            Some(_) => {}
        }
    }
    for (press, incidents) in incident_of_press {
        if incidents.len() > 1 {
            replay.violation(format!(
                "press id {press} was acknowledged as several incidents: {incidents:?}"
            ));
        }
    }
    let dangling: Vec<String> = replay
        .presses
        .iter()
        .filter(|(_, incident)| !replay.incidents.contains_key(*incident))
        .map(|(press, incident)| format!("presses/{press} names missing incident {incident}"))
        .collect();
    for dangling in dangling {
        replay.violation(dangling);
    }

    // Closed incidents are complete.
    let mut closed_problems = Vec::new();
    for (id, incident) in &replay.incidents {
        if is_open(incident) {
            continue;
        }
        if incident["resolution"].is_null() {
            closed_problems.push(format!("closed incident {id} has no resolution"));
        }
        let closing = incident["audit"]
            .as_array()
            .is_some_and(|audit| audit.iter().any(|entry| entry["action"] == "closed"));
        if !closing {
            closed_problems.push(format!("closed incident {id} has no closing audit entry"));
        }
        if !units_of(incident).is_empty() {
            closed_problems.push(format!(
                "closed incident {id} still holds units {:?}",
                units_of(incident)
            ));
        }
    }
    for problem in closed_problems {
        replay.violation(problem);
    }

    // Liveness once healed.
    let mut late = Vec::new();
    for (id, times) in &replay.times {
        if times.created_ms < bounds.stable_ms || times.created_ms > bounds.judge_until_ms {
            continue;
        }
        if times.brigade_available_at_creation {
            match times.first_assigned_ms {
                Some(at) if at - times.created_ms <= bounds.assign_within_ms => {}
                other => late.push(format!(
                    "liveness: incident {id} (created at {} ms, a brigade available) was assigned \
                     at {other:?} ms, not within {} ms",
                    times.created_ms, bounds.assign_within_ms
                )),
            }
        }
        match times.camera_aimed_ms {
            Some(at) if at - times.created_ms <= bounds.camera_within_ms => {}
            other => late.push(format!(
                "liveness: incident {id} (created at {} ms): camera {} aimed at {other:?} ms, not \
                 within {} ms",
                times.created_ms, times.camera, bounds.camera_within_ms
            )),
        }
    }
    for (id, incident) in &replay.incidents {
        if !is_open(incident) || !units_of(incident).is_empty() {
            continue;
        }
        let declined: BTreeSet<&str> = incident["declined"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let free: Vec<&String> = replay
            .brigades
            .iter()
            .filter(|(b, brigade)| {
                brigade["status"] == "available"
                    && brigade["incident"].is_null()
                    && !declined.contains(b.as_str())
            })
            .map(|(b, _)| b)
            .collect();
        if !free.is_empty() {
            late.push(format!(
                "liveness: at the end incident {id} is open without units while brigades \
                 {free:?} are available"
            ));
        }
    }
    for problem in late {
        replay.violation(problem);
    }

    Verdict {
        incidents: replay.incidents.len(),
        closed: replay.incidents.values().filter(|i| !is_open(i)).count(),
        assignments: replay.assignments,
        terms: replay.terms.clone(),
        revisions: last_revision,
        violations: replay.violations,
    }
}
