//! Where help was needed: archived incidents per button, weighted by recency, for planning
//! brigade posts (`centinela plan-posts`, [`centinela_core::posts`]).
//!
//! One grouped query counts incidents per button and per UTC day of their creation (the first
//! press) over the period; each day's count is weighted at its midday by
//! [`centinela_core::posts::recency_weight`]. The rows are bounded by buttons × days whatever
//! the number of incidents, and the statement is the same on PostgreSQL and SQLite.

use std::collections::BTreeMap;
use std::time::Duration;

use centinela_core::posts::recency_weight;
use centinela_core::time::Timestamp;
use sqlx::Row as _;

use crate::db::{Archive, millis, on_pool};
use crate::error::Result;

const DAY_MS: i64 = 86_400_000;

/// A button's demand over the period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ButtonDemand {
    pub button: String,
    /// Incidents it opened in the period.
    pub incidents: u64,
    /// Their recency-weighted sum: an incident `half_life` old counts ½.
    pub weight: f64,
}

impl Archive {
    /// Incidents opened at or after `since` and before `now`, per button (by button id), each
    /// weighted by its age at `now` with `half_life`.
    pub async fn demand(
        &self,
        since: Timestamp,
        now: Timestamp,
        half_life: Duration,
    ) -> Result<Vec<ButtonDemand>> {
        self.ready().await?;
        let rows: Vec<(String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT button, created_at_ms / 86400000 AS day, COUNT(*) FROM incidents \
                 WHERE created_at_ms >= $1 AND created_at_ms < $2 GROUP BY button, day",
            )
            .bind(millis(since))
            .bind(millis(now))
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()?
        });
        let now_ms = millis(now);
        let mut demand: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for (button, day, count) in rows {
            // The day's midday, but never after `now` (today's incidents are at most hours old).
            let at_ms = (day * DAY_MS + DAY_MS / 2).min(now_ms);
            let age = Duration::from_millis(u64::try_from(now_ms - at_ms).unwrap_or(0));
            let count = u64::try_from(count).unwrap_or(0);
            let entry = demand.entry(button).or_default();
            entry.0 += count;
            entry.1 += count as f64 * recency_weight(age, half_life);
        }
        Ok(demand
            .into_iter()
            .map(|(button, (incidents, weight))| ButtonDemand {
                button,
                incidents,
                weight,
            })
            .collect())
    }
}
