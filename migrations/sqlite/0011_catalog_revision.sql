-- The catalog's revision: a counter that moves with every change that can change a list
-- (an image's row, its scopes, its scan's severity), so that a list's entity tag can be
-- checked without reading a page (domain/src/conditional.rs). It is read before the page,
-- so a tag never names content older than its revision.
INSERT INTO catalog_totals (name, n) VALUES ('revision', 0) ON CONFLICT (name) DO NOTHING;

-- An image inserted or deleted: the repositories triggers already update the 'images' total;
-- the same statement moves the revision (a connection parses every trigger with the schema,
-- so one trigger fewer is cheaper on a fresh connection than one more).
DROP TRIGGER repositories_insert;
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
    UPDATE catalog_totals SET n = n + 1 WHERE name IN ('images', 'revision');
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'listed_images'
      AND NEW.visibility = 'public' AND NEW.publication = 'online';
END;
DROP TRIGGER repositories_delete;
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
    -- 'images' down by one, 'revision' up by one.
    UPDATE catalog_totals SET n = n + (name = 'revision') - (name = 'images')
    WHERE name IN ('images', 'revision');
    UPDATE catalog_totals SET n = n - 1 WHERE name = 'listed_images'
      AND OLD.visibility = 'public' AND OLD.publication = 'online';
END;

-- Any change of an image's row (any column may be shown in a list).
CREATE TRIGGER catalog_revision_images AFTER UPDATE ON images
BEGIN
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'revision';
END;

-- The scope filter reads image_scopes; the scan filter image_facts.scan_severity. Their rows
-- go when their image does (which moves the revision already).
CREATE TRIGGER catalog_revision_scopes_insert AFTER INSERT ON image_scopes
BEGIN
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'revision';
END;
CREATE TRIGGER catalog_revision_scopes_delete AFTER DELETE ON image_scopes
BEGIN
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'revision';
END;
CREATE TRIGGER catalog_revision_scans_insert AFTER INSERT ON image_facts
WHEN NEW.scan_severity IS NOT NULL
BEGIN
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'revision';
END;
CREATE TRIGGER catalog_revision_scans_update AFTER UPDATE OF scan_severity ON image_facts
WHEN OLD.scan_severity IS NOT NEW.scan_severity
BEGIN
    UPDATE catalog_totals SET n = n + 1 WHERE name = 'revision';
END;
