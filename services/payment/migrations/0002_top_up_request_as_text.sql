-- The top-up request fingerprint becomes JSON text instead of jsonb.
--
-- Why: jsonb cannot hold the `\u0000` escape, yet a body may carry one in a
-- field the API ignores; storing such a body failed the whole top-up with a
-- 500. The text is the parsed body serialised again by the service, which
-- parses it back to compare, so "the same body" still means the same parsed
-- JSON (key order and whitespace do not matter).
ALTER TABLE top_ups ALTER COLUMN request TYPE text USING request::text;
