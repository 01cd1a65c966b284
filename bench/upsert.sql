-- PostgreSQL's own upsert rate for rows like Tally's (docs/scaling.md):
--   psql -X "$DATABASE_URL" -f bench/upsert.sql
-- 200,000 random UUID keys in key order, one transaction each, first as new keys (insert
-- path) then again (update path: the steady state of a counter). Drops its own table.
\timing on
DROP TABLE IF EXISTS bench_upsert_counts;
CREATE TABLE bench_upsert_counts (key uuid PRIMARY KEY, total numeric NOT NULL, updated_at timestamptz NOT NULL);
CREATE TEMP TABLE bench_upsert_keys AS SELECT gen_random_uuid() AS key FROM generate_series(1, 200000) ORDER BY 1;
\echo insert path: 200000 new keys
BEGIN;
INSERT INTO bench_upsert_counts AS c (key, total, updated_at) SELECT key, 1, now() FROM bench_upsert_keys ORDER BY key
  ON CONFLICT (key) DO UPDATE SET total = c.total + EXCLUDED.total, updated_at = EXCLUDED.updated_at;
COMMIT;
\echo update path: the same 200000 keys again
BEGIN;
INSERT INTO bench_upsert_counts AS c (key, total, updated_at) SELECT key, 1, now() FROM bench_upsert_keys ORDER BY key
  ON CONFLICT (key) DO UPDATE SET total = c.total + EXCLUDED.total, updated_at = EXCLUDED.updated_at;
COMMIT;
DROP TABLE bench_upsert_counts;
