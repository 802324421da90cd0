-- Who holds a mail's lease. Marking a mail sent, deferred or held checks
-- this token, so a worker whose lease ran out (and was taken over by
-- another instance) cannot overwrite the new holder's outcome, and a worker
-- renews it before each send, so two instances never send one mail twice.
ALTER TABLE outbox ADD COLUMN lease_token TEXT;
-- The oldest queued mail (a metric and an alert) and held mail are found
-- by status and age.
CREATE INDEX outbox_status_created ON outbox (status, created_at);
