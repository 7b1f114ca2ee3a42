//! A plausible history for the demo (`centinela demo --history DAYS`), so reports and
//! `plan-posts` show something at once.
//!
//! Incidents are made the way a node makes them: pressed, classified and closed through
//! `centinela-records` on a scratch embedded store seeded with the node's scenario and sealed
//! with the node's audit key, then archived (and chained into the ledger) like any other, so
//! `audit verify` checks them too. Seeded: the same seed, scenario and `now` give the same
//! history.
//!
//! The shape: about [`limits::SYNTHETIC_INCIDENTS_PER_DAY`] incidents a day; a few buttons are
//! hot spots (each button's popularity falls off as 1/rank), and the hot spots of the last
//! third of the period are not those of the first (so recency weighting visibly matters); more
//! at night than at dawn; about half handled, a quarter pranks, the rest false alarms; closed
//! 8 to 45 minutes after the press.

use std::time::Duration;

use centinela_core::button::Button;
use centinela_core::ids::{OperatorId, PressId};
use centinela_core::incident::{Actor, IncidentKind, Resolution};
use centinela_core::scenario::Scenario;
use centinela_core::seal::AuditKey;
use centinela_core::time::Timestamp;
use centinela_records::Records;
use centinela_store::{EmbeddedStore, Store};

use crate::error::{Error, Result};
use crate::{Archive, ArchivedIncident, limits};

const DAY_MS: u64 = 86_400_000;

/// Relative share of incidents per hour of the day (UTC-5, Lima): low before dawn, high in
/// the evening.
const HOURLY: [u32; 24] = [
    6, 4, 3, 2, 2, 2, 3, 4, 5, 6, 6, 7, 8, 7, 7, 7, 8, 9, 10, 11, 12, 11, 9, 7,
];

/// A seeded linear congruential generator: no RNG dependency for a demo's data.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index drawn with probability proportional to `weights`.
    fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut at = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if at < *w {
                return i;
            }
            at -= w;
        }
        weights.len() - 1
    }
}

