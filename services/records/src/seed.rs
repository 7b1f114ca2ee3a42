//! Seeding: a scenario's buttons, cameras and brigades written once, never over live state.

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use centinela_store::{Compare, Txn, TxnOp};

use crate::error::{Error, Result};
use crate::record::{Record, encode};
use crate::{Records, limits};

/// What seeding a scenario did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub created: usize,
    pub existing: usize,
    /// Existing cameras whose configuration (preset, ONVIF endpoint) the scenario changed.
    pub reconfigured: usize,
}

impl Records {
    /// Writes the scenario's buttons, cameras and brigades that the store does not hold yet.
    /// Existing records keep their live state: a restarted node must not reset it. Only a
    /// camera's configuration follows the scenario (its preset and ONVIF endpoint: an installer
    /// who adds a camera's address expects the next start to use it).
    pub async fn seed(&self, scenario: &Scenario, now: Timestamp) -> Result<SeedReport> {
        let invalid = |e: centinela_core::scenario::Error| Error::Invalid(e.to_string());
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for button in scenario.buttons(now).map_err(invalid)? {
            entries.push((Button::key_of(button.record_id()), encode(&button)));
        }
        let cameras = scenario.cameras(now).map_err(invalid)?;
        for camera in &cameras {
            entries.push((Camera::key_of(camera.record_id()), encode(camera)));
        }
        for brigade in scenario.brigades(now).map_err(invalid)? {
            entries.push((Brigade::key_of(brigade.record_id()), encode(&brigade)));
        }
        let mut report = SeedReport::default();
        for chunk in entries.chunks(limits::SEED_BATCH) {
            let txn = Txn::new()
                .when(
                    chunk
                        .iter()
                        .map(|(key, _)| Compare::create_revision(key.clone()).equal(0)),
                )
                .and_then(
                    chunk
                        .iter()
                        .map(|(key, value)| TxnOp::put(key.clone(), value.clone(), None)),
                );
            if self.txn(txn).await?.succeeded {
                report.created += chunk.len();
                continue;
            }
            // Some exist already: create the missing ones one by one.
            for (key, value) in chunk {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone()).equal(0)])
                    .and_then([TxnOp::put(key.clone(), value.clone(), None)]);
                if self.txn(txn).await?.succeeded {
                    report.created += 1;
                } else {
                    report.existing += 1;
                }
            }
        }
        if report.existing > 0 {
            report.reconfigured = self.reconfigure_cameras(&cameras).await?;
        }
        Ok(report)
    }

    async fn reconfigure_cameras(&self, cameras: &[Camera]) -> Result<usize> {
        let mut changed = 0;
        for configured in cameras {
            let Some(stored) = self.camera(&configured.id).await? else {
                continue;
            };
            if stored.preset == configured.preset && stored.onvif == configured.onvif {
                continue;
            }
            self.update_camera(&configured.id, |camera| {
                camera.preset = configured.preset;
                camera.onvif = configured.onvif.clone();
                camera.fault = None;
                Ok(())
            })
            .await?;
            changed += 1;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use centinela_core::camera::{CameraState, OnvifEndpoint};
    use centinela_core::scenario::Scenario;

    use crate::testing::{NOW, lima};

    /// A restart keeps live state, and takes the scenario's new camera configuration.
    #[tokio::test]
    async fn reseeding_keeps_live_state_and_follows_camera_configuration() {
        let (_store, records) = lima().await;
        let mut scenario = Scenario::lima_centro();
        let first = scenario.buttons[0].camera.id.clone();
        let incident = centinela_core::ids::IncidentId::new("I-1").unwrap();
        records
            .update_camera(&first, |c| {
                c.aim(incident.clone(), NOW);
                Ok(())
            })
            .await
            .unwrap();

        let again = records.seed(&scenario, NOW).await.unwrap();
        assert_eq!((again.created, again.reconfigured), (0, 0));

        let url = "http://127.0.0.1:9/onvif/device_service";
        scenario.buttons[0].camera.onvif = Some(url.into());
        scenario.buttons[0].camera.preset = Some("1".into());
        let changed = records.seed(&scenario, NOW).await.unwrap();
        assert_eq!(changed.reconfigured, 1);
        let camera = records.camera(&first).await.unwrap().unwrap();
        assert_eq!(
            camera.onvif,
            Some(OnvifEndpoint::new(url, Some("1")).unwrap())
        );
        assert_eq!(camera.state, CameraState::Aiming, "live state kept");
        assert_eq!(camera.target, Some(incident));
    }
}
