-- The console's imageAddress as its client wrote it (`registry/image:tag`), shown back
-- unchanged; registry, repository and tag keep the normalized form that matching uses.
ALTER TABLE images ADD COLUMN image_address TEXT;

-- Every framework of an image (the primary `framework` and the `frameworks` list), lower
-- case, one row each, so the framework filter finds an image by any of them through an index.
-- Triggers keep it, whichever statement writes the image.
CREATE TABLE image_frameworks (
    image_id  INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    framework TEXT    NOT NULL,
    PRIMARY KEY (framework, image_id)
);
CREATE INDEX image_frameworks_image ON image_frameworks (image_id);

INSERT OR IGNORE INTO image_frameworks (image_id, framework)
SELECT images.id, lower(j.value) FROM images, json_each(images.frameworks) j
UNION
SELECT id, lower(framework) FROM images WHERE framework IS NOT NULL;

CREATE TRIGGER image_frameworks_insert AFTER INSERT ON images
BEGIN
    INSERT OR IGNORE INTO image_frameworks (image_id, framework)
    SELECT new.id, lower(value) FROM json_each(new.frameworks)
    UNION
    SELECT new.id, lower(new.framework) WHERE new.framework IS NOT NULL;
END;

CREATE TRIGGER image_frameworks_update AFTER UPDATE OF framework, frameworks ON images
BEGIN
    DELETE FROM image_frameworks WHERE image_id = new.id;
    INSERT OR IGNORE INTO image_frameworks (image_id, framework)
    SELECT new.id, lower(value) FROM json_each(new.frameworks)
    UNION
    SELECT new.id, lower(new.framework) WHERE new.framework IS NOT NULL;
END;

CREATE TRIGGER image_frameworks_delete AFTER DELETE ON images
BEGIN
    DELETE FROM image_frameworks WHERE image_id = old.id;
END;

-- Settings the components keep at run time: `official_registry` is the registry host the
-- official images were last moved to (the configured Harbor's, see migrations::ensure_for).
CREATE TABLE catalog_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
