//! Panic buttons: where they are, which camera watches them, and whether they are working.
//!
//! A button's health is what operators see on the map. `Tampered` is sticky: only an explicit
//! clearance (after someone has looked at the pole) returns it to service, because a heartbeat
//! from a device that was forced open proves nothing about its integrity.

use std::fmt;
use std::time::Duration;

use crate::alert::{AlertKind, Alerts, Clearance};
use crate::geo::Position;
use crate::ids::OperatorId;
use crate::ids::{ButtonId, CameraId};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonHealth {
    Online,
    Offline,
    Tampered,
}

impl fmt::Display for ButtonHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ButtonHealth::Online => "online",
            ButtonHealth::Offline => "offline",
            ButtonHealth::Tampered => "tampered",
        })
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Button {
    pub id: ButtonId,
    /// Where the pole is, in words ("Plaza San Martín, north side"): what an operator reads out.
    pub name: String,
    /// Published on the public map; the incident opened by a press starts here.
    pub position: Position,
    /// The camera on the same pole, aimed at this button when it is pressed.
    pub camera: CameraId,
    pub health: ButtonHealth,
    /// When `health` last changed, so the console can say "offline since ...".
    pub health_since: Timestamp,
    /// Last proof of life from the device (heartbeat or tamper report); `None` before the first.
    pub last_heartbeat: Option<Timestamp>,
    /// A tamper or offline alert waiting for a supervisor, and past clearances
    /// ([`crate::alert`]).
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// A verify-first site: a press holds its brigade this many seconds for an operator to
    /// confirm on camera ([`crate::incident::Incident::held_until`]). `None`: dispatch at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_hold_s: Option<u64>,
    /// The district or sector of the city the pole is in ("Barrios Altos"), as the
    /// municipality names it: what its reports group by (`centinela report --by district`).
    /// `None` for a button the scenario gives none (and for records written before it
    /// existed): reported under [`DISTRICT_UNKNOWN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
}

/// The report group of incidents at buttons without a district (and of incidents archived
/// before buttons had one). A scenario cannot name a district this.
pub const DISTRICT_UNKNOWN: &str = "unknown";

