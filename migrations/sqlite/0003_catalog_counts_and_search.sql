-- Lists at a million images: exact totals without counting rows, substring search through
-- an index, and query plans that do not depend on the data seen so far.

-- image_counts: how many images share each combination of the list filters' low-cardinality
-- columns. A list whose filters are all among them gets its exact total by adding up a few
-- hundred of these rows instead of counting matching images. NULL category/framework are ''
-- (a filter value is never empty). Kept exact by the triggers below, in the writing
-- transaction.
CREATE TABLE image_counts (
    visibility        TEXT    NOT NULL,
    publication       TEXT    NOT NULL,
    is_official       INTEGER NOT NULL,
    chip_type         TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    framework         TEXT    NOT NULL,
    applicable_scopes TEXT    NOT NULL,
    n                 INTEGER NOT NULL,
    PRIMARY KEY (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes)
);

INSERT INTO image_counts (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes, n)
SELECT visibility, publication, is_official, chip_type, status, COALESCE(category, ''), COALESCE(framework, ''),
       applicable_scopes, COUNT(*)
FROM images
GROUP BY visibility, publication, is_official, chip_type, status, COALESCE(category, ''), COALESCE(framework, ''),
         applicable_scopes;

CREATE TRIGGER image_counts_insert AFTER INSERT ON images
BEGIN
    INSERT INTO image_counts (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes, n)
    VALUES (NEW.visibility, NEW.publication, NEW.is_official, NEW.chip_type, NEW.status, COALESCE(NEW.category, ''),
            COALESCE(NEW.framework, ''), NEW.applicable_scopes, 1)
    ON CONFLICT (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes)
    DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER image_counts_delete AFTER DELETE ON images
BEGIN
    UPDATE image_counts SET n = n - 1
    WHERE visibility = OLD.visibility AND publication = OLD.publication AND is_official = OLD.is_official
      AND chip_type = OLD.chip_type AND status = OLD.status AND category = COALESCE(OLD.category, '')
      AND framework = COALESCE(OLD.framework, '') AND applicable_scopes = OLD.applicable_scopes;
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

-- The grouped view's total (repositories with a visible image) without grouping a million
-- rows: images per repository, and how many repositories have any image / any listed
-- (public, online) image, kept by triggers; and the unfiltered list's total: how many
-- images there are and how many are listed.
CREATE TABLE repositories (
    registry   TEXT    NOT NULL,
    repository TEXT    NOT NULL,
    images     INTEGER NOT NULL,
    listed     INTEGER NOT NULL,
    PRIMARY KEY (registry, repository)
);

CREATE TABLE catalog_totals (
    name TEXT    PRIMARY KEY,   -- repositories | listed_repositories | images | listed_images
    n    INTEGER NOT NULL
);

INSERT INTO repositories (registry, repository, images, listed)
SELECT registry, repository, COUNT(*), SUM(visibility = 'public' AND publication = 'online')
FROM images GROUP BY registry, repository;

INSERT INTO catalog_totals (name, n)
SELECT 'repositories', COUNT(*) FROM repositories WHERE images > 0;

INSERT INTO catalog_totals (name, n)
SELECT 'listed_repositories', COUNT(*) FROM repositories WHERE listed > 0;

INSERT INTO catalog_totals (name, n)
SELECT 'images', COALESCE(SUM(images), 0) FROM repositories;

INSERT INTO catalog_totals (name, n)
SELECT 'listed_images', COALESCE(SUM(listed), 0) FROM repositories;

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

-- A caller's own images: the owner, then the columns that decide whether an image is
-- listed, so that a user's own unlisted images are counted (and, newest first, found) from
-- the index alone.
DROP INDEX images_owner;
CREATE INDEX images_owner ON images (owner, visibility, publication, created_at);

-- The listed images newest first (the portal's usual view) from one index, no row reads.
-- Its WHERE is the listed arm exactly as store.rs writes it when it walks a sort order
-- (`+publication`: publication's own index is not to be used there).
CREATE INDEX images_listed_created_at ON images (created_at)
WHERE visibility = 'public' AND +publication = 'online';

-- The `name` filter (case-insensitive substring of name or display name) through a trigram
-- index: FTS5 finds the candidates, the LIKE that follows in the query keeps the exact
-- semantics (ASCII case folding, % and _ literal). Terms under three characters have no
-- trigram and use the LIKE alone.
CREATE VIRTUAL TABLE images_name_fts USING fts5(
    name, display_name, content = 'images', content_rowid = 'id', tokenize = 'trigram'
);

INSERT INTO images_name_fts (images_name_fts) VALUES ('rebuild');

CREATE TRIGGER images_name_fts_insert AFTER INSERT ON images
BEGIN
    INSERT INTO images_name_fts (rowid, name, display_name) VALUES (NEW.id, NEW.name, NEW.display_name);
END;

CREATE TRIGGER images_name_fts_delete AFTER DELETE ON images
BEGIN
    INSERT INTO images_name_fts (images_name_fts, rowid, name, display_name)
    VALUES ('delete', OLD.id, OLD.name, OLD.display_name);
END;

CREATE TRIGGER images_name_fts_update AFTER UPDATE OF name, display_name ON images
BEGIN
    INSERT INTO images_name_fts (images_name_fts, rowid, name, display_name)
    VALUES ('delete', OLD.id, OLD.name, OLD.display_name);
    INSERT INTO images_name_fts (rowid, name, display_name) VALUES (NEW.id, NEW.name, NEW.display_name);
END;

-- Fixed planner statistics (SQLite's "manual control of query plans using sqlite_stat
-- tables"): the shape of a large catalog, so that plans are the same at ten images and at a
-- million and never depend on when ANALYZE last ran. Per index: rows, then rows matched by
-- one key value. The low-cardinality columns (publication, status, chip type, officialness,
-- category, framework, scope) are given the share of their most common value: a list page
-- filtered on them walks the sort order's index and stops at LIMIT, rather than reading and
-- sorting a third of the catalog. Owners, tags, references and names are selective.
-- The owner index is never skip-scanned (`noskipscan`): walking 5,000 owners to test the
-- visibility columns is slower than walking the sort order. A later ANALYZE replaces these
-- with measured counts.
ANALYZE schema_migrations;
DELETE FROM sqlite_stat1 WHERE tbl IN ('images', 'image_scopes', 'image_platforms', 'imports');
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
    ('images', 'sqlite_autoindex_images_1', '1000000 1'),
    ('image_scopes', 'sqlite_autoindex_image_scopes_1', '1700000 600000 1'),
    ('image_scopes', 'image_scopes_image', '1700000 2'),
    ('image_platforms', 'sqlite_autoindex_image_platforms_1', '450000 2 1'),
    ('imports', 'imports_image',       '500000 1 1'),
    ('imports', 'imports_execution',   '500000 1'),
    ('imports', 'imports_state',       '500000 125000 1');
ANALYZE sqlite_schema;
