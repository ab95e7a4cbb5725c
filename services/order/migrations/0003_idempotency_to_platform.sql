-- Idempotency keys move to the platform's `idempotency` table (platform
-- migration 0003), shared in shape with top-ups. Existing keys stay valid:
-- each keeps its request, its order, its lease and its first answer, which
-- becomes the typed outcome (`created` for a 201, `payment_unavailable`
-- for a 503) with the order as the answer showed it.
INSERT INTO idempotency (user_id, operation, key, request, resource_id, outcome, lease_until, created_at)
SELECT user_id, 'orders.place', key, request, order_id,
       CASE
           WHEN response_status IS NULL THEN NULL
           ELSE jsonb_build_object(
               'outcome', CASE WHEN response_status = 503 THEN 'payment_unavailable' ELSE 'created' END,
               'order', response_body || jsonb_build_object('user_id', user_id))
       END,
       lease_until, created_at
FROM idempotency_keys;

DROP TABLE idempotency_keys;
