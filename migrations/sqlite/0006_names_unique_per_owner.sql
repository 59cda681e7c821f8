-- Image names and references are unique per owner, not across all users: a user's private
-- image named like an import (or like another user's image) must not block it. Shared rows
-- (imports: no owner) are one scope, each owner another. The name's UNIQUE column
-- constraint cannot be dropped in SQLite, so the table is rebuilt (the documented 12-step
-- way). Foreign keys are on and cannot be turned off inside the migration's transaction,
-- so dropping the old table would cascade: the rows that reference images are saved first
-- and put back after.

CREATE TEMP TABLE saved_image_platforms AS SELECT * FROM image_platforms;
CREATE TEMP TABLE saved_image_scopes AS SELECT * FROM image_scopes;
CREATE TEMP TABLE saved_imports AS SELECT * FROM imports;
CREATE TEMP TABLE saved_build_images AS SELECT id, image_id, base_image_id FROM builds;
CREATE TEMP TABLE saved_image_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'images';

CREATE TABLE images_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    display_name      TEXT,
    description       TEXT,
    category          TEXT,
    framework         TEXT,
    framework_version TEXT,
    frameworks        TEXT    NOT NULL DEFAULT '[]',   -- JSON array of strings
    cuda_version      TEXT,
    preset_cuda       INTEGER NOT NULL DEFAULT 0,      -- console presetCuda: ships with CUDA
    python_version    TEXT,
    chip_type         TEXT    NOT NULL DEFAULT 'GPU',  -- GPU | CPU | NPU
    applicable_scopes TEXT    NOT NULL DEFAULT '[]',   -- JSON array; indexed via image_scopes
    registry          TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    tag               TEXT    NOT NULL,
    digest            TEXT,
    size              INTEGER NOT NULL DEFAULT 0,      -- bytes
    arch              TEXT,
    os                TEXT,
    is_official       INTEGER NOT NULL DEFAULT 0,
    visibility        TEXT    NOT NULL DEFAULT 'public',  -- public | private
    owner             TEXT,
    status            TEXT    NOT NULL DEFAULT 'ready',   -- availability: importing | ready | failed | building
    publication       TEXT    NOT NULL DEFAULT 'online',  -- online | offline | pending
    origin            TEXT    NOT NULL DEFAULT 'manual',  -- seed | manual | import | build
    include_type      TEXT    NOT NULL DEFAULT 'full',
    revision          INTEGER NOT NULL DEFAULT 1,         -- optimistic concurrency (ETag)
    created_by        TEXT,
    updated_by        TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);

INSERT INTO images_new SELECT * FROM images;
DROP TABLE images;
ALTER TABLE images_new RENAME TO images;
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(seq), 0) FROM saved_image_sequence))
WHERE name = 'images';

DELETE FROM image_platforms;
INSERT INTO image_platforms SELECT * FROM saved_image_platforms;
DELETE FROM image_scopes;
INSERT INTO image_scopes SELECT * FROM saved_image_scopes;
DELETE FROM imports;
INSERT INTO imports SELECT * FROM saved_imports;
UPDATE builds SET
    image_id = (SELECT s.image_id FROM saved_build_images s WHERE s.id = builds.id),
    base_image_id = (SELECT s.base_image_id FROM saved_build_images s WHERE s.id = builds.id);
DROP TABLE saved_image_platforms;
DROP TABLE saved_image_scopes;
DROP TABLE saved_imports;
DROP TABLE saved_build_images;
DROP TABLE saved_image_sequence;

-- Uniqueness per owner scope ('' is the shared scope of ownerless rows).
CREATE UNIQUE INDEX images_owner_name ON images (COALESCE(owner, ''), name);
CREATE UNIQUE INDEX images_owner_reference ON images (COALESCE(owner, ''), registry, repository, tag);
-- The lookups and orders the old unique indexes served.
CREATE INDEX images_name ON images (name);
CREATE INDEX images_reference ON images (registry, repository, tag);

