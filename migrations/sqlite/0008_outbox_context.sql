-- Mail rendered when it is sent, not when it is queued. A row with a
-- context has empty subject and bodies: the worker renders `template` with
-- this JSON (which holds the language as `lang`) at send time. Rows queued
-- before this migration keep their rendered bodies and no context.
-- Why: intake spent a tenth of its CPU rendering the code mail, and the
-- rendered text and HTML were about half of the bytes each request wrote.
ALTER TABLE outbox ADD COLUMN context TEXT;
