-- Inference through SQL, measured in one run (docs/benchmarks.md):
--  1. the SQL tax of qlinear: y = W x over the 10,000 rows of a table, W a stored
--     qtensor (rtn 4-bit, groups of 128), for 1024 x 1024 and 256 x 256 layers; compare
--     with the raw kernel loop of tests/bench/bench_qgemv (loop ROWS COLS 10000), and
--     with scanning the same rows without the product;
--  2. tokens/s of pgquant.generate on stories260K, fp32 against rtn 4-bit and 8-bit,
--     and perplexity throughput (only when -v datadir=... points at the data directory).
-- Each figure is the median of 5 runs after one warm-up.
-- Run: psql -X -v datadir=/path/to/data -f tests/bench/bench_infer.sql   (pgquant installed)
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgquant;

CREATE FUNCTION pg_temp.median_ms(stmt text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t float8[] := '{}';
	t0 timestamptz;
BEGIN
	FOR i IN 0..5 LOOP
		t0 := clock_timestamp();
		EXECUTE stmt;
		IF i > 0 THEN
			t := t || extract(epoch FROM clock_timestamp() - t0) * 1000;
		END IF;
	END LOOP;
	RETURN (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(t) x);
END $$;

-- layers: seeded N(0, 0.02) weights, quantized once and stored
CREATE TEMP TABLE bench_layer (n int PRIMARY KEY, q qtensor);
INSERT INTO bench_layer
SELECT n, quantize((SELECT array_agg(r ORDER BY i) FROM (
		SELECT i, array_agg((0.02 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::real ORDER BY j) AS r
		FROM generate_series(1, n) i, generate_series(1, n) j GROUP BY i) t), 'rtn', 4)
FROM (SELECT setseed(0.25)) s, unnest(ARRAY[256, 1024]) n;
-- 10,000 input rows per width
CREATE TEMP TABLE bench_x (n int, id int, x real[]);
INSERT INTO bench_x
SELECT n, id, (SELECT array_agg((sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::real)
			   FROM generate_series(1, n) WHERE id > 0)
FROM (SELECT setseed(0.5)) s, unnest(ARRAY[256, 1024]) n, generate_series(1, 10000) id;
ANALYZE bench_x;

CREATE TEMP TABLE bench_result (step text, ms float8, per_row_us float8);
INSERT INTO bench_result
SELECT format('%s x %s: scan the rows (no product)', n, n), ms, ms * 1000 / 10000
FROM unnest(ARRAY[256, 1024]) n,
	LATERAL pg_temp.median_ms(format('SELECT sum(x[1]) FROM bench_x WHERE n = %s', n)) ms;
INSERT INTO bench_result
SELECT format('%s x %s: qlinear(x, q) per row', n, n), ms, ms * 1000 / 10000
FROM unnest(ARRAY[256, 1024]) n,
	LATERAL pg_temp.median_ms(format(
		'SELECT sum((qlinear(x.x, l.q))[1]) FROM bench_x x JOIN bench_layer l USING (n) WHERE n = %s', n)) ms;
-- the same layer as a model tensor, through the backend cache (one index lookup per row)
INSERT INTO pgquant.models (name, arch) VALUES ('bench-layers', 'none');
INSERT INTO pgquant.tensors (model, name, shape, dtype, q)
SELECT 'bench-layers', 'w' || n, ARRAY[n, n], 'qtensor', q FROM bench_layer;
INSERT INTO bench_result
SELECT format('%s x %s: pgquant.linear(model, tensor, x) per row', n, n), ms, ms * 1000 / 10000
FROM unnest(ARRAY[256, 1024]) n,
	LATERAL pg_temp.median_ms(format(
		'SELECT sum((pgquant.linear(''bench-layers'', ''w%s'', x))[1]) FROM bench_x WHERE n = %s', n, n)) ms;
-- a batch of all 10,000 rows in one qmatmul call
INSERT INTO bench_result
SELECT format('%s x %s: qmatmul of the 10,000 rows at once', n, n), ms, ms * 1000 / 10000
FROM unnest(ARRAY[256, 1024]) n,
	LATERAL pg_temp.median_ms(format(
		'SELECT array_length(qmatmul((SELECT array_agg(x ORDER BY id) FROM bench_x WHERE n = %s), q), 1) FROM bench_layer WHERE n = %s',
		n, n)) ms;
DELETE FROM pgquant.models WHERE name = 'bench-layers';

SELECT step, round(ms::numeric, 1) AS ms, round(per_row_us::numeric, 2) AS us_per_row FROM bench_result ORDER BY step;

-- 2. the whole model (needs -v datadir=...)
SELECT :'datadir' <> '' AND :'datadir' <> ':datadir' AS have_data \gset
\if :have_data
SELECT pgquant.import_llama2c('bench-s260k', pg_read_binary_file(:'datadir' || '/stories260K/stories260K.bin'),
	pg_read_binary_file(:'datadir' || '/stories260K/tok512.bin')) AS tensors;
SELECT pgquant.quantize_model('bench-s260k', 'bench-s260k-q4', 'rtn', 4) AS q4,
	pgquant.quantize_model('bench-s260k', 'bench-s260k-q8', 'rtn', 8) AS q8;
CREATE TEMP TABLE bench_valid AS
	SELECT n, btrim(p, E' \n') AS p
	FROM regexp_split_to_table(convert_from(pg_read_binary_file(:'datadir' || '/stories260K/tinystories_valid_head.txt'), 'UTF8'),
							   '\n\s*\n') WITH ORDINALITY AS t(p, n)
	WHERE n BETWEEN 2 AND 101;
CREATE TEMP TABLE bench_gen AS
SELECT m AS model,
	pg_temp.median_ms(format('SELECT pgquant.generate(%L, max_tokens => 256)', m)) AS gen_ms,
	pg_temp.median_ms(format('SELECT sum(r.tokens) FROM bench_valid, pgquant.perplexity(%L, p) r', m)) AS ppl_ms
FROM unnest(ARRAY['bench-s260k', 'bench-s260k-q8', 'bench-s260k-q4']) m;
-- generate(max_tokens => 256) from BOS runs 256 positions; the perplexity pass scores 9,602 tokens
SELECT model, round(gen_ms::numeric, 1) AS generate_256_ms, round((256 / gen_ms * 1000)::numeric) AS gen_tokens_per_s,
	round(ppl_ms::numeric, 1) AS perplexity_ms, round((9602 / ppl_ms * 1000)::numeric) AS scored_tokens_per_s
FROM bench_gen ORDER BY model;
DELETE FROM pgquant.models WHERE name LIKE 'bench-s260k%';
\endif
