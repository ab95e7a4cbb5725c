-- The catalog, orders and idempotency keys. The order service is the only
-- reader and writer.

CREATE TABLE products (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents > 0)
);

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected', 'failed', 'cancelled')),
    -- The priced lines, a snapshot taken at placement: [{product_id, name,
    -- unit_price_cents, quantity}]. Immutable, always read whole.
    items            jsonb NOT NULL,
    total_cents      bigint NOT NULL CHECK (total_cents > 0),
    -- Copied from the user at placement.
    ship_name        text NOT NULL,
    ship_line1       text NOT NULL,
    ship_city        text NOT NULL,
    ship_postal_code text NOT NULL,
    ship_country     text NOT NULL,
    rejection_reason text CHECK (rejection_reason IN ('insufficient_funds', 'payment_unavailable')),
    refund_status    text CHECK (refund_status IN ('pending', 'refunded')),
    -- A failed order owes the payment side a void (Refund) until answered:
    -- a durable command, drained by the sweeper.
    void_status      text CHECK (void_status IN ('owed', 'done')),
    created_at       timestamptz NOT NULL,
    -- Reset by every change and by every sweeper claim.
    updated_at       timestamptz NOT NULL,
    CHECK ((status = 'cancelled') = (refund_status IS NOT NULL))
);

-- Listing a user's orders, newest first.
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);
-- What the sweeper scans.
CREATE INDEX orders_pending ON orders (updated_at) WHERE status = 'pending';
CREATE INDEX orders_void_owed ON orders (updated_at) WHERE void_status = 'owed';

CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL,
    key             text NOT NULL,
    -- The request body, parsed and serialised again (JSON text, not jsonb:
    -- jsonb refuses a `\u0000` escape, which a client may send in a field
    -- the API ignores). Compared after parsing, so key order and white
    -- space do not matter.
    request         text NOT NULL,
    order_id        uuid NOT NULL,
    -- The first answer, once decided: status and order snapshot.
    response_status integer,
    response_body   jsonb,
    -- The request holding the key; after this, another may take over.
    lease_until     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
