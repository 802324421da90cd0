-- Every state has a way out: a request still waiting for its code gets one
-- reminder (recorded here so it goes once, whichever instance sweeps).
ALTER TABLE requests ADD COLUMN reminded_at INTEGER;
