-- Wallets, the ledger, charges and top-ups. The payment service is the only
-- reader and writer. Invariant: for every user,
--   balance = sum(top_up) - sum(charge) + sum(refund) over ledger_entries,
-- and no balance is ever negative (enforced below, as a last line).

CREATE TABLE wallets (
    user_id       uuid PRIMARY KEY,
    balance_cents bigint NOT NULL DEFAULT 0 CONSTRAINT wallets_balance_not_negative CHECK (balance_cents >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('top_up', 'charge', 'refund')),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    -- The order a charge or refund belongs to; NULL for top-ups.
    order_id     uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'top_up') = (order_id IS NULL))
);

-- At most one charge and one refund per order, whatever the code does.
CREATE UNIQUE INDEX ledger_one_per_order_and_kind ON ledger_entries (order_id, kind) WHERE order_id IS NOT NULL;
-- The ledger page query: newest first per user.
CREATE INDEX ledger_by_user ON ledger_entries (user_id, created_at DESC, id DESC);

-- The first (final) outcome of Charge per order. A row with NULL user and
-- amount is a tombstone: a Refund came first, any later Charge is voided.
CREATE TABLE charges (
    order_id      uuid PRIMARY KEY,
    user_id       uuid,
    amount_cents  bigint,
    outcome       text NOT NULL CHECK (outcome IN ('charged', 'insufficient_funds', 'voided')),
    -- The wallet balance right after the outcome was decided (replayed).
    balance_after bigint NOT NULL,
    refunded_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Top-ups with their idempotency keys and request fingerprints.
CREATE TABLE top_ups (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    idempotency_key text,
    -- The request body as parsed JSON: the same key with another body is
    -- refused.
    request         jsonb NOT NULL,
    amount_cents    bigint NOT NULL,
    balance_after   bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX top_ups_key ON top_ups (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
