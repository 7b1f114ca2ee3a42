//! Reports for the municipality, from the archive: per button, per district, per hour of the
//! day, per day of the week or per unit, how many presses and incidents, how they ended (pranks and false
//! alarms as a share), and how fast the response was (press → operator acknowledgement, press
//! → first unit assigned, press → first unit on scene, p50 and p90), plus the buttons with
//! repeated pranks.
//!
//! Each incident's facts are computed once, when it is archived, into `report_incidents` (one
//! row per incident) and `report_units` (one row per unit ever assigned, with that unit's own
//! times); incidents archived before those tables existed are filled in the first time a
//! report is asked for ([`Archive::report`]). Every figure is then a grouped SQL aggregate,
//! the same statements on PostgreSQL and SQLite: counts directly, percentiles in the
//! database from a histogram per group whose buckets keep two significant digits of the
//! seconds ([`bucket_floor_s`]: exact to the second below 100 s, then under 10% low) and its
//! running sum in a window, so one row per group and figure reaches the node, however many
//! incidents the period holds. Every statement groups first by a column with its own indexes
//! (button, district, unit, or the UTC quarter hour of the week, [`week_quarter`], for hours
//! and weekdays), reading them in order.
//!
//! An incident's district is its button's when the leader archived it
//! ([`crate::ArchivedIncident::district`]); incidents without one (a button with no district,
//! or archived before districts existed) are reported together under
//! [`centinela_core::button::DISTRICT_UNKNOWN`] (`unknown`), a name no scenario may give a district.
//!
//! Incidents belong to the period, the hour and the weekday of their first press. Hours and
//! weekdays are local to a fixed offset from UTC that the caller gives (the CLI takes it from
//! `CENTINELA_TIMEZONE` at the start of the period): exact for a zone without daylight saving
//! (Lima), off by an hour across a DST change elsewhere.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use centinela_core::incident::{Actor, AuditAction};
use centinela_core::time::Timestamp;
use sqlx::Row as _;

use crate::db::{Archive, millis};
use crate::error::{Error, Result};
use crate::{ArchivedIncident, limits};

/// What a report's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One row per button.
    Button,
    /// One row per district (the button's when archived), `unknown` for incidents without one.
    District,
    /// One row per hour of the day (0–23, local).
    Hour,
    /// One row per day of the week (0 Monday … 6 Sunday, local).
    Weekday,
    /// One row per unit: the incidents it was assigned to, its own assignment and arrival.
    Unit,
}

impl Grouping {
    /// Every grouping, in the order the CLI lists them.
    pub const ALL: [Grouping; 5] = [
        Grouping::Button,
        Grouping::District,
        Grouping::Hour,
        Grouping::Weekday,
        Grouping::Unit,
    ];

    /// How this grouping's statements read the facts, for a local time `utc_offset_minutes`
    /// from UTC. Fixed text only: nothing a caller sends reaches a statement except as a bound
    /// parameter.
    fn plan(self, utc_offset_minutes: i32) -> Plan {
        // Every offset in use is a whole number of quarter hours: hours and weekdays are then
        // a function of the stored UTC quarter hour of the week (migration
        // 20261205000000_report_week_quarter.sql). Any other offset still gets its answer,
        // from the first press itself (sorted, slower).
        let quarters = (utc_offset_minutes % 15 == 0).then_some(i64::from(utc_offset_minutes / 15));
        let offset_ms = i64::from(utc_offset_minutes) * 60_000;
        let (table, inner, outer, offset) = match (self, quarters) {
            (Grouping::Button, _) => ("report_incidents", "button", "q", None),
            // NULL groups apart (one group, read first from the index in order) and is named
            // here: incidents archived before districts existed, or at a button without one.
            (Grouping::District, _) => ("report_incidents", "district", DISTRICT_KEY, None),
            (Grouping::Unit, _) => ("report_units", "unit", "q", None),
            (Grouping::Hour, Some(quarters)) => (
                "report_incidents",
                "week_quarter",
                "CAST(((q + $3 + 672) % 672) / 4 % 24 AS TEXT)",
                Some(quarters),
            ),
            (Grouping::Weekday, Some(quarters)) => (
                "report_incidents",
                "week_quarter",
                "CAST(((q + $3 + 672) % 672) / 96 AS TEXT)",
                Some(quarters),
            ),
            (Grouping::Hour, None) => (
                "report_incidents",
                "((first_press_at_ms + $3) / 3600000) % 24",
                "CAST(q AS TEXT)",
                Some(offset_ms),
            ),
            // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
            (Grouping::Weekday, None) => (
                "report_incidents",
                "((first_press_at_ms + $3) / 86400000 + 3) % 7",
                "CAST(q AS TEXT)",
                Some(offset_ms),
            ),
        };
        Plan {
            table,
            inner,
            outer,
            offset,
        }
    }

