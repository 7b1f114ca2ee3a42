//! Device alerts that stay until a supervisor clears them: a button tampered with, a button
//! gone offline, a camera gone offline.
//!
//! An alert is raised by the device's own state change and is stored on the device's record,
//! so every console sees the same list and a reload keeps it. It does not end when the
//! condition does (a button that comes back online after an hour still left an hour without
//! cover): only a supervisor clears it, and each clearance is kept on the record with the
//! supervisor's id, the newest [`ALERT_CLEARANCES_KEPT_MAX`].

use std::fmt;

use crate::ids::OperatorId;
use crate::limits::ALERT_CLEARANCES_KEPT_MAX;
use crate::time::Timestamp;

/// What happened to the device. The strings are the console's and the CLI's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Tamper,
    ButtonOffline,
    CameraOffline,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Tamper => "tamper",
            AlertKind::ButtonOffline => "button_offline",
            AlertKind::CameraOffline => "camera_offline",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert waiting for a supervisor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    /// When it was raised (the first time, while it stays uncleared).
    pub since: Timestamp,
    /// Raised because the device was never heard from (a new camera), not because it went
    /// away: the device's first appearance ends it, since nothing was ever lost. Every other
    /// alert outlasts its condition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never_seen: bool,
}

/// A supervisor cleared an alert: the record of who and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Clearance {
    pub kind: AlertKind,
    pub raised_at: Timestamp,
    pub cleared_at: Timestamp,
    pub cleared_by: OperatorId,
}

/// A device's open alert and its past clearances.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alerts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<Alert>,
    /// Oldest first, at most [`ALERT_CLEARANCES_KEPT_MAX`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleared: Vec<Clearance>,
}

impl Alerts {
    pub fn is_empty(&self) -> bool {
        self.open.is_none() && self.cleared.is_empty()
    }

    /// Raises `kind` as of `now`. One alert per device: an open alert of the same kind keeps
    /// its time; a tamper replaces an open offline alert (it is the graver one, and its
    /// clearance is what resets the button), never the other way round.
    pub fn raise(&mut self, kind: AlertKind, now: Timestamp) {
        match &self.open {
            Some(open) if open.kind == kind => {}
            Some(open) if open.kind == AlertKind::Tamper => {}
            _ => {
                self.open = Some(Alert {
                    kind,
                    since: now,
                    never_seen: false,
                })
            }
        }
    }

    /// Opens the alert of a device never heard from yet (see [`Alert::never_seen`]).
    pub fn raise_never_seen(&mut self, kind: AlertKind, now: Timestamp) {
        self.open = Some(Alert {
            kind,
            since: now,
            never_seen: true,
        });
    }

    /// The device was heard from: an alert that only said it never had been is over.
    pub fn seen(&mut self) {
        if self.open.as_ref().is_some_and(|open| open.never_seen) {
            self.open = None;
        }
    }

    /// Clears the open alert as `by` at `now`; `None` when there is none.
    pub fn clear(&mut self, by: &OperatorId, now: Timestamp) -> Option<Clearance> {
        let open = self.open.take()?;
        let clearance = Clearance {
            kind: open.kind,
            raised_at: open.since,
            cleared_at: now,
            cleared_by: by.clone(),
        };
        if self.cleared.len() >= ALERT_CLEARANCES_KEPT_MAX {
            self.cleared.remove(0);
        }
        self.cleared.push(clearance.clone());
        Some(clearance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn an_alert_stays_until_cleared_and_the_clearance_is_kept() {
        let ana = OperatorId::new("ana").unwrap();
        let mut alerts = Alerts::default();
        assert_eq!(alerts.clear(&ana, t(1)), None);
        alerts.raise(AlertKind::ButtonOffline, t(10));
        alerts.raise(AlertKind::ButtonOffline, t(20));
        assert_eq!(alerts.open.as_ref().unwrap().since, t(10));
        // Tamper replaces offline; offline does not replace tamper.
        alerts.raise(AlertKind::Tamper, t(30));
        alerts.raise(AlertKind::ButtonOffline, t(40));
        assert_eq!(alerts.open.as_ref().unwrap().kind, AlertKind::Tamper);
        let clearance = alerts.clear(&ana, t(50)).unwrap();
        assert_eq!(clearance.kind, AlertKind::Tamper);
        assert_eq!(clearance.raised_at, t(30));
        assert_eq!(clearance.cleared_by, ana);
        assert!(alerts.open.is_none());
        assert_eq!(alerts.cleared, vec![clearance]);
    }

    #[test]
    fn a_never_seen_alert_ends_when_the_device_appears_and_no_other_does() {
        let mut alerts = Alerts::default();
        alerts.raise_never_seen(AlertKind::CameraOffline, t(1));
        alerts.seen();
        assert!(alerts.open.is_none(), "first heard from: nothing was lost");
        alerts.raise(AlertKind::CameraOffline, t(10));
        alerts.seen();
        assert_eq!(
            alerts.open.as_ref().map(|open| open.since),
            Some(t(10)),
            "gone offline: it stays until a supervisor clears it"
        );
    }

    #[test]
    fn clearances_are_bounded() {
        let ana = OperatorId::new("ana").unwrap();
        let mut alerts = Alerts::default();
        for i in 0..(ALERT_CLEARANCES_KEPT_MAX as u64 + 3) {
            alerts.raise(AlertKind::CameraOffline, t(i * 10));
            alerts.clear(&ana, t(i * 10 + 1)).unwrap();
        }
        assert_eq!(alerts.cleared.len(), ALERT_CLEARANCES_KEPT_MAX);
        assert_eq!(alerts.cleared[0].raised_at, t(30));
    }
}
