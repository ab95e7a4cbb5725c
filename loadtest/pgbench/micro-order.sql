-- The order database's share of one placed order in the microservices: five transactions.
-- Generated from the stores' SQL; see README.md in this folder for what differs and why.
\set u random(1, 1000)
\set o random(1, 281474976710655)
\set e random(1, 281474976710655)
\set l random(1, 281474976710655)
-- 1. find_key: is the Idempotency-Key known? (a miss; autocommit)
SELECT request, resource_id, outcome, lease_until < now(), generation FROM idempotency WHERE user_id = bench_uuid(:u) AND operation = 'orders.place' AND key = 'k' || :o::text;
-- 2. The catalog: prices come from it, never from the client (autocommit).
SELECT id, name, price_cents FROM products ORDER BY id;
-- (The user lookup is a Redis cache hit: no SQL.)
-- 3. create: the key (leased) and the pending order, in one transaction.
BEGIN;
INSERT INTO idempotency (user_id, operation, key, request, resource_id, lease_until) VALUES (bench_uuid(:u), 'orders.place', 'k' || :o::text, '{"items": [{"product_id": "sku-coffee", "quantity": 2}]}', bench_uuid(:o), now() + make_interval(secs => 10)) ON CONFLICT DO NOTHING;
INSERT INTO orders (id, user_id, status, items, total_cents, ship_name, ship_line1, ship_city, ship_postal_code, ship_country, created_at, updated_at) VALUES (bench_uuid(:o), bench_uuid(:u), 'pending', '[{"product_id": "sku-coffee", "name": "Coffee beans, 1 kg", "unit_price_cents": 1890, "quantity": 2}]', 3780, 'Load User', '1 Load Street', 'Berlin', '10115', 'DE', now(), now());
COMMIT;
-- 5. settle: the transition the use case decided (confirmed) if the order is still pending, its event into the outbox (+ NOTIFY), the key's typed outcome.
BEGIN;
UPDATE orders SET status = 'confirmed', rejection_reason = NULL, refund_status = NULL, void_status = NULL, updated_at = now() WHERE id = bench_uuid(:o) AND status = 'pending';
INSERT INTO outbox (event_id, event_type, body, trace_context) VALUES (bench_uuid(:e), 'order.confirmed', jsonb_build_object('event_id', bench_uuid(:e), 'occurred_at', now(), 'type', 'order.confirmed', 'payload', jsonb_build_object('order_id', bench_uuid(:o), 'user_id', bench_uuid(:u), 'total_cents', 3780)), '{}');
SELECT pg_notify('outbox_public', '');
UPDATE idempotency SET outcome = jsonb_build_object('outcome', 'created', 'order', jsonb_build_object('id', bench_uuid(:o), 'status', 'confirmed', 'items', '[{"product_id": "sku-coffee", "name": "Coffee beans, 1 kg", "unit_price_cents": 1890, "quantity": 2}]'::jsonb, 'total_cents', 3780, 'currency', 'EUR', 'ship_to', jsonb_build_object('name', 'Load User', 'line1', '1 Load Street', 'city', 'Berlin', 'postal_code', '10115', 'country', 'DE'), 'rejection_reason', NULL, 'refund_status', NULL, 'created_at', now(), 'updated_at', now())) WHERE user_id = bench_uuid(:u) AND operation = 'orders.place' AND key = 'k' || :o::text AND outcome IS NULL;
COMMIT;
-- 6. The outbox relay's pass: claim unpublished rows (SKIP LOCKED), publish, mark them published.
BEGIN;
SELECT event_id, event_type, body, trace_context, attempts FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now() ORDER BY next_attempt_at, created_at LIMIT 100 FOR UPDATE SKIP LOCKED;
UPDATE outbox SET published_at = now(), last_error = NULL WHERE event_id IN (SELECT event_id FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now() ORDER BY next_attempt_at, created_at LIMIT 100 FOR UPDATE SKIP LOCKED);
COMMIT;
