-- Scheduled anonymisation of inactive accounts (company.inactivity).
-- The built-in store's last sign of life besides orders: a "keep my
-- account" click.
ALTER TABLE customers ADD COLUMN active_at INTEGER;

-- One row per account that was warned: when, when it will be anonymised,
-- and the hashed one-click "keep my account" token. No address is kept.
CREATE TABLE inactivity_notices (
    system        TEXT NOT NULL,
    account       TEXT NOT NULL,
    -- warned | kept | anonymised | blocked
    status        TEXT NOT NULL,
    warned_at     INTEGER NOT NULL,
    anonymise_at  INTEGER NOT NULL,
    keep_hash     TEXT NOT NULL,
    checked_at    INTEGER NOT NULL,
    request_id    TEXT,
    PRIMARY KEY (system, account)
);
CREATE UNIQUE INDEX inactivity_keep ON inactivity_notices (keep_hash);

-- Background jobs that must run on one instance at a time.
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
