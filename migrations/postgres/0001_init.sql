-- PostgreSQL twin of migrations/sqlite: keep the two in step.

CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    locale           TEXT NOT NULL,
    email            TEXT NOT NULL,
    email_hash       TEXT NOT NULL,
    status           TEXT NOT NULL,
    channel          TEXT NOT NULL DEFAULT 'portal',
    received_at      BIGINT NOT NULL,
    verified_at      BIGINT,
    paused_seconds   BIGINT NOT NULL DEFAULT 0,
    extension_months BIGINT NOT NULL DEFAULT 0,
    due_date         TEXT NOT NULL,
    due_at           BIGINT NOT NULL,
    token_hash       TEXT,
    reasons          TEXT NOT NULL DEFAULT '[]',
    data             TEXT NOT NULL DEFAULT '{}',
    outcome          TEXT,
    assignee         TEXT,
    closed_at        BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX requests_queue ON requests (status, due_at, id);
CREATE INDEX requests_email_hash ON requests (email_hash);
CREATE INDEX requests_closed ON requests (closed_at);
CREATE INDEX requests_received ON requests (status, received_at);

CREATE TABLE verification_codes (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    email_hash  TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    state       TEXT NOT NULL
);
CREATE INDEX codes_by_email ON verification_codes (email_hash, created_at);
CREATE INDEX codes_by_request ON verification_codes (request_id, state);

-- Wrong tries per address across all its requests (the hourly limit).
CREATE TABLE verification_failures (
    id          BIGSERIAL PRIMARY KEY,
    email_hash  TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX failures_by_email ON verification_failures (email_hash, at);

CREATE TABLE audit_events (
    seq         BIGSERIAL PRIMARY KEY,
    request_id  TEXT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_request ON audit_events (request_id, seq);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    request_id      TEXT,
    to_addr         TEXT,
    template        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    sealed_secret   TEXT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Demo mode only: mail "delivered" here is shown at /dev/mail.
CREATE TABLE dev_mailbox (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   TEXT NOT NULL,
    to_addr     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT NOT NULL,
    at          BIGINT NOT NULL
);

CREATE TABLE staff (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    role              TEXT NOT NULL,
    password_hash     TEXT,
    totp_secret       TEXT,
    enrol_token_hash  TEXT,
    enrol_expires_at  BIGINT,
    disabled          BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL
);

CREATE TABLE staff_tokens (
    token_hash  TEXT PRIMARY KEY,
    staff_id    TEXT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- The built-in customer store (filled by `accounts import` and `demo`).
CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    external_id   TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    locale        TEXT,
    postcode      TEXT NOT NULL DEFAULT '',
    house_number  TEXT NOT NULL DEFAULT '',
    phone         TEXT,
    iban          TEXT,
    created_at    TEXT,
    balance_cents BIGINT NOT NULL DEFAULT 0,
    consents      TEXT NOT NULL DEFAULT '{}',
    extra         TEXT NOT NULL DEFAULT '{}',
    updated_at    BIGINT NOT NULL
);

CREATE TABLE customer_orders (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    placed_at    TEXT NOT NULL,
    status       TEXT NOT NULL,
    total_cents  BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, id)
);

CREATE TABLE customer_payments (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    method       TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    collected_at TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, position)
);

CREATE TABLE customer_contacts (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    at           TEXT NOT NULL,
    channel      TEXT NOT NULL,
    summary      TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, position)
);

CREATE TABLE customer_ip_log (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    at           TEXT NOT NULL,
    ip           TEXT NOT NULL,
    PRIMARY KEY (customer_id, position)
);
