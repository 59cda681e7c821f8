-- Lists at a million images: exact totals without counting rows, and substring search
-- through an index (see the SQLite migration of the same name).

-- image_counts: images per combination of the list filters' low-cardinality columns
-- (NULL category/framework are ''), kept exact by a trigger in the writing transaction.
CREATE TABLE image_counts (
    visibility        TEXT   NOT NULL,
    publication       TEXT   NOT NULL,
    is_official       BIGINT NOT NULL,
    chip_type         TEXT   NOT NULL,
    status            TEXT   NOT NULL,
    category          TEXT   NOT NULL,
    framework         TEXT   NOT NULL,
    applicable_scopes TEXT   NOT NULL,
    n                 BIGINT NOT NULL,
    PRIMARY KEY (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes)
);

INSERT INTO image_counts (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes, n)
SELECT visibility, publication, is_official, chip_type, status, COALESCE(category, ''), COALESCE(framework, ''),
       applicable_scopes, COUNT(*)
FROM images
GROUP BY visibility, publication, is_official, chip_type, status, COALESCE(category, ''), COALESCE(framework, ''),
         applicable_scopes;

CREATE FUNCTION image_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE image_counts SET n = n - 1
        WHERE visibility = OLD.visibility AND publication = OLD.publication AND is_official = OLD.is_official
          AND chip_type = OLD.chip_type AND status = OLD.status AND category = COALESCE(OLD.category, '')
          AND framework = COALESCE(OLD.framework, '') AND applicable_scopes = OLD.applicable_scopes;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO image_counts (visibility, publication, is_official, chip_type, status, category, framework,
                                  applicable_scopes, n)
        VALUES (NEW.visibility, NEW.publication, NEW.is_official, NEW.chip_type, NEW.status,
                COALESCE(NEW.category, ''), COALESCE(NEW.framework, ''), NEW.applicable_scopes, 1)
        ON CONFLICT (visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes)
        DO UPDATE SET n = image_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER image_counts_insert_delete AFTER INSERT OR DELETE ON images
FOR EACH ROW EXECUTE FUNCTION image_counts_track();

CREATE TRIGGER image_counts_update
AFTER UPDATE OF visibility, publication, is_official, chip_type, status, category, framework, applicable_scopes ON images
FOR EACH ROW
WHEN (OLD.visibility IS DISTINCT FROM NEW.visibility OR OLD.publication IS DISTINCT FROM NEW.publication
      OR OLD.is_official IS DISTINCT FROM NEW.is_official OR OLD.chip_type IS DISTINCT FROM NEW.chip_type
      OR OLD.status IS DISTINCT FROM NEW.status OR OLD.category IS DISTINCT FROM NEW.category
      OR OLD.framework IS DISTINCT FROM NEW.framework OR OLD.applicable_scopes IS DISTINCT FROM NEW.applicable_scopes)
EXECUTE FUNCTION image_counts_track();

-- The grouped view's total without grouping every row: images per repository and how many
-- repositories have any image / any listed (public, online) image; and how many images
-- there are and how many are listed (the unfiltered list's total), kept by a trigger.
CREATE TABLE repositories (
    registry   TEXT   NOT NULL,
    repository TEXT   NOT NULL,
    images     BIGINT NOT NULL,
    listed     BIGINT NOT NULL,
    PRIMARY KEY (registry, repository)
);

CREATE TABLE catalog_totals (
    name TEXT   PRIMARY KEY,   -- repositories | listed_repositories | images | listed_images
    n    BIGINT NOT NULL
);

INSERT INTO repositories (registry, repository, images, listed)
SELECT registry, repository, COUNT(*),
       SUM(CASE WHEN visibility = 'public' AND publication = 'online' THEN 1 ELSE 0 END)
FROM images GROUP BY registry, repository;

INSERT INTO catalog_totals (name, n)
SELECT 'repositories', COUNT(*) FROM repositories WHERE images > 0;

INSERT INTO catalog_totals (name, n)
SELECT 'listed_repositories', COUNT(*) FROM repositories WHERE listed > 0;

INSERT INTO catalog_totals (name, n)
SELECT 'images', COALESCE(SUM(images), 0) FROM repositories;

INSERT INTO catalog_totals (name, n)
SELECT 'listed_images', COALESCE(SUM(listed), 0) FROM repositories;

CREATE FUNCTION repositories_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r repositories%ROWTYPE;
    was_listed BOOLEAN;
    is_listed BOOLEAN;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        was_listed := OLD.visibility = 'public' AND OLD.publication = 'online';
        UPDATE repositories
        SET images = images - 1, listed = listed - CASE WHEN was_listed THEN 1 ELSE 0 END
        WHERE registry = OLD.registry AND repository = OLD.repository
        RETURNING * INTO r;
        IF r.images = 0 THEN
            UPDATE catalog_totals SET n = n - 1 WHERE name = 'repositories';
        END IF;
        IF was_listed AND r.listed = 0 THEN
            UPDATE catalog_totals SET n = n - 1 WHERE name = 'listed_repositories';
        END IF;
        UPDATE catalog_totals SET n = n - 1 WHERE name = 'images';
        IF was_listed THEN
            UPDATE catalog_totals SET n = n - 1 WHERE name = 'listed_images';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        is_listed := NEW.visibility = 'public' AND NEW.publication = 'online';
        INSERT INTO repositories (registry, repository, images, listed)
        VALUES (NEW.registry, NEW.repository, 1, CASE WHEN is_listed THEN 1 ELSE 0 END)
        ON CONFLICT (registry, repository) DO UPDATE
        SET images = repositories.images + 1, listed = repositories.listed + EXCLUDED.listed
        RETURNING * INTO r;
        IF r.images = 1 THEN
            UPDATE catalog_totals SET n = n + 1 WHERE name = 'repositories';
        END IF;
        IF is_listed AND r.listed = 1 THEN
            UPDATE catalog_totals SET n = n + 1 WHERE name = 'listed_repositories';
        END IF;
        UPDATE catalog_totals SET n = n + 1 WHERE name = 'images';
        IF is_listed THEN
            UPDATE catalog_totals SET n = n + 1 WHERE name = 'listed_images';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER repositories_insert_delete AFTER INSERT OR DELETE ON images
FOR EACH ROW EXECUTE FUNCTION repositories_track();

CREATE TRIGGER repositories_update AFTER UPDATE OF registry, repository, visibility, publication ON images
FOR EACH ROW
WHEN (OLD.registry IS DISTINCT FROM NEW.registry OR OLD.repository IS DISTINCT FROM NEW.repository
      OR OLD.visibility IS DISTINCT FROM NEW.visibility OR OLD.publication IS DISTINCT FROM NEW.publication)
EXECUTE FUNCTION repositories_track();

-- A caller's own images: the owner, then the columns that decide whether an image is
-- listed, so that a user's own unlisted images are counted and found from the index alone.
DROP INDEX images_owner;
CREATE INDEX images_owner ON images (owner, visibility, publication, created_at);

-- The `name` filter (ILIKE '%term%' on name or display name) through pg_trgm GIN indexes,
-- when the extension can be created; without it the same query scans, with the same results.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX IF NOT EXISTS images_name_trgm ON images USING gin (name gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS images_display_name_trgm ON images USING gin (display_name gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is unavailable (%): name search scans images', SQLERRM;
END
$$;