    /// Whether keys are numbers (sorted as such).
    fn numeric(self) -> bool {
        matches!(self, Grouping::Hour | Grouping::Weekday)
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Grouping::Button => "button",
            Grouping::District => "district",
            Grouping::Hour => "hour",
            Grouping::Weekday => "weekday",
            Grouping::Unit => "unit",
        })
    }
}

impl FromStr for Grouping {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Grouping::ALL
            .into_iter()
            .find(|g| g.to_string() == text)
            .ok_or_else(|| {
                format!("{text:?} is not a grouping: use button, district, hour, weekday or unit")
            })
    }
}

/// How a grouping's statements read the facts ([`Grouping::plan`]): an inner statement
/// groups the period by a column that has its own indexes (button, unit, or the UTC quarter
/// hour of the week), reading them in order; an outer one maps those groups to the report's
/// keys.
#[derive(Debug, Clone, Copy)]
struct Plan {
    table: &'static str,
    /// The inner grouping (`q`).
    inner: &'static str,
    /// The report's key (TEXT) as a function of `q`.
    outer: &'static str,
    /// `$3` of the statements: the offset in quarter hours (or in milliseconds, when the key
    /// is computed from the first press), when the key reads it.
    offset: Option<i64>,
}

/// What to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Incidents whose first press is at or after this…
    pub since: Timestamp,
    /// …and before this.
    pub until: Timestamp,
    pub by: Grouping,
    /// Local time's offset from UTC in minutes (Lima: -300), for hours and weekdays.
    pub utc_offset_minutes: i32,
}

/// A response time's distribution over a group, in seconds kept to two significant digits,
/// rounded down ([`bucket_floor_s`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Latency {
    /// Incidents (or assignments) that reached this stage.
    pub count: u64,
    pub p50_s: Option<u64>,
    pub p90_s: Option<u64>,
}

/// One row of a report (or its total).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Row {
    /// The button id, the district (`unknown` for incidents without one), the hour
    /// (`0`–`23`), the weekday (`0` Monday … `6`), the unit id, or `all` for the total.
    pub key: String,
    pub presses: u64,
    pub incidents: u64,
    pub handled: u64,
    pub pranks: u64,
    pub false_alarms: u64,
    pub cancelled: u64,
    /// Pranks over incidents (0 when there are none).
    pub prank_share: f64,
    pub false_alarm_share: f64,
    /// Press → an operator's acknowledgement.
    pub acknowledged: Latency,
    /// Press → assigned (the first unit; per unit, that unit).
    pub assigned: Latency,
    /// Press → on scene (the first unit; per unit, that unit).
    pub on_scene: Latency,
}

/// A button pranked more than once in the period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepeatPranks {
    pub button: String,
    pub pranks: u64,
}

/// A report: rows by the query's grouping, the period's total, and the repeat pranks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Over every incident of the period (per unit, an incident with two units counts twice in
    /// the rows and once here).
    pub total: Row,
    /// Buttons with at least [`limits::REPEAT_PRANKS_MIN`] pranks, most first (at most
    /// [`limits::REPEAT_PRANKS_LISTED_MAX`]).
    pub repeat_pranks: Vec<RepeatPranks>,
}

