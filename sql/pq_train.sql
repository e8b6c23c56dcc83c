-- pq_train and rvq_train: reproducible training, quality, the sample bound,
-- parallel aggregation, and argument errors.  Floats are rounded and ids are
-- only compared, so the file holds on any CPU.

-- 2,000 points of 8 dimensions in 4 tight clusters, plus NULLs that are skipped
CREATE TABLE train_pts AS
SELECT i, CASE WHEN i % 100 = 0 THEN NULL ELSE
	(SELECT array_agg((10 * ((i % 4) = (j % 4))::int + 0.1 * sin(i * 7.1 + j * 3.3))::real ORDER BY j)
	 FROM generate_series(1, 8) j) END AS v
FROM generate_series(1, 2000) i;

CREATE TABLE trained AS
SELECT 'pq' AS kind, pq_train(v, 4, 2) AS pq, NULL::rvq_codebook AS rvq FROM train_pts
UNION ALL SELECT 'pq_again', pq_train(v, 4, 2), NULL FROM train_pts
UNION ALL SELECT 'pq_seed', pq_train(v, 4, 2, '{"seed": 7, "niter": 10}'), NULL FROM train_pts
UNION ALL SELECT 'rvq', NULL, rvq_train(v, 2, 2) FROM train_pts;
SELECT kind, (pq_codebook_info(pq)).dim, (pq_codebook_info(pq)).m, (pq_codebook_info(pq)).nbits,
	(rvq_codebook_info(rvq)).levels
FROM trained ORDER BY kind;
-- the same rows, settings and seed give the same codebook
SELECT (SELECT codebook_id(pq) FROM trained WHERE kind = 'pq') =
	(SELECT codebook_id(pq) FROM trained WHERE kind = 'pq_again') AS reproducible;

-- every point decodes near its own cluster centre: within the noise (|noise| <= 0.1 * sqrt(8)),
-- where the centres are 14 apart
SELECT t.kind, max(sqrt((SELECT sum((a - b) ^ 2) FROM unnest(v, CASE WHEN t.pq IS NOT NULL
		THEN pq_decode(t.pq, pq_encode(t.pq, v)) ELSE pq_decode(t.rvq, pq_encode(t.rvq, v)) END) u(a, b)))) < 0.6 AS near
FROM train_pts, trained t WHERE v IS NOT NULL GROUP BY t.kind ORDER BY t.kind;

-- ORDER BY the ADC distance finds the query's cluster first
SELECT count(*) FILTER (WHERE i % 4 = 1) AS same_cluster FROM (
	SELECT i FROM train_pts, trained t WHERE t.kind = 'pq' AND v IS NOT NULL
	ORDER BY pq_distance(t.pq, pq_encode(t.pq, v), (SELECT v FROM train_pts WHERE i = 1)) LIMIT 50) s;

-- an empty input trains nothing
SELECT pq_train(v, 4, 2) IS NULL AS empty FROM train_pts WHERE false;
SELECT rvq_train(v, 2, 2) IS NULL AS all_null FROM train_pts WHERE v IS NULL;

-- the reservoir: with sample = 100 the codebook comes from 100 of the 1,980 vectors
-- (the final function says so at DEBUG1); it still decodes every point near its centre
SET client_min_messages = debug1;
SELECT codebook_id(pq_train(v, 4, 2, '{"sample": 100}')) IS NOT NULL AS trained FROM train_pts;
RESET client_min_messages;
SELECT max(sqrt((SELECT sum((a - b) ^ 2) FROM unnest(v, pq_decode(cb, pq_encode(cb, v))) u(a, b)))) < 0.6 AS near
FROM train_pts, (SELECT pq_train(v, 4, 2, '{"sample": 100}') AS cb FROM train_pts) s WHERE v IS NOT NULL;

-- parallel aggregation: partial samples from workers merge into one codebook
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pq_train(v, 4, 2) FROM train_pts;
SELECT max(sqrt((SELECT sum((a - b) ^ 2) FROM unnest(v, pq_decode(cb, pq_encode(cb, v))) u(a, b)))) < 0.6 AS near
FROM train_pts, (SELECT pq_train(v, 4, 2, '{"sample": 300}') AS cb FROM train_pts) s WHERE v IS NOT NULL;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

-- errors: shapes, bits, too few vectors, mixed dimensions, NaN, options
SELECT test_error($$SELECT pq_train(v, 3, 2) FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 9) FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 0) FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 0, 2) FROM train_pts$$);
SELECT test_error($$SELECT rvq_train(v, 65, 2) FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, NULL) FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 8) FROM train_pts WHERE i <= 100$$);
SELECT test_error($$SELECT pq_train(x, 2, 1) FROM (VALUES ('{1,2,3,4}'::real[]), ('{1,2}')) t(x)$$);
SELECT test_error($$SELECT pq_train(x, 2, 1) FROM (VALUES ('{1,2,3,4}'::real[]), ('{1,NaN,3,4}')) t(x)$$);
SELECT test_error($$SELECT pq_train(v, 4, 2, '{"niter": -1}') FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 2, '{"niter": 2.5}') FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 2, '{"niter": "ten"}') FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 2, '{"iterations": 3}') FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 2, '[1, 2]') FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, 4, 2, '{"sample": 0}') FROM train_pts$$);
SELECT test_error($$SELECT pq_train(v, i % 2 + 1, 2) FROM train_pts$$);
-- the sample must fit in maintenance_work_mem
SET maintenance_work_mem = '1MB';
SELECT test_error($$SELECT pq_train(x, 2, 2) FROM (SELECT array_fill(i::real, ARRAY[1000]) x FROM generate_series(1, 2000) i) t$$);
RESET maintenance_work_mem;
