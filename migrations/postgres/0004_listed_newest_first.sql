-- The listed images newest first (the portal's usual view) from one index: a page walks it
-- backwards and stops (store.rs gives each arm of a page its own LIMIT on PostgreSQL).
CREATE INDEX IF NOT EXISTS images_listed_created_at ON images (created_at, id)
WHERE visibility = 'public' AND publication = 'online';
