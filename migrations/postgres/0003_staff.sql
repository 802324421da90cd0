-- Staff workspace (issue 7): enrolment, login throttling, TOTP replay
-- protection, recovery codes, case notes, tamper-evident audit chain.

ALTER TABLE staff ADD COLUMN totp_pending TEXT;
ALTER TABLE staff ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE staff ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE staff ADD COLUMN last_failed_at BIGINT;
ALTER TABLE staff ADD COLUMN locked_until BIGINT;
ALTER TABLE staff ADD COLUMN enrolled_at BIGINT;

CREATE TABLE staff_recovery_codes (
    staff_id   TEXT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (staff_id, code_hash)
);

-- Free text written by staff (notes, reasons, replies). Kept apart from the
-- audit trail so it is purged with its request; audit events point here.
CREATE TABLE case_notes (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX case_notes_by_request ON case_notes (request_id, at);

-- Hash chain: each event carries the hash of the one before it.
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;

-- The queue across all open statuses, and the assignee filter.
CREATE INDEX requests_due ON requests (due_at, id);
CREATE INDEX requests_assignee ON requests (assignee, due_at, id);
