-- The user database's share of one placed order in the microservices: the consumer of order.confirmed, one transaction.
-- Generated from the stores' SQL; see README.md in this folder for what differs and why.
\set u random(1, 1000)
\set o random(1, 281474976710655)
\set e random(1, 281474976710655)
\set l random(1, 281474976710655)
-- 7. The user area's consumer of order.confirmed: the processed event and the stats fact, in one transaction.
BEGIN;
INSERT INTO processed_events (consumer, event_id) VALUES ('user.order-events', bench_uuid(:e)) ON CONFLICT DO NOTHING;
INSERT INTO user_order_facts (order_id, user_id, total_cents, confirmed, cancelled) VALUES (bench_uuid(:o), bench_uuid(:u), 3780, true, false) ON CONFLICT (order_id) DO UPDATE SET confirmed = user_order_facts.confirmed OR EXCLUDED.confirmed, cancelled = user_order_facts.cancelled OR EXCLUDED.cancelled;
COMMIT;
