-- The staff queue with a million requests (bench/staff.sh): partial indexes
-- over the open cases only (small, and untouched by intake), so the first
-- page, the kind filter and the counts beside the filters read a few
-- thousand index entries instead of the whole table.
CREATE INDEX requests_open_due ON requests (due_at, id) WHERE status IN ('escalated', 'processing');
CREATE INDEX requests_open_kind ON requests (kind, due_at, id) WHERE status IN ('escalated', 'processing');
CREATE INDEX requests_open_counts ON requests (kind, assignee, status, due_at) WHERE status IN ('escalated', 'processing');
-- An explicit status (closed ones too) with a kind.
CREATE INDEX requests_status_kind ON requests (status, kind, due_at, id);