impl Button {
    /// A button in service as of `now`, counted as having just been heard from.
    pub fn new(
        id: ButtonId,
        name: String,
        position: Position,
        camera: CameraId,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            name,
            position,
            camera,
            health: ButtonHealth::Online,
            health_since: now,
            last_heartbeat: Some(now),
            alerts: Alerts::default(),
            verify_hold_s: None,
            district: None,
        }
    }

    /// The device reported it is alive: an offline button comes back; a tampered one stays
    /// tampered until cleared.
    pub fn heartbeat(&mut self, now: Timestamp) {
        self.record_contact(now);
        if self.health == ButtonHealth::Offline {
            self.set_health(ButtonHealth::Online, now);
        }
    }

    /// The device reported its enclosure was opened or moved.
    pub fn tamper(&mut self, now: Timestamp) {
        // A tamper report is still the device talking, so it counts as proof of life.
        self.record_contact(now);
        if self.health != ButtonHealth::Tampered {
            self.set_health(ButtonHealth::Tampered, now);
        }
    }

    /// Someone inspected the pole and cleared the tamper alarm. No effect unless tampered; if the
    /// device is in fact silent, the next liveness check takes it offline.
    pub fn clear_tamper(&mut self, now: Timestamp) {
        if self.health == ButtonHealth::Tampered {
            self.set_health(ButtonHealth::Online, now);
        }
    }

    /// A supervisor cleared the button's open alert as `by`: a tamper alert is cleared after
    /// someone inspected the pole, so it also returns the button to service
    /// ([`Button::clear_tamper`]). `None` when no alert is open.
    pub fn clear_alert(&mut self, by: &OperatorId, now: Timestamp) -> Option<Clearance> {
        let clearance = self.alerts.clear(by, now)?;
        if clearance.kind == AlertKind::Tamper {
            self.clear_tamper(now);
        }
        Some(clearance)
    }

    /// Takes an online button offline when it has not been heard from within `timeout`; a button
    /// never heard from counts as silent. Returns whether the health changed. Tampered buttons
    /// stay tampered: that alarm is more important than the silence.
    pub fn check_liveness(&mut self, now: Timestamp, timeout: Duration) -> bool {
        if self.health != ButtonHealth::Online {
            return false;
        }
        let alive = self
            .last_heartbeat
            .is_some_and(|last| now.saturating_duration_since(last) <= timeout);
        if alive {
            return false;
        }
        self.set_health(ButtonHealth::Offline, now);
        true
    }

    fn record_contact(&mut self, now: Timestamp) {
        // Messages can arrive out of order through different nodes; keep the latest.
        self.last_heartbeat = Some(self.last_heartbeat.map_or(now, |last| last.max(now)));
    }

    fn set_health(&mut self, health: ButtonHealth, now: Timestamp) {
        debug_assert_ne!(self.health, health);
        self.health = health;
        self.health_since = now;
        match health {
            ButtonHealth::Tampered => self.alerts.raise(AlertKind::Tamper, now),
            ButtonHealth::Offline => self.alerts.raise(AlertKind::ButtonOffline, now),
            ButtonHealth::Online => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::HEARTBEAT_TIMEOUT;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn button() -> Button {
        Button::new(
            ButtonId::new("BTN-1").unwrap(),
            "Plaza Mayor".into(),
            Position::new(-12.0464, -77.03).unwrap(),
            CameraId::new("CAM-1").unwrap(),
            t(0),
        )
    }

    #[test]
    fn goes_offline_without_heartbeats_and_back_with_one() {
        let mut b = button();
        assert!(!b.check_liveness(t(30_000), HEARTBEAT_TIMEOUT));
        assert_eq!(b.health, ButtonHealth::Online);
        assert!(b.check_liveness(t(30_001), HEARTBEAT_TIMEOUT));
        assert_eq!(b.health, ButtonHealth::Offline);
        assert_eq!(b.health_since, t(30_001));
        // Already offline: nothing changes.
        assert!(!b.check_liveness(t(90_000), HEARTBEAT_TIMEOUT));
        b.heartbeat(t(91_000));
        assert_eq!(b.health, ButtonHealth::Online);
        assert_eq!(b.last_heartbeat, Some(t(91_000)));
    }

    #[test]
    fn never_heard_from_counts_as_silent() {
        let mut b = button();
        b.last_heartbeat = None;
        assert!(b.check_liveness(t(1), HEARTBEAT_TIMEOUT));
        assert_eq!(b.health, ButtonHealth::Offline);
    }

    #[test]
    fn tamper_is_sticky_until_cleared() {
        let mut b = button();
        b.tamper(t(5));
        assert_eq!(b.health, ButtonHealth::Tampered);
        b.heartbeat(t(10));
        assert_eq!(b.health, ButtonHealth::Tampered);
        assert!(!b.check_liveness(t(1_000_000), HEARTBEAT_TIMEOUT));
        assert_eq!(b.health, ButtonHealth::Tampered);
        b.clear_tamper(t(1_000_001));
        assert_eq!(b.health, ButtonHealth::Online);
        assert_eq!(b.health_since, t(1_000_001));
        // Cleared but silent: the next check takes it offline.
        assert!(b.check_liveness(t(1_000_002), HEARTBEAT_TIMEOUT));
    }

    #[test]
    fn alerts_outlast_their_condition_until_a_supervisor_clears_them() {
        let ana = OperatorId::new("ana").unwrap();
        let mut b = button();
        assert!(b.check_liveness(t(60_000), HEARTBEAT_TIMEOUT));
        b.heartbeat(t(61_000));
        assert_eq!(b.health, ButtonHealth::Online);
        // Back online, the offline alert is still open.
        assert_eq!(
            b.alerts.open.as_ref().unwrap().kind,
            AlertKind::ButtonOffline
        );
        b.tamper(t(62_000));
        let cleared = b.clear_alert(&ana, t(63_000)).unwrap();
        assert_eq!(cleared.kind, AlertKind::Tamper);
        assert_eq!(b.health, ButtonHealth::Online);
        assert!(b.alerts.open.is_none());
        assert_eq!(b.clear_alert(&ana, t(64_000)), None);
    }

    #[test]
    fn clear_tamper_does_not_revive_an_offline_button() {
        let mut b = button();
        assert!(b.check_liveness(t(60_000), HEARTBEAT_TIMEOUT));
        b.clear_tamper(t(60_001));
        assert_eq!(b.health, ButtonHealth::Offline);
    }

    #[test]
    fn late_heartbeat_does_not_move_last_heartbeat_back() {
        let mut b = button();
        b.heartbeat(t(10_000));
        b.heartbeat(t(9_000));
        assert_eq!(b.last_heartbeat, Some(t(10_000)));
    }

    #[test]
    fn health_serializes_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&ButtonHealth::Tampered).unwrap(),
            "\"tampered\""
        );
    }
}
