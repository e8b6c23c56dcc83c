-- pgTAP: long quantize and dequantize calls stop soon after a cancel, because their
-- loops check for interrupts once per row.  The weights are the largest a qtensor
-- holds (8192 x 16383).  Wall times depend on the machine and its load, so each
-- cancelled call is compared with the same call run to completion in the same test:
-- without the per-row checks the two would take about as long.
BEGIN;
SELECT plan(4);

-- stored uncompressed, so reading them back is a copy and not a long pglz decompression
CREATE TEMP TABLE big (w real[]);
ALTER TABLE big ALTER COLUMN w SET STORAGE EXTERNAL;
INSERT INTO big SELECT array_fill(0.5::real, ARRAY[8192, 16383]);
CREATE TEMP TABLE bigq (q qtensor);
ALTER TABLE bigq ALTER COLUMN q SET STORAGE EXTERNAL;
INSERT INTO bigq SELECT quantize(w, 'rtn', 8, 1) FROM big;

-- seconds a statement ran, and whether it was cancelled
CREATE FUNCTION pg_temp.run_seconds(stmt text, OUT seconds float8, OUT cancelled boolean)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	cancelled := false;
	BEGIN
		EXECUTE stmt;
	EXCEPTION WHEN query_canceled THEN
		cancelled := true;
	END;
	seconds := extract(epoch FROM clock_timestamp() - t0);
END $$;

CREATE TEMP TABLE timing (what text, full_s float8, cancel_s float8, cancelled boolean);
INSERT INTO timing (what, full_s)
SELECT 'quantize', (pg_temp.run_seconds($$SELECT quantize(w, 'nf4', 4, 32) FROM big$$)).seconds;
INSERT INTO timing (what, full_s)
SELECT 'dequantize', (pg_temp.run_seconds($$SELECT array_length(dequantize(q), 1) FROM bigq$$)).seconds;

-- the timer covers each whole top-level statement below; it fires after 10% of the full run
SELECT set_config('statement_timeout', (round(full_s * 100))::int::text, false) FROM timing WHERE what = 'quantize';
UPDATE timing SET (cancel_s, cancelled) =
	(SELECT seconds, cancelled FROM pg_temp.run_seconds($$SELECT quantize(w, 'nf4', 4, 32) FROM big$$))
WHERE what = 'quantize';
RESET statement_timeout;
SELECT set_config('statement_timeout', (round(full_s * 100))::int::text, false) FROM timing WHERE what = 'dequantize';
UPDATE timing SET (cancel_s, cancelled) =
	(SELECT seconds, cancelled FROM pg_temp.run_seconds($$SELECT array_length(dequantize(q), 1) FROM bigq$$))
WHERE what = 'dequantize';
RESET statement_timeout;

SELECT ok((SELECT cancelled FROM timing WHERE what = 'quantize'), 'the quantize call was cancelled');
SELECT cmp_ok((SELECT cancel_s / full_s FROM timing WHERE what = 'quantize'), '<', 0.5::float8,
	'a cancelled quantize stops in under half the time of a full run');
SELECT ok((SELECT cancelled FROM timing WHERE what = 'dequantize'), 'the dequantize call was cancelled');
SELECT cmp_ok((SELECT cancel_s / full_s FROM timing WHERE what = 'dequantize'), '<', 0.5::float8,
	'a cancelled dequantize stops in under half the time of a full run');

SELECT * FROM finish();
ROLLBACK;
