-- The catalog's revision: a counter that moves with every change that can change a list
-- (an image's row, its scopes, its scan's severity), so that a list's entity tag can be
-- checked without reading a page (domain/src/conditional.rs). It is read before the page,
-- so a tag never names content older than its revision.
INSERT INTO catalog_totals (name, n) VALUES ('revision', 0) ON CONFLICT (name) DO NOTHING;

-- Moved once per transaction, at its commit: deferred triggers hold the row's lock only from
-- the commit's start (no lock taken mid-transaction, so no deadlock with another writer), and
-- the transaction-local flag keeps a bulk load from writing the row once per image.
CREATE FUNCTION catalog_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('berth.catalog_revision_moved', true) IS DISTINCT FROM 'yes' THEN
        UPDATE catalog_totals SET n = n + 1 WHERE name = 'revision';
        PERFORM set_config('berth.catalog_revision_moved', 'yes', true);
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER catalog_revision_images AFTER INSERT OR UPDATE OR DELETE ON images
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_revision_bump();

CREATE CONSTRAINT TRIGGER catalog_revision_scopes AFTER INSERT OR DELETE ON image_scopes
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_revision_bump();

CREATE CONSTRAINT TRIGGER catalog_revision_scans AFTER INSERT OR UPDATE OF scan_severity ON image_facts
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_revision_bump();
