-- Export jobs survive a restart: a job is stored in the transaction that
-- moves its request to `processing`, and a worker on any instance leases
-- it. A lease that runs out (the process died) lets another worker take it.
-- The row goes when the job ends (archive ready, or handed to staff); the
-- audit trail keeps the history.
CREATE TABLE export_jobs (
    request_id      TEXT PRIMARY KEY,
    -- The account the customer proved at submit.
    account_id      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    -- The holder's token; also names the chunks that attempt writes.
    lease           TEXT,
    -- A category, never a message that could quote personal data.
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX export_jobs_due ON export_jobs (next_attempt_at);

-- Encrypted archives live in the database so every instance can serve them:
-- the PPX1 ciphertext cut into chunks of about 1 MiB, read back one at a time.
CREATE TABLE export_chunks (
    archive_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (archive_id, seq)
);

-- 'file': made before this migration, a file under PORTAL_EXPORT_DIR named
-- file_name; 'database': the chunks whose archive_id is file_name.
ALTER TABLE exports ADD COLUMN storage TEXT NOT NULL DEFAULT 'file';
