-- The archive of closed incidents and the ledger that chains them. One file for PostgreSQL and
-- SQLite alike: only types and statements both read the same way (TEXT, BIGINT, BYTEA is a
-- BLOB to SQLite's type affinity).

-- One row per closed incident. `body` is the archived incident as JSON (the incident with its
-- audit trail, unit assignments, timestamps; its press ids, still hashes and camera
-- bookmarks); `body_hash` its BLAKE2b-256; `incident_hash` the BLAKE2b-256 of the incident
-- record alone (what makes archiving it again a no-op). The other columns are copies for
-- queries.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    button TEXT NOT NULL,
    kind TEXT NOT NULL,
    resolution TEXT,
    created_at_ms BIGINT NOT NULL,
    closed_at_ms BIGINT NOT NULL,
    audit_head TEXT NOT NULL,
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    incident_hash TEXT NOT NULL,
    archived_at_ms BIGINT NOT NULL
);

-- Paging closed incidents by when they closed (`incidents --closed --since --limit`).
CREATE INDEX incidents_by_closed_at ON incidents (closed_at_ms, id);
CREATE INDEX incidents_by_button ON incidents (button, closed_at_ms);

-- The JPEG stills operators saved, by SHA-256 (the body lists the hashes).
CREATE TABLE stills (
    incident_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    jpeg BYTEA NOT NULL,
    PRIMARY KEY (incident_id, sha256)
);

-- Append-only: one link per archived incident, in archiving order. `link` chains the previous
-- link, the incident id, its audit head and its body hash (BLAKE2b-256); `mac` is the audit
-- key's MAC over the link (centinela_core::seal::ledger_mac).
CREATE TABLE ledger (
    seq BIGINT PRIMARY KEY,
    incident_id TEXT NOT NULL UNIQUE,
    audit_head TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    prev TEXT NOT NULL,
    link TEXT NOT NULL,
    mac TEXT NOT NULL
);