-- The indexes and triggers as 0001-0004 left them (dropped with the old table).
CREATE INDEX images_category     ON images (category COLLATE NOCASE, id);
CREATE INDEX images_chip_type    ON images (chip_type, id);
CREATE INDEX images_created_at   ON images (created_at, id);
CREATE INDEX images_framework    ON images (framework COLLATE NOCASE, id);
CREATE INDEX images_listed_created_at ON images (created_at)
WHERE visibility = 'public' AND +publication = 'online';
CREATE INDEX images_official     ON images (is_official, id);
CREATE INDEX images_owner ON images (owner, visibility, publication, created_at);
CREATE INDEX images_publication  ON images (publication, id);
CREATE INDEX images_size         ON images (size, id);
CREATE INDEX images_status       ON images (status, id);
CREATE INDEX images_tag          ON images (tag, id);
CREATE INDEX images_updated_at   ON images (updated_at, id);

CREATE TRIGGER image_counts_delete AFTER DELETE ON images
BEGIN
    UPDATE image_counts SET n = n - 1
    WHERE visibility = OLD.visibility AND publication = OLD.publication AND is_official = OLD.is_official
      AND chip_type = OLD.chip_type AND status = OLD.status AND category = COALESCE(OLD.category, '')
      AND framework = COALESCE(OLD.framework, '') AND applicable_scopes = OLD.applicable_scopes;
END;
CREATE TRIGGER image_counts_insert AFTER INSERT ON images
BEGIN
    INSERT INTO image_counts (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes, n)
    VALUES (NEW.visibility, NEW.publication, NEW.is_official, NEW.chip_type, NEW.status, COALESCE(NEW.category, ''),
            COALESCE(NEW.framework, ''), NEW.applicable_scopes, 1)
    ON CONFLICT (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes)
    DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER image_counts_update
AFTER UPDATE OF visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes ON images
WHEN OLD.visibility IS NOT NEW.visibility OR OLD.publication IS NOT NEW.publication
  OR OLD.is_official IS NOT NEW.is_official OR OLD.chip_type IS NOT NEW.chip_type OR OLD.status IS NOT NEW.status
  OR OLD.category IS NOT NEW.category OR OLD.framework IS NOT NEW.framework
  OR OLD.applicable_scopes IS NOT NEW.applicable_scopes
BEGIN
    UPDATE image_counts SET n = n - 1
    WHERE visibility = OLD.visibility AND publication = OLD.publication AND is_official = OLD.is_official
      AND chip_type = OLD.chip_type AND status = OLD.status AND category = COALESCE(OLD.category, '')
      AND framework = COALESCE(OLD.framework, '') AND applicable_scopes = OLD.applicable_scopes;
    INSERT INTO image_counts (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes, n)
    VALUES (NEW.visibility, NEW.publication, NEW.is_official, NEW.chip_type, NEW.status, COALESCE(NEW.category, ''),
            COALESCE(NEW.framework, ''), NEW.applicable_scopes, 1)
    ON CONFLICT (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes)
    DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER images_name_fts_delete AFTER DELETE ON images
BEGIN
    INSERT INTO images_name_fts (images_name_fts, rowid, name, display_name)
    VALUES ('delete', OLD.id, OLD.name, OLD.display_name);
END;
CREATE TRIGGER images_name_fts_insert AFTER INSERT ON images
BEGIN
    INSERT INTO images_name_fts (rowid, name, display_name) VALUES (NEW.id, NEW.name, NEW.display_name);
END;
CREATE TRIGGER images_name_fts_update AFTER UPDATE OF name, display_name ON images
BEGIN
    INSERT INTO images_name_fts (images_name_fts, rowid, name, display_name)
    VALUES ('delete', OLD.id, OLD.name, OLD.display_name);
    INSERT INTO images_name_fts (rowid, name, display_name) VALUES (NEW.id, NEW.name, NEW.display_name);
END;
CREATE TRIGGER repositories_delete AFTER DELETE ON images
BEGIN
    UPDATE repositories
    SET images = images - 1, listed = listed - (OLD.visibility = 'public' AND OLD.publication = 'online')
    WHERE registry = OLD.registry AND repository = OLD.repository;
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'repositories'
      AND (SELECT images FROM repositories WHERE registry = OLD.registry AND repository = OLD.repository) = 0;
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'listed_repositories'
      AND OLD.visibility = 'public' AND OLD.publication = 'online'
      AND (SELECT listed FROM repositories WHERE registry = OLD.registry AND repository = OLD.repository) = 0;
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'images';
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'listed_images'
      AND OLD.visibility = 'public' AND OLD.publication = 'online';
