-- The payment database's share of one placed order in the microservices: Charge, one transaction.
-- Generated from the stores' SQL; see README.md in this folder for what differs and why.
\set u random(1, 1000)
\set o random(1, 281474976710655)
\set e random(1, 281474976710655)
\set l random(1, 281474976710655)
-- 4. Charge: lock the wallet, an earlier outcome?, move the money, the ledger entry, the outcome.
BEGIN;
SELECT balance_cents FROM wallets WHERE user_id = bench_uuid(:u) FOR UPDATE;
SELECT order_id, user_id, amount_cents, outcome, balance_after, refunded_at IS NOT NULL AS refunded FROM charges WHERE order_id = bench_uuid(:o);
UPDATE wallets SET balance_cents = balance_cents + -3780, updated_at = now() WHERE user_id = bench_uuid(:u) RETURNING balance_cents;
INSERT INTO ledger_entries (id, user_id, kind, amount_cents, order_id) VALUES (bench_uuid(:l), bench_uuid(:u), 'charge', 3780, bench_uuid(:o));
INSERT INTO charges (order_id, user_id, amount_cents, outcome, balance_after) VALUES (bench_uuid(:o), bench_uuid(:u), 3780, 'charged', 1000);
COMMIT;
