//! The invariants of docs/product.md §3, checked on a run's [`History`].
//!
//! Safety, replaying the store's committed changes revision by revision (the checks are
//! `centinela_testkit::invariants`, which the process-level tests run on etcd too; the
//! election-key fence is the simulation's own: only it sees every election key's creation):
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

use centinela_testkit::invariants::{self, Ack, Fence, Records, is_open, units_of};

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

const ROOT: &str = invariants::ROOT;

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
    /// Incidents, brigades and press keys, as of the revision being applied.
    records: Records,
    cameras: BTreeMap<String, Value>,
    /// Live keys of the dispatcher election: key -> create revision (a term).
    election: BTreeMap<String, i64>,
    times: BTreeMap<String, IncidentTimes>,
    fence: Fence,
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
        self.records
            .brigades
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
            let incident = value.map(invariants::press_value);
            let before = self.records.presses.get(press).map(String::as_str);
            if let Some(change) = invariants::press_key_change(press, before, incident.as_deref()) {
                self.violation(format!("at revision {revision} {change}"));
            }
            match incident {
                Some(incident) => self.records.presses.insert(press.to_string(), incident),
                None => self.records.presses.remove(press),
            };
        }
    }

    fn apply_incident(&mut self, t_ms: u64, revision: i64, id: &str, value: Option<Value>) {
        let Some(incident) = value else {
            self.violation(format!("at revision {revision} incident {id} was deleted"));
            self.records.incidents.remove(id);
            return;
        };
        let (audit_before, backwards) = match self.records.incidents.get(id) {
            Some(before) => (
                invariants::audit_len(before),
                invariants::incident_moves_forward(id, before, &incident),
            ),
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
                (0, None)
            }
        };
        if let Some(backwards) = backwards {
            self.violation(format!("at revision {revision} {backwards}"));
        }
        // New assignments (the trail may drop its oldest entries: `audit_overflow` counts them).
        for term in invariants::new_assignments(&incident, audit_before) {
            self.assignments += 1;
            let Some(term) = term else {
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
            if let Some(stale) = self.fence.assigned(id, term, revision) {
                self.violation(stale);
            }
        }
        if !units_of(&incident).is_empty()
            && let Some(times) = self.times.get_mut(id)
            && times.first_assigned_ms.is_none()
        {
            times.first_assigned_ms = Some(t_ms);
        }
        self.records.incidents.insert(id.to_string(), incident);
    }

    fn apply_brigade(&mut self, revision: i64, id: &str, value: Option<Value>) {
        let Some(brigade) = value else {
            self.violation(format!("at revision {revision} brigade {id} was deleted"));
            self.records.brigades.remove(id);
            return;
        };
        let backwards = self
            .records
            .brigades
            .get(id)
            .and_then(|before| invariants::brigade_moves_forward(id, before, &brigade));
        if let Some(backwards) = backwards {
            self.violation(format!("at revision {revision} {backwards}"));
        }
        self.records.brigades.insert(id.to_string(), brigade);
    }

    /// The invariants that hold at every revision boundary.
    fn check_revision(&mut self, revision: i64) {
        for double in invariants::brigades_in_two_open_incidents(&self.records.incidents) {
            self.violation(format!("at revision {revision} {double}"));
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

    // Acknowledged presses are durable, each in the incident it was acknowledged with; closed
    // incidents are complete.
    let acked = history.acked.iter().map(|press| Ack {
        button: &press.button,
        press_id: &press.press_id,
        incident: &press.incident,
    });
    let lost = invariants::acked_presses(&replay.records, acked);
    let incomplete = invariants::closed_incidents_complete(&replay.records.incidents);
    for problem in lost.into_iter().chain(incomplete) {
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
    for (id, incident) in &replay.records.incidents {
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
            .records
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
        incidents: replay.records.incidents.len(),
        closed: replay
            .records
            .incidents
            .values()
            .filter(|i| !is_open(i))
            .count(),
        assignments: replay.assignments,
        terms: replay.terms.clone(),
        revisions: last_revision,
        violations: replay.violations,
    }
}
