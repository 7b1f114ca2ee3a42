-- Reports per district (issue 19: "per button, per district and per hour"). A button may name
-- the district or sector of the city it stands in (the scenario's `district`); the leader
-- copies it into the incident it archives (the body's `district`), and from there into the
-- incident's report facts. Every row archived before this migration has none (NULL): reports
-- put those under the group `unknown` (report::Plan, docs/reports.md), rather than guessing a
-- district from a button that may have moved or been renamed since.

ALTER TABLE incidents ADD COLUMN district TEXT;
ALTER TABLE report_incidents ADD COLUMN district TEXT;
ALTER TABLE report_units ADD COLUMN district TEXT;

-- The same shape as the other groupings' indexes (20261204210000_report_buckets.sql): the
-- grouping column first, the first press last; a report by district groups
-- `report_incidents` only.
CREATE INDEX report_incidents_district_counts ON report_incidents (district, first_press_at_ms, resolution, press_count);
CREATE INDEX report_incidents_district_acknowledged ON report_incidents (district, acknowledged_bucket_s, first_press_at_ms);
CREATE INDEX report_incidents_district_assigned ON report_incidents (district, assigned_bucket_s, first_press_at_ms);
CREATE INDEX report_incidents_district_on_scene ON report_incidents (district, on_scene_bucket_s, first_press_at_ms);