/// One row of `report_incidents` or `report_units`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    pub incident_id: String,
    pub unit: String,
    pub button: String,
    /// The button's district when archived; `None` reports as
    /// [`centinela_core::button::DISTRICT_UNKNOWN`].
    pub district: Option<String>,
    pub resolution: Option<String>,
    pub press_count: i64,
    pub first_press_at_ms: i64,
    pub acknowledged_at_ms: Option<i64>,
    pub assigned_at_ms: Option<i64>,
    pub on_scene_at_ms: Option<i64>,
}

impl Fact {
    /// The bucket ([`bucket_floor_s`]) of the time from the first press to `at_ms`.
    pub(crate) fn bucket_s(&self, at_ms: Option<i64>) -> Option<i64> {
        at_ms.map(|at| bucket_floor_s(at.saturating_sub(self.first_press_at_ms) / 1000))
    }
}

/// An incident's facts: its own row and one per unit ever assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub incident: Fact,
    pub units: Vec<Fact>,
}

impl Facts {
    /// Reads them off the archived record: acknowledgement from the record, assignments and
    /// arrivals from the audit trail (the first of each, per unit), the district as archived.
    pub fn of(entry: &ArchivedIncident) -> Self {
        let incident = &entry.incident;
        let mut units: Vec<(String, Option<i64>, Option<i64>)> = Vec::new();
        for entry in &incident.audit {
            match entry.action {
                AuditAction::Assigned => {
                    let unit = entry.detail.clone();
                    if !units.iter().any(|(u, _, _)| *u == unit) {
                        units.push((unit, Some(millis(entry.at)), None));
                    }
                }
                AuditAction::UnitOnScene => {
                    if let Actor::Brigade(brigade) = &entry.actor
                        && let Some(row) = units.iter_mut().find(|(u, _, _)| u == brigade.as_str())
                        && row.2.is_none()
                    {
                        row.2 = Some(millis(entry.at));
                    }
                }
                _ => {}
            }
        }
        let base = Fact {
            incident_id: incident.id.to_string(),
            unit: String::new(),
            button: incident.button.to_string(),
            district: entry.district.clone(),
            resolution: incident.resolution.map(|r| r.to_string()),
            press_count: i64::from(incident.press_count),
            first_press_at_ms: millis(incident.first_press_at),
            acknowledged_at_ms: incident.acknowledged.as_ref().map(|(_, at)| millis(*at)),
            assigned_at_ms: None,
            on_scene_at_ms: None,
        };
        let first_on_scene = units.iter().filter_map(|(_, _, at)| *at).min();
        let incident_fact = Fact {
            unit: units.first().map(|(u, _, _)| u.clone()).unwrap_or_default(),
            assigned_at_ms: units.first().and_then(|(_, at, _)| *at),
            on_scene_at_ms: first_on_scene,
            ..base.clone()
        };
        let units = units
            .into_iter()
            .map(|(unit, assigned, on_scene)| Fact {
                unit,
                assigned_at_ms: assigned,
                on_scene_at_ms: on_scene,
                ..base.clone()
            })
            .collect();
        Facts {
            incident: incident_fact,
            units,
        }
    }

    /// `(table, row)` for every row to insert.
    pub fn rows(&self) -> impl Iterator<Item = (&'static str, &Fact)> {
        std::iter::once((INSERT_INCIDENT, &self.incident))
            .chain(self.units.iter().map(|fact| (INSERT_UNIT, fact)))
    }
}

const INSERT_INCIDENT: &str = "INSERT INTO report_incidents (incident_id, unit, button, \
     resolution, press_count, first_press_at_ms, acknowledged_at_ms, assigned_at_ms, \
     on_scene_at_ms, acknowledged_bucket_s, assigned_bucket_s, on_scene_bucket_s, \
     week_quarter, district) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING";
