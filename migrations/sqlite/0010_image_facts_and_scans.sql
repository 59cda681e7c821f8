-- What berth derived from an image's config (framework, CUDA, cuDNN, Python), kept apart
-- from the image's own columns, which an admin may change; and Harbor's latest
-- vulnerability scan of it.
CREATE TABLE image_facts (
    image_id      INTEGER NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    derived       TEXT    NOT NULL DEFAULT '{}',  -- JSON: the derived values
    cudnn_version TEXT,
    scan          TEXT,                           -- JSON: status, severity, counts, scanned_at
    scan_severity INTEGER,                        -- highest severity of a successful scan, 0 (none) to 5 (critical)
    scanned_at    TEXT
);
CREATE INDEX image_facts_scan_severity ON image_facts (scan_severity, image_id);