/// Popularity of each button: 1/rank over a seeded shuffle.
fn popularity(rng: &mut Lcg, buttons: usize) -> Vec<f64> {
    let mut order: Vec<usize> = (0..buttons).collect();
    for i in (1..buttons).rev() {
        let j = (rng.unit() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    let mut weights = vec![0.0; buttons];
    for (rank, &b) in order.iter().enumerate() {
        weights[b] = 1.0 / (rank + 1) as f64;
    }
    weights
}

/// Archives `days` days of history ending at `now` for `scenario`'s buttons, sealed with
/// `key`; returns how many incidents were archived.
pub async fn generate(
    archive: &Archive,
    scenario: &Scenario,
    key: &AuditKey,
    now: Timestamp,
    days: u32,
    seed: u64,
) -> Result<u64> {
    if days > limits::SYNTHETIC_DAYS_MAX {
        return Err(Error::Refused {
            id: "synthetic history".into(),
            reason: format!("{days} days is over {}", limits::SYNTHETIC_DAYS_MAX),
        });
    }
    let start = Timestamp::from_millis(now.as_millis().saturating_sub(u64::from(days) * DAY_MS));
    let embedded = EmbeddedStore::new();
    let records = Records::new(Store::embedded(&embedded)).with_audit_key(key.clone());
    records.seed(scenario, start).await?;
    let (buttons, _) = records.snapshot::<Button>().await?;
    if buttons.is_empty() {
        return Ok(0);
    }
    let mut rng = Lcg(seed ^ 0x0068_6973_746f_7279);
    let early = popularity(&mut rng, buttons.len());
    let late = popularity(&mut rng, buttons.len());
    let hourly: Vec<f64> = HOURLY.iter().map(|&h| f64::from(h)).collect();
    let operator = Actor::Operator(OperatorId::new("historia").expect("a valid id"));
    let kinds = [
        IncidentKind::Robbery,
        IncidentKind::PurseSnatching,
        IncidentKind::Assault,
        IncidentKind::Medical,
        IncidentKind::Other,
    ];
    let mut archived = 0u64;
    for day in 0..u64::from(days) {
        let weights = if day * 3 >= u64::from(days) * 2 {
            &late
        } else {
            &early
        };
        let mean = f64::from(limits::SYNTHETIC_INCIDENTS_PER_DAY);
        let count = (mean * (0.6 + 0.8 * rng.unit())).round() as u64;
        // Lima is UTC-5: local hour h is UTC hour h + 5.
        let mut times: Vec<u64> = (0..count)
            .map(|_| {
                let hour = (rng.pick(&hourly) as u64 + 5) % 24;
                start.as_millis()
                    + day * DAY_MS
                    + hour * 3_600_000
                    + (rng.unit() * 3_600_000.0) as u64
            })
            .filter(|&at| at + 3_600_000 < now.as_millis())
            .collect();
        times.sort_unstable();
        for at in times {
            let button = &buttons[rng.pick(weights)];
            let at = Timestamp::from_millis(at);
            let press = PressId::new(format!("historia-{}-{archived}", at.as_millis()))
                .expect("a valid id");
            let debounce = Duration::from_secs(60);
            let opened = records.press(button, &press, at, debounce, None).await?;
            let id = opened.incident.id.clone();
            if !opened.incident.is_open() {
                continue;
            }
            let kind = kinds[rng.pick(&[5.0, 3.0, 2.0, 1.0, 1.0])];
            records
                .update_incident(&id, |incident| {
                    incident.kind = kind;
                    Ok(())
                })
                .await?;
            let resolution = [
                Resolution::Handled,
                Resolution::Prank,
                Resolution::FalseAlarm,
            ][rng.pick(&[55.0, 25.0, 20.0])];
            let open_for = Duration::from_secs(8 * 60 + (rng.unit() * 37.0 * 60.0) as u64);
            let closed = records
                .close_incident(
                    &id,
                    resolution,
                    operator.clone(),
                    at.saturating_add(open_for),
                )
                .await?;
            let entry = ArchivedIncident {
                incident: closed.incident,
                presses: vec![press.to_string()],
                stills: Vec::new(),
                bookmarks: Vec::new(),
                // The scenario's district for the button, as the leader would copy it.
                district: button.district.clone(),
            };
            archive.archive(&entry, &[], key, now).await?;
            archived += 1;
        }
    }
    tracing::info!(days, archived, "synthetic history archived");
    Ok(archived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_week_of_history_is_archived_sealed_and_reproducible() {
        let key = AuditKey::from_secret(b"synthetic");
        let now = Timestamp::from_millis(1_795_817_112_345);
        let scenario = Scenario::lima_centro();
        let archive = Archive::memory();
        let made = generate(&archive, &scenario, &key, now, 7, 42)
            .await
            .unwrap();
        assert!(made >= 7 * 6, "{made} incidents in a week");
        assert_eq!(archive.count().await.unwrap(), made);
        let verification = archive.verify(&key).await.unwrap();
        assert!(verification.breaks.is_empty(), "{:?}", verification.breaks);
        let demand = archive
            .demand(Timestamp::from_millis(0), now, Duration::from_secs(86_400))
            .await
            .unwrap();
        assert_eq!(demand.iter().map(|d| d.incidents).sum::<u64>(), made);
        // The most popular button gets several times the least popular's incidents.
        let most = demand.iter().map(|d| d.incidents).max().unwrap();
        assert!(most >= 5, "{demand:?}");

        let again = Archive::memory();
        let remade = generate(&again, &scenario, &key, now, 7, 42).await.unwrap();
        assert_eq!(remade, made, "the same seed, the same history");
        let refused = generate(&again, &scenario, &key, now, 400, 42).await;
        assert!(matches!(refused, Err(Error::Refused { .. })), "{refused:?}");
    }
}
