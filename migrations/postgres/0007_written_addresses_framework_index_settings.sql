-- The console's imageAddress as its client wrote it (`registry/image:tag`), shown back
-- unchanged; registry, repository and tag keep the normalized form that matching uses.
ALTER TABLE images ADD COLUMN image_address TEXT;

-- Every framework of an image (the primary `framework` and the `frameworks` list), lower
-- case, one row each, so the framework filter finds an image by any of them through an index.
-- A trigger keeps it, whichever statement writes the image.
CREATE TABLE image_frameworks (
    image_id  BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    framework TEXT   NOT NULL,
    PRIMARY KEY (framework, image_id)
);
CREATE INDEX image_frameworks_image ON image_frameworks (image_id);

INSERT INTO image_frameworks (image_id, framework)
SELECT images.id, lower(j.value) FROM images, json_array_elements_text(images.frameworks::json) AS j (value)
UNION
SELECT id, lower(framework) FROM images WHERE framework IS NOT NULL
ON CONFLICT DO NOTHING;

CREATE FUNCTION image_frameworks_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM image_frameworks WHERE image_id = NEW.id;
    END IF;
    INSERT INTO image_frameworks (image_id, framework)
    SELECT NEW.id, lower(j.value) FROM json_array_elements_text(NEW.frameworks::json) AS j (value)
    UNION
    SELECT NEW.id, lower(NEW.framework) WHERE NEW.framework IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER image_frameworks_insert AFTER INSERT ON images
FOR EACH ROW EXECUTE FUNCTION image_frameworks_track();

CREATE TRIGGER image_frameworks_update AFTER UPDATE OF framework, frameworks ON images
FOR EACH ROW EXECUTE FUNCTION image_frameworks_track();

-- Settings the components keep at run time: `official_registry` is the registry host the
-- official images were last moved to (the configured Harbor's, see migrations::ensure_for).
CREATE TABLE catalog_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
