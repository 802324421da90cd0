-- The audit chain is keyed from here on (HMAC under a key derived from
-- PORTAL_SECRET_KEY, version 2). Events already written keep their plain
-- SHA-256 hashes (version 1) and still verify; `audit verify` accepts them
-- only before the first keyed event. New events always name version 2.
ALTER TABLE audit_events ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 1;
-- An older instance still running during a rolling upgrade does not name
-- the version: its audit write fails here rather than appending an
-- unkeyed event after keyed ones, which `audit verify` would rightly call
-- a break.
ALTER TABLE audit_events ALTER COLUMN hash_version DROP DEFAULT;
