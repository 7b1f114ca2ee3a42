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
}

impl Records {
    /// Writes the scenario's buttons, cameras and brigades that the store does not hold yet.
    /// Existing records are left alone: a restarted node must not reset live state.
    pub async fn seed(&self, scenario: &Scenario, now: Timestamp) -> Result<SeedReport> {
        let invalid = |e: centinela_core::scenario::Error| Error::Invalid(e.to_string());
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for button in scenario.buttons(now).map_err(invalid)? {
            entries.push((Button::key_of(button.record_id()), encode(&button)));
        }
        for camera in scenario.cameras(now).map_err(invalid)? {
            entries.push((Camera::key_of(camera.record_id()), encode(&camera)));
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
        Ok(report)
    }
}
