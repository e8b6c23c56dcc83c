-- pgTAP: long runs of the optimizing quantizers and calibration statistics stop within a
-- second of a cancel. Each statement below takes several seconds uninterrupted (a 4096 x 4096
-- layer, repeated); statement_timeout cancels it after 300 ms.
BEGIN;
SELECT plan(6);

CREATE TEMP TABLE big AS SELECT array_fill(0.5::real, ARRAY[4096, 4096]) AS w;
-- a 4096-wide layer's statistics: X^T X all ones (rank one: dampening makes it invertible)
SELECT pgquant.calibration_create('cancel-test');
SELECT pgquant.calibration_merge('cancel-test', 'wide',
	ROW(4096, 10, array_fill(1::real, ARRAY[4096, 4096]), array_fill(1::real, ARRAY[4096]),
		array_fill(1::real, ARRAY[4096]), array_fill(1::float8, ARRAY[4096]))::pgquant.layer_stats);
SET LOCAL client_min_messages = warning;

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

SET LOCAL statement_timeout = '300ms';
SELECT cmp_ok(pg_temp.seconds_until_cancel(
	$$SELECT quantize(w, 'gptq', 4, calibration => 'cancel-test', layer => 'wide') FROM big, generate_series(1, 5)$$),
	'<', 1.0::float8, 'a cancelled gptq stops within a second');
SELECT cmp_ok(pg_temp.seconds_until_cancel(
	$$SELECT quantize(w, 'awq', 4, calibration => 'cancel-test', layer => 'wide') FROM big, generate_series(1, 3)$$),
	'<', 1.0::float8, 'a cancelled awq stops within a second');
SELECT cmp_ok(pg_temp.seconds_until_cancel(
	$$SELECT quantize(w, 'hqq', 2) FROM big, generate_series(1, 10)$$),
	'<', 1.0::float8, 'a cancelled hqq stops within a second');
SELECT cmp_ok(pg_temp.seconds_until_cancel(
	$$SELECT quant_error(w, quantize(w, 'rtn', 4), 'cancel-test', 'wide') FROM big, generate_series(1, 5)$$),
	'<', 1.0::float8, 'a cancelled quant_error with calibration stops within a second');
SELECT cmp_ok(pg_temp.seconds_until_cancel(
	$$SELECT pgquant.activation_stats(x) FROM (SELECT array_fill(0.5::real, ARRAY[64, 2048]) AS x
	   FROM generate_series(1, 100000)) s$$),
	'<', 1.0::float8, 'a cancelled activation_stats stops within a second');
SELECT cmp_ok(pg_temp.seconds_until_cancel(
	$$SELECT pgquant.calibration_merge('cancel-test', 'wide', s) FROM (SELECT pgquant.layer_stats_merge(NULL,
		ROW(4096, 10, array_fill(1::real, ARRAY[4096, 4096]), array_fill(1::real, ARRAY[4096]),
		array_fill(1::real, ARRAY[4096]), array_fill(1::float8, ARRAY[4096]))::pgquant.layer_stats) s
		FROM generate_series(1, 20)) t$$),
	'<', 1.0::float8, 'cancelled merges of 4096-wide statistics stop within a second');
RESET statement_timeout;

SELECT * FROM finish();
ROLLBACK;
