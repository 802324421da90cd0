-- Authenticators customers enrol for when they lose their mailbox. Portal
-- data keyed by the connector's account id; erased with the account.
CREATE TABLE customer_authenticators (
    account_id   TEXT PRIMARY KEY,
    secret       TEXT NOT NULL,
    last_step    BIGINT NOT NULL DEFAULT 0,
    enrolled_at  BIGINT NOT NULL
);

CREATE TABLE customer_recovery_codes (
    account_id  TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

-- Failed fallback attempts, keyed by a hash of the address or the client.
CREATE TABLE fallback_failures (
    id        BIGSERIAL PRIMARY KEY,
    key_hash  TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX fallback_failures_key ON fallback_failures (key_hash, at);
