-- Report histograms in buckets, and indexes that serve each grouping (issue 19: a report on a
-- year of history took seconds). Each response time's bucket is stored with the facts: its
-- lower edge in seconds, two significant digits (`report::bucket_floor_s`: exact below 100 s,
-- then 10 s steps below 1,000 s, 100 s steps below 10,000 s, ...; NULL when the stage was
-- never reached). New facts get theirs from the archiver; the rows already there are filled in
-- below with the same rule written as an integer CASE (integer division truncates on both
-- backends; the contract tests run these statements and compare with the function).

ALTER TABLE report_incidents ADD COLUMN acknowledged_bucket_s BIGINT;
ALTER TABLE report_incidents ADD COLUMN assigned_bucket_s BIGINT;
ALTER TABLE report_incidents ADD COLUMN on_scene_bucket_s BIGINT;
ALTER TABLE report_units ADD COLUMN acknowledged_bucket_s BIGINT;
ALTER TABLE report_units ADD COLUMN assigned_bucket_s BIGINT;
ALTER TABLE report_units ADD COLUMN on_scene_bucket_s BIGINT;

UPDATE report_incidents SET acknowledged_bucket_s = CASE WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 0 THEN 0 WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000)
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10 * 10
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100 * 100
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000 * 1000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000 * 10000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000 * 100000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000 * 1000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000 * 10000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000 * 100000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000000 * 1000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000000 * 10000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000000 * 100000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000000000 * 1000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000000000 * 10000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000000000 * 100000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000000000000 * 1000000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000000000000 * 10000000000000000
    ELSE ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000000000000 * 100000000000000000 END
WHERE acknowledged_at_ms IS NOT NULL;
UPDATE report_incidents SET assigned_bucket_s = CASE WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 0 THEN 0 WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100 THEN ((assigned_at_ms - first_press_at_ms) / 1000)
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10 * 10
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100 * 100
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000 * 1000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000 * 10000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000 * 100000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000 * 1000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000 * 10000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000 * 100000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000000 * 1000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000000 * 10000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000000 * 100000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000000000 * 1000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000000000 * 10000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000000000 * 100000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000000000000 * 1000000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000000000000 * 10000000000000000
    ELSE ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000000000000 * 100000000000000000 END
WHERE assigned_at_ms IS NOT NULL;
UPDATE report_incidents SET on_scene_bucket_s = CASE WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 0 THEN 0 WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100 THEN ((on_scene_at_ms - first_press_at_ms) / 1000)
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10 * 10
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100 * 100
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000 * 1000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000 * 10000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000 * 100000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000 * 1000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000 * 10000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000 * 100000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000000 * 1000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000000 * 10000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000000 * 100000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000000000 * 1000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000000000 * 10000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000000000 * 100000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000000000000 * 1000000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000000000000 * 10000000000000000
    ELSE ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000000000000 * 100000000000000000 END
WHERE on_scene_at_ms IS NOT NULL;
UPDATE report_units SET acknowledged_bucket_s = CASE WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 0 THEN 0 WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000)
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10 * 10
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100 * 100
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000 * 1000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000 * 10000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000 * 100000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000 * 1000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000 * 10000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000 * 100000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000000 * 1000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000000 * 10000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000000 * 100000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000000000 * 1000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000000000 * 10000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 10000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000000000 * 100000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 100000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 1000000000000000 * 1000000000000000
    WHEN ((acknowledged_at_ms - first_press_at_ms) / 1000) < 1000000000000000000 THEN ((acknowledged_at_ms - first_press_at_ms) / 1000) / 10000000000000000 * 10000000000000000
    ELSE ((acknowledged_at_ms - first_press_at_ms) / 1000) / 100000000000000000 * 100000000000000000 END
WHERE acknowledged_at_ms IS NOT NULL;
UPDATE report_units SET assigned_bucket_s = CASE WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 0 THEN 0 WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100 THEN ((assigned_at_ms - first_press_at_ms) / 1000)
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10 * 10
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100 * 100
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000 * 1000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000 * 10000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000 * 100000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000 * 1000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000 * 10000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000 * 100000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000000 * 1000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000000 * 10000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000000 * 100000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000000000 * 1000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000000000 * 10000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 10000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000000000 * 100000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 100000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 1000000000000000 * 1000000000000000
    WHEN ((assigned_at_ms - first_press_at_ms) / 1000) < 1000000000000000000 THEN ((assigned_at_ms - first_press_at_ms) / 1000) / 10000000000000000 * 10000000000000000
    ELSE ((assigned_at_ms - first_press_at_ms) / 1000) / 100000000000000000 * 100000000000000000 END
WHERE assigned_at_ms IS NOT NULL;
UPDATE report_units SET on_scene_bucket_s = CASE WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 0 THEN 0 WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100 THEN ((on_scene_at_ms - first_press_at_ms) / 1000)
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10 * 10
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100 * 100
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000 * 1000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000 * 10000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000 * 100000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000 * 1000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000 * 10000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000 * 100000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000000 * 1000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000000 * 10000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000000 * 100000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000000000 * 1000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000000000 * 10000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 10000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000000000 * 100000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 100000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 1000000000000000 * 1000000000000000
    WHEN ((on_scene_at_ms - first_press_at_ms) / 1000) < 1000000000000000000 THEN ((on_scene_at_ms - first_press_at_ms) / 1000) / 10000000000000000 * 10000000000000000
    ELSE ((on_scene_at_ms - first_press_at_ms) / 1000) / 100000000000000000 * 100000000000000000 END
WHERE on_scene_at_ms IS NOT NULL;

-- One index per grouping column and figure, the grouping first and the first press last:
-- SQLite reads only the index, in the grouping's order (no sort, no table rows), and checks
-- the period inside it; PostgreSQL hashes or reads the same index, as its planner costs it.
-- `report_*_counts` serve the counts (and repeat pranks); `report_*_<stage>` each stage's
-- histogram by (key, bucket). The indexes on the first press alone go: SQLite took them for
-- every period (a range it cannot tell is the whole year), then sorted every row of it.
DROP INDEX report_incidents_by_first_press;
DROP INDEX report_units_by_first_press;
CREATE INDEX report_incidents_counts ON report_incidents (button, first_press_at_ms, resolution, press_count);
CREATE INDEX report_incidents_acknowledged ON report_incidents (button, acknowledged_bucket_s, first_press_at_ms);
CREATE INDEX report_incidents_assigned ON report_incidents (button, assigned_bucket_s, first_press_at_ms);
CREATE INDEX report_incidents_on_scene ON report_incidents (button, on_scene_bucket_s, first_press_at_ms);
CREATE INDEX report_units_counts ON report_units (unit, first_press_at_ms, resolution, press_count);
CREATE INDEX report_units_acknowledged ON report_units (unit, acknowledged_bucket_s, first_press_at_ms);
CREATE INDEX report_units_assigned ON report_units (unit, assigned_bucket_s, first_press_at_ms);
CREATE INDEX report_units_on_scene ON report_units (unit, on_scene_bucket_s, first_press_at_ms);
