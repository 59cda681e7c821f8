-- SQLite has had this index since 0003 (images_listed_created_at); nothing to do.
SELECT 1;
