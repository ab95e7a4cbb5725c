-- The stats read model, fed by order events. It is kept per order, not as
-- running totals, so events may arrive in any order and any number of times:
-- a 'cancelled' seen before its 'confirmed' still ends right, and the
-- stats are a query over the facts.
CREATE TABLE user_order_facts (
    order_id    uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    total_cents bigint NOT NULL,
    confirmed   boolean NOT NULL DEFAULT false,
    cancelled   boolean NOT NULL DEFAULT false
);

CREATE INDEX user_order_facts_user ON user_order_facts (user_id);
