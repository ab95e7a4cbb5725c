-- Created in every benchmark database before the scripts run: ids for
-- pgbench, which has integer variables only. Inlined by the planner.
CREATE OR REPLACE FUNCTION public.bench_uuid(n bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$;