const INSERT_UNIT: &str = "INSERT INTO report_units (incident_id, unit, button, \
     resolution, press_count, first_press_at_ms, acknowledged_at_ms, assigned_at_ms, \
     on_scene_at_ms, acknowledged_bucket_s, assigned_bucket_s, on_scene_bucket_s, \
     week_quarter, district) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING";

/// Inserts an incident's [`Facts`] on `$conn` (a connection or transaction of either
/// backend; expanded once per backend by `on_pool!`).
macro_rules! insert_facts {
    ($conn:expr, $facts:expr) => {
        for (statement, fact) in $facts.rows() {
            sqlx::query(statement)
                .bind(&fact.incident_id)
                .bind(&fact.unit)
                .bind(&fact.button)
                .bind(&fact.resolution)
                .bind(fact.press_count)
                .bind(fact.first_press_at_ms)
                .bind(fact.acknowledged_at_ms)
                .bind(fact.assigned_at_ms)
                .bind(fact.on_scene_at_ms)
                .bind(fact.bucket_s(fact.acknowledged_at_ms))
                .bind(fact.bucket_s(fact.assigned_at_ms))
                .bind(fact.bucket_s(fact.on_scene_at_ms))
                .bind($crate::report::week_quarter(fact.first_press_at_ms))
                .bind(&fact.district)
                .execute(&mut *$conn)
                .await?;
        }
    };
}
pub(crate) use insert_facts;

/// Counts per group: key, incidents, presses, handled, pranks, false alarms, cancelled.
type Counts = (String, i64, i64, i64, i64, i64, i64);

impl Archive {
    /// The report `query` asks for. Fills in the facts of incidents archived before the
    /// report tables existed first (the first report of this process only; a body that no
    /// longer decodes is skipped and left to `audit verify`).
    pub async fn report(&self, query: &Query) -> Result<Report> {
        if query.until <= query.since {
            return Err(Error::Query(format!(
                "the period ends ({} ms) at or before it starts ({} ms)",
                query.until.as_millis(),
                query.since.as_millis()
            )));
        }
        if query.utc_offset_minutes.unsigned_abs() > limits::UTC_OFFSET_MINUTES_MAX {
            return Err(Error::Query(format!(
                "utc offset {} minutes is beyond ±{}",
                query.utc_offset_minutes,
                limits::UTC_OFFSET_MINUTES_MAX
            )));
        }
        self.report_facts_filled
            .get_or_try_init(|| self.fill_report_facts())
            .await?;
        let plan = query.by.plan(query.utc_offset_minutes);

        let counts = self.group_counts(&plan, query).await?;
        if counts.len() > limits::REPORT_GROUPS_MAX {
            return Err(Error::Query(format!(
                "over {} groups: ask for a shorter period or another grouping",
                limits::REPORT_GROUPS_MAX
            )));
        }
        let mut rows: BTreeMap<String, Row> = counts
            .into_iter()
            .map(|c| (c.0.clone(), row_of_counts(c)))
            .collect();
        let mut total = Row::default();
        // Groups other than units partition the incidents: the total's counts are their sum,
        // and its percentiles come from the same statement as the groups' (no second scan).
        // Units do not (an incident with two units is in both): the total is the incidents'.
        let partitions = query.by != Grouping::Unit;
        for (stage, column) in STAGES {
            let (groups, whole) = self
                .stage_latencies(&plan, column, query, true, partitions)
                .await?;
            for (group, latency) in groups {
                if let Some(row) = rows.get_mut(&group) {
                    *stage_of(row, stage) = latency;
                }
            }
            *stage_of(&mut total, stage) = whole;
        }
        if partitions {
            for row in rows.values() {
                total.presses += row.presses;
                total.incidents += row.incidents;
                total.handled += row.handled;
                total.pranks += row.pranks;
                total.false_alarms += row.false_alarms;
                total.cancelled += row.cancelled;
            }
            set_shares(&mut total);
        } else {
            let incidents = self.whole_period_plan();
            let mut counts = self.group_counts(&incidents, query).await?;
            total = counts.pop().map(row_of_counts).unwrap_or_default();
            for (stage, column) in STAGES {
                let (_, whole) = self
                    .stage_latencies(&incidents, column, query, false, true)
                    .await?;
                *stage_of(&mut total, stage) = whole;
            }
        }
        total.key = "all".into();

        let mut rows: Vec<Row> = rows.into_values().collect();
        if query.by.numeric() {
            rows.sort_by_key(|row| row.key.parse::<i64>().unwrap_or(i64::MAX));
        }
        let repeat_pranks = if query.by == Grouping::Button {
            // The rows already count each button's pranks: no second scan.
            repeat_pranks_of(&rows)
        } else {
            self.repeat_pranks(query).await?
        };
        Ok(Report {
            rows,
            total,
            repeat_pranks,
        })
    }

