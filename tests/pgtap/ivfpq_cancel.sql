-- pgTAP: long codebook training and index builds stop soon after a cancel (their
-- k-means, encoding and loading loops check for interrupts), and leave nothing
-- behind that breaks the next statement.  30,000 vectors of 128 dimensions:
-- training 256 centroids per subquantizer, or building 1,000 lists, takes well
-- over a second uninterrupted on the machines this runs on.
BEGIN;
SELECT plan(5);

SELECT setseed(0.42);
CREATE TEMP TABLE vecs AS
	SELECT i AS id, (SELECT array_agg(random()::real) FROM generate_series(1, 128) WHERE i > 0) AS v
	FROM generate_series(1, 30000) i;

-- seconds from the call to the cancel, or NULL when the statement was not cancelled
CREATE FUNCTION pg_temp.seconds_until_cancel(stmt text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE stmt;
	RETURN NULL;
EXCEPTION WHEN query_canceled THEN
	RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;

-- the timer covers each whole top-level statement below
SET statement_timeout = '400ms';
SELECT cmp_ok(pg_temp.seconds_until_cancel($$SELECT pq_train(v, 16, 8, '{"niter": 100}') FROM vecs$$), '<', 1.5::float8,
	'a cancelled pq_train stops within a second or so');
SELECT cmp_ok(pg_temp.seconds_until_cancel($$SELECT rvq_train(v, 8, 8, '{"niter": 100}') FROM vecs$$), '<', 1.5::float8,
	'a cancelled rvq_train stops within a second or so');
SELECT cmp_ok(pg_temp.seconds_until_cancel($$CREATE INDEX vecs_idx ON vecs USING ivfpq (v) WITH (lists = 1000)$$),
	'<', 1.5::float8, 'a cancelled ivfpq build stops within a second or so');
RESET statement_timeout;

SELECT is((SELECT count(*) FROM pg_class WHERE relname = 'vecs_idx'), 0::bigint, 'the cancelled build left no index');
CREATE INDEX vecs_small ON vecs USING ivfpq (v) WITH (lists = 4, nbits = 4);
SELECT is((SELECT entries FROM pgquant.ivfpq_check('vecs_small')), 30000::bigint,
	'the next build in the same session works');

SELECT * FROM finish();
ROLLBACK;
