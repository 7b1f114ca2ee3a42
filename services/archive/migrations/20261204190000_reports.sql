-- Facts for the municipality's reports (`centinela report`, the console's Reportes page),
-- computed from each incident when it is archived (and, for incidents archived before this
-- migration, the first time a report is asked for). One file for PostgreSQL and SQLite, like
-- the archive's own schema. The times are milliseconds since the Unix epoch; a stage never
-- reached is NULL.

-- One row per archived incident. `assigned_at_ms` and `on_scene_at_ms` are the first unit's.
CREATE TABLE report_incidents (
    incident_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    button TEXT NOT NULL,
    resolution TEXT,
    press_count BIGINT NOT NULL,
    first_press_at_ms BIGINT NOT NULL,
    acknowledged_at_ms BIGINT,
    assigned_at_ms BIGINT,
    on_scene_at_ms BIGINT
);
CREATE INDEX report_incidents_by_first_press ON report_incidents (first_press_at_ms);

-- One row per unit ever assigned to an archived incident, with that unit's own assignment and
-- arrival, and the incident's other facts copied (the same columns as report_incidents, so one
-- statement serves both tables).
CREATE TABLE report_units (
    incident_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    button TEXT NOT NULL,
    resolution TEXT,
    press_count BIGINT NOT NULL,
    first_press_at_ms BIGINT NOT NULL,
    acknowledged_at_ms BIGINT,
    assigned_at_ms BIGINT,
    on_scene_at_ms BIGINT,
    PRIMARY KEY (incident_id, unit)
);
CREATE INDEX report_units_by_first_press ON report_units (first_press_at_ms);