    /// How the total of a report whose groups overlap (per unit) reads the incidents: one
    /// group for the whole period. PostgreSQL hashes the period's rows by the inner key and
    /// bucket: by button that was 60,000 groups per figure for a year, most of each
    /// statement's time (EXPLAIN ANALYZE, docs/benchmarks.md), against about 60 buckets with
    /// no inner key. SQLite reads the button's index in order and aggregates as it goes (no
    /// hash), where no inner key would sort the year instead: it keeps the button.
    fn whole_period_plan(&self) -> Plan {
        let by_button = Plan {
            outer: ALL_KEY,
            ..Grouping::Button.plan(0)
        };
        match self.pool {
            crate::db::Pool::Postgres(_) => Plan {
                inner: "0",
                ..by_button
            },
            crate::db::Pool::Sqlite(_) => by_button,
        }
    }

    /// Counts per group. The inner statement groups by the plan's column reading its index in
    /// order (at most one row per button, unit or quarter hour of the week); the outer one
    /// maps those to the report's keys.
    async fn group_counts(&self, plan: &Plan, query: &Query) -> Result<Vec<Counts>> {
        let Plan {
            table,
            inner,
            outer,
            ..
        } = plan;
        let sql = format!(
            "SELECT {outer} AS k, CAST(SUM(n) AS BIGINT), CAST(SUM(p) AS BIGINT), \
             CAST(SUM(h) AS BIGINT), CAST(SUM(x) AS BIGINT), CAST(SUM(f) AS BIGINT), \
             CAST(SUM(c) AS BIGINT) FROM (\
             SELECT {inner} AS q, COUNT(*) AS n, SUM(press_count) AS p, \
             SUM(CASE WHEN resolution = 'handled' THEN 1 ELSE 0 END) AS h, \
             SUM(CASE WHEN resolution = 'prank' THEN 1 ELSE 0 END) AS x, \
             SUM(CASE WHEN resolution = 'false_alarm' THEN 1 ELSE 0 END) AS f, \
             SUM(CASE WHEN resolution = 'cancelled' THEN 1 ELSE 0 END) AS c \
             FROM {table} WHERE {PERIOD} GROUP BY q) AS g \
             GROUP BY k ORDER BY k LIMIT {}",
            limits::REPORT_GROUPS_MAX + 1
        );
        self.ready().await?;
        Ok(crate::db::on_pool!(self, |pool| {
            let mut statement = sqlx::query(&sql)
                .bind(millis(query.since))
                .bind(millis(query.until));
            if let Some(offset) = plan.offset {
                statement = statement.bind(offset);
            }
            statement
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        }))
    }

