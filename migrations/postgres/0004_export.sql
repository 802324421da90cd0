-- One encrypted archive per export request; the file is deleted when the
-- download expires, the row stays as the record that it was.
CREATE TABLE exports (
    request_id  TEXT PRIMARY KEY,
    file_name   TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX exports_expiry ON exports (deleted_at, expires_at);
