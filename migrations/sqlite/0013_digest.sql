-- The daily digest to the privacy address: one row per local day it went
-- out, so several instances send it once.
CREATE TABLE digests (
    day     TEXT PRIMARY KEY,
    sent_at INTEGER NOT NULL
);
