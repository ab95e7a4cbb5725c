-- The transactional outbox: an event row commits in the same transaction as
-- the state change it announces, so an event exists if and only if its
-- change does. The relay publishes unpublished rows and marks them; rows are
-- deleted after a retention period.
CREATE TABLE outbox (
    -- Fixed when the row is written; consumers deduplicate on it.
    event_id        uuid PRIMARY KEY,
    -- Routing key, e.g. 'order.confirmed'.
    event_type      text NOT NULL,
    -- The whole envelope {event_id, occurred_at, type, payload}.
    body            jsonb NOT NULL,
    -- W3C trace context (traceparent, tracestate) of the writing request.
    trace_context   jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    published_at    timestamptz
);

-- What the relay scans: only unpublished rows, oldest first.
CREATE INDEX outbox_pending ON outbox (next_attempt_at, created_at) WHERE published_at IS NULL;
-- What the cleanup scans.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
