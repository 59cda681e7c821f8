-- Imported images are shared copies: the importer is recorded in created_by and must not
-- own the row (an owner may rename, hide or delete it for everyone). Rows imported before
-- this migration had the importer as owner; clear it.
UPDATE images SET owner = NULL WHERE origin = 'import';
