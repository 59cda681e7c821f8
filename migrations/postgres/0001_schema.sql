-- berth schema: images (one row per registry/repository:tag), their platforms and scopes,
-- imports through Harbor, custom builds and source registries.
-- Times are RFC 3339 UTC text with milliseconds ('2026-01-20T10:00:00.000Z'): sortable in
-- both dialects.

CREATE TABLE images (
    id                BIGSERIAL PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    display_name      TEXT,
    description       TEXT,
    category          TEXT,
    framework         TEXT,
    framework_version TEXT,
    frameworks        TEXT    NOT NULL DEFAULT '[]',   -- JSON array of strings
    cuda_version      TEXT,
    preset_cuda       BIGINT NOT NULL DEFAULT 0,      -- console presetCuda: ships with CUDA
    python_version    TEXT,
    chip_type         TEXT    NOT NULL DEFAULT 'GPU',  -- GPU | CPU | NPU
    applicable_scopes TEXT    NOT NULL DEFAULT '[]',   -- JSON array; indexed via image_scopes
    registry          TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    tag               TEXT    NOT NULL,
    digest            TEXT,
    size              BIGINT NOT NULL DEFAULT 0,      -- bytes
    arch              TEXT,
    os                TEXT,
    is_official       BIGINT NOT NULL DEFAULT 0,
    visibility        TEXT    NOT NULL DEFAULT 'public',  -- public | private
    owner             TEXT,
    status            TEXT    NOT NULL DEFAULT 'ready',   -- availability: importing | ready | failed | building
    publication       TEXT    NOT NULL DEFAULT 'online',  -- online | offline | pending
    origin            TEXT    NOT NULL DEFAULT 'manual',  -- seed | manual | import | build
    include_type      TEXT    NOT NULL DEFAULT 'full',
    revision          BIGINT NOT NULL DEFAULT 1,         -- optimistic concurrency (ETag)
    created_by        TEXT,
    updated_by        TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);

CREATE INDEX images_created_at   ON images (created_at, id);
CREATE INDEX images_updated_at   ON images (updated_at, id);
CREATE INDEX images_size         ON images (size, id);
CREATE INDEX images_category     ON images (lower(category), id);
CREATE INDEX images_framework    ON images (lower(framework), id);
CREATE INDEX images_official     ON images (is_official, id);
CREATE INDEX images_chip_type    ON images (chip_type, id);
CREATE INDEX images_status       ON images (status, id);
CREATE INDEX images_publication  ON images (publication, id);
CREATE INDEX images_owner        ON images (owner, id);
CREATE INDEX images_tag          ON images (tag, id);
CREATE UNIQUE INDEX images_reference ON images (registry, repository, tag);

-- One row per platform of a multi-arch image (from Harbor's index references).
CREATE TABLE image_platforms (
    image_id     BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    digest       TEXT    NOT NULL,
    architecture TEXT    NOT NULL,
    os           TEXT    NOT NULL,
    variant      TEXT,
    size         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (image_id, digest)
);

-- applicable_scopes, one row each, so the scope filter uses an index.
CREATE TABLE image_scopes (
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    scope    TEXT    NOT NULL,
    PRIMARY KEY (scope, image_id)
);
CREATE INDEX image_scopes_image ON image_scopes (image_id);

-- Admin-managed source registries (Docker Hub, NGC, private v2 registries).
CREATE TABLE registries (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT    NOT NULL UNIQUE,
    host               TEXT    NOT NULL UNIQUE,
    kind               TEXT    NOT NULL,              -- Harbor registry type: docker-hub | docker-registry | quay | github-ghcr ...
    url                TEXT    NOT NULL,
    username           TEXT,
    password           TEXT,                          -- never returned or logged
    harbor_registry_id BIGINT,
    created_by         TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
);

-- One import of an external image into Harbor (a replication execution).
CREATE TABLE imports (
    id               BIGSERIAL PRIMARY KEY,
    image_id         BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    source           TEXT    NOT NULL,
    source_registry  TEXT    NOT NULL,
    state            TEXT    NOT NULL,                -- pending | running | succeeded | failed
    progress         BIGINT NOT NULL DEFAULT 0,      -- 0..100, never decreases
    layers_detail    TEXT    NOT NULL DEFAULT '{}',   -- JSON {layer: {status, progress}}
    message          TEXT,
    harbor_registry_id BIGINT,
    policy_id        BIGINT,
    execution_id     BIGINT,
    attempt          BIGINT NOT NULL DEFAULT 1,
    started_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    last_event_at    TEXT,
    failure_seen_at  TEXT,                            -- first time Harbor read Failed (confirmed later)
    deadline_at      TEXT    NOT NULL
);
CREATE INDEX imports_image     ON imports (image_id, id);
CREATE INDEX imports_execution ON imports (execution_id);
CREATE INDEX imports_state     ON imports (state, deadline_at);

-- A custom image build handed to a runner.
CREATE TABLE builds (
    id          TEXT    PRIMARY KEY,                  -- build-<hex>
    image_id    BIGINT REFERENCES images (id) ON DELETE SET NULL,
    owner       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    mode        TEXT    NOT NULL,                     -- dockerfile | packages | environment
    base_image  TEXT,
    base_image_id BIGINT REFERENCES images (id) ON DELETE SET NULL,
    dockerfile  TEXT,
    description TEXT,
    status      TEXT    NOT NULL,                     -- building | running | succeeded | failed
    message     TEXT,
    log_tail    TEXT,
    target      TEXT,                                 -- Harbor repository:tag the runner pushes
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    deadline_at TEXT    NOT NULL
);
CREATE INDEX builds_owner  ON builds (owner, created_at);
CREATE INDEX builds_target ON builds (target);
CREATE INDEX builds_base   ON builds (base_image_id);

-- Short-lived copies of remote answers (e.g. Harbor's statistics).
CREATE TABLE cached_values (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
