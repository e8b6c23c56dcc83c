-- SQL-level throughput of quantize() and dequantize() on a 4096 x 4096 real[] stored
-- in a table, against reading the same fp32 matrix back (detoast and copy), measured
-- in the same run.  Data: seeded N(0,1).  Each figure is the median of 5 runs after
-- one warm-up.  Run with: psql -X -f tests/bench/bench_sql.sql (pgquant installed).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgquant;

-- no compression, so both sides read raw bytes
CREATE TEMP TABLE bench_w (w real[]);
ALTER TABLE bench_w ALTER COLUMN w SET STORAGE EXTERNAL;
INSERT INTO bench_w
SELECT array_agg(r ORDER BY i) FROM (
	SELECT i, array_agg((sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::real) AS r
	FROM (SELECT setseed(0.5)) s, generate_series(1, 4096) i, generate_series(1, 4096) j
	GROUP BY i) t;

-- median wall time in ms of a statement over 5 runs after one warm-up
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

CREATE TEMP TABLE bench_q AS
SELECT f.format, quantize(w, f.method, f.bits, NULL, f.sym) AS q
FROM bench_w, (VALUES ('rtn int4 g128', 'rtn', 4, false), ('rtn int8 g128', 'rtn', 8, false),
						('rtn int3 g128', 'rtn', 3, false), ('nf4 g64', 'nf4', 4, false)) f(format, method, bits, sym);

CREATE TEMP TABLE bench_result AS
SELECT 'read fp32 (baseline)' AS step, pg_temp.median_ms('SELECT array_length(w, 1) FROM bench_w') AS ms;
INSERT INTO bench_result
SELECT 'quantize ' || f.format,
	pg_temp.median_ms(format('SELECT pg_column_size(quantize(w, %L, %s, NULL, %L)) FROM bench_w', f.method, f.bits, f.sym))
FROM (VALUES ('rtn int4 g128', 'rtn', 4, false), ('rtn int8 g128', 'rtn', 8, false),
			 ('rtn int3 g128', 'rtn', 3, false), ('nf4 g64', 'nf4', 4, false)) f(format, method, bits, sym);
INSERT INTO bench_result
SELECT 'dequantize ' || format,
	pg_temp.median_ms(format('SELECT array_length(dequantize(q), 1) FROM bench_q WHERE format = %L', format))
FROM bench_q;

SELECT step, round(ms::numeric, 1) AS ms,
	round((ms / (SELECT ms FROM bench_result WHERE step LIKE 'read%'))::numeric, 2) AS ratio_to_read,
	round((4096 * 4096 * 4 / ms / 1e6)::numeric, 2) AS fp32_gb_per_s
FROM bench_result ORDER BY step LIKE 'read%' DESC, step;
