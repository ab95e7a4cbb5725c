-- Top-up keys move to the platform's `idempotency` table (platform
-- migration 0003), the same facility order placement uses. Existing keys
-- stay valid: each keeps its request and its answer ({id, amount_cents,
-- balance_cents}) as the typed outcome. A top-up is one transaction, so its
-- key never outlives an unfinished request: the lease is already over.
INSERT INTO idempotency (user_id, operation, key, request, resource_id, outcome, lease_until, created_at)
SELECT user_id, 'wallet.top_up', idempotency_key, request, id,
       jsonb_build_object('id', id, 'amount_cents', amount_cents, 'balance_cents', balance_after),
       created_at, created_at
FROM top_ups
WHERE idempotency_key IS NOT NULL;

DROP INDEX top_ups_key;
ALTER TABLE top_ups DROP COLUMN idempotency_key, DROP COLUMN request;
