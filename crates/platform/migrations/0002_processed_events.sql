-- The idempotent consumer's memory: a consumer inserts the event id in the
-- same transaction as the event's effect, so an effect is applied at most
-- once however often the event is delivered.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
