-- Image names and references are unique per owner, not across all users: a user's private
-- image named like an import (or like another user's image) must not block it. Shared rows
-- (imports: no owner) are one scope, each owner another.
ALTER TABLE images DROP CONSTRAINT images_name_key;
DROP INDEX images_reference;
CREATE UNIQUE INDEX images_owner_name ON images ((COALESCE(owner, '')), name);
CREATE UNIQUE INDEX images_owner_reference ON images ((COALESCE(owner, '')), registry, repository, tag);
-- The lookups and orders the old unique indexes served.
CREATE INDEX images_name ON images (name);
CREATE INDEX images_reference ON images (registry, repository, tag);
