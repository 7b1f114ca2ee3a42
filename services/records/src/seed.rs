//! Seeding: a scenario's buttons, cameras and brigades written once, never over live state.

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::scenario::Scenario;
use centinela_core::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

use centinela_store::{Compare, Txn, TxnOp};
use futures::StreamExt;

use crate::cas::Freshness;
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
    ///
    /// Costs three keys-only reads, one transaction per [`limits::SEED_BATCH`] missing records
    /// ([`limits::SEED_TXNS_IN_FLIGHT`] at a time) and, on a restart, one read of the cameras:
    /// the nodes of a cluster starting together all seed, and the ones that lose a batch to
    /// another read which of its records exist and create only the rest, in one transaction
    /// again. (Before, a lost batch fell back to one transaction per record and a restart read
    /// every camera on its own: two nodes spent 130 s here at 21,000 entities.)
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
        let mut stored = BTreeSet::new();
        for prefix in [Button::prefix(), Camera::prefix(), Brigade::prefix()] {
            let (kvs, _) = self.store.get_prefix_keys(&prefix).await?;
            stored.extend(kvs.into_iter().map(|kv| kv.key));
        }
        let (present, missing): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(key, _)| stored.contains(key));
        let mut report = SeedReport {
            existing: present.len(),
            ..SeedReport::default()
        };
        let batches = missing
            .chunks(limits::SEED_BATCH)
            .map(|chunk| self.create_missing(chunk));
        let mut created =
            futures::stream::iter(batches).buffer_unordered(limits::SEED_TXNS_IN_FLIGHT);
        while let Some(batch) = created.next().await {
            let batch = batch?;
            report.created += batch.created;
            report.existing += batch.existing;
        }
        if report.existing > 0 {
            report.reconfigured = self.reconfigure_cameras(&cameras).await?;
        }
        Ok(report)
    }

    /// Creates those of `chunk`'s records that do not exist, in one transaction; when another
    /// writer created some of them first, reads which and tries again with the rest.
    async fn create_missing(&self, chunk: &[(String, Vec<u8>)]) -> Result<SeedReport> {
        let mut report = SeedReport::default();
        let mut pending: Vec<&(String, Vec<u8>)> = chunk.iter().collect();
        for _ in 0..limits::CAS_ATTEMPTS_MAX {
            if pending.is_empty() {
                return Ok(report);
            }
            let txn = Txn::new()
                .when(
                    pending
                        .iter()
                        .map(|(key, _)| Compare::create_revision(key.clone()).equal(0)),
                )
                .and_then(
                    pending
                        .iter()
                        .map(|(key, value)| TxnOp::put(key.clone(), value.clone(), None)),
                );
            if self.txn(txn).await?.succeeded {
                report.created += pending.len();
                return Ok(report);
            }
            let keys: Vec<String> = pending.iter().map(|(key, _)| key.clone()).collect();
            let read = self.read(&keys, Freshness::Current).await?;
            let before = pending.len();
            pending.retain(|(key, _)| read.kv(key).is_none());
            report.existing += before - pending.len();
        }
        if pending.is_empty() {
            return Ok(report);
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Takes the scenario's configuration (preset, ONVIF endpoint) into the stored cameras
    /// that differ, reading all cameras once.
    async fn reconfigure_cameras(&self, cameras: &[Camera]) -> Result<usize> {
        let (stored, _) = self.snapshot::<Camera>().await?;
        let stored: BTreeMap<_, _> = stored.into_iter().map(|c| (c.id.clone(), c)).collect();
        let mut changed = 0;
        for configured in cameras {
            let Some(stored) = stored.get(&configured.id) else {
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
    use centinela_core::button::Button;
    use centinela_core::camera::{Camera, CameraState, OnvifEndpoint};
    use centinela_core::scenario::Scenario;

    use centinela_store::{EmbeddedStore, Store};

    use crate::Records;
    use crate::limits::SEED_BATCH;
    use crate::testing::{NOW, lima};

    /// Lima's scenario with its first button copied into `buttons` buttons (each with its
    /// camera): many seeding batches.
    fn large(buttons: usize) -> Scenario {
        Scenario::lima_centro().with_copies_of_first_button(buttons)
    }

    /// Three nodes starting together all seed the same city: every record is created exactly
    /// once, each node accounts for every record (created by it, or found), and none fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_seeding_together_create_each_record_once() {
        let scenario = large(20 * SEED_BATCH);
        let total = 2 * scenario.buttons.len() + scenario.brigades.len();
        let embedded = EmbeddedStore::new();
        let nodes: Vec<Records> = (0..3)
            .map(|_| Records::new(Store::embedded(&embedded)))
            .collect();
        let seeds = nodes.iter().map(|records| records.seed(&scenario, NOW));
        let reports = futures::future::try_join_all(seeds).await.unwrap();
        let created: usize = reports.iter().map(|r| r.created).sum();
        assert_eq!(created, total, "{reports:?}");
        for report in &reports {
            assert_eq!(report.created + report.existing, total, "{reports:?}");
        }
        assert_eq!(
            nodes[0].ids::<Button>().await.unwrap().len(),
            scenario.buttons.len()
        );
        assert_eq!(
            nodes[0].ids::<Camera>().await.unwrap().len(),
            scenario.buttons.len()
        );
        // A restart finds them all and changes nothing.
        let again = nodes[1].seed(&scenario, NOW).await.unwrap();
        assert_eq!(
            (again.created, again.existing, again.reconfigured),
            (0, total, 0)
        );
    }

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
