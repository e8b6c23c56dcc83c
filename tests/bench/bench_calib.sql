-- Calibrated quantizers through SQL (docs/benchmarks.md, "Calibrated quantizers"):
--   psql -X -f tests/bench/bench_calib.sql     (as a superuser: it reads /proc/self/status)
-- 1. the activation_stats aggregate streaming 100,000 rows of 4,096 features, with the
--    backend's peak resident memory before and after (the rows are never held);
-- 2. quantize() with gptq, awq, hqq and rtn on a 4096 x 4096 layer whose statistics come
--    from 8,192 generated activation rows, and quant_error's output error of each.
-- Everything runs in a scratch schema that is dropped at the end.
\set ON_ERROR_STOP 1
\timing on
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_calib CASCADE;
CREATE SCHEMA bench_calib;
SET search_path = bench_calib, public;
CREATE EXTENSION IF NOT EXISTS pgquant SCHEMA public;

-- the peak resident set size of this backend, in MB
CREATE FUNCTION peak_mb() RETURNS numeric LANGUAGE sql AS $$
	SELECT round((regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::numeric / 1024, 1)
$$;

-- 1. streaming: constant rows cost the same as any others (the work is data-independent)
SELECT peak_mb() AS peak_mb_before;
SELECT (s).nrows, (s).in_features
FROM (SELECT pgquant.activation_stats(x) AS s
	  FROM (SELECT array_fill(0.5::real, ARRAY[4096]) AS x FROM generate_series(1, 100000)) r) t;
SELECT peak_mb() AS peak_mb_after_100k_rows;

-- 2. a layer and its statistics: uniform weights of standard deviation 0.02; activations
--    with 64 shared factors and every 97th channel 20x larger, unit-variance uniform noise
--    (the shape of tests/bench/bench_calib.c's data, generated in SQL)
SELECT setseed(0.5);
CREATE TABLE layer AS
	SELECT array_agg(r ORDER BY i) AS w FROM (
		SELECT i, (SELECT array_agg(((random() - 0.5) * 0.07)::real ORDER BY j)
				   FROM generate_series(1, 4096 + 0 * i) j) AS r
		FROM generate_series(1, 4096) i) s;
CREATE TABLE acts AS
	SELECT t, (SELECT array_agg(((0.6 * z[1 + j % 64] + 0.8 * (random() - 0.5) * 3.46)
								 * CASE WHEN j % 97 = 0 THEN 20 ELSE 1 END)::real ORDER BY j)
			   FROM generate_series(0, 4095) j) AS x
	FROM (SELECT t, ARRAY(SELECT (random() - 0.5) * 3.46 FROM generate_series(1, 64 + 0 * t)) AS z
		  FROM generate_series(1, 8192) t) r;
SELECT pgquant.calibration_create('bench-calib', note => 'tests/bench/bench_calib.sql');
SELECT pgquant.calibration_merge('bench-calib', 'l', (SELECT pgquant.activation_stats(x) FROM acts));

CREATE TABLE q (method text, bits int, q qtensor);
INSERT INTO q SELECT 'rtn', 4, quantize(w, 'rtn', 4) FROM layer;
INSERT INTO q SELECT 'hqq', 4, quantize(w, 'hqq', 4, 128) FROM layer;
INSERT INTO q SELECT 'gptq', 4, quantize(w, 'gptq', 4, calibration => 'bench-calib', layer => 'l') FROM layer;
INSERT INTO q SELECT 'gptq act-order', 4, quantize(w, 'gptq', 4, calibration => 'bench-calib', layer => 'l', act_order => true) FROM layer;
INSERT INTO q SELECT 'awq', 4, quantize(w, 'awq', 4, calibration => 'bench-calib', layer => 'l') FROM layer;
INSERT INTO q SELECT 'rtn', 3, quantize(w, 'rtn', 3) FROM layer;
INSERT INTO q SELECT 'gptq', 3, quantize(w, 'gptq', 3, calibration => 'bench-calib', layer => 'l') FROM layer;
INSERT INTO q SELECT 'awq', 3, quantize(w, 'awq', 3, calibration => 'bench-calib', layer => 'l') FROM layer;
SELECT q.method, q.bits, round(e.output_error::numeric, 5) AS output_error, round(e.rel_error::numeric, 4) AS weight_error
FROM q, layer, LATERAL quant_error(w, q.q, 'bench-calib', 'l') e ORDER BY q.bits, q.method;

DELETE FROM pgquant.calibration_sets WHERE name = 'bench-calib';
DROP SCHEMA bench_calib CASCADE;
