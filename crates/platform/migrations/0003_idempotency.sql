-- Idempotency keys, one table per area (each area's schema gets it from
-- the platform's migrations): a key is scoped per user and operation
-- (`orders.place`, `wallet.top_up`, ...), remembers the request it was
-- first used with and, once decided, the first request's typed outcome,
-- which a retry with the same key gets again (docs/api.md, Idempotency).
CREATE TABLE idempotency (
    user_id     uuid NOT NULL,
    operation   text NOT NULL,
    key         text NOT NULL,
    -- The request body, parsed and serialised again (JSON text, not jsonb:
    -- jsonb refuses a `\u0000` escape, which a client may send in a field
    -- the API ignores). Compared after parsing.
    request     text NOT NULL,
    -- What the first request created (an order), so a request that takes
    -- the key over resumes it instead of creating another.
    resource_id uuid,
    -- The first request's outcome once decided, as the area's own typed
    -- value (serde JSON); rendered by the HTTP edge on every replay.
    outcome     jsonb,
    -- The request holding the key; after this, another may take it over.
    lease_until timestamptz NOT NULL,
    -- Bumped by every takeover: a holder that lost its lease can tell.
    generation  integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, operation, key)
);

-- For a cleanup of keys older than their guaranteed 24 h.
CREATE INDEX idempotency_age ON idempotency (created_at);
