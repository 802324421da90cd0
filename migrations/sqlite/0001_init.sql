-- Times are epoch seconds (INTEGER) and ids are TEXT so that one code base
-- runs on SQLite and PostgreSQL through sqlx's Any driver; flags are 0/1.

CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    locale           TEXT NOT NULL,
    email            TEXT NOT NULL,
    email_hash       TEXT NOT NULL,
    status           TEXT NOT NULL,
    channel          TEXT NOT NULL DEFAULT 'portal',
    received_at      INTEGER NOT NULL,
    verified_at      INTEGER,
    paused_seconds   INTEGER NOT NULL DEFAULT 0,
    extension_months INTEGER NOT NULL DEFAULT 0,
    due_date         TEXT NOT NULL,
    due_at           INTEGER NOT NULL,
    token_hash       TEXT,
    reasons          TEXT NOT NULL DEFAULT '[]',
    data             TEXT NOT NULL DEFAULT '{}',
    outcome          TEXT,
    assignee         TEXT,
    closed_at        INTEGER,
    updated_at       INTEGER NOT NULL
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
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL
);
CREATE INDEX codes_by_email ON verification_codes (email_hash, created_at);
CREATE INDEX codes_by_request ON verification_codes (request_id, state);

-- Wrong tries per address across all its requests (the hourly limit).
CREATE TABLE verification_failures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    email_hash  TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX failures_by_email ON verification_failures (email_hash, at);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT,
    at          INTEGER NOT NULL,
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
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    sent_at         INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Demo mode only: mail "delivered" here is shown at /dev/mail.
CREATE TABLE dev_mailbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   TEXT NOT NULL,
    to_addr     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT NOT NULL,
    at          INTEGER NOT NULL
);

CREATE TABLE staff (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    role              TEXT NOT NULL,
    password_hash     TEXT,
    totp_secret       TEXT,
    enrol_token_hash  TEXT,
    enrol_expires_at  INTEGER,
    disabled          INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL
);

CREATE TABLE staff_tokens (
    token_hash  TEXT PRIMARY KEY,
    staff_id    TEXT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
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
    balance_cents INTEGER NOT NULL DEFAULT 0,
    consents      TEXT NOT NULL DEFAULT '{}',
    extra         TEXT NOT NULL DEFAULT '{}',
    updated_at    INTEGER NOT NULL
);

CREATE TABLE customer_orders (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    placed_at    TEXT NOT NULL,
    status       TEXT NOT NULL,
    total_cents  INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, id)
);

CREATE TABLE customer_payments (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    method       TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    collected_at TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, position)
);

CREATE TABLE customer_contacts (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    at           TEXT NOT NULL,
    channel      TEXT NOT NULL,
    summary      TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (customer_id, position)
);

CREATE TABLE customer_ip_log (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    at           TEXT NOT NULL,
    ip           TEXT NOT NULL,
    PRIMARY KEY (customer_id, position)
);