END;
CREATE TRIGGER repositories_insert AFTER INSERT ON images
BEGIN
    INSERT INTO repositories (registry, repository, images, listed)
    VALUES (NEW.registry, NEW.repository, 0, 0) ON CONFLICT DO NOTHING;
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'repositories'
      AND (SELECT images FROM repositories WHERE registry = NEW.registry AND repository = NEW.repository) = 0;
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'listed_repositories'
      AND NEW.visibility = 'public' AND NEW.publication = 'online'
      AND (SELECT listed FROM repositories WHERE registry = NEW.registry AND repository = NEW.repository) = 0;
    UPDATE repositories
    SET images = images + 1, listed = listed + (NEW.visibility = 'public' AND NEW.publication = 'online')
    WHERE registry = NEW.registry AND repository = NEW.repository;
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'images';
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'listed_images'
      AND NEW.visibility = 'public' AND NEW.publication = 'online';
END;
CREATE TRIGGER repositories_update AFTER UPDATE OF registry, repository, visibility, publication ON images
WHEN OLD.registry IS NOT NEW.registry OR OLD.repository IS NOT NEW.repository
  OR OLD.visibility IS NOT NEW.visibility OR OLD.publication IS NOT NEW.publication
BEGIN
    UPDATE repositories
    SET images = images - 1, listed = listed - (OLD.visibility = 'public' AND OLD.publication = 'online')
    WHERE registry = OLD.registry AND repository = OLD.repository;
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'repositories'
      AND (SELECT images FROM repositories WHERE registry = OLD.registry AND repository = OLD.repository) = 0;
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'listed_repositories'
      AND OLD.visibility = 'public' AND OLD.publication = 'online'
      AND (SELECT listed FROM repositories WHERE registry = OLD.registry AND repository = OLD.repository) = 0;
    INSERT INTO repositories (registry, repository, images, listed)
    VALUES (NEW.registry, NEW.repository, 0, 0) ON CONFLICT DO NOTHING;
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'repositories'
      AND (SELECT images FROM repositories WHERE registry = NEW.registry AND repository = NEW.repository) = 0;
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'listed_repositories'
      AND NEW.visibility = 'public' AND NEW.publication = 'online'
      AND (SELECT listed FROM repositories WHERE registry = NEW.registry AND repository = NEW.repository) = 0;
    UPDATE repositories
    SET images = images + 1, listed = listed + (NEW.visibility = 'public' AND NEW.publication = 'online')
    WHERE registry = NEW.registry AND repository = NEW.repository;
    UPDATE catalog_totals
    SET n = n + (NEW.visibility = 'public' AND NEW.publication = 'online')
              - (OLD.visibility = 'public' AND OLD.publication = 'online')
    WHERE name = 'listed_images';
END;

-- Planner statistics: dropping the old table dropped its rows in sqlite_stat1; the same
-- fixed shape as 0003's, with the new indexes.
DELETE FROM sqlite_stat1 WHERE tbl = 'images';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('images', 'images_created_at',    '1000000 1 1'),
    ('images', 'images_updated_at',    '1000000 1 1'),
    ('images', 'images_size',          '1000000 2 1'),
    ('images', 'images_category',      '1000000 300000 1'),
    ('images', 'images_framework',     '1000000 300000 1'),
    ('images', 'images_official',      '1000000 990000 1'),
    ('images', 'images_chip_type',     '1000000 800000 1'),
    ('images', 'images_status',        '1000000 900000 1'),
    ('images', 'images_publication',   '1000000 850000 1'),
    ('images', 'images_owner',         '1000000 200 100 60 1 noskipscan'),
    ('images', 'images_listed_created_at', '600000 1'),
    ('images', 'images_tag',           '1000000 20 1'),
    ('images', 'images_reference',     '1000000 5 1 1'),
    ('images', 'images_name',          '1000000 1'),
    ('images', 'images_owner_name',    '1000000 200 1 noskipscan'),
    ('images', 'images_owner_reference', '1000000 200 5 1 1 noskipscan');
ANALYZE sqlite_schema;
