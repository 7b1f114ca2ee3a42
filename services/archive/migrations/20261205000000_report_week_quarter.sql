-- Hours and weekdays from an index (issue 19: a report by hour or weekday sorted the whole
-- period's facts, because its key was computed from the first press at the caller's UTC
-- offset). Each fact now carries the UTC quarter hour of the week of its first press
-- (`week_quarter`: 0 is Monday 00:00–00:15 UTC, 671 Sunday 23:45–24:00; 1970-01-01, day 0 of
-- the epoch, was a Thursday, hence the 3 × 96 quarters added). Every UTC offset in use is a
-- whole number of quarter hours, so a local hour or weekday is a function of this column
-- alone: a report groups the period by it reading an index in order (at most 672 groups),
-- then maps the groups to local hours or weekdays (report::Plan). New facts get it from the
-- archiver (`report::week_quarter`); the rows already there are filled in below with the same
-- rule (the contract tests compare the two).

ALTER TABLE report_incidents ADD COLUMN week_quarter BIGINT;
ALTER TABLE report_units ADD COLUMN week_quarter BIGINT;
UPDATE report_incidents SET week_quarter = (first_press_at_ms / 900000 + 288) % 672;
UPDATE report_units SET week_quarter = (first_press_at_ms / 900000 + 288) % 672;

-- The same shape as the grouping indexes of 20261204210000_report_buckets.sql: the grouping
-- column first, the first press last (hours and weekdays group `report_incidents` only).
CREATE INDEX report_incidents_week_counts ON report_incidents (week_quarter, first_press_at_ms, resolution, press_count);
CREATE INDEX report_incidents_week_acknowledged ON report_incidents (week_quarter, acknowledged_bucket_s, first_press_at_ms);
CREATE INDEX report_incidents_week_assigned ON report_incidents (week_quarter, assigned_bucket_s, first_press_at_ms);
CREATE INDEX report_incidents_week_on_scene ON report_incidents (week_quarter, on_scene_bucket_s, first_press_at_ms);
