-- Erasure keeps the account as a stub so that invoices (7 years, bookkeeping
-- law) still add up; these columns say when and why.
ALTER TABLE customers ADD COLUMN erased_at INTEGER;
ALTER TABLE customer_orders ADD COLUMN retention_reason TEXT;
ALTER TABLE customer_payments ADD COLUMN retention_reason TEXT;

-- Once the mail server accepted this mail, forget the recipient: the proof of
-- erasure is the last thing sent to an erased address.
ALTER TABLE outbox ADD COLUMN forget_address INTEGER NOT NULL DEFAULT 0;

-- Work for staff that is not a customer request of its own: the other
-- systems to clean after an erasure (Art. 19) or to add to an export.
CREATE TABLE staff_tasks (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    checklist   TEXT NOT NULL,
    status      TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER,
    done_by     TEXT
);
CREATE INDEX staff_tasks_open ON staff_tasks (status, due_at);
CREATE INDEX staff_tasks_request ON staff_tasks (request_id);

-- Tries at stating postcode and house number; reserved before checking so
-- that parallel submits cannot exceed the limit.
ALTER TABLE requests ADD COLUMN knowledge_attempts INTEGER NOT NULL DEFAULT 0;
