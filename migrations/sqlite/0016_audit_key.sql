-- The audit chain is keyed from here on (HMAC under a key derived from
-- PORTAL_SECRET_KEY, version 2). Events already written keep their plain
-- SHA-256 hashes (version 1) and still verify; `audit verify` accepts them
-- only before the first keyed event. New events always name version 2.
-- SQLite cannot drop the default afterwards as PostgreSQL does: an older
-- process still writing to the file after this one started would append
-- unkeyed events that `audit verify` calls a break, so stop every older
-- process before starting this version.
ALTER TABLE audit_events ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