    /// p50 and p90 of the time from the press to `column`'s stage, per group (when `groups`)
    /// and over the whole period (when `whole`; otherwise the default), computed in the
    /// database: a histogram per group of the buckets ([`bucket_floor_s`]; the inner
    /// statement reads the plan's index in order), its running sum in a window, and per group
    /// the first bucket whose running sum reaches 50% and 90% of the group (nearest rank). One
    /// row per group crosses to Rust, however many incidents and buckets it has.
    async fn stage_latencies(
        &self,
        plan: &Plan,
        column: &str,
        query: &Query,
        groups: bool,
        whole: bool,
    ) -> Result<(Vec<(String, Latency)>, Latency)> {
        debug_assert!(groups || whole, "a statement with no rows");
        let Plan {
            table,
            inner,
            outer,
            ..
        } = plan;
        let mut branches = Vec::new();
        if groups && *outer == "q" {
            // The report's keys are the inner groups: nothing to merge.
            branches.push("SELECT 0 AS whole, q AS k, b, n FROM h".into());
        } else if groups {
            branches.push(format!(
                "SELECT 0 AS whole, {outer} AS k, b, SUM(n) AS n FROM h GROUP BY k, b"
            ));
        }
        if whole {
            branches.push(
                "SELECT 1 AS whole, CAST('' AS TEXT) AS k, b, SUM(n) AS n FROM h GROUP BY b".into(),
            );
        }
        let branches = branches.join(" UNION ALL ");
        let sql = format!(
            "WITH h AS (SELECT {inner} AS q, {column} AS b, COUNT(*) AS n FROM {table} \
             WHERE {PERIOD} AND {column} IS NOT NULL GROUP BY q, b), \
             g AS ({branches}), \
             c AS (SELECT whole, k, b, \
             SUM(n) OVER (PARTITION BY whole, k ORDER BY b ROWS UNBOUNDED PRECEDING) AS seen, \
             SUM(n) OVER (PARTITION BY whole, k) AS count FROM g) \
             SELECT CAST(whole AS BIGINT), k, CAST(MAX(count) AS BIGINT), \
             MIN(CASE WHEN seen * 100 >= count * 50 THEN b END), \
             MIN(CASE WHEN seen * 100 >= count * 90 THEN b END) \
             FROM c GROUP BY whole, k"
        );
        self.ready().await?;
        type Percentiles = (i64, String, i64, Option<i64>, Option<i64>);
        let rows: Vec<Percentiles> = crate::db::on_pool!(self, |pool| {
            let mut statement = sqlx::query(&sql)
                .bind(millis(query.since))
                .bind(millis(query.until));
            if let Some(offset) = plan.offset {
                statement = statement.bind(offset);
            }
            statement
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let mut groups = Vec::with_capacity(rows.len());
        let mut total = Latency::default();
        for (is_whole, key, count, p50, p90) in rows {
            // Nearest rank, as `latency` computes it from a histogram in Rust.
            let seconds = |s: Option<i64>| s.map(|s| s.max(0).unsigned_abs());
            let latency = Latency {
                count: count.max(0).unsigned_abs(),
                p50_s: seconds(p50),
                p90_s: seconds(p90),
            };
            if is_whole == 1 {
                total = latency;
            } else {
                groups.push((key, latency));
            }
        }
        Ok((groups, total))
    }

    async fn repeat_pranks(&self, query: &Query) -> Result<Vec<RepeatPranks>> {
        let sql = format!(
            "SELECT button, COUNT(*) AS n FROM report_incidents WHERE resolution = 'prank' \
             AND {PERIOD} GROUP BY button \
             HAVING COUNT(*) >= {} ORDER BY n DESC, button LIMIT {}",
            limits::REPEAT_PRANKS_MIN,
            limits::REPEAT_PRANKS_LISTED_MAX
        );
        self.ready().await?;
        let rows: Vec<(String, i64)> = crate::db::on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(millis(query.since))
                .bind(millis(query.until))
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows
            .into_iter()
            .map(|(button, pranks)| RepeatPranks {
                button,
                pranks: pranks.max(0) as u64,
            })
            .collect())
    }

    /// Computes the facts of archived incidents that have none (archived before the report
    /// tables existed), in batches by id.
    async fn fill_report_facts(&self) -> Result<()> {
        self.ready().await?;
        let mut after = String::new();
        loop {
            let batch: Vec<(String, String)> = crate::db::on_pool!(self, |pool| {
                sqlx::query(
                    "SELECT i.id, i.body FROM incidents i LEFT JOIN report_incidents r \
                     ON r.incident_id = i.id WHERE r.incident_id IS NULL AND i.id > $1 \
                     ORDER BY i.id LIMIT $2",
                )
                .bind(&after)
                .bind(limits::REPORT_FILL_BATCH)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
            });
            let Some((last, _)) = batch.last() else {
                return Ok(());
            };
            after = last.clone();
            let facts: Vec<Facts> = batch
                .iter()
                .filter_map(|(id, body)| match crate::db::decode(id, body) {
                    Ok(entry) => Some(Facts::of(&entry)),
                    Err(e) => {
                        tracing::warn!(incident = %id, error = %e, "archived incident skipped in reports");
                        None
                    }
                })
                .collect();
            crate::db::on_pool!(self, |pool| {
                let mut tx = pool.begin().await?;
                for facts in &facts {
                    insert_facts!(tx, facts);
                }
                tx.commit().await?;
            });
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Acknowledged,
    Assigned,
    OnScene,
}

/// Each stage and the column of its bucket (migration `20261204210000_report_buckets.sql`).
const STAGES: [(Stage, &str); 3] = [
    (Stage::Acknowledged, "acknowledged_bucket_s"),
    (Stage::Assigned, "assigned_bucket_s"),
    (Stage::OnScene, "on_scene_bucket_s"),
];

/// A district's key: its name, or [`centinela_core::button::DISTRICT_UNKNOWN`] for the facts
/// without one (NULL).
const DISTRICT_KEY: &str = "COALESCE(q, 'unknown')";

/// The key of the one row that is the whole period.
const ALL_KEY: &str = "CAST('all' AS TEXT)";

/// A report's period (`$1`, `$2`). Every report statement is served by an index that starts
/// with its grouping column and ends with the first press (`report_incidents_counts`,
/// `report_incidents_on_scene`, …; migration `20261204210000_report_buckets.sql`): SQLite
/// reads it whole and in order (no sort, no table rows), checking the period inside it, so a
/// short period costs what a year costs (a scan of the index), where
/// sorting a year's rows took seconds.
const PERIOD: &str = "first_press_at_ms >= $1 AND first_press_at_ms < $2";

/// The bucket a response time of `seconds` falls in, as the bucket's lower edge: exact below
/// `10^D` seconds, then `D` significant decimal digits (`D` is
/// [`limits::REPORT_BUCKET_SIGNIFICANT_DIGITS`], 2: exact to the second below 100 s, to 10 s
/// below 1,000 s, to 100 s below 10,000 s, …). A percentile read off these buckets is the
/// lower edge of the bucket it falls in: never above the exact value, and below it by less
/// than one part in `10^(D-1)` (under 10% with two digits). Negative times (a clock that went
/// back) count as 0.
pub fn bucket_floor_s(seconds: i64) -> i64 {
    let exact_below = 10_i64.pow(limits::REPORT_BUCKET_SIGNIFICANT_DIGITS);
    if seconds < 0 {
        return 0;
    }
    let mut step = 1_i64;
    while let Some(upper) = exact_below.checked_mul(step) {
        if seconds < upper {
            break;
        }
        step *= 10;
    }
    seconds / step * step
}

fn stage_of(row: &mut Row, stage: Stage) -> &mut Latency {
    match stage {
        Stage::Acknowledged => &mut row.acknowledged,
        Stage::Assigned => &mut row.assigned,
        Stage::OnScene => &mut row.on_scene,
    }
}

fn row_of_counts(
    (key, incidents, presses, handled, pranks, false_alarms, cancelled): Counts,
) -> Row {
    let count = |n: i64| n.max(0) as u64;
    let mut row = Row {
        key,
        presses: count(presses),
        incidents: count(incidents),
        handled: count(handled),
        pranks: count(pranks),
        false_alarms: count(false_alarms),
        cancelled: count(cancelled),
        ..Row::default()
    };
    set_shares(&mut row);
    row
}

fn set_shares(row: &mut Row) {
    if row.incidents > 0 {
        row.prank_share = row.pranks as f64 / row.incidents as f64;
        row.false_alarm_share = row.false_alarms as f64 / row.incidents as f64;
    }
}

/// The buttons pranked at least [`limits::REPEAT_PRANKS_MIN`] times, most first (then by
/// id), at most [`limits::REPEAT_PRANKS_LISTED_MAX`]: what `repeat_pranks` selects, read off
/// a report's rows by button.
fn repeat_pranks_of(rows: &[Row]) -> Vec<RepeatPranks> {
    let mut pranked: Vec<RepeatPranks> = rows
        .iter()
        .filter(|row| row.pranks >= u64::from(limits::REPEAT_PRANKS_MIN))
        .map(|row| RepeatPranks {
            button: row.key.clone(),
            pranks: row.pranks,
        })
        .collect();
    pranked.sort_by(|a, b| {
        b.pranks
            .cmp(&a.pranks)
            .then_with(|| a.button.cmp(&b.button))
    });
    pranked.truncate(limits::REPEAT_PRANKS_LISTED_MAX as usize);
    pranked
}

/// The UTC quarter hour of the week of `at_ms` (ms since the Unix epoch): 0 is Monday
/// 00:00–00:15 UTC, 671 Sunday 23:45–24:00 (1970-01-01 was a Thursday: 3 × 96 quarters after
/// a Monday). Migration `20261205000000_report_week_quarter.sql` writes the same rule in SQL.
pub fn week_quarter(at_ms: i64) -> i64 {
    (at_ms.div_euclid(900_000) + 3 * 96).rem_euclid(7 * 96)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_hours_of_the_week_start_on_monday_utc() {
        // 1970-01-01T00:00Z was a Thursday; 2026-12-07T00:00Z a Monday.
        assert_eq!(week_quarter(0), 3 * 96);
        assert_eq!(week_quarter(1_796_601_600_000), 0);
        assert_eq!(week_quarter(1_796_601_600_000 - 1), 671);
        assert_eq!(
            week_quarter(1_796_601_600_000 + 14 * 3_600_000 + 899_999),
            56
        );
    }

    #[test]
    fn buckets_keep_two_significant_digits() {
        let cases = [
            (-5, 0),
            (0, 0),
            (7, 7),
            (99, 99),
            (100, 100),
            (109, 100),
            (999, 990),
            (1_000, 1_000),
            (1_099, 1_000),
            (86_399, 86_000),
            (i64::MAX, i64::MAX / 10_i64.pow(17) * 10_i64.pow(17)),
        ];
        for (seconds, floor) in cases {
            assert_eq!(bucket_floor_s(seconds), floor, "{seconds} s");
        }
        for seconds in (0..2_000_000).step_by(7) {
            let floor = bucket_floor_s(seconds);
            assert!(floor <= seconds, "{seconds} s");
            assert!(
                seconds < 100 && floor == seconds || (seconds - floor) * 10 < seconds,
                "{seconds} s: {floor} is 10% low or more"
            );
        }
    }

    #[test]
    fn facts_without_a_district_are_the_unknown_group() {
        let unknown = format!("'{}'", centinela_core::button::DISTRICT_UNKNOWN);
        assert_eq!(DISTRICT_KEY, format!("COALESCE(q, {unknown})"));
    }

    #[test]
    fn groupings_parse_from_their_names_only() {
        for grouping in Grouping::ALL {
            assert_eq!(grouping.to_string().parse(), Ok(grouping));
        }
        assert!("districts".parse::<Grouping>().is_err());
        assert!("Button".parse::<Grouping>().is_err());
    }
}
