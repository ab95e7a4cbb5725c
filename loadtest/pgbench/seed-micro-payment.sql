-- 1000 users with wallets that never run dry (the script charges them).
INSERT INTO wallets (user_id, balance_cents)
SELECT public.bench_uuid(i), 1000000000000000 FROM generate_series(1, 1000) AS i;
ANALYZE;
