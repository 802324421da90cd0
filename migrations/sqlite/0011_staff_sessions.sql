-- Staff sessions and login failures (issue 13, items 4 and 8).

-- The session cookie carries the generation it was issued under; logout,
-- a login reset and disabling raise it, so a copied cookie stops working
-- although the cookie itself (signed, client-side) is still intact.
ALTER TABLE staff ADD COLUMN session_gen INTEGER NOT NULL DEFAULT 0;

-- Login failures per address, keyed by a keyed hash of the address typed,
-- whether or not a member has it: a failure for an unknown address costs
-- the same write as one for a member, so timing does not tell them apart.
CREATE TABLE staff_login_failures (
    key_hash        TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failed_at  INTEGER NOT NULL,
    locked_until    INTEGER
);
-- Forgetting old failures scans by time.
CREATE INDEX staff_login_failures_by_time ON staff_login_failures (last_failed_at);

-- Replaced by staff_login_failures.
ALTER TABLE staff DROP COLUMN failed_logins;
ALTER TABLE staff DROP COLUMN last_failed_at;
ALTER TABLE staff DROP COLUMN locked_until;
