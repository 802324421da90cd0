-- What each of the company's systems has done for a request (erasure,
-- email change, objection): one row per system and operation, retried
-- with backoff until done, or handed to staff.
CREATE TABLE connector_steps (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    system      TEXT NOT NULL,
    operation   TEXT NOT NULL,
    -- waiting (for the primary) | pending | polling | done | skipped | failed | manual
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    -- The last failure in staff's words; never personal data.
    error       TEXT,
    -- What the call needs (the address it is about); cleared once done.
    params      TEXT,
    -- The system's answer (an erasure receipt), JSON.
    result      TEXT,
    -- The system's own account id, shown on the case (not personal data).
    account     TEXT,
    done_by     TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (request_id, system, operation)
);
CREATE INDEX connector_steps_due ON connector_steps (status, next_at);

-- Keyed hashes (never the address) of what was erased, so an import or a
-- connector never brings an erased customer back.
CREATE TABLE erased_subjects (
    hash       TEXT PRIMARY KEY,
    system     TEXT NOT NULL,
    request_id TEXT,
    erased_at  INTEGER NOT NULL
);
