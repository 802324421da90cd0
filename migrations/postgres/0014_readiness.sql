-- One row that /readyz rewrites in a transaction: the probe proves that a
-- write commits, not only that a connection opens.
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
