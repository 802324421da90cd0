-- Events out (CONTRACT.md, "Events out"): each receiver reads the audit
-- trail from its own position; what it must hear goes to a delivery outbox,
-- retried until the receiver takes it.
CREATE TABLE webhook_cursors (
    receiver TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    receiver    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    -- The body as sent on every attempt (no personal data by construction).
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);

-- When the request was first seen past its legal deadline (the
-- request.overdue event, once, whichever instance sees it).
ALTER TABLE requests ADD COLUMN overdue_noted_at BIGINT;
CREATE INDEX requests_overdue_unnoted ON requests (due_at)
    WHERE overdue_noted_at IS NULL
      AND status IN ('verified', 'processing', 'escalated', 'awaiting_new_email');
